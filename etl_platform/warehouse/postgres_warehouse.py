"""PostgreSQL as the warehouse: schemas bronze/silver/gold in one database, psycopg 3, bulk COPY loads.

The shared SQL files are compiled for PostgreSQL (``dialects``); the parsing macros are SQL functions
(``sql/macros.postgres.sql``) in the schema ``etl_macros``. Every asset's script runs in one transaction
(PostgreSQL's DDL is transactional, so a replaced table appears whole or not at all).
"""

from __future__ import annotations

import contextlib

import io
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from pydantic import Field

from etl_platform.secrets import scrub, url_password
from etl_platform.warehouse.base import (
    LAYERS,
    EngineSettingError,
    SqlScriptError,
    Warehouse,
    WarehouseSession,
)
from etl_platform.warehouse.dialects import compile_script

MACROS_FILE = "macros.postgres.sql"
MACROS_SCHEMA = "etl_macros"
URL_ENV = "ETL_PLATFORM_POSTGRES_URL"
# Seed 002's .env names, accepted when $ETL_PLATFORM_POSTGRES_URL is not set (engines.warehouse_for).
SEED_ENV = {"host": "POSTGRES_HOST", "port": "POSTGRES_PORT", "database": "POSTGRES_DB", "user": "POSTGRES_USER",
            "password": "POSTGRES_PASSWORD"}

# information_schema's names → the DuckDB names the contract and the checks use.
_TYPE_NAMES = {
    "text": "VARCHAR", "character varying": "VARCHAR", "bigint": "BIGINT", "integer": "INTEGER",
    "smallint": "SMALLINT", "double precision": "DOUBLE", "real": "FLOAT", "boolean": "BOOLEAN", "date": "DATE",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE", "timestamp without time zone": "TIMESTAMP",
    "numeric": "DECIMAL", "json": "JSON", "jsonb": "JSON",
}


_KEYWORDS_BEFORE_A_VALUE = {
    "select", "where", "and", "or", "not", "when", "then", "else", "in", "is", "like", "ilike", "between", "by",
    "limit", "offset", "values", "set", "return", "returning", "as", "on", "having", "distinct", "from", "to",
    "interval", "array", "case", "any", "all", "some", "exists", "coalesce",
}


def placeholders_for_psycopg(sql: str, expected: int) -> str:
    """``sql`` with its ``?`` parameter placeholders as psycopg's ``%s`` (and ``%`` as ``%%``).

    A ``?`` inside a string literal, a quoted identifier, a dollar-quoted body or a comment is text, and
    PostgreSQL's JSONB operators ``?``, ``?|`` and ``?&`` stay operators: a ``?`` is an operator when ``|`` or ``&``
    follows it, or when it follows an operand (a name that is not a keyword, a literal, ``)`` or ``]``). When
    the placeholders found are not ``expected`` in number, the error says so instead of binding the wrong values."""
    out, i, n, found = [], 0, len(sql), 0
    previous = ""  # the last significant token: "operand", "keyword" or the punctuation itself
    while i < n:
        char = sql[i]
        if char in "'\"":
            end = i + 1
            while end < n:
                if sql[end] == char:
                    if end + 1 < n and sql[end + 1] == char:
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i:end + 1].replace("%", "%%"))
            i, previous = end + 1, "operand"
            continue
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end].replace("%", "%%"))
            i = end
            continue
        if char == "$":
            tag_end = sql.find("$", i + 1)
            tag = sql[i:tag_end + 1] if tag_end > 0 else ""
            if tag and (tag == "$$" or tag[1:-1].replace("_", "").isalnum() and not tag[1].isdigit()):
                close = sql.find(tag, tag_end + 1)
                end = n if close < 0 else close + len(tag)
                out.append(sql[i:end].replace("%", "%%"))
                i, previous = end, "operand"
                continue
        if char.isalnum() or char == "_":
            end = i
            while end < n and (sql[end].isalnum() or sql[end] in "_$."):
                end += 1
            word = sql[i:end]
            out.append(word.replace("%", "%%"))
            previous = "keyword" if word.lower() in _KEYWORDS_BEFORE_A_VALUE else "operand"
            i = end
            continue
        if char == "?":
            operator = sql[i + 1:i + 2] in ("|", "&") or previous in ("operand", ")", "]")
            if operator:
                out.append("?")
                previous = "?"
            else:
                out.append("%s")
                found += 1
                previous = "operand"
            i += 1
            continue
        if not char.isspace():
            previous = char
        out.append("%%" if char == "%" else char)
        i += 1
    if found != expected:
        raise SqlScriptError(f"the statement has {found} parameter placeholder(s) (?) for {expected} value(s): "
                             f"{sql[:200]}")
    return "".join(out)


def redact_url(url: str) -> str:
    """The URL without its password (for errors and metadata)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresSession(WarehouseSession):
    engine = "postgres"

    def __init__(self, conn):
        self.raw = conn

    def execute(self, sql: str, params=None):
        """``sql`` with ``?`` placeholders (as on DuckDB) bound to ``params``."""
        if params is None:
            return self.raw.execute(sql)
        params = list(params)
        return self.raw.execute(placeholders_for_psycopg(sql, len(params)), params)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.raw.transaction():
            yield

    def query(self, sql: str, where: str = "a query"):
        cursor = None
        for statement in compile_script(sql, self.engine, where):
            cursor = self.raw.execute(statement.sql)
        return cursor

    def append_arrow(self, table: str, data: pa.Table | pa.RecordBatchReader) -> int:
        batches = data.to_batches() if isinstance(data, pa.Table) else data
        rows = 0
        with self.raw.cursor() as cursor:
            columns = None
            copy = None
            try:
                for batch in batches:
                    if columns is None:
                        columns = ", ".join('"' + name.replace('"', '""') + '"' for name in batch.schema.names)
                        copy = cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv, HEADER false)")
                        writer = copy.__enter__()
                    if batch.num_rows:
                        writer.write(_csv_bytes(batch))
                        rows += batch.num_rows
            except BaseException as error:
                if copy is not None:
                    copy.__exit__(type(error), error, error.__traceback__)
                raise
            if copy is not None:
                copy.__exit__(None, None, None)
        return rows

    def arrow_reader(self, sql: str, batch_rows: int = 100_000) -> pa.RecordBatchReader:
        statements = compile_script(sql, self.engine, "a query")
        for statement in statements[:-1]:
            self.raw.execute(statement.sql)
        # A server-side cursor (inside its own transaction) sends the rows a batch at a time.
        own_transaction = self.raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        if own_transaction:
            self.raw.execute("BEGIN")
        cursor = self.raw.cursor(name="etl_platform_arrow_reader")
        cursor.execute(statements[-1].sql)
        first = cursor.fetchmany(batch_rows)
        # The schema comes from the columns' declared types, not from the first batch's values (a column NULL
        # there, or a numeric with more scale later, broke the later batches).
        schema = pa.schema([pa.field(d.name, _arrow_type(d)) for d in cursor.description])

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                rows = first
                while True:
                    yield _batch(schema, rows)
                    rows = cursor.fetchmany(batch_rows)
                    if not rows:
                        break
            finally:
                cursor.close()
                if own_transaction:
                    self.raw.execute("COMMIT")

        return pa.RecordBatchReader.from_batches(schema, batches())

    @staticmethod
    def normalize_type(data_type: str) -> str:
        return _TYPE_NAMES.get(data_type.lower(), data_type.upper())


def _csv_bytes(batch: pa.RecordBatch) -> bytes:
    """A batch as CSV text for COPY: NULL is an unquoted empty field, an empty string is ``""``."""
    sink = io.BytesIO()
    pa_csv.write_csv(batch, sink, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    return sink.getvalue()


# PostgreSQL type OIDs → Arrow types (pg_type). A numeric with a precision is an exact decimal; a numeric without
# one (what sum() and avg() give) can hold any scale, so it is float64 — as DuckDB's own PostgreSQL reader does.
_ARROW_TYPES = {
    16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 26: pa.int64(), 700: pa.float32(),
    701: pa.float64(), 25: pa.string(), 1043: pa.string(), 1042: pa.string(), 19: pa.string(), 2950: pa.string(),
    114: pa.string(), 3802: pa.string(), 1082: pa.date32(), 1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"), 1083: pa.time64("us"), 17: pa.binary(), 1186: pa.duration("us"),
    1007: pa.list_(pa.int32()), 1016: pa.list_(pa.int64()), 1009: pa.list_(pa.string()),
    1015: pa.list_(pa.string()), 1022: pa.list_(pa.float64()), 1000: pa.list_(pa.bool_()),
}
_NUMERIC = 1700


def _arrow_type(column) -> pa.DataType:
    """The Arrow type of a result column (psycopg's description: type OID, and a numeric's precision and scale);
    a type not listed travels as text."""
    if column.type_code == _NUMERIC:
        if column.precision is not None and column.precision <= 38:
            return pa.decimal128(column.precision, column.scale or 0)
        return pa.float64()
    return _ARROW_TYPES.get(column.type_code, pa.string())


def _batch(schema: pa.Schema, rows: list[tuple]) -> pa.RecordBatch:
    columns = list(zip(*rows)) if rows else [[] for _ in schema]
    arrays = []
    for field, values in zip(schema, columns):
        if pa.types.is_string(field.type):
            values = [v if v is None or isinstance(v, str) else _text(v) for v in values]
        elif pa.types.is_floating(field.type):
            values = [None if v is None else float(v) for v in values]
        arrays.append(pa.array(list(values), type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _text(value) -> str:
    """A value of a type without an Arrow twin (json(b), uuid, ranges, ...) as text: JSON for containers."""
    import json

    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)


class PostgresWarehouse(Warehouse):
    """A PostgreSQL database used as the warehouse (``ETL_PLATFORM_ENGINE=postgres``)."""

    engine = "postgres"

    url: str | None = Field(
        default=None,
        description=f"postgresql://user[:password]@host:port/database; usually dg.EnvVar('{URL_ENV}'). "
                    "Never shown with its password. Or, instead, host/port/database/user/password.",
    )
    host: str | None = Field(default=None, description="With no url: the server (seed 002's POSTGRES_HOST).")
    port: int = Field(default=5432, description="With no url: the port (POSTGRES_PORT).")
    database: str | None = Field(default=None, description="With no url: the database (POSTGRES_DB).")
    user: str | None = Field(default=None, description="With no url: the user (POSTGRES_USER).")
    password: str | None = Field(default=None, repr=False, description="With no url: the password "
                                                                        "(POSTGRES_PASSWORD); never shown.")
    connect_timeout_seconds: int = Field(default=10, description="How long to wait for the server.")
    statement_timeout_seconds: int | None = Field(
        default=None, description="PostgreSQL statement_timeout for the warehouse's statements (none by default)."
    )
    session_settings: dict[str, str] = Field(
        default_factory=dict,
        description="PostgreSQL settings for the warehouse's sessions, e.g. {'work_mem': '256MB', "
                    "'max_parallel_workers_per_gather': '4'}.",
    )

    def described(self) -> str:
        """Where the warehouse is, without its password."""
        if self.url:
            return f"{redact_url(self.url)} (PostgresWarehouse.url, usually ${URL_ENV})"
        return (f"host={self.host} port={self.port} dbname={self.database} user={self.user} (PostgresWarehouse "
                f"host/port/database/user, from {', '.join(SEED_ENV.values())})")

    @contextmanager
    def connect(self) -> Iterator[PostgresSession]:
        if self.url:
            target = {"conninfo": self.url}
        elif self.host:
            target = {"host": self.host, "port": self.port, "dbname": self.database, "user": self.user,
                      "password": self.password}
            target = {key: value for key, value in target.items() if value is not None}
        else:
            raise EngineSettingError(f"The PostgreSQL warehouse has no address: set ${URL_ENV} (postgresql://user:"
                                     f"password@host:5432/db) or {', '.join(SEED_ENV.values())}")
        try:
            conn = psycopg.connect(**target, autocommit=True, connect_timeout=self.connect_timeout_seconds)
        except psycopg.Error as error:  # libpq may quote the password (as in the URL, or decoded): never shown
            raise EngineSettingError(scrub(
                f"The PostgreSQL warehouse {self.described()} cannot be reached: "
                f"{str(error).strip().splitlines()[0][:300]}", url_password(self.url), self.password)
            ) from None
        try:
            conn.execute("SET TIME ZONE 'UTC'")
            if self.statement_timeout_seconds:
                conn.execute(f"SET statement_timeout = {int(self.statement_timeout_seconds * 1000)}")
            for name, value in self.session_settings.items():
                try:
                    conn.execute("SELECT set_config(%s, %s, false)", [name, str(value)])
                except psycopg.Error as error:
                    raise EngineSettingError(
                        f"PostgresWarehouse.session_settings[{name!r}] = {value!r} was refused by the server: "
                        f"{str(error).strip().splitlines()[0][:300]}"
                    ) from None
            conn.execute(f"SET search_path = {MACROS_SCHEMA}, public")
            # Two connections setting up at once fail on the server's catalog ("tuple concurrently updated" for
            # CREATE OR REPLACE FUNCTION, a duplicate key for CREATE SCHEMA IF NOT EXISTS): one at a time.
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('etl_platform warehouse setup'))")
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {MACROS_SCHEMA}")
                for layer in LAYERS:
                    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {layer}")
                conn.execute(self.macros_text(MACROS_FILE))
            yield PostgresSession(conn)
        finally:
            conn.close()

    def reclaim_space(self, compact: bool = False) -> dict:
        """``VACUUM (ANALYZE)``: the space of replaced tables' rows becomes reusable and the planner's statistics are
        fresh. Dropped tables (each run replaces them) give their files back at once; ``VACUUM FULL`` (which locks
        each table while it rewrites it) is left to the database's administrator."""
        with self.connect() as session:
            before = session.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            session.raw.execute("VACUUM (ANALYZE)")
            after = session.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        return {"engine": "postgres", "done": "VACUUM (ANALYZE)", "bytes_before": before, "bytes_after": after}

    def run_sql(self, session: PostgresSession, script: str, name: str, own_transaction: bool = True,
                engine_dialect: bool = False) -> None:
        """Run a script (PostgreSQL's own dialect as it is, else the shared one compiled) in one transaction; a
        failing statement is named with its file, number and the engine."""
        path, text = name, script
        if engine_dialect:
            statements = [(text, 0, "the whole file")]
        else:
            statements = [(s.sql, s.number, s.source) for s in compile_script(text, self.engine, path)]

        with session.raw.transaction() if own_transaction else contextlib.nullcontext():
            for sql, number, source in statements:
                try:
                    session.raw.execute(sql)
                except psycopg.Error as error:
                    at = f"statement {number} ({source})" if number else "its statements"
                    raise SqlScriptError(
                        f"{path}, {at} failed on postgres: {str(error).strip().splitlines()[0][:500]}"
                    ) from error
