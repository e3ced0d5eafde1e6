"""Benchmark: the execution log — writes, reports over a large table, and what logging adds to a pipeline run.

    .venv/bin/python bench/execution_log.py --rows 100000 --report-rows 1000000 --sessions 1000000

1. ``write_log_rows`` of ``--rows`` rows in one call and in calls of 1,000 (seconds, peak RSS of the process).
2. ``generate_summary_report(days=90)``, ``analyze_performance_trends(90)`` and ``detect_anomalies`` on a table of
   ``--report-rows`` rows (written once, in commits of 100,000), each in its own process for its peak RSS.
3. The reference pipeline on ``--sessions`` demo sessions in process (the platform's assets and checks), then
   ``sync_runs`` logging that run: the logger's time against the run's (it runs after the run, from the sensor).
Medians of ``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rows(count: int, runs: int = 5000):
    now = datetime.now(timezone.utc)
    steps = [f"step_{n:02d}" for n in range(20)]
    return [{"run_id": f"run-{i // 20 % runs}", "pipeline_id": "bench", "phase": ("bronze", "silver", "gold")[i % 3],
             "step_name": steps[i % 20], "start_time": now - timedelta(minutes=i % (90 * 24 * 60)),
             "duration_secs": 1.0 + (i % 17) / 10, "rows_processed": 1000 + i % 50, "valid_rows": 990 + i % 10,
             "rows_written": 990} for i in range(count)]


def child(kind: str, location: str) -> None:
    from etl_platform.execution_log import LogWriter, WriterConfig

    writer = LogWriter(config=WriterConfig(table_uri=location))
    started = time.perf_counter()
    if kind == "summary":
        writer.generate_summary_report(days=90)
    elif kind == "trends":
        writer.analyze_performance_trends(days=90)
    else:
        writer.detect_anomalies()
    print(time.perf_counter() - started)


def measure_child(kind: str, location: str) -> tuple[float, float]:
    process = subprocess.Popen([sys.executable, __file__, "--child", kind, location], stdout=subprocess.PIPE,
                               text=True)
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"{kind} failed")
    return float(process.stdout.read().split()[-1]), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--report-rows", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from etl_platform.execution_log import LogWriter, WriterConfig

    with tempfile.TemporaryDirectory() as tmp:
        data = rows(args.rows)
        one, batched = [], []
        for repeat in range(args.repeats):
            writer = LogWriter(config=WriterConfig(table_uri=f"{tmp}/one_{repeat}"))
            started = time.perf_counter()
            writer.write_log_rows(data)
            one.append(time.perf_counter() - started)
            writer = LogWriter(config=WriterConfig(table_uri=f"{tmp}/batched_{repeat}"))
            started = time.perf_counter()
            for start in range(0, len(data), 1000):
                writer.write_log_rows(data[start:start + 1000])
            batched.append(time.perf_counter() - started)
        print(f"write {args.rows:,} rows: one call {statistics.median(one):.2f} s; calls of 1,000 "
              f"{statistics.median(batched):.2f} s")

        big = f"{tmp}/big"
        writer = LogWriter(config=WriterConfig(table_uri=big))
        for start in range(0, args.report_rows, 100_000):
            writer.write_log_rows(rows(min(100_000, args.report_rows - start)))
        for kind in ("summary", "trends", "anomalies"):
            runs = [measure_child(kind, big) for _ in range(args.repeats)]
            print(f"{kind} over {args.report_rows:,} rows: {statistics.median(s for s, _ in runs):.2f} s, "
                  f"peak RSS {statistics.median(r for _, r in runs):.0f} MB")

        import logging

        import dagster as dg

        logging.getLogger("dagster").setLevel(logging.WARNING)

        from etl_platform.execution_log.dagster_runs import sync_runs
        from etl_platform.landing import LandingZone
        from etl_platform.video_analytics import demo_data
        from etl_platform.video_analytics.assets import RefreshPolicy, build_assets
        from etl_platform.video_analytics.checks import QualityPolicy, build_asset_checks
        from etl_platform.warehouse import DuckDBWarehouse

        home = Path(tmp) / "home"
        os.environ["ETL_PLATFORM_HOME"] = str(home)
        demo_data.generate(home / "landing" / "video_analytics", sessions=args.sessions, seed=1, defects=True,
                           progress=False)
        run_times, sync_times = [], []
        for repeat in range(args.repeats):
            instance = dg.DagsterInstance.ephemeral()
            resources = {"warehouse": DuckDBWarehouse(path=str(home / f"warehouse_{repeat}.duckdb"),
                                                      memory_limit="1GB"),
                         "landing": LandingZone(root=str(home / "landing"), settle_seconds=0),
                         "quality_policy": QualityPolicy(), "refresh_policy": RefreshPolicy()}
            started = time.perf_counter()
            dg.materialize([*build_assets(), *build_asset_checks()], resources=resources, instance=instance)
            run_times.append(time.perf_counter() - started)
            writer = LogWriter(config=WriterConfig(table_uri=f"{tmp}/pipeline_{repeat}"))
            started = time.perf_counter()
            sync_runs(instance, writer)
            sync_times.append(time.perf_counter() - started)
        run, sync = statistics.median(run_times), statistics.median(sync_times)
        print(f"reference pipeline, {args.sessions:,} sessions: run {run:.2f} s, logging it {sync:.2f} s "
              f"({100 * sync / run:.1f} % of the run)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
