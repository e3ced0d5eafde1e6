"""Destinations against real servers the suite starts: moto S3, Azurite, a GCS emulator, and a temp dir.

What was written is read back with each store's own client (boto3, azure-storage-blob,
google-cloud-storage, the filesystem) and decoded independently of the platform's reader.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl_platform.destinations import ConfigurationError, Dataset, ReadError, ValidationError
from etl_platform.writers import WriterBuilder, WriterFactory
from etl_platform_tests import servers
from etl_platform_tests.conftest import only_file, without_write_ids

ROWS = [
    {"id": 1, "name": "Ann, \"the\" first", "score": 1.5, "day": "2024-01-01"},
    {"id": 2, "name": "Zoë\nsecond line", "score": None, "day": "2024-01-01"},
    {"id": 3, "name": "Bob", "score": 3.0, "day": "2024-01-02"},
]
FORMATS = [("parquet", None), ("parquet", "zstd"), *[(f, c) for f in ("jsonl", "json", "csv")
                                                     for c in (None, "gzip", "zstd")]]


class StoreFixture:
    """A running store: writer config, and a ``read(key) -> bytes`` / ``keys(prefix)`` through its own client."""

    def __init__(self, kind: str, config: dict, read, keys):
        self.kind, self.config, self.read, self.keys = kind, config, read, keys


@pytest.fixture(scope="module")
def s3_store():
    with servers.moto_s3() as url:
        client = boto3.client("s3", endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test",
                              region_name="us-east-1")
        client.create_bucket(Bucket="lake")
        yield StoreFixture(
            "s3",
            {"bucket": "lake", "endpoint_url": url, "aws_access_key_id": "test", "aws_secret_access_key": "test",
             "region": "us-east-1"},
            lambda key: client.get_object(Bucket="lake", Key=key)["Body"].read(),
            lambda prefix: sorted(o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
                Bucket="lake", Prefix=prefix) for o in page.get("Contents", [])),
        )


@pytest.fixture(scope="module")
def azure_store(tmp_path_factory):
    from azure.storage.blob import BlobServiceClient

    with servers.azurite(tmp_path_factory.mktemp("azurite")) as connection_string:
        container = BlobServiceClient.from_connection_string(connection_string).create_container("lake")
        yield StoreFixture(
            "azure_blob", {"container": "lake", "connection_string": connection_string},
            lambda key: container.download_blob(key).readall(),
            lambda prefix: sorted(b.name for b in container.list_blobs(name_starts_with=prefix)),
        )


@pytest.fixture(scope="module")
def gcs_store():
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    with servers.gcs_emulator() as url:
        previous = os.environ.get("STORAGE_EMULATOR_HOST")
        os.environ["STORAGE_EMULATOR_HOST"] = url
        try:
            bucket = storage.Client(project="test", credentials=AnonymousCredentials()).create_bucket("lake")
            yield StoreFixture(
                "gcs", {"bucket": "lake", "endpoint_url": url, "project": "test"},
                lambda key: bucket.blob(key).download_as_bytes(),
                lambda prefix: sorted(b.name for b in bucket.list_blobs(prefix=prefix)),
            )
        finally:
            if previous is None:
                os.environ.pop("STORAGE_EMULATOR_HOST", None)
            else:
                os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.fixture(scope="module")
def local_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("local_store")
    yield StoreFixture(
        "local", {"base_path": str(root)},
        lambda key: (root / key).read_bytes(),
        lambda prefix: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                              and str(p.relative_to(root)).startswith(prefix)),
    )


@pytest.fixture(params=["s3", "azure_blob", "gcs", "local"])
def store(request) -> StoreFixture:
    return request.getfixturevalue({"s3": "s3_store", "azure_blob": "azure_store", "gcs": "gcs_store",
                                    "local": "local_store"}[request.param])


def decode(data: bytes, key: str) -> list[dict]:
    """Decode a file's bytes with the standard libraries, not the platform's reader."""
    if key.endswith(".parquet"):
        return pq.read_table(io.BytesIO(data)).to_pylist()
    compression = "gzip" if key.endswith(".gz") else "zstd" if key.endswith(".zst") else None
    text = pa.input_stream(pa.py_buffer(data), compression=compression).read().decode("utf-8")
    if ".jsonl" in key:
        return [json.loads(line) for line in text.splitlines()]
    if ".json" in key:
        return json.loads(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    return [{k: (None if v == "" else v) for k, v in row.items()} for row in rows]


def normalized(rows: list[dict]) -> list[dict]:
    return [{"id": int(r["id"]), "name": r["name"], "score": None if r["score"] is None else float(r["score"]),
             "day": str(r["day"])} for r in sorted(rows, key=lambda r: int(r["id"]))]


@pytest.mark.parametrize("file_format,compression", FORMATS)
def test_round_trip_every_format_and_compression(store, file_format, compression, request):
    key = f"rt/{request.node.callspec.id.replace('[', '_').replace(']', '')}"
    config = {**store.config, "format": file_format, **({"compression": compression} if compression else {})}
    with WriterFactory.create_writer(store.kind, config) as writer:
        result = writer.write(ROWS, key=key)
    assert result["success"] is True and result["records_written"] == 3 and result["size_bytes"] > 0
    uri_key = {"s3": "s3_uri", "azure_blob": "blob_url", "gcs": "gcs_uri", "local": "file_path"}[store.kind]
    assert result[uri_key].endswith(writer.file_format.extension)
    keys = store.keys(key + "/")
    assert len(keys) == 1 and without_write_ids(keys)[0].endswith(f"part-00000{writer.file_format.extension}")
    assert normalized(decode(store.read(keys[0]), keys[0])) == normalized(ROWS)
    # and the platform's own reader gives the same rows back
    dataset = Dataset(writer.store, key, writer.file_format)
    assert normalized(dataset.read().to_pylist()) == normalized(ROWS)


def test_partitioned_write_is_hive_style_and_overwrite_is_idempotent(store):
    config = {**store.config, "partition_by": ["day"]}
    writer = WriterFactory.create_writer(store.kind, config)
    writer.write(ROWS, key="parted")
    first = store.keys("parted/")
    writer.write(ROWS, key="parted")
    second = store.keys("parted/")
    assert without_write_ids(second) == without_write_ids(first) == [
        "parted/day=2024-01-01/part-00000.parquet", "parted/day=2024-01-02/part-00000.parquet"]
    assert not set(first) & set(second)  # the overwrite replaced every file of the first write
    assert sorted(r["id"] for r in decode(store.read(second[0]), second[0])) == [1, 2]
    # DuckDB reads the folder as one dataset with the partition column
    if store.kind == "local":
        import duckdb

        root = Path(store.config["base_path"]) / "parted"
        count = duckdb.sql(f"SELECT count(*), count(DISTINCT day) FROM read_parquet('{root}/**/*.parquet', "
                           "hive_partitioning = true)").fetchall()[0]
        assert count == (3, 2)


def test_append_adds_parts_and_overwrite_replaces(store):
    writer = WriterFactory.create_writer(store.kind, {**store.config, "mode": "append"})
    writer.write(ROWS[:2], key="modes")
    writer.write(ROWS[2:], key="modes")
    appended = store.keys("modes/")
    assert without_write_ids(appended) == ["modes/part-00000.parquet", "modes/part-00000.parquet"]
    assert sorted(r["id"] for key in appended for r in decode(store.read(key), ".parquet")) == [1, 2, 3]
    overwrite = WriterFactory.create_writer(store.kind, store.config)
    overwrite.write(ROWS[:1], key="modes")
    (key,) = store.keys("modes/")
    assert decode(store.read(key), ".parquet")[0]["id"] == 1


def test_append_with_another_schema_is_refused_naming_the_columns(store):
    writer = WriterFactory.create_writer(store.kind, {**store.config, "mode": "append"})
    writer.write(ROWS, key="schema")
    with pytest.raises(ValidationError, match=r"missing columns \['score'\]; new columns \['extra'\]"):
        writer.write([{"id": 4, "name": "x", "day": "2024-01-03", "extra": True}], key="schema")
    with pytest.raises(ValidationError, match=r"changed types \['name \(string -> int64\)'\]"):
        writer.write([{"id": 4, "name": 7, "score": 1.0, "day": "2024-01-03"}], key="schema")
    assert without_write_ids(store.keys("schema/")) == ["schema/part-00000.parquet"]


def test_upsert_with_duplicates_and_modification_column(store):
    config = {**store.config, "mode": "upsert", "id_columns": ["id"], "modification_column": "version",
              "upsert_method": "by_id_and_modification"}
    writer = WriterFactory.create_writer(store.kind, config)
    writer.write([{"id": 1, "version": 2, "v": "a2"}, {"id": 2, "version": 1, "v": "b1"},
                  {"id": 1, "version": 1, "v": "a1"}], key="ups")            # duplicates inside the new data
    writer.write([{"id": 1, "version": 1, "v": "a-older"}, {"id": 2, "version": 5, "v": "b5"},
                  {"id": 2, "version": 5, "v": "b5-later-row"}, {"id": 3, "version": None, "v": "c"}], key="ups")
    (key,) = store.keys("ups/")
    rows = sorted(decode(store.read(key), ".parquet"), key=lambda r: r["id"])
    assert rows == [{"id": 1, "version": 2, "v": "a2"}, {"id": 2, "version": 5, "v": "b5-later-row"},
                    {"id": 3, "version": None, "v": "c"}]
    by_id = WriterFactory.create_writer(store.kind, {**store.config, "mode": "upsert", "id_columns": ["id"]})
    by_id.write([{"id": 1, "version": 0, "v": "new wins"}], key="ups")
    (key,) = store.keys("ups/")
    rows = sorted(decode(store.read(key), ".parquet"), key=lambda r: r["id"])
    assert [r["v"] for r in rows] == ["new wins", "b5-later-row", "c"]


def test_upsert_never_replaces_a_dataset_it_cannot_read(local_store):
    writer = WriterFactory.create_writer("local", {**local_store.config, "mode": "upsert", "id_columns": ["id"]})
    writer.write(ROWS, key="corrupt")
    target = only_file(Path(local_store.config["base_path"]) / "corrupt")
    target.write_bytes(b"not parquet at all")
    with pytest.raises(ReadError, match=f"could not read file://.*corrupt/{target.name}"):
        writer.write([{"id": 9, "name": "n", "score": 1.0, "day": "2024-01-09"}], key="corrupt")
    assert target.read_bytes() == b"not parquet at all"


def test_configuration_errors_name_the_key_and_allowed_values(tmp_path):
    with pytest.raises(ConfigurationError, match="writer type 'ftp' is unknown; use one of azure_blob, cassandra, csv, gcs, local, mongodb, opensearch, s3, solr"):
        WriterFactory.create_writer("ftp", {})
    with pytest.raises(ConfigurationError, match=r"s3: missing required config key\(s\) \['bucket'\]"):
        WriterBuilder().with_writer_type("s3").add_config_param("region", "eu-west-1").build()
    with pytest.raises(ConfigurationError, match="format: 'xml' is not one of parquet, jsonl, json, csv"):
        WriterFactory.create_writer("local", {"base_path": str(tmp_path), "format": "xml"})
    with pytest.raises(ConfigurationError, match="compression: 'lz4' is not allowed for csv"):
        WriterFactory.create_writer("csv", {"base_path": str(tmp_path), "compression": "lz4"})
    with pytest.raises(ConfigurationError, match="mode: 'merge' is not one of append, overwrite, upsert"):
        WriterFactory.create_writer("local", {"base_path": str(tmp_path), "mode": "merge"})
    with pytest.raises(ConfigurationError, match=r"unknown config key\(s\) \['buckett'\]"):
        WriterFactory.create_writer("s3", {"bucket": "b", "buckett": "typo"})


def test_missing_bucket_is_a_configuration_error(s3_store):
    writer = WriterFactory.create_writer("s3", {**s3_store.config, "bucket": "no-such-bucket"})
    with pytest.raises(ConfigurationError, match="s3: bucket 'no-such-bucket' does not exist"):
        writer.write(ROWS, key="x")


def test_secrets_do_not_appear_in_errors(s3_store):
    secret = "very-secret-value-123"
    writer = WriterFactory.create_writer("s3", {**s3_store.config, "aws_secret_access_key": secret,
                                                "bucket": "no-such-bucket"})
    with pytest.raises(ConfigurationError) as error:
        writer.write(ROWS, key="x")
    assert secret not in str(error.value)


def test_builder_and_types_in(local_store):
    import pandas as pd

    writer = (WriterBuilder().with_writer_type("csv").add_config_param("base_path", local_store.config["base_path"])
              .add_config_param("csv_delimiter", ";").build())
    for number, data in enumerate([pd.DataFrame(ROWS), pa.Table.from_pylist(ROWS), ROWS]):
        result = writer.write(data, key=f"typed/{number}")
        assert result["file_path"].endswith(".csv") and result["records_written"] == 3
    text = only_file(Path(local_store.config["base_path"]) / "typed" / "0", "*.csv").read_text()
    assert text.splitlines()[0] == "id;name;score;day"
    with pytest.raises(ValidationError, match="cannot write a builtins.str"):
        writer.write("not data", key="typed/bad")


def test_store_repr_hides_secrets():
    from etl_platform.destinations import AzureBlobStore, S3Store

    text = repr(S3Store(bucket="b", aws_secret_access_key="s3-secret", aws_session_token="token-secret")) + repr(
        AzureBlobStore(container="c", connection_string="AccountKey=conn-secret", account_key="key-secret"))
    assert not any(secret in text for secret in ("s3-secret", "token-secret", "conn-secret", "key-secret"))


def test_concurrent_appends_both_land(local_store):
    import threading

    writer_config = {**local_store.config, "mode": "append"}
    barrier = threading.Barrier(4)

    def append(number):
        writer = WriterFactory.create_writer("local", writer_config)
        barrier.wait()
        writer.write([{"id": number, "name": f"n{number}"}], key="concurrent")

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    dataset = Dataset(WriterFactory.create_writer("local", writer_config).store, "concurrent")
    assert sorted(dataset.read()["id"].to_pylist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("failing_move", [1, 2])
def test_a_commit_that_fails_at_a_move_leaves_the_previous_version_whole(store, monkeypatch, failing_move):
    """A several-file overwrite (one file per partition) whose commit fails at its first or second move."""
    key = f"atomic{failing_move}"
    writer = WriterFactory.create_writer(store.kind, {**store.config, "partition_by": ["day"]})
    writer.write(ROWS, key=key)
    before = store.keys(key + "/")
    moves = []
    original_move = type(writer.store).move

    def flaky_move(self, fs, source, target):
        moves.append(target)
        if len(moves) == failing_move:
            raise OSError("injected fault in the commit step")
        return original_move(self, fs, source, target)

    monkeypatch.setattr(type(writer.store), "move", flaky_move)
    changed = [{**row, "name": "v2"} for row in ROWS] + [{"id": 4, "name": "v2", "score": 4.0, "day": "2024-01-03"}]
    with pytest.raises(Exception, match="injected fault"):
        writer.write(changed, key=key)
    assert store.keys(key + "/") == before  # no new file, none of the old removed
    dataset = Dataset(writer.store, key, writer.file_format)
    assert sorted(r["name"] for r in dataset.read().to_pylist()) == sorted(r["name"] for r in ROWS)
    monkeypatch.setattr(type(writer.store), "move", original_move)
    writer.write(changed, key=key)  # the retry publishes the new version once
    assert sorted(r["id"] for r in dataset.read().to_pylist()) == [1, 2, 3, 4]


def test_staging_left_by_a_killed_writer_is_removed_by_the_next_write(local_store):
    from etl_platform.destinations.dataset import HOST

    base = Path(local_store.config["base_path"])
    dead = subprocess_pid_that_exited()
    abandoned = base / "_staging" / f"{HOST}-{dead}-0123abcd" / "0.parquet"
    alive = base / "_staging" / f"{HOST}-{os.getpid()}-4567ef01" / "0.parquet"
    other_host = base / "_staging" / f"{HOST}x-{dead}-89ab" / "0.parquet"
    for path in (abandoned, alive, other_host):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"staged")
    writer = WriterFactory.create_writer("local", {**local_store.config, "partition_by": ["day"]})
    writer.write(ROWS, key="after_kill")  # two partitions: a staged, several-file write
    assert not abandoned.parent.exists()
    assert alive.exists() and other_host.exists()  # a running writer's, and another machine's, are left alone


def subprocess_pid_that_exited() -> int:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ---------------------------------------------------------------- streams of record batches


def interleaved_batches(days: int, batches: int, rows: int):
    """``batches`` batches of ``rows`` rows, each holding every one of ``days`` partition values."""
    import datetime

    for number in range(batches):
        ids = range(number * rows, (number + 1) * rows)
        yield pa.record_batch({"id": pa.array(ids, pa.int64()),
                               "day": pa.array([datetime.date(2024, 1, 1 + i % days) for i in ids], pa.date32()),
                               "note": pa.array([f"row {i}" for i in ids])})


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_a_stream_spread_over_more_partitions_than_open_files(local_store, monkeypatch, file_format):
    """Batches arrive interleaved across 9 partitions while at most 3 spill files may be open: every row lands
    once, in its own folder, and a folder gets one file however often it was reopened."""
    from etl_platform.destinations import dataset as dataset_module
    from etl_platform.destinations.formats import FileFormat
    from etl_platform.destinations.stores import LocalStore

    monkeypatch.setattr(dataset_module, "MAX_OPEN_SPILLS", 3)
    dataset = Dataset(LocalStore(base_path=local_store.config["base_path"]), f"streamed_{file_format}",
                      FileFormat(file_format), partition_by=("day",))
    result = dataset.write(interleaved_batches(days=9, batches=20, rows=50), "overwrite")
    assert result.records_written == 1000 and result.files == 9
    assert {uri.split("/")[-2] for uri in result.uris} == {f"day=2024-01-0{d}" for d in range(1, 10)}
    back = dataset.read().sort_by("id")
    assert back.num_rows == 1000 and back["id"].to_pylist() == list(range(1000))
    assert back["note"][999].as_py() == "row 999" and str(back["day"][10]) == "2024-01-02"


def test_a_streamed_parquet_file_has_large_row_groups_and_the_first_batch_schema(local_store):
    """Many small batches are gathered into row groups of the configured size, not one row group per batch."""
    from etl_platform.destinations.stores import LocalStore

    dataset = Dataset(LocalStore(base_path=local_store.config["base_path"]), "streamed_groups")
    result = dataset.write(interleaved_batches(days=1, batches=300, rows=1000), "overwrite")
    metadata = pq.ParquetFile(result.uris[0].removeprefix("file://")).metadata
    assert result.records_written == metadata.num_rows == 300_000
    assert metadata.num_row_groups == 3  # 131,072 + 131,072 + 37,856 rows, from 300 batches of 1,000


def test_a_stream_whose_schema_changes_midway_is_refused_and_nothing_is_written(local_store):
    from etl_platform.destinations.stores import LocalStore

    dataset = Dataset(LocalStore(base_path=local_store.config["base_path"]), "streamed_bad")
    good = next(interleaved_batches(days=2, batches=1, rows=10))
    bad = pa.record_batch({"id": pa.array(["x"]), "day": pa.array([None], pa.date32()), "note": pa.array(["y"])})
    with pytest.raises(ValidationError, match=r"record batch 2 does not have the stream's schema: id string \(first batch: int64\)$"):
        dataset.write(iter([good, good, bad]), "overwrite")
    assert dataset.files() == []
    with pytest.raises(ValidationError, match="an empty stream of record batches has no schema"):
        dataset.write(iter([]), "overwrite")


def test_appending_a_stream_casts_each_batch_to_the_dataset_types(local_store):
    from etl_platform.destinations.stores import LocalStore

    dataset = Dataset(LocalStore(base_path=local_store.config["base_path"]), "streamed_append")
    dataset.write(pa.table({"id": pa.array([1], pa.int64()), "v": pa.array([1.5], pa.float64())}), "overwrite")
    narrow = (pa.record_batch({"id": pa.array([n], pa.int32()), "v": pa.array([n], pa.float32())}) for n in (2, 3))
    result = dataset.write(narrow, "append")
    back = dataset.read().sort_by("id")
    assert result.records_written == 2 and back.schema.field("id").type == pa.int64()
    assert back.to_pydict() == {"id": [1, 2, 3], "v": [1.5, 2.0, 3.0]}


def test_records_whose_keys_differ_keep_every_key(local_store):
    """A list of dicts becomes columns from the union of the keys: a key the first record lacks is not dropped
    (``pa.Table.from_pylist`` alone takes its columns from the first record)."""
    with WriterFactory.create_writer("local", {**local_store.config, "format": "jsonl"}) as writer:
        result = writer.write([{"a": 1}, {"a": 2, "b": "late key"}], key="union/rows.jsonl")
    back = [json.loads(line) for line in Path(result["file_path"]).read_text().splitlines()]
    assert back == [{"a": 1, "b": None}, {"a": 2, "b": "late key"}]
