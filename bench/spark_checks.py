"""Benchmark: an asset's checks on Spark as one query against one query per check, side by side in one run.

    .venv/bin/python bench/spark_checks.py [--sessions 500] [--rounds 2]

Generates the demo data (with defects), then runs the reference pipeline once on a local Spark lake. Each time an
asset's checks are evaluated, they are evaluated ``--rounds`` times each way, alternating (one query, one by one,
one query, ...), against the same tables: the checks only read. Prints the total seconds each way over every asset
and the median of the per-asset ratios (one query / one by one). The machine is noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import etl_platform.medallion.assets as medallion_assets  # noqa: E402
from etl_platform.landing import LandingZone  # noqa: E402
from etl_platform.quality import evaluate_checks  # noqa: E402
from etl_platform.video_analytics import demo_data  # noqa: E402
from etl_platform.video_analytics.assets import RefreshPolicy, build_assets  # noqa: E402
from etl_platform.video_analytics.checks import QualityPolicy, build_asset_checks  # noqa: E402
from etl_platform.warehouse.spark_warehouse import SparkWarehouse  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    seconds: dict[bool, list[float]] = {True: [], False: []}

    def both_ways(conn, key, checks, resources, log, selected=None):
        results = []
        for _ in range(args.rounds):
            for together in (True, False):
                conn.checks_in_one_query = together
                started = time.monotonic()
                results = list(evaluate_checks(conn, key, checks, resources, log, selected))
                seconds[together].append(time.monotonic() - started)
        del conn.checks_in_one_query  # the session's own setting again
        return iter(results)

    medallion_assets.evaluate_checks = both_ways  # where the assets call it
    home = Path(tempfile.mkdtemp(prefix="bench_spark_checks_"))
    demo_data.generate(home / "landing" / "video_analytics", sessions=args.sessions, seed=3, defects=True,
                       progress=False)
    result = dg.materialize(
        [*build_assets("spark"), *build_asset_checks()],
        resources={"warehouse": SparkWarehouse(lake_path=str(home / "lake")), "quality_policy": QualityPolicy(),
                   "refresh_policy": RefreshPolicy(),
                   "landing": LandingZone(root=str(home / "landing"), settle_seconds=0)},
    )
    assert result.success
    ratios = [together / alone for together, alone in zip(seconds[True], seconds[False])]
    print(f"{len(ratios)} evaluations of an asset's checks ({args.sessions} sessions, {args.rounds} round(s) each way)")
    print(f"one query: {sum(seconds[True]):.1f} s; one by one: {sum(seconds[False]):.1f} s; "
          f"ratio of totals {sum(seconds[True]) / sum(seconds[False]):.2f}x; median ratio {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
