"""The reference pipeline on a Spark standalone cluster gives DuckDB's tables and checks (issue 22). The suite's
longest test: a file of its own, so that xdist (a file whole in one worker) runs it beside the rest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from etl_platform.spark_session import spark_session
from etl_platform.warehouse.spark_warehouse import SparkWarehouse
from etl_platform_tests.servers import spark_cluster
from etl_platform_tests.test_engines import _assert_same_as_duckdb


def spark_engine_scenario(home: Path) -> None:
    """The defective demo data through DuckDB and Spark (the process's Spark session: a cluster when
    $ETL_SPARK_MASTER names one), a day's changes after, and every table and check compared; Spark's exports stream
    in batches; the upsert's pyspark backend shares the session; no scratch left. Run by the test below in a process
    of its own, whose Spark session is the cluster's driver."""
    from etl_platform_tests.conftest import Platform

    platform = Platform(home)
    spark = SparkWarehouse(lake_path=str(home / "lake"))
    _assert_same_as_duckdb(platform, spark)
    with spark.connect() as session:
        assert session.raw.sparkContext.master == os.environ["ETL_SPARK_MASTER"]  # the cluster, not local mode
        # Exports stream the gold tables in batches (written by Spark, read back from Parquet).
        total = session.execute("SELECT count(*) FROM gold.viewing_fact").fetchone()[0]
        sizes = [b.num_rows for b in session.arrow_reader("SELECT * FROM gold.viewing_fact", batch_rows=1000)]
        assert sum(sizes) == total > 1000 and max(sizes) <= 1000
        # The upsert's pyspark backend gets the same session.
        assert spark_session() is session.raw
    scratch = home / "lake" / "_scratch"
    assert not scratch.exists() or not any(scratch.iterdir())


def test_defective_demo_data_gives_the_same_tables_and_checks_on_duckdb_and_a_spark_cluster(tmp_path):
    """Issue 22: beyond local mode. A standalone master and worker start on this machine (pyspark's spark-class);
    the scenario above runs in a process whose Spark session is the cluster's driver ($ETL_SPARK_MASTER, as a user
    sets it), the worker's executors doing the work: silver, quarantine and gold equal DuckDB's, row for row, after
    a full run and after a day's changes, and every check gives the same verdict."""
    import json
    import urllib.request

    home = tmp_path / "home"
    home.mkdir()
    with spark_cluster() as (master, status):
        env = {**{k: v for k, v in os.environ.items() if k not in ("ETL_PLATFORM_EXPORTS", "ETL_PLATFORM_JOBS")},
               "ETL_SPARK_MASTER": master, "ETL_PLATFORM_HOME": str(home), "DAGSTER_HOME": str(tmp_path)}
        code = (f"from pathlib import Path; from etl_platform_tests.test_engines_spark_cluster import spark_engine_scenario; "
                f"spark_engine_scenario(Path({str(home)!r}))")
        run = subprocess.run([sys.executable, "-c", code], env=env, cwd=Path(__file__).resolve().parents[1],
                             capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
        applications = json.load(urllib.request.urlopen(status, timeout=5))
    ran = applications.get("completedapps", []) + applications.get("activeapps", [])
    assert ran and all(app.get("cores", 0) >= 1 for app in ran), applications  # the cluster's executors did the work
