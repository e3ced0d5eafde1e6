"""Benchmark: exporting a warehouse table to a file dataset, streamed vs loaded whole vs raw DuckDB COPY.

    .venv/bin/python bench/exports.py --rows 10000000 --repeats 3

A DuckDB file with a viewing_fact-like table (``--rows`` rows, 8 columns, 30 days) is built once; then, each in
its own process so peak RSS is its own, alternating:
  streamed: Dataset.write(arrow_reader(conn.sql("SELECT * FROM t"))) — what the export assets do now
  whole:    Dataset.write(arrow_table(...)) — what they did before (the table loaded into memory first)
  delta:    streamed into a Delta table (format 'delta', the exports' default since issue 22): one commit
  raw:      DuckDB's own COPY ... TO (FORMAT parquet[, PARTITION_BY]) — the engine alone, no platform
for an unpartitioned and a partitioned-by-day export to a local folder (parquet, snappy). Medians of seconds and
peak RSS (MB); ratio = seconds / raw seconds.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(database: Path, rows: int) -> None:
    import duckdb

    with duckdb.connect(str(database)) as conn:
        conn.execute(f"""
            CREATE TABLE viewing_fact AS
            SELECT i AS session_id, (i * 7919) % 50000 AS user_id, (i * 104729) % 20000 AS content_id,
                   DATE '2024-01-01' + CAST(i % 30 AS INTEGER) AS view_date,
                   (i * 31) % 10000 AS watch_seconds, ((i * 17) % 1000) / 10.0 AS completion_pct,
                   ['mobile', 'tv', 'web', 'tablet'][1 + i % 4] AS device_type,
                   'session-' || i AS session_label
            FROM range({rows}) t(i)""")


def run_one(method: str, database: str, out: str, partitioned: bool) -> None:
    """One export in this process (the child side)."""
    import duckdb

    from etl_platform.destinations import Dataset, FileFormat, LocalStore
    from etl_platform.warehouse.arrow import arrow_reader, arrow_table

    partition_by = ("view_date",) if partitioned else ()
    started = time.perf_counter()
    with duckdb.connect(database, read_only=True) as conn:
        if method == "raw":
            options = "FORMAT parquet, COMPRESSION snappy" + (", PARTITION_BY (view_date)" if partitioned else "")
            target = out if partitioned else f"{out}/data.parquet"
            os.makedirs(out, exist_ok=True)
            conn.execute(f"COPY viewing_fact TO '{target}' ({options})")
        else:
            relation = conn.sql("SELECT * FROM viewing_fact")
            data = arrow_table(relation) if method == "whole" else arrow_reader(relation)
            file_format = FileFormat("delta" if method == "delta" else "parquet")
            Dataset(LocalStore(base_path=out), "viewing_fact", file_format, partition_by).write(data)
    print(time.perf_counter() - started)


def measure(method: str, database: Path, partitioned: bool) -> tuple[float, float]:
    out = tempfile.mkdtemp(prefix="bench_export_")
    try:
        child = subprocess.Popen([sys.executable, __file__, "--child", method, str(database), out,
                                  "1" if partitioned else "0"], stdout=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        if status != 0:
            raise SystemExit(f"{method} failed with status {status}")
        seconds = float(child.stdout.read().strip().splitlines()[-1])
        return seconds, usage.ru_maxrss / 1024
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "warehouse.duckdb"
        build(database, args.rows)
        print(f"{args.rows:,} rows, {database.stat().st_size / 1e6:.0f} MB in DuckDB")
        print(f"{'layout':<12} {'method':<9} {'seconds':>8} {'peak RSS MB':>12} {'vs raw':>7}")
        for partitioned in (False, True):
            runs: dict[str, list[tuple[float, float]]] = {"streamed": [], "delta": [], "whole": [], "raw": []}
            for _ in range(args.repeats):
                for method in runs:
                    runs[method].append(measure(method, database, partitioned))
            raw_seconds = statistics.median(s for s, _ in runs["raw"])
            for method, values in runs.items():
                seconds = statistics.median(s for s, _ in values)
                rss = statistics.median(r for _, r in values)
                layout = "by day" if partitioned else "one file"
                print(f"{layout:<12} {method:<9} {seconds:8.2f} {rss:12.0f} {seconds / raw_seconds:7.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        run_one(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1")
    else:
        main()
