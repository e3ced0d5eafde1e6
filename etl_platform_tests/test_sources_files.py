"""The file source on local disk and on the suite's S3 (moto), Azure Blob (Azurite) and GCS emulators; seed 004's
``DataReaderWriter`` with both backends."""

from __future__ import annotations

import gzip
import io
import json
import time

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl_platform.errors import ClientConnectionError, ConfigurationError
from etl_platform.reader_writer import DataReaderWriter
from etl_platform.sources import FileSource, ingest
from etl_platform_tests.servers import azurite, gcs_emulator, moto_s3_bucket, silent_server


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


ORDERS = pa.table({"id": pa.array([1, 2], pa.int64()), "amount": pa.array([1.5, None]),
                   "at": pa.array([1, 2], pa.timestamp("us", tz="UTC"))})
FILES = {
    "orders/year=2024/month=01/part-0.parquet": _parquet_bytes(ORDERS),
    "orders/year=2024/month=02/part-0.parquet": _parquet_bytes(ORDERS.slice(0, 1)),
    "logs/a.csv": b'id,name\n1,"a,b"\n2,c,extra\n3,\n',
    "logs/b.jsonl.gz": gzip.compress(b'{"a": 1}\nnot json\n\n{"b": [1, 2]}\n'),
    "logs/c.jsonl.zst": pa.compress(b'{"c": "\xc3\xa9"}\n', "zstd", asbytes=True),
    "logs/d.json": b'[{"x": 1}, {"x": 2}]',
}


def _write_all(fs, root: str) -> None:
    for name, data in FILES.items():
        with fs.open(f"{root}/{name}", "wb") as handle:
            handle.write(data)


def _exercise(source_settings: dict, fs, root: str) -> None:
    """The same checks on every store: formats, Hive columns, quarantine, only new or changed files."""
    _write_all(fs, root)
    warehouse = duckdb.connect()
    orders = FileSource(glob="orders/**/*.parquet", **source_settings)
    first = ingest(warehouse, orders, "orders")
    assert first.rows_written == 3
    rows = warehouse.execute("SELECT id, amount, \"at\", \"year\", \"month\", _source_file FROM bronze.orders "
                             "ORDER BY month, id").fetchall()
    assert [r[:2] for r in rows] == [(1, 1.5), (2, None), (1, 1.5)] and rows[0][3:5] == ("2024", "01")
    types = dict(warehouse.execute("SELECT column_name, data_type FROM information_schema.columns "
                                   "WHERE table_name = 'orders'").fetchall())
    assert types["at"] == "TIMESTAMP WITH TIME ZONE" and types["id"] == "BIGINT"

    assert ingest(warehouse, orders, "orders").rows_read == 0  # nothing new
    with fs.open(f"{root}/orders/year=2024/month=02/part-0.parquet", "wb") as handle:  # changed file
        handle.write(_parquet_bytes(ORDERS))
    with fs.open(f"{root}/orders/year=2024/month=03/part-0.parquet", "wb") as handle:  # new file
        handle.write(_parquet_bytes(ORDERS.slice(1, 1)))
    third = ingest(warehouse, orders, "orders")
    assert third.rows_read == 3
    assert warehouse.execute("SELECT month, count(*) FROM bronze.orders GROUP BY 1 ORDER BY 1").fetchall() == \
        [("01", 2), ("02", 2), ("03", 1)]

    logs = FileSource(glob="logs/*.csv", **source_settings)
    result = ingest(warehouse, logs, "csv_logs")
    assert (result.rows_written, result.rows_quarantined) == (2, 1)
    assert warehouse.execute("SELECT id, name FROM bronze.csv_logs ORDER BY id").fetchall() == \
        [("1", "a,b"), ("3", None)]
    jsonl = ingest(warehouse, FileSource(glob="logs/*.json*", **source_settings), "json_logs")
    assert (jsonl.rows_written, jsonl.rows_quarantined) == (5, 1)
    records = [json.loads(r[0]) for r in warehouse.execute("SELECT _record FROM bronze.json_logs "
                                                           "ORDER BY _source_position").fetchall()]
    assert {"c": "é"} in records and {"x": 2} in records
    position, reason = warehouse.execute("SELECT position, reason FROM bronze._source_quarantine "
                                         "WHERE source = 'json_logs'").fetchone()
    assert position == "logs/b.jsonl.gz:line 2" and reason.startswith("not JSON")


def test_local_files(tmp_path):
    import fsspec

    _exercise({"url": str(tmp_path)}, fsspec.filesystem("file", auto_mkdir=True), str(tmp_path))


def test_s3_files():
    with moto_s3_bucket("lake") as endpoint:
        settings = {"url": "s3://lake/raw", "endpoint_url": endpoint, "aws_access_key_id": "k",
                    "aws_secret_access_key": "s", "region": "us-east-1"}
        source = FileSource(**settings)
        _exercise(settings, source.store().filesystem(), "lake/raw")


def test_azure_blob_files(tmp_path):
    from azure.storage.blob import BlobServiceClient

    with azurite(tmp_path) as connection_string:
        BlobServiceClient.from_connection_string(connection_string).create_container("lake")
        settings = {"url": "abfs://lake/raw", "connection_string": connection_string}
        _exercise(settings, FileSource(**settings).store().filesystem(), "lake/raw")


def test_gcs_files():
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    with gcs_emulator() as endpoint:
        storage.Client(project="test", credentials=AnonymousCredentials(),
                       client_options={"api_endpoint": endpoint}).create_bucket("lake")
        settings = {"url": "gs://lake/raw", "endpoint_url": endpoint, "project": "test"}
        _exercise(settings, FileSource(**settings).store().filesystem(), "lake/raw")


def test_missing_bucket_and_bad_settings_are_clear(tmp_path):
    with moto_s3_bucket("lake") as endpoint:
        source = FileSource(url="s3://no-such-bucket/x", endpoint_url=endpoint, aws_access_key_id="k",
                            aws_secret_access_key="secret-value", region="us-east-1")
        with pytest.raises(ConfigurationError, match="bucket 'no-such-bucket' does not exist") as error:
            source.read_table()
        assert "secret-value" not in str(error.value)
    with pytest.raises(ConfigurationError, match="scheme 'ftp'"):
        FileSource(url="ftp://host/x").read_table()
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ConfigurationError, match="x.txt: format 'txt' is not one of parquet, csv, jsonl, json"):
        FileSource(url=str(tmp_path)).read_table()
    (tmp_path / "x.txt").unlink()
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ConfigurationError, match="at broken.parquet: the file cannot be read as parquet"):
        FileSource(url=str(tmp_path)).read_table()


def test_a_store_that_does_not_answer_fails_within_the_timeout():
    with silent_server() as port:
        source = FileSource(url="s3://lake/x", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="k",
                            aws_secret_access_key="s", region="us-east-1", timeout_seconds=2)
        started = time.monotonic()
        with pytest.raises(ClientConnectionError, match=f"127.0.0.1:{port}"):
            source.read_table()
        assert time.monotonic() - started < 10


@pytest.mark.parametrize("backend", ["pandas", "pyspark"])
def test_data_reader_writer_reads_what_it_wrote_on_both_backends(backend, spark_session):
    frame = pd.DataFrame({"user_id": [1, 2], "name": ["a", "ü"], "score": [1.5, None]})
    with moto_s3_bucket("seed") as endpoint:
        rw = DataReaderWriter(backend=backend, bucket_name="seed", endpoint_url=endpoint, access_key="k",
                              secret_key="s3cr3t", region_name="us-east-1", spark=spark_session)
        assert "s3cr3t" not in repr(rw)
        assert rw.write(frame, "datasets/users")["records_written"] == 2
        assert rw.write(frame, "exports/users.csv")["records_written"] == 2
        rw.upsert(pd.DataFrame({"user_id": [2, 3], "name": ["b", "c"], "score": [2.0, 3.0]}), "datasets/users",
                  upsert_method="by_id", id_columns=["user_id"])
        users, csv = rw.read("datasets/users"), rw.read("exports/users.csv")
        if backend == "pyspark":
            users, csv = users.toPandas(), csv.toPandas()
        assert users.sort_values("user_id")["name"].tolist() == ["a", "b", "c"]
        assert csv["name"].tolist() == ["a", "ü"]


def test_a_file_emptied_quarantined_or_deleted_takes_its_rows_with_it(tmp_path):
    """Issue 20, item 5: a file rewritten with its header only kept its old rows forever; so did a file whose every
    new record is quarantined; a deleted file's rows stayed. Files land replace_by_file."""
    (tmp_path / "a.csv").write_text("id,name\n1,x\n2,y\n")
    (tmp_path / "b.csv").write_text("id,name\n3,z\n")
    (tmp_path / "c.jsonl").write_text('{"id": 4}\n')
    warehouse = duckdb.connect()
    csvs, lines = FileSource(url=str(tmp_path), glob="*.csv"), FileSource(url=str(tmp_path), glob="*.jsonl")
    ingest(warehouse, csvs, "by_file")
    ingest(warehouse, lines, "by_line")

    def rows(table):
        return warehouse.execute(f"SELECT _source_file, count(*) FROM bronze.{table} GROUP BY 1 ORDER BY 1").fetchall()

    def quarantined(source):
        return warehouse.execute("SELECT part, count(*) FROM bronze._source_quarantine WHERE source = ? "
                                 "GROUP BY 1 ORDER BY 1", [source]).fetchall()

    assert rows("by_file") == [("a.csv", 2), ("b.csv", 1)]
    (tmp_path / "a.csv").write_text("id,name\n")  # the header only
    ingest(warehouse, csvs, "by_file")
    assert rows("by_file") == [("b.csv", 1)]
    (tmp_path / "b.csv").write_text("id,name\n3,z,extra\n")  # every record quarantined
    ingest(warehouse, csvs, "by_file")
    assert rows("by_file") == [] and quarantined("by_file") == [("b.csv", 1)]
    (tmp_path / "b.csv").write_text("id,name\n3,z\n")  # corrected: its rows back, its quarantine gone
    ingest(warehouse, csvs, "by_file")
    assert rows("by_file") == [("b.csv", 1)] and quarantined("by_file") == []
    (tmp_path / "b.csv").unlink()  # deleted
    (tmp_path / "c.jsonl").write_text("not json\n")
    ingest(warehouse, csvs, "by_file")
    ingest(warehouse, lines, "by_line")
    assert rows("by_file") == [] and rows("by_line") == [] and quarantined("by_line") == [("c.jsonl", 1)]
    (tmp_path / "c.jsonl").unlink()
    ingest(warehouse, lines, "by_line")
    assert quarantined("by_line") == []


def test_a_file_that_cannot_be_read_is_quarantined_whole_and_the_others_land(tmp_path):
    """One bad file (a gzip cut short, a csv that is not UTF-8, a parquet with no footer) failed every run of the
    source: no file landed until it was removed, and a cut gzip was even retried as a connection error. Now the
    file is quarantined whole, naming it and why, lands no rows (its old ones and what was read of it before the
    fault leave), and the other files land; it is read again when it changes, as the landing zone does."""
    (tmp_path / "good.csv").write_text("id,v\n1,a\n2,b\n")
    (tmp_path / "events.jsonl.gz").write_bytes(gzip.compress(b'{"n": 1}\n'))
    (tmp_path / "small.csv.gz").write_bytes(gzip.compress(b"id,v\n9,z\n"))
    warehouse, source = duckdb.connect(), FileSource(url=str(tmp_path), batch_size=10_000)
    ingest(warehouse, source, "files")
    cut = gzip.compress(b"".join(b'{"n": %d}\n' % i for i in range(200_000)))
    (tmp_path / "events.jsonl.gz").write_bytes(cut[:len(cut) // 2])  # batches of it staged, then the stream ends
    small = gzip.compress(b"id,v\n" + b"9,z\n" * 1000)
    (tmp_path / "small.csv.gz").write_bytes(small[:len(small) // 2])  # ends inside its first block
    (tmp_path / "latin.csv").write_bytes("id,v\n3,café\n".encode("latin-1"))
    (tmp_path / "no_footer.parquet").write_bytes(b"PAR1 not really a parquet file")
    result = ingest(warehouse, source, "files")
    assert result.rows_read >= 50_000  # of the cut file, before its fault: staged, then void

    def landed() -> list[tuple]:
        return warehouse.execute("SELECT _source_file, count(*) FROM bronze.files GROUP BY 1 ORDER BY 1").fetchall()

    def quarantined() -> dict[str, str]:
        return dict(warehouse.execute("SELECT part, reason FROM bronze._source_quarantine WHERE position = part"
                                      ).fetchall())

    assert landed() == [("good.csv", 2)] and result.rows_quarantined == 4
    reasons = quarantined()
    assert reasons["events.jsonl.gz"] == ("the file cannot be read as jsonl (gzip): Compressed file ended before "
                                          "the end-of-stream marker was reached")
    assert reasons["small.csv.gz"].startswith("the file cannot be read as csv (gzip): Compressed file ended")
    assert reasons["latin.csv"].startswith("the file cannot be read as csv: ") and "UTF8" in reasons["latin.csv"]
    assert reasons["no_footer.parquet"].startswith("the file cannot be read as parquet: ")
    assert warehouse.execute("SELECT count(*) FROM bronze._source_quarantine").fetchone()[0] == 4
    assert ingest(warehouse, source, "files").rows_read == 0  # unchanged: not read again
    (tmp_path / "latin.csv").write_text("id,v\n3,café\n", encoding="utf-8")  # corrected
    ingest(warehouse, source, "files")
    assert landed() == [("good.csv", 2), ("latin.csv", 1)]
    assert set(quarantined()) == {"events.jsonl.gz", "small.csv.gz", "no_footer.parquet"}


def test_json_records_with_a_lone_surrogate_are_quarantined(tmp_path):
    """Issue 20, item 17: a jsonl line or json record holding "\\ud800" landed and broke every JSON query."""
    (tmp_path / "a.jsonl").write_text('{"t": "ok"}\n{"t": "\\ud800"}\n')
    (tmp_path / "b.json").write_text('[{"t": "fine"}, {"t": "x\\udfff"}]')
    warehouse = duckdb.connect()
    result = ingest(warehouse, FileSource(url=str(tmp_path)), "surrogates")
    assert (result.rows_written, result.rows_quarantined) == (2, 2)
    assert sorted(r[0] for r in warehouse.execute("SELECT _record->>'$.t' FROM bronze.surrogates").fetchall()) == \
        ["fine", "ok"]
    assert warehouse.execute("SELECT part, position FROM bronze._source_quarantine ORDER BY 1").fetchall() == \
        [("a.jsonl", "a.jsonl:line 2"), ("b.json", "b.json:record 2")]


def test_zstd_streams_read_every_frame_and_tell_a_bad_file_from_a_failing_read():
    """Several frames are one stream; a cut or foreign stream is the file's fault (ZstdStreamError, the file is
    refused); an error of the read itself (a dropped connection) keeps its class, so it is retried, not refused."""
    import io

    from etl_platform.landing.files import ZstdStreamError, decompressed

    frames = pa.compress(b"a,b\n1,2\n", "zstd", asbytes=True) + pa.compress(b"3,4\n", "zstd", asbytes=True)
    assert decompressed(io.BytesIO(frames), "zstd").read() == b"a,b\n1,2\n3,4\n"
    for bad in (frames[:-3], b"not zstd at all"):
        with pytest.raises(ZstdStreamError, match="truncated or corrupt"):
            decompressed(io.BytesIO(bad), "zstd").read()

    class DroppedConnection(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buffer):
            raise ConnectionResetError("connection reset by peer")

    with pytest.raises(ConnectionResetError):
        decompressed(DroppedConnection(), "zstd").read()
