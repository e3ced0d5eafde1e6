"""Loading a CSV with a few malformed records: DuckDB plus exact re-reads of the rejected records only,
against reading the whole file with Python's csv module (what every such file cost before), side by side.

    .venv/bin/python bench/bronze_bad_records.py --rows 1000000 --bad 3 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from etl_platform.landing import csv_loader, discover_files
from etl_platform.video_analytics import contract, demo_data


def load(file, exact: bool) -> tuple[float, int, str]:
    conn = duckdb.connect()
    header = csv_loader.read_header(file)
    started = time.monotonic()
    if exact:
        rows = csv_loader._stage_with_python(conn, contract.SESSIONS_COLUMNS, header, file)
        loader = "python-csv"
    else:
        staged = csv_loader.stage(conn, contract.SESSIONS_COLUMNS, file, header)
        rows, loader = staged.rows, staged.loader
    seconds = time.monotonic() - started
    conn.close()
    return seconds, rows, loader


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bad", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        demo_data.generate(folder, sessions=args.rows, seed=1, progress=False)
        path = sorted(folder.glob("viewing_sessions*.csv"))[0]
        lines = path.read_text().splitlines(keepends=True)
        step = max(1, (len(lines) - 1) // (args.bad + 1))
        for number in range(1, args.bad + 1):
            lines[number * step] = lines[number * step].rstrip("\n") + ",surplus\n"
        path.write_text("".join(lines))
        file = discover_files(folder, path.name)[0]
        times, loaders = {"repair": [], "exact": []}, {}
        for _ in range(args.repeats):
            for mode in ("repair", "exact"):
                seconds, rows, loaders[mode] = load(file, exact=mode == "exact")
                times[mode].append(seconds)
        repair, exact = statistics.median(times["repair"]), statistics.median(times["exact"])
        print(f"{len(lines) - 1:,} records, {args.bad} malformed ({file.size / 1e6:.0f} MB), medians of {args.repeats}:")
        print(f"  DuckDB + re-read of rejected records: {repair:.2f} s (loader {loaders['repair']})")
        print(f"  whole file with Python's csv module:  {exact:.2f} s")
        print(f"  ratio exact/repair: {exact / repair:.1f}x")


if __name__ == "__main__":
    main()
