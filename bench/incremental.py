"""Benchmark: the daily run of the reference pipeline, incremental against full, on histories of several sizes.

    .venv/bin/python bench/incremental.py --sizes 100000 1000000 10000000 --repeats 3

For each history size it generates the demo data (``etl-platform demo-data --defects``), runs the whole pipeline
once through the CLI (the first run: everything is new), keeps a copy of that warehouse, and writes one day's
delta into the landing zone: 1,000 sessions (85 % of a new day, 6 % late ones for old days, 3 % sessions sent
again with a later end, the rest bad rows) and a users file in which 20 users move country. Then, ``--repeats``
times, alternating, each from the copy of the warehouse:

  A. the daily run: ``dagster asset materialize -m etl_platform.definitions --select '*'`` (incremental);
  B. the same run with ``ETL_PLATFORM_FULL_REFRESH=1`` (silver and gold rebuilt from all of bronze);
  C. the same run with ``ETL_PLATFORM_REBUILD_DAYS=<the delta's day>`` (a backfill of the last day besides the
     delta; the demo data's files each hold every day, so building a day again reads every sessions file);

each in its own process, recording wall time and peak RSS (Dagster's start and the checks included, as a user's
run has them), and the run's own duration as Dagster records it (start to end of the run: the process start and
the code location's import excluded). It prints a markdown table of medians: the first (full) run, A, B, C, A/B,
A/first, A's cost against the smallest history's A (the goal: a daily run's cost does not grow with history), and
the same A/first ratio on the runs' own durations.

``--delta-memory-limits none 256MB`` adds, alternating with the others, the daily run A with each of those
``ETL_DUCKDB_DELTA_MEMORY_LIMIT`` values (``none``: incremental steps keep the whole memory_limit), and a second
table of their medians: wall time, peak RSS and the run's own duration.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from video_analytics import measure  # noqa: E402

BIN = Path(sys.executable).parent
DELTA_SESSIONS = 1_000
MOVING_USERS = 20
MATERIALIZE = [BIN / "dagster", "asset", "materialize", "-m", "etl_platform.definitions", "--select", "*"]


def write_delta(warehouse: Path, landing: Path) -> dict[str, int]:
    """One day's new files, made from what the warehouse holds (ids, dates, users)."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        max_session, max_user, max_content, last_day = conn.execute(
            "SELECT (SELECT max(session_id) FROM silver.viewing_sessions), (SELECT max(user_id) FROM silver.users), "
            "(SELECT max(content_id) FROM silver.content), "
            "(SELECT max(CAST(started_at AS DATE)) FROM silver.viewing_sessions)").fetchone()
        resent = conn.execute(
            "SELECT session_id, user_id, content_id, strftime(started_at, '%Y-%m-%dT%H:%M:%SZ'), "
            "strftime(ended_at + INTERVAL 5 MINUTE, '%Y-%m-%dT%H:%M:%SZ'), device, completion_pct "
            f"FROM silver.viewing_sessions USING SAMPLE {int(DELTA_SESSIONS * 0.03)} ROWS (reservoir, 7)").fetchall()
        movers = conn.execute(
            "SELECT user_id, email, name, CASE WHEN country = 'SE' THEN 'NO' ELSE 'SE' END, subscription_tier, "
            "CAST(signup_date AS VARCHAR), CAST(birth_year AS VARCHAR) "
            f"FROM silver.users USING SAMPLE {MOVING_USERS} ROWS (reservoir, 7)").fetchall()
    new_day = 85 * DELTA_SESSIONS // 100
    late = 6 * DELTA_SESSIONS // 100
    bad = DELTA_SESSIONS - new_day - late - len(resent)
    rows = []
    for i in range(new_day + late):
        day = last_day if i < new_day else last_day.replace(day=1)
        user, content = 1 + (i * 7919) % max_user, 1 + (i * 104729) % max_content
        rows.append([max_session + 1 + i, user, content, f"{day.isoformat()}T{i % 24:02d}:10:00Z",
                     f"{day.isoformat()}T{i % 24:02d}:40:00Z", ("tv", "mobile", "web", "tablet")[i % 4], i % 101])
    rows += [list(row) for row in resent]
    rows += [[f"bad{i}", 1, 1, "not a time", "", "tv", "n/a"] for i in range(bad)]
    with open(landing / "viewing_sessions_delta.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["session_id", "user_id", "content_id", "started_at", "ended_at", "device", "completion_pct"])
        writer.writerows(rows)
    with open(landing / "users_delta.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "email", "name", "country", "subscription_tier", "signup_date", "birth_year",
                         "updated_at"])
        writer.writerows([[*row, "2099-01-01T00:00:00Z"] for row in movers])
    return {"sessions": len(rows), "moving_users": len(movers), "max_content": max_content,
            "day": last_day.isoformat()}


def last_run_seconds(dagster_home: Path) -> float:
    """The duration of the instance's latest run, start to end, as Dagster records it."""
    import dagster as dg

    here = os.getcwd()
    os.chdir(dagster_home.parent)  # the instance's storage folders are relative to where the runs started
    try:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            (run,) = instance.get_runs(limit=1)
            stats = instance.get_run_stats(run.run_id)
            return stats.end_time - stats.start_time
    finally:
        os.chdir(here)


def run_and_measure(env: dict, workdir: Path) -> tuple[float, float, float]:
    wall, rss = measure(MATERIALIZE, env, workdir)
    return wall, rss, last_run_seconds(workdir / "dagster_home")


def bench_size(sessions: int, repeats: int, workdir: Path, delta_memory_limits: list[str]) -> dict:
    home = workdir / f"home_{sessions}"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "ETL_PLATFORM_HOME": str(home), "DAGSTER_HOME": str(workdir / "dagster_home"),
           "ETL_PLATFORM_SETTLE_SECONDS": "0"}
    env.pop("ETL_PLATFORM_FULL_REFRESH", None)
    (workdir / "dagster_home").mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", workdir / "dagster_home" / "dagster.yaml")
    measure([BIN / "etl-platform", "demo-data", "--sessions", sessions, "--defects"], env, workdir)
    landing = home / "landing" / "video_analytics"
    database = home / "warehouse.duckdb"
    first = run_and_measure(env, workdir)
    print(f"  {sessions:,} sessions: first run {first[0]:.1f} s (the run itself {first[2]:.1f} s), peak RSS "
          f"{first[1]:,.0f} MB", flush=True)
    history = home / "history.duckdb"
    shutil.copy(database, history)
    delta = write_delta(database, landing)
    settings = {"daily": {}, "daily_full_refresh": {"ETL_PLATFORM_FULL_REFRESH": "1"},
                "rebuild_last_day": {"ETL_PLATFORM_REBUILD_DAYS": delta["day"]},
                **{f"daily, delta memory {limit}": {"ETL_DUCKDB_DELTA_MEMORY_LIMIT": limit}
                   for limit in delta_memory_limits}}
    results = {kind: [] for kind in settings}
    for repeat in range(repeats):
        for kind, extra in settings.items():
            shutil.copy(history, database)
            shutil.rmtree(home / "tmp", ignore_errors=True)
            wall, rss, in_run = run_and_measure({**env, **extra}, workdir)
            results[kind].append((wall, rss, in_run))
            print(f"  {sessions:,} sessions, run {repeat + 1}, {kind}: {wall:.1f} s (the run itself {in_run:.1f} s), "
                  f"peak RSS {rss:,.0f} MB", flush=True)
    shutil.rmtree(home, ignore_errors=True)
    return {"sessions": sessions, "first": first, "delta": delta,
            **{kind: tuple(statistics.median(m[i] for m in runs) for i in range(3)) for kind, runs in results.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--delta-memory-limits", nargs="*", default=[],
                        help="also the daily run with each of these ETL_DUCKDB_DELTA_MEMORY_LIMIT values")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="etl_bench_incremental_"))
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "etl_platform")], check=True)
    rows = [bench_size(n, args.repeats, workdir, args.delta_memory_limits) for n in args.sizes]
    base = rows[0]["daily"][0]
    print(f"\nMedians of {args.repeats} alternating runs from the same warehouse; {os.cpu_count()} cores. Delta: "
          f"{rows[0]['delta']['sessions']:,} sessions, {rows[0]['delta']['moving_users']} users moving country.\n")
    print("| history (sessions) | first run (full) | daily run, incremental | daily run, full refresh "
          "| daily run + the last day built again | incremental / full refresh | incremental / first run "
          "| incremental / smallest history's | the runs themselves: incremental / first run "
          "| peak RSS incremental / full refresh / day again |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        (iw, ir, ii), (fw, fr, _), (dw, dr, _) = row["daily"], row["daily_full_refresh"], row["rebuild_last_day"]
        first_wall, _, first_in_run = row["first"]
        print(f"| {row['sessions']:,} | {first_wall:.1f} s | {iw:.1f} s | {fw:.1f} s | {dw:.1f} s | {iw / fw:.2f}x "
              f"| {iw / first_wall:.2f}x | {iw / base:.2f}x | {ii:.1f} / {first_in_run:.1f} s = {ii / first_in_run:.2f}x "
              f"| {ir:,.0f} / {fr:,.0f} / {dr:,.0f} MB |")
    if args.delta_memory_limits:
        print("\n| history (sessions) | daily run with ETL_DUCKDB_DELTA_MEMORY_LIMIT | wall | the run itself | peak RSS "
              "| peak RSS / the smallest history's with the same setting |")
        print("|---:|---|---:|---:|---:|---:|")
        for limit in ["(default)", *args.delta_memory_limits]:
            kind = "daily" if limit == "(default)" else f"daily, delta memory {limit}"
            smallest = rows[0][kind][1]
            for row in rows:
                wall, rss, in_run = row[kind]
                print(f"| {row['sessions']:,} | {limit} | {wall:.1f} s | {in_run:.1f} s | {rss:,.0f} MB "
                      f"| {rss / smallest:.2f}x |")


if __name__ == "__main__":
    main()
