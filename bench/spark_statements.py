"""Benchmark: the Spark engine's per-statement work, each way it was done and is done, side by side in one run.

    .venv/bin/python bench/spark_statements.py [--rows 200000] [--repeats 5]

On one local Spark session and lake, alternating the two ways ``--repeats`` times each, on the same tables:

- DELETE (a fifth of the rows match an IN subquery): the rows kept written with ``EXCEPT ALL`` of the matching
  rows (before) or with a filter ``NOT coalesce(condition, false)`` (now; the whole statement, with the count the
  engine runs first, which the "before" figure leaves out);
- CREATE TABLE of columns only (an empty table; a first run declares ~50): written by a Spark job (before) or as
  one pyarrow-written Parquet file (now);
- declaring a written table in the catalog: Spark reads its schema from the files (before) or is given it (now).

Prints the median seconds of each way and their ratio (now / before). The machine is noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etl_platform.warehouse.spark_warehouse import SparkWarehouse  # noqa: E402

COLUMNS = "a BIGINT, b VARCHAR, c TIMESTAMPTZ, d DECIMAL(10, 2), e DATE, f DOUBLE, g BOOLEAN"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warehouse = SparkWarehouse(lake_path=str(Path(tempfile.mkdtemp()) / "lake"))
    times: dict[tuple[str, str], list[float]] = {}

    def timed(case: str, way: str, work) -> None:
        started = time.perf_counter()
        work()
        times.setdefault((case, way), []).append(time.perf_counter() - started)

    with warehouse.connect() as session:
        spark = session.raw
        session.execute("CREATE SCHEMA IF NOT EXISTS silver")
        source = (f"SELECT id AS a, CAST(id AS STRING) AS b, current_timestamp() AS c, CAST(id / 100 AS DECIMAL(10, 2)) "
                  f"AS d, current_date() AS e, id * 0.5 AS f, id % 2 = 0 AS g FROM range({args.rows})")
        session.write_table("silver.bench_keys", spark.sql(f"SELECT id AS a FROM range(0, {args.rows}, 5)"))
        condition = "a IN (SELECT a FROM silver.bench_keys)"
        for repeat in range(args.repeats):
            for way in ("before", "now") if repeat % 2 == 0 else ("now", "before"):
                table = f"silver.bench_delete_{way}"
                session.write_table(table, spark.sql(source))
                if way == "before":
                    kept = f"SELECT * FROM {table} EXCEPT ALL SELECT * FROM {table} WHERE {condition}"
                    timed("DELETE a fifth of the rows", way, lambda: session.write_table(table, spark.sql(kept)))
                else:
                    timed("DELETE a fifth of the rows", way,
                          lambda: session.execute(f"DELETE FROM {table} WHERE {condition}"))
                assert session.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == args.rows * 4 // 5

                empty = f"silver.bench_empty_{way}_{repeat}"
                if way == "before":
                    schema = spark.createDataFrame([], COLUMNS.replace("VARCHAR", "STRING").replace(
                        "TIMESTAMPTZ", "TIMESTAMP")).schema
                    timed("CREATE TABLE of columns", way,
                          lambda: session.write_table(empty, spark.createDataFrame([], schema)))
                else:
                    timed("CREATE TABLE of columns", way,
                          lambda: session.execute(f"CREATE TABLE IF NOT EXISTS {empty} ({COLUMNS})"))

                written, known = session.lake_table(table).location(), spark.table(table).schema
                timed("declare a written table", way,
                      lambda: session.register(table, written, known if way == "now" else None))
    print(f"Spark local mode, {args.rows:,} rows, {args.repeats} repeats each way (medians)\n")
    print("| statement | before (s) | now (s) | now / before |")
    print("| --- | --- | --- | --- |")
    for case in dict.fromkeys(case for case, _ in times):
        before, now = (statistics.median(times[(case, way)]) for way in ("before", "now"))
        print(f"| {case} | {before:.3f} | {now:.3f} | {now / before:.2f}x |")


if __name__ == "__main__":
    main()
