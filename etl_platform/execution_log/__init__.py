"""The execution log (seed 001's ``LogWriter``): every run, step and check in a Delta Lake table, with data-quality
rates, anomaly detection per step, summaries, trends, exports and table maintenance (docs/execution_log.md)."""

from etl_platform.execution_log.models import (
    ExecutionContext,
    ExecutionMode,
    ExecutionResult,
    FailedExecution,
    StepResult,
    WriteMode,
    WriterConfig,
    WriterConfigurationError,
    WriterError,
    WriterTableError,
    WriterValidationError,
)
from etl_platform.execution_log.pipeline_logger import PipelineLogger
from etl_platform.execution_log.writer import LogWriter

__all__ = ["LogWriter", "PipelineLogger", "FailedExecution", "WriterConfig", "WriteMode", "ExecutionContext",
           "ExecutionMode", "ExecutionResult", "StepResult", "WriterError", "WriterConfigurationError",
           "WriterValidationError", "WriterTableError"]
