"""Housekeeping (issue 25): runs older than the retention go with their event logs and database files, the newest
of each job, tagged and unfinished runs stay; the instance files are vacuumed; the execution log keeps Delta's
retention; the warehouse's free space is reported and rewritten only when asked. On a real instance made from the
repository's dagster.yaml (the embedded default)."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_platform.housekeeping import KEEP_TAG, RetentionPolicy, prune_runs, vacuum_sqlite

REPO = Path(__file__).resolve().parents[1]


@dg.asset
def tiny() -> int:
    return 1


@dg.asset
def broken() -> int:
    raise RuntimeError("this run fails on purpose")


DEFS = dg.Definitions(assets=[tiny, broken], jobs=[
    dg.define_asset_job("alpha", selection=[tiny]), dg.define_asset_job("beta", selection=[tiny]),
    dg.define_asset_job("gamma", selection=[broken])])


def open_instance(folder: Path, monkeypatch) -> dg.DagsterInstance:
    """The repository's instance configuration (relative SQLite folders) in ``folder``."""
    shutil.copy(REPO / "dagster.yaml", folder / "dagster.yaml")
    monkeypatch.chdir(folder)
    return dg.DagsterInstance.from_config(str(folder))


def run(instance: dg.DagsterInstance, job: str, keep: bool = False) -> str:
    result = DEFS.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False,
                                                      tags={KEEP_TAG: "true"} if keep else None)
    return result.run_id


def run_file(instance: dg.DagsterInstance, run_id: str) -> Path:
    return Path(instance.event_log_storage.path_for_shard(run_id))


@pytest.fixture
def instance(tmp_path, monkeypatch):
    with open_instance(tmp_path, monkeypatch) as opened:
        yield opened


def test_exactly_the_runs_older_than_the_retention_go_with_their_event_logs(instance):
    old_alpha = [run(instance, "alpha", keep=(n == 0)) for n in range(4)]
    old_beta = [run(instance, "beta") for _ in range(3)]
    old_gamma = run(instance, "gamma")  # a failed run
    boundary = datetime.now(timezone.utc)
    recent_alpha = [run(instance, "alpha") for _ in range(2)]
    queued = dg.DagsterRun(job_name="alpha", run_id="00000000-running-run", status=dg.DagsterRunStatus.STARTED)
    instance.add_run(queued)
    assert instance.get_run_by_id(old_gamma).status == dg.DagsterRunStatus.FAILURE
    sizes_before = {r: run_file(instance, r).stat().st_size for r in old_alpha + old_beta}
    captured = Path(instance.compute_log_manager._base_dir)  # each run's stdout/stderr, captured
    assert all((captured / run_id).is_dir() for run_id in old_alpha + old_beta)
    assert all(size > 0 for size in sizes_before.values())

    lines = []
    result = prune_runs(instance, RetentionPolicy(retention_days=30, keep_last=2),
                        now=boundary + timedelta(days=30), log=lines.append)

    expected = set(old_alpha[1:] + old_beta[:1])  # alpha: old 2-4 (1 tagged); beta: its oldest (2 newest kept)
    assert set(result.deleted) == expected
    assert (result.kept_recent, result.kept_last, result.kept_tagged, result.unfinished) == (2, 3, 1, 1)
    for run_id in expected:
        assert not (captured / run_id).exists()  # its captured stdout/stderr too
        assert not run_file(instance, run_id).exists()  # its own database file is gone too (reading it below
        assert instance.get_run_by_id(run_id) is None   # makes Dagster create an empty one again)
        assert list(instance.all_logs(run_id)) == []
    for run_id in [old_alpha[0], *old_beta[1:], old_gamma, *recent_alpha]:
        assert instance.get_run_by_id(run_id) is not None and list(instance.all_logs(run_id))
    assert (captured / old_alpha[0]).is_dir()
    assert instance.get_run_by_id(queued.run_id).status == dg.DagsterRunStatus.STARTED
    latest = instance.get_latest_materialization_event(dg.AssetKey("tiny"))
    assert latest is not None and latest.run_id == recent_alpha[-1]
    assert "4 deleted" in lines[0] and f"{KEEP_TAG}=true" in lines[0]

    vacuumed = vacuum_sqlite(instance)
    assert 0 < vacuumed["bytes_after"] <= vacuumed["bytes_before"]
    assert len(instance.get_run_records()) == 7  # 11 runs, 4 deleted; the instance still works after the vacuum
    run(instance, "alpha")
    assert len(instance.get_run_records()) == 8


def test_the_housekeeping_job_prunes_compacts_and_reclaims(instance, tmp_path, monkeypatch):
    from etl_platform.definitions import defs
    from etl_platform.execution_log import LogWriter, WriterConfig
    from etl_platform.housekeeping.assets import housekeeping_job
    from etl_platform.warehouse import DuckDBWarehouse

    monkeypatch.setenv("ETL_PLATFORM_HOME", str(tmp_path / "home"))
    schedule = defs.get_schedule_def("housekeeping_daily")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING and schedule.cron_schedule == "30 4 * * *"
    assert schedule.job_name == "housekeeping"
    assert dg.AssetKey(["ops", "housekeeping"]) not in defs.resolve_asset_graph().get_all_asset_keys()  # not in '*'
    for _ in range(3):
        run(instance, "alpha")
    writer = LogWriter(config=WriterConfig(sync_dagster_runs=False))
    for number in range(4):
        writer.write_log_rows([{"run_id": f"r{number}", "phase": "gold", "step_name": "s", "duration_secs": 1.0}])
    warehouse = DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))
    with warehouse.connect() as session:
        session.execute("CREATE TABLE gold.t AS SELECT range AS x FROM range(1000)")

    result = housekeeping_job.execute_in_process(
        instance=instance, resources={"warehouse": warehouse},
        run_config={"ops": {"housekeep": {"config": {"retention_days": 0, "keep_last": 1}}}})
    summary = result.output_for_node("housekeep")
    assert summary["runs_deleted"] == 2 and summary["keep_last"] == 1 and summary["runs_kept_last"] == 1
    assert "compact" in str(summary["execution_log"]) and "retention 7 days" in str(summary["execution_log"])
    assert summary["warehouse"]["engine"] == "duckdb" and summary["warehouse"]["done"].startswith("checkpointed")
    assert writer.get_table_info()["row_count"] == 4
    assert len(instance.get_run_records()) == 2  # the newest alpha run, and this housekeeping run


def test_the_warehouse_file_is_rewritten_smaller_only_when_asked(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from etl_platform.cli import main
    from etl_platform.warehouse import DuckDBWarehouse

    monkeypatch.setenv("ETL_PLATFORM_HOME", str(tmp_path))
    path = tmp_path / "churned.duckdb"
    warehouse = DuckDBWarehouse(path=str(path))
    with warehouse.connect() as session:
        for round_number in range(4):  # replaced tables leave free blocks behind
            session.execute(f"CREATE OR REPLACE TABLE silver.t AS SELECT range AS a, md5((range + {round_number})"
                            "::VARCHAR) AS b FROM range(300000)")
        session.execute("CREATE OR REPLACE VIEW gold.v AS SELECT count(*) AS n FROM silver.t")
    expected = duckdb.connect(str(path), read_only=True).sql("SELECT * FROM silver.t ORDER BY a").fetchall()

    checked = warehouse.reclaim_space()  # the housekeeping default: checkpoint and report
    assert checked["bytes_after"] == checked["bytes_before"] and checked["free_share"] > 0.3
    assert checked["reclaimable_bytes"] > 0 and "etl-platform compact-warehouse" in checked["done"]
    outcome = CliRunner().invoke(main, ["compact-warehouse", "--path", str(path)])
    assert outcome.exit_code == 0 and "rewritten:" in outcome.output
    assert path.stat().st_size < checked["bytes_after"] / 2
    with duckdb.connect(str(path), read_only=True) as conn:
        assert conn.sql("SELECT * FROM silver.t ORDER BY a").fetchall() == expected
        assert conn.sql("SELECT n FROM gold.v").fetchall() == [(300000,)]
    assert list(tmp_path.glob("churned.duckdb.compact-*")) == []
    again = warehouse.reclaim_space(compact=True)  # nothing worth rewriting now
    assert again["done"].startswith("checkpointed")


# ---------------------------------------------------------------- property


@pytest.fixture(scope="module")
def base_instance(tmp_path_factory):
    """An instance with 12 runs of 3 jobs (some tagged keep, one job failing), made once and copied per example."""
    folder = tmp_path_factory.mktemp("base_instance")
    with pytest.MonkeyPatch.context() as monkeypatch:
        with open_instance(folder, monkeypatch) as instance:
            for number, job in enumerate(["alpha", "beta", "alpha", "gamma", "alpha", "beta", "alpha", "beta",
                                          "gamma", "alpha", "beta", "alpha"]):
                run(instance, job, keep=number in (2, 7))
    return folder


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=12), keep_last=st.integers(min_value=0, max_value=4))
def test_pruning_deletes_exactly_what_the_policy_says(base_instance, tmp_path_factory, cut, keep_last):
    """Random retention boundaries and keep_last on a copy of the same instance: what is deleted is exactly the
    finished runs ended before the boundary that are neither tagged nor among their job's newest keep_last; every
    other run and its events stay."""
    folder = tmp_path_factory.mktemp("copy")
    shutil.copytree(base_instance, folder, dirs_exist_ok=True)
    with pytest.MonkeyPatch.context() as monkeypatch, open_instance(folder, monkeypatch) as instance:
        records = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)  # oldest first
        ends = [r.end_time for r in records]
        boundary = (ends[cut - 1] + 0.0005) if cut else ends[0] - 1  # the first `cut` runs are older than it
        now = datetime.fromtimestamp(boundary, timezone.utc) + timedelta(days=30)
        rank: dict[str, int] = {}
        expected = set()
        for record in reversed(records):  # newest first
            run_ = record.dagster_run
            rank[run_.job_name] = rank.get(run_.job_name, 0) + 1
            old = record.end_time < boundary
            if old and run_.tags.get(KEEP_TAG) != "true" and rank[run_.job_name] > keep_last:
                expected.add(run_.run_id)
        result = prune_runs(instance, RetentionPolicy(retention_days=30, keep_last=keep_last), now=now)
        assert set(result.deleted) == expected
        remaining = {r.dagster_run.run_id for r in instance.get_run_records()}
        assert remaining == {r.dagster_run.run_id for r in records} - expected
        for record in records:
            kept = record.dagster_run.run_id in remaining
            assert run_file(instance, record.dagster_run.run_id).exists() == kept
            assert bool(list(instance.all_logs(record.dagster_run.run_id))) == kept


def test_the_health_report_measures_the_disk_and_warns_before_it_fills(tmp_path, monkeypatch):
    """ops/pipeline_health reports the instance, warehouse, log and landing sizes, their growth per day since the
    previous report and the days until the disk is full; its disk_space check warns within the horizon."""
    import time

    from etl_platform.execution_log.assets import HEALTH_KEY, pipeline_health

    monkeypatch.setenv("ETL_PLATFORM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    landing = tmp_path / "home" / "landing" / "video_analytics"
    landing.mkdir(parents=True)
    (landing / "users_1.csv").write_bytes(b"x" * 3_000_000)
    (tmp_path / "home" / "warehouse.duckdb").write_bytes(b"y" * 1_000_000)
    with open_instance(tmp_path, monkeypatch) as instance:
        an_hour_ago = {"measured_at": time.time() - 3600, "sizes": {"landing": 1_000_000, "warehouse": 1_000_000}}
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=HEALTH_KEY, metadata={"disk": dg.MetadataValue.json(an_hour_ago)}))

        result = dg.materialize([pipeline_health], instance=instance)
        metadata = result.asset_materializations_for_node("ops__pipeline_health")[0].metadata
        disk = metadata["disk"].value
        assert disk["sizes"]["landing"] == 3_000_000 and disk["sizes"]["warehouse"] == 1_000_000
        assert disk["sizes"]["instance"] > 0
        growth = disk["growth_bytes_per_day"]
        assert growth["landing"] == pytest.approx(2_000_000 * 24, rel=0.01) and growth["warehouse"] == 0
        assert disk["days_until_full"] == pytest.approx(disk["free_bytes"] / sum(growth.values()), rel=0.01)
        assert "growing" in metadata["disk_summary"].value and "full in" in metadata["disk_summary"].value
        (check,) = result.get_asset_check_evaluations()
        assert check.check_name == "disk_space" and check.passed  # days of room at 48 MB a day

        monkeypatch.setenv("ETL_PLATFORM_DISK_HORIZON_DAYS", str(disk["days_until_full"] * 10))
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=HEALTH_KEY, metadata={"disk": dg.MetadataValue.json(an_hour_ago)}))
        (check,) = dg.materialize([pipeline_health], instance=instance).get_asset_check_evaluations()
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert "full in" in check.description
