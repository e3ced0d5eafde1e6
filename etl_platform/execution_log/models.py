"""Seed 001's configuration and result models (``WriterConfig``, ``WriteMode``, ``ExecutionContext``,
``StepResult``, ``ExecutionResult``, ``ExecutionMode``) and the log table's columns."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum
from typing import Any

import pyarrow as pa

from etl_platform.errors import ConfigurationError, EtlPlatformError, ValidationError


class WriterError(EtlPlatformError):
    """Base class of the log writer's errors; ``context`` and ``suggestions`` say where and what to try."""

    def __init__(self, message: str, context: dict | None = None, suggestions: list[str] | None = None):
        super().__init__(message)
        self.context = context or {}
        self.suggestions = suggestions or []


class WriterConfigurationError(WriterError, ConfigurationError):
    pass


class WriterValidationError(WriterError, ValidationError):
    pass


class WriterTableError(WriterError):
    pass


class WriteMode(str, Enum):
    APPEND = "append"
    OVERWRITE = "overwrite"


class ExecutionMode(str, Enum):
    INITIAL = "initial"
    INCREMENTAL = "incremental"
    FULL_REFRESH = "full_refresh"
    VALIDATION_ONLY = "validation_only"


@dataclass
class WriterConfig:
    """Where the log table is and how it is written and judged. ``table_uri`` (a folder, s3://, az://, gs://)
    overrides the default ``$ETL_PLATFORM_HOME/logs/[<table_schema>/]<table_name>``."""

    table_schema: str | None = None
    table_name: str = "pipeline_logs"
    write_mode: WriteMode = WriteMode.APPEND
    table_uri: str | None = None
    storage_options: dict[str, str] = field(default_factory=dict)
    store: Any = None  # a destinations Store (S3Store, AzureBlobStore, GCSStore, LocalStore): the log in it
    # performance (seed 001's knobs; batch_size and max_file_size_mb are used, the Spark ones kept for the API)
    batch_size: int = 1000
    max_file_size_mb: int = 128
    parallel_write_threads: int = 1
    memory_fraction: float = 0.8
    enable_optimization: bool = True
    # data quality
    log_data_quality_results: bool = True
    enable_anomaly_detection: bool = True
    min_validation_rate: float = 95.0
    max_invalid_rows_percent: float = 5.0
    anomaly_min_history: int = 5  # runs of a step before its values can be anomalous
    anomaly_threshold: float = 3.5  # robust z-score (median/MAD) above which a value is an anomaly
    sync_dagster_runs: bool = True  # before reading, log the finished runs of the instance at $DAGSTER_HOME
    # schema
    enable_schema_evolution: bool = False
    auto_optimize_schema: bool = False
    schema_validation_mode: str = "strict"
    # naming
    table_name_pattern: str | None = None
    table_suffix_pattern: str | None = None
    # errors
    max_retries: int = 3
    retry_delay_secs: float = 1.0
    fail_fast: bool = False
    retry_exponential_backoff: bool = True

    def __post_init__(self):
        self.write_mode = WriteMode(self.write_mode)
        if self.table_schema is not None and not _name(self.table_schema):
            raise WriterConfigurationError(f"table_schema: {self.table_schema!r} must be a name of letters, digits, "
                                           "_ and -", suggestions=["table_schema='analytics'"])
        if not _name(self.table_name):
            raise WriterConfigurationError(f"table_name: {self.table_name!r} must be a name of letters, digits, _ "
                                           "and -", suggestions=["table_name='pipeline_logs'"])
        if not 0 <= self.min_validation_rate <= 100:
            raise WriterConfigurationError(f"min_validation_rate: {self.min_validation_rate} is not a percentage")
        if self.batch_size < 1:
            raise WriterConfigurationError(f"batch_size: {self.batch_size} must be at least 1")

    def generate_table_name(self, pipeline_id: str, run_mode: str, timestamp: str, date: str | None = None) -> str:
        """Seed 001's naming: ``table_name_pattern`` with {schema}, {table_name}, {pipeline_id}, {run_mode},
        {date} (default: the timestamp) and {timestamp}; without a pattern, ``<schema>.<table_name>`` plus
        ``table_suffix_pattern``."""
        values = {"schema": self.table_schema or "", "table_name": self.table_name, "pipeline_id": pipeline_id,
                  "run_mode": run_mode, "timestamp": timestamp, "date": date or timestamp}
        try:
            if self.table_name_pattern:
                return self.table_name_pattern.format(**values)
            suffix = self.table_suffix_pattern.format(**values) if self.table_suffix_pattern else ""
        except KeyError as error:
            raise WriterConfigurationError(f"table name pattern: unknown placeholder {error}; use "
                                           f"{', '.join('{' + k + '}' for k in values)}") from None
        base = ".".join(p for p in (self.table_schema, self.table_name) if p)
        return base + suffix


def _name(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and all(c.isalnum() or c in "_-" for c in value)


@dataclass
class ExecutionContext:
    mode: ExecutionMode = ExecutionMode.INITIAL
    start_time: datetime | None = None
    execution_id: str | None = None
    pipeline_id: str | None = None
    schema: str | None = None
    end_time: datetime | None = None
    run_mode: str | None = None


@dataclass
class StepResult:
    step_name: str
    phase: str
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration_secs: float | None = None
    rows_processed: int | None = None
    rows_written: int | None = None
    validation_rate: float | None = None
    success: bool = True
    execution_context: ExecutionContext | None = None
    valid_rows: int | None = None
    invalid_rows: int | None = None
    error_message: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExecutionResult:
    success: bool
    context: ExecutionContext
    step_results: list[StepResult] = field(default_factory=list)
    total_duration_secs: float | None = None
    error_message: str | None = None



@dataclass
class FailedExecution(ExecutionResult):
    """A run that ``write_execution_result_batch`` did not store, with why: the caller's run (the same context and
    step objects) plus ``reason`` and ``index`` (its position in the batch). It is an ``ExecutionResult``, so the
    list ``failed_executions`` can be corrected and passed back as it is."""

    reason: str = ""
    index: int = -1

    @classmethod
    def of(cls, result: Any, reason: str, index: int) -> FailedExecution:
        if not isinstance(result, ExecutionResult):  # not a run at all: kept as the reason says, nothing to retry
            return cls(success=False, context=ExecutionContext(), reason=reason, index=index)
        return cls(**{f.name: getattr(result, f.name) for f in fields(ExecutionResult)}, reason=reason, index=index)

# The log table: one row per step of a run (a materialization, an asset check, or a step the caller reports).
LOG_SCHEMA = pa.schema([
    ("log_id", pa.string()),  # unique per row: makes writes from Dagster's event log idempotent
    ("run_id", pa.string()),
    ("pipeline_id", pa.string()),
    ("execution_mode", pa.string()),
    ("phase", pa.string()),
    ("step_name", pa.string()),
    ("start_time", pa.timestamp("us", tz="UTC")),
    ("end_time", pa.timestamp("us", tz="UTC")),
    ("duration_secs", pa.float64()),
    ("rows_processed", pa.int64()),
    ("rows_written", pa.int64()),
    ("valid_rows", pa.int64()),
    ("invalid_rows", pa.int64()),
    ("validation_rate", pa.float64()),
    ("success", pa.bool_()),
    ("error_message", pa.string()),
    ("memory_peak_mb", pa.float64()),
    ("dagster_run_id", pa.string()),
    ("partition_key", pa.string()),
    ("asset_key", pa.string()),
    ("metadata", pa.string()),  # JSON text
    ("logged_at", pa.timestamp("us", tz="UTC")),
    ("log_date", pa.date32()),  # the table's partition column: the day the step started (else was logged)
])

PHASES = ("bronze", "silver", "gold", "export", "ingest", "check", "job", "other")
