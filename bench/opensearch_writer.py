"""OpenSearch: our writer against ``opensearchpy.helpers.bulk``, side by side, on osmem-server.

    .venv/bin/python bench/opensearch_writer.py --documents 100000 --repeats 3

Both start from the same pyarrow.Table and send 1,000 documents per ``_bulk`` call with ids from
``event_id``; raw converts with ``to_pylist()`` and builds the actions itself (timestamps as ISO text).
Each run writes a fresh index; runs alternate; medians.
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
from opensearchpy import OpenSearch, helpers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etl_platform.connectors.opensearch.writer import OpenSearchTarget  # noqa: E402
from etl_platform_tests import servers  # noqa: E402


def sample(rows: int) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table({
        "event_id": np.arange(rows), "message": [f"event {i}" for i in range(rows)],
        "amount": rng.random(rows) * 100,
        "@timestamp": pa.array([datetime(2024, 1, 1, tzinfo=timezone.utc)] * rows, pa.timestamp("us", tz="UTC")),
    })


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = sample(args.documents)
    with servers.opensearch_server() as host:
        client = OpenSearch(hosts=[host])
        ours, raw = [], []
        for run in range(args.repeats):
            started = time.perf_counter()
            OpenSearchTarget(hosts=[host], index=f"ours_{run}", create_index=False).write(table, "upsert", ["event_id"])
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            actions = ({"_index": f"raw_{run}", "_id": str(r["event_id"]),
                        "_source": {**r, "@timestamp": r["@timestamp"].isoformat()}} for r in table.to_pylist())
            helpers.bulk(client, actions, chunk_size=1000)
            raw.append(time.perf_counter() - started)
        mine, theirs = statistics.median(ours), statistics.median(raw)
        print(f"{args.documents:,} documents, medians of {args.repeats}: ours {mine:.2f} s, helpers.bulk "
              f"{theirs:.2f} s, throughput ours/raw {theirs / mine:.2f}x")


if __name__ == "__main__":
    main()
