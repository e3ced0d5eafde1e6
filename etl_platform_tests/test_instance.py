"""The Dagster instance configurations shipped in the repository load and store runs.

The PostgreSQL one runs against the machine's PostgreSQL (127.0.0.1:5432, trust auth); with
CI=true a server that cannot be reached fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from etl_platform.landing import LandingZone
from etl_platform.video_analytics.assets import build_assets
from etl_platform.video_analytics.checks import QualityPolicy, build_asset_checks
from etl_platform.warehouse import DuckDBWarehouse
from etl_platform_tests.test_silver import user

REPO = Path(__file__).resolve().parents[1]
PG = {"host": os.environ.get("ETL_TEST_PG_HOST", "127.0.0.1"), "port": os.environ.get("ETL_TEST_PG_PORT", "5432"),
      "user": os.environ.get("ETL_TEST_PG_USER", "postgres")}


def run_bronze_users(instance: dg.DagsterInstance, platform) -> dg.ExecuteInProcessResult:
    platform.write_csv("users_1.csv", [user("1")])
    return dg.materialize(
        [*build_assets(), *build_asset_checks()],
        selection="bronze/users",
        instance=instance,
        resources={"warehouse": DuckDBWarehouse(path=str(platform.warehouse_file)),
                   "landing": LandingZone(root=str(platform.home / "landing"), settle_seconds=0),
                   "quality_policy": QualityPolicy()},
    )


def test_sqlite_instance_from_repository_dagster_yaml(platform, monkeypatch):
    monkeypatch.chdir(platform.home)  # the yaml's storage folders are relative to the working directory
    instance = dg.DagsterInstance.from_config(str(REPO))
    result = run_bronze_users(instance, platform)
    assert result.success
    assert (platform.home / ".etl_platform" / "dagster" / "storage" / "history" / "runs.db").exists()
    assert instance.get_run_by_id(result.run_id) is not None


@pytest.fixture
def pg_database():
    name = f"etl_dagster_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(dbname="postgres", **PG)
    except psycopg2.OperationalError as error:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG['host']}:{PG['port']}: {error}")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    yield name
    admin.cursor().execute(f"DROP DATABASE {name} WITH (FORCE)")
    admin.close()


def test_postgres_instance_selected_by_environment(platform, pg_database, monkeypatch):
    monkeypatch.chdir(platform.home)
    for key, value in {"DAGSTER_PG_HOST": PG["host"], "DAGSTER_PG_PORT": PG["port"], "DAGSTER_PG_USER": PG["user"],
                       "DAGSTER_PG_PASSWORD": "not-used-with-trust-auth", "DAGSTER_PG_DB": pg_database}.items():
        monkeypatch.setenv(key, value)
    instance = dg.DagsterInstance.from_config(str(REPO / "deploy" / "postgres"))
    try:
        result = run_bronze_users(instance, platform)
        assert result.success
        with psycopg2.connect(dbname=pg_database, **PG) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM runs WHERE run_id = %s", [result.run_id])
            assert cursor.fetchone()[0] == 1
    finally:
        instance.dispose()
