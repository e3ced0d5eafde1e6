"""Gold tables published to destinations by configuration alone."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

import boto3
import dagster as dg
import duckdb
import pytest

from etl_platform.destinations import ConfigurationError
from etl_platform.destinations.dataset import Dataset
from etl_platform.destinations.formats import FileFormat
from etl_platform.destinations.stores import S3Store
from etl_platform.video_analytics import demo_data
from etl_platform.video_analytics.assets import build_assets
from etl_platform.video_analytics.checks import build_asset_checks
from etl_platform.video_analytics.exports import build_export_assets
from etl_platform_tests import servers
from etl_platform_tests.conftest import without_write_ids
from etl_platform_tests.servers import mongo_server

EXPORTS = """
exports:
  - table: gold.viewing_fact
    destination: s3
    config:
      bucket: lake
      prefix: exports
      endpoint_url: ${TEST_S3_URL}
      aws_access_key_id: ${TEST_S3_KEY}
      aws_secret_access_key: ${TEST_S3_SECRET}
      region: us-east-1
    format: parquet
    compression: zstd
    partition_by: [view_date]
  - name: engagement_csv
    table: gold.user_engagement
    destination: csv
    config:
      base_path: ${TEST_EXPORT_DIR}
  - name: daily_delta
    table: gold.daily_viewing
    destination: s3
    config:
      bucket: lake
      prefix: tables
      endpoint_url: ${TEST_S3_URL}
      aws_access_key_id: ${TEST_S3_KEY}
      aws_secret_access_key: ${TEST_S3_SECRET}
      region: us-east-1
    format: delta
    partition_by: [view_date]
"""


def test_gold_tables_exported_by_configuration(platform, tmp_path, monkeypatch):
    demo_data.generate(platform.landing, sessions=2_000, seed=11, progress=False)
    (tmp_path / "exports.yaml").write_text(EXPORTS)
    with servers.moto_s3() as url:
        client = boto3.client("s3", endpoint_url=url, aws_access_key_id="k", aws_secret_access_key="s",
                              region_name="us-east-1")
        client.create_bucket(Bucket="lake")
        for name, value in {"ETL_PLATFORM_EXPORTS": str(tmp_path / "exports.yaml"), "TEST_S3_URL": url,
                            "TEST_S3_KEY": "k", "TEST_S3_SECRET": "very-secret",
                            "TEST_EXPORT_DIR": str(tmp_path / "csv")}.items():
            monkeypatch.setenv(name, value)
        exports = build_export_assets()
        assert [a.key.to_user_string() for a in exports] == ["exports/s3_viewing_fact", "exports/engagement_csv",
                                                             "exports/daily_delta"]
        result = dg.materialize([*build_assets(), *build_asset_checks(), *exports], resources=platform.resources())
        assert result.success
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="lake", Prefix="exports/")["Contents"]]
        assert keys and all(k.startswith("exports/gold/viewing_fact/view_date=") and k.endswith("/part-00000.parquet")
                            for k in without_write_ids(keys))
        days = platform.scalar("SELECT count(DISTINCT view_date) FROM gold.viewing_fact")
        assert len(keys) == days
        metadata = result.asset_materializations_for_node("exports__s3_viewing_fact")[0].metadata
        assert metadata["records_written"].value == platform.scalar("SELECT count(*) FROM gold.viewing_fact")
        assert "very-secret" not in str(metadata)
        # The Delta export: one commit, readable as a table (and by any Delta reader) at the version it reports.
        delta = result.asset_materializations_for_node("exports__daily_delta")[0].metadata
        assert delta["format"].text == "delta" and delta["version"].value == 0
        store = S3Store(bucket="lake", prefix="tables", endpoint_url=url, aws_access_key_id="k",
                        aws_secret_access_key="s", region="us-east-1")
        table = Dataset(store, "gold/daily_viewing", FileFormat("delta"), ("view_date",)).read()
        assert table.num_rows == platform.scalar("SELECT count(*) FROM gold.daily_viewing")
        assert "very-secret" not in str(delta)
    exported = duckdb.sql(f"SELECT count(*) FROM read_csv('{tmp_path}/csv/gold/user_engagement/*.csv')").fetchall()
    assert exported[0][0] == platform.scalar("SELECT count(*) FROM gold.user_engagement")


def test_export_file_errors_name_the_problem(tmp_path, monkeypatch):
    path = tmp_path / "exports.yaml"
    monkeypatch.setenv("ETL_PLATFORM_EXPORTS", str(path))
    with pytest.raises(ConfigurationError, match="export file .* does not exist"):
        build_export_assets()
    path.write_text("exports:\n  - table: gold.viewing_fact\n    destination: ftp\n")
    with pytest.raises(ConfigurationError, match="export 1: destination 'ftp' is not one of azure_blob, cassandra, csv, gcs, local, mongodb"):
        build_export_assets()


def _small_gold_table(platform) -> int:
    with platform.warehouse().connect() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS gold")
        conn.execute("CREATE OR REPLACE TABLE gold.export_probe AS SELECT range AS probe_id, 'row ' || range AS label "
                     "FROM range(40)")
    return 40


def test_a_missing_variable_fails_only_its_own_export_naming_it(platform, tmp_path, monkeypatch):
    """Issue 20, item 11: a ${VAR} not set in the exports file stopped the whole code location from loading.
    Variables resolve when the export runs: that export fails naming the variable, the rest load and run."""
    rows = _small_gold_table(platform)
    path = tmp_path / "exports.yaml"
    path.write_text("exports:\n"
                    "  - table: gold.export_probe\n    destination: s3\n    config:\n"
                    "      bucket: ${NOT_SET_ANYWHERE}\n"
                    "  - name: probe_csv\n    table: gold.export_probe\n    destination: csv\n"
                    "    config: {base_path: '${TEST_EXPORT_DIR}'}\n")
    monkeypatch.setenv("ETL_PLATFORM_EXPORTS", str(path))
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    monkeypatch.delenv("TEST_EXPORT_DIR", raising=False)
    exports = build_export_assets()  # loads, although neither variable is set yet
    assert [a.key.to_user_string() for a in exports] == ["exports/s3_export_probe", "exports/probe_csv"]
    monkeypatch.setenv("TEST_EXPORT_DIR", str(tmp_path / "csv"))  # set before the run: read at run time
    source = dg.AssetSpec(["gold", "export_probe"])
    result = dg.materialize([source, *exports], resources=platform.resources(), raise_on_error=False,
                            selection=[e.key for e in exports])
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "exports__s3_export_probe"
    assert "uses ${NOT_SET_ANYWHERE}, but the environment variable NOT_SET_ANYWHERE is not set" in \
        failure.step_failure_data.error.message
    assert result.asset_materializations_for_node("exports__probe_csv")
    exported = duckdb.sql(f"SELECT count(*) FROM read_csv('{tmp_path}/csv/gold/export_probe/*.csv')").fetchall()[0]
    assert exported == (rows,)


def test_database_exports_are_idempotent_by_default(platform, tmp_path, monkeypatch):
    """Issue 20, item 8: a database export without `mode` appended, and the exports run in the scheduled job:
    every run added another copy of the table. Without id_columns the default is an overwrite (MongoDB: a
    collection renamed over the old), with them an upsert."""
    import pymongo

    rows = _small_gold_table(platform)
    path = tmp_path / "exports.yaml"
    path.write_text("exports:\n  - table: gold.export_probe\n    destination: mongodb\n"
                    "    config: {uri: '${TEST_MONGO_URI}', database: analytics}\n"
                    "  - name: probe_by_key\n    table: gold.export_probe\n    destination: mongodb\n"
                    "    config: {uri: '${TEST_MONGO_URI}', database: analytics, collection: by_key}\n"
                    "    id_columns: [probe_id]\n")
    monkeypatch.setenv("ETL_PLATFORM_EXPORTS", str(path))
    with mongo_server() as uri:
        monkeypatch.setenv("TEST_MONGO_URI", uri)
        exports = build_export_assets()
        assert [e.descriptions_by_key[e.key] for e in exports] == [
            "`gold.export_probe` published to mongodb (overwrite).", "`gold.export_probe` published to mongodb (upsert)."]
        source = dg.AssetSpec(["gold", "export_probe"])
        for _ in range(2):
            assert dg.materialize([source, *exports], resources=platform.resources(),
                                  selection=[e.key for e in exports]).success
        database = pymongo.MongoClient(uri)["analytics"]
        assert database["export_probe"].count_documents({}) == database["by_key"].count_documents({}) == rows


MONGO_EXPORT = """
exports:
  - table: gold.viewing_fact
    destination: mongodb
    config: {uri: "${TEST_MONGO_URI}", database: analytics}
    mode: upsert
    id_columns: [session_id]
    batch_rows: 250
"""


def test_gold_table_exported_to_mongodb_in_batches(platform, tmp_path, monkeypatch):
    """The same export path serves a database: the table streams out of the warehouse 250 rows at a time into
    a collection named after it, and an upsert run twice leaves one document per key."""
    import pymongo

    demo_data.generate(platform.landing, sessions=2_000, seed=12, progress=False)
    (tmp_path / "exports.yaml").write_text(MONGO_EXPORT)
    with mongo_server() as uri:
        monkeypatch.setenv("ETL_PLATFORM_EXPORTS", str(tmp_path / "exports.yaml"))
        monkeypatch.setenv("TEST_MONGO_URI", uri)
        exports = build_export_assets()
        assert [a.key.to_user_string() for a in exports] == ["exports/mongodb_viewing_fact"]
        assets = [*build_assets(), *build_asset_checks(), *exports]
        first = dg.materialize(assets, resources=platform.resources())
        again = dg.materialize(assets, resources=platform.resources(), selection=[exports[0].key])
        assert first.success and again.success
        sessions = platform.scalar("SELECT count(*) FROM gold.viewing_fact")
        collection = pymongo.MongoClient(uri)["analytics"]["viewing_fact"]
        assert collection.count_documents({}) == sessions > 1000
        metadata = again.asset_materializations_for_node("exports__mongodb_viewing_fact")[0].metadata
        assert metadata["records_written"].value == sessions
        assert metadata["batches"].value == -(-sessions // 1000)  # bulk calls of 1,000 documents across batches
        assert metadata["target"].value == f"{uri}/analytics.viewing_fact"
        session = platform.scalar("SELECT min(session_id) FROM gold.viewing_fact")
        assert collection.find_one({"session_id": session})["session_id"] == session


def test_database_export_refuses_file_settings(tmp_path, monkeypatch):
    path = tmp_path / "exports.yaml"
    monkeypatch.setenv("ETL_PLATFORM_EXPORTS", str(path))
    path.write_text("exports:\n  - table: gold.user_engagement\n    destination: mongodb\n"
                    "    config: {database: analytics}\n    format: parquet\n")
    with pytest.raises(ConfigurationError, match=r"export 1: \['format'\] are file settings; a mongodb export takes"):
        build_export_assets()
    path.write_text("exports:\n  - table: gold.user_engagement\n    destination: mongodb\n"
                    "    config: {database: analytics, colection: x}\n")
    with pytest.raises(ConfigurationError, match=r"export mongodb_user_engagement: unknown config key\(s\) "
                                                 r"\['colection'\]"):
        build_export_assets()
    path.write_text("exports:\n  - table: gold.user_engagement\n    destination: s3\n    batch_rows: 0\n")
    with pytest.raises(ConfigurationError, match="export 1: batch_rows 0 must be a positive whole number"):
        build_export_assets()


class _DeniedS3(BaseHTTPRequestHandler):
    """An S3 endpoint that refuses every request as S3 does an unknown key (403 InvalidAccessKeyId): a stand-in at
    the protocol boundary, as moto accepts any key."""

    def _deny(self):
        body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS '
                b'Access Key Id you provided does not exist in our records.</Message></Error>')
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _deny

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("file_format", ["parquet", "delta"])
def test_refused_credentials_fail_an_export_once_not_retried(platform, tmp_path, monkeypatch, file_format):
    """Issue 20: a store refusing the credentials was a DestinationConnectionError, retried three times with
    backoff; refused credentials stay refused: the export fails at once, saying so."""
    _small_gold_table(platform)
    path = tmp_path / "exports.yaml"
    with servers.http_server(_DeniedS3) as url:
        path.write_text("exports:\n  - name: denied\n    table: gold.export_probe\n    destination: s3\n    config:\n"
                        f"      bucket: lake\n      endpoint_url: {url}\n      aws_access_key_id: wrong\n"
                        f"      aws_secret_access_key: wrong-too\n    format: {file_format}\n    mode: overwrite\n")
        monkeypatch.setenv("ETL_PLATFORM_EXPORTS", str(path))
        exports = build_export_assets()
        result = dg.materialize([dg.AssetSpec(["gold", "export_probe"]), *exports], resources=platform.resources(),
                                raise_on_error=False, selection=[e.key for e in exports])
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "refused the credentials" in failure.step_failure_data.error.message, \
        failure.step_failure_data.error.message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


@pytest.mark.parametrize("file_format", ["parquet", "delta"])
def test_a_wrong_azure_key_is_refused_credentials(tmp_path, file_format):
    """Azurite answers a wrong account key with 403 "Server failed to authenticate the request"."""
    import pyarrow as pa

    from etl_platform.destinations.errors import CredentialsRefusedError
    from etl_platform.destinations.stores import AzureBlobStore
    from etl_platform.retries import retryable

    with servers.azurite(tmp_path / "azurite") as connection_string:
        AzureBlobStore(container="lake", connection_string=connection_string).filesystem().mkdir("lake")
        wrong = AzureBlobStore(container="lake", connection_string=connection_string.replace(
            servers.AZURITE_KEY, "d3JvbmcgYWNjb3VudCBrZXk="))
        with pytest.raises(CredentialsRefusedError, match="refused the credentials|403") as refused:
            Dataset(wrong, "probe", FileFormat(file_format)).write(pa.table({"a": [1]}), mode="overwrite")
    assert not retryable(refused.value)
