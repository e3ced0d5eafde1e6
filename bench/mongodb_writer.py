"""MongoDB: our writer against raw ``insert_many(ordered=False)``, side by side, on secantusdb.

    .venv/bin/python bench/mongodb_writer.py --documents 100000 --repeats 3

Both start from the same pyarrow.Table (int, text, float, timestamp with zone, a nested struct); raw converts it
with ``to_pylist()`` and inserts in batches of 1,000; ours is ``MongoTarget.write(table, "append")``. Each run
writes a fresh collection; runs alternate; medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pymongo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etl_platform.connectors.mongodb.writer import MongoTarget  # noqa: E402
from etl_platform_tests import servers  # noqa: E402


def sample(rows: int) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table({
        "order_id": np.arange(rows), "customer": [f"c{i % 997}" for i in range(rows)],
        "amount": rng.random(rows) * 100,
        "at": pa.array([datetime(2024, 1, 1, tzinfo=timezone.utc)] * rows, pa.timestamp("us", tz="UTC")),
        "address": pa.array([{"city": "Oslo", "zip": "0150"}] * rows),
    })


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = sample(args.documents)
    with servers.mongo_server() as uri:
        client = pymongo.MongoClient(uri)
        ours, raw = [], []
        for run in range(args.repeats):
            started = time.perf_counter()
            MongoTarget(uri=uri, database="bench", collection=f"ours_{run}").write(table, "append")
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            documents = table.to_pylist()
            for start in range(0, len(documents), 1000):
                client.bench[f"raw_{run}"].insert_many(documents[start:start + 1000], ordered=False)
            raw.append(time.perf_counter() - started)
        mine, theirs = statistics.median(ours), statistics.median(raw)
        print(f"{args.documents:,} documents, medians of {args.repeats}: ours {mine:.2f} s, raw insert_many "
              f"{theirs:.2f} s, throughput ours/raw {theirs / mine:.2f}x")


if __name__ == "__main__":
    main()
