"""upsert(): both backends give identical results; URIs pick the store; bad arguments are named."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl_platform.destinations import ConfigurationError
from etl_platform.upsert import Merger, upsert


@pytest.fixture(scope="module")
def spark():
    from pyspark import sql as pyspark_sql
    session = (pyspark_sql.SparkSession.builder.master("local[2]").appName("etl_platform_tests")
               .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "4").getOrCreate())
    yield session
    session.stop()


def random_batch(seed: int, rows: int, keys: int) -> pa.Table:
    rng = random.Random(seed)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    return pa.table({
        "id": pa.array([rng.randint(1, keys) for _ in range(rows)], pa.int64()),
        "region": pa.array([rng.choice(["eu", "us"]) for _ in range(rows)], pa.string()),
        "updated_at": pa.array([None if rng.random() < 0.1 else start + dt.timedelta(hours=rng.randint(0, 5))
                                for _ in range(rows)], pa.timestamp("us", tz="UTC")),
        "amount": pa.array([None if rng.random() < 0.1 else rng.randint(-5, 500) for _ in range(rows)], pa.int64()),
        "note": pa.array([rng.choice(["a", "b", None, "Zoë"]) for _ in range(rows)], pa.string()),
    })


@pytest.mark.parametrize("method,modification", [("by_id", None), ("by_id_and_modification", "updated_at")])
def test_pyspark_upsert_equals_pandas_upsert(spark, method, modification):
    existing, new = random_batch(1, 400, 150), random_batch(2, 300, 200)
    results = {}
    for backend in ("pandas", "pyspark"):
        merger = Merger(method, ["id", "region"], modification, backend)
        results[backend] = merger.merge(merger.merge(None, existing), new)
    assert results["pandas"].schema == results["pyspark"].schema == existing.schema
    assert results["pandas"].to_pylist() == results["pyspark"].to_pylist()
    keys = [(r["id"], r["region"]) for r in results["pandas"].to_pylist()]
    assert len(keys) == len(set(keys))


def test_upsert_function_on_a_local_uri(tmp_path):
    target = f"file://{tmp_path}/customers"
    first = upsert([{"id": 1, "v": "a", "ts": 1}, {"id": 2, "v": "b", "ts": 1}], target, "by_id_and_modification",
                   ["id"], modification_column="ts")
    assert first["success"] and first["records_written"] == 2
    upsert([{"id": 2, "v": "old", "ts": 0}, {"id": 3, "v": "c", "ts": 1}], target, "by_id_and_modification",
           ["id"], modification_column="ts")
    rows = sorted(pq.read_table(tmp_path / "customers" / "part-00000.parquet").to_pylist(), key=lambda r: r["id"])
    assert rows == [{"id": 1, "v": "a", "ts": 1}, {"id": 2, "v": "b", "ts": 1}, {"id": 3, "v": "c", "ts": 1}]


def test_upsert_arguments_are_checked():
    with pytest.raises(ConfigurationError, match="method: 'latest' is not one of by_id, by_id_and_modification"):
        Merger("latest", ["id"], None, "pandas")
    with pytest.raises(ConfigurationError, match="modification_column: required"):
        Merger("by_id_and_modification", ["id"], None, "pandas")
    with pytest.raises(ConfigurationError, match="backend: 'polars' is not one of pandas, pyspark"):
        Merger("by_id", ["id"], None, "polars")
    with pytest.raises(ConfigurationError, match="scheme 'ftp'"):
        upsert([{"id": 1}], "ftp://host/x", "by_id", ["id"])


def test_pyspark_dataframes_in_and_out(spark, tmp_path):
    from pyspark.sql import DataFrame

    from etl_platform.destinations.tables import from_arrow
    from etl_platform.writers import WriterFactory

    frame = spark.createDataFrame([(1, "a"), (2, "Zoë")], "id long, name string")
    result = WriterFactory.create_writer("local", {"base_path": str(tmp_path)}).write(frame, key="spark")
    assert result["records_written"] == 2
    table = pq.read_table(tmp_path / "spark" / "part-00000.parquet")
    loaded = from_arrow(table, DataFrame)
    assert isinstance(loaded, DataFrame)
    assert sorted(tuple(r) for r in loaded.collect()) == [(1, "a"), (2, "Zoë")]
