"""The IO-manager family in Dagster runs: types in and out, metadata, partitions, per-asset overrides."""


import boto3
import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet  # noqa: F401  (pa.parquet)
import pytest

from etl_platform.destinations.io_managers import LocalDatasetIOManager, S3DatasetIOManager
from etl_platform_tests import servers
from etl_platform_tests.conftest import only_file, without_write_ids


@pytest.fixture(scope="module")
def s3_url():
    with servers.moto_s3_bucket() as url:
        yield url


def s3_manager(url: str, **overrides) -> S3DatasetIOManager:
    return S3DatasetIOManager(bucket="lake", prefix="warehouse", endpoint_url=url, aws_access_key_id="k",
                              aws_secret_access_key="s", region="us-east-1", **{"format": "parquet", **overrides})


@dg.asset(metadata={"etl_platform/partition_by": ["day"]})
def events() -> pd.DataFrame:
    return pd.DataFrame({"id": [1, 2, 3], "day": ["2024-01-01", "2024-01-01", "2024-01-02"], "v": [1.0, 2.0, 3.0]})


@dg.asset
def as_arrow(events: pa.Table) -> pa.Table:
    return events.filter(pa.compute.greater(events["v"], 1.0))


@dg.asset
def as_records(as_arrow: list) -> list:
    return [dict(row, doubled=row["v"] * 2) for row in as_arrow]


@dg.asset
def as_pandas(as_records: pd.DataFrame) -> None:
    assert list(as_records.sort_values("id")["doubled"]) == [4.0, 6.0]


def test_types_metadata_and_overrides_on_s3(s3_url):
    result = dg.materialize([events, as_arrow, as_records, as_pandas], resources={"io_manager": s3_manager(s3_url)})
    assert result.success
    metadata = result.asset_materializations_for_node("events")[0].metadata
    assert metadata["records_written"].value == 3 and metadata["files"].value == 2
    assert metadata["dagster/row_count"].value == 3 and metadata["format"].value == "parquet"
    assert metadata["compression"].value == "snappy" and metadata["bytes"].value > 0
    assert metadata["dagster/uri"].value == "s3://lake/warehouse/events"
    assert [c.name for c in metadata["dagster/column_schema"].schema.columns] == ["id", "day", "v"]
    assert without_write_ids(metadata["uris"].value) == [
        "s3://lake/warehouse/events/day=2024-01-01/part-00000.parquet",
        "s3://lake/warehouse/events/day=2024-01-02/part-00000.parquet"]
    keys = boto3.client("s3", endpoint_url=s3_url, aws_access_key_id="k", aws_secret_access_key="s",
                        region_name="us-east-1").list_objects_v2(Bucket="lake", Prefix="warehouse/as_records/")
    assert without_write_ids(o["Key"] for o in keys["Contents"]) == ["warehouse/as_records/part-00000.parquet"]


daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")


@dg.asset(partitions_def=daily)
def daily_counts(context: dg.AssetExecutionContext) -> pa.Table:
    return pa.table({"hour": list(range(3)), "views": [context.partition_key[-1:]] * 3})


def test_partition_overwrite_twice_gives_the_same_data(tmp_path):
    manager = LocalDatasetIOManager(base_path=str(tmp_path), format="jsonl", compression="gzip")
    for _ in range(2):
        assert dg.materialize([daily_counts], partition_key="2024-01-02", resources={"io_manager": manager}).success
    dg.materialize([daily_counts], partition_key="2024-01-03", resources={"io_manager": manager})
    files = without_write_ids(p.relative_to(tmp_path) for p in tmp_path.rglob("*.gz"))
    assert files == ["daily_counts/partition=2024-01-02/part-00000.jsonl.gz",
                     "daily_counts/partition=2024-01-03/part-00000.jsonl.gz"]


def test_upsert_mode_through_the_io_manager(tmp_path):
    batches = iter([[{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], [{"id": 2, "v": "B"}, {"id": 3, "v": "c"}]])

    @dg.asset(metadata={"etl_platform/write_mode": "upsert", "etl_platform/id_columns": ["id"]})
    def customers() -> list:
        return next(batches)

    manager = LocalDatasetIOManager(base_path=str(tmp_path), format="parquet")
    dg.materialize([customers], resources={"io_manager": manager})
    dg.materialize([customers], resources={"io_manager": manager})
    table = pa.parquet.read_table(only_file(tmp_path / "customers"))
    assert sorted(table.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 3, "v": "c"}]


@dg.asset(partitions_def=daily, metadata={"etl_platform/write_mode": "append"})
def daily_log(context: dg.AssetExecutionContext) -> list:
    return [{"event": "run", "day": context.partition_key}]


def test_append_within_a_dagster_partition(tmp_path):
    manager = LocalDatasetIOManager(base_path=str(tmp_path), format="parquet")
    for _ in range(2):
        assert dg.materialize([daily_log], partition_key="2024-01-05", resources={"io_manager": manager}).success
    files = without_write_ids(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet"))
    assert files == ["daily_log/partition=2024-01-05/part-00000.parquet",
                     "daily_log/partition=2024-01-05/part-00000.parquet"]


@dg.asset
def rows_written() -> pa.Table:
    return pa.table({"id": [1, 2, 3]})


@dg.asset
def rows_read(rows_written: pa.Table) -> pa.Table:
    return rows_written


def _through(manager) -> pa.Table:
    result = dg.materialize([rows_written, rows_read], resources={"io_manager": manager})
    assert result.success
    return result.output_for_node("rows_read")


def test_the_io_managers_take_dagsters_own_storage_resources(s3_url, tmp_path, monkeypatch):
    """Issue 22: the connection declared once, as Dagster's own resource (its secret through dg.EnvVar), and the
    IO manager only says where: S3Resource on moto, AzureBlobStorageResource on Azurite (Delta tables, the
    default), GCSResource on the GCS emulator (plain parquet: delta-rs cannot list the emulator)."""
    from azure.storage.blob import BlobServiceClient
    from dagster_aws.s3 import S3Resource
    from dagster_azure.blob import AzureBlobStorageKeyCredential, AzureBlobStorageResource
    from dagster_gcp import GCSResource
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from etl_platform.destinations.io_managers import AzureBlobDatasetIOManager, GCSDatasetIOManager

    monkeypatch.setenv("TEST_S3_SECRET", "s")
    s3 = S3Resource(endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id="k",
                    aws_secret_access_key=dg.EnvVar("TEST_S3_SECRET"))
    assert _through(S3DatasetIOManager(bucket="lake", prefix="from_resource", storage_resource=s3))["id"].to_pylist() \
        == [1, 2, 3]

    with servers.azurite(tmp_path / "azurite") as connection_string:
        parts = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
        BlobServiceClient.from_connection_string(connection_string).create_container("lake")
        azure = AzureBlobStorageResource(account_url=parts["BlobEndpoint"],
                                         credential=AzureBlobStorageKeyCredential(key=parts["AccountKey"]))
        manager = AzureBlobDatasetIOManager(container="lake", storage_resource=azure)
        assert _through(manager)["id"].to_pylist() == [1, 2, 3]

    with servers.gcs_emulator() as url:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        storage.Client(project="test", credentials=AnonymousCredentials()).create_bucket("lake")
        manager = GCSDatasetIOManager(bucket="lake", format="parquet", storage_resource=GCSResource(project="test"))
        assert _through(manager)["id"].to_pylist() == [1, 2, 3]


def test_an_adls2_resource_gives_the_account_and_its_key_or_token():
    from dagster_azure.adls2 import ADLS2Key, ADLS2Resource, ADLS2SASToken

    from etl_platform.destinations.stores import options_from_dagster_resource

    keyed = options_from_dagster_resource(ADLS2Resource(storage_account="acct", credential=ADLS2Key(key="a2V5")))
    assert keyed == {"connection_string": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;"
                                          "EndpointSuffix=core.windows.net;"}
    signed = options_from_dagster_resource(ADLS2Resource(storage_account="acct",
                                                         credential=ADLS2SASToken(token="?sv=1&sig=x")))
    assert "SharedAccessSignature=sv=1&sig=x;" in signed["connection_string"]
