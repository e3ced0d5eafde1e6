"""Issue 22: datasets on a table format. ``format='delta'`` makes every write one Delta commit.

The property that matters: a reader reading in a loop while overwrites, partition replaces and upserts go on sees
only whole versions (the rows of exactly one committed version), on the local disk and on S3 (moto). Every row
carries the write that made it (``gen``), and each write touches several files (one per ``part``), so a reader that
saw some files of one version beside some of another would read a mix no version ever held.
"""

from __future__ import annotations

import os
import threading
from collections import Counter

import dagster as dg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from etl_platform.destinations.dataset import Dataset
from etl_platform.destinations.delta import ConcurrentWriteError
from etl_platform.destinations.errors import ConfigurationError, ValidationError
from etl_platform.destinations.formats import FileFormat
from etl_platform.destinations.io_managers import LocalDatasetIOManager
from etl_platform.destinations.merge import Merger
from etl_platform.destinations.stores import AzureBlobStore, LocalStore, S3Store
from etl_platform.reader_writer import DataReaderWriter
from etl_platform.upsert import upsert
from etl_platform_tests import servers
from etl_platform_tests.test_upsert import random_batch

PARTS = 4
BY_ID = Merger("by_id", ["id"], None, "pandas")


def rows(gen: int, ids: range, part: int | None = None) -> pa.Table:
    return pa.table({"id": pa.array(list(ids), pa.int64()),
                     "part": pa.array([part if part is not None else i % PARTS for i in ids], pa.int64()),
                     "gen": pa.array([gen] * len(ids), pa.int64())})


def content(table: pa.Table | None) -> tuple:
    return tuple(sorted(zip(*(table[c].to_pylist() for c in ("id", "part", "gen"))))) if table is not None else ()


def writes(dataset: Dataset, count: int):
    """Overwrites of the whole table, replaces of one Dagster partition's worth (by predicate), and upserts."""
    for gen in range(1, count + 1):
        kind = gen % 3
        if kind == 0:
            dataset.write(rows(gen, range(gen % 7, 400 + gen % 7)), "overwrite")
        elif kind == 1:
            dataset.write(rows(gen, range(0, 400, 3)), "upsert", merge=BY_ID.merge)
        else:
            dataset.write(rows(gen, range(0, 400, 5)), "append")


def assert_readers_see_whole_versions(dataset: Dataset, count: int = 12) -> None:
    dataset.write(rows(0, range(400)), "overwrite")
    seen, errors, done = [], [], threading.Event()

    def read_in_a_loop():
        while not done.is_set():
            try:
                seen.append(content(dataset.read()))
            except Exception as error:  # a reader must never fail either
                errors.append(error)

    reader = threading.Thread(target=read_in_a_loop)
    reader.start()
    try:
        writes(dataset, count)
    finally:
        done.set()
        reader.join()
    assert not errors, errors[:3]
    versions = {content(dataset.read(version=v)) for v in range(dataset.delta().version() + 1)}
    assert len(versions) == count + 1
    mixes = [s for s in seen if s not in versions]
    assert not mixes, f"{len(mixes)} of {len(seen)} reads saw no committed version, e.g. {Counter(g for *_, g in mixes[0])}"
    assert len(set(seen)) > 1, "the reader never read while the writer wrote: the test proved nothing"


def test_a_reader_sees_only_whole_versions_on_the_local_disk(tmp_path):
    dataset = Dataset(LocalStore(base_path=str(tmp_path)), "events", FileFormat("delta"), ("part",))
    assert_readers_see_whole_versions(dataset)


def test_a_reader_sees_only_whole_versions_on_s3(tmp_path):
    with servers.moto_s3_bucket() as url:
        store = S3Store(bucket="lake", endpoint_url=url, aws_access_key_id="k", aws_secret_access_key="s",
                        region="us-east-1")
        assert_readers_see_whole_versions(Dataset(store, "events", FileFormat("delta"), ("part",)), count=6)


def test_each_mode_is_one_commit_and_an_upsert_rewrites_only_the_files_it_touches(tmp_path):
    dataset = Dataset(LocalStore(base_path=str(tmp_path)), "events", FileFormat("delta"), ("part",))
    first = dataset.write(rows(0, range(100)), "overwrite")
    assert (first.version, first.records_written, len(first.uris)) == (0, 100, PARTS)
    before = set(dataset.delta().table().file_uris())
    upserted = dataset.write(rows(1, range(0, 100, PARTS), part=0), "upsert", merge=BY_ID.merge)
    assert upserted.version == 1 and len(upserted.uris) == 1
    after = set(dataset.delta().table().file_uris())
    assert len(before - after) == 1 and len(before & after) == PARTS - 1  # the other parts' files untouched
    appended = dataset.write(rows(2, range(100, 110)), "append")
    assert appended.version == 2
    table = dataset.read()
    assert table.num_rows == 110 and Counter(table["gen"].to_pylist()) == {0: 75, 1: 25, 2: 10}
    assert content(dataset.read(version=0)) == content(rows(0, range(100)))
    with pytest.raises(ValidationError, match=r"missing columns \['gen'\]"):
        dataset.write(rows(3, range(3)).drop_columns(["gen"]), "append")


def test_a_dagster_partition_is_replaced_alone(tmp_path):
    dataset = Dataset(LocalStore(base_path=str(tmp_path)), "daily", FileFormat("delta"))
    dataset.write(rows(0, range(5)), "overwrite", {"day": "2024-01-01"})
    dataset.write(rows(1, range(3)), "overwrite", {"day": "2024-01-02"})
    dataset.write(rows(2, range(2)), "overwrite", {"day": "2024-01-01"})  # run again: replaces only its day
    assert content(dataset.read({"day": "2024-01-01"})) == content(rows(2, range(2)))
    assert content(dataset.read({"day": "2024-01-02"})) == content(rows(1, range(3)))
    assert dataset.read().num_rows == 5 and dataset.read({"day": "2024-01-03"}) is None
    with pytest.raises(ConfigurationError, match="already has a column 'day'"):
        dataset.write(rows(3, range(1)).append_column("day", pa.array(["x"])), "overwrite", {"day": "2024-01-01"})


def test_two_appenders_both_land_and_of_two_overwriters_one_fails_clearly(tmp_path):
    dataset = Dataset(LocalStore(base_path=str(tmp_path)), "events", FileFormat("delta"))
    dataset.write(rows(0, range(10)), "overwrite")
    outcomes: dict[str, list] = {"append": [], "overwrite": []}

    def writer(mode: str, gen: int) -> None:
        for number in range(8):
            try:
                dataset.write(rows(gen * 100 + number, range(10)), mode)
                outcomes[mode].append("ok")
            except ConcurrentWriteError as error:
                assert "did not land: another writer committed a conflicting change first" in str(error)
                outcomes[mode].append("conflict")

    threads = [threading.Thread(target=writer, args=("append", g)) for g in (1, 2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert outcomes["append"] == ["ok"] * 16 and dataset.read().num_rows == 10 + 16 * 10  # no append lost
    threads = [threading.Thread(target=writer, args=("overwrite", g)) for g in (3, 4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    final = dataset.read()
    assert final.num_rows == 10 and len(set(final["gen"].to_pylist())) == 1  # one overwrite's rows, whole
    history = dataset.delta().table().history()
    assert len(history) == 1 + 16 + outcomes["overwrite"].count("ok")  # every success is a commit, no more


def test_a_version_of_plain_files_is_refused_naming_the_format(tmp_path):
    dataset = Dataset(LocalStore(base_path=str(tmp_path)), "events", FileFormat("parquet"))
    dataset.write(rows(0, range(3)), "overwrite")
    with pytest.raises(ConfigurationError, match="needs format 'delta' .*parquet: files have no versions"):
        dataset.read(version=0)


@dg.asset(io_manager_key="delta")
def scores() -> pa.Table:
    return rows(int(scores_generation[0]), range(3))


@dg.asset(io_manager_key="delta", ins={"scores": dg.AssetIn(metadata={"etl_platform/version": 0})})
def first_scores(scores: pa.Table) -> pa.Table:
    return scores


scores_generation = [0]


def test_the_io_manager_records_each_version_and_reads_an_earlier_one(tmp_path):
    resources = {"delta": LocalDatasetIOManager(base_path=str(tmp_path), format="delta")}
    for generation in (7, 8):
        scores_generation[0] = generation
        result = dg.materialize([scores], resources=resources)
        metadata = result.asset_materializations_for_node("scores")[0].metadata
        assert metadata["version"].value == generation - 7 and metadata["format"].text == "delta"
    result = dg.materialize([scores, first_scores], resources=resources, selection=[first_scores])
    assert result.output_for_node("first_scores")["gen"].to_pylist() == [7, 7, 7]


def test_the_upsert_backends_give_identical_delta_tables(spark_session, tmp_path):
    existing, new = random_batch(1, 300, 120), random_batch(2, 200, 160)
    tables = {}
    for backend in ("pandas", "pyspark"):
        target = str(tmp_path / backend)
        for batch in (existing, new):
            upsert(batch, target, "by_id_and_modification", ["id", "region"], "updated_at", backend=backend,
                   format="delta", spark=spark_session)
        tables[backend] = Dataset(LocalStore(base_path=target), "", FileFormat("delta")).read()
    assert tables["pandas"].num_rows > 0
    assert sorted(tables["pandas"].to_pylist(), key=str) == sorted(tables["pyspark"].to_pylist(), key=str)
    # the same rows as the upsert of plain files gives
    plain = str(tmp_path / "plain")
    for batch in (existing, new):
        upsert(batch, plain, "by_id_and_modification", ["id", "region"], "updated_at")
    plain_rows = Dataset(LocalStore(base_path=plain), "", FileFormat("parquet")).read().to_pylist()
    assert sorted(plain_rows, key=str) == sorted(tables["pandas"].to_pylist(), key=str)


def test_seed_004_data_reader_writer_writes_and_reads_delta_tables_on_s3():
    with servers.moto_s3_bucket("seeds") as url:
        client = DataReaderWriter(backend="pandas", bucket_name="seeds", endpoint_url=url, access_key="k",
                                  secret_key="s", region_name="us-east-1")
        import pandas as pd

        client.write(pd.DataFrame({"id": [1, 2], "v": ["a", "b"]}), "tables/users", format="delta")
        client.upsert(pd.DataFrame({"id": [2, 3], "v": ["B", "c"]}), "tables/users", "by_id", ["id"], format="delta")
        assert client.read("tables/users", format="delta").sort_values("id")["v"].tolist() == ["a", "B", "c"]
        assert client.read("tables/users", format="delta", version=0)["v"].tolist() == ["a", "b"]


def test_delta_datasets_on_azure_blob(tmp_path):
    from azure.storage.blob import BlobServiceClient

    with servers.azurite(tmp_path) as connection_string:
        BlobServiceClient.from_connection_string(connection_string).create_container("lake")
        store = AzureBlobStore(container="lake", connection_string=connection_string)
        dataset = Dataset(store, "events", FileFormat("delta"), ("part",))
        dataset.write(rows(0, range(20)), "overwrite")
        dataset.write(rows(1, range(0, 20, 2)), "upsert", merge=BY_ID.merge)
        assert Counter(dataset.read()["gen"].to_pylist()) == {0: 10, 1: 10}
        assert dataset.delta().version() == 1 and dataset.read(version=0).num_rows == 20


def test_the_io_managers_write_delta_tables_by_default(tmp_path):
    """The same flows as test_io_managers.py's plain-file ones, on the default format: a Dagster partition
    appended to twice, an upsert by key, pandas / Arrow / records in and out."""
    from etl_platform_tests.test_io_managers import as_arrow, as_pandas, as_records, daily_log, events

    manager = LocalDatasetIOManager(base_path=str(tmp_path))
    result = dg.materialize([events, as_arrow, as_records, as_pandas], resources={"io_manager": manager})
    metadata = result.asset_materializations_for_node("events")[0].metadata
    assert metadata["format"].value == "delta" and metadata["version"].value == 0
    assert metadata["records_written"].value == 3 and metadata["files"].value == 2  # one file per `day`
    assert (tmp_path / "events" / "_delta_log").is_dir()

    for _ in range(2):
        assert dg.materialize([daily_log], partition_key="2024-01-05", resources={"io_manager": manager}).success
    dg.materialize([daily_log], partition_key="2024-01-06", resources={"io_manager": manager})
    table = Dataset(LocalStore(base_path=str(tmp_path)), "daily_log", FileFormat("delta")).read()
    assert Counter(table["partition"].to_pylist()) == {"2024-01-05": 2, "2024-01-06": 1}

    batches = iter([[{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], [{"id": 2, "v": "B"}, {"id": 3, "v": "c"}]])

    @dg.asset(metadata={"etl_platform/write_mode": "upsert", "etl_platform/id_columns": ["id"]})
    def customers() -> list:
        return next(batches)

    for _ in range(2):
        dg.materialize([customers], resources={"io_manager": manager})
    table = Dataset(LocalStore(base_path=str(tmp_path)), "customers", FileFormat("delta")).read()
    assert sorted(table.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 3, "v": "c"}]


def test_client_factory_reads_a_delta_table_at_a_version_or_a_time(tmp_path):
    """Issue 22's time travel through seed 000's ClientFactory (reader type ``delta``)."""
    import time as clock
    from datetime import datetime, timezone

    from etl_platform.readers import ClientFactory, ConfigurationError

    dataset = Dataset(LocalStore(base_path=str(tmp_path)), "users", FileFormat("delta"))
    dataset.write(rows(0, range(3)), "overwrite")
    clock.sleep(0.05)
    between = dataset.delta().table().history(1)[0]["timestamp"]  # ms since the epoch, version 0's commit
    clock.sleep(0.05)
    dataset.write(rows(1, range(5)), "overwrite")
    reader = ClientFactory.create_client("delta", {"url": str(tmp_path / "users")})
    assert {r["gen"] for r in reader.execute_query()} == {1} and len(reader.execute_query()) == 5
    assert len(reader.execute_query(params={"version": 0})) == 3
    at = datetime.fromtimestamp((between + 20) / 1000, tz=timezone.utc)
    assert {r["gen"] for r in reader.execute_query(["id", "gen"], {"as_of": at.isoformat()})} == {0}
    assert set(reader.execute_query(["id"])[0]) == {"id"}
    with pytest.raises(ConfigurationError, match=r"no column\(s\) \['nope'\]"):
        reader.execute_query(["nope"])
    with pytest.raises(ConfigurationError, match=r"unknown parameter\(s\) \['versoin'\]"):
        reader.execute_query(params={"versoin": 1})
    with pytest.raises(ConfigurationError, match="there is no Delta table"):
        ClientFactory.create_client("delta", {"url": str(tmp_path / "missing")}).execute_query()


def test_a_delta_table_lands_in_bronze_as_its_current_version(tmp_path):
    from etl_platform.sources import DeltaTableSource, ingest
    from etl_platform.warehouse.duckdb_warehouse import DuckDBWarehouse

    dataset = Dataset(LocalStore(base_path=str(tmp_path)), "events", FileFormat("delta"), ("part",))
    dataset.write(rows(0, range(10)), "overwrite")
    source = DeltaTableSource(url=str(tmp_path / "events"), batch_size=3)
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    with warehouse.connect() as session:
        assert ingest(session, source, "delta_events").rows_written == 10
        dataset.write(rows(1, range(0, 10, 2)), "upsert", merge=BY_ID.merge)
        ingest(session, source, "delta_events")
        landed = session.execute("SELECT gen, count(*) FROM bronze.delta_events GROUP BY gen ORDER BY gen").fetchall()
    assert landed == [(0, 5), (1, 5)]  # replaced by the table's new version, nothing doubled


def test_types_a_delta_table_cannot_hold_exactly_are_converted_losslessly_or_refused(tmp_path):
    """Found by trying pandas frames: delta-rs truncated nanosecond timestamps to microseconds without a word, and a
    frame appended after its own first write was refused (ns vs the table's us)."""
    import pandas as pd

    dataset = Dataset(LocalStore(base_path=str(tmp_path)), "events", FileFormat("delta"))
    frame = pd.DataFrame({"id": [1, 2], "at": pd.to_datetime(["2024-01-01 10:00:00.123456", "2024-01-02 00:00:00.000000"]),
                          "n": pa.array([200, 7], pa.uint8()).to_pandas()})
    dataset.write(frame, "overwrite")
    dataset.write(frame, "append")  # pandas' datetime64[ns] again: the same column
    table = dataset.read()
    assert table.num_rows == 4 and table.schema.field("at").type == pa.timestamp("us")
    assert sorted(table["n"].to_pylist()) == [7, 7, 200, 200]  # uint8 held as int16, 200 stays 200
    nanoseconds = pd.DataFrame({"id": [3], "at": pd.to_datetime(["2024-01-01 10:00:00.123456789"]),
                                "n": pa.array([1], pa.uint8()).to_pandas()})
    with pytest.raises(ValidationError, match=r"column 'at' \(timestamp\[ns\]\) has a value a Delta table would "
                                              r"change .*nothing was written"):
        dataset.write(nanoseconds, "append")
    with pytest.raises(ValidationError, match=r"column 'big' \(uint64\)"):
        Dataset(LocalStore(base_path=str(tmp_path)), "big", FileFormat("delta")).write(
            pa.table({"big": pa.array([2**64 - 1], pa.uint64())}), "overwrite")
    with pytest.raises(ValidationError, match=r"column 'clock' is time64\[us\], which a Delta table cannot hold"):
        Dataset(LocalStore(base_path=str(tmp_path)), "clock", FileFormat("delta")).write(
            pa.table({"clock": pa.array([1], pa.time64("us"))}), "overwrite")
    assert dataset.read().num_rows == 4 and dataset.delta().version() == 1


def test_an_upsert_leaves_one_row_per_key_it_writes_even_where_the_key_was_appended_twice(tmp_path):
    """An update of matched rows would keep a key the table holds twice. On Delta the keys written have one row each
    afterwards, and the other keys' rows are not touched (their files are not rewritten), duplicates included; the
    plain-file upsert, which rewrites the whole dataset, also folds those (docs/destinations.md)."""
    results = {}
    for file_format in ("delta", "parquet"):
        dataset = Dataset(LocalStore(base_path=str(tmp_path / file_format)), "accounts", FileFormat(file_format))
        dataset.write(rows(0, range(6)), "overwrite")
        dataset.write(rows(1, range(2)), "append")  # keys 0 and 1 twice now
        dataset.write(rows(2, range(1, 3)), "upsert", merge=BY_ID.merge)
        results[file_format] = content(dataset.read())
    written = {1, 2}
    assert [r for r in results["delta"] if r[0] in written] == [r for r in results["parquet"] if r[0] in written] \
        == [(1, 1, 2), (2, 2, 2)]
    assert Counter(i for i, _, _ in results["delta"]) == {0: 2, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
    assert Counter(i for i, _, _ in results["parquet"]) == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1}


@pytest.mark.parametrize("codec", ["zstd", "none", None])
def test_the_codec_asked_for_is_the_one_written(tmp_path, codec):
    import pyarrow.parquet as pq

    dataset = Dataset(LocalStore(base_path=str(tmp_path)), "events", FileFormat("delta", codec))
    result = dataset.write(rows(0, range(50)), "overwrite")
    dataset.write(rows(1, range(0, 50, 5)), "upsert", merge=BY_ID.merge)
    expected = {"zstd": "ZSTD", "none": "UNCOMPRESSED", None: "SNAPPY"}[codec]
    for uri in dataset.delta().table().file_uris() + result.uris:
        assert pq.ParquetFile(uri).metadata.row_group(0).column(0).compression == expected


def test_a_delta_table_read_or_written_as_plain_parquet_is_treated_as_the_table(tmp_path):
    """Its folder holds every version's Parquet files: read as plain files it would show removed rows, and a plain
    file written beside them would be invisible to the table. A parquet dataset over a Delta log is the table; a
    text format over it is refused."""
    store = LocalStore(base_path=str(tmp_path))
    Dataset(store, "users", FileFormat("delta")).write(rows(0, range(5)), "overwrite")
    Dataset(store, "users", FileFormat("delta")).write(rows(1, range(2)), "overwrite")  # version 0's file stays
    plain = Dataset(store, "users", FileFormat("parquet"))
    assert content(plain.read()) == content(rows(1, range(2)))
    plain.write(rows(2, range(2, 4)), "append")  # one commit of the table
    assert Dataset(store, "users", FileFormat("delta")).delta().version() == 2
    assert plain.read().num_rows == 4
    with pytest.raises(ConfigurationError, match="is a Delta table; it cannot be read or written as csv files"):
        Dataset(store, "users", FileFormat("csv")).read()


class WriterDied(Exception):
    """The writer's stream stops half-way (its process gone): delta-rs has read some batches, never the rest."""


def _dying(table: pa.Table, after_batches: int, died: list):
    """``table`` as a stream of one-row batches that raises after ``after_batches`` of them (and says so in ``died``:
    delta-rs re-raises it as its own error, whose text the platform shortens)."""
    def batches():
        for number, batch in enumerate(table.to_batches(max_chunksize=1)):
            if number == after_batches:
                died.append(True)
                raise WriterDied()
            yield batch
    return pa.RecordBatchReader.from_batches(table.schema, batches())


DELTA_STEP = st.tuples(st.sampled_from(["overwrite", "append", "upsert"]),
                       st.lists(st.integers(0, 6), min_size=1, max_size=5),
                       st.one_of(st.none(), st.integers(0, 3)))


@hypothesis_settings(max_examples=int(os.environ.get("ETL_DELTA_EXAMPLES", "25")), deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(DELTA_STEP, min_size=1, max_size=6))
def test_random_writes_and_dying_writers_leave_a_delta_table_equal_to_the_truth(steps, tmp_path_factory):
    """Random overwrites, appends and upserts (duplicate keys within a write, and keys appended twice, included),
    each possibly dying half-way through its stream: after each, the table equals the truth — the write's effect
    whole, or (it died) nothing of it. (A partition's replace: test_a_dagster_partition_is_replaced_alone.)"""
    dataset = Dataset(LocalStore(base_path=str(tmp_path_factory.mktemp("delta"))), "t", FileFormat("delta"))
    truth: list[tuple] = []  # (id, part, gen)
    for gen, (mode, ids, dies_after) in enumerate(steps, 1):
        part = gen % 2
        data = pa.table({"id": pa.array(ids, pa.int64()), "part": pa.array([part] * len(ids), pa.int64()),
                         "gen": pa.array(range(gen * 10, gen * 10 + len(ids)), pa.int64())})
        new = list(zip(data["id"].to_pylist(), data["part"].to_pylist(), data["gen"].to_pylist()))
        if mode == "overwrite":
            after = new
        elif mode == "append":
            after = truth + new
        else:  # upsert by id: the last new row of a key wins; existing rows of the keys written go
            winners = {row[0]: row for row in new}
            after = [r for r in truth if r[0] not in winners] + list(winners.values())
        died: list = []
        stream = _dying(data, dies_after, died) if dies_after is not None and dies_after < len(ids) else data
        try:
            dataset.write(stream, mode, merge=BY_ID.merge)
            truth = after
        except Exception as error:  # only the writer's death may stop a write, and it leaves nothing
            assert died, error
        assert sorted(content(dataset.read())) == sorted(truth)


@pytest.mark.parametrize("file_format,partition_by", [("parquet", ()), ("csv", ()), ("parquet", ("part",)),
                                                      ("delta", ()), ("delta", ("part",))])
def test_an_overwrite_with_no_rows_empties_the_dataset_and_keeps_its_columns(tmp_path, file_format, partition_by):
    """A source that now has no records (its files deleted) overwrites its target with nothing: the rows go,
    the columns stay for readers (an empty file; a Delta version of no rows); nothing there stays nothing."""
    dataset = Dataset(LocalStore(base_path=str(tmp_path)), "events", FileFormat(file_format), partition_by)
    nothing = pa.RecordBatchReader.from_batches(pa.schema([]), [])
    assert dataset.write(nothing, "overwrite").records_written == 0 and dataset.schema() is None
    dataset.write(pa.table({"id": [1, 2], "part": ["a", "b"]}), "overwrite")
    result = dataset.write(pa.RecordBatchReader.from_batches(pa.schema([]), []), "overwrite")
    assert result.records_written == 0
    read = dataset.read()
    assert read is None or read.num_rows == 0
    if not partition_by:  # a partitioned dataset of no rows has no folders, so no files
        assert read is not None and {"id", "part"} <= set(read.column_names)
