"""Runs that touch the warehouse wait for each other; the others do not (dagster.yaml's `concurrency`, the pool
`warehouse` on every step that reads or writes it). Tried as a deployment runs it: runs queued with
`dagster job launch`, dequeued and launched by the real `dagster-daemon` with the repository's dagster.yaml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from etl_platform.video_analytics import demo_data
from etl_platform.warehouse import WAREHOUSE_POOL

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_every_step_that_uses_the_warehouse_is_in_its_pool():
    from etl_platform.definitions import defs

    repository = defs.get_repository_def()
    for job_name in repository.job_names:
        for node in repository.get_job(job_name).graph.node_defs:
            uses = "warehouse" in node.required_resource_keys
            assert (node.pool == WAREHOUSE_POOL) == uses, (job_name, node.name, node.pool, uses)


def test_the_daemon_runs_warehouse_runs_one_at_a_time_and_others_beside_them(tmp_path, monkeypatch):
    demo_data.generate(tmp_path / "home" / "landing" / "video_analytics", sessions=2_000, seed=3, progress=False)
    (tmp_path / "dagster").mkdir()
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster" / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETL_PLATFORM_")}
    env.update(ETL_PLATFORM_HOME=str(tmp_path / "home"), DAGSTER_HOME=str(tmp_path / "dagster"),
               ETL_PLATFORM_SETTLE_SECONDS="0")
    target = ["-m", "etl_platform.definitions"]
    # A new instance's first step (docs/deployment.md): Dagster gives a pool its default limit only during the first
    # dequeue that sees it, after that dequeue's decisions, so runs queued before it would all start.
    limit = subprocess.run([BIN / "dagster", "instance", "concurrency", "set", WAREHOUSE_POOL, "1"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert limit.returncode == 0, limit.stdout + limit.stderr
    for job in ("video_analytics_pipeline", "video_analytics_pipeline", "pipeline_health"):
        queued = subprocess.run([BIN / "dagster", "job", "launch", "-j", job, *target], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=180)
        assert queued.returncode == 0, queued.stdout[-2000:] + queued.stderr[-2000:]

    monkeypatch.chdir(tmp_path)  # the instance's folders in dagster.yaml are relative to where it starts
    daemon = subprocess.Popen([BIN / "dagster-daemon", "run", *target], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                records = instance.get_run_records()
                if len(records) == 3 and all(r.dagster_run.is_finished for r in records):
                    break
                time.sleep(1)
            records = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
            launched = {r.dagster_run.run_id: instance.all_logs(r.dagster_run.run_id,
                                                                of_type=dg.DagsterEventType.PIPELINE_STARTING)[0].timestamp
                        for r in records if r.dagster_run.is_finished}
    finally:
        os.killpg(daemon.pid, 15)
        daemon.wait(30)
    assert [r.dagster_run.status for r in records] == [dg.DagsterRunStatus.SUCCESS] * 3, \
        [(r.dagster_run.job_name, r.dagster_run.status) for r in records]
    first, second, health = records
    assert first.dagster_run.job_name == second.dagster_run.job_name == "video_analytics_pipeline"
    # the two pipeline runs never overlapped: the second started once the first had ended
    assert second.start_time >= first.end_time, (first.start_time, first.end_time, second.start_time)
    # the health report (no warehouse step), queued after the second pipeline run, was launched before it: it did
    # not wait for the first pipeline run to end
    assert launched[health.dagster_run.run_id] < launched[second.dagster_run.run_id]
