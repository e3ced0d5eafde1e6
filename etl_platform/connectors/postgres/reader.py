"""PostgreSQL: tables and queries streamed as Arrow by the ADBC driver (binary ``COPY`` under the hood).

ADBC reads a plain query with ``COPY (query) TO STDOUT (FORMAT binary)`` and hands over Arrow batches as
they arrive, so memory stays flat whatever the table's size. It materialises a query *with bound
parameters* whole, so parameters are merged into the SQL client-side by psycopg (``ClientCursor.mogrify``,
libpq's own escaping) and the result still streams. Parameters use psycopg's placeholders: ``%s`` and
``%(name)s``.

Types keep their meaning (docs/sources.md has the table): ``numeric(p,s)`` becomes ``decimal128(p,s)``
(an unconstrained ``numeric``, or p > 38, stays exact text); ``timestamptz`` is ``timestamp[us, UTC]``;
``json``/``jsonb`` are Arrow JSON; arrays are lists; ``bytea`` is binary; ``uuid`` is Arrow UUID. A row with
a value Arrow cannot hold — ``'infinity'`` timestamps and dates, ``NaN``/``Infinity`` numerics — goes to the
quarantine with the column and the value; the read goes on.
"""

from __future__ import annotations

import re
import json
from collections.abc import Iterator
from urllib.parse import quote as url_quote

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from etl_platform.errors import ClientConnectionError, CredentialsRefusedError, QueryError
from etl_platform.extras import require
from etl_platform.sources.base import Extraction, Rejected, SourceBatch, first_line, without_secrets
from etl_platform.sources.relational import CursorTracker, RelationalExtraction, RelationalSource, with_positions



def _wrapped(value: int, bits: int) -> int:
    return (value + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1)


# PostgreSQL stores ±infinity as the integer limits counted from 2000-01-01; ADBC shifts them to the Unix epoch
# with integer wrap-around, so they arrive as these values (microseconds / days).
TIMESTAMP_INFINITIES = tuple(_wrapped(limit + 946_684_800_000_000, 64) for limit in (2**63 - 1, -(2**63)))
DATE_INFINITIES = tuple(_wrapped(limit + 10_957, 32) for limit in (2**31 - 1, -(2**31)))
BATCH_BYTES_HINT = 16 * 1024 * 1024


# libpq's words for a server that answered and refused the login (SQLSTATE 28P01 / 28000)
REFUSED_LOGIN = re.compile(r"password authentication failed|no pg_hba\.conf entry|role \"[^\"]*\" does not exist")


class PostgresSource(RelationalSource):
    """A PostgreSQL table or query, read as Arrow record batches."""

    kind = "postgres"

    host: str = "127.0.0.1"
    port: int = 5432
    database: str = "postgres"
    username: str = "postgres"
    password: str | None = Field(default=None, repr=False)  # a secret: kept out of repr, logs and messages
    sslmode: str | None = Field(default=None, description="libpq sslmode: disable, require, verify-full, ...")

    def describe(self) -> str:
        return f"postgresql://{self.username}@{self.host}:{self.port}/{self.database} ({self.target_text()})"

    def uri(self) -> str:
        auth = url_quote(self.username, safe="") + (f":{url_quote(self.password, safe='')}" if self.password else "")
        options = f"connect_timeout={max(1, int(self.timeout_seconds))}"
        if self.sslmode:
            options += f"&sslmode={self.sslmode}"
        return f"postgresql://{auth}@{self.host}:{self.port}/{url_quote(self.database, safe='')}?{options}"

    def check_connection(self) -> None:
        adbc_driver_manager = require("adbc_driver_manager", "PostgresSource")
        try:
            adbc_connect(self.uri()).close()
        except adbc_driver_manager.Error as error:
            raise self.connection_error(error) from error

    def extract(self, state: dict | None = None) -> Extraction:
        self.validate_target()
        return PostgresExtraction(self, state)

    def render(self, sql: str, params) -> str:
        """``sql`` with ``params`` merged in by psycopg (libpq escaping), so ADBC can stream the result."""
        if params is None:
            return sql
        psycopg = require("psycopg", "PostgresSource")

        try:
            with psycopg.connect(self.uri()) as connection:
                return psycopg.ClientCursor(connection).mogrify(sql, params)
        except psycopg.OperationalError as error:
            raise self.connection_error(error) from error
        except psycopg.Error as error:
            raise QueryError(f"postgres: cannot bind the parameters of the {self.target_text()}: "
                             f"{self.clean(first_line(error))}") from error

    def clean(self, text: str) -> str:
        return without_secrets(text, self.password)  # and its spellings: percent-encoded, base64 (secrets.py)

    def connection_error(self, error: BaseException) -> ClientConnectionError:
        """The error for a failed connect: ``CredentialsRefusedError`` (never retried) when the server answered and
        refused the login (bad password, unknown role, no pg_hba entry), else a ``ClientConnectionError``."""
        text = first_line(error)
        refused = REFUSED_LOGIN.search(text) is not None
        return (CredentialsRefusedError if refused else ClientConnectionError)(
            f"postgres: cannot connect to {self.host}:{self.port} as {self.username} "
            f"(database {self.database}): {self.clean(text)}")


def adbc_connect(uri: str):
    """An ADBC PostgreSQL connection. Its DB-API module is imported here, not with this module: it imports
    pyarrow.dataset and pandas (~0.3 s), which a process that never reads PostgreSQL should not pay."""
    return require("adbc_driver_postgresql.dbapi", "PostgresSource").connect(uri)


class PostgresExtraction(RelationalExtraction):
    def _batches(self) -> Iterator[SourceBatch]:
        source = self.source
        sql, params, _ = source.statement(self.state)
        sql = source.render(sql, params)
        tracker = CursorTracker(source.cursor_column, self.state)
        adbc_driver_manager = require("adbc_driver_manager", "PostgresSource")
        try:
            self.connection = adbc_connect(source.uri())
        except adbc_driver_manager.Error as error:
            raise source.connection_error(error) from error
        read = 0
        try:
            cursor = self.connection.cursor()
            cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES_HINT)})
            cursor.execute(sql)
            reader = cursor.fetch_record_batch()
            yielded = False
            for arrow_batch in reader:
                for start in range(0, max(arrow_batch.num_rows, 1), source.batch_size):
                    piece = arrow_batch.slice(start, source.batch_size)
                    batch, rejected = normalize(piece, read)
                    read += piece.num_rows
                    tracker.see(batch)
                    yielded = True
                    yield SourceBatch(with_positions(batch, read - piece.num_rows + 1), rejected)
            if not yielded:  # no rows: still hand over the schema, so bronze gets its columns
                batch, _ = normalize(_empty_batch(reader.schema), 0)
                yield SourceBatch(with_positions(batch, 1), [])
        except adbc_driver_manager.OperationalError as error:
            raise ClientConnectionError(f"postgres: the connection to {source.host}:{source.port} failed while "
                                        f"reading the {source.target_text()} after {read:,} rows: "
                                        f"{source.clean(first_line(error))}") from error
        except (adbc_driver_manager.Error, OSError, pa.ArrowException) as error:
            # a broken COPY stream surfaces through the Arrow reader as OSError("[libpq] ...")
            if _connection_lost(error):
                raise ClientConnectionError(f"postgres: the connection to {source.host}:{source.port} was lost "
                                            f"while reading the {source.target_text()} after {read:,} rows: "
                                            f"{source.clean(first_line(error))}") from error
            raise QueryError(f"postgres: reading the {source.target_text()} failed: "
                             f"{source.clean(first_line(error))}") from error


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    arrays = [pa.ExtensionArray.from_storage(f.type, pa.array([], f.type.storage_type))
              if isinstance(f.type, pa.ExtensionType) else pa.array([], f.type) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _connection_lost(error: BaseException) -> bool:
    text = str(error).lower()
    return any(sign in text for sign in ("terminating connection", "server closed the connection", "connection",
                                         "eof", "broken pipe", "admin_shutdown"))


# ----------------------------------------------------------------------------- types

def normalize(batch: pa.RecordBatch, offset: int) -> tuple[pa.RecordBatch, list[Rejected]]:
    """Turn ADBC's PostgreSQL batch into plain Arrow types; rows holding values Arrow cannot hold are rejected."""
    bad = None  # the rows some column cannot hold (most batches: none, and no mask is made)
    reasons: list[tuple[pa.Array, str, str]] = []  # (mask, column, description)
    arrays, fields = [], []
    for field, column in zip(batch.schema, batch.columns):
        column, field, problems = _normalize_column(field, column)
        for mask, description in problems:
            reasons.append((mask, field.name, description))
            bad = mask if bad is None else pc.or_(bad, mask)
        arrays.append(column)
        fields.append(field)
    if bad is None or not pc.any(bad).as_py():
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)), []
    rejected = _rejected(batch, reasons, bad, offset)
    keep = pc.invert(bad)
    arrays = [pc.filter(array, keep) for array in arrays]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)), rejected


def _normalize_column(field: pa.Field, column: pa.Array):
    metadata = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
    pg_type = metadata.get("POSTGRESQL:type", "")
    plain = pa.field(field.name, field.type)
    problems: list[tuple[pa.Array, str]] = []
    if pg_type == "numeric":
        storage = column.storage if isinstance(column, pa.ExtensionArray) else column
        typmod = int(metadata.get("POSTGRESQL:typmod", "-1"))
        decimal = None
        if typmod >= 4 and ((typmod - 4) >> 16) <= 38:
            decimal = pa.decimal128((typmod - 4) >> 16, (typmod - 4) & 0xFFFF)
            try:  # most batches hold no NaN or infinity (they fail the cast): one kernel, no mask
                return pc.cast(storage, decimal), pa.field(field.name, decimal), problems
            except pa.ArrowInvalid:
                pass
        special = pc.fill_null(pc.is_in(pc.utf8_lower(storage), pa.array(["nan", "infinity", "-infinity", "inf",
                                                                          "-inf"])), False)
        if pc.any(special).as_py():
            problems.append((special, "NaN or infinity has no decimal form"))
        if decimal is not None:
            clean = pc.if_else(special, pa.scalar(None, pa.string()), storage)
            return pc.cast(clean, decimal), pa.field(field.name, decimal), problems
        return storage, pa.field(field.name, pa.string()), problems
    if pa.types.is_timestamp(field.type) or pa.types.is_date(field.type):
        limits = TIMESTAMP_INFINITIES if pa.types.is_timestamp(field.type) else DATE_INFINITIES
        storage_type = pa.int64() if pa.types.is_timestamp(field.type) else pa.int32()
        raw = column.view(storage_type)
        infinite = pc.fill_null(pc.is_in(raw, pa.array(limits, storage_type)), False)
        if pc.any(infinite).as_py():
            problems.append((infinite, "'infinity' has no Arrow timestamp/date"))
            column = pc.if_else(infinite, pa.scalar(None, field.type), column)
        return column, plain, problems
    if isinstance(field.type, pa.ExtensionType) and field.type.extension_name == "arrow.opaque":
        storage = column.storage
        return storage, pa.field(field.name, storage.type), problems
    return column, plain, problems


def _rejected(batch: pa.RecordBatch, reasons, bad: pa.Array, offset: int) -> list[Rejected]:
    rows = pc.indices_nonzero(bad).to_pylist()
    flagged = {name for _, name, _ in reasons}
    readable = batch.drop_columns([n for n in batch.schema.names if n in flagged]) if flagged else batch
    rejected = []
    for row in rows:
        why = [f"column {name}: {description}" for mask, name, description in reasons if mask[row].as_py()]
        record = readable.slice(row, 1).to_pylist()[0]
        for name in flagged:
            record[name] = "infinity/NaN"
        rejected.append(Rejected(f"row {offset + row + 1}", "; ".join(why), json.dumps(record, default=str, ensure_ascii=False)))
    return rejected
