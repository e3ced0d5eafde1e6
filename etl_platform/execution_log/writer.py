"""Seed 001's ``LogWriter`` on the Delta log table, with statistics computed from the data.

    from etl_platform.execution_log import LogWriter, WriterConfig, WriteMode

    writer = LogWriter(config=WriterConfig(table_name="pipeline_logs"))   # or LogWriter(spark, config)
    writer.write_log_rows([{"run_id": "r1", "phase": "bronze", "step_name": "extract", "duration_secs": 15.0,
                            "rows_processed": 1000, "validation_rate": 95.0}])
    writer.detect_anomalies()            # each step against its own history (robust z-score on median/MAD)
    writer.generate_summary_report(days=30)

What differs from the seed, on purpose: the validation rate is ``valid_rows / rows_processed`` from the data
(given rates are checked against the counts, not trusted); an anomaly is a value far from *that step's* median in
units of its median absolute deviation, and a step needs ``anomaly_min_history`` earlier runs before any of its
values can be one; failures raise ``WriterError`` subclasses instead of returning ``{'success': False}``.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from etl_platform import settings
from etl_platform.execution_log.models import (
    LOG_SCHEMA,
    ExecutionContext,
    ExecutionResult,
    FailedExecution,
    StepResult,
    WriterConfig,
    WriterConfigurationError,
    WriterTableError,
    WriterValidationError,
)
from etl_platform.execution_log.table import LogTable

LOGS_ENV = "ETL_PLATFORM_LOGS"


def default_location(config: WriterConfig) -> str:
    if config.table_uri:
        return config.table_uri
    if config.store is not None:
        from etl_platform.destinations.delta import delta_location

        return delta_location(config.store, _table_path(config))[0]
    root = Path(os.environ.get(LOGS_ENV) or settings.platform_home() / "logs")
    return str(root / config.table_schema / config.table_name if config.table_schema else root / config.table_name)


def _table_path(config: WriterConfig) -> str:
    return f"{config.table_schema}/{config.table_name}" if config.table_schema else config.table_name


class LogWriter:
    """The execution log: write rows, read them back, judge them, keep the table healthy."""

    def __init__(self, spark: Any = None, config: WriterConfig | None = None, logger: Any = None):
        if isinstance(spark, WriterConfig) and config is None:  # LogWriter(config)
            spark, config = None, spark
        self.spark = spark
        self.config = config or WriterConfig()
        if not isinstance(self.config, WriterConfig):
            raise WriterConfigurationError(f"config must be a WriterConfig, not {type(self.config).__name__}")
        # Seed 001's PipelineLogger, a logging.Logger, or (None) this module's logger: the writer's debug output.
        self.logger = logger if logger is not None else logging.getLogger("etl_platform.execution_log")
        self.location = default_location(self.config)
        options = dict(self.config.storage_options)
        if self.config.store is not None and not self.config.table_uri:
            from etl_platform.destinations.delta import delta_location

            options = {**delta_location(self.config.store, _table_path(self.config))[1], **options}
        self.table = LogTable(self.location, options, self.config.max_retries, self.config.retry_delay_secs)
        self._synced = False
        self._metrics = {"total_writes": 0, "successful_writes": 0, "failed_writes": 0, "total_rows_written": 0,
                         "total_duration_secs": 0.0, "memory_usage_peak_mb": 0.0}
        self.logger.debug(f"LogWriter: table {self.table_fqn} at {self.location} (write mode "
                          f"{self.config.write_mode.value}, batch size {self.config.batch_size})")

    def _logs(self, days: int | None = None):
        """The log as the DuckDB view ``logs``, after logging the Dagster instance's finished runs once."""
        self._sync_dagster()
        return self.table.sql(days)

    def _sync_dagster(self) -> None:
        """With ``sync_dagster_runs`` and ``$DAGSTER_HOME`` set, log that instance's finished runs before the first
        read, so runs started without a daemon are in what this writer reads."""
        if self._synced or not self.config.sync_dagster_runs or not os.environ.get("DAGSTER_HOME"):
            return
        self._synced = True
        import warnings

        import dagster as dg

        from etl_platform.execution_log.dagster_runs import sync_runs

        try:
            with dg.DagsterInstance.get() as instance:
                sync_runs(instance, self)
        except Exception as error:  # the log is still readable; say what it may lack
            warnings.warn(f"the execution log could not log the runs of the Dagster instance at $DAGSTER_HOME "
                          f"({type(error).__name__}: {str(error).splitlines()[0][:200]}); runs since the last sync "
                          "may be missing", stacklevel=3)

    def read_logs(self, days: int | None = None):
        """The rows (of the last ``days`` days): a Spark DataFrame when the writer has a Spark session, else a
        pyarrow Table."""
        with self._logs(days) as conn:
            table = conn.sql("SELECT * FROM logs ORDER BY coalesce(start_time, logged_at)").to_arrow_table()
        if self.spark is None:
            return table
        from etl_platform.destinations.tables import spark_frame

        return spark_frame(self.spark, table)

    @property
    def table_fqn(self) -> str:
        return ".".join(p for p in (self.config.table_schema, self.config.table_name) if p)

    # ---------------------------------------------------------------- writing

    def write_log_rows(self, log_rows: list[dict[str, Any]] | pa.Table, run_id: str | None = None) -> dict[str, Any]:
        """Append rows (dicts with the log's columns; ``metadata`` may be a dict). Invalid rows raise
        ``WriterValidationError`` naming each row and field, and nothing is written."""
        if type(log_rows).__module__.startswith("pyspark"):  # a Spark DataFrame of log rows
            log_rows = log_rows.toArrow() if hasattr(log_rows, "toArrow") else pa.Table.from_pandas(log_rows.toPandas())
        rows = log_rows.to_pylist() if isinstance(log_rows, pa.Table) else list(log_rows)
        try:
            prepared = self._prepare(rows, run_id)
        except WriterValidationError as error:
            self.logger.warning(f"write_log_rows: {len(rows)} row(s) refused: {error}")
            raise
        return self._commit(prepared)

    def _commit(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Append prepared (valid) rows as one Delta commit."""
        started = time.monotonic()
        table = _arrow(rows)
        self._metrics["total_writes"] += 1
        try:
            version = self.table.append(table, "overwrite" if self.config.write_mode.value == "overwrite" and
                                        not self._metrics["successful_writes"] else "append")
        except Exception as error:
            self._metrics["failed_writes"] += 1
            self.logger.error(f"write_log_rows: committing {table.num_rows} row(s) to {self.location} failed: "
                              f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
            raise
        seconds = time.monotonic() - started
        self._metrics["successful_writes"] += 1
        self._metrics["total_rows_written"] += table.num_rows
        self._metrics["total_duration_secs"] += seconds
        self._metrics["memory_usage_peak_mb"] = max(self._metrics["memory_usage_peak_mb"], _rss_mb())
        self.logger.debug(f"write_log_rows: {table.num_rows} row(s) -> {self.location} version {version} in "
                          f"{seconds:.3f} s")
        return {"success": True, "rows_written": table.num_rows, "table_fqn": self.table_fqn,
                "table_location": self.location, "version": version, "duration_secs": round(seconds, 3)}

    def write_step_results(self, step_results: list[StepResult] | dict[str, StepResult],
                           execution_context: ExecutionContext | None = None, run_id: str | None = None) -> dict:
        steps = list(step_results.values()) if isinstance(step_results, dict) else list(step_results)
        return self.write_log_rows([_step_row(step, execution_context or step.execution_context, run_id)
                                    for step in steps], run_id)

    def write_execution_result(self, execution_result: ExecutionResult, run_id: str | None = None) -> dict:
        run = run_id or execution_result.context.execution_id or uuid.uuid4().hex
        return self.write_log_rows(_execution_rows(execution_result, run), run)

    def write_execution_result_batch(self, execution_results: list[ExecutionResult], run_id: str | None = None,
                                     batch_size: int | None = None) -> dict[str, Any]:
        """Several runs, about ``batch_size`` rows per Delta commit, each run whole in one commit.

        Partial failure, as the seed promises: each run is validated on its own, the valid ones are stored and
        each invalid one comes back in ``failed_executions`` as a :class:`FailedExecution` (the run itself, with
        ``reason`` and its ``index`` in the input). Correct it and pass it back: it is stored once. A run whose
        commit fails (the table unreachable) is reported the same way and nothing of it is stored."""
        started, size = time.monotonic(), batch_size or self.config.batch_size
        failed: list[FailedExecution] = []
        commits: list[tuple[list[int], list[dict[str, Any]]]] = []  # (input positions, prepared rows) per commit
        for number, result in enumerate(execution_results):
            if not isinstance(result, ExecutionResult):
                failed.append(FailedExecution.of(result, f"execution {number} is a {type(result).__name__}, not an "
                                                         "ExecutionResult", number))
                continue
            run = run_id and f"{run_id}-{number}" or result.context.execution_id or uuid.uuid4().hex
            try:
                rows = self._prepare(_execution_rows(result, run), run)
            except WriterValidationError as error:
                failed.append(FailedExecution.of(result, str(error), number))
                continue
            if not commits or len(commits[-1][1]) + len(rows) > size and commits[-1][1]:
                commits.append(([], []))
            commits[-1][0].append(number)
            commits[-1][1].extend(rows)
        written = 0
        for positions, rows in commits:
            try:
                written += self._commit(rows)["rows_written"]
            except Exception as error:
                reason = f"commit failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                failed += [FailedExecution.of(execution_results[p], reason, p) for p in positions]
        failed.sort(key=lambda f: f.index)
        for failure in failed:
            self.logger.warning(f"write_execution_result_batch: execution {failure.index} not stored: {failure.reason}")
        self.logger.debug(f"write_execution_result_batch: {len(execution_results) - len(failed)} of "
                          f"{len(execution_results)} execution(s) stored, {written} row(s) in {len(commits)} commit(s)")
        return {"success": not failed, "total_executions": len(execution_results),
                "successful_writes": len(execution_results) - len(failed),
                "failed_writes": len(failed), "failed_executions": failed, "rows_written": written,
                "batch_duration_secs": round(time.monotonic() - started, 3)}

    def _to_table(self, rows: list[dict[str, Any]], run_id: str | None) -> pa.Table:
        return _arrow(self._prepare(rows, run_id))

    def _prepare(self, rows: list[dict[str, Any]], run_id: str | None) -> list[dict[str, Any]]:
        """The rows checked and completed (ids, rates, durations, dates); raises ``WriterValidationError`` naming
        every row and field that is wrong."""
        problems, now, prepared = [], datetime.now(timezone.utc), []
        for number, row in enumerate(rows):
            if not isinstance(row, dict):
                raise WriterValidationError(f"log row {number} is a {type(row).__name__}, not a dict")
            unknown = sorted(set(row) - set(LOG_SCHEMA.names))
            if unknown:
                problems.append(f"row {number}: unknown field(s) {unknown}")
            row = {**row}
            row.setdefault("run_id", run_id)
            if row.get("success") is None:  # a row that does not say: failed when it carries an error
                row["success"] = row.get("error_message") is None
            problems += [f"row {number}: {p}" for p in _row_problems(row)]
            row["validation_rate"] = _validation_rate(row)
            if isinstance(row.get("metadata"), (dict, list)):
                row["metadata"] = json.dumps(row["metadata"], default=str)
            start = row.get("start_time")
            if row.get("duration_secs") is None and start and row.get("end_time"):
                row["duration_secs"] = (row["end_time"] - start).total_seconds()
            row["log_id"] = row.get("log_id") or uuid.uuid4().hex
            row["logged_at"] = now
            row["log_date"] = (start.date() if isinstance(start, datetime) else start) if start else now.date()
            prepared.append(row)
        if problems:
            raise WriterValidationError("log rows refused: " + "; ".join(problems[:10]),
                                        context={"rows": len(rows)},
                                        suggestions=["run_id must be set", "durations and counts are >= 0",
                                                     "validation_rate is a percentage"])
        return prepared

    # ---------------------------------------------------------------- reading

    def show_logs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Print the newest ``limit`` rows as a table; returns them."""
        with self._logs() as conn:
            rows = conn.sql(f"SELECT run_id, pipeline_id, phase, step_name, start_time, round(duration_secs, 2) AS "
                            f"duration_secs, rows_processed, rows_written, validation_rate, success FROM logs ORDER BY "
                            f"coalesce(start_time, logged_at) DESC LIMIT {int(limit)}")
            text = str(rows)
            result = [dict(zip(rows.columns, r)) for r in rows.fetchall()]
        print(text)
        return result

    def get_table_info(self) -> dict[str, Any]:
        if not self.table.exists():
            return {"table_fqn": self.table_fqn, "location": self.location, "exists": False, "row_count": 0,
                    "columns": LOG_SCHEMA.names}
        delta = self.table.delta()
        actions = delta.get_add_actions(flatten=True)
        sizes = pa.table(actions)["size_bytes"].to_pylist() if actions.num_rows else []
        return {"table_fqn": self.table_fqn, "location": self.location, "exists": True,
                "row_count": self.table.count_rows(), "columns": LOG_SCHEMA.names,
                "version": delta.version(), "files": len(sizes), "size_mb": round(sum(sizes) / 1e6, 3),
                "partition_columns": delta.metadata().partition_columns}

    def get_table_history(self, limit: int = 10) -> dict[str, Any]:
        if not self.table.exists():
            return {"history_available": False, "table_fqn": self.table_fqn, "total_versions": 0, "versions": []}
        from deltalake import DeltaTable

        delta = self.table.delta()
        versions = []
        for entry in delta.history(limit):
            metrics = entry.get("operationMetrics") or {}
            at_version = DeltaTable(self.location, version=entry["version"],
                                    storage_options=self.table.storage_options).get_add_actions(flatten=True)
            size = sum(pa.table(at_version)["size_bytes"].to_pylist()) if at_version.num_rows else 0
            versions.append({"version": entry.get("version"), "operation": entry.get("operation"),
                             "timestamp": datetime.fromtimestamp(entry["timestamp"] / 1000, timezone.utc)
                             if entry.get("timestamp") else None,
                             "row_count": int(metrics.get("num_added_rows") or metrics.get("num_target_rows_inserted")
                                              or 0),  # rows this version added
                             "files_added": int(metrics.get("num_added_files") or 0),
                             "size_mb": round(size / 1e6, 4)})  # the table's size at this version
        return {"history_available": True, "table_fqn": self.table_fqn, "total_versions": delta.version() + 1,
                "versions": versions}

    # ---------------------------------------------------------------- maintenance

    def optimize_table(self, enable_partitioning: bool = True, enable_compression: bool = True,
                       enable_zordering: bool = True, enable_vacuum: bool = True,
                       retention_hours: float | None = None) -> dict[str, Any]:
        """Compact small files (or Z-order them by step and time), then vacuum the files no version within the
        retention needs: Delta's default (7 days) unless ``retention_hours`` says otherwise, so a reader of an
        earlier version (time travel, or a read in progress) keeps its files."""
        started = time.monotonic()
        if not self.table.exists():
            return {"optimized": False, "reason": f"no log table at {self.location} yet", "optimizations_applied": []}
        delta = self.table.delta()
        files_before, applied = len(delta.file_uris()), []
        if enable_zordering:
            delta.optimize.z_order(["pipeline_id", "step_name", "start_time"])
            applied.append("z_order(pipeline_id, step_name, start_time)")
        elif enable_compression:
            delta.optimize.compact()
            applied.append("compact")
        if enable_vacuum:
            if retention_hours is None:
                removed = self.table.delta().vacuum(dry_run=False)  # Delta's retention (7 days), enforced
            else:
                removed = self.table.delta().vacuum(retention_hours=int(retention_hours),
                                                    enforce_retention_duration=False, dry_run=False)
            applied.append(f"vacuum ({len(removed)} files removed, retention "
                           f"{'7 days' if retention_hours is None else f'{retention_hours:g} h'})")
        if enable_partitioning:
            applied.append("partitioned by log_date")
        return {"optimized": True, "optimizations_applied": applied, "files_before": files_before,
                "files_after": len(self.table.delta().file_uris()),
                "optimization_duration_secs": round(time.monotonic() - started, 3)}

    def maintain_table(self, options: dict[str, bool] | None = None) -> dict[str, Any]:
        """``vacuum`` (files no version needs, older than ``retention_hours``, default 168), ``analyze`` (the row
        count and size), ``validate_schema`` (the table's columns are the log's)."""
        options = {"vacuum": True, "analyze": True, "validate_schema": True, **(options or {})}
        started, done = time.monotonic(), []
        delta = self.table.delta()
        if options.get("vacuum"):
            hours = int(options.get("retention_hours", 168))
            removed = delta.vacuum(retention_hours=hours, enforce_retention_duration=False, dry_run=False)
            done.append(f"vacuum: {len(removed)} file(s) older than {hours} h removed")
        if options.get("analyze"):
            info = self.get_table_info()
            done.append(f"analyze: {info['row_count']} rows in {info['files']} file(s), {info['size_mb']} MB")
        if options.get("validate_schema"):
            names = delta.schema().to_arrow().names if hasattr(delta.schema(), "to_arrow") else []
            missing = [n for n in LOG_SCHEMA.names if n not in names]
            if missing:
                raise WriterTableError(f"the log table at {self.location} lacks columns {missing}")
            done.append("validate_schema: all columns present")
        return {"maintained": True, "maintenance_operations": done,
                "maintenance_duration_secs": round(time.monotonic() - started, 3)}

    # ---------------------------------------------------------------- judging

    def validate_log_data_quality(self, log_rows: list[dict[str, Any]] | None = None,
                                  validation_rules: dict[str, list] | None = None) -> dict[str, Any]:
        """``log_rows`` (default: the whole table) against the built-in rules and ``validation_rules`` (column →
        SQL predicates, or pyspark Columns); see ``analytics.validate_quality``."""
        from etl_platform.execution_log import analytics

        rows = self._to_table(list(log_rows), None) if log_rows is not None else self.table.read()
        with self._logs() as conn:
            return analytics.validate_quality(conn, rows, self.config, validation_rules)

    def detect_anomalies(self, log_rows: list[dict[str, Any]] | None = None, days: int | None = None
                         ) -> dict[str, Any]:
        """``log_rows`` (default: the rows of the newest run) against each step's history in the table."""
        from etl_platform.execution_log import analytics

        with self._logs(days) as conn:
            if log_rows is not None:
                candidates = self._to_table(list(log_rows), None)
            else:
                candidates = conn.sql("SELECT * FROM logs WHERE run_id = (SELECT run_id FROM logs ORDER BY "
                                      "coalesce(start_time, logged_at) DESC LIMIT 1)").to_arrow_table()
            anomalies = analytics.detect(conn, candidates, self.config) if self.config.enable_anomaly_detection \
                else []
        return {"anomalies_detected": bool(anomalies), "anomaly_count": len(anomalies), "anomalies": anomalies,
                "rows_checked": candidates.num_rows, "min_history": self.config.anomaly_min_history,
                "threshold": self.config.anomaly_threshold}

    def generate_summary_report(self, days: int = 30) -> dict[str, Any]:
        from etl_platform.execution_log import analytics

        with self._logs(days) as conn:
            return analytics.summary(conn, days)

    def analyze_performance_trends(self, days: int = 90) -> dict[str, Any]:
        from etl_platform.execution_log import analytics

        with self._logs(days) as conn:
            return analytics.trends(conn, days)

    def export_analytics_data(self, format: str = "json", limit: int | None = None,
                              filters: dict[str, Any] | None = None, output_dir: str | None = None) -> dict[str, Any]:
        """The rows (matching ``filters``: column → value) as a json / csv / parquet file under ``output_dir``
        (default ``$ETL_PLATFORM_HOME/exports/logs``)."""
        from etl_platform.execution_log import analytics

        folder = Path(output_dir) if output_dir else settings.platform_home() / "exports" / "logs"
        with self._logs() as conn:
            return analytics.export(conn, folder, format, limit, filters)

    # ---------------------------------------------------------------- metrics

    def get_metrics(self) -> dict[str, Any]:
        """This writer's own writes, and the table's average validation rate (from the data)."""
        m = dict(self._metrics)
        m["success_rate_percent"] = round(100 * m["successful_writes"] / m["total_writes"], 2) if m["total_writes"] \
            else 100.0
        m["average_duration_secs"] = round(m["total_duration_secs"] / m["successful_writes"], 3) \
            if m["successful_writes"] else 0.0
        with self._logs() as conn:
            rate = conn.execute("SELECT avg(validation_rate) FROM logs").fetchone()[0]
        m["average_validation_rate"] = round(rate, 2) if rate is not None else None
        return m

    def get_memory_usage(self) -> dict[str, float]:
        import psutil

        process, memory = psutil.Process(), psutil.virtual_memory()
        info = process.memory_info()
        return {"rss_mb": round(info.rss / 1e6, 1), "vms_mb": round(info.vms / 1e6, 1),
                "percent": round(process.memory_percent(), 2), "available_mb": round(memory.available / 1e6, 1)}


def _mode(context: ExecutionContext | None) -> str | None:
    if context is None or context.mode is None:
        return None
    return getattr(context.mode, "value", str(context.mode))


def _step_row(step: StepResult, context: ExecutionContext | None, run_id: str | None) -> dict[str, Any]:
    return {"run_id": run_id or (context.execution_id if context else None),
            "pipeline_id": context.pipeline_id if context else None, "execution_mode": _mode(context),
            "phase": step.phase, "step_name": step.step_name, "start_time": step.start_time,
            "end_time": step.end_time, "duration_secs": step.duration_secs, "rows_processed": step.rows_processed,
            "rows_written": step.rows_written, "valid_rows": step.valid_rows, "invalid_rows": step.invalid_rows,
            "validation_rate": step.validation_rate, "success": step.success, "error_message": step.error_message,
            "metadata": step.metadata or None}


def _execution_rows(result: ExecutionResult, run: str) -> list[dict[str, Any]]:
    """A run's rows: one per step; a run that failed before any step still leaves one row."""
    context = result.context
    rows = [_step_row(step, context, run) for step in result.step_results]
    if not rows:
        rows = [{"run_id": run, "pipeline_id": context.pipeline_id, "phase": "job", "step_name": "(run)",
                 "execution_mode": _mode(context), "start_time": context.start_time,
                 "end_time": context.end_time, "duration_secs": result.total_duration_secs,
                 "success": result.success, "error_message": result.error_message}]
    return rows


# The log schema's columns in DuckDB's types.
_DUCKDB_TYPES = {pa.string(): "VARCHAR", pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ", pa.float64(): "DOUBLE",
                 pa.int64(): "BIGINT", pa.bool_(): "BOOLEAN", pa.date32(): "DATE"}


def _arrow(rows: list[dict[str, Any]]) -> pa.Table:
    """Prepared log rows (Python values) as an Arrow table of the log schema, converted by DuckDB: pyarrow's
    own conversion from Python (``pa.array``) imports pandas, ~0.3 s of each health run and sensor tick."""
    columns = [[row.get(field.name) for row in rows] for field in LOG_SCHEMA]
    select = ", ".join(f'CAST(unnest(${number}) AS {_DUCKDB_TYPES[field.type]}) AS "{field.name}"'
                       for number, field in enumerate(LOG_SCHEMA, start=1))
    try:
        with duckdb.connect() as conn:
            conn.execute("SET TimeZone = 'UTC'")  # naive datetimes are UTC, as pyarrow took them
            return conn.sql(f"SELECT {select}", params=columns).to_arrow_table().cast(LOG_SCHEMA)
    except (duckdb.Error, pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise WriterValidationError(f"log rows refused: {str(error).splitlines()[0]}") from error


# Text columns checked by _row_problems (run_id has its own rule; metadata is JSON text made from a dict or list).
_TEXT_FIELDS = [f.name for f in LOG_SCHEMA if f.type == pa.string() and f.name not in ("run_id", "metadata")]


def _row_problems(row: dict[str, Any]) -> list[str]:
    problems = []
    if not row.get("run_id") or not isinstance(row["run_id"], str):
        problems.append(f"run_id {row.get('run_id')!r} must be a non-empty text")
    for name in ("duration_secs", "rows_processed", "rows_written", "valid_rows", "invalid_rows"):
        value = row.get(name)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
            problems.append(f"{name} {value!r} must be a number >= 0")
    rate = row.get("validation_rate")
    if rate is not None and (not isinstance(rate, (int, float)) or not 0 <= rate <= 100):
        problems.append(f"validation_rate {rate!r} must be a percentage 0-100")
    processed, valid, invalid = row.get("rows_processed"), row.get("valid_rows"), row.get("invalid_rows")
    if isinstance(processed, int) and isinstance(valid, int) and valid > processed:
        problems.append(f"valid_rows {valid} exceed rows_processed {processed}")
    if isinstance(processed, int) and isinstance(valid, int) and isinstance(invalid, int) and \
            valid + invalid != processed:
        problems.append(f"valid_rows {valid} + invalid_rows {invalid} != rows_processed {processed}")
    for name in ("start_time", "end_time"):
        value = row.get(name)
        if value is not None and not isinstance(value, (datetime, date)):
            problems.append(f"{name} {value!r} must be a datetime")
    for name in _TEXT_FIELDS:
        value = row.get(name)
        if value is not None and not isinstance(value, str):
            problems.append(f"{name} {value!r} must be a text")
    if row.get("success") is not None and not isinstance(row["success"], bool):
        problems.append(f"success {row['success']!r} must be true or false")
    return problems


def _validation_rate(row: dict[str, Any]) -> float | None:
    """valid / processed from the counts when they are there (a given rate must agree within 0.01 points)."""
    processed, valid, invalid = row.get("rows_processed"), row.get("valid_rows"), row.get("invalid_rows")
    if valid is None and invalid is not None and processed is not None:
        valid = processed - invalid
    if processed and valid is not None:
        computed = round(100.0 * valid / processed, 4)
        given = row.get("validation_rate")
        if given is not None and abs(given - computed) > 0.01:
            raise WriterValidationError(f"validation_rate {given} disagrees with valid_rows/rows_processed = "
                                        f"{valid}/{processed} = {computed} % (run {row.get('run_id')}, step "
                                        f"{row.get('step_name')})")
        return computed
    return row.get("validation_rate")


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
