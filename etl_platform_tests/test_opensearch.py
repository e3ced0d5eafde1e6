"""OpenSearch writer and reader against an OpenSearch-API server (osmem-server, in memory): bulk writes with ids,
alias swaps, per-item errors, point-in-time reads with search_after, and seed 000's examples."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest
from opensearchpy import OpenSearch

from etl_platform.destinations.errors import ConfigurationError, DestinationConnectionError, ValidationError
from etl_platform.connectors.opensearch.writer import OpenSearchTarget
from etl_platform.readers import ClientFactory
from etl_platform.sources import OpenSearchSource, ingest
from etl_platform.writers import WriterFactory
from etl_platform_tests.servers import opensearch_server, silent_server


@pytest.fixture(scope="module")
def search():
    with opensearch_server() as host:
        yield host, OpenSearch(hosts=[host])


EVENTS = pa.table({
    "event_id": pa.array(range(1, 2502), pa.int64()),
    "@timestamp": pa.array([datetime(2024, 1, 1, tzinfo=timezone.utc)] * 2501, pa.timestamp("us", tz="UTC")),
    "message": [f"event {i} é" for i in range(1, 2502)],
    "amount": pa.array([Decimal("1.25")] * 2501, pa.decimal128(8, 2)),
    "user": pa.array([{"name": "ana", "tags": ["a"]}] * 2501),
})


def test_bulk_writes_with_ids_from_keys_never_double(search):
    host, client = search
    target = OpenSearchTarget(hosts=[host], index="events", batch_size=500, refresh=True)
    first = target.write(EVENTS, "upsert", ["event_id"])
    assert (first.records_written, first.created, first.batches) == (2501, 2501, 6)
    again = target.write(EVENTS.slice(0, 10), "upsert", ["event_id"])  # a retried batch: same ids
    assert again.updated == 10
    assert client.count(index="events")["count"] == 2501
    hit = client.get(index="events", id="7")["_source"]
    assert hit["message"] == "event 7 é" and hit["user"] == {"name": "ana", "tags": ["a"]}
    assert hit["@timestamp"].startswith("2024-01-01T00:00:00") and hit["amount"] == 1.25
    mapping = client.indices.get_mapping(index="events")["events"]["mappings"]["properties"]
    assert mapping["event_id"]["type"] == "long" and mapping["@timestamp"]["type"] == "date"


def test_overwrite_swaps_an_alias(search):
    host, client = search
    target = OpenSearchTarget(hosts=[host], index="products")
    target.write(pa.table({"sku": ["a", "b", "c"]}), "overwrite")
    first_index = list(client.indices.get_alias(name="products"))
    target.write(pa.table({"sku": ["x"]}), "overwrite")
    second_index = list(client.indices.get_alias(name="products"))
    assert first_index != second_index and not client.indices.exists(index=first_index[0])
    client.indices.refresh(index="products")
    assert client.count(index="products")["count"] == 1
    target.write(pa.RecordBatchReader.from_batches(pa.schema([]), []), "overwrite")  # no rows: an empty index
    client.indices.refresh(index="products")
    assert client.count(index="products")["count"] == 0
    client.indices.create(index="plain")
    with pytest.raises(ConfigurationError, match="plain is an index, not an alias"):
        OpenSearchTarget(hosts=[host], index="plain").write(pa.table({"a": [1]}), "overwrite")


def test_refused_documents_are_named(search):
    host, client = search
    client.indices.create(index="typed", body={"mappings": {"properties": {"n": {"type": "long"}}}})
    target = OpenSearchTarget(hosts=[host], index="typed", create_index=False)
    with pytest.raises(ValidationError, match=r"refused by typed: _id bad"):
        target.write(pa.table({"id": ["ok", "bad"], "n": ["1", "not a number"]}), "upsert", ["id"])
    with pytest.raises(ValidationError, match="key column id holds 1 NULL"):
        target.write(pa.table({"id": pa.array([None], pa.string()), "n": [1]}), "upsert", ["id"])


def test_reader_pages_with_search_after_in_a_point_in_time_and_reads_incrementally(search):
    host, client = search
    OpenSearchTarget(hosts=[host], index="logs", refresh=True).write(EVENTS, "upsert", ["event_id"])
    source = OpenSearchSource(hosts=[host], index="logs", batch_size=1000, cursor_field="event_id")
    warehouse = duckdb.connect()
    first = ingest(warehouse, source, "logs")
    assert first.rows_written == 2501 and first.batches == 3 and first.state_after == {"cursor": 2501}
    assert warehouse.execute("SELECT count(DISTINCT _id) FROM bronze.logs").fetchone()[0] == 2501
    OpenSearchTarget(hosts=[host], index="logs", refresh=True).write(
        pa.table({"event_id": [2502], "message": ["late"]}), "upsert", ["event_id"])
    second = ingest(warehouse, source, "logs")
    assert second.rows_read == 2  # the mark's document (gte) and the new one
    assert warehouse.execute("SELECT count(*) FROM bronze.logs").fetchone()[0] == 2502


def test_seed_examples(search):
    host, client = search
    writer = WriterFactory.create_writer('opensearch', {
        'hosts': [host], 'username': 'admin', 'password': 'admin', 'use_ssl': False, 'verify_certs': False,
        'index': 'my-index'})
    data = [{"message": "hello", "@timestamp": "2024-01-01T00:00:00Z"}] * 3
    with writer:
        result = writer.write(data, index='logs-2024')
        print(f"Indexed {result['records_written']} documents")
    assert result["records_written"] == 3
    client.indices.refresh(index="logs-2024")
    opensearch_reader = ClientFactory.create_client('opensearch', {'hosts': [host], 'username': 'admin',
                                                                   'password': 'admin'})
    with opensearch_reader:
        raw_data = opensearch_reader.execute_query('*', {'index': 'logs-2024'})
    assert len(raw_data) == 3 and raw_data[0]["@timestamp"] == "2024-01-01T00:00:00Z" and raw_data[0]["_id"]


def test_io_manager_writes_and_reads_assets(search):
    import dagster as dg

    from etl_platform.connectors.opensearch.writer import OpenSearchIOManager

    host, client = search

    @dg.asset(io_manager_key="search", metadata={"etl_platform/id_columns": ["event_id"]})
    def alerts() -> pa.Table:
        return EVENTS.slice(0, 5).select(["event_id", "message"])

    @dg.asset
    def alert_count(alerts: pa.Table) -> int:
        return alerts.num_rows

    result = dg.materialize([alerts, alert_count], resources={"search": OpenSearchIOManager(hosts=[host])})
    assert result.success and result.output_for_node("alert_count") == 5
    assert result.asset_materializations_for_node("alerts")[0].metadata["records_written"].value == 5
    assert sorted(client.indices.get_alias(name="alerts")) and client.get(index="alerts", id="3")["found"]


def test_unreachable_server_fails_within_the_timeout():
    with silent_server() as port:
        started = time.monotonic()
        with pytest.raises(DestinationConnectionError, match="cannot reach"):
            OpenSearchTarget(hosts=[f"127.0.0.1:{port}"], index="x", timeout_seconds=1).write(EVENTS.slice(0, 1))
        assert time.monotonic() - started < 10


def test_a_document_over_the_size_limit_is_named_and_an_overwrite_leaves_the_alias(search):
    host, client = search
    target = OpenSearchTarget(hosts=[host], index="sized", max_document_bytes=10_000, refresh=True)
    target.write(pa.table({"id": ["a"], "body": ["small"]}), "overwrite", ["id"])
    before = list(client.indices.get_alias(name="sized"))
    rows = pa.table({"id": ["b", "huge"], "body": ["fine", "x" * 20_000], "note": ["n", "n"]})
    with pytest.raises(ValidationError, match=r"opensearch: the document 'huge' is 20,03\d bytes, over the "
                                              r"10,000-byte limit of one document; largest fields: body \(~20,000"):
        target.write(rows, "overwrite", ["id"])
    assert list(client.indices.get_alias(name="sized")) == before
    assert client.count(index="sized")["count"] == 1


def test_composite_keys_never_share_an_id(search):
    """Issue 20, item 7: keys were joined with `|`, so ("x|y", "z") and ("x", "y|z") became one document while
    the write reported 2. Several key columns make a JSON array; one key column stays the value itself."""
    host, client = search
    rows = pa.table({"a": ["x|y", "x"], "b": ["z", "y|z"], "n": [1, 2]})
    result = OpenSearchTarget(hosts=[host], index="composite", refresh=True).write(rows, "upsert", ["a", "b"])
    assert result.records_written == 2 and client.count(index="composite")["count"] == 2
    assert client.get(index="composite", id='["x|y","z"]')["_source"]["n"] == 1
    OpenSearchTarget(hosts=[host], index="single", refresh=True).write(rows, "upsert", ["n"])
    assert client.get(index="single", id="2")["_source"]["a"] == "x"


def _killed_writer(script: str, ready) -> None:
    """Run ``script`` (an overwrite that stalls after its first batch) in a process, SIGKILL it once ``ready()``."""
    import signal
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not ready():
            assert process.poll() is None and time.monotonic() < deadline, "the writer never started its overwrite"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)


STALLING_OVERWRITE = """
import time, pyarrow as pa
from etl_platform.connectors.{module}.writer import {target}

def batches():
    yield pa.record_batch({{"sku": ["a", "b"]}})
    time.sleep(600)

{target}({settings}).write(batches(), "overwrite")
"""


def test_an_index_left_by_a_killed_overwrite_is_deleted_by_the_next(search):
    """Issue 20, item 9: a killed overwrite left `<index>__*` forever. The next overwrite of the name deletes the
    indices of writers that are gone, and keeps the alias's own."""
    host, client = search
    target = OpenSearchTarget(hosts=[host], index="catalog")
    target.write(pa.table({"sku": ["old"]}), "overwrite")

    def staging():
        return [i for i in client.indices.get_alias(index="catalog__*") if "catalog" not in
                client.indices.get_alias(index=i)[i]["aliases"]]

    _killed_writer(STALLING_OVERWRITE.format(module="opensearch", target="OpenSearchTarget",
                                             settings=f"hosts=[{host!r}], index='catalog'"), lambda: staging())
    assert len(staging()) == 1  # left behind
    target.write(pa.table({"sku": ["new"]}), "overwrite")
    assert staging() == [] and len(client.indices.get_alias(name="catalog")) == 1
    client.indices.refresh(index="catalog")
    assert client.count(index="catalog")["count"] == 1
