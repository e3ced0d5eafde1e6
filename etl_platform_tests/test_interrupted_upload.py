"""An upload cut by the server going away leaves the previous version readable; the retry completes once."""

from __future__ import annotations

import boto3
import pyarrow as pa
import pytest

from etl_platform.destinations import DestinationConnectionError
from etl_platform.writers import WriterFactory
from etl_platform_tests import servers
from etl_platform_tests.proxy import CuttableProxy


def table(version: int, rows: int) -> pa.Table:
    return pa.table({
        "id": pa.array(range(rows), pa.int64()),
        "day": pa.array([f"2024-01-0{i % 3 + 1}" for i in range(rows)]),
        "payload": pa.array([f"v{version}-{i:08d}-" + "x" * 40 for i in range(rows)]),
    })


@pytest.mark.parametrize("partitioned", [False, True], ids=["one_object", "several_objects"])
def test_interrupted_overwrite_keeps_the_previous_version(partitioned):
    with servers.moto_s3() as url:
        proxy = CuttableProxy(int(url.rsplit(":", 1)[1]))
        try:
            client = boto3.client("s3", endpoint_url=url, aws_access_key_id="k", aws_secret_access_key="s",
                                  region_name="us-east-1")
            client.create_bucket(Bucket="lake")
            config = {"bucket": "lake", "endpoint_url": proxy.url, "aws_access_key_id": "k",
                      "aws_secret_access_key": "s", "region": "us-east-1", "format": "csv", "retries": 2,
                      **({"partition_by": ["day"]} if partitioned else {})}
            writer = WriterFactory.create_writer("s3", config)
            writer.write(table(1, 3_000), key="facts")

            def dataset_keys():
                pages = client.get_paginator("list_objects_v2").paginate(Bucket="lake", Prefix="facts/")
                return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

            def payload_versions():
                versions = set()
                for key in dataset_keys():
                    body = client.get_object(Bucket="lake", Key=key)["Body"].read().decode()
                    versions |= {line.split(",")[-1].split("-")[0] for line in body.splitlines()[1:]}
                return versions

            before = dataset_keys()
            assert payload_versions() == {"v1"}

            proxy.upstream_bytes = 0
            proxy.cut_after_bytes = 150_000  # the server goes away while v2's bytes are on the wire
            with pytest.raises(DestinationConnectionError, match=r"s3: (upload|commit) s3://lake/"):
                WriterFactory.create_writer("s3", config).write(table(2, 60_000), key="facts")
            assert dataset_keys() == before and payload_versions() == {"v1"}  # read directly from the server

            proxy.restore()
            result = WriterFactory.create_writer("s3", config).write(table(2, 60_000), key="facts")
            assert dataset_keys() == before and payload_versions() == {"v2"}
            assert result["records_written"] == 60_000
            total = sum(len(client.get_object(Bucket="lake", Key=k)["Body"].read().decode().splitlines()) - 1
                        for k in dataset_keys())
            assert total == 60_000  # no duplicates from the failed attempt
        finally:
            proxy.close()
