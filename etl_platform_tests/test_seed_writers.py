"""Seed 000's writer examples for the file and object stores, run as written (with ``etl_platform`` imports)
against the suite's moto, Azurite and GCS emulator and the local disk."""

from __future__ import annotations

import csv
import gzip
import io
import json

import boto3
import pytest

from etl_platform.writers import ClientConnectionError, ConfigurationError, ValidationError, WriterBuilder, WriterFactory
from etl_platform_tests.servers import azurite, gcs_emulator, moto_s3_bucket

data = [{"log_id": "a1", "timestamp": "2024-01-01T00:00:00Z", "message": "hello"},
        {"log_id": "a2", "timestamp": "2024-01-01T00:00:01Z", "message": "wörld, \"quoted\""}]


@pytest.fixture
def s3(monkeypatch):
    with moto_s3_bucket("my-bucket") as endpoint:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
        yield endpoint, boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def _objects(client, bucket: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_s3_examples(s3):
    endpoint, client = s3
    config = {
        'bucket': 'my-bucket',
        'region_name': 'us-east-1',
        'format': 'json',
        'endpoint_url': endpoint,  # moto instead of AWS
    }
    writer = WriterFactory.create_writer('s3', config)
    with writer:
        result = writer.write(data)
        assert result['records_written'] == 2
    with writer:
        result = writer.write(data, key='custom/path/data.json')
        assert result['s3_uri'] == 's3://my-bucket/custom/path/data.json'

    objects = _objects(client, "my-bucket")
    assert json.loads(objects["custom/path/data.json"]) == data  # the object itself, not a folder
    (generated,) = [k for k in objects if k != "custom/path/data.json"]
    assert generated.startswith("20") and generated.endswith(".json") and "/data_" in generated

    gzipped = WriterFactory.create_writer('s3', {'bucket': 'my-bucket', 'prefix': 'logs/', 'format': 'jsonl',
                                                 'compression': 'gzip', 'endpoint_url': endpoint})
    with gzipped:
        result = gzipped.write(data)
        print(f"✓ Wrote {result['records_written']} records to {result['s3_uri']}")
    key = result['s3_uri'].removeprefix('s3://my-bucket/')
    assert key.startswith("logs/") and key.endswith(".jsonl.gz")
    lines = gzip.decompress(_objects(client, "my-bucket")[key]).decode().splitlines()
    assert [json.loads(line) for line in lines] == data

    built = (WriterBuilder()
             .with_writer_type('s3')
             .add_config_param('bucket', 'my-bucket')
             .add_config_param('region_name', 'us-east-1')
             .add_config_param('format', 'jsonl')
             .add_config_param('endpoint_url', endpoint)
             .build())
    with built:
        assert built.write(data)['records_written'] == 2


def test_csv_examples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = {'file_path': 'output/data.csv', 'mode': 'w', 'delimiter': ',', 'include_header': True}
    writer = WriterFactory.create_writer('csv', config)
    with writer:
        result = writer.write(data)
        print(f"File: {result['file_path']}")
    assert result['file_path'] == "output/data.csv"  # issue 20, item 19: the path as given, not a file:// URI
    assert result['uris'] == [(tmp_path / "output/data.csv").as_uri()]
    appender = WriterFactory.create_writer('csv', {**config, 'mode': 'a'})
    with appender:
        appender.write(data[:1])
    rows = list(csv.DictReader(io.StringIO((tmp_path / "output/data.csv").read_text(encoding="utf-8"))))
    assert [r["log_id"] for r in rows] == ["a1", "a2", "a1"] and rows[1]["message"] == 'wörld, "quoted"'
    with pytest.raises(ConfigurationError, match="mode 'x' is not one of 'w'"):
        WriterFactory.create_writer('csv', {**config, 'mode': 'x'})


def test_azure_and_gcs_examples(tmp_path):
    from azure.storage.blob import BlobServiceClient
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    with azurite(tmp_path) as connection_string:
        BlobServiceClient.from_connection_string(connection_string).create_container("mycontainer")
        config = {'connection_string': connection_string, 'container': 'mycontainer', 'prefix': 'data/',
                  'format': 'json'}
        writer = WriterFactory.create_writer('azure_blob', config)
        with writer:
            result = writer.write(data, blob_name='data.json')
            print(f"Blob URL: {result['blob_url']}")
        assert result['blob_url'].endswith("/mycontainer/data/data.json")
        blob = BlobServiceClient.from_connection_string(connection_string).get_blob_client("mycontainer",
                                                                                            "data/data.json")
        assert json.loads(blob.download_blob().readall()) == data

    with gcs_emulator() as endpoint:
        client = storage.Client(project="my-project", credentials=AnonymousCredentials(),
                                client_options={"api_endpoint": endpoint})
        client.create_bucket("my-bucket")
        config = {'bucket': 'my-bucket', 'project_id': 'my-project', 'prefix': 'data/', 'format': 'json',
                  'endpoint_url': endpoint}
        writer = WriterFactory.create_writer('gcs', config)
        with writer:
            result = writer.write(data, blob_name='data.json')
            print(f"GCS URI: {result['gcs_uri']}")
        assert result['gcs_uri'] == "gs://my-bucket/data/data.json"
        assert json.loads(client.bucket("my-bucket").blob("data/data.json").download_as_bytes()) == data


def test_error_classes_the_seed_catches(s3, capsys):
    """The seed's error-handling example as written: a missing bucket lands in its ``except ClientConnectionError``
    (the store refused the request), and is still a ConfigurationError for code that catches that."""
    endpoint, _ = s3
    config = {'bucket': 'no-such-bucket', 'endpoint_url': endpoint, 'format': 'json'}
    try:
        writer = WriterFactory.create_writer('s3', config)
        with writer:
            result = writer.write(data)

            if result['success']:
                print(f"✓ Success: {result['records_written']} records")
            else:
                print(f"❌ Failed: {result['error']}")

    except ClientConnectionError as e:
        print(f"Connection failed: {e}")
    except ValidationError as e:
        print(f"Validation failed: {e}")
    except Exception as e:
        print(f"Unexpected error: {e}")
    assert capsys.readouterr().out == f"Connection failed: s3: bucket 'no-such-bucket' does not exist at {endpoint}\n"
    with pytest.raises(ConfigurationError, match="no-such-bucket"):
        WriterFactory.create_writer('s3', config).write(data)
    with pytest.raises(ValidationError):
        WriterFactory.create_writer('s3', {'bucket': 'my-bucket', 'endpoint_url': endpoint}).write([1, 2], key="x.json")
    with pytest.raises(ConfigurationError, match="cannot be appended to"):
        WriterFactory.create_writer('s3', {'bucket': 'my-bucket', 'endpoint_url': endpoint, 'mode': 'append'}
                                    ).write(data, key="x.json")


def test_compression_is_honoured_for_a_named_object(s3):
    """The seed's S3 configuration (compression gzip) with its example's key: the object is gzip-encoded and named
    ``data.json.gz`` (the result says so); a name that contradicts the compression is refused, never ignored."""
    endpoint, client = s3
    config = {
        'bucket': 'my-bucket',
        'prefix': 'data/logs/',
        'region_name': 'us-east-1',
        'aws_access_key_id': 'YOUR_KEY',
        'aws_secret_access_key': 'YOUR_SECRET',
        'format': 'json',  # json, jsonl, csv
        'compression': 'gzip',  # gzip or None
        'endpoint_url': endpoint,
    }
    writer = WriterFactory.create_writer('s3', config)
    with writer:
        result = writer.write(data, key='custom/path/data.json')
        print(f"S3 URI: {result['s3_uri']}")
    assert result['s3_uri'] == "s3://my-bucket/data/logs/custom/path/data.json.gz"
    objects = _objects(client, "my-bucket")
    assert list(objects) == ["data/logs/custom/path/data.json.gz"]
    assert json.loads(gzip.decompress(objects["data/logs/custom/path/data.json.gz"])) == data

    assert writer.write(data, key='x/data.json.gz')['s3_uri'].endswith("/data/logs/x/data.json.gz")  # named as given
    with pytest.raises(ConfigurationError, match=r"key 'x/data.json.zst' says zstd compression but the writer is "
                                                 r"configured with compression 'gzip': name the object x/data.json.gz"):
        writer.write(data, key='x/data.json.zst')
    parquet = writer.write(data, key='x/data.parquet')  # gzip is a Parquet codec too: inside the file
    assert parquet['s3_uri'].endswith("/x/data.parquet")
    import pyarrow.parquet as pq
    footer = pq.ParquetFile(io.BytesIO(_objects(client, "my-bucket")["data/logs/x/data.parquet"])).metadata
    assert footer.row_group(0).column(0).compression == "GZIP"
    plain = WriterFactory.create_writer('s3', {**config, 'compression': None})
    assert plain.write(data, key='custom/path/data.json')['s3_uri'].endswith("/custom/path/data.json")
    with pytest.raises(ConfigurationError, match="compression 'snappy' is a Parquet codec; a json object takes"):
        WriterFactory.create_writer('s3', {**config, 'format': 'parquet', 'compression': 'snappy'}).write(
            data, key='custom/path/data.json')


@pytest.mark.parametrize("writer_type, config", [
    ("mongodb", {"host": "127.0.0.1", "port": 1, "database": "d", "collection": "c", "username": "u",
                 "password": "pw-SECRET-1", "timeout_seconds": 1}),
    ("opensearch", {"hosts": ["127.0.0.1:1"], "username": "u", "password": "pw-SECRET-1", "index": "i",
                    "timeout_seconds": 1}),
    ("solr", {"url": "http://u:pw-SECRET-1@127.0.0.1:1/solr/core", "timeout": 1}),
])
def test_database_writers_keep_passwords_out_of_repr_and_errors(writer_type, config):
    writer = WriterFactory.create_writer(writer_type, {**config, "mode": "append"})
    assert "pw-SECRET-1" not in repr(writer.target)
    with pytest.raises(ClientConnectionError) as error:
        writer.write(data)
    assert "pw-SECRET-1" not in str(error.value) and "127.0.0.1" in str(error.value)
