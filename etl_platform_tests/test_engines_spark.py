"""The Spark engine in local mode: a blocking check stops gold, an asset's checks run as one query, errors name the
file, the statement and the setting, lakes stay apart. (The comparison with DuckDB on a standalone cluster is
test_engines_spark_cluster.py; on DuckDB and PostgreSQL, test_engines.py. Three files so that xdist, which runs a
file whole in one worker, runs the Spark tests beside the rest.)"""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
import pytest

from etl_platform.video_analytics import demo_data
from etl_platform.video_analytics.assets import GOLD_KEYS
from etl_platform.warehouse import SqlScriptError
from etl_platform.spark_session import SparkMasterError, SparkSessionResource
from etl_platform.warehouse.spark_warehouse import SparkWarehouse
from etl_platform_tests.conftest import check_results, materialized_keys, sql_without_users_dedup
from etl_platform_tests.test_engines import _run, _sql_with_broken_file


def test_a_blocking_check_blocks_gold_on_spark(platform, tmp_path):
    sql_dir = sql_without_users_dedup(tmp_path)
    demo_data.generate(platform.landing, sessions=500, seed=3, defects=False, progress=False)
    platform.write_csv("users_dup.csv", [{"user_id": "1", "email": "a@b.c", "signup_date": "2024-01-01"}])

    warehouse = SparkWarehouse(lake_path=str(platform.home / "lake"), sql_dir=str(sql_dir))
    result = _run(platform, warehouse, raise_on_error=False)

    check = check_results(result)["silver/users:primary_key_unique"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert not materialized_keys(result) & {key.to_user_string() for key in GOLD_KEYS.values()}
    assert not (platform.home / "lake" / "gold").exists() or not any((platform.home / "lake" / "gold").iterdir())


def test_an_assets_checks_run_as_one_spark_query_with_the_verdicts_they_give_one_by_one(tmp_path):
    """On Spark a query is a job: an asset's checks run as one query (quality.evaluate_checks). The verdicts are
    those of running each alone; a check that cannot be part of it runs alone, and when the one query fails every
    check runs alone, each error naming its check."""
    import logging

    from etl_platform.quality import SqlCheck, evaluate_checks, no_null, unique

    key = dg.AssetKey(["gold", "checked"])
    good = [
        unique("gold.checked", ["id"]),
        no_null("gold.checked", ["id", "label"]),
        SqlCheck("says_its_severity", "a query that decides its severity",
                 "SELECT count(*) AS violations, 'WARN' AS severity FROM gold.checked WHERE label IS NULL"),
        SqlCheck("no_details", "only violations", "SELECT 0 AS violations"),
    ]
    odd = [
        SqlCheck("two_rows", "returns two rows", "SELECT 1 AS violations UNION ALL SELECT 2"),
        SqlCheck("no_violations_column", "names no violations", "SELECT 1 AS found"),
    ]
    failing = SqlCheck("fails_on_spark", "a function Spark lacks", "SELECT no_such_function(1) AS violations")

    def verdicts(session, checks):
        results = evaluate_checks(session, key, checks, None, logging.getLogger("checks"))
        return {r.check_name: (r.passed, r.severity, r.description, r.metadata.get("violations"))
                for r in results}

    warehouse = SparkWarehouse(lake_path=str(tmp_path / "lake"))
    with warehouse.connect() as session:
        session.execute("CREATE OR REPLACE TABLE gold.checked AS SELECT * FROM (VALUES (1, 'a'), (1, 'b'), "
                        "(2, NULL)) AS t(id, label)")
        queries = []
        query = session.query
        session.query = lambda sql, *args, **kwargs: queries.append(sql) or query(sql, *args, **kwargs)
        together = verdicts(session, good + odd)
        assert queries[1:] == [check.sql for check in odd]  # two rows: left out of the one query; no violations:
        assert "AS found" not in queries[0] and "_check_4" in queries[0]  # never in it
        queries.clear()
        after_a_failure = verdicts(session, [*good, failing])
        assert len(queries) == 1 + len(good) + 1  # the query of all failed: each alone
        session.checks_in_one_query = False
        queries.clear()
        alone = verdicts(session, good + odd)
        assert len(queries) == len(good + odd)
    assert together == alone
    assert {name: verdict for name, verdict in after_a_failure.items() if name != "fails_on_spark"} == {
        name: alone[name] for name in alone if name in {check.name for check in good}}
    assert not after_a_failure["fails_on_spark"][0] and "fails_on_spark" in after_a_failure["fails_on_spark"][2]
    assert alone["primary_key_unique"][:2] == (False, dg.AssetCheckSeverity.ERROR)
    assert alone["says_its_severity"][:2] == (False, dg.AssetCheckSeverity.WARN)
    assert alone["no_details"][0] and not alone["two_rows"][0] and "2 row(s)" in alone["two_rows"][2]
    assert "found" in alone["no_violations_column"][2]


def test_sql_spark_cannot_run_names_the_file_the_statement_and_the_engine(tmp_path):
    sql_dir = _sql_with_broken_file(tmp_path)
    warehouse = SparkWarehouse(lake_path=str(tmp_path / "lake"), sql_dir=str(sql_dir))
    with warehouse.connect() as session:
        with pytest.raises(SqlScriptError) as raised:
            warehouse.run_script(session, "broken.sql")
        assert not session.table_exists("gold.broken")
    message = str(raised.value)
    assert "broken.sql" in message and "statement 2" in message and "spark" in message
    assert "no_such_function" in message.lower()


def test_spark_lakes_keep_their_tables_when_another_lake_is_used_in_the_same_process(tmp_path):
    first, second = (SparkWarehouse(lake_path=str(tmp_path / name)) for name in ("first", "second"))
    with first.connect() as session:
        session.execute("CREATE OR REPLACE TABLE gold.kept AS SELECT 1 AS x")
        session.execute("CREATE TABLE IF NOT EXISTS bronze.rows (a VARCHAR, at TIMESTAMPTZ)")
        session.execute("INSERT INTO bronze.rows VALUES (?, ?)", ["a", datetime(2024, 1, 1, tzinfo=timezone.utc)])
        session.execute("INSERT INTO bronze.rows VALUES (?, ?)", ["b", datetime(2024, 1, 2, tzinfo=timezone.utc)])
        session.execute("DELETE FROM bronze.rows WHERE a = ?", ["a"])
    with second.connect() as session:
        assert not session.table_exists("gold.kept")
        session.execute("CREATE OR REPLACE TABLE gold.other AS SELECT 2 AS x")
    with first.connect() as session:
        assert session.execute("SELECT x FROM gold.kept").fetchall() == [(1,)]
        assert session.execute("SELECT * FROM bronze.rows").fetchall() == [("b", datetime(2024, 1, 2, tzinfo=timezone.utc))]
        assert not session.table_exists("gold.other")
        assert session.columns("bronze.rows") == [("a", "VARCHAR"), ("at", "TIMESTAMP WITH TIME ZONE")]


def test_a_relative_lake_folder_reaches_spark_as_an_absolute_path(tmp_path, monkeypatch):
    """Issue 23, trip-up 1: with the default relative lake (.etl_platform/lake) every bronze step failed on Spark
    with UNABLE_TO_INFER_SCHEMA, naming no path: Spark resolved the folder against its own warehouse folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ETL_PLATFORM_HOME", ".etl_platform")
    monkeypatch.delenv("ETL_PLATFORM_LAKE", raising=False)
    assert SparkWarehouse().lake == str(tmp_path / ".etl_platform" / "lake")
    assert SparkWarehouse(lake_path="s3a://lake/prefix").lake == "s3a://lake/prefix"
    with SparkWarehouse().connect() as session:
        session.execute("CREATE SCHEMA IF NOT EXISTS bronze")
        session.execute("CREATE TABLE bronze.relative_probe AS SELECT 1 AS a")
        assert session.execute("SELECT count(*) FROM bronze.relative_probe").fetchone()[0] == 1
    assert (tmp_path / ".etl_platform" / "lake" / "bronze" / "relative_probe").is_dir()


def test_sources_refuse_the_spark_warehouse_naming_the_engines_that_take_them(tmp_path):
    from etl_platform.errors import ConfigurationError
    from etl_platform.sources import FileSource, ingest

    (tmp_path / "drops").mkdir()
    (tmp_path / "drops" / "a.csv").write_text("id\n1\n")
    with SparkWarehouse(lake_path=str(tmp_path / "lake")).connect() as session:
        with pytest.raises(ConfigurationError, match=r"source 'drops'.*duckdb and postgres.*spark warehouse"):
            ingest(session, FileSource(url=str(tmp_path / "drops")), "drops")
        assert not session.table_exists("bronze.drops")


def test_an_unreachable_spark_master_names_the_setting(tmp_path):
    warehouse = SparkWarehouse(lake_path=str(tmp_path / "lake"),
                               spark=SparkSessionResource(spark_config={"spark.master": "spark://127.0.0.1:1"}))
    with pytest.raises(SparkMasterError) as raised:
        with warehouse.connect():
            pass
    message = str(raised.value)
    assert "spark://127.0.0.1:1" in message and "SparkWarehouse.spark.spark_config['spark.master']" in message
