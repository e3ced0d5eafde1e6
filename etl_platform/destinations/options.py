"""How to write: the settings shared by the writers, the IO managers and the exports, read in one place."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from etl_platform.destinations.dataset import WRITE_MODES
from etl_platform.destinations.errors import ConfigurationError
from etl_platform.destinations.formats import FileFormat
from etl_platform.destinations.merge import Merger

KEYS = frozenset({
    "format", "compression", "csv_delimiter", "csv_header", "partition_by", "mode", "id_columns",
    "modification_column", "upsert_method", "upsert_backend",
})


@dataclass(frozen=True)
class WriteOptions:
    file_format: FileFormat
    mode: str
    partition_by: tuple[str, ...]
    merge: Callable | None  # merge(existing, new) for mode 'upsert'

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], default_format: str = "parquet") -> WriteOptions:
        """Validate ``options`` (keys as in ``KEYS``); every bad value is named with what is allowed."""
        file_format = FileFormat(options.get("format") or default_format, options.get("compression"),
                                 options.get("csv_delimiter", ","), options.get("csv_header", True))
        mode = options.get("mode") or "overwrite"
        if mode not in WRITE_MODES:
            raise ConfigurationError(f"mode: {mode!r} is not one of {', '.join(WRITE_MODES)}")
        merge = None
        if mode == "upsert":
            merge = Merger(options.get("upsert_method") or "by_id", options.get("id_columns") or (),
                           options.get("modification_column"), options.get("upsert_backend") or "pandas").merge
        return cls(file_format, mode, tuple(options.get("partition_by") or ()), merge)
