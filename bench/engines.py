"""Benchmark: the whole pipeline on each warehouse engine, side by side, as a user runs it.

    .venv/bin/python bench/engines.py --sizes 100000 1000000 --repeats 3 [--engines duckdb postgres spark]

For each size it generates the demo data (with defects) once, then alternates the engines ``--repeats``
times: ``dagster asset materialize -m etl_platform.definitions --select '*'`` with ``ETL_PLATFORM_ENGINE``
set, on a fresh warehouse each run (a new DuckDB file; a new PostgreSQL database on $BENCH_POSTGRES_SERVER,
default postgresql://postgres@127.0.0.1:5432; an empty lake folder for Spark, $BENCH_SPARK_MASTER (default
local[2]) with $BENCH_SPARK_DRIVER_MEMORY (default 4g)). It prints a markdown table of medians: wall time (Dagster's
start-up included), the peak of the client's summed RSS over its whole process tree, sampled every 0.2 s
(for Spark this includes its JVM, which runs the queries in local mode), and each engine's time relative to DuckDB. The PostgreSQL
server's own memory is not in the RSS column (it is the server's shared_buffers and work_mem, configured there).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from video_analytics import BIN  # noqa: E402

SERVER = os.environ.get("BENCH_POSTGRES_SERVER", "postgresql://postgres@127.0.0.1:5432")
DATABASE = "etl_bench_engines"


def measure(command: list, env: dict, cwd: Path, interval: float = 0.2) -> tuple[float, float]:
    """Wall seconds, and the peak of the summed RSS (MB) of the command's whole process tree, sampled every
    ``interval`` s: Spark's JVM is a child of the Python process and its memory counts."""
    import subprocess
    import time

    import psutil

    started = time.monotonic()
    peak = 0
    with open(cwd / "last_run.log", "w") as log:
        process = subprocess.Popen([str(c) for c in command], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        root = psutil.Process(process.pid)
        while process.poll() is None:
            total = 0
            for member in [root, *root.children(recursive=True)]:
                try:
                    total += member.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, total)
            time.sleep(interval)
    wall = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"{command} failed; see {cwd / 'last_run.log'}")
    return wall, peak / 2**20


def fresh_postgres_database() -> str:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    return f"{SERVER}/{DATABASE}"


def bench_size(sessions: int, engines: list[str], repeats: int, workdir: Path) -> dict:
    home = workdir / f"home_{sessions}"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "ETL_PLATFORM_HOME": str(home), "DAGSTER_HOME": str(workdir / "dagster_home"),
           "ETL_PLATFORM_SETTLE_SECONDS": "0"}
    (workdir / "dagster_home").mkdir(exist_ok=True)
    measure([BIN / "etl-platform", "demo-data", "--sessions", sessions, "--defects"], env, workdir)
    results: dict[str, list[tuple[float, float]]] = {engine: [] for engine in engines}
    for repeat in range(repeats):
        for engine in engines:
            (home / "warehouse.duckdb").unlink(missing_ok=True)
            shutil.rmtree(home / "tmp", ignore_errors=True)
            shutil.rmtree(home / "lake", ignore_errors=True)
            run_env = {**env, "ETL_PLATFORM_ENGINE": engine}
            if engine == "spark":
                run_env["ETL_SPARK_MASTER"] = os.environ.get("BENCH_SPARK_MASTER", "local[2]")
                run_env["PYSPARK_SUBMIT_ARGS"] = (
                    f"--driver-memory {os.environ.get('BENCH_SPARK_DRIVER_MEMORY', '4g')} pyspark-shell")
            if engine == "postgres":
                run_env["ETL_PLATFORM_POSTGRES_URL"] = fresh_postgres_database()
            command = [BIN / "dagster", "asset", "materialize", "-m", "etl_platform.definitions", "--select", "*"]
            wall, rss = measure(command, run_env, workdir)
            results[engine].append((wall, rss))
            print(f"  {sessions:,} sessions, run {repeat + 1}, {engine}: {wall:.1f} s, peak RSS {rss:,.0f} MB",
                  flush=True)
    shutil.rmtree(home, ignore_errors=True)
    return {engine: (statistics.median(w for w, _ in runs), statistics.median(r for _, r in runs))
            for engine, runs in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--engines", nargs="+", default=["duckdb", "postgres", "spark"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench_engines_"))
    rows = []
    try:
        for sessions in args.sizes:
            medians = bench_size(sessions, args.engines, args.repeats, workdir)
            base = medians[args.engines[0]][0]
            for engine, (wall, rss) in medians.items():
                rows.append(f"| {sessions:,} | {engine} | {wall:.1f} s | {rss:,.0f} MB | {wall / base:.2f}x |")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    print(f"\n| sessions | engine | wall (median of {args.repeats}) | client peak RSS | vs {args.engines[0]} |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
