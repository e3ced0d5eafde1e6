"""The Dagster instance configurations shipped in the repository load and store runs.

The PostgreSQL one runs against the machine's PostgreSQL (127.0.0.1:5432, trust auth); with
CI=true a server that cannot be reached fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from etl_platform.instance_storage import OPEN_ENGINES, PooledSqliteEventLogStorage
from etl_platform.landing import LandingZone
from etl_platform.video_analytics.assets import RefreshPolicy, build_assets
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
                   "quality_policy": QualityPolicy(), "refresh_policy": RefreshPolicy()},
    )


def test_sqlite_instance_from_repository_dagster_yaml(platform, monkeypatch):
    monkeypatch.chdir(platform.home)  # the yaml's storage folders are relative to the working directory
    instance = dg.DagsterInstance.from_config(str(REPO))
    assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
    result = run_bronze_users(instance, platform)
    assert result.success
    storage = platform.home / ".etl_platform" / "dagster" / "storage"
    # the folders of `storage: sqlite:`, so an instance written before keeps its history
    assert (storage / "history" / "runs.db").exists() and (storage / "history" / "runs" / "index.db").exists()
    assert (storage / "history" / "runs" / f"{result.run_id}.db").exists()
    assert instance.get_run_by_id(result.run_id) is not None

    # Another instance (as the webserver would open it) reads the run's events, its materialization and the
    # check evaluations: what the pooled connections wrote is committed.
    other = dg.DagsterInstance.from_config(str(REPO))
    assert [e.dagster_event_type for e in other.all_logs(result.run_id)] == \
        [e.dagster_event_type for e in instance.all_logs(result.run_id)]
    assert other.get_latest_materialization_event(dg.AssetKey(["bronze", "users"])).run_id == result.run_id
    check_key = dg.AssetCheckKey(dg.AssetKey(["bronze", "users"]), "expected_columns_present")
    assert other.event_log_storage.get_latest_asset_check_execution_by_key([check_key])[check_key].run_id == \
        result.run_id


def test_pooled_event_log_shares_the_files_with_other_processes_and_bounds_open_files(platform, monkeypatch):
    monkeypatch.chdir(platform.home)
    instance = dg.DagsterInstance.from_config(str(REPO))
    storage = instance.event_log_storage
    first = run_bronze_users(instance, platform)  # this process now holds idle connections to the index and run

    # Another process writes a run into the same files while those connections stay open: no lock is held.
    code = (f"import dagster as dg; from etl_platform_tests.test_instance import run_bronze_users; "
            f"from etl_platform_tests.conftest import Platform; from pathlib import Path; "
            f"r = run_bronze_users(dg.DagsterInstance.from_config({str(REPO)!r}), Platform(Path({str(platform.home)!r}))); "
            f"print(r.run_id)")
    other = subprocess.run([sys.executable, "-c", code], cwd=platform.home, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    assert other.returncode == 0, other.stderr[-3000:]
    other_run = other.stdout.strip().splitlines()[-1]
    assert instance.get_run_by_id(other_run) is not None
    assert dg.DagsterEventType.RUN_SUCCESS in {e.dagster_event_type for e in instance.all_logs(other_run)}

    for _ in range(OPEN_ENGINES + 2):  # more run databases than it keeps open: the least recent are closed
        assert run_bronze_users(instance, platform).success
    assert len(storage._engines) == OPEN_ENGINES and "index" in storage._engines
    assert len(instance.all_logs(first.run_id)) > 0  # a closed one opens again when read

    instance.wipe()  # deletes the run databases: no open connection may keep a deleted file
    assert not any(name != "index" for name in storage._engines)
    assert run_bronze_users(instance, platform).success


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
