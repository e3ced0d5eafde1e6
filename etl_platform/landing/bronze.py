"""Lossless loading of landing files into bronze tables, one file at a time, idempotently.

Each bronze table keeps every input record as text plus ``_source_file``, ``_row_number`` (1-based
within the file) and ``_ingested_at``. The manifest ``bronze._ingested_files`` remembers each file's
fingerprint: an unchanged file is skipped, a changed one has its rows replaced in one transaction,
and a file that left the landing zone has its rows removed. Each commit is the ingestion engine's
(``sources/ingest.py``, disposition ``replace_by_file``), the manifest row in the same transaction.
Files that cannot be read at all are recorded there too, with their status and the reason (the view
``bronze.rejected_files``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

from etl_platform.landing import csv_loader, jsonl_loader
from etl_platform.landing.files import LandingFile
from etl_platform.landing.inspect import UnreadableFile, check_text
from etl_platform.landing.staging import STAGE, Staged
from etl_platform.sources.base import LandingPlan
from etl_platform.sources.ingest import StagedCommit
from etl_platform.warehouse.duckdb_warehouse import session_of, staging_connection

MANIFEST = "bronze._ingested_files"
REJECTED_FILES = "bronze.rejected_files"
LINEAGE_COLUMNS = ("_source_file", "_row_number", "_ingested_at")
BY_FILE = LandingPlan("replace_by_file", ("_source_file",))  # a file's rows replace its old ones
ROWS = "_bronze_rows"  # the staged file's bronze rows (a view of the stage)


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

    @property
    def columns(self) -> dict[str, str]:
        """Every column of the bronze table, in order, with its SQL type: the record's text columns, then what the
        loader adds."""
        text = [*self.data_columns, *(("_extra_fields",) if self.format == "csv" else ()), "_parse_error"]
        return {**{name: "VARCHAR" for name in text}, "_source_file": "VARCHAR NOT NULL",
                "_row_number": "BIGINT NOT NULL", "_ingested_at": "TIMESTAMPTZ NOT NULL"}

    def create_table_sql(self) -> str:
        columns = ", ".join(f'"{name}" {sql_type}' for name, sql_type in self.columns.items())
        return f"CREATE TABLE IF NOT EXISTS {self.table} ({columns})"


@dataclass
class FileLoad:
    """What loading one file did."""

    file: LandingFile
    rows: int
    loader: str
    header: list[str] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "loaded"  # loaded, blocked or rejected
    problem: str | None = None


class BronzeLoader:
    """Loads files for one :class:`BronzeSpec` through one open warehouse session, on any engine.

    Files are read (parsed, repaired, numbered) by DuckDB into a staging table: on the DuckDB warehouse that is a
    TEMP table of the warehouse's own connection, copied into bronze by one ``INSERT``; on other engines it is a
    private in-memory DuckDB whose rows stream as Arrow batches into the engine's bulk load (PostgreSQL ``COPY``),
    so the lossless reading rules are the same everywhere. Each file (and each set of files gone) is committed by
    the ingestion engine (:class:`~etl_platform.sources.ingest.StagedCommit`, ``replace_by_file``), its manifest
    row in the same transaction.

    ``policy`` says what happens to a file that cannot be read as its entity (not UTF-8 text, truncated,
    required columns missing): ``block`` records it as blocked (the blocking bronze check then fails
    naming it) and ``reject`` records it as rejected (reported, and the run goes on). Either way none of
    its records are in bronze, and it is listed in the manifest with its size and the reason.
    """

    def __init__(self, conn, spec: BronzeSpec, policy: str = "block"):
        conn = session_of(conn)
        self.conn = conn
        self.spec = spec
        self.policy = policy
        # The DuckDB connection files are staged on: the warehouse's own, or a private one for other engines.
        self.staging = staging_connection(conn)
        conn.execute(spec.create_table_sql())
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MANIFEST} (entity VARCHAR NOT NULL, source_file VARCHAR NOT NULL, "
            "fingerprint VARCHAR NOT NULL, size_bytes BIGINT, header VARCHAR, row_count BIGINT, loader VARCHAR, "
            "ingested_at TIMESTAMPTZ, PRIMARY KEY (entity, source_file))"
        )
        # Warehouses created by earlier releases lack these columns.
        conn.execute(f"ALTER TABLE {MANIFEST} ADD COLUMN IF NOT EXISTS status VARCHAR DEFAULT 'loaded'")
        conn.execute(f"ALTER TABLE {MANIFEST} ADD COLUMN IF NOT EXISTS problem VARCHAR")
        conn.execute(f"ALTER TABLE {spec.table} ADD COLUMN IF NOT EXISTS _parse_error VARCHAR")
        conn.execute(
            f"CREATE OR REPLACE VIEW {REJECTED_FILES} AS SELECT entity, source_file, size_bytes, status, "
            f"problem AS reason, ingested_at AS detected_at FROM {MANIFEST} WHERE status <> 'loaded'"
        )

    def manifest(self) -> dict[str, tuple[str, str]]:
        """``{file name: (fingerprint, status)}`` of the files recorded for this entity."""
        rows = self.conn.execute(
            f"SELECT source_file, fingerprint, status FROM {MANIFEST} WHERE entity = ?", [self.spec.entity]
        ).fetchall()
        return {name: (fingerprint, status) for name, fingerprint, status in rows}

    def ingested_fingerprints(self) -> dict[str, str]:
        return {name: fingerprint for name, (fingerprint, _) in self.manifest().items()}

    def pending(self, files: list[LandingFile], force: bool = False) -> list[LandingFile]:
        """The files to (re)load: new or changed ones, and bad ones recorded under the other policy."""
        if force:
            return list(files)
        seen = self.manifest()
        other_policy = "rejected" if self.policy == "block" else "blocked"
        return [f for f in files if seen.get(f.name, ("", ""))[0] != f.fingerprint
                or seen[f.name][1] == other_policy]

    def forget_missing(self, files: list[LandingFile]) -> list[str]:
        """Remove the rows and manifest entries of files that are no longer in the landing zone.

        Bronze mirrors the landing zone: deleting a file (or renaming it) takes its rows out of bronze, in one
        transaction; this is also the way out for a bad file that blocks the pipeline.
        """
        present = {f.name for f in files}
        gone = sorted(name for name in self.manifest() if name not in present)
        if gone:
            def forget() -> None:
                for name in gone:
                    self.conn.execute(f"DELETE FROM {MANIFEST} WHERE entity = ? AND source_file = ?",
                                      [self.spec.entity, name])

            self._commit(None, tuple(gone), datetime.now(timezone.utc), forget)
        return gone

    def load(self, file: LandingFile) -> FileLoad:
        """Replace ``file``'s rows in the bronze table with its current content, atomically."""
        started = time.monotonic()
        try:
            staged = self._stage(file)
            status, problem = "loaded", None
        except UnreadableFile as unreadable:
            staged = Staged(0, "none", [], "")
            status, problem = ("blocked" if self.policy == "block" else "rejected"), str(unreadable)
        ingested_at = datetime.now(timezone.utc)

        def record() -> None:  # the manifest row commits with the file's rows
            self.conn.execute(f"DELETE FROM {MANIFEST} WHERE entity = ? AND source_file = ?",
                              [self.spec.entity, file.name])
            self.conn.execute(
                f"INSERT INTO {MANIFEST} (entity, source_file, fingerprint, size_bytes, header, row_count, "
                "loader, ingested_at, status, problem) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [self.spec.entity, file.name, file.fingerprint, file.size, json.dumps(staged.header),
                 staged.rows, staged.loader, ingested_at, status, problem],
            )

        try:
            if staged.rows:
                self.staging.execute(f"CREATE OR REPLACE TEMP VIEW {ROWS} AS "
                                     f"{staged.rows_sql(file.name, ingested_at)}")
            self._commit(ROWS if staged.rows else None, (file.name,), ingested_at, record)
        finally:
            self.staging.execute(f"DROP VIEW IF EXISTS {ROWS}")
            self.staging.execute(f"DROP TABLE IF EXISTS {STAGE}")
        return FileLoad(file, staged.rows, staged.loader, staged.header, time.monotonic() - started, status, problem)

    def _commit(self, rows: str | None, files: tuple[str, ...], ingested_at: datetime, record) -> None:
        """The ingestion engine's commit, by file: ``files``' old rows leave bronze and the staged ``rows`` (a
        relation of the staging connection, or None) take their place, with ``record()`` (the manifest), at once."""
        StagedCommit(self.conn, self.staging, self.spec.table, rows or STAGE, BY_FILE, staged=rows is not None,
                     ingested_at=ingested_at, replaced_parts=files, staged_parts=files,
                     declared_columns=True).commit(record)

    def _stage(self, file: LandingFile) -> Staged:
        """Read ``file`` into the staging table; :class:`UnreadableFile` when it cannot be read as its entity."""
        check_text(file)
        if self.spec.format == "jsonl":
            return jsonl_loader.stage(self.staging, file)
        header = csv_loader.read_header(file)
        missing = [c for c in self.spec.expected_columns if header and c not in header]
        if missing and self.policy == "reject":
            raise UnreadableFile(f"lacks column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                                 f"(its header: {', '.join(header)[:300]})")
        return csv_loader.stage(self.staging, self.spec.expected_columns, file, header)

