"""An upload cut by the server going away leaves the previous version readable; the retry completes once.

A TCP proxy stands between the writer and the test server and is cut while the new version's bytes
are on the wire: the servers keep data in memory, so stopping them would lose the previous version
too, while losing the only network path is what a client sees when its server goes away. The
checks read the store directly, with its own client. GCS's client retries for 30-90 s before giving up
(Azure's is given shorter waits here); those cases run once each, the S3 one for a single and for several objects.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import boto3
import pyarrow as pa
import pytest

from etl_platform.destinations import DestinationConnectionError
from etl_platform.writers import WriterFactory
from etl_platform_tests import servers
from etl_platform_tests.conftest import without_write_ids
from etl_platform_tests.proxy import CuttableProxy


def table(version: int, rows: int) -> pa.Table:
    return pa.table({
        "id": pa.array(range(rows), pa.int64()),
        "day": pa.array([f"2024-01-0{i % 3 + 1}" for i in range(rows)]),
        "payload": pa.array([f"v{version}-{i:08d}-" + "x" * 40 for i in range(rows)]),
    })


@contextmanager
def s3_behind_proxy():
    with servers.moto_s3() as url:
        proxy = CuttableProxy(int(url.rsplit(":", 1)[1]))
        client = boto3.client("s3", endpoint_url=url, aws_access_key_id="k", aws_secret_access_key="s",
                              region_name="us-east-1")
        client.create_bucket(Bucket="lake")
        config = {"bucket": "lake", "endpoint_url": proxy.url, "aws_access_key_id": "k", "aws_secret_access_key": "s",
                  "region": "us-east-1", "retries": 2}

        def keys():
            pages = client.get_paginator("list_objects_v2").paginate(Bucket="lake", Prefix="facts/")
            return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

        try:
            yield proxy, config, keys, lambda key: client.get_object(Bucket="lake", Key=key)["Body"].read()
        finally:
            proxy.close()


@contextmanager
def azure_behind_proxy():
    from azure.storage.blob import BlobServiceClient

    with servers.azurite(Path(tempfile.mkdtemp())) as connection_string:
        port = int(connection_string.split("BlobEndpoint=http://127.0.0.1:")[1].split("/")[0])
        proxy = CuttableProxy(port)
        container = BlobServiceClient.from_connection_string(connection_string).create_container("lake")
        config = {"container": "lake", "connection_string": connection_string.replace(f":{port}/", f":{proxy.port}/"),
                  "retries": 2, "retry_backoff": 0.5}  # the SDK's default waits ~1 min before it gives up
        try:
            yield (proxy, config, lambda: sorted(b.name for b in container.list_blobs(name_starts_with="facts/")),
                   lambda key: container.download_blob(key).readall())
        finally:
            proxy.close()


@contextmanager
def gcs_behind_proxy():
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    with servers.gcs_emulator() as url:
        proxy = CuttableProxy(int(url.rsplit(":", 1)[1]))
        previous = os.environ.get("STORAGE_EMULATOR_HOST")
        os.environ["STORAGE_EMULATOR_HOST"] = url
        bucket = storage.Client(project="test", credentials=AnonymousCredentials()).create_bucket("lake")
        config = {"bucket": "lake", "endpoint_url": proxy.url, "project": "test"}
        try:
            yield (proxy, config, lambda: sorted(b.name for b in bucket.list_blobs(prefix="facts/")),
                   lambda key: bucket.blob(key).download_as_bytes())
        finally:
            proxy.close()
            if previous is None:
                os.environ.pop("STORAGE_EMULATOR_HOST", None)
            else:
                os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.mark.parametrize("kind,partitioned", [
    ("s3", False), ("s3", True), ("azure_blob", True), ("gcs", True),
], ids=["s3-one_object", "s3-several_objects", "azure_blob-several_objects", "gcs-several_objects"])
def test_interrupted_overwrite_keeps_the_previous_version(kind, partitioned):
    setup = {"s3": s3_behind_proxy, "azure_blob": azure_behind_proxy, "gcs": gcs_behind_proxy}[kind]
    with setup() as (proxy, store_config, dataset_keys, read):
        config = {**store_config, "format": "csv", **({"partition_by": ["day"]} if partitioned else {})}
        WriterFactory.create_writer(kind, config).write(table(1, 3_000), key="facts")

        def payload_versions() -> set[str]:
            versions = set()
            for key in dataset_keys():
                lines = read(key).decode().splitlines()[1:]
                versions |= {line.split(",")[-1].split("-")[0] for line in lines}
            return versions

        before = dataset_keys()
        assert payload_versions() == {"v1"}

        proxy.upstream_bytes = 0
        proxy.cut_after_bytes = 150_000  # the server goes away while v2's bytes are on the wire
        started = time.monotonic()
        with pytest.raises(DestinationConnectionError, match=rf"{kind}: (upload|commit) "):
            WriterFactory.create_writer(kind, config).write(table(2, 60_000), key="facts")
        if kind == "azure_blob":  # its retries as set (2 attempts, 0.5 s apart), not the SDK's minute
            assert time.monotonic() - started < 30
        assert dataset_keys() == before and payload_versions() == {"v1"}

        proxy.restore()
        result = WriterFactory.create_writer(kind, config).write(table(2, 60_000), key="facts")
        after = dataset_keys()  # the same layout, in new files: every write names its files with a new id
        assert without_write_ids(after) == without_write_ids(before) and not set(after) & set(before)
        assert payload_versions() == {"v2"}
        assert result["records_written"] == 60_000
        assert sum(len(read(k).decode().splitlines()) - 1 for k in dataset_keys()) == 60_000  # no duplicates
