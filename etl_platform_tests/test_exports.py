"""Gold tables published to destinations by configuration alone."""

from __future__ import annotations

import boto3
import dagster as dg
import duckdb
import pytest

from etl_platform.destinations import ConfigurationError
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
        assert [a.key.to_user_string() for a in exports] == ["exports/s3_viewing_fact", "exports/engagement_csv"]
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
    path.write_text("exports:\n  - table: gold.viewing_fact\n    destination: s3\n    config:\n"
                    "      bucket: ${NOT_SET_ANYWHERE}\n")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigurationError, match="environment variable NOT_SET_ANYWHERE is not set"):
        build_export_assets()


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
