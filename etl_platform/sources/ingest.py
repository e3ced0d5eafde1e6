"""Landing any source into ``bronze.<name>``: staged batches swapped in with the source's state, in one transaction.

The batches go to a temporary staging table (DuckDB spills it to disk, so memory stays bounded by the
batch size); only when the read is complete do the bronze rows, the quarantined records and the new
state change — together. A read that fails halfway changes none of them, and the next run starts from
the same state. Queues acknowledge after that commit (``Extraction.acknowledge``); if the process dies
between the two, the redelivered messages are recognised by ``_message_id`` and not inserted again.

Every row carries ``_ingested_at`` and ``_source_position`` (where in the source it came from). Records
that could not be converted are in ``bronze._source_quarantine`` with their position and the reason.

The commit (:class:`StagedCommit`) is the one the reference pipeline's landing (``landing/bronze.py``) uses too,
one file at a time with the file's manifest row as its state.

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

from etl_platform.arrow_columns import row_numbers
from etl_platform.errors import ConfigurationError
from etl_platform.sources.base import INGESTED_AT_COLUMN, LINEAGE_COLUMNS, POSITION_COLUMN, LandingPlan, Source, \
    state_json
from etl_platform.type_widening import widen
from etl_platform.warehouse.duckdb_warehouse import session_of, staging_connection

STATE_TABLE = "bronze._source_state"
QUARANTINE_TABLE = "bronze._source_quarantine"
PROGRESS_EVERY_SECONDS = 10.0
SEQUENCE_COLUMN = "_stage_seq"  # the staged rows' order in the read (staging only, never in bronze)


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
                 "reason VARCHAR NOT NULL, record VARCHAR, detected_at TIMESTAMPTZ NOT NULL, part VARCHAR)")
    # `part`: the file a record came from (replace_by_file replaces a file's quarantine with its rows)
    conn.execute(f"ALTER TABLE {QUARANTINE_TABLE} ADD COLUMN IF NOT EXISTS part VARCHAR")


def unreadable_parts(conn, name: str) -> list[tuple[str, str]]:
    """The files of source ``name`` in its quarantine whole (``position`` is the file: it could not be read),
    with the reason, in name order. A file leaves when it is read again after a change, or is deleted."""
    return [tuple(row) for row in conn.execute(
        f"SELECT part, reason FROM {QUARANTINE_TABLE} WHERE source = ? AND position = part AND record IS NULL "
        "ORDER BY part", [name]).fetchall()]


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
    staging.execute(f"CREATE OR REPLACE TEMP TABLE {rejects} (position VARCHAR, reason VARCHAR, record VARCHAR, "
                    "part VARCHAR)")
    staged = False
    last_report = time.monotonic()
    log(f"{name}: reading {source.describe()}" + (" (full refresh)" if full_refresh else ""))
    try:
        with source.extract(result.state_before) as extraction:
            for batch in extraction:
                result.batches += 1
                if batch.unreadable_part is not None:  # what this read staged of that file is void
                    _void_part(staging, stage if staged else None, rejects, plan.part_column, batch.unreadable_part)
                if batch.rejected:
                    staging.executemany(f"INSERT INTO {rejects} VALUES (?, ?, ?, ?)",
                                        [(r.position, r.reason, r.record, r.part) for r in batch.rejected])
                if batch.data is not None:
                    data = _with_landing_columns(batch.data, ingested_at, result.rows_read)
                    _stage_batch(staging, stage, rejects, data, not staged, plan.part_column)
                    staged = True
                    result.rows_read += batch.data.num_rows
                if time.monotonic() - last_report >= PROGRESS_EVERY_SECONDS:
                    last_report = time.monotonic()
                    log(f"{name}: {result.rows_read:,} rows read in {result.batches} batches "
                        f"({time.monotonic() - started:.0f} s)")
            result.state_after = extraction.state
            landing = StagedCommit(conn, staging, table, stage, plan, staged=staged, ingested_at=ingested_at,
                                   replaced_parts=tuple(extraction.replaced_parts), quarantine=(name, rejects))
            state = result.state_after
            result.rows_written, result.rows_quarantined = landing.commit(
                lambda: _save_state(conn, name, state, ingested_at))
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


def _with_landing_columns(batch: pa.RecordBatch, ingested_at: datetime, first_sequence: int) -> pa.RecordBatch:
    """The batch with ``_ingested_at`` and, for staging only, its rows' order in the read (``_stage_seq``)."""
    stamps = pa.array([ingested_at] * batch.num_rows, pa.timestamp("us", tz="UTC"))
    sequence = row_numbers(first_sequence, batch.num_rows)
    return pa.RecordBatch.from_arrays([*batch.columns, stamps, sequence],
                                      names=[*batch.schema.names, INGESTED_AT_COLUMN, SEQUENCE_COLUMN])


def _stage_batch(conn: duckdb.DuckDBPyConnection, stage: str, rejects: str, batch: pa.RecordBatch,
                 first: bool, part_column: str | None) -> None:
    """Append a batch to the staging table; its types widen the staging table's (``type_widening``), and a value
    that fits no widening sends its record to the quarantine."""
    view = f"{stage}_batch"
    conn.register(view, batch)
    try:
        if first:
            conn.execute(f"CREATE TEMP TABLE {stage} AS SELECT * FROM {view}")
            return
        misfits = _conform(stage, _columns(conn, stage), _columns(conn, view), conn.execute, "duckdb")
        failing = _quarantine_misfits(conn, view, rejects, misfits, part_column)
        casts = ", ".join(f"TRY_CAST({quote(c)} AS {t}) AS {quote(c)}" for c, t in misfits.items())
        conn.execute(f"INSERT INTO {stage} BY NAME SELECT * {f'REPLACE ({casts})' if casts else ''} FROM {view}"
                     f"{f' WHERE NOT ({failing})' if failing else ''}")
    finally:
        conn.unregister(view)


def _void_part(conn: duckdb.DuckDBPyConnection, stage: str | None, rejects: str, part_column: str | None,
               part: str) -> None:
    """replace_by_file: a file found unreadable part-way through lands nothing: the rows and rejected records of it
    staged so far go (its old rows in bronze go at the commit: it is one of the read's replaced parts)."""
    if part_column is None:
        raise ConfigurationError(f"a source reported {part!r} unreadable, but its disposition is not replace_by_file")
    if stage is not None:
        conn.execute(f"DELETE FROM {stage} WHERE {quote(part_column)} = ?", [part])
    conn.execute(f"DELETE FROM {rejects} WHERE part = ?", [part])


def _columns(conn: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """``{column: DuckDB type}`` of a relation of a DuckDB connection."""
    return {row[0]: row[1] for row in conn.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}


def _conform(target: str, target_columns: dict[str, str], incoming: dict[str, str], alter: Callable[[str], object],
             engine: str) -> dict[str, str]:
    """Make ``target`` (of columns ``target_columns``, DuckDB types) able to take rows of the ``incoming`` columns:
    a column it lacks is added, a column whose type widens is altered (``alter(sql)``, on ``engine``). Returns the
    columns that fit no widening, with the type their values must be cast to (a value that does not fit is
    quarantined)."""
    misfits = {}
    for column, incoming_type in incoming.items():
        if column == SEQUENCE_COLUMN:
            continue
        current = target_columns.get(column)
        if current is None:
            alter(f"ALTER TABLE {target} ADD COLUMN {quote(column)} {_engine_type(incoming_type, engine)}")
            continue
        wider = widen(current, incoming_type)
        if wider is None:
            misfits[column] = current
        elif wider != current.upper():
            using = f" USING CAST({quote(column)} AS {_engine_type(wider, engine)})" if engine == "postgres" else ""
            alter(f"ALTER TABLE {target} ALTER COLUMN {quote(column)} TYPE {_engine_type(wider, engine)}{using}")
    return misfits


def _quarantine_misfits(staging, relation: str, rejects: str, misfits: dict[str, str], part_column: str | None) -> str:
    """Send the rows of ``relation`` holding a value that does not fit its column's type to ``rejects`` (the reason
    names the column, the value and the types); returns the SQL condition that is true for those rows."""
    if not misfits:
        return ""
    relation_columns = _columns(staging, relation)
    fails = {c: f"({quote(c)} IS NOT NULL AND TRY_CAST({quote(c)} AS {t}) IS NULL)" for c, t in misfits.items()}
    reason = "CASE " + " ".join(
        f"WHEN {condition} THEN 'column {c}: value ''' || left(CAST({quote(c)} AS VARCHAR), 200) || "
        f"''' does not fit {misfits[c]} (the column''s type; this batch has {relation_columns[c]})'"
        for c, condition in fails.items()) + " END"
    data = [c for c in relation_columns if c not in (*LINEAGE_COLUMNS, SEQUENCE_COLUMN)]
    record = "to_json(struct_pack(" + ", ".join(f"{quote(c)} := {quote(c)}" for c in data) + "))"
    position = f"CAST({quote(POSITION_COLUMN)} AS VARCHAR)" if POSITION_COLUMN in relation_columns else "NULL"
    part = quote(part_column) if part_column in relation_columns else "NULL"
    failing = " OR ".join(fails.values())
    staging.execute(f"INSERT INTO {rejects} SELECT {position}, {reason}, {record}, CAST({part} AS VARCHAR) "
                    f"FROM {relation} WHERE {failing}")
    return failing


def _inserted(conn, cursor) -> int:
    """The rows an INSERT added, without counting the table: DuckDB answers with a count row, psycopg sets
    ``rowcount``."""
    return cursor.fetchone()[0] if conn.engine == "duckdb" else cursor.rowcount


def _column_definitions(columns: dict[str, str], engine: str) -> str:
    return ", ".join(f"{quote(name)} {_engine_type(column_type, engine)}" for name, column_type in columns.items())


def _engine_type(duckdb_type: str, engine: str) -> str:
    """A DuckDB column type written for ``engine`` (PostgreSQL has no unsigned, HUGEINT or STRUCT: the nearest)."""
    if engine == "duckdb":
        return duckdb_type
    import sqlglot

    from etl_platform.warehouse.dialects import SQLGLOT_DIALECTS

    upper = duckdb_type.upper()
    if upper in ('"NULL"', "NULL"):  # a column NULL in every record so far: text until a type arrives
        return "TEXT" if engine == "postgres" else "STRING"
    if upper.startswith(("STRUCT", "MAP", "UNION")) or upper.endswith("[]") or upper == "JSON":
        return "JSONB" if engine == "postgres" else "STRING"
    if upper in ("UBIGINT", "HUGEINT", "UHUGEINT"):
        return "NUMERIC(38, 0)" if engine == "postgres" else "DECIMAL(38, 0)"
    return sqlglot.exp.DataType.build(duckdb_type, dialect="duckdb").sql(dialect=SQLGLOT_DIALECTS[engine])


def _save_state(conn, name: str, state: dict, at: datetime) -> None:
    conn.execute(f"DELETE FROM {STATE_TABLE} WHERE source = ?", [name])
    conn.execute(f"INSERT INTO {STATE_TABLE} VALUES (?, ?, ?)", [name, state_json(state), at])


class StagedCommit:
    """The ingestion engine's commit: staged rows land in a bronze table by the plan's disposition, together with
    the read's quarantined records and its state, in one transaction of the warehouse.

    Source assets (:func:`ingest`: the state is a row of ``bronze._source_state``) and the reference pipeline's
    landing (``landing/bronze.py``: one commit per file, the state is the file's manifest row) both commit through
    it. The first commit of a table takes the same path as every later one.

    ``stage`` is a relation of the DuckDB connection ``staging``. ``quarantine`` is ``(source name, rejected
    records relation)``, or None for a reader that quarantines nothing at landing. ``staged_parts``
    (replace_by_file): the files the staged rows come from, when the reader knows them (else they are read from the
    stage). ``declared_columns``: the table's columns are declared by its reader (the landing's lossless text), so
    no type widens and, on another engine than DuckDB, the staged rows stream straight into the table (by file,
    the reader names its ``staged_parts``: the stage is not on the engine).
    """

    def __init__(self, conn, staging, table: str, stage: str, plan: LandingPlan, *, staged: bool,
                 ingested_at: datetime, replaced_parts: tuple[str, ...] = (),
                 staged_parts: tuple[str, ...] | None = None, quarantine: tuple[str, str] | None = None,
                 declared_columns: bool = False):
        self.conn, self.staging, self.table, self.stage, self.plan = conn, staging, table, stage, plan
        self.staged, self.ingested_at, self.replaced_parts = staged, ingested_at, replaced_parts
        self.staged_parts = staged_parts
        self.name, self.rejects = quarantine if quarantine else (None, None)
        self.declared_columns = declared_columns
        self.local = conn.engine == "duckdb"
        self.direct = declared_columns and not self.local  # the staged rows stream straight into the table
        if self.direct and plan.part_column and staged_parts is None:  # the engine cannot read the private stage
            raise ValueError("a commit streaming rows straight into the table by file must name its staged_parts")
        self.part_column = plan.part_column

    def commit(self, save_state: Callable[[], object]) -> tuple[int, int]:
        """``(rows written, records quarantined)``; ``save_state()`` runs inside the transaction, after the rows."""
        conn, table, plan = self.conn, self.table, self.plan
        written = 0
        with conn.transaction():
            exists = conn.table_exists(table)
            if self.staged:
                if exists and plan.mode == "replace":
                    conn.execute(f"DROP TABLE {table}")
                    exists = False
                if exists and not self.declared_columns:
                    self._conform_to_bronze()
                columns = {c: t for c, t in _columns(self.staging, self.stage).items() if c != SEQUENCE_COLUMN}
                if not self.local and not self.direct:  # the staged rows go to a temporary table of the engine
                    self._copy_to_engine(self.stage, _columns(self.staging, self.stage))
                if not exists:
                    conn.execute(f"CREATE TABLE {table} ({_column_definitions(columns, conn.engine)})")
                elif self.part_column:
                    self._delete_replaced_parts()
                written = self._stream_in(columns) if self.direct else self._land(columns)
            elif exists and plan.mode == "replace":
                conn.execute(f"DELETE FROM {table}")
            elif exists and self.part_column:
                self._delete_replaced_parts()
            quarantined = self._quarantine() if self.rejects else 0
            save_state()
        return written, quarantined

    def _conform_to_bronze(self) -> None:
        """Widen bronze's columns for the staged types, add the columns it lacks; staged values that fit no
        widening of bronze's type go to the quarantine, and the staged columns take bronze's types."""
        staging, stage = self.staging, self.stage
        misfits = _conform(self.table, self._bronze_types(), _columns(staging, stage), self.conn.execute,
                           self.conn.engine)
        failing = _quarantine_misfits(staging, stage, self.rejects, misfits, self.part_column)
        if failing:
            staging.execute(f"DELETE FROM {stage} WHERE {failing}")
            for column, column_type in misfits.items():
                staging.execute(f"ALTER TABLE {stage} ALTER COLUMN {quote(column)} TYPE {column_type} "
                                f"USING TRY_CAST({quote(column)} AS {column_type})")

    def _bronze_types(self) -> dict[str, str]:
        """Bronze's columns with their exact types in DuckDB's names (PostgreSQL's information_schema drops a
        numeric's precision: its catalogue's ``format_type`` keeps it)."""
        if self.local:
            return dict(self.conn.columns(self.table))
        import sqlglot

        schema_name, table_name = self.table.split(".")
        rows = self.conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a "
            "JOIN pg_class AS c ON c.oid = a.attrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND c.relname = ? AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            [schema_name, table_name]).fetchall()
        return {name: sqlglot.exp.DataType.build(pg_type, dialect="postgres").sql(dialect="duckdb").replace(", ", ",")
                for name, pg_type in rows}

    def _copy_to_engine(self, relation: str, columns: dict[str, str]) -> None:
        conn = self.conn
        conn.execute(f"DROP TABLE IF EXISTS {relation}")
        conn.execute(f"CREATE TEMP TABLE {relation} ({_column_definitions(columns, conn.engine)})")
        conn.append_arrow(relation, self.staging.sql(f"SELECT * FROM {relation}").to_arrow_reader(100_000))

    def _land(self, columns: dict[str, str]) -> int:
        conn, table, stage, plan = self.conn, self.table, self.stage, self.plan
        keys = plan.keys
        missing = [k for k in keys if k not in columns]
        if missing:
            raise ConfigurationError(f"{table}: key column(s) {', '.join(missing)} are not in the source's columns "
                                     f"({', '.join(columns)})")
        names = ", ".join(quote(c) for c in columns)
        staged_names = ", ".join(f"s.{quote(c)}" for c in columns)
        sequence = quote(SEQUENCE_COLUMN)

        def match(on: tuple[str, ...]) -> str:
            return " AND ".join(f"t.{quote(k)} IS NOT DISTINCT FROM s.{quote(k)}" for k in on)

        def by(on: tuple[str, ...]) -> str:
            return ", ".join(f"s.{quote(k)}" for k in on)

        if plan.mode == "merge":
            # Within one read the last record of a key wins (the order the source yielded them).
            conn.execute(f"DELETE FROM {table} AS t WHERE EXISTS (SELECT 1 FROM {stage} AS s WHERE {match(keys)})")
            sql = (f"INSERT INTO {table} ({names}) SELECT {names} FROM (SELECT {staged_names}, row_number() "
                   f"OVER (PARTITION BY {by(keys)} ORDER BY s.{sequence} DESC) AS _latest FROM {stage} AS s) "
                   f"AS s WHERE _latest = 1")
        elif plan.mode == "append" and keys:
            # A record delivered twice (same identity), in this read or an earlier one, lands once: its first delivery.
            sql = (f"INSERT INTO {table} ({names}) SELECT {names} FROM (SELECT {staged_names}, row_number() "
                   f"OVER (PARTITION BY {by(keys)} ORDER BY s.{sequence}) AS _first FROM {stage} AS s "
                   f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {match(keys)})) AS s WHERE _first = 1")
        elif plan.mode == "append":
            # No identity: identical records are distinct records. What was read again (a cursor's window) is
            # recognised by count: the n-th copy of a record lands only when bronze holds fewer than n copies.
            data = tuple(c for c in columns if c not in LINEAGE_COLUMNS)
            grouped = ", ".join(f"t.{quote(c)}" for c in data)
            sql = (f"INSERT INTO {table} ({names}) SELECT {staged_names} FROM (SELECT s.*, row_number() OVER "
                   f"(PARTITION BY {by(data)} ORDER BY s.{sequence}) AS _copy FROM {stage} AS s) AS s "
                   f"LEFT JOIN (SELECT {grouped}, count(*) AS _copies FROM {table} AS t WHERE EXISTS "
                   f"(SELECT 1 FROM {stage} AS s WHERE {match(data)}) GROUP BY {grouped}) AS t ON {match(data)} "
                   f"WHERE s._copy > coalesce(t._copies, 0)")
        else:  # replace (a new table); replace_by_file (the replaced files' old rows are gone already)
            sql = f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage}"
        return _inserted(conn, conn.query(sql, f"landing {table}"))

    def _stream_in(self, columns: dict[str, str]) -> int:
        """The staged rows straight into the engine's table (its bulk load: PostgreSQL's COPY), as Arrow batches."""
        names = ", ".join(quote(c) for c in columns)
        return self.conn.append_arrow(self.table, self.staging.sql(f"SELECT {names} FROM {self.stage}")
                                      .to_arrow_reader(100_000))

    def _delete_replaced_parts(self) -> None:
        """replace_by_file: the old rows of every file this read replaced — changed, emptied or deleted
        (``Extraction.replaced_parts``) — and of every file whose rows were staged."""
        column, parts = quote(self.part_column), set(self.replaced_parts)
        staged = ""
        if self.staged and self.staged_parts is not None:
            parts.update(self.staged_parts)
        elif self.staged:  # the stage is on the engine (its own connection, or the temporary copy there)
            staged = f"{column} IN (SELECT {column} FROM {self.stage})"
        parts = sorted(parts)
        listed = f"{column} IN ({', '.join('?' for _ in parts)})" if parts else ""
        condition = " OR ".join(c for c in (staged, listed) if c)
        if condition:
            self.conn.execute(f"DELETE FROM {self.table} WHERE {condition}", parts)

    def _quarantine(self) -> int:
        """Add this read's rejected records to the quarantine, each once: a record already there (same position,
        reason and text: a redelivered poison message, a re-read bad row) is not added again. A whole-object
        replace replaces the source's quarantine; a changed or deleted file replaces that file's."""
        conn, staging, rejects = self.conn, self.staging, self.rejects
        count = staging.execute(f"SELECT count(*) FROM {rejects}").fetchone()[0]
        if self.plan.mode == "replace":
            conn.execute(f"DELETE FROM {QUARANTINE_TABLE} WHERE source = ?", [self.name])
        elif self.part_column:
            parts = sorted({*self.replaced_parts, *(p for (p,) in staging.execute(
                f"SELECT DISTINCT part FROM {rejects} WHERE part IS NOT NULL").fetchall())})
            if parts:
                conn.execute(f"DELETE FROM {QUARANTINE_TABLE} WHERE source = ? AND part IN "
                             f"({', '.join('?' for _ in parts)})", [self.name, *parts])
        if not count:
            return 0
        if not self.local:
            self._copy_to_engine(rejects, _columns(staging, rejects))
        conn.execute(
            f"INSERT INTO {QUARANTINE_TABLE} (source, position, reason, record, detected_at, part) "
            f"SELECT DISTINCT ?, position, reason, record, CAST(? AS TIMESTAMPTZ), part FROM {rejects} AS r "
            f"WHERE NOT EXISTS (SELECT 1 FROM {QUARANTINE_TABLE} AS q WHERE q.source = ? AND "
            "q.position IS NOT DISTINCT FROM r.position AND q.reason = r.reason AND "
            "q.record IS NOT DISTINCT FROM r.record)", [self.name, self.ingested_at, self.name])
        return count
