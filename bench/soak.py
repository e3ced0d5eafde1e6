"""Soak: the daemon with the landing sensor on, a new landing file every --interval seconds for --minutes, one run
killed (SIGKILL of its worker) half-way; then the housekeeping job. Reports the instance's size per run before and after
housekeeping, the warehouse's size against a fresh rebuild's, and whether every table equals a fresh rebuild of
the same landing files, value for value (bronze without its ingestion times).

    .venv/bin/python bench/soak.py --minutes 5 --interval 20 --sessions 200000

Everything runs in a temporary folder (its own DAGSTER_HOME with the repository's dagster.yaml, its own
ETL_PLATFORM_HOME), with the daemon and runs as a user would start them; nothing outside it is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TABLE_SCHEMAS = ("bronze", "silver", "gold")
INGESTION_COLUMNS = ("_ingested_at", "ingested_at")  # when a file was loaded: differs between two loads, by design


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def environment(dagster_home: Path, platform_home: Path) -> dict:
    return {**os.environ, "DAGSTER_HOME": str(dagster_home), "ETL_PLATFORM_HOME": str(platform_home),
            "ETL_PLATFORM_SETTLE_SECONDS": "1"}


def prepare(folder: Path) -> None:
    shutil.copy(REPO / "dagster.yaml", folder / "dagster.yaml")
    (folder / "workspace.yaml").write_text("load_from:\n  - python_module:\n      module_name: etl_platform.definitions"
                                           "\n      location_name: etl_platform\n")


def runs(env: dict) -> list[dict]:
    """The soak instance's runs, read in this process (a few milliseconds: fast enough to catch a 2-second run);
    the worker's pid of a run in progress from its own 'Executing steps in process (pid: N)' event."""
    import re

    import dagster as dg

    global _INSTANCE
    if _INSTANCE is None:
        os.chdir(env["DAGSTER_HOME"])  # the instance's SQLite folders are relative to it
        _INSTANCE = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    found = []
    for record in _INSTANCE.get_run_records():
        run, pid = record.dagster_run, None
        if run.status == dg.DagsterRunStatus.STARTED:
            for entry in _INSTANCE.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
                match = re.search(r"Executing steps in process \(pid: ([0-9]+)\)", entry.user_message or "")
                pid = int(match.group(1)) if match else pid
        found.append({"id": run.run_id, "job": run.job_name, "pid": pid, "status": run.status.value,
                      "created": record.create_timestamp.timestamp()})
    return found


_INSTANCE = None


def kill_a_running_worker(env: dict, deadline: float) -> tuple[str | None, str | None, int]:
    """SIGKILL the worker of a pipeline run seen executing its steps (the pid its own event names), again on a later
    run while the kill came too late (the run had finished); ``(run id, its final status, attempts)``."""
    attempts = 0
    while time.monotonic() < deadline:
        for run in runs(env):
            if run["status"] == "STARTED" and run["pid"] and run["job"] == "video_analytics_pipeline":
                try:
                    os.kill(run["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    continue
                attempts += 1
                final = wait_for_end(env, run["id"], 120)
                if final != "SUCCESS":
                    return run["id"], final, attempts
        time.sleep(0.05)
    return None, None, attempts


def wait_for_end(env: dict, run_id: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while True:
        status = next(r["status"] for r in runs(env) if r["id"] == run_id)
        if status in ("SUCCESS", "FAILURE", "CANCELED") or time.monotonic() > deadline:
            return status
        time.sleep(1)


def wait_until_done(env: dict, after: float, seconds: float) -> list[dict]:
    """The runs, once one created after ``after`` (the last file's arrival) exists and none is in progress."""
    deadline = time.monotonic() + seconds
    while True:
        current = runs(env)
        busy = [r for r in current if r["status"] in ("QUEUED", "STARTING", "STARTED", "NOT_STARTED")]
        seen_last = any(r["created"] > after for r in current)
        if (seen_last and not busy) or time.monotonic() > deadline:
            return current
        time.sleep(2)


def compare(soaked: Path, fresh: Path) -> dict:
    """Every table of both warehouses, value for value (EXCEPT ALL both ways, and row counts)."""
    import duckdb

    conn = duckdb.connect()
    conn.execute(f"ATTACH '{soaked}' AS soaked (READ_ONLY)")
    conn.execute(f"ATTACH '{fresh}' AS fresh (READ_ONLY)")
    tables = conn.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'fresh' AND "
                          f"schema_name IN {TABLE_SCHEMAS} ORDER BY ALL").fetchall()
    result = {}
    for schema, table in tables:
        columns = [c for (c,) in conn.execute("SELECT column_name FROM duckdb_columns() WHERE database_name = 'fresh' "
                                              "AND schema_name = ? AND table_name = ?", [schema, table]).fetchall()
                   if c not in INGESTION_COLUMNS]
        select = ", ".join(f'"{c}"' for c in columns)
        a, b = f"soaked.{schema}.{table}", f"fresh.{schema}.{table}"
        differ = conn.execute(f"SELECT (SELECT count(*) FROM (SELECT {select} FROM {a} EXCEPT ALL SELECT {select} FROM "
                              f"{b})) + (SELECT count(*) FROM (SELECT {select} FROM {b} EXCEPT ALL SELECT {select} "
                              f"FROM {a}))").fetchone()[0]
        result[f"{schema}.{table}"] = {"rows": conn.execute(f"SELECT count(*) FROM {b}").fetchone()[0],
                                       "rows_differing": differ}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=20.0, help="seconds between two landing files")
    parser.add_argument("--sessions", type=int, default=200_000, help="sessions of demo data, over all files")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    from etl_platform.video_analytics import demo_data

    work = Path(tempfile.mkdtemp(prefix="etl_soak_"))
    soak_dh, fresh_dh = work / "soak_dagster", work / "fresh_dagster"
    soak_home, fresh_home = work / "soak_home", work / "fresh_home"
    for folder in (soak_dh, fresh_dh):
        folder.mkdir()
        prepare(folder)
    env = environment(soak_dh, soak_home)
    generated = work / "generated"
    demo_data.generate(generated, sessions=args.sessions, seed=7, defects=True, progress=False)
    landing = soak_home / "landing" / "video_analytics"
    landing.mkdir(parents=True)
    sessions_file = next(generated.glob("viewing_sessions*.csv"))
    header, *lines = sessions_file.read_text(encoding="utf-8").splitlines(keepends=True)
    files = max(2, int(args.minutes * 60 / args.interval))
    chunk = -(-len(lines) // files)
    for other in generated.iterdir():
        if other != sessions_file:
            shutil.copy(other, landing / other.name)

    runs(env)  # the instance's SQLite files made once here: the daemon and `dagster sensor start` starting together
    # on a fresh DAGSTER_HOME both create runs.db, and two alembic_version rows make every later process refuse it
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=soak_dh, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    killed, killed_status, kill_attempts = None, None, 0
    started = time.monotonic()
    try:
        # the landing sensor reports the files; the automation sensor runs what they feed (declarative automation)
        for sensor in ("video_analytics_landing_sensor", "video_analytics_automation"):
            started_sensor = subprocess.run([str(BIN / "dagster"), "sensor", "start", sensor, "-w", "workspace.yaml"],
                                            cwd=soak_dh, env=env, capture_output=True, text=True)
            if started_sensor.returncode:
                raise SystemExit(f"dagster sensor start {sensor} failed:\n{started_sensor.stderr[-3000:]}")
        for number in range(files):
            part = landing / f".viewing_sessions_{number:04d}.csv.part"
            part.write_text(header + "".join(lines[number * chunk:(number + 1) * chunk]), encoding="utf-8")
            part.rename(landing / f"viewing_sessions_{number:04d}.csv")  # arrives whole
            if number == files // 2 and killed is None:
                killed, killed_status, kill_attempts = kill_a_running_worker(env, time.monotonic() + args.interval * 4)
            last_file_at = time.time()
            time.sleep(max(0.0, started + (number + 1) * args.interval - time.monotonic()))
        soaked_runs = wait_until_done(env, last_file_at, 900)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(60)

    pipeline_runs = [r for r in soaked_runs if r["job"] == "video_analytics_pipeline"]
    global _INSTANCE
    _INSTANCE.dispose()  # its open connections would keep the WAL files from being checkpointed into the databases
    _INSTANCE = None
    instance_before = folder_bytes(soak_dh / ".etl_platform" / "dagster")
    materialize = [str(BIN / "dagster"), "asset", "materialize", "-m", "etl_platform.definitions"]
    config = work / "housekeeping.yaml"  # as the schedule runs it, with a retention of 0 days: the newest 5 stay
    config.write_text(json.dumps({"ops": {"housekeep": {"config": {"retention_days": 0, "keep_last": 5}}}}))
    housekeeping = subprocess.run([str(BIN / "dagster"), "job", "execute", "-m", "etl_platform.definitions", "-j",
                                   "housekeeping", "--config", str(config)],
                                  cwd=soak_dh, env=env, capture_output=True, text=True)
    instance_after = folder_bytes(soak_dh / ".etl_platform" / "dagster")
    runs_after = len(runs(env))
    _INSTANCE.dispose()

    fresh_landing = fresh_home / "landing" / "video_analytics"
    shutil.copytree(landing, fresh_landing)
    rebuild = subprocess.run([*materialize, "--select", "*"], cwd=fresh_dh, env=environment(fresh_dh, fresh_home),
                             capture_output=True, text=True)
    tables = compare(soak_home / "warehouse.duckdb", fresh_home / "warehouse.duckdb")
    report = {
        "minutes": args.minutes, "landing_files": files, "sessions": args.sessions,
        "runs": len(soaked_runs), "runs_by_status": {s: sum(1 for r in soaked_runs if r["status"] == s)
                                                     for s in sorted({r["status"] for r in soaked_runs})},
        "run_killed": killed, "killed_run_status": killed_status, "kill_attempts": kill_attempts,
        "housekeeping_ok": housekeeping.returncode == 0, "rebuild_ok": rebuild.returncode == 0,
        "instance_bytes_before": instance_before,
        "instance_bytes_per_run_before": instance_before // max(1, len(soaked_runs)),
        "instance_bytes_after": instance_after, "runs_after": runs_after,
        "instance_bytes_per_run_after": instance_after // max(1, runs_after),
        "warehouse_bytes": (soak_home / "warehouse.duckdb").stat().st_size,
        "fresh_warehouse_bytes": (fresh_home / "warehouse.duckdb").stat().st_size,
        "tables_equal": all(t["rows_differing"] == 0 for t in tables.values()), "tables": tables,
        "pipeline_runs": len(pipeline_runs),
        "health_report_runs": sum(1 for r in soaked_runs if r["job"] == "pipeline_health"),
    }
    print(json.dumps(report, indent=2))
    if not report["housekeeping_ok"]:
        print(housekeeping.stderr[-3000:], file=sys.stderr)
    if not report["rebuild_ok"]:
        print(rebuild.stderr[-3000:], file=sys.stderr)
    if args.keep:
        print(f"kept: {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
