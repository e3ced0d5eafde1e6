"""Apache Cassandra (and ScyllaDB) as a destination: Arrow batches written with one prepared ``INSERT``.

An ``INSERT`` is an upsert by primary key in Cassandra, so ``append`` and ``upsert`` write the same way, and a
retried row cannot double. Rows are executed asynchronously with at most ``concurrency`` requests in flight
(the driver's own advice over multi-partition ``BATCH``es), at the configured consistency level; rows that fail
are reported with their key values and the error, and fail the write.

``overwrite`` is ``TRUNCATE`` and then the inserts. It is **not atomic**: Cassandra has no transaction across
partitions, so between the truncate and the last insert readers see the table empty or partly written. Write
to a new table and switch readers to it where that matters.

With ``create_table`` the table is created when missing, with the key columns (``id_columns``) as the primary
key and types from the Arrow schema (docs/destinations.md#cassandra). No Cassandra installs on our test
machines: the tests check the exact CQL, bound values and consistency level at the driver boundary, and run
against a real cluster when ``ETL_TEST_CASSANDRA_HOSTS`` is set.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import dagster as dg
import pyarrow as pa
from pydantic import Field

from etl_platform.destinations.errors import ConfigurationError, ValidationError
from etl_platform.destinations.streams import checked_write, record_batches
from etl_platform.destinations.target_io_manager import TargetIOManager
from etl_platform.extras import require
from etl_platform.connectors.cassandra.connection import CassandraConnection, cassandra_session, quote


@dataclass
class CassandraWriteResult:
    target: str
    records_written: int = 0
    batches: int = 0
    failures: list = field(default_factory=list)
    seconds: float = 0.0


class CassandraTarget(CassandraConnection):
    concurrency: int = Field(default=64, gt=0, description="Requests in flight at most.")
    create_table: bool = Field(default=False, description="Create a missing table (needs id_columns).")

    def connect(self):
        return cassandra_session(self)

    def write(self, data, mode: str = "append", keys=(), table: str | None = None, log=None) -> CassandraWriteResult:
        require("cassandra", "The Cassandra writer")
        from cassandra import ConsistencyLevel

        name, keys = checked_write("cassandra", "table", table or self.table, mode, keys)
        level = ConsistencyLevel.name_to_value.get(self.consistency.upper())
        if level is None:
            raise ConfigurationError(f"cassandra: consistency {self.consistency!r} is not one of "
                                     f"{', '.join(sorted(ConsistencyLevel.name_to_value))}")
        started = time.monotonic()
        result = CassandraWriteResult(self.describe(name))
        session = self.connect()
        try:
            prepared = None
            for batch in record_batches(data):
                if prepared is None:
                    if self.create_table:
                        if not keys:
                            raise ConfigurationError("cassandra: create_table needs id_columns (the primary key)")
                        session.execute(create_table_cql(self.keyspace, name, batch.schema, keys))
                    if mode == "overwrite":
                        session.execute(f"TRUNCATE {quote(self.keyspace)}.{quote(name)}")
                    prepared = session.prepare(insert_cql(self.keyspace, name, batch.schema.names))
                    prepared.consistency_level = level
                self._insert(session, prepared, batch, keys, result)
                result.batches += 1
                if log and result.batches % 10 == 0:
                    log(f"{result.target}: {result.records_written:,} rows in {result.batches} batches")
            if mode == "overwrite" and prepared is None:  # no rows: the table is emptied; one not there stays so
                from cassandra import InvalidRequest

                try:
                    session.execute(f"TRUNCATE {quote(self.keyspace)}.{quote(name)}")
                except InvalidRequest as error:
                    if "unconfigured table" not in str(error).lower():
                        raise
        finally:
            session.cluster.shutdown()
        if result.failures:
            shown = "; ".join(f"{key}: {error}" for key, error in result.failures[:5])
            raise ValidationError(f"cassandra: {len(result.failures)} row(s) could not be written to {result.target}"
                                  f" ({result.records_written:,} were): {shown}")
        result.seconds = time.monotonic() - started
        return result

    def _insert(self, session, prepared, batch: pa.RecordBatch, keys, result: CassandraWriteResult) -> None:
        """Every row of ``batch``, at most ``concurrency`` requests in flight."""
        in_flight: deque = deque()

        def settle(entry) -> None:
            future, row = entry
            try:
                future.result()
                result.records_written += 1
            except Exception as error:  # the driver's error for this row: name the row by its key
                key = {k: row[k] for k in keys} if keys else {k: row[k] for k in list(row)[:2]}
                result.failures.append((key, f"{type(error).__name__}: {str(error)[:200]}"))

        for row in batch.to_pylist():
            if len(in_flight) >= self.concurrency:
                settle(in_flight.popleft())
            in_flight.append((session.execute_async(prepared, [_cql_value(v) for v in row.values()]), row))
        while in_flight:
            settle(in_flight.popleft())


def insert_cql(keyspace: str, table: str, columns: list[str]) -> str:
    return (f"INSERT INTO {quote(keyspace)}.{quote(table)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})")


def create_table_cql(keyspace: str, table: str, schema: pa.Schema, keys) -> str:
    columns = ", ".join(f"{quote(f.name)} {cql_type(f.type)}" for f in schema)
    return (f"CREATE TABLE IF NOT EXISTS {quote(keyspace)}.{quote(table)} ({columns}, "
            f"PRIMARY KEY ({', '.join(quote(k) for k in keys)}))")


def cql_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return f"list<{cql_type(arrow_type.value_type)}>"
    simple = [(pa.types.is_int8, "tinyint"), (pa.types.is_int16, "smallint"), (pa.types.is_int32, "int"),
              (pa.types.is_int64, "bigint"), (pa.types.is_float32, "float"), (pa.types.is_float64, "double"),
              (pa.types.is_boolean, "boolean"), (pa.types.is_timestamp, "timestamp"), (pa.types.is_date, "date"),
              (pa.types.is_decimal, "decimal"), (pa.types.is_binary, "blob"), (pa.types.is_large_binary, "blob"),
              (pa.types.is_time, "time"), (pa.types.is_unsigned_integer, "varint")]
    for test, name in simple:
        if test(arrow_type):
            return name
    return "text"  # strings, and structs/maps as JSON text


def _cql_value(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    if isinstance(value, dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, list):
        return [_cql_value(v) for v in value]
    return value


class CassandraIOManager(TargetIOManager, CassandraConnection):
    """Assets as Cassandra tables (``table``, or the asset key's last part) in ``keyspace``; append by default
    (an INSERT is an upsert by primary key; overwrite truncates first and is not atomic). Credentials through
    ``dg.EnvVar``."""

    write_mode: str = Field(default="append", description="append/upsert (the same in Cassandra) or overwrite.")
    concurrency: int = 64
    create_table: bool = False

    def target(self, context) -> CassandraTarget:
        return self.build(CassandraTarget, table=self.table or context.asset_key.path[-1])

    def load_input(self, context: dg.InputContext) -> pa.Table:
        from etl_platform.connectors.cassandra.reader import CassandraSource

        target = self.target(context.upstream_output)
        source = self.build(CassandraSource, table=target.table)
        return source.read_table().drop_columns(["_source_position"])
