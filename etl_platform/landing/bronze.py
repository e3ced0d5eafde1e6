"""Lossless loading of landing files into bronze tables, one file at a time, idempotently.

Each bronze table keeps every input record as text plus ``_source_file``, ``_row_number`` (1-based
within the file) and ``_ingested_at``. The manifest ``bronze._ingested_files`` remembers each file's
fingerprint: an unchanged file is skipped, a changed one has its rows replaced in one transaction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

import duckdb

from etl_platform.landing import csv_loader, jsonl_loader
from etl_platform.landing.files import LandingFile
from etl_platform.landing.staging import STAGE

MANIFEST = "bronze._ingested_files"
LINEAGE_COLUMNS = ("_source_file", "_row_number", "_ingested_at")


@dataclass(frozen=True)
class BronzeSpec:
    """What one bronze table holds: which files, in which format, with which expected columns."""

    entity: str
    table: str
    pattern: str
    format: Literal["csv", "jsonl"]
    expected_columns: tuple[str, ...] = ()

    @property
    def data_columns(self) -> tuple[str, ...]:
        return self.expected_columns if self.format == "csv" else (jsonl_loader.LINE_COLUMN,)

    def create_table_sql(self) -> str:
        text_columns = [f'"{name}" VARCHAR' for name in self.data_columns]
        if self.format == "csv":
            text_columns.append("_extra_fields VARCHAR")
        text_columns.append("_parse_error VARCHAR")
        return (
            f"CREATE TABLE IF NOT EXISTS {self.table} ({', '.join(text_columns)}, "
            "_source_file VARCHAR NOT NULL, _row_number BIGINT NOT NULL, _ingested_at TIMESTAMPTZ NOT NULL)"
        )


@dataclass
class FileLoad:
    """What loading one file did."""

    file: LandingFile
    rows: int
    loader: str
    header: list[str] = field(default_factory=list)
    seconds: float = 0.0


class BronzeLoader:
    """Loads files for one :class:`BronzeSpec` through one open warehouse connection."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, spec: BronzeSpec):
        self.conn = conn
        self.spec = spec
        conn.execute(spec.create_table_sql())
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MANIFEST} (entity VARCHAR NOT NULL, source_file VARCHAR NOT NULL, "
            "fingerprint VARCHAR NOT NULL, size_bytes BIGINT, header VARCHAR, row_count BIGINT, loader VARCHAR, "
            "ingested_at TIMESTAMPTZ, PRIMARY KEY (entity, source_file))"
        )

    def ingested_fingerprints(self) -> dict[str, str]:
        rows = self.conn.execute(
            f"SELECT source_file, fingerprint FROM {MANIFEST} WHERE entity = ?", [self.spec.entity]
        ).fetchall()
        return dict(rows)

    def pending(self, files: list[LandingFile], force: bool = False) -> list[LandingFile]:
        """The files that are new or changed since they were ingested (all of them with ``force``)."""
        if force:
            return list(files)
        seen = self.ingested_fingerprints()
        return [f for f in files if seen.get(f.name) != f.fingerprint]

    def load(self, file: LandingFile) -> FileLoad:
        """Replace ``file``'s rows in the bronze table with its current content, atomically."""
        started = time.monotonic()
        if self.spec.format == "csv":
            staged = csv_loader.stage(self.conn, self.spec.expected_columns, file)
        else:
            staged = jsonl_loader.stage(self.conn, file)
        ingested_at = datetime.now(timezone.utc)
        self.conn.execute("BEGIN TRANSACTION")
        try:
            self.conn.execute(f"DELETE FROM {self.spec.table} WHERE _source_file = ?", [file.name])
            if staged.rows:
                self.conn.execute(f"INSERT INTO {self.spec.table} {staged.insert_sql}", [file.name, ingested_at])
            self.conn.execute(
                f"INSERT OR REPLACE INTO {MANIFEST} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [self.spec.entity, file.name, file.fingerprint, file.size, json.dumps(staged.header),
                 staged.rows, staged.loader, ingested_at],
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        finally:
            self.conn.execute(f"DROP TABLE IF EXISTS {STAGE}")
        return FileLoad(file, staged.rows, staged.loader, staged.header, time.monotonic() - started)
