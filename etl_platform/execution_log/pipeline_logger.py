"""Seed 001's ``PipelineLogger``: a named logger handed to ``LogWriter`` for its debug output.

    from etl_platform.execution_log import LogWriter, PipelineLogger, WriterConfig

    logger = PipelineLogger("WriterDebug", level="DEBUG")
    writer = LogWriter(spark, config, logger)     # or LogWriter(config=config, logger=logger)
    writer.write_log_rows(log_rows)               # "WriterDebug DEBUG write_log_rows: 1 row(s) -> ... version 3"

It is Python's ``logging`` underneath (``logger.logger`` is the ``logging.Logger``): lines go to standard error,
or to ``log_file`` when given, and nowhere else (it does not also propagate to the root logger, so a line is never
printed twice). ``LogWriter`` without a logger logs to ``logging.getLogger("etl_platform.execution_log")``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from etl_platform.execution_log.models import WriterConfigurationError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class PipelineLogger:
    def __init__(self, name: str = "etl_platform", level: str | int = "INFO", log_file: str | Path | None = None):
        if isinstance(level, str) and level.upper() in LEVELS:
            numeric = getattr(logging, level.upper())
        elif isinstance(level, int) and not isinstance(level, bool):
            numeric = level
        else:
            raise WriterConfigurationError(f"PipelineLogger level: {level!r} is not one of {', '.join(LEVELS)}")
        if not isinstance(name, str) or not name:
            raise WriterConfigurationError(f"PipelineLogger name: {name!r} must be a non-empty text")
        self.name = name
        self.logger = logging.getLogger(f"etl_platform.pipeline.{name}")
        self.logger.setLevel(numeric)
        self.logger.propagate = False
        for handler in list(self.logger.handlers):  # a second PipelineLogger of the same name replaces the first's
            if getattr(handler, "_pipeline_logger", False):
                self.logger.removeHandler(handler)
                handler.close()
        handler = logging.FileHandler(log_file, encoding="utf-8") if log_file else logging.StreamHandler(sys.stderr)
        handler._pipeline_logger = True
        handler.setFormatter(logging.Formatter(FORMAT.replace("%(name)s", name)))
        self.logger.addHandler(handler)

    @property
    def level(self) -> str:
        return logging.getLevelName(self.logger.level)

    def set_level(self, level: str) -> None:
        if not isinstance(level, str) or level.upper() not in LEVELS:
            raise WriterConfigurationError(f"PipelineLogger level: {level!r} is not one of {', '.join(LEVELS)}")
        self.logger.setLevel(getattr(logging, level.upper()))

    def debug(self, message: str, *args: Any) -> None:
        self.logger.debug(message, *args)

    def info(self, message: str, *args: Any) -> None:
        self.logger.info(message, *args)

    def warning(self, message: str, *args: Any) -> None:
        self.logger.warning(message, *args)

    def error(self, message: str, *args: Any) -> None:
        self.logger.error(message, *args)

    def critical(self, message: str, *args: Any) -> None:
        self.logger.critical(message, *args)

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging.Logger's name, so either can be passed
        return self.logger.isEnabledFor(level)

    def __repr__(self) -> str:
        return f"PipelineLogger({self.name!r}, level={self.level!r})"
