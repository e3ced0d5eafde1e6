"""Landing any source into ``bronze.<name>``: staged batches swapped in with the source's state, in one transaction.

The batches go to a temporary staging table (DuckDB spills it to disk, so memory stays bounded by the
batch size); only when the read is complete do the bronze rows, the quarantined records and the new
state change — together. A read that fails halfway changes none of them, and the next run starts from
the same state. Queues acknowledge after that commit (``Extraction.acknowledge``); if the process dies
between the two, the redelivered messages are recognised by ``_message_id`` and not inserted again.

Every row carries ``_ingested_at`` and ``_source_position`` (where in the source it came from). Records
that could not be converted are in ``bronze._source_quarantine`` with their position and the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import duckdb
import pyarrow as pa

from etl_platform.errors import ConfigurationError
from etl_platform.sources.base import INGESTED_AT_COLUMN, LINEAGE_COLUMNS, LandingPlan, Source, state_json

STATE_TABLE = "bronze._source_state"
QUARANTINE_TABLE = "bronze._source_quarantine"
PROGRESS_EVERY_SECONDS = 10.0


@dataclass
class IngestResult:
    table: str
    rows_read: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    batches: int = 0
    state_before: dict = field(default_factory=dict)
    state_after: dict = field(default_factory=dict)
    seconds: float = 0.0


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS bronze")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (source VARCHAR PRIMARY KEY, state JSON NOT NULL, "
                 "updated_at TIMESTAMPTZ NOT NULL)")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {QUARANTINE_TABLE} (source VARCHAR NOT NULL, position VARCHAR, "
                 "reason VARCHAR NOT NULL, record VARCHAR, detected_at TIMESTAMPTZ NOT NULL)")


def load_state(conn: duckdb.DuckDBPyConnection, name: str) -> dict:
    import json

    ensure_tables(conn)
    row = conn.execute(f"SELECT state FROM {STATE_TABLE} WHERE source = ?", [name]).fetchone()
    return json.loads(row[0]) if row else {}


def validate_name(name: str) -> str:
    if not name or not name.replace("_", "").isalnum() or name[0].isdigit():
        raise ConfigurationError(f"source name {name!r}: use letters, digits and _ (it becomes the table bronze.{name})")
    return name


def ingest(conn: duckdb.DuckDBPyConnection, source: Source, name: str, *, full_refresh: bool = False,
           log: Callable[[str], None] | None = None) -> IngestResult:
    """Read ``source`` from its stored state and land what it yields in ``bronze.<name>``."""
    validate_name(name)
    log = log or (lambda message: None)
    table = f"bronze.{name}"
    stage, rejects = f"_source_stage_{name}", f"_source_rejects_{name}"
    started = time.monotonic()
    result = IngestResult(table, state_before={} if full_refresh else load_state(conn, name))
    ingested_at = datetime.now(timezone.utc)
    plan = source.landing_plan()
    conn.execute(f"DROP TABLE IF EXISTS {stage}")
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {rejects} (position VARCHAR, reason VARCHAR, record VARCHAR)")
    staged = False
    last_report = time.monotonic()
    log(f"{name}: reading {source.describe()}" + (" (full refresh)" if full_refresh else ""))
    try:
        with source.extract(result.state_before) as extraction:
            for batch in extraction:
                result.batches += 1
                if batch.rejected:
                    conn.executemany(f"INSERT INTO {rejects} VALUES (?, ?, ?)",
                                     [(r.position, r.reason, r.record) for r in batch.rejected])
                    result.rows_quarantined += len(batch.rejected)
                if batch.data is not None:
                    data = _with_ingested_at(batch.data, ingested_at)
                    _stage_batch(conn, stage, data, first=not staged)
                    staged = True
                    result.rows_read += batch.data.num_rows
                if time.monotonic() - last_report >= PROGRESS_EVERY_SECONDS:
                    last_report = time.monotonic()
                    log(f"{name}: {result.rows_read:,} rows read in {result.batches} batches "
                        f"({time.monotonic() - started:.0f} s)")
            result.state_after = extraction.state
            result.rows_written = _commit(conn, name, table, stage, rejects, plan, staged, result.state_after,
                                          ingested_at)
            extraction.acknowledge()
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {stage}")
        conn.execute(f"DROP TABLE IF EXISTS {rejects}")
    result.seconds = time.monotonic() - started
    log(f"{name}: {result.rows_read:,} rows read, {result.rows_written:,} written to {table}, "
        f"{result.rows_quarantined:,} quarantined, in {result.seconds:.1f} s")
    return result


def _with_ingested_at(batch: pa.RecordBatch, ingested_at: datetime) -> pa.RecordBatch:
    column = pa.array([ingested_at] * batch.num_rows, pa.timestamp("us", tz="UTC"))
    return pa.RecordBatch.from_arrays([*batch.columns, column], names=[*batch.schema.names, INGESTED_AT_COLUMN])


def _stage_batch(conn: duckdb.DuckDBPyConnection, stage: str, batch: pa.RecordBatch, first: bool) -> None:
    view = f"{stage}_batch"
    conn.register(view, batch)
    try:
        if first:
            conn.execute(f"CREATE TEMP TABLE {stage} AS SELECT * FROM {view}")
            return
        _add_missing_columns(conn, stage, view)
        conn.execute(f"INSERT INTO {stage} BY NAME SELECT * FROM {view}")
    finally:
        conn.unregister(view)


def _columns(conn: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    return {row[0]: row[1] for row in conn.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}


def _add_missing_columns(conn: duckdb.DuckDBPyConnection, target: str, source_relation: str) -> list[str]:
    """Columns the source now has and the target lacks are added (schemas grow; older rows hold NULL there)."""
    present = _columns(conn, target)
    added = []
    for column, column_type in _columns(conn, source_relation).items():
        if column not in present:
            conn.execute(f"ALTER TABLE {target} ADD COLUMN {quote(column)} {column_type}")
            added.append(column)
    return added


def _commit(conn, name: str, table: str, stage: str, rejects: str, plan: LandingPlan, staged: bool, state: dict,
            ingested_at: datetime) -> int:
    written = 0
    conn.execute("BEGIN TRANSACTION")
    try:
        exists = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'bronze' "
                              "AND table_name = ?", [name]).fetchone()[0]
        if staged:
            written = conn.execute(f"SELECT count(*) FROM {stage}").fetchone()[0]
            if not exists or plan.mode == "replace":
                conn.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {stage}")
            else:
                _add_missing_columns(conn, table, stage)
                written = _land(conn, table, stage, plan)
        elif plan.mode == "replace" and exists:
            conn.execute(f"DELETE FROM {table}")
        conn.execute(f"INSERT INTO {QUARANTINE_TABLE} SELECT ?, position, reason, record, ? FROM {rejects}",
                     [name, ingested_at])
        conn.execute(f"INSERT OR REPLACE INTO {STATE_TABLE} VALUES (?, ?, ?)", [name, state_json(state), ingested_at])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return written


def _land(conn, table: str, stage: str, plan: LandingPlan) -> int:
    columns = _columns(conn, stage)
    keys = plan.keys or tuple(c for c in columns if c not in LINEAGE_COLUMNS)
    missing = [k for k in keys if k not in columns]
    if missing:
        raise ConfigurationError(f"{table}: key column(s) {', '.join(missing)} are not in the source's columns "
                                 f"({', '.join(columns)})")
    match = " AND ".join(f"t.{quote(k)} IS NOT DISTINCT FROM s.{quote(k)}" for k in keys)
    if plan.mode == "merge":
        conn.execute(f"DELETE FROM {table} t WHERE EXISTS (SELECT 1 FROM {stage} s WHERE {match})")
        conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {stage}")
        return conn.execute(f"SELECT count(*) FROM {stage}").fetchone()[0]
    before = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    # A message delivered twice within one read is staged twice: keep its first delivery.
    conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {stage} s "
                 f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {match}) "
                 f"QUALIFY row_number() OVER (PARTITION BY {', '.join('s.' + quote(k) for k in keys)}) = 1")
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - before
