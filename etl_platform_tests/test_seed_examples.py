"""Every seed's API as its users wrote it (issue 24): seed 004's named parts and backends sharing one dataset,
seed 001's PipelineLogger and partial batch failure, seed 003's SourceConfig / TargetConfig, quarantined plugin
records and ``--mode``, seed 002's retries and ``POSTGRES_*`` variables. Real servers: moto, PostgreSQL, Spark.
(Seed 000's writers: test_seed_writers.py; its readers: test_readers.py.)"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path

import boto3
import dagster as dg
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_platform.cli import main
from etl_platform.errors import ClientConnectionError, ConfigurationError
from etl_platform_tests.proxy import CuttableProxy
from etl_platform_tests.servers import moto_s3_bucket

PG = "host=127.0.0.1 port=5432 dbname=test user=postgres"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_PLATFORM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return tmp_path / "home"


@pytest.fixture
def bucket():
    with moto_s3_bucket("your-bucket-name") as endpoint:
        yield endpoint


def s3_rows(endpoint: str, prefix: str) -> list[dict]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k",
                          aws_secret_access_key="s")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="your-bucket-name", Prefix=prefix).get("Contents", [])]
    tables = [pq.read_table(pa.BufferReader(client.get_object(Bucket="your-bucket-name", Key=k)["Body"].read()))
              for k in keys if k.endswith(".parquet")]
    return sorted(pa.concat_tables(tables).to_pylist(), key=lambda r: r["user_id"])


# ---------------------------------------------------------------- seed 004


def test_seed_004_data_reader_writer_and_upsert_as_written(bucket, home):
    """The seed's usage: DataReaderWriter(backend=..., bucket_name=..., endpoint_url=..., access_key=...,
    secret_key=...), then Upsert().upsert(new_data, target_path, upsert_method, id_columns, modification_column);
    every result read back from the bucket."""
    from etl_platform.reader_writer import DataReaderWriter, Upsert

    # Choose the desired backend ('pandas' or 'pyspark')
    reader_writer = DataReaderWriter(
        backend='pandas',
        bucket_name='your-bucket-name',
        endpoint_url=bucket,
        access_key='your-access-key',
        secret_key='your-secret-key'
    )
    users = pd.DataFrame({"user_id": [1, 2], "name": ["a", "b"],
                          "updated_at": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1)]})
    assert reader_writer.write(users, "datasets/users")["records_written"] == 2
    assert reader_writer.read("datasets/users").sort_values("user_id")["name"].tolist() == ["a", "b"]

    new_data = pd.DataFrame({"user_id": [2, 3], "name": ["B", "c"],
                             "updated_at": [dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 2)]})
    upsert = Upsert(backend="pandas", bucket_name="your-bucket-name", endpoint_url=bucket,
                    access_key="your-access-key", secret_key="your-secret-key")
    result = upsert.upsert(new_data, "datasets/users", "by_id_and_modification", ["user_id"], "updated_at")
    assert result["records_written"] == 3 and "your-secret-key" not in repr(upsert) + repr(reader_writer)
    stale = pd.DataFrame({"user_id": [3], "name": ["older"], "updated_at": [dt.datetime(2023, 1, 1)]})
    upsert.upsert(stale, "datasets/users", "by_id_and_modification", ["user_id"], modification_column="updated_at")
    assert [(r["user_id"], r["name"]) for r in s3_rows(bucket, "datasets/users/")] == [(1, "a"), (2, "B"), (3, "c")]

    local = home / "local_users"  # Upsert() with no bucket: the target is a URI or a local folder
    Upsert().upsert(users, str(local), "by_id", ["user_id"])
    Upsert().upsert(new_data, f"file://{local}", "by_id", ["user_id"])
    rows = pq.read_table(next(local.rglob("*.parquet"))).to_pylist()
    assert sorted((r["user_id"], r["name"]) for r in rows) == [(1, "a"), (2, "B"), (3, "c")]


def test_seed_004_interfaces_factories_and_backends(bucket, spark_session):
    from pyspark.sql import DataFrame as SparkDataFrame

    from etl_platform.reader_writer import (
        DataReader,
        DataReaderWriterFactory,
        DataWriter,
        PandasDataReader,
        PandasDataWriter,
        PandasUpserter,
        PySparkDataReader,
        PySparkDataWriter,
        PySparkUpserter,
        S3Client,
        Upserter,
        UpsertFactory,
    )

    for interface in (DataReader, DataWriter, Upserter):
        with pytest.raises(TypeError, match="abstract"):
            interface()
    client = S3Client(bucket_name="your-bucket-name", endpoint_url=bucket, access_key="k", secret_key="s3cr3t")
    assert "s3cr3t" not in repr(client)
    made = {backend: (DataReaderWriterFactory.create_reader(backend, client, spark_session),
                      DataReaderWriterFactory.create_writer(backend, client, spark_session),
                      UpsertFactory.create_upserter(backend, "by_id_and_modification", client, spark_session))
            for backend in ("pandas", "pyspark")}
    assert [type(part) for part in made["pandas"]] == [PandasDataReader, PandasDataWriter, PandasUpserter]
    assert [type(part) for part in made["pyspark"]] == [PySparkDataReader, PySparkDataWriter, PySparkUpserter]
    assert all(isinstance(r, DataReader) and isinstance(w, DataWriter) and isinstance(u, Upserter)
               for r, w, u in made.values())
    with pytest.raises(ConfigurationError, match="backend 'polars' is not one of pandas, pyspark"):
        DataReaderWriterFactory.create_reader("polars", client)
    with pytest.raises(ConfigurationError, match="upsert_method 'latest' is not one of by_id, by_id_and_modification"):
        UpsertFactory.create_upserter("pandas", "latest", client)

    first = pd.DataFrame({"user_id": [1, 2, 3], "score": [1.0, 2.0, None],
                          "updated_at": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-01"])})
    changes = pd.DataFrame({"user_id": [3, 2, 4], "score": [3.5, 0.5, 4.0],
                            "updated_at": pd.to_datetime(["2024-01-02", "2023-12-31", "2024-01-02"])})
    results = {}
    for backend, (reader, writer, upserter) in made.items():
        data = spark_session.createDataFrame(first) if backend == "pyspark" else first
        assert writer.write(data, f"{backend}/scores")["records_written"] == 3
        new = spark_session.createDataFrame(changes) if backend == "pyspark" else changes
        upserter.upsert(new, f"{backend}/scores", ["user_id"], modification_column="updated_at")
        frame = reader.read(f"{backend}/scores")
        assert isinstance(frame, SparkDataFrame if backend == "pyspark" else pd.DataFrame)
        frame = frame.toPandas() if backend == "pyspark" else frame
        results[backend] = frame.sort_values("user_id").reset_index(drop=True)
    expected = [(1, 1.0), (2, 2.0), (3, 3.5), (4, 4.0)]  # 2's change is older: kept
    assert list(zip(results["pandas"]["user_id"], results["pandas"]["score"])) == expected
    assert list(zip(results["pyspark"]["user_id"], results["pyspark"]["score"])) == expected
    with pytest.raises(ConfigurationError, match=r"PandasDataReader.read\(\) got unknown argument\(s\) \['fmt'\]"):
        made["pandas"][0].read("pandas/scores", fmt="csv")  # a setting is never ignored


def test_seed_004_s3_client_moves_objects(bucket, tmp_path):
    from etl_platform.destinations import ContainerNotFoundError
    from etl_platform.reader_writer import S3Client

    client = S3Client(bucket_name="your-bucket-name", endpoint_url=bucket, access_key="k", secret_key="s")
    source = tmp_path / "report.csv"
    source.write_text("a,b\n1,2\n")
    assert client.upload_file(source, "raw/2024/report.csv") == "s3://your-bucket-name/raw/2024/report.csv"
    assert client.exists("raw/2024/report.csv") and client.list_objects("raw") == ["raw/2024/report.csv"]
    assert client.download_file("raw/2024/report.csv", tmp_path / "back" / "r.csv").read_text() == "a,b\n1,2\n"
    with pytest.raises(ConfigurationError, match="delete_object: s3://your-bucket-name/raw is not an object"):
        client.delete_object("raw")  # a folder is refused: a typo cannot empty a dataset
    client.delete_object("raw/2024/report.csv")
    assert not client.exists("raw/2024/report.csv") and client.list_objects("raw") == []
    with pytest.raises(ConfigurationError, match="no object s3://your-bucket-name/raw/gone.csv"):
        client.download_file("raw/gone.csv", tmp_path / "gone.csv")
    with pytest.raises(ConfigurationError, match=r"key '../x' must name an object inside the bucket"):
        client.upload_file(source, "../x")
    with pytest.raises(ContainerNotFoundError, match="bucket 'not-there' does not exist"):
        S3Client(bucket_name="not-there", endpoint_url=bucket, access_key="k", secret_key="s").upload_file(source, "x")


@pytest.mark.parametrize("first_backend", ["pandas", "pyspark"])
def test_seed_004_pandas_and_spark_share_one_dataset(bucket, spark_session, first_backend):
    """Written from one backend, upserted and appended from the other: pandas' naive datetime64[ns] and Spark's
    zone-aware microseconds are one column (was: 'updated_at (timestamp[ns] -> timestamp[us, tz=UTC])')."""
    from etl_platform.reader_writer import DataReaderWriter, Upsert

    other = "pyspark" if first_backend == "pandas" else "pandas"

    def frame(backend, rows):
        data = pd.DataFrame(rows, columns=["user_id", "name", "updated_at"])
        return spark_session.createDataFrame(data) if backend == "pyspark" else data

    settings = dict(bucket_name="your-bucket-name", endpoint_url=bucket, access_key="k", secret_key="s")
    DataReaderWriter(backend=first_backend, spark=spark_session, **settings).write(
        frame(first_backend, [(1, "a", dt.datetime(2024, 1, 1, 12)), (2, "b", dt.datetime(2024, 1, 1, 13))]),
        "shared/users")
    Upsert(backend=other, spark=spark_session, **settings).upsert(
        frame(other, [(2, "B", dt.datetime(2024, 1, 2)), (3, "c", dt.datetime(2024, 1, 2))]), "shared/users",
        "by_id_and_modification", ["user_id"], modification_column="updated_at")
    DataReaderWriter(backend=other, spark=spark_session, **settings).write(
        frame(other, [(4, "d", dt.datetime(2024, 1, 3, 0, 0, 0, 5))]), "shared/users", mode="append")
    rows = s3_rows(bucket, "shared/users/")
    assert [(r["user_id"], r["name"], r["updated_at"].replace(tzinfo=None)) for r in rows] == [
        (1, "a", dt.datetime(2024, 1, 1, 12)), (2, "B", dt.datetime(2024, 1, 2)), (3, "c", dt.datetime(2024, 1, 2)),
        (4, "d", dt.datetime(2024, 1, 3, 0, 0, 0, 5))]
    kinds = {str(pq.read_schema(pa.BufferReader(b)).field("updated_at").type) for b in _objects(bucket, "shared/")}
    assert len(kinds) == 1  # every file keeps the dataset's first form


def _objects(endpoint: str, prefix: str) -> list[bytes]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k",
                          aws_secret_access_key="s")
    return [client.get_object(Bucket="your-bucket-name", Key=o["Key"])["Body"].read()
            for o in client.list_objects_v2(Bucket="your-bucket-name", Prefix=prefix).get("Contents", [])]


def test_seed_004_a_timestamp_that_would_lose_digits_is_still_refused(tmp_path):
    from etl_platform.destinations import ValidationError
    from etl_platform.reader_writer import Upsert

    micro = pa.table({"user_id": [1], "at": pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("us", tz="UTC"))})
    Upsert().upsert(micro, str(tmp_path / "t"), "by_id", ["user_id"])
    nanos = pa.table({"user_id": [2], "at": pa.array([1_704_067_200_000_000_001], pa.timestamp("ns"))})
    with pytest.raises(ValidationError, match=r"at \(timestamp\[us, tz=UTC\] -> timestamp\[ns\]\)"):
        Upsert().upsert(nanos, str(tmp_path / "t"), "by_id", ["user_id"])


# ---------------------------------------------------------------- seed 001


def execution(number: int, duration: float, steps: int = 1):
    from etl_platform.execution_log.models import ExecutionContext, ExecutionMode, ExecutionResult, StepResult

    context = ExecutionContext(mode=ExecutionMode.INITIAL, start_time=dt.datetime.now(),
                               execution_id=f"exec-{number}", pipeline_id="my-pipeline", schema="analytics")
    step_results = [StepResult(step_name=f"step_{s}", phase="bronze", start_time=dt.datetime.now(),
                               end_time=dt.datetime.now(), duration_secs=duration, rows_processed=1000,
                               rows_written=950, validation_rate=95.0, success=True, execution_context=context)
                    for s in range(steps)]
    return ExecutionResult(success=True, context=context, step_results=step_results, total_duration_secs=duration)


def test_seed_001_pipeline_logger_shows_the_writers_debug_output(home, capsys, spark_session):
    from etl_platform.execution_log import LogWriter, PipelineLogger, WriterConfig, WriterConfigurationError, WriteMode

    config = WriterConfig(table_schema="analytics", table_name="pipeline_logs", write_mode=WriteMode.APPEND)
    log_rows = [{"run_id": "my-first-run", "phase": "bronze", "step_name": "extract_data", "duration_secs": 15.0,
                 "rows_processed": 1000, "validation_rate": 95.0}]
    spark = spark_session

    # Create logger with debug level
    logger = PipelineLogger("WriterDebug", level="DEBUG")
    writer = LogWriter(spark, config, logger)

    # Debug information will be logged
    result = writer.write_log_rows(log_rows)
    err = capsys.readouterr().err
    assert result["rows_written"] == 1
    assert "WriterDebug DEBUG LogWriter: table analytics.pipeline_logs at " in err
    assert "WriterDebug DEBUG write_log_rows: 1 row(s) -> " in err and " version 0 in " in err

    quiet = LogWriter(spark, config, PipelineLogger("WriterDebug", level="INFO"))
    quiet.write_log_rows(log_rows)
    with pytest.raises(Exception):
        quiet.write_log_rows([{"run_id": "", "phase": "bronze", "duration_secs": -1.0}])
    err = capsys.readouterr().err
    assert "DEBUG" not in err and err.count("WriterDebug WARNING write_log_rows: 1 row(s) refused: ") == 1
    with pytest.raises(WriterConfigurationError, match="PipelineLogger level: 'LOUD' is not one of DEBUG, INFO"):
        PipelineLogger("WriterDebug", level="LOUD")


def test_seed_001_a_batch_stores_the_valid_runs_and_reports_each_invalid_one(home):
    from etl_platform.execution_log import FailedExecution, LogWriter, WriterConfig, WriteMode

    writer = LogWriter(None, WriterConfig(table_schema="analytics", table_name="pipeline_logs",
                                          write_mode=WriteMode.APPEND))
    exec1, exec2, exec4, exec5 = (execution(n, 10.0) for n in (1, 2, 4, 5))
    exec3 = execution(3, -1.0)  # a negative duration
    execution_results = [exec1, exec2, exec3, exec4, exec5]

    result = writer.write_execution_result_batch(
        execution_results=execution_results,
        run_id="batch-run",
        batch_size=1000  # Process 1000 records per batch
    )
    assert (result['total_executions'], result['successful_writes'], result['failed_writes'],
            result['rows_written']) == (5, 4, 1, 4)
    (failed,) = result['failed_executions']
    assert isinstance(failed, FailedExecution) and failed.index == 2 and failed.context is exec3.context
    assert "duration_secs -1.0 must be a number >= 0" in failed.reason
    assert writer.get_table_info()["row_count"] == 4

    # You can retry failed operations
    if result['failed_executions']:
        for failure in result['failed_executions']:
            failure.step_results[0].duration_secs = 12.0  # corrected
        retry_result = writer.write_execution_result_batch(
            execution_results=result['failed_executions'],
            run_id="retry-run"
        )
    assert retry_result["successful_writes"] == 1 and retry_result["failed_executions"] == []
    rows = writer.read_logs().to_pylist()
    assert sorted(r["run_id"] for r in rows) == ["batch-run-0", "batch-run-1", "batch-run-3", "batch-run-4",
                                                  "retry-run-0"]  # each run once


def test_seed_001_a_run_is_never_split_between_commits(home):
    from etl_platform.execution_log import LogWriter, WriterConfig

    writer = LogWriter(None, WriterConfig(table_name="split_logs", batch_size=3))
    runs = [execution(n, 1.0, steps=2) for n in range(3)] + ["not a run"]
    result = writer.write_execution_result_batch(runs)
    assert (result["successful_writes"], result["rows_written"]) == (3, 6)
    assert result["failed_executions"][0].reason == "execution 3 is a str, not an ExecutionResult"
    versions = writer.get_table_history(limit=10)["versions"]
    assert sorted(v["row_count"] for v in versions) == [2, 2, 2]  # 3 rows per commit would split a run: 2 + 2 + 2


# ---------------------------------------------------------------- seed 003


class MySourceClient:
    """Placeholder of the seed's client: 250 records, served by offset."""

    def __init__(self, endpoint, api_key):
        self.endpoint, self.api_key = endpoint, api_key

    def fetch(self, object_name, limit, offset):
        class Record:
            def __init__(self, number):
                self.id, self.name = number, f"{object_name}-{number}"
        return [Record(n) for n in range(offset, min(offset + limit, 250))]

    def count(self):
        return 250


def test_seed_003_source_config_unit_test_as_written():
    from typing import Any, Dict, Iterator, List, Optional

    from etl_platform.plugins import BaseReader, IncrementalStateManager, SourceConfig, TargetConfig

    class MyCustomReader(BaseReader):
        """Custom reader for reading from MySource."""

        def __init__(self, source_config):
            super().__init__(source_config)
            self.connection_info = source_config.connection
            self.credentials = source_config.credentials
            self.client = self._setup_client()

        def _setup_client(self):
            api_key = self.credentials.get("api_key")
            endpoint = self.connection_info.get("endpoint")
            return MySourceClient(endpoint=endpoint, api_key=api_key)

        def extract(self, state_manager: Optional[IncrementalStateManager] = None) -> Iterator[List[Dict[str, Any]]]:
            batch_size = self.source_config.engine.get("options", {}).get("batch_size", 1000)
            objects = self.source_config.objects or []
            for obj_name in objects:
                offset = 0
                while True:
                    records = self.client.fetch(object_name=obj_name, limit=batch_size, offset=offset)
                    if not records:
                        break
                    batch = [self._transform_record(r) for r in records]
                    yield batch
                    offset += len(records)

        def _transform_record(self, record) -> Dict[str, Any]:
            return {"id": record.id, "name": record.name}

    source_config = SourceConfig(
        type="custom",
        connection={"endpoint": "https://test.example.com"},
        credentials={"api_key": "test-key"},
        objects=["users"],
        engine={"options": {"batch_size": 100}},
    )

    reader = MyCustomReader(source_config)

    batches = list(reader.extract())
    assert len(batches) > 0
    assert all(isinstance(batch, list) for batch in batches)
    assert [len(b) for b in batches] == [100, 100, 50] and batches[2][-1] == {"id": 249, "name": "users-249"}
    assert source_config.type == "custom" and "test-key" not in repr(source_config)

    target = TargetConfig(type="custom", connection={"endpoint": "https://api.example.com"}, format="parquet")
    assert target.connection.get("endpoint") == "https://api.example.com" and target.mode is None
    with pytest.raises(ConfigurationError, match=r"SourceConfig: unknown key\(s\) \['tabels'\]; allowed: type, "):
        SourceConfig(type="custom", tabels=["users"])
    with pytest.raises(ConfigurationError, match="SourceConfig: connection must be a mapping, not str"):
        SourceConfig(type="custom", connection="https://test.example.com")
    with pytest.raises(ConfigurationError, match="TargetConfig: id_columns must be a list, not str"):
        TargetConfig(id_columns="id")


PLUGIN = '''
from etl_platform.plugins import BaseReader, BaseWriter

class Batches(BaseReader):
    def extract(self, state_manager=None):
        yield [{"id": 1, "name": "a"}, {"id": "x2", "name": "b"}, {"id": 3, "name": "c"}]
        yield [{"id": 4, "name": "d"}]

class Collect(BaseWriter):
    def write_batch(self, records, file_counter):
        import json, pathlib
        folder = pathlib.Path(self.output_base)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"batch_{file_counter}.json").write_text(json.dumps(records))
        assert type(self.target_config).__name__ == "TargetConfig", type(self.target_config)
        return [{"path": str(folder), "record_count": len(records)}]
'''


def plugin_job(folder: Path, target: str) -> Path:
    """A job reading the plugin ``Batches`` into ``target`` (the YAML lines of the target)."""
    (folder / "plugins.py").write_text(PLUGIN)
    job = folder / "job.yaml"
    job.write_text(f"""
tenant_id: acme
asset:
  name: typed_items
  schema:
    - {{name: id, type: integer, required: true}}
    - {{name: name, type: string}}
source:
  custom_reader: plugins.py:Batches
{target}
""")
    return job


def test_seed_003_a_wrongly_typed_record_in_a_plugin_batch_is_quarantined(home, tmp_path):
    """A plugin's batch holding {"id": "x2"} where id is an integer: that record is quarantined naming the field
    and the value, the others land, the run goes on (was: ArrowInvalid and nothing written)."""
    from etl_platform.jobs import load_job, run_job

    job = plugin_job(tmp_path, f"target:\n  custom_writer: plugins.py:Collect\n"
                               f"  connection: {{output_base: {tmp_path / 'out'}}}")
    (result,) = run_job(load_job(job), log=lambda line: None)
    assert (result.records_read, result.records_written, result.records_quarantined) == (4, 3, 1)
    written = [r for f in sorted((tmp_path / "out").glob("batch_*.json")) for r in json.loads(f.read_text())]
    assert written == [{"id": 1, "name": "a"}, {"id": 3, "name": "c"}, {"id": 4, "name": "d"}]
    (entry,) = [json.loads(line) for line in Path(result.quarantine_file).read_text().splitlines()]
    assert entry["record"] == 1 and entry["value"] == {"id": "x2", "name": "b"}
    assert entry["reasons"] == ["id: value 'x2' is not an integer"]


def test_seed_003_run_modes(home, tmp_path, monkeypatch, bucket):
    """``--mode self_hosted`` (default) runs as before; ``--mode cloud`` refuses a target on the worker's disk and a
    state folder left on it, naming what to change, and runs an object-store target."""
    job = plugin_job(tmp_path, f"target_connector: local\ntarget:\n  connection: {{base_path: {tmp_path / 'lake'}}}")

    def run(*args):
        outcome = CliRunner().invoke(main, ["run", "--config", str(job), *args])
        return outcome.exit_code, outcome.output

    code, output = run("--mode", "self_hosted")
    assert code == 0 and f"all: 4 read, 3 written to file://{tmp_path / 'lake'}/typed_items, 1 quarantined" in output
    code, output = run("--mode", "cloud")
    assert code == 1 and "--mode cloud: target_connector 'local' writes to this worker's disk" in output
    code, output = run("--mode", "on_prem")
    assert code == 2 and "'on_prem' is not one of 'self_hosted', 'cloud'" in output

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    job.write_text(job.read_text().replace(
        f"target_connector: local\ntarget:\n  connection: {{base_path: {tmp_path / 'lake'}}}",
        f"target_connector: s3\ntarget:\n  connection: {{bucket: your-bucket-name, endpoint_url: '{bucket}'}}"))
    monkeypatch.delenv("ETL_PLATFORM_HOME")
    monkeypatch.chdir(tmp_path)
    code, output = run("--mode", "cloud")
    assert code == 1 and "--mode cloud: set ETL_PLATFORM_HOME to a volume that outlives the worker" in output
    monkeypatch.setenv("ETL_PLATFORM_HOME", str(home))
    code, output = run("--mode", "cloud")
    assert code == 0 and "3 written to s3://your-bucket-name/typed_items" in output
    custom = plugin_job(tmp_path, "target:\n  custom_writer: plugins.py:Collect")
    outcome = CliRunner().invoke(main, ["run", "--config", str(custom), "--mode", "cloud"])
    assert outcome.exit_code == 1 and f"target.custom_writer writes below {home}/output/acme/typed_items" \
        in outcome.output


# ---------------------------------------------------------------- seed 002


@pytest.fixture
def retry_orders():
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS etl_test_retries")
        conn.execute("DROP TABLE IF EXISTS etl_test_retries.orders")
        conn.execute("CREATE TABLE etl_test_retries.orders (id int PRIMARY KEY, amount numeric(10,2), "
                     "updated_at timestamptz)")
        conn.execute("INSERT INTO etl_test_retries.orders SELECT g, g * 1.5, now() FROM generate_series(1, 50) g")
        yield conn
        conn.execute("DROP SCHEMA etl_test_retries CASCADE")


def step_events(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> int:
    return sum(1 for event in result.all_events if event.event_type == kind)


def test_seed_002_a_source_that_does_not_answer_is_retried_and_lands_once(platform, monkeypatch, retry_orders):
    """Airflow's default_args retries as a Dagster RetryPolicy: the PostgreSQL source is down for the first attempt
    (a proxy refusing connections), the step is retried with backoff and lands the 50 rows once; a missing table
    fails at once, without retries."""
    from etl_platform.sources import PostgresSource
    from etl_platform.sources.assets import source_asset

    monkeypatch.setenv("ETL_PLATFORM_STEP_RETRY_DELAY", "0.5")
    asset = source_asset("retry_orders", source_key="retry_db")
    assert asset.op.retry_policy == dg.RetryPolicy(max_retries=3, delay=0.5, backoff=dg.Backoff.EXPONENTIAL,
                                                   jitter=dg.Jitter.PLUS_MINUS)
    proxy = CuttableProxy(5432)
    proxy.up = False

    def come_back_after_the_first_refusal():
        while not proxy.refused:
            time.sleep(0.01)
        proxy.restore()

    threading.Thread(target=come_back_after_the_first_refusal, daemon=True).start()
    source = PostgresSource(host="127.0.0.1", port=proxy.port, database="test", username="postgres",
                            table="etl_test_retries.orders", cursor_column="updated_at", timeout_seconds=2)
    started = time.monotonic()
    result = dg.materialize([asset], resources={**platform.resources(), "retry_db": source})
    assert result.success and time.monotonic() - started < 30
    assert step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == 1 and proxy.refused >= 1
    assert platform.scalar("SELECT count(*) FROM bronze.retry_orders") == 50
    assert platform.scalar("SELECT count(DISTINCT id) FROM bronze.retry_orders") == 50

    missing = PostgresSource(host="127.0.0.1", port=5432, database="test", username="postgres",
                             table="etl_test_retries.no_such_table", cursor_column="updated_at")
    failed = dg.materialize([asset], resources={**platform.resources(), "retry_db": missing}, raise_on_error=False)
    assert not failed.success and step_events(failed, dg.DagsterEventType.STEP_UP_FOR_RETRY) == 0


def test_seed_002_retries_are_only_where_writing_again_is_safe(tmp_path, monkeypatch):
    from etl_platform.retries import network_retry_policy, retryable, write_retry_policy
    from etl_platform.destinations import ContainerNotFoundError
    from etl_platform.video_analytics.assets import build_assets
    from etl_platform.video_analytics.exports import ExportSpec, build_export_asset

    assert write_retry_policy("append") is None and write_retry_policy("upsert") == network_retry_policy()
    assert all(asset.op.retry_policy is None for asset in build_assets())  # SQL steps fail again on the same data
    for mode, retried in (("overwrite", True), ("append", False)):
        spec = ExportSpec(name=f"local_{mode}", table="gold.user_engagement", destination="local",
                          config={"base_path": str(tmp_path)}, options={"mode": mode})
        assert (build_export_asset(spec).op.retry_policy is not None) is retried
    assert retryable(ClientConnectionError("host did not answer"))
    assert not retryable(ContainerNotFoundError("bucket 'x' does not exist"))
    assert not retryable(ConfigurationError("bad setting"))
    monkeypatch.setenv("ETL_PLATFORM_STEP_RETRIES", "0")
    assert network_retry_policy() is None
    monkeypatch.setenv("ETL_PLATFORM_STEP_RETRIES", "three")
    with pytest.raises(ConfigurationError, match=r"\$ETL_PLATFORM_STEP_RETRIES is 'three': expected a whole number"):
        network_retry_policy()


def test_seed_002_postgres_variables_address_the_postgres_warehouse(monkeypatch):
    """Seed 002's .env names (POSTGRES_HOST, ..._PORT, ..._DB, ..._USER, ..._PASSWORD) reach the PostgreSQL engine
    when ETL_PLATFORM_POSTGRES_URL is not set; resolved at run time; the password never in an error."""
    from etl_platform.warehouse.base import EngineSettingError
    from etl_platform.warehouse.engines import warehouse_for

    monkeypatch.delenv("ETL_PLATFORM_POSTGRES_URL", raising=False)
    for name, value in {"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "5432", "POSTGRES_DB": "test",
                        "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "pa%40ss:w/rd"}.items():
        monkeypatch.setenv(name, value)
    with dg.build_resources({"warehouse": warehouse_for("postgres")}) as resources:  # EnvVars resolve here
        with resources.warehouse.connect() as session:
            assert session.execute("SELECT current_database()").fetchone() == ("test",)
    monkeypatch.setenv("POSTGRES_PORT", "1")
    with pytest.raises(EngineSettingError) as error:
        with dg.build_resources({"warehouse": warehouse_for("postgres")}) as resources:
            with resources.warehouse.connect():
                pass
    assert "host=127.0.0.1 port=1 dbname=test user=postgres" in str(error.value)
    assert "pa%40ss" not in str(error.value) and "pa@ss" not in str(error.value)
    monkeypatch.setenv("ETL_PLATFORM_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    assert warehouse_for("postgres").url is not None  # the platform's own variable wins


# ---------------------------------------------------------------- properties


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs=st.lists(st.tuples(st.booleans(), st.integers(min_value=1, max_value=3)), min_size=1, max_size=8),
       batch_size=st.integers(min_value=1, max_value=7))
def test_a_batch_retried_after_correction_stores_every_run_once(home, runs, batch_size):
    """Random batches of valid and invalid runs (1-3 steps each) with random batch sizes: the first write stores
    exactly the valid runs, whole; the failures come back with reasons; corrected and written again, every run is
    in the log exactly once with all its steps, and no commit holds part of a run."""
    from uuid import uuid4

    from etl_platform.execution_log import LogWriter, WriterConfig

    writer = LogWriter(None, WriterConfig(table_name=f"prop_{uuid4().hex[:8]}", batch_size=batch_size))
    batch = [execution(number, 1.0 if valid else -1.0, steps) for number, (valid, steps) in enumerate(runs)]
    first = writer.write_execution_result_batch(batch, run_id="first")
    assert sorted(f.index for f in first["failed_executions"]) == [n for n, (valid, _) in enumerate(runs)
                                                                     if not valid]
    assert all("duration_secs -1.0" in f.reason for f in first["failed_executions"])
    assert first["rows_written"] == sum(steps for valid, steps in runs if valid)
    for failed in first["failed_executions"]:
        for step in failed.step_results:
            step.duration_secs = 2.0
    second = writer.write_execution_result_batch(first["failed_executions"], run_id="again")
    assert second["failed_executions"] == []
    if not writer.table.exists():
        assert not runs
        return
    rows = writer.read_logs().to_pylist()
    by_pipeline_run = {}
    for row in rows:
        by_pipeline_run.setdefault(row["run_id"], []).append(row["step_name"])
    assert len(rows) == sum(steps for _, steps in runs)
    assert sorted(len(steps) for steps in by_pipeline_run.values()) == sorted(steps for _, steps in runs)
    assert all(len(set(steps)) == len(steps) for steps in by_pipeline_run.values())  # no step twice
    from deltalake import DeltaTable

    versions_of_run, seen = {}, set()
    for version in range(DeltaTable(writer.location).version() + 1):
        files = set(DeltaTable(writer.location, version=version).file_uris())
        for run_id in pa.concat_tables([pq.read_table(f) for f in files - seen]).column("run_id").to_pylist():
            versions_of_run.setdefault(run_id, set()).add(version)
        seen |= files
    assert all(len(versions) == 1 for versions in versions_of_run.values())  # each run in one commit


UNITS = ["s", "ms", "us", "ns"]


@settings(max_examples=200, deadline=None)
@given(old_unit=st.sampled_from(UNITS), new_unit=st.sampled_from(UNITS),
       old_zone=st.sampled_from([None, "UTC", "Europe/Paris"]), new_zone=st.sampled_from([None, "UTC", "Asia/Tokyo"]),
       values=st.lists(st.one_of(st.none(), st.integers(min_value=-2**40, max_value=2**40)), min_size=1, max_size=6))
def test_aligning_timestamps_never_changes_an_instant(old_unit, new_unit, old_zone, new_zone, values):
    from etl_platform.destinations import ValidationError
    from etl_platform.destinations.tables import align_timestamps, same_schema_or_raise

    new = pa.table({"at": pa.array(values, pa.timestamp(new_unit, tz=new_zone))})
    existing = pa.schema([("at", pa.timestamp(old_unit, tz=old_zone))])
    aligned = align_timestamps(new, existing)
    def instants(table):  # exact nanoseconds since the epoch, as Python integers (no overflow)
        column = table.column("at")
        factor = 1000 ** (3 - UNITS.index(column.type.unit))
        return [None if raw is None else raw * factor for raw in column.cast(pa.int64()).to_pylist()]

    assert instants(aligned) == instants(new)  # the same instants, whatever the form
    if aligned.schema != new.schema:
        assert aligned.schema == existing  # aligned: fully in the dataset's form
    try:
        same_schema_or_raise(existing, aligned.schema, "prop")
    except ValidationError:
        zones_differ = {old_zone, new_zone} not in ({None}, {"UTC"}, {None, "UTC"})
        lossy = UNITS.index(new_unit) > UNITS.index(old_unit)
        assert zones_differ or lossy
    else:
        assert aligned.schema == existing or aligned.schema.field("at").type.tz == old_zone
