"""The project as a `dg` project (pyproject.toml's [tool.dg], components in etl_platform/defs/): `dg check defs`,
`dg list defs`, `dg list components`, `dg launch`, run as a user runs them, and a snapshot of the code location
(what it holds: assets, their groups, kinds and dependencies, checks, jobs, schedules, sensors, resources).

A change to the code location that changes the snapshot fails here until the snapshot is written again:
``ETL_UPDATE_SNAPSHOTS=1 pytest etl_platform_tests/test_dg_project.py``, and the diff is reviewed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb

from etl_platform.video_analytics import demo_data

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAPSHOT = Path(__file__).parent / "snapshots" / "code_location.json"
LOCATION_ENV = ("ETL_PLATFORM_ENGINE", "ETL_PLATFORM_EXPORTS", "ETL_PLATFORM_JOBS", "DAGSTER_HOME")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LOCATION_ENV}
    return {**env, "ETL_PLATFORM_HOME": str(tmp_path / "home"), **extra}


def _dg(*args: str, env: dict[str, str], cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "dg", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_dg_check_defs_validates_the_components_and_loads_the_location(tmp_path):
    run = _dg("check", "defs", env=_env(tmp_path))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "All component YAML validated successfully" in run.stdout + run.stderr
    assert "All definitions loaded successfully" in run.stdout + run.stderr


def test_dg_list_components_shows_the_project_component_types(tmp_path):
    run = _dg("list", "components", "--json", env=_env(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    keys = {entry["key"] for entry in json.loads(run.stdout)["items"]}
    assert {"etl_platform.components.SqlMedallion", "etl_platform.components.WarehouseExports",
            "etl_platform.components.YamlJobs", "etl_platform.components.PlatformOperations"} <= keys


def _snapshot(listed: dict) -> dict:
    return {
        "assets": {a["asset_key"]: {"group": a["group_name"], "kinds": sorted(a["kinds"]),
                                    "deps": sorted(a["dependency_keys"]),
                                    "source": (a.get("source") or "").rsplit(":", 1)[0]}
                   for a in listed["assets"]},
        "asset_checks": sorted(c["key"] for c in listed["asset_checks"]),
        "jobs": sorted(j["name"] for j in listed["jobs"]),
        "schedules": {s["name"]: s["cron_schedule"] for s in listed["schedules"]},
        "sensors": sorted(s["name"] for s in listed["sensors"]),
        "resources": {r["name"]: r["type"] for r in listed["resources"]},
    }


def test_the_code_location_matches_its_snapshot(tmp_path):
    """`dg list defs --json` on the default (DuckDB, no exports file, no YAML jobs) against the reviewed snapshot.
    It also proves the same definitions load through `dg` as through `-m etl_platform.definitions`."""
    run = _dg("list", "defs", "--json", env=_env(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    current = _snapshot(json.loads(run.stdout))
    if os.environ.get("ETL_UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), (
        "the code location changed: review it and write the snapshot again (ETL_UPDATE_SNAPSHOTS=1)")

    from etl_platform.definitions import defs
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == set(current["assets"])
    for key in graph.get_all_asset_keys():
        parents = sorted(p.to_user_string() for p in graph.get(key).parent_keys)
        assert parents == current["assets"][key.to_user_string()]["deps"]


def test_dg_launch_runs_the_job_under_its_own_name(tmp_path, monkeypatch):
    """README command 1: `dg launch --job video_analytics_pipeline` (the run carries the job's name, not
    __ASSET_JOB), then `dg launch --assets` of one asset, and `etl-platform summary`."""
    demo_data.generate(tmp_path / "home" / "landing" / "video_analytics", sessions=2_000, seed=7, defects=True,
                       progress=False)
    (tmp_path / "dagster").mkdir()
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster" / "dagster.yaml")
    env = _env(tmp_path, DAGSTER_HOME=str(tmp_path / "dagster"))
    # the instance's folders in dagster.yaml are relative: run from tmp_path, pointing dg at the project
    run = _dg("launch", "--job", "video_analytics_pipeline", "--target-path", str(ROOT), env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " - video_analytics_pipeline - " in run.stdout + run.stderr
    assert (tmp_path / ".etl_platform" / "dagster").is_dir()  # the repository's instance settings were used
    with duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb"), read_only=True) as conn:
        facts = conn.execute("SELECT count(*) FROM gold.viewing_fact").fetchone()[0]
        assert facts == conn.execute("SELECT count(*) FROM silver.viewing_sessions").fetchone()[0] > 1_500

    summary = subprocess.run([BIN / "etl-platform", "summary"], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=120)
    assert summary.returncode == 0, summary.stderr
    assert "(video_analytics_pipeline, success)" in summary.stdout

    one = _dg("launch", "--assets", "gold/daily_viewing", "--target-path", str(ROOT), env=env, cwd=tmp_path)
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    monkeypatch.chdir(tmp_path)  # the instance's folders are relative to where it was started
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        jobs = [record.dagster_run.job_name for record in instance.get_run_records()]
    assert sorted(jobs) == ["__ASSET_JOB", "video_analytics_pipeline"]

    materialized = instance_materialization(tmp_path, dg.AssetKey(["gold", "user_engagement"]))
    lineage = materialized.metadata["dagster/column_lineage"].value
    assert lineage.deps_by_column["favorite_device"] == [
        dg.TableColumnDep(asset_key=dg.AssetKey(["silver", "viewing_sessions"]), column_name="device")]


def instance_materialization(tmp_path: Path, key: dg.AssetKey):
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        event = instance.get_latest_materialization_event(key)
    assert event is not None, key
    return event.asset_materialization
