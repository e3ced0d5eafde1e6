"""Benchmark: the platform's writers against each store's raw client, side by side in one run.

    .venv/bin/python bench/writers.py --rows 2000000 --repeats 5

Both sides start from the same pyarrow.Table and produce the same bytes (parquet, snappy):
  platform: WriterFactory.create_writer(store, ...).write(table, key=...)  (encode + upload + bookkeeping)
  raw:      pyarrow.parquet.write_table to a buffer, then boto3 put_object / upload_blob / upload_from_string
against moto S3, Azurite and the GCS emulator started on free ports. Runs alternate; the table
shows medians and the throughput ratio platform/raw (1.0 = as fast as the raw client).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etl_platform.writers import WriterFactory  # noqa: E402
from etl_platform_tests import servers  # noqa: E402


def sample(rows: int) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table({
        "session_id": np.arange(rows),
        "user_id": rng.integers(1, 50_000, rows),
        "watch_seconds": rng.integers(0, 10_000, rows),
        "completion_pct": rng.random(rows) * 100,
        "device": pa.array(np.array(["tv", "web", "mobile", "tablet"])[rng.integers(0, 4, rows)]),
    })


def raw_parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    return buffer.getvalue()


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(rows: int, repeats: int) -> list[tuple[str, float, float, int]]:
    table = sample(rows)
    results = []
    with servers.moto_s3() as s3_url, servers.azurite(Path(tempfile.mkdtemp())) as azure, servers.gcs_emulator() as gcs:
        os.environ["STORAGE_EMULATOR_HOST"] = gcs
        s3 = boto3.client("s3", endpoint_url=s3_url, aws_access_key_id="k", aws_secret_access_key="s",
                          region_name="us-east-1")
        s3.create_bucket(Bucket="bench")
        from azure.storage.blob import BlobServiceClient
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        container = BlobServiceClient.from_connection_string(azure).create_container("bench")
        bucket = storage.Client(project="bench", credentials=AnonymousCredentials()).create_bucket("bench")
        stores = {
            "s3": ({"bucket": "bench", "endpoint_url": s3_url, "aws_access_key_id": "k", "aws_secret_access_key": "s",
                    "region": "us-east-1"},
                   lambda: s3.put_object(Bucket="bench", Key="raw/part.parquet", Body=raw_parquet(table))),
            "azure_blob": ({"container": "bench", "connection_string": azure},
                           lambda: container.upload_blob("raw/part.parquet", raw_parquet(table), overwrite=True)),
            "gcs": ({"bucket": "bench", "endpoint_url": gcs, "project": "bench"},
                    lambda: bucket.blob("raw/part.parquet").upload_from_string(raw_parquet(table))),
        }
        size = len(raw_parquet(table))
        for kind, (config, raw) in stores.items():
            writer = WriterFactory.create_writer(kind, config)
            ours, theirs = [], []
            for _ in range(repeats):
                ours.append(timed(lambda: writer.write(table, key="platform")))
                theirs.append(timed(raw))
            results.append((kind, statistics.median(ours), statistics.median(theirs), size))
            print(f"  {kind}: platform {statistics.median(ours):.3f} s, raw {statistics.median(theirs):.3f} s",
                  flush=True)
    return results


def run_objects(rows: int, repeats: int) -> tuple[float, float]:
    """Seed-style writes of ``rows`` records to one named JSON object on S3: ours against encode + put_object."""
    records = sample(rows).to_pylist()
    with servers.moto_s3() as s3_url:
        s3 = boto3.client("s3", endpoint_url=s3_url, aws_access_key_id="k", aws_secret_access_key="s",
                          region_name="us-east-1")
        s3.create_bucket(Bucket="bench")
        writer = WriterFactory.create_writer("s3", {"bucket": "bench", "endpoint_url": s3_url, "format": "json",
                                                    "aws_access_key_id": "k", "aws_secret_access_key": "s",
                                                    "region": "us-east-1"})
        import json

        def raw():
            s3.put_object(Bucket="bench", Key="raw/data.json", Body=json.dumps(records).encode())

        ours, theirs = [], []
        for number in range(repeats):
            ours.append(timed(lambda: writer.write(records, key=f"ours/data-{number}.json")))
            theirs.append(timed(raw))
    return statistics.median(ours), statistics.median(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--object-rows", type=int, help="instead: seed-style writes of this many records to one "
                                                         "named S3 object, 30 alternating runs")
    args = parser.parse_args()
    if args.object_rows:
        ours, theirs = run_objects(args.object_rows, 30)
        print(f"{args.object_rows:,} records to one S3 object (moto), medians of 30: platform {ours * 1000:.1f} ms, "
              f"json.dumps + put_object {theirs * 1000:.1f} ms, ratio {ours / theirs:.2f}x")
        return
    results = run(args.rows, args.repeats)
    print(f"\n{args.rows:,} rows, parquet/snappy; medians of {args.repeats} alternating runs.\n")
    print("| store (test server) | file size | platform writer | raw client | throughput platform/raw |")
    print("|---|---:|---:|---:|---:|")
    for kind, ours, theirs, size in results:
        print(f"| {kind} | {size / 1e6:.1f} MB | {ours:.2f} s | {theirs:.2f} s | {theirs / ours:.2f}x |")


if __name__ == "__main__":
    main()
