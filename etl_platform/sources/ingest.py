"""Landing any source into ``bronze.<name>``: staged batches swapped in with the source's state, in one transaction.

The batches go to a temporary staging table (DuckDB spills it to disk, so memory stays bounded by the
batch size); only when the read is complete do the bronze rows, the quarantined records and the new
state change — together. A read that fails halfway changes none of them, and the next run starts from
the same state. Queues acknowledge after that commit (``Extraction.acknowledge``); if the process dies
between the two, the redelivered messages are recognised by ``_message_id`` and not inserted again.

Every row carries ``_ingested_at`` and ``_source_position`` (where in the source it came from). Records
that could not be converted are in ``bronze._source_quarantine`` with their position and the reason.

Any warehouse engine: the batches are staged in DuckDB (the warehouse's own connection on the DuckDB engine,
a private in-memory one otherwise); on another engine the staged rows are bulk-loaded into a temporary table
there inside the commit's transaction, and the landing statements run on the engine.
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
from etl_platform.warehouse.duckdb_warehouse import session_of, staging_connection

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


LANDING_ENGINES = ("duckdb", "postgres")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ensure_tables(conn) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS bronze")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (source VARCHAR PRIMARY KEY, state JSON NOT NULL, "
                 "updated_at TIMESTAMPTZ NOT NULL)")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {QUARANTINE_TABLE} (source VARCHAR NOT NULL, position VARCHAR, "
                 "reason VARCHAR NOT NULL, record VARCHAR, detected_at TIMESTAMPTZ NOT NULL)")


def load_state(conn, name: str) -> dict:
    import json

    conn = session_of(conn)
    ensure_tables(conn)
    row = conn.execute(f"SELECT CAST(state AS VARCHAR) FROM {STATE_TABLE} WHERE source = ?", [name]).fetchone()
    return json.loads(row[0]) if row else {}


def validate_name(name: str) -> str:
    if not name or not name.replace("_", "").isalnum() or name[0].isdigit():
        raise ConfigurationError(f"source name {name!r}: use letters, digits and _ (it becomes the table bronze.{name})")
    return name


def ingest(conn, source: Source, name: str, *, full_refresh: bool = False,
           log: Callable[[str], None] | None = None) -> IngestResult:
    """Read ``source`` from its stored state and land what it yields in ``bronze.<name>`` of the warehouse
    session ``conn`` (DuckDB or PostgreSQL)."""
    validate_name(name)
    conn = session_of(conn)
    if conn.engine not in LANDING_ENGINES:
        raise ConfigurationError(
            f"source {name!r}: sources land in bronze on the {' and '.join(LANDING_ENGINES)} warehouses; the "
            f"{conn.engine} warehouse does not take them yet (its tables have no transactions to land a batch, its "
            "quarantine and its state together). Land them on DuckDB or PostgreSQL (docs/engines.md).")
    staging = staging_connection(conn)
    log = log or (lambda message: None)
    table = f"bronze.{name}"
    stage, rejects = f"_source_stage_{name}", f"_source_rejects_{name}"
    started = time.monotonic()
    result = IngestResult(table, state_before={} if full_refresh else load_state(conn, name))
    ingested_at = datetime.now(timezone.utc)
    plan = source.landing_plan()
    staging.execute(f"DROP TABLE IF EXISTS {stage}")
    staging.execute(f"CREATE OR REPLACE TEMP TABLE {rejects} (position VARCHAR, reason VARCHAR, record VARCHAR)")
    staged = False
    last_report = time.monotonic()
    log(f"{name}: reading {source.describe()}" + (" (full refresh)" if full_refresh else ""))
    try:
        with source.extract(result.state_before) as extraction:
            for batch in extraction:
                result.batches += 1
                if batch.rejected:
                    staging.executemany(f"INSERT INTO {rejects} VALUES (?, ?, ?)",
                                     [(r.position, r.reason, r.record) for r in batch.rejected])
                    result.rows_quarantined += len(batch.rejected)
                if batch.data is not None:
                    data = _with_ingested_at(batch.data, ingested_at)
                    _stage_batch(staging, stage, data, first=not staged)
                    staged = True
                    result.rows_read += batch.data.num_rows
                if time.monotonic() - last_report >= PROGRESS_EVERY_SECONDS:
                    last_report = time.monotonic()
                    log(f"{name}: {result.rows_read:,} rows read in {result.batches} batches "
                        f"({time.monotonic() - started:.0f} s)")
            result.state_after = extraction.state
            result.rows_written = _commit(conn, staging, name, table, stage, rejects, plan, staged,
                                          result.state_after, ingested_at)
            extraction.acknowledge()
    finally:
        staging.execute(f"DROP TABLE IF EXISTS {stage}")
        staging.execute(f"DROP TABLE IF EXISTS {rejects}")
        if staging is not getattr(conn, "raw", None):
            staging.close()
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
        _add_missing_columns(conn, stage, _columns(conn, view))
        conn.execute(f"INSERT INTO {stage} BY NAME SELECT * FROM {view}")
    finally:
        conn.unregister(view)


def _columns(conn: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """``{column: DuckDB type}`` of a relation of a DuckDB connection."""
    return {row[0]: row[1] for row in conn.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}


def _add_missing_columns(conn, target: str, columns: dict[str, str]) -> list[str]:
    """Columns the source now has and the target lacks are added (schemas grow; older rows hold NULL there).
    ``conn`` is a warehouse session (its ``columns``) or a DuckDB connection (the staging table)."""
    present = {name for name, _ in conn.columns(target)} if hasattr(conn, "columns") else set(_columns(conn, target))
    added = []
    for column, column_type in columns.items():
        if column not in present:
            engine = getattr(conn, "engine", "duckdb")
            conn.execute(f"ALTER TABLE {target} ADD COLUMN {quote(column)} {_engine_type(column_type, engine)}")
            added.append(column)
    return added


def _commit(conn, staging, name: str, table: str, stage: str, rejects: str, plan: LandingPlan, staged: bool,
            state: dict, ingested_at: datetime) -> int:
    """Land the staged rows, the quarantined records and the new state in one transaction of the warehouse."""
    written = 0
    local = conn.engine == "duckdb"
    with conn.transaction():
        exists = conn.table_exists(table)
        if staged:
            columns = _columns(staging, stage)
            if not local:  # the staged rows travel to a temporary table of the engine first
                conn.execute(f"DROP TABLE IF EXISTS {stage}")
                conn.execute(f"CREATE TEMP TABLE {stage} ({_column_definitions(columns, conn.engine)})")
                conn.append_arrow(stage, staging.sql(f"SELECT * FROM {stage}").to_arrow_reader(100_000))
            written = conn.execute(f"SELECT count(*) FROM {stage}").fetchone()[0]
            if exists and plan.mode == "replace":
                conn.execute(f"DROP TABLE {table}")
            if not exists or plan.mode == "replace":
                conn.execute(f"CREATE TABLE {table} AS SELECT * FROM {stage}")
            else:
                _add_missing_columns(conn, table, columns)
                written = _land(conn, table, stage, columns, plan)
        elif plan.mode == "replace" and exists:
            conn.execute(f"DELETE FROM {table}")
        if local:
            conn.execute(f"INSERT INTO {QUARANTINE_TABLE} SELECT ?, position, reason, record, ? FROM {rejects}",
                         [name, ingested_at])
        else:
            quarantined = staging.sql(f"SELECT ? AS source, position, reason, record, ? AS detected_at "
                                      f"FROM {rejects}", params=[name, ingested_at])
            conn.append_arrow(QUARANTINE_TABLE, quarantined.to_arrow_reader(100_000))
        conn.execute(f"DELETE FROM {STATE_TABLE} WHERE source = ?", [name])
        conn.execute(f"INSERT INTO {STATE_TABLE} VALUES (?, ?, ?)", [name, state_json(state), ingested_at])
    return written


def _column_definitions(columns: dict[str, str], engine: str) -> str:
    return ", ".join(f"{quote(name)} {_engine_type(column_type, engine)}" for name, column_type in columns.items())


def _engine_type(duckdb_type: str, engine: str) -> str:
    """A DuckDB column type written for ``engine`` (PostgreSQL has no unsigned, HUGEINT or STRUCT: the nearest)."""
    if engine == "duckdb":
        return duckdb_type
    import sqlglot

    from etl_platform.warehouse.dialects import SQLGLOT_DIALECTS

    upper = duckdb_type.upper()
    if upper.startswith(("STRUCT", "MAP", "UNION")) or upper.endswith("[]") or upper == "JSON":
        return "JSONB" if engine == "postgres" else "STRING"
    if upper in ("UBIGINT", "HUGEINT", "UHUGEINT"):
        return "NUMERIC(38, 0)" if engine == "postgres" else "DECIMAL(38, 0)"
    return sqlglot.exp.DataType.build(duckdb_type, dialect="duckdb").sql(dialect=SQLGLOT_DIALECTS[engine])


def _land(conn, table: str, stage: str, columns: dict[str, str], plan: LandingPlan) -> int:
    keys = plan.keys or tuple(c for c in columns if c not in LINEAGE_COLUMNS)
    missing = [k for k in keys if k not in columns]
    if missing:
        raise ConfigurationError(f"{table}: key column(s) {', '.join(missing)} are not in the source's columns "
                                 f"({', '.join(columns)})")
    match = " AND ".join(f"t.{quote(k)} IS NOT DISTINCT FROM s.{quote(k)}" for k in keys)
    names = ", ".join(quote(c) for c in columns)
    if plan.mode == "merge":
        conn.execute(f"DELETE FROM {table} AS t WHERE EXISTS (SELECT 1 FROM {stage} AS s WHERE {match})")
        conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage}")
        return conn.execute(f"SELECT count(*) FROM {stage}").fetchone()[0]
    before = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    # A message delivered twice within one read is staged twice: keep its first delivery.
    conn.query(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} AS s "
               f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {match}) "
               f"QUALIFY row_number() OVER (PARTITION BY {', '.join('s.' + quote(k) for k in keys)}) = 1",
               f"landing {table}")
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - before
