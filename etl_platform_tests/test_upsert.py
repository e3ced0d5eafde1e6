"""upsert(): both backends give identical results; URIs pick the store; bad arguments are named."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl_platform.destinations import ConfigurationError
from etl_platform.upsert import Merger, upsert
from etl_platform_tests.conftest import only_file


@pytest.fixture
def spark(spark_session):
    return spark_session


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
    rows = sorted(pq.read_table(only_file(tmp_path / "customers")).to_pylist(), key=lambda r: r["id"])
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
    table = pq.read_table(only_file(tmp_path / "spark"))
    loaded = from_arrow(table, DataFrame)
    assert isinstance(loaded, DataFrame)
    assert sorted(tuple(r) for r in loaded.collect()) == [(1, "a"), (2, "Zoë")]


@pytest.mark.parametrize("backend", ["pandas", "pyspark"])
def test_null_keys_are_refused_naming_the_column_and_count(spark, backend):
    from etl_platform.destinations import ValidationError

    merger = Merger("by_id", ["id", "region"], None, backend)
    new = pa.table({"id": [1, None, None], "region": ["eu", "eu", "us"], "v": ["a", "b", "c"]})
    with pytest.raises(ValidationError, match=r"id_columns: 'id' is NULL in 2 row\(s\) of the new data"):
        merger.merge(None, new)


def test_pyspark_backend_keeps_timestamps_without_zone_whatever_the_session_zone(spark):
    naive = pa.table({"id": [1, 2], "ts": pa.array([dt.datetime(2024, 1, 1, 12), None], pa.timestamp("us"))})
    update = pa.table({"id": [2, 3], "ts": pa.array([dt.datetime(2024, 6, 1, 23, 30), dt.datetime(2024, 3, 31, 2, 30)],
                                                  pa.timestamp("us"))})
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        results = {backend: Merger("by_id", ["id"], None, backend).merge(naive, update)
                   for backend in ("pandas", "pyspark")}
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert results["pyspark"].to_pylist() == results["pandas"].to_pylist() == [
        {"id": 1, "ts": dt.datetime(2024, 1, 1, 12)}, {"id": 2, "ts": dt.datetime(2024, 6, 1, 23, 30)},
        {"id": 3, "ts": dt.datetime(2024, 3, 31, 2, 30)}]
    assert results["pyspark"].schema == naive.schema
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"


def test_types_must_match_or_widen_without_loss(tmp_path):
    from etl_platform.destinations import ValidationError

    target = str(tmp_path / "typed")
    aware = pa.table({"id": pa.array([1], pa.int64()), "ts": pa.array([dt.datetime(2024, 1, 1)],
                                                                       pa.timestamp("us", tz="UTC"))})
    upsert(aware, target, "by_id", ["id"])
    paris = aware.set_column(1, "ts", pa.array([dt.datetime(2024, 1, 2)], pa.timestamp("us", tz="Europe/Paris")))
    with pytest.raises(ValidationError, match=r"changed types \['ts \(timestamp\[us, tz=UTC\] -> "
                                              r"timestamp\[us, tz=Europe/Paris\]\)'\]"):
        upsert(paris, target, "by_id", ["id"])
    # Naive and UTC are one column (naive taken as UTC): the pandas and pyspark backends share datasets.
    naive = aware.set_column(1, "ts", pa.array([dt.datetime(2024, 1, 2)], pa.timestamp("us")))
    upsert(naive, target, "by_id", ["id"])
    assert pq.read_table(only_file(tmp_path / "typed")).to_pylist() == [
        {"id": 1, "ts": dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc)}]
    narrow_target = str(tmp_path / "narrow")
    upsert(pa.table({"id": pa.array([1], pa.int8())}), narrow_target, "by_id", ["id"])
    with pytest.raises(ValidationError, match=r"changed types \['id \(int8 -> int64\)'\]"):
        upsert(pa.table({"id": pa.array([300], pa.int64())}), narrow_target, "by_id", ["id"])
    # A lossless widening is accepted, and the dataset keeps its types.
    upsert(pa.table({"id": pa.array([2], pa.int8()), "ts": pa.array([dt.datetime(2024, 1, 3)],
                                                                       pa.timestamp("ms", tz="UTC"))}),
           target, "by_id", ["id"])
    table = pq.read_table(only_file(tmp_path / "typed"))
    assert table.schema == aware.schema and sorted(table["id"].to_pylist()) == [1, 2]


def test_a_relative_local_target_is_below_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = upsert([{"id": 1, "v": "a"}], "data/users", "by_id", ["id"])
    assert result["uris"][0].startswith(f"file://{tmp_path}/data/users/part-")
    assert only_file(tmp_path / "data" / "users")
