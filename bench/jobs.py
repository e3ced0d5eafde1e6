"""Benchmark: a YAML job end to end against its reader and writer called directly, side by side.

    .venv/bin/python bench/jobs.py --rows 1000000 --repeats 3

A PostgreSQL table (``bench_job_orders``, ``--rows`` rows, 6 columns) → S3 (moto_server) parquet:
  job:     etl_platform.jobs.run_job on a job file with an asset schema of the 6 columns (types, a required key,
           a date format) — reading, the schema transform, quarantine bookkeeping, the write, the state
  direct:  PostgresSource(...).extract() batches → Dataset.write (the same reader and writer, no transform)
Runs alternate; medians; ratio = job / direct.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import boto3
import psycopg
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etl_platform.destinations import Dataset, FileFormat, S3Store  # noqa: E402
from etl_platform.jobs import load_job, run_job  # noqa: E402
from etl_platform.sources import PostgresSource  # noqa: E402
from etl_platform_tests import servers  # noqa: E402

PG = "host=127.0.0.1 port=5432 dbname=test user=postgres"
JOB = """
tenant_id: bench
source_connector: postgres
target_connector: s3
asset:
  name: bench_orders
  schema:
    - {name: order_id, type: integer, required: true}
    - {name: customer_id, type: integer}
    - {name: total, type: number}
    - {name: status, type: string}
    - {name: ordered_on, type: date, source: ordered_text, format: "%Y-%m-%d"}
    - {name: updated_at, type: timestamp}
source:
  connection: {host: 127.0.0.1, port: 5432, database: test, username: postgres}
  tables: [{name: bench_job_orders}]
  engine: {options: {batch_size: 100000}}
target:
  connection: {bucket: bench, prefix: job, endpoint_url: "%(url)s", aws_access_key_id: k, aws_secret_access_key: s,
               region: us-east-1}
  format: parquet
  mode: overwrite
"""


def prepare(rows: int) -> None:
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_job_orders")
        conn.execute("CREATE TABLE bench_job_orders (order_id bigint, customer_id bigint, total numeric(10,2), "
                     "status text, ordered_text text, updated_at timestamptz)")
        conn.execute(f"INSERT INTO bench_job_orders SELECT i, i % 50000, (i % 10000) / 100.0, "
                     f"(ARRAY['new','paid','shipped'])[1 + i % 3], to_char(DATE '2024-01-01' + (i % 365), "
                     f"'YYYY-MM-DD'), TIMESTAMPTZ '2024-01-01' + i * interval '1 second' FROM generate_series(1, {rows}) i")


def direct(url: str) -> float:
    started = time.perf_counter()
    source = PostgresSource(host="127.0.0.1", database="test", username="postgres", table="bench_job_orders",
                            batch_size=100_000)
    store = S3Store(bucket="bench", prefix="direct", endpoint_url=url, aws_access_key_id="k",
                    aws_secret_access_key="s", region="us-east-1")
    with source.extract() as extraction:
        batches = (b.data.drop_columns(["_source_position"]) for b in extraction if b.data is not None)
        first = next(batches)
        Dataset(store, "bench_orders", FileFormat("parquet")).write(
            pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches)))
    return time.perf_counter() - started


def job(path: Path) -> float:
    started = time.perf_counter()
    run_job(load_job(path), full_refresh=True, log=lambda line: None)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    prepare(args.rows)
    with tempfile.TemporaryDirectory() as home, servers.moto_s3() as url:
        os.environ["ETL_PLATFORM_HOME"] = home
        boto3.client("s3", endpoint_url=url, aws_access_key_id="k", aws_secret_access_key="s",
                     region_name="us-east-1").create_bucket(Bucket="bench")
        path = Path(home) / "bench_orders.yaml"
        path.write_text(JOB.replace("%(url)s", url))
        times: dict[str, list[float]] = {"job": [], "direct": []}
        for _ in range(args.repeats):
            times["direct"].append(direct(url))
            times["job"].append(job(path))
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_job_orders")
    job_s, direct_s = statistics.median(times["job"]), statistics.median(times["direct"])
    print(f"{args.rows:,} rows PostgreSQL → S3 parquet (moto), medians of {args.repeats}")
    print(f"job (reader → schema → writer, state): {job_s:6.2f} s")
    print(f"reader + writer called directly:       {direct_s:6.2f} s")
    print(f"ratio job / direct:                    {job_s / direct_s:6.2f}x")


if __name__ == "__main__":
    main()
