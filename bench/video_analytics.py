"""Benchmark: the whole pipeline through the CLI, as a user runs it, against plain DuckDB scripts.

    .venv/bin/python bench/video_analytics.py --sizes 1000000 10000000 --repeats 3

For each size it generates the demo data (with defects), then alternates, ``--repeats`` times:
  A. ``dagster asset materialize -m etl_platform.definitions --select '*'`` (fresh warehouse file,
     Dagster start-up included, the repository's ``dagster.yaml`` instance as the README's command uses;
     ``--select`` to measure other selections in the same run, e.g. the contract's layers without the
     execution log's ops/pipeline_health report: ``--select '*' CONTRACT``),
  B. ``bench/handwritten_duckdb.py``: the fastest plain DuckDB script for the contract we know how to write
     (the baseline of issue 11; a test proves it gives the platform's tables), and
  C. ``bench/raw_duckdb.py``: the platform's own SQL replayed in one raw DuckDB process,
each in its own process, recording wall time and the process's peak RSS. It prints a markdown table
of medians and the ratios A/B and A/C. The machine is noisy: compare ratios, not absolute seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from raw_duckdb import write_statements  # noqa: E402
BIN = Path(sys.executable).parent


def measure(command: list, env: dict, cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command run in its own process."""
    started = time.monotonic()
    with open(cwd / "last_run.log", "w") as log:
        process = subprocess.Popen([str(c) for c in command], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command} failed; see {cwd / 'last_run.log'}")
    return wall, usage.ru_maxrss / 1024


def bench_size(sessions: int, repeats: int, memory_limit: str, workdir: Path, selections: list[str]) -> dict:
    home = workdir / f"home_{sessions}"
    shutil.rmtree(home, ignore_errors=True)
    # Settle time 0: the files are complete when generated, and waiting for them is not processing.
    env = {**os.environ, "ETL_PLATFORM_HOME": str(home), "DAGSTER_HOME": str(workdir / "dagster_home"),
           "ETL_DUCKDB_MEMORY_LIMIT": memory_limit, "ETL_PLATFORM_SETTLE_SECONDS": "0"}
    if memory_limit == "default":  # the platform's own default (half the machine's memory, docs/engines.md)
        del env["ETL_DUCKDB_MEMORY_LIMIT"]
    (workdir / "dagster_home").mkdir(exist_ok=True)
    # The instance the README's command uses (its storage folders are relative to the working directory).
    shutil.copy(REPO / "dagster.yaml", workdir / "dagster_home" / "dagster.yaml")
    generate_wall, _ = measure([BIN / "etl-platform", "demo-data", "--sessions", sessions, "--defects"], env, workdir)
    landing = home / "landing" / "video_analytics"
    input_mb = sum(p.stat().st_size for p in landing.iterdir()) / 1e6
    statements = workdir / f"raw_statements_{sessions}.json"
    write_statements(statements, landing, memory_limit)
    results = {**{("platform", select): [] for select in selections}, "handwritten": [], "raw": []}
    for repeat in range(repeats):
        for kind in results:
            database = home / "warehouse.duckdb"
            database.unlink(missing_ok=True)
            shutil.rmtree(home / "tmp", ignore_errors=True)
            (home / "tmp" / "duckdb").mkdir(parents=True, exist_ok=True)
            if kind[0] == "platform":
                command = [BIN / "dagster", "asset", "materialize", "-m", "etl_platform.definitions", "--select", kind[1]]
            elif kind == "handwritten":
                command = [sys.executable, REPO / "bench" / "handwritten_duckdb.py", landing, database, memory_limit,
                           home / "tmp" / "duckdb"]
            else:
                command = [sys.executable, REPO / "bench" / "raw_duckdb.py", statements, database, memory_limit,
                           home / "tmp" / "duckdb"]
            wall, rss = measure(command, env, workdir)
            results[kind].append((wall, rss))
            label = f"platform --select {kind[1]!r}" if kind[0] == "platform" else kind
            print(f"  {sessions:,} sessions, run {repeat + 1}, {label}: {wall:.1f} s, peak RSS {rss:,.0f} MB",
                  flush=True)
    shutil.rmtree(home, ignore_errors=True)
    return {"sessions": sessions, "input_mb": input_mb, "generate": generate_wall, **medians(results)}


def medians(results: dict) -> dict:
    """``{kind: (median wall seconds, median peak RSS MB)}`` of ``{kind: [(wall, rss), ...]}``."""
    return {kind: (statistics.median(w for w, _ in runs), statistics.median(r for _, r in runs))
            for kind, runs in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-limit", default="1GB",
                        help="DuckDB memory_limit for both sides; 'default': each side's own default (the platform "
                             "derives it from the machine, the plain scripts leave DuckDB's)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--select", nargs="+", default=["*"],
                        help="the platform's asset selections, each measured (default: every asset)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="etl_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    # The package's bytecode, as pip writes it when installing and Python at a package's first import. With an
    # editable install and PYTHONDONTWRITEBYTECODE set (as on these machines) each run would compile it again.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "etl_platform")], check=True)
    rows = [bench_size(n, args.repeats, args.memory_limit, workdir, args.select) for n in args.sizes]
    print(f"\nMedians of {args.repeats} alternating runs; DuckDB memory_limit {args.memory_limit}; "
          f"{os.cpu_count()} cores.\n")
    print("| sessions | input | platform --select | platform (CLI) | hand-written | platform SQL replayed "
          "| platform / hand-written | platform / replayed | peak RSS platform / hand-written / replayed |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        (hw, hr), (rw, rr) = row["handwritten"], row["raw"]
        for select in args.select:
            pw, pr = row[("platform", select)]
            print(f"| {row['sessions']:,} | {row['input_mb']:,.0f} MB | `{select}` | {pw:.1f} s | {hw:.1f} s "
                  f"| {rw:.1f} s | {pw / hw:.2f}x | {pw / rw:.2f}x | {pr:,.0f} / {hr:,.0f} / {rr:,.0f} MB |")


if __name__ == "__main__":
    main()
