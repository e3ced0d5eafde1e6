"""The reference pipeline on every warehouse engine: the same silver, quarantine and gold, the same checks.

The defective demo data goes through all layers on DuckDB and on PostgreSQL (a fresh database on the machine's
server) or Spark (a standalone cluster: test_engines_spark_cluster.py), and every silver, quarantine and gold table
must be equal row for row, with types normalised: timestamps compared in UTC, doubles to 9 significant digits, and
quarantine ``raw`` as the JSON document it holds (PostgreSQL writes the same document with other spacing and key
order). Spark's own tests in local mode are test_engines_spark.py: the Spark tests are files of their own so that
xdist, which runs a file whole in one worker, runs them beside the rest.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone

import dagster as dg
import psycopg
import pytest

from etl_platform.warehouse.arrow import arrow_table
from etl_platform import settings
from etl_platform.landing import LandingZone
from etl_platform.video_analytics import demo_data
from etl_platform.video_analytics.assets import RefreshPolicy, GOLD_KEYS, build_assets
from etl_platform.video_analytics.checks import QualityPolicy, build_asset_checks
from etl_platform.warehouse import EngineSettingError, SqlScriptError, warehouse_for
from etl_platform.warehouse.dialects import compile_script
from etl_platform.warehouse.duckdb_warehouse import DuckDBWarehouse
from etl_platform.warehouse.postgres_warehouse import PostgresWarehouse
from etl_platform.warehouse.spark_warehouse import SparkWarehouse
from etl_platform_tests.conftest import check_results, materialized_keys, sql_without_users_dedup
from etl_platform_tests.servers import require_service

SERVER = "postgresql://postgres@127.0.0.1:5432"
COMPARED_TABLES = ("silver.users", "silver.content", "silver.viewing_sessions", "silver.quarantine",
                   "gold.user_engagement", "gold.content_performance", "gold.daily_viewing", "gold.viewing_fact")


def _run(platform, warehouse, raise_on_error=True):
    return dg.materialize(
        [*build_assets(warehouse.engine), *build_asset_checks()],
        resources={"warehouse": warehouse, "quality_policy": QualityPolicy(), "refresh_policy": RefreshPolicy(),
                   "landing": LandingZone(root=str(platform.home / "landing"), settle_seconds=0)},
        raise_on_error=raise_on_error,
    )


def _normalised(value, column: str):
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.9g}")
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    if column == "raw" and isinstance(value, str):
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return value
    return value


def _table(warehouse, table: str) -> tuple[list[tuple[str, str]], list[tuple]]:
    with warehouse.connect() as session:
        columns = session.columns(table)
        rows = session.execute(f"SELECT * FROM {table}").fetchall()
    names = [name for name, _ in columns]
    normalised = [tuple(_normalised(v, n) for v, n in zip(row, names)) for row in rows]
    return columns, sorted(normalised, key=lambda row: tuple((v is None, str(v)) for v in row))


def _checks(result) -> dict[str, tuple[bool, str]]:
    return {name: (e.passed, str(e.metadata.get("violations").value if e.metadata.get("violations") else ""))
            for name, e in check_results(result).items()}


def _assert_details_formatted(result) -> None:
    """Every check's details have their values in them: DuckDB's ``format('{}', ...)`` placeholders were compiled
    for the engine (a pattern in adjacent string literals had been left as it was, its ``{}`` shown to the user)."""
    unformatted = {name: e.metadata["details"].value for name, e in check_results(result).items()
                   if "{}" in str(e.metadata["details"].value if "details" in e.metadata else "")}
    assert not unformatted, unformatted


def _assert_same_tables(duck, other) -> None:
    for table in COMPARED_TABLES:
        duck_columns, duck_rows = _table(duck, table)
        other_columns, other_rows = _table(other, table)
        assert other_columns == duck_columns, table
        assert len(other_rows) == len(duck_rows), table
        different = [(d, o) for d, o in zip(duck_rows, other_rows) if d != o]
        assert not different, f"{table}: first differing rows {different[:2]}"


def _assert_same_as_duckdb(platform, other) -> None:
    """The defective demo data through every layer on DuckDB and on ``other``: the same assets, check verdicts,
    and silver, quarantine and gold tables row for row; then a day's changes (users who move, a session sent again, a late one, an orphan's user arriving) go through both
    incrementally and the tables are equal again (DuckDB's incremental run equals its full rebuild:
    test_incremental.py)."""
    from etl_platform_tests.test_silver import session, user

    summary = demo_data.generate(platform.landing, sessions=4_000, seed=11, defects=True, progress=False)
    duck = platform.warehouse()
    duck_run, other_run = _run(platform, duck), _run(platform, other)

    assert materialized_keys(duck_run) == materialized_keys(other_run)
    assert _checks(duck_run) == _checks(other_run)
    _assert_details_formatted(other_run)
    assert sum(summary.defect_rows.values()) > 0
    _assert_same_tables(duck, other)
    # Every quarantine reason the generator writes occurred, so the comparison covered each rule.
    _, quarantine = _table(other, "silver.quarantine")
    assert len({(row[0], row[1]) for row in quarantine}) >= 10

    # A day's changes: the unchanged files are skipped, only the new ones are read, silver and gold run incrementally.
    with duck.connect() as session_:
        orphan_user = session_.execute(
            "SELECT CAST(json_extract_string(raw, '$.user_id') AS VARCHAR) FROM silver.quarantine "
            "WHERE reason = 'orphan_user' LIMIT 1").fetchone()[0]
    platform.write_csv("users_delta.csv", [user("1", country="ZZ", updated_at="2099-01-01T00:00:00Z"),
                                           user("2", subscription_tier="premium", updated_at="2099-01-01T00:00:00Z"),
                                           user(orphan_user.strip(), updated_at="2099-01-01T00:00:00Z")])
    platform.write_csv("viewing_sessions_delta.csv", [
        session("1", user_id="1", content_id="1", started_at="2024-01-01T10:00:00Z", ended_at="2099-01-01T10:00:00Z"),
        session("99999", user_id="2", content_id="2", started_at="2020-01-01T10:00:00Z",
                ended_at="2020-01-01T11:00:00Z")])
    duck_daily, other_daily = _run(platform, duck), _run(platform, other)
    bronze = {e.asset_key.path[1]: e.materialization.metadata
              for e in other_daily.get_asset_materialization_events() if e.asset_key.path[0] == "bronze"}
    assert {name: (m["files_unchanged"].value > 0, m["rows_loaded"].value) for name, m in bronze.items()} == {
        "users": (True, 3), "viewing_sessions": (True, 2), "content": (True, 0)}
    modes = {e.asset_key.to_user_string(): e.materialization.metadata["incremental/mode"].value
             for e in other_daily.get_asset_materialization_events() if e.asset_key.path[0] == "gold"}
    assert set(modes.values()) == {"incremental"}, modes
    assert _checks(duck_daily) == _checks(other_daily)
    _assert_same_tables(duck, other)


def test_defective_demo_data_gives_the_same_tables_and_checks_on_duckdb_and_postgres(platform, postgres_url):
    # Parallel plans forced, as on large tables: the macros must be right for parallel workers too.
    parallel = {"parallel_setup_cost": "0", "parallel_tuple_cost": "0", "min_parallel_table_scan_size": "0",
                "max_parallel_workers_per_gather": "2"}
    _assert_same_as_duckdb(platform, PostgresWarehouse(url=postgres_url, session_settings=parallel))


def test_a_blocking_check_blocks_gold_on_postgres(platform, postgres_url, tmp_path):
    # silver/users SQL that forgets to deduplicate: the primary-key check must stop gold on PostgreSQL as on DuckDB.
    sql_dir = sql_without_users_dedup(tmp_path)
    demo_data.generate(platform.landing, sessions=500, seed=3, defects=False, progress=False)
    platform.write_csv("users_dup.csv", [{"user_id": "1", "email": "a@b.c", "signup_date": "2024-01-01"}])

    result = _run(platform, PostgresWarehouse(url=postgres_url, sql_dir=str(sql_dir)), raise_on_error=False)

    check = check_results(result)["silver/users:primary_key_unique"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert not materialized_keys(result) & {key.to_user_string() for key in GOLD_KEYS.values()}


def _sql_with_broken_file(tmp_path):
    """A copy of the SQL folder with broken.sql, whose statement 2 calls a function no engine has."""
    sql_dir = tmp_path / "sql"
    shutil.copytree(settings.sql_root(), sql_dir)
    (sql_dir / "broken.sql").write_text(
        "CREATE OR REPLACE TABLE gold.ok AS SELECT 1 AS x;\n"
        "CREATE OR REPLACE TABLE gold.broken AS SELECT no_such_function(x) AS y FROM gold.ok;\n"
    )
    return sql_dir


def test_the_duckdb_memory_limit_is_derived_from_the_machine_unless_set(monkeypatch):
    """Issue 21: a fixed 1GB cost speed on machines with memory. Half of what the process may use, at least 1GB;
    ETL_DUCKDB_MEMORY_LIMIT and the field still win."""
    from etl_platform.warehouse.duckdb_warehouse import machine_memory_limit

    assert machine_memory_limit(24 << 30) == "12GB" and machine_memory_limit(3 << 30) == "1536MB"
    assert machine_memory_limit(1 << 30) == "1GB"  # never below 1GB
    monkeypatch.delenv("ETL_DUCKDB_MEMORY_LIMIT", raising=False)
    assert DuckDBWarehouse().effective_memory_limit == machine_memory_limit()
    monkeypatch.setenv("ETL_DUCKDB_MEMORY_LIMIT", "700MB")
    assert DuckDBWarehouse().effective_memory_limit == "700MB"
    assert DuckDBWarehouse(memory_limit="2GB").effective_memory_limit == "2GB"


def test_sql_an_engine_cannot_run_names_the_file_the_statement_and_the_engine(platform, postgres_url, tmp_path):
    sql_dir = _sql_with_broken_file(tmp_path)
    warehouse = PostgresWarehouse(url=postgres_url, sql_dir=str(sql_dir))
    with warehouse.connect() as session:
        with pytest.raises(SqlScriptError) as raised:
            warehouse.run_script(session, "broken.sql")
        # The whole file is one transaction: the first statement's table is not left behind.
        assert not session.table_exists("gold.ok")
    message = str(raised.value)
    assert "broken.sql" in message and "statement 2" in message and "postgres" in message
    assert "no_such_function" in message


def test_unknown_engine_and_unreachable_server_name_the_setting():
    with pytest.raises(EngineSettingError, match=r"\$ETL_PLATFORM_ENGINE is 'oracle'.*duckdb, postgres, spark"):
        warehouse_for("oracle")
    unreachable = PostgresWarehouse(url="postgresql://etl:s3cret-pw@127.0.0.1:1/warehouse", connect_timeout_seconds=2)
    with pytest.raises(EngineSettingError) as raised:
        with unreachable.connect():
            pass
    message = str(raised.value)
    assert "PostgresWarehouse.url" in message and "ETL_PLATFORM_POSTGRES_URL" in message
    assert "127.0.0.1:1" in message and "s3cret-pw" not in message
    with pytest.raises(EngineSettingError, match=r"session_settings\['work_mem'\] = 'lots'"):
        with PostgresWarehouse(url=f"{SERVER}/test", session_settings={"work_mem": "lots"}).connect():
            pass


def test_the_definitions_bind_the_engine_the_environment_names(monkeypatch):
    monkeypatch.setenv("ETL_PLATFORM_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    warehouse = warehouse_for("postgres")
    assert warehouse.engine == "postgres" and isinstance(warehouse, PostgresWarehouse)
    assert warehouse_for(None).engine == warehouse_for("DuckDB").engine == "duckdb"
    assert isinstance(warehouse_for("spark"), SparkWarehouse)


def test_postgres_exports_stream_in_batches(postgres_url):
    warehouse = PostgresWarehouse(url=postgres_url)
    with warehouse.connect() as session:
        session.execute("CREATE TABLE gold.numbers AS SELECT n, 'row ' || n AS label, now() AS at "
                        "FROM generate_series(1, 2500) AS n")
        reader = session.arrow_reader("SELECT * FROM gold.numbers ORDER BY n", batch_rows=1000)
        sizes = [batch.num_rows for batch in reader]
    assert sizes == [1000, 1000, 500]


def test_postgres_parameters_leave_literals_and_jsonb_operators_alone(postgres_url):
    """Issue 20, item 13: every `?` became `%s`, so a string literal holding `?` and the JSONB operators broke."""
    warehouse = PostgresWarehouse(url=postgres_url)
    with warehouse.connect() as session:
        session.execute("CREATE TABLE bronze.engine_params (doc jsonb, note text)")
        session.execute("INSERT INTO bronze.engine_params VALUES (?, 'who? 100%'), (?, ?)",
                        ['{"a": 1}', '{"b": 2}', "why?"])
        rows = session.execute(
            "SELECT note, doc ? 'a', doc ?| array['b'], doc ?& array['a', 'b'] /* what? */ FROM bronze.engine_params "
            "WHERE note <> ? -- a comment? yes\n AND doc->>'a' IS DISTINCT FROM $$?$$ ORDER BY note", ["x?"]
        ).fetchall()
        assert rows == [("who? 100%", True, False, False), ("why?", False, True, False)]
        assert session.execute("SELECT count(*) FROM bronze.engine_params WHERE doc ? ? ", ["b"]).fetchone() == (1,)
        with pytest.raises(SqlScriptError, match="1 parameter placeholder.*for 2 value"):
            session.execute("SELECT ? ", [1, 2])


def test_postgres_exports_take_types_from_every_batch_not_the_first(postgres_url):
    """Issue 20: the PostgreSQL Arrow reader typed every batch like the first ("Unsupported cast from string to
    null" for a column NULL in the first batch; "Rescaling Decimal" for a numeric with more scale later)."""
    warehouse = PostgresWarehouse(url=postgres_url)
    with warehouse.connect() as session:
        session.execute("CREATE TABLE gold.late_values AS SELECT n, CASE WHEN n > 3 THEN 'text ' || n END AS late, "
                        "CASE WHEN n > 3 THEN n / 8.0 ELSE n END::numeric AS amount FROM generate_series(1, 6) AS n")
        table = session.arrow_reader("SELECT * FROM gold.late_values ORDER BY n", batch_rows=3).read_all()
    assert table.column("late").to_pylist() == [None, None, None, "text 4", "text 5", "text 6"]
    assert [float(v) for v in table.column("amount").to_pylist()] == [1, 2, 3, 0.5, 0.625, 0.75]


@pytest.mark.parametrize("engine, sql, expected", [
    ("postgres", "SELECT a, count(*) FROM t GROUP BY ALL", "SELECT a, COUNT(*) FROM t GROUP BY a"),
    ("postgres", "SELECT count(*) FROM b ANTI JOIN q USING (f)",
     "SELECT COUNT(*) FROM b WHERE NOT EXISTS(SELECT 1 FROM q WHERE q.f = b.f)"),
    ("postgres", "SELECT * FROM (SELECT 1)", "SELECT * FROM (SELECT 1) AS _subquery_1"),
    ("postgres", "SELECT try_cast(x AS INTEGER), format('{} of {}%', a, b)",
     "SELECT TRY_CAST_INT(x), FORMAT('%s of %s%%', a, b)"),
    # A pattern in adjacent literals (one literal to DuckDB): its placeholders too, in every part.
    ("postgres", "SELECT format('{} of ' '{}%', a, b)", "SELECT FORMAT('%s of %s%%', a, b)"),
    ("spark", "SELECT format('{} of ' '{}' || ' left', a, b)", "SELECT FORMAT_STRING('%s of %s left', a, b)"),
    ("postgres", "SELECT round(a / sum(a) OVER (), 4), round(b)",  # PostgreSQL rounds to places a numeric only
     "SELECT ROUND(CAST(CAST(a AS DOUBLE PRECISION) / SUM(a) OVER () AS DECIMAL), 4), ROUND(b)"),
    ("spark", "CREATE TEMP TABLE t AS SELECT 1 AS x", "CREATE OR REPLACE TEMPORARY VIEW t AS SELECT 1 AS x"),
    ("spark", "SELECT json_object('a', 1, 'b', NULL)",
     "SELECT TO_JSON(NAMED_STRUCT('a', 1, 'b', NULL), MAP('ignoreNullFields', 'false'))"),
    ("spark", "SELECT CAST(timezone('UTC', t) AS DATE) FROM s",
     "SELECT CAST(CAST(FROM_UTC_TIMESTAMP(t, 'UTC') AS TIMESTAMP_NTZ) AS DATE) FROM s"),
    ("spark", "SELECT try_cast(x AS INTEGER)", "SELECT TRY_CAST(x AS INT)"),
    ("spark", "CREATE OR REPLACE TABLE gold.t AS SELECT 1 AS x", "CREATE OR REPLACE TABLE gold.t AS SELECT 1 AS x"),
])
def test_duckdb_sql_is_compiled_for_each_engine(engine, sql, expected):
    assert [s.sql for s in compile_script(sql, engine, "test.sql")] == [expected]


def test_create_or_replace_becomes_drop_and_create():
    statements = compile_script("CREATE OR REPLACE TABLE gold.t AS SELECT 1 AS x", "postgres", "t.sql")
    assert [s.sql for s in statements] == ["DROP TABLE IF EXISTS gold.t", "CREATE TABLE gold.t AS SELECT 1 AS x"]
    assert {s.number for s in statements} == {1}


def _bronze(warehouse, table: str) -> list[tuple]:
    with warehouse.connect() as session:
        names = [n for n, _ in session.columns(table) if n not in ("_ingested_at",)]
        rows = session.execute(f"SELECT {', '.join(chr(34) + n + chr(34) for n in names)} FROM {table}").fetchall()
    return sorted(tuple(_normalised(v, n) for v, n in zip(row, names)) for row in rows)


def test_sources_land_in_bronze_the_same_on_duckdb_and_postgres(platform, postgres_url, tmp_path):
    """Files (merge by file, a column added later) and a PostgreSQL table read incrementally (append), run twice."""
    from etl_platform.sources import FileSource, PostgresSource, ingest

    require_service("PostgreSQL", 5432)
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "a.csv").write_text("id,name\n1,one\n2,two\n")
    table = f"engines_events_{os.getpid()}"
    warehouses = {"duckdb": platform.warehouse(), "postgres": PostgresWarehouse(url=postgres_url)}
    with psycopg.connect(f"{SERVER}/test", autocommit=True) as pg:
        pg.execute(f"DROP TABLE IF EXISTS {table}")
        pg.execute(f"CREATE TABLE {table} (id int, amount numeric(10, 2), at timestamptz)")
        pg.execute(f"INSERT INTO {table} SELECT g, g * 1.5, '2024-01-01'::timestamptz + g * interval '1 hour' "
                   "FROM generate_series(1, 50) AS g")
        files = FileSource(url=str(drops))
        events = PostgresSource(database="test", table=table, cursor_column="at")
        try:
            results = {}
            for engine, warehouse in warehouses.items():
                with warehouse.connect() as session:
                    results[engine] = [ingest(session, files, "drops").rows_written,
                                       ingest(session, events, "events").rows_written]
            (drops / "a.csv").write_text("id,name,extra\n1,uno,x\n")  # changed, with a new column
            (drops / "b.csv").write_text("id,name\n3,three\n")
            pg.execute(f"INSERT INTO {table} SELECT g, g * 1.5, '2024-01-01'::timestamptz + g * interval '1 hour' "
                       "FROM generate_series(51, 60) AS g")
            for engine, warehouse in warehouses.items():
                with warehouse.connect() as session:
                    results[engine] += [ingest(session, files, "drops").rows_written,
                                        ingest(session, events, "events").rows_written]
        finally:
            pg.execute(f"DROP TABLE IF EXISTS {table}")
    assert results["duckdb"] == results["postgres"] == [2, 50, 2, 10]
    for bronze_table in ("bronze.drops", "bronze.events"):
        assert _bronze(warehouses["postgres"], bronze_table) == _bronze(warehouses["duckdb"], bronze_table)
    with warehouses["postgres"].connect() as session:
        assert dict(session.columns("bronze.drops"))["extra"] == "VARCHAR"
        assert session.execute("SELECT count(*) FROM bronze.events").fetchone()[0] == 60


# ---- DuckDB: one open database per run


class _CountingDuckDBWarehouse(DuckDBWarehouse):
    """The real DuckDB warehouse, counting how often it opens the file and prepares a connection (macros)."""

    opened: int = 0
    prepared: int = 0

    def _open(self, database, config):
        type(self).opened += 1
        return super()._open(database, config)

    def sql_text(self, relative_path):
        if relative_path == "macros.sql":
            type(self).prepared += 1
        return super().sql_text(relative_path)


def test_a_duckdb_run_opens_the_warehouse_once_and_releases_it_when_the_run_ends(platform):
    demo_data.generate(platform.landing, sessions=300, seed=2, defects=True, progress=False)
    _CountingDuckDBWarehouse.opened = _CountingDuckDBWarehouse.prepared = 0
    warehouse = _CountingDuckDBWarehouse(path=str(platform.warehouse_file), temp_directory=str(platform.home / "tmp"))
    result = _run(platform, warehouse)
    # 11 assets and their 11 check steps shared one open database: no re-open, no checkpoint per step; and one
    # connection, its settings and macros made once, each step giving it back to the next.
    assert len(materialized_keys(result)) == 11 and _CountingDuckDBWarehouse.opened == 1
    assert _CountingDuckDBWarehouse.prepared == 1
    # The file lock ends with the run: another process can write to the warehouse at once.
    done = subprocess.run([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                           "c.execute('CREATE TABLE gold.after_the_run AS SELECT 1 AS x'); "
                           "print(c.execute('SELECT count(*) FROM gold.viewing_fact').fetchone()[0])",
                           str(platform.warehouse_file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == platform.scalar("SELECT count(*) FROM gold.viewing_fact") > 0
    # Outside a run (a script, a test calling connect()) each connection opens and closes the file itself.
    with warehouse.connect() as conn:
        assert conn.execute("SELECT x FROM gold.after_the_run").fetchall() == [(1,)]
    assert _CountingDuckDBWarehouse.opened == 2 and warehouse._database is None


def test_a_step_connection_left_inside_a_transaction_is_not_given_to_the_next_step(platform):
    """A step's connection goes to the next step only when the step ended cleanly: one that failed, or left its own
    transaction open, is closed (rolling it back), so the next step neither sees nor inherits it."""
    warehouse = DuckDBWarehouse(path=str(platform.warehouse_file), temp_directory=str(platform.home / "tmp"))
    warehouse.setup_for_execution(dg.build_init_resource_context())
    try:
        with warehouse.connect() as conn:
            conn.execute("CREATE TABLE bronze.t AS SELECT 1 AS x")
            conn.execute("SELECT * FROM range(10)").fetchone()  # a result left unread
            first = conn.raw
        with warehouse.connect() as conn:
            assert conn.raw is first  # given back and taken again
            assert arrow_table(conn.raw.sql("SELECT x FROM bronze.t")).num_rows == 1  # not refused for that result
            conn.execute("BEGIN TRANSACTION")
            conn.execute("INSERT INTO bronze.t VALUES (2)")  # never committed
        with pytest.raises(ZeroDivisionError):
            with warehouse.connect() as conn:
                assert conn.raw is not first  # the open transaction's connection was closed, not given back
                second = conn.raw
                conn.execute("BEGIN TRANSACTION; INSERT INTO bronze.t VALUES (3)")
                1 / 0
        with warehouse.connect() as conn:
            assert conn.raw is not second  # nor the failed step's
            assert conn.execute("SELECT x FROM bronze.t").fetchall() == [(1,)]
            assert conn.execute("SELECT as_integer('7')").fetchone()[0] == 7  # a new connection is prepared
    finally:
        warehouse.teardown_after_execution(dg.build_init_resource_context())
    assert warehouse._database is None and warehouse._idle == []


def test_a_step_gives_its_connection_back_without_the_pages_it_read(platform):
    """DuckDB keeps what it reads until memory_limit: over a run's steps the process grew with every table read.
    A step's connection goes to the next one with the buffer pool let go (the limit as configured again)."""
    warehouse = DuckDBWarehouse(path=str(platform.warehouse_file), temp_directory=str(platform.home / "tmp"),
                                memory_limit="2GB")
    warehouse.setup_for_execution(dg.build_init_resource_context())
    in_use = "SELECT sum(memory_usage_bytes) / 2**20 FROM duckdb_memory()"
    try:
        with warehouse.connect() as conn:
            # ~130 MB of doubles that do not compress
            conn.execute("CREATE TABLE bronze.wide AS SELECT random() AS a, random() AS b FROM range(10000000)")
            conn.execute("CHECKPOINT")
            assert conn.execute("SELECT count(*) FROM bronze.wide WHERE a < 2 AND b < 2").fetchone()[0] == 10_000_000
            limit = conn.execute("SELECT current_setting('memory_limit')").fetchone()[0]
            assert conn.execute(in_use).fetchone()[0] > 120  # the table's pages, held
            first = conn.raw
        with warehouse.connect() as conn:
            assert conn.raw is first
            assert conn.execute(in_use).fetchone()[0] < 70
            assert conn.execute("SELECT current_setting('memory_limit')").fetchone()[0] == limit
            assert conn.execute("SELECT count(*) FROM bronze.wide").fetchone()[0] == 10_000_000
    finally:
        warehouse.teardown_after_execution(dg.build_init_resource_context())


def test_a_step_gives_its_connection_back_with_its_changes_checkpointed(platform):
    """Rows a committed step deleted and inserted stay in memory DuckDB cannot evict until a checkpoint (tens of
    MB for a delete scattered over 2M rows): the next step's delta memory bound lacked it (gold.viewing_fact failed on
    a 128MB bound after silver.viewing_sessions' daily run). A step's connection goes to the next one with its
    changes checkpointed, so that memory is free."""
    warehouse = DuckDBWarehouse(path=str(platform.warehouse_file), temp_directory=str(platform.home / "tmp"),
                                memory_limit="1GB")
    pinned = "SELECT coalesce(sum(memory_usage_bytes), 0) / 2**20 FROM duckdb_memory()"
    with warehouse.connect() as conn:
        conn.execute("CREATE TABLE silver.facts AS SELECT range AS id, range % 1000 AS user_id, "
                     "md5(CAST(range AS VARCHAR)) AS payload FROM range(2000000)")
    warehouse.setup_for_execution(dg.build_init_resource_context())
    try:
        with warehouse.connect() as conn:
            conn.execute("SET wal_autocheckpoint = '1GB'")  # no checkpoint of DuckDB's own in between
            conn.execute("BEGIN TRANSACTION")
            conn.execute("DELETE FROM silver.facts WHERE user_id IN (1, 2, 3)")  # rows of every row group
            conn.execute("INSERT INTO silver.facts SELECT 3000000 + range, 1, 'new' FROM range(5000)")
            conn.execute("COMMIT")
            first = conn.raw
        with warehouse.connect() as conn:
            assert conn.raw is first
            assert conn.execute(pinned).fetchone()[0] < 8
            conn.execute("SET memory_limit = '8MB'")  # nothing pinned above that (it failed before)
            conn.execute("SET memory_limit = '1GB'")
            assert conn.execute("SELECT count(*), count(*) FILTER (WHERE payload = 'new') FROM silver.facts"
                                ).fetchone() == (2_000_000 - 6000 + 5000, 5000)
    finally:
        warehouse.teardown_after_execution(dg.build_init_resource_context())


def test_a_duckdb_database_the_run_can_no_longer_use_is_opened_again(platform):
    """A fatal DuckDB error (a full disk during a commit) leaves the open database refusing every statement; the
    next step's connect opens the file again. Simulated by closing the run's database under the warehouse."""
    warehouse = DuckDBWarehouse(path=str(platform.warehouse_file), temp_directory=str(platform.home / "tmp"))
    warehouse.setup_for_execution(dg.build_init_resource_context())
    try:
        with warehouse.connect() as conn:
            conn.execute("CREATE TABLE bronze.kept AS SELECT 42 AS answer")
        warehouse._database.close()
        with warehouse.connect() as conn:
            assert conn.execute("SELECT answer FROM bronze.kept").fetchall() == [(42,)]
    finally:
        warehouse.teardown_after_execution(dg.build_init_resource_context())
    assert warehouse._database is None


def test_connections_setting_up_the_postgres_warehouse_at_once_all_succeed(postgres_url):
    """Each connection makes the schemas and macros; PostgreSQL's catalog refused two at once ("tuple concurrently
    updated"): two run workers starting steps together failed. Setup is serialized by an advisory lock."""
    import threading

    warehouse, errors = PostgresWarehouse(url=postgres_url), []
    barrier = threading.Barrier(6)

    def connect() -> None:
        barrier.wait()
        try:
            with warehouse.connect() as session:
                session.execute("SELECT 1").fetchall()
        except Exception as error:  # noqa: BLE001 - every failure is the finding
            errors.append(error)

    for _ in range(3):
        threads = [threading.Thread(target=connect) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
