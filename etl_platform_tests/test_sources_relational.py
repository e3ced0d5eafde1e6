"""Relational sources against real servers: the machine's PostgreSQL and MariaDB, SQLite files.

SQL Server has no server here: its reader is checked at the driver boundary (a fake pymssql connection
records the SQL and parameters it is given — the only stand-in in this file), and against a real server when
``ETL_TEST_MSSQL_URL`` (mssql://user:password@host:port/database) is set.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from urllib.parse import urlparse

import duckdb
import psycopg
import pyarrow as pa
import pymysql
import pytest

from etl_platform.errors import ClientConnectionError, ConfigurationError, CredentialsRefusedError, QueryError
from etl_platform.sources import MySQLSource, PostgresSource, SQLiteSource, SqlServerSource, ingest
from etl_platform.sources.base import Extraction
from etl_platform_tests.servers import require_service, silent_server

PG = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_table():
    require_service("PostgreSQL", 5432)
    name = f"src_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        yield conn, name
        conn.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def maria_table():
    require_service("MariaDB", 3306)
    name = f"src_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(host="127.0.0.1", user="root", database="test", autocommit=True)
    try:
        yield conn, name
        conn.cursor().execute(f"DROP TABLE IF EXISTS {name}")
    finally:
        conn.close()


def _pg(name: str, **settings) -> PostgresSource:
    return PostgresSource(database="test", **({"table": name} | settings))


# ----------------------------------------------------------------------------- PostgreSQL

def test_postgres_types_round_trip_as_the_driver_returns_them(pg_table):
    conn, name = pg_table
    conn.execute(f"""CREATE TABLE {name} (id int8 PRIMARY KEY, small int2, amount numeric(12,3), ratio float8,
        at timestamptz, local_at timestamp, day date, doc jsonb, tags text[], raw bytea, name text, flag bool)""")
    conn.execute(f"""INSERT INTO {name} VALUES
        (1, 7, 123456789.125, 0.5, '2024-03-01 12:00:00.123456+02', '2024-03-01 12:00:00', '2024-03-01',
         '{{"a": [1, {{"b": null}}], "ü": "é"}}', ARRAY['x', 'ü', NULL], '\\x00ff10', 'Zoë 東京', true),
        (2, NULL, -0.001, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)""")
    expected = conn.execute(f"SELECT * FROM {name} ORDER BY id").fetchall()

    table = _pg(name).read_table().sort_by("id")

    assert str(table.schema.field("amount").type) == "decimal128(12, 3)"
    assert str(table.schema.field("at").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("local_at").type) == "timestamp[us]"
    names = [c for c in table.column_names if c != "_source_position"]
    for row, driver_row in zip(table.to_pylist(), expected):
        for column, driver_value in zip(names, driver_row):
            value = row[column]
            if column == "doc" and value is not None:
                value = json.loads(value)
            assert value == driver_value, column


def test_postgres_streams_a_table_larger_than_a_batch(pg_table):
    conn, name = pg_table
    conn.execute(f"CREATE TABLE {name} AS SELECT g AS id, md5(g::text) AS text FROM generate_series(1, 25000) g")
    sizes = []
    with _pg(name, batch_size=4000).extract() as extraction:
        for batch in extraction:
            sizes.append(batch.data.num_rows)
    assert sum(sizes) == 25000 and max(sizes) <= 4000 and len(sizes) >= 7


def test_postgres_binds_parameters_safely(pg_table):
    conn, name = pg_table
    conn.execute(f"CREATE TABLE {name} (id int, name text)")
    conn.execute(f"INSERT INTO {name} VALUES (1, 'O''Brien'), (2, 'x')")
    positional = PostgresSource(database="test", query=f"SELECT * FROM {name} WHERE name = %s", params=["O'Brien"])
    named = PostgresSource(database="test", query=f"SELECT * FROM {name} WHERE id > %(low)s", named_params={"low": 1})
    hostile = PostgresSource(database="test", query=f"SELECT * FROM {name} WHERE name = %s",
                             params=["x' OR '1'='1"])
    assert positional.read_table().column("id").to_pylist() == [1]
    assert named.read_table().column("id").to_pylist() == [2]
    assert hostile.read_table().num_rows == 0


def test_postgres_incremental_reads_only_new_rows_and_the_lookback_once(pg_table):
    conn, name = pg_table
    conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, status text, updated_at timestamptz)")
    conn.execute(f"INSERT INTO {name} SELECT g, 'new', '2024-01-01'::timestamptz + g * interval '1 hour' "
                 "FROM generate_series(1, 100) g")
    source = _pg(name, cursor_column="updated_at", lookback=7200, primary_key=["id"])
    warehouse = duckdb.connect()

    first = ingest(warehouse, source, "orders")
    assert (first.rows_read, first.rows_written) == (100, 100)
    assert first.state_after["cursor"] == {"datetime": "2024-01-05T04:00:00+00:00"}

    # a row updated late, inside the lookback window, and two new rows
    conn.execute(f"UPDATE {name} SET status = 'paid', updated_at = '2024-01-05 03:30:00+00' WHERE id = 99")
    conn.execute(f"INSERT INTO {name} VALUES (101, 'new', '2024-01-05 05:00:00+00'), "
                 "(102, 'new', '2024-01-05 06:00:00+00')")
    second = ingest(warehouse, source, "orders")

    # the lookback (2 h before the mark) re-reads rows 98..100 (99 updated), and the new ones
    assert second.rows_read == 5
    rows = warehouse.execute("SELECT id, status FROM bronze.orders ORDER BY id").fetchall()
    assert len(rows) == 102 and rows[98] == (99, "paid")
    assert warehouse.execute("SELECT count(*) FROM bronze.orders WHERE id = 99").fetchone()[0] == 1
    third = ingest(warehouse, source, "orders")
    assert third.rows_written == 3  # only the lookback window again (rows 101, 102 and the mark's row)
    assert warehouse.execute("SELECT count(*) FROM bronze.orders").fetchone()[0] == 102


def test_postgres_incremental_without_a_key_does_not_double_re_read_rows(pg_table):
    conn, name = pg_table
    conn.execute(f"CREATE TABLE {name} AS SELECT g AS seq, 'event ' || g AS what FROM generate_series(1, 50) g")
    source = _pg(name, cursor_column="seq", lookback=10)
    warehouse = duckdb.connect()
    ingest(warehouse, source, "events")
    conn.execute(f"INSERT INTO {name} VALUES (51, 'event 51')")
    second = ingest(warehouse, source, "events")
    assert second.rows_read == 12 and second.rows_written == 1
    assert warehouse.execute("SELECT count(*), count(DISTINCT seq) FROM bronze.events").fetchone() == (51, 51)


def test_postgres_incremental_without_a_key_keeps_identical_legitimate_rows(pg_table):
    """Issue 20, item 4: without a key, identical rows are distinct records; from the second run on one of two
    identical new rows was dropped (5 source rows, 4 in bronze). Rows read again by the `>=` window are
    recognised by count, not by value."""
    conn, name = pg_table
    conn.execute(f"CREATE TABLE {name} (seq int, what text)")
    conn.execute(f"INSERT INTO {name} VALUES (1, 'a'), (2, 'b')")
    source = _pg(name, cursor_column="seq")
    warehouse = duckdb.connect()
    ingest(warehouse, source, "same_rows")
    conn.execute(f"INSERT INTO {name} VALUES (3, 'x'), (3, 'x'), (4, 'y')")
    second = ingest(warehouse, source, "same_rows")
    assert second.rows_read == 4 and second.rows_written == 3  # seq 2 read again, not doubled
    assert warehouse.execute("SELECT count(*) FROM bronze.same_rows").fetchone()[0] == 5
    conn.execute(f"INSERT INTO {name} VALUES (4, 'y'), (5, 'z')")  # a third copy... of (4, 'y'): a second one
    assert ingest(warehouse, source, "same_rows").rows_written == 2
    assert ingest(warehouse, source, "same_rows").rows_written == 0  # nothing new
    assert sorted(warehouse.execute("SELECT seq, what FROM bronze.same_rows").fetchall()) == \
        sorted(conn.execute(f"SELECT seq, what FROM {name}").fetchall())


def test_rows_with_a_null_cursor_land_in_the_initial_read(pg_table):
    """Issue 20, item 18: with an initial_value, rows whose cursor is NULL never landed (NULL >= x is not true)."""
    conn, name = pg_table
    conn.execute(f"CREATE TABLE {name} (id int, updated date)")
    conn.execute(f"INSERT INTO {name} VALUES (1, '2024-01-01'), (2, NULL), (3, '2024-03-01'), (4, '2023-01-01')")
    source = _pg(name, cursor_column="updated", initial_value="2024-01-01", primary_key=["id"])
    warehouse = duckdb.connect()
    assert ingest(warehouse, source, "null_cursor").rows_written == 3
    assert warehouse.execute("SELECT id FROM bronze.null_cursor ORDER BY id").fetchall() == [(1,), (2,), (3,)]
    conn.execute(f"INSERT INTO {name} VALUES (5, NULL), (6, '2024-04-01')")
    assert ingest(warehouse, source, "null_cursor").rows_read == 2  # the mark's row again, and 6: never NULLs
    assert warehouse.execute("SELECT id FROM bronze.null_cursor ORDER BY id").fetchall() == \
        [(1,), (2,), (3,), (6,)]


def test_postgres_values_arrow_cannot_hold_are_quarantined_and_the_read_goes_on(pg_table):
    conn, name = pg_table
    conn.execute(f"CREATE TABLE {name} (id int, amount numeric(8,2), at timestamptz)")
    conn.execute(f"INSERT INTO {name} VALUES (1, 1.5, now()), (2, 'NaN', now()), (3, 2, 'infinity'), (4, 3, now())")
    warehouse = duckdb.connect()
    result = ingest(warehouse, _pg(name), "measures")
    assert (result.rows_written, result.rows_quarantined) == (2, 2)
    reasons = dict(warehouse.execute("SELECT position, reason FROM bronze._source_quarantine ORDER BY 1").fetchall())
    assert "column amount: NaN" in reasons["row 2"] and "column at: 'infinity'" in reasons["row 3"]


class _KillAfterFirstBatch:
    """Wraps a real read and kills its server connection (``kill()``, from another connection) after the
    first batch, as a DBA or a failover would."""

    def __init__(self, inner, kill):
        self.inner, self.kill = inner, kill

    def landing_plan(self):
        return self.inner.landing_plan()

    def describe(self):
        return self.inner.describe()

    def extract(self, state=None) -> Extraction:
        inner, kill = self.inner.extract(state), self.kill

        class Killing(Extraction):
            def _batches(self):
                for number, batch in enumerate(inner):
                    yield batch
                    if number == 0:
                        kill()
                self.state = inner.state

            def close(self):
                inner.close()

        return Killing(state)


def _kill_postgres_copy(marker: str):
    def kill():
        with psycopg.connect(PG, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE %s "
                          "AND pid <> pg_backend_pid()", [f"COPY%{marker}%"])
    return kill


def test_a_killed_connection_mid_read_fails_clearly_and_changes_nothing(pg_table):
    conn, name = pg_table
    conn.execute(f"CREATE TABLE {name} AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 400000) g")
    warehouse = duckdb.connect()
    source = _pg(name, cursor_column="id", batch_size=1000)
    ingest(warehouse, _pg(name, cursor_column="id", query=f"SELECT * FROM {name} WHERE id <= 10", table=None), "big")
    state_before = warehouse.execute("SELECT state FROM bronze._source_state").fetchone()[0]

    with pytest.raises(ClientConnectionError, match=r"postgres: the connection to 127\.0\.0\.1:5432 .* after"):
        ingest(warehouse, _KillAfterFirstBatch(source, _kill_postgres_copy(name)), "big")

    assert warehouse.execute("SELECT count(*) FROM bronze.big").fetchone()[0] == 10
    assert warehouse.execute("SELECT state FROM bronze._source_state").fetchone()[0] == state_before
    retry = ingest(warehouse, source, "big")
    assert warehouse.execute("SELECT count(*) FROM bronze.big").fetchone()[0] == 400000 and retry.rows_read == 399991


def test_postgres_refused_login_and_unreachable_hosts_fail_fast_without_the_password():
    require_service("PostgreSQL", 5432)
    secret = "pa55-w0rd-s3cret"
    with pytest.raises(ClientConnectionError) as refused:
        PostgresSource(database="test", username="nobody_here", password=secret, table="x").read_table()
    assert "nobody_here" in str(refused.value) and "127.0.0.1:5432" in str(refused.value)
    assert secret not in str(refused.value) and secret not in repr(refused.value.__cause__ or "")
    assert isinstance(refused.value, CredentialsRefusedError)  # a refused login is not retried by a step


    with silent_server() as port:
        started = time.monotonic()
        with pytest.raises(ClientConnectionError, match=f"127.0.0.1:{port}") as silent:
            PostgresSource(port=port, password=secret, table="x", timeout_seconds=2).read_table()
        assert time.monotonic() - started < 10
        assert not isinstance(silent.value, CredentialsRefusedError)  # a host that does not answer may later


def test_postgres_missing_table_is_a_query_error_naming_it(pg_table):
    with pytest.raises(QueryError, match="no_such_table_here"):
        _pg("no_such_table_here").read_table()


def test_relational_settings_are_checked():
    with pytest.raises(ConfigurationError, match="exactly one of `table` or `query`"):
        PostgresSource(table="a", query="SELECT 1").extract()
    with pytest.raises(ConfigurationError, match="initial_value 'yesterday'"):
        PostgresSource(table="a", cursor_column="at", initial_value="yesterday").statement({})


# ----------------------------------------------------------------------------- MariaDB

def test_mariadb_types_round_trip_as_the_driver_returns_them(maria_table):
    conn, name = maria_table
    cursor = conn.cursor()
    cursor.execute(f"""CREATE TABLE {name} (id bigint PRIMARY KEY, amount decimal(12,3), big bigint unsigned,
        at timestamp(6) NULL, local_at datetime(6), day date, doc json, raw varbinary(16), name varchar(40), ratio double)""")
    cursor.execute(f"""INSERT INTO {name} VALUES (1, -123456789.125, 18446744073709551615, '2024-03-01 10:00:00.5',
        '2024-03-01 12:00:00', '2024-03-01', '{{"a": [1, null]}}', x'00ff10', 'Zoë 東京', 0.25),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)""")
    cursor.execute("SET time_zone = '+00:00'")
    cursor.execute(f"SELECT * FROM {name} ORDER BY id")
    expected = cursor.fetchall()

    table = MySQLSource(database="test", table=name).read_table().sort_by("id")

    assert str(table.schema.field("amount").type) == "decimal128(12, 3)"
    assert str(table.schema.field("big").type) == "uint64"
    names = [c for c in table.column_names if c != "_source_position"]
    for row, driver_row in zip(table.to_pylist(), expected):
        for column, driver_value in zip(names, driver_row):
            value = row[column]
            if column == "at" and value is not None:
                value = value.replace(tzinfo=None)  # the driver returns the UTC wall time without a zone
            assert value == driver_value, column


def test_mariadb_streams_and_reads_incrementally(maria_table):
    conn, name = maria_table
    cursor = conn.cursor()
    cursor.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, v varchar(10))")
    cursor.executemany(f"INSERT INTO {name} VALUES (%s, %s)", [(i, f"v{i}") for i in range(1, 12001)])
    source = MySQLSource(database="test", table=name, cursor_column="id", primary_key=["id"], batch_size=5000)
    warehouse = duckdb.connect()
    first = ingest(warehouse, source, "things")
    assert first.rows_read == 12000 and first.batches >= 3
    cursor.execute(f"INSERT INTO {name} VALUES (12001, 'late')")
    second = ingest(warehouse, source, "things")
    assert second.rows_read == 2  # the mark's row again (>=) and the new one
    assert warehouse.execute("SELECT count(*) FROM bronze.things").fetchone()[0] == 12001


def test_mariadb_killed_connection_mid_read_fails_clearly_and_changes_nothing(maria_table):
    conn, name = maria_table
    cursor = conn.cursor()
    cursor.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, pad varchar(200))")
    cursor.execute(f"INSERT INTO {name} SELECT seq, repeat('x', 200) FROM seq_1_to_200000")

    def kill():
        admin = pymysql.connect(host="127.0.0.1", user="root", database="test", autocommit=True)
        with admin.cursor() as c:
            c.execute("SELECT id FROM information_schema.processlist WHERE info LIKE %s AND id <> CONNECTION_ID()",
                      [f"SELECT%{name}%"])
            for (thread,) in c.fetchall():
                c.execute(f"KILL {thread}")
        admin.close()

    source = MySQLSource(database="test", table=name, cursor_column="id", batch_size=1000)
    warehouse = duckdb.connect()
    with pytest.raises(ClientConnectionError, match="mysql: the connection to 127.0.0.1:3306 was lost"):
        ingest(warehouse, _KillAfterFirstBatch(source, kill), "big")
    assert warehouse.execute("SELECT count(*) FROM bronze._source_state").fetchone()[0] == 0
    assert ingest(warehouse, source, "big").rows_written == 200000


def test_mariadb_refused_login_names_user_not_password():
    require_service("MariaDB", 3306)
    with pytest.raises(ClientConnectionError) as error:
        MySQLSource(database="test", username="nobody_here", password="hunter2-secret", table="x").read_table()
    assert "nobody_here" in str(error.value) and "hunter2-secret" not in str(error.value)
    assert isinstance(error.value, CredentialsRefusedError)


# ----------------------------------------------------------------------------- SQLite

def test_sqlite_uses_declared_types_and_quarantines_values_that_do_not_fit(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (id INTEGER, name TEXT, price REAL, blob BLOB)")
        db.executemany("INSERT INTO items VALUES (?, ?, ?, ?)",
                       [(1, "a", 1.5, b"\x00"), ("two", "b", 2.0, None), (3, None, None, None)])
    warehouse = duckdb.connect()
    result = ingest(warehouse, SQLiteSource(path=str(path), table="items", batch_size=2), "items")
    assert (result.rows_written, result.rows_quarantined) == (2, 1)
    assert warehouse.execute("SELECT id, name FROM bronze.items ORDER BY id").fetchall() == [(1, "a"), (3, None)]
    position, reason, record = warehouse.execute(
        "SELECT position, reason, record FROM bronze._source_quarantine").fetchone()
    assert position == "row 2" and "column id: value 'two'" in reason and json.loads(record)["id"] == "two"


def test_types_widen_from_the_data_not_the_first_batch(tmp_path):
    """Issue 20, item 6: a query (no declared types) with batch_size=2 and a column NULL in the first batch was a
    raw DuckDB ConversionException. The column widens by the lattice (NULL -> DOUBLE; BIGINT -> DOUBLE; DECIMAL
    scale grows), and a value that fits no widening is quarantined naming column, value and record."""
    path = tmp_path / "loose.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id, maybe, number)")
        db.executemany("INSERT INTO t VALUES (?, ?, ?)", [(1, None, 1), (2, None, 2), (3, 1.5, 2.5), (4, 7.25, 3),
                                                         (5, "text", 4), (6, None, 5)])
    warehouse = duckdb.connect()
    source = SQLiteSource(path=str(path), query="SELECT id, maybe, number FROM t", batch_size=2)
    result = ingest(warehouse, source, "loose")
    assert (result.rows_written, result.rows_quarantined) == (5, 1)
    assert warehouse.execute("SELECT id, maybe, number FROM bronze.loose ORDER BY id").fetchall() == \
        [(1, None, 1.0), (2, None, 2.0), (3, 1.5, 2.5), (4, 7.25, 3.0), (6, None, 5.0)]
    types = dict(warehouse.execute("SELECT column_name, data_type FROM information_schema.columns "
                                   "WHERE table_name = 'loose'").fetchall())
    assert types["maybe"] == "DOUBLE" and types["number"] == "DOUBLE"
    position, reason, record = warehouse.execute(
        "SELECT position, reason, record FROM bronze._source_quarantine WHERE source = 'loose'").fetchone()
    assert position == "5" and reason.startswith("column maybe: value 'text' does not fit DOUBLE")
    assert json.loads(record) == {"id": 5, "maybe": "text", "number": 4}
    # a later run: bronze widens too (DOUBLE holds the new integers; a new decimal column keeps its scale)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO t VALUES (7, 8, 9)")
    source = SQLiteSource(path=str(path), query="SELECT id, maybe, number FROM t WHERE id = 7", batch_size=2)
    assert ingest(warehouse, source, "loose").rows_written == 1


def test_the_widening_lattice():
    from etl_platform.type_widening import widen

    assert widen('"NULL"', "BIGINT") == "BIGINT" and widen("BIGINT", '"NULL"') == "BIGINT"
    assert widen("INTEGER", "BIGINT") == "BIGINT" and widen("UINTEGER", "INTEGER") == "BIGINT"
    assert widen("UBIGINT", "BIGINT") == "HUGEINT" and widen("UTINYINT", "USMALLINT") == "USMALLINT"
    assert widen("DECIMAL(10,2)", "DECIMAL(12,4)") == "DECIMAL(12,4)"
    assert widen("DECIMAL(10,2)", "DECIMAL(5,5)") == "DECIMAL(13,5)"
    assert widen("BIGINT", "DECIMAL(10,2)") == "DECIMAL(21,2)" and widen("DECIMAL(38,10)", "BIGINT") == "DECIMAL(38,10)"
    assert widen("DECIMAL(38,25)", "BIGINT") is None
    assert widen("BIGINT", "DOUBLE") == "DOUBLE" and widen("FLOAT", "DECIMAL(3,1)") == "DOUBLE"
    assert widen("DATE", "TIMESTAMP") == "TIMESTAMP" and widen("TIMESTAMP_MS", "TIMESTAMP_NS") == "TIMESTAMP_NS"
    assert widen("TIMESTAMP", "TIMESTAMP WITH TIME ZONE") is None and widen("DATE", "DATE") == "DATE"
    assert widen("JSON", "VARCHAR") == "VARCHAR" and widen("VARCHAR", "BIGINT") == "VARCHAR"
    assert widen("BIGINT", "VARCHAR") is None and widen("BOOLEAN", "INTEGER") is None


def test_a_schema_qualified_sqlite_table_is_read_with_its_declared_types(tmp_path):
    """main.items (was: a syntax error, PRAGMA table_info("main"."items")), with the declared types."""
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (id INTEGER, price REAL)")
        db.executemany("INSERT INTO items VALUES (?, ?)", [(1, 1.5), (2, None)])
    table = SQLiteSource(path=str(path), table="main.items").read_table().drop_columns(["_source_position"])
    assert table.to_pylist() == [{"id": 1, "price": 1.5}, {"id": 2, "price": None}]
    assert (table.schema.field("id").type, table.schema.field("price").type) == (pa.int64(), pa.float64())
    with pytest.raises(QueryError, match="no such table"):
        SQLiteSource(path=str(path), table="main.missing").read_table()


def test_sqlite_missing_file_and_table_are_clear(tmp_path):
    with pytest.raises(ClientConnectionError, match="does not exist"):
        SQLiteSource(path=str(tmp_path / "none.db"), table="t").read_table()
    sqlite3.connect(tmp_path / "empty.db").close()
    with pytest.raises(QueryError, match="no such table"):
        SQLiteSource(path=str(tmp_path / "empty.db"), table="t").read_table()


# ----------------------------------------------------------------------------- SQL Server

class _FakeCursor:
    """Stands in for pymssql's cursor (no SQL Server here): records what the reader sends."""

    def __init__(self, log, rows):
        self.log, self.rows, self.description = log, list(rows), (("id",), ("at",), ("amount",))

    def execute(self, sql, params=None):
        self.log.append(("execute", sql, params))

    def fetchmany(self, size):
        self.log.append(("fetchmany", size))
        taken, self.rows = self.rows[:size], self.rows[size:]
        return taken


def test_sql_server_sends_the_expected_sql_and_pages_by_batch_size(monkeypatch):
    import pymssql

    log: list = []
    rows = [(i, datetime(2024, 1, 1, tzinfo=timezone.utc), Decimal("1.50")) for i in range(5)]

    class FakeConnection:
        def cursor(self):
            return _FakeCursor(log, rows)

        def close(self):
            log.append(("close",))

    monkeypatch.setattr(pymssql, "connect", lambda **kwargs: log.append(("connect", kwargs)) or FakeConnection())
    source = SqlServerSource(host="sql.example", database="shop", username="reader", password="s3cret",
                             table="dbo.orders", columns=["id", "at", "amount"], cursor_column="at", batch_size=2)
    with source.extract({"cursor": {"datetime": "2023-12-31T00:00:00+00:00"}}) as extraction:
        batches = [b.data for b in extraction]
    connect = log[0][1]
    assert connect["server"] == "sql.example" and connect["login_timeout"] == 30
    assert log[1] == ("execute", "SELECT [id], [at], [amount] FROM [dbo].[orders] WHERE [at] >= %s",
                      [datetime(2023, 12, 31, tzinfo=timezone.utc)])
    assert [entry for entry in log if entry[0] == "fetchmany"] == [("fetchmany", 2)] * 4
    assert [b.num_rows for b in batches] == [2, 2, 1] and str(batches[0].schema.field("amount").type) == \
        "decimal128(38, 2)"
    assert extraction.state["cursor"] == {"datetime": "2024-01-01T00:00:00+00:00"}


@pytest.mark.skipif(not os.environ.get("ETL_TEST_MSSQL_URL"), reason="ETL_TEST_MSSQL_URL is not set")
def test_sql_server_against_a_real_server():
    url = urlparse(os.environ["ETL_TEST_MSSQL_URL"])
    source = SqlServerSource(host=url.hostname, port=url.port or 1433, database=url.path.strip("/"),
                             username=url.username, password=url.password,
                             query="SELECT CAST(1.25 AS decimal(10,2)) AS amount, N'Zoë' AS name, "
                                   "CAST('2024-01-01' AS date) AS day")
    assert source.read_table().drop_columns(["_source_position"]).to_pylist() == [
        {"amount": Decimal("1.25"), "name": "Zoë", "day": date(2024, 1, 1)}]


def test_concurrent_reads_use_their_own_connections(pg_table):
    conn, name = pg_table
    conn.execute(f"CREATE TABLE {name} AS SELECT g AS id FROM generate_series(1, 3000) g")
    results = []
    threads = [threading.Thread(target=lambda: results.append(_pg(name).read_table().num_rows)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [3000, 3000, 3000]
