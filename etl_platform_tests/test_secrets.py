"""No secret ever appears in the event log, run metadata, compute logs, exception texts or a resource's repr().

Every secret field of every store, IO manager and export gets a sentinel value; the pipeline with an
S3 export runs, IO managers write, and the paths that fail on purpose run too (a refused login on
Azurite, a missing bucket, an unreachable endpoint). Then the whole Dagster instance folder (event
log database, compute logs, run storage) and every exception text are searched for the sentinels.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from etl_platform.destinations import AzureBlobStore, DestinationError, S3Store
from etl_platform.destinations.io_managers import AzureBlobDatasetIOManager, S3DatasetIOManager
from etl_platform.video_analytics.assets import build_assets
from etl_platform.video_analytics.checks import build_asset_checks
from etl_platform.video_analytics.exports import build_export_assets
from etl_platform.warehouse.postgres_warehouse import PostgresWarehouse
from etl_platform.writers import WriterFactory
from etl_platform_tests import servers
from etl_platform_tests.test_silver import content, session, user

S3_SECRET = "SENTINEL-s3-secret-7f3a"
S3_TOKEN = "SENTINEL-s3-token-91bc"
WRONG_AZURE_KEY = "U0VOVElORUwtYXp1cmUta2V5LTRkMmU="  # base64 of a sentinel: a well-formed but wrong key
SENTINELS = [S3_SECRET, S3_TOKEN, WRONG_AZURE_KEY, "SENTINEL-azure-key"]


@pytest.fixture(scope="module")
def moto():
    with servers.moto_s3_bucket() as url:
        yield url


@pytest.fixture(scope="module")
def azurite_connection(tmp_path_factory):
    from azure.storage.blob import BlobServiceClient

    with servers.azurite(tmp_path_factory.mktemp("azurite")) as connection_string:
        BlobServiceClient.from_connection_string(connection_string).create_container("lake")
        yield connection_string


def assert_no_sentinel(text: str, where: str) -> None:
    for sentinel in SENTINELS:
        assert sentinel not in text, f"a secret appears in {where}"


def test_no_secret_anywhere(platform, moto, azurite_connection, monkeypatch, tmp_path):
    wrong_azure = azurite_connection.replace(azurite_connection.split("AccountKey=")[1].split(";")[0], WRONG_AZURE_KEY)
    s3_config = {"bucket": "lake", "endpoint_url": moto, "aws_access_key_id": "k", "aws_secret_access_key": S3_SECRET,
                 "aws_session_token": S3_TOKEN, "region": "us-east-1"}
    errors: list[BaseException] = []

    # Every store, writer and IO manager with secrets: their repr must not show them.
    resources = [
        S3Store(**s3_config), AzureBlobStore(container="lake", connection_string=wrong_azure),
        AzureBlobStore(container="lake", account_name="devstoreaccount1", account_key="SENTINEL-azure-key"),
        S3DatasetIOManager(**s3_config), AzureBlobDatasetIOManager(container="lake", connection_string=wrong_azure),
        AzureBlobDatasetIOManager(container="lake", account_name="a", account_key="SENTINEL-azure-key"),
    ]
    for resource in resources:
        assert_no_sentinel(repr(resource) + str(resource), f"repr of {type(resource).__name__}")

    # The pipeline with an S3 export whose secret comes from the environment (${VAR} in the exports file).
    monkeypatch.setenv("SECRET_FOR_EXPORT", S3_SECRET)
    exports = tmp_path / "exports.yaml"
    exports.write_text(
        "exports:\n  - name: fact\n    table: gold.viewing_fact\n    destination: s3\n"
        f"    config: {{bucket: lake, endpoint_url: '{moto}', aws_access_key_id: k, "
        "aws_secret_access_key: '${SECRET_FOR_EXPORT}', region: us-east-1}\n")
    monkeypatch.setenv("ETL_PLATFORM_EXPORTS", str(exports))
    platform.write_csv("users_1.csv", [user("1")])
    platform.write_jsonl("content_1.jsonl", [content(10)])
    platform.write_csv("viewing_sessions_1.csv", [session("1")])
    instance_dir = tmp_path / "dagster_home"
    instance_dir.mkdir()
    with dg.instance_for_test(temp_dir=str(instance_dir)) as instance:
        run = dg.materialize([*build_assets(), *build_asset_checks(), *build_export_assets()],
                             resources=platform.resources(), instance=instance)
        assert run.success

        @dg.asset
        def written() -> pa.Table:
            return pa.table({"id": [1, 2]})

        managers = [(S3DatasetIOManager(**s3_config, format=file_format),
                     S3DatasetIOManager(**{**s3_config, "bucket": "missing"}, format=file_format),
                     AzureBlobDatasetIOManager(container="lake", connection_string=wrong_azure, format=file_format))
                    for file_format in ("parquet", "delta")]  # delta: errors come from delta-rs, not fsspec
        for manager in [m for group in managers for m in group]:
            result = dg.materialize([written], resources={"io_manager": manager}, instance=instance,
                                    raise_on_error=False)
            for event in result.all_events:
                if event.is_step_failure:
                    assert_no_sentinel(str(event.step_failure_data.error), "a step failure")

        for event in instance.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION)):
            assert_no_sentinel(repr(event.asset_materialization.metadata), "materialization metadata")

    # The plain-Python writers' failing paths: a refused login, a missing bucket, an unreachable endpoint.
    for writer_type, config in [("azure_blob", {"container": "lake", "connection_string": wrong_azure}),
                                ("s3", {**s3_config, "bucket": "missing"}),
                                ("s3", {**s3_config, "endpoint_url": f"http://127.0.0.1:{servers.free_port()}",
                                        "retries": 1, "connect_timeout": 1})]:
        with pytest.raises(DestinationError) as raised:
            WriterFactory.create_writer(writer_type, config).write([{"id": 1}], key="x")
        errors.append(raised.value)

    assert "does not exist at" in str(errors[1])
    assert "Could not connect to the endpoint URL" in str(errors[2]) and "does not exist" not in str(errors[2])
    for error in errors:
        assert_no_sentinel("".join(traceback.format_exception(error)), f"the exception {type(error).__name__}")
    # The instance folder: event log and run databases, compute logs, everything on disk.
    for path in Path(instance_dir).rglob("*"):
        if path.is_file():
            assert_no_sentinel(path.read_bytes().decode("utf-8", errors="replace"), str(path))


def _leaks(root: Path, secret_forms: set[str]) -> list[str]:
    """Files below ``root`` holding any of ``secret_forms``."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="replace")
            found += [f"{path}: {form}" for form in secret_forms if form in text]
    return found


def _run_logged(assets, resources, tmp_path) -> tuple[Path, Path, dg.ExecuteInProcessResult]:
    """Materialize ``assets`` (expected to fail) in a fresh instance, then log its runs to an execution log."""
    from etl_platform.execution_log.dagster_runs import sync_runs
    from etl_platform.execution_log.models import WriterConfig
    from etl_platform.execution_log.writer import LogWriter

    home, log = tmp_path / "dagster_home", tmp_path / "execution_log"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False)
        assert not result.success
        assert sync_runs(instance, LogWriter(config=WriterConfig(table_uri=str(log)))) > 0
    return home, log, result


def test_a_postgres_password_with_a_percent_never_leaves(tmp_path, capfd):
    """Issue 20, item 21 (a): libpq's error quoted a password holding `%` ("invalid percent-encoded token:
    "p%w-..."") and it reached the terminal, the run storage, compute logs and the execution log."""
    from etl_platform.secrets import forms

    password = "p%w-SENTINEL-pg-5c1d"
    warehouse = PostgresWarehouse(url=f"postgresql://postgres:{password}@127.0.0.1:5432/test")

    @dg.asset
    def needs_the_warehouse(warehouse: PostgresWarehouse) -> None:
        with warehouse.connect():
            pass

    home, log, result = _run_logged([needs_the_warehouse], {"warehouse": warehouse}, tmp_path)
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    assert "invalid percent-encoded token" in str(failure)
    leaked = forms(password) | forms("SENTINEL-pg-5c1d")
    terminal = capfd.readouterr()
    assert not [f for f in leaked if f in terminal.out + terminal.err + str(failure)]
    assert _leaks(home, leaked) == [] and _leaks(log, leaked) == []


def test_basic_auth_echoed_by_an_api_never_leaves(tmp_path):
    """Issue 20, item 21 (b): an API echoing the `Authorization` header kept the base64 of `user:password` in the
    failure, the event log and the execution log."""
    import base64
    from http.server import BaseHTTPRequestHandler

    from etl_platform.secrets import basic_auth, forms
    from etl_platform.sources import RestApiSource, source_asset
    from etl_platform.warehouse import DuckDBWarehouse

    class Echo(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = f"denied: {self.headers.get('Authorization')}".encode()
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    password = "SENTINEL-basic-0a9f"
    with servers.http_server(Echo) as url:
        resources = {"api_source": RestApiSource(base_url=url, auth="basic", username="ana", password=password,
                                                 max_retries=0),
                     "warehouse": DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))}
        home, log, result = _run_logged([source_asset("api", source_key="api_source")], resources, tmp_path)
    failure = str(next(e for e in result.all_events if e.is_step_failure).step_failure_data.error)
    assert "refused the credentials" in failure and "denied: Basic ***" in failure
    # refused credentials stay refused: the step's retry policy does not try them again
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    leaked = forms(password) | {basic_auth("ana", password), base64.b64encode(b"ana:" + password.encode()).decode()}
    assert not [f for f in leaked if f in failure]
    assert _leaks(home, leaked) == [] and _leaks(log, leaked) == []
