"""MongoDB writer, writer API and IO manager against a MongoDB wire-protocol server (secantusdb, in memory)."""

from __future__ import annotations

import time
from datetime import date, datetime, timezone
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pymongo
import pytest

from etl_platform.destinations.errors import ConfigurationError, DestinationConnectionError, ValidationError
from etl_platform.connectors.mongodb.writer import MongoDBIOManager, MongoTarget
from etl_platform.writers import WriterFactory
from etl_platform_tests.servers import mongo_server, silent_server


@pytest.fixture(scope="module")
def mongo():
    with mongo_server() as uri:
        yield uri, pymongo.MongoClient(uri, tz_aware=True)


ROWS = pa.table({
    "user_id": pa.array([1, 2, 3], pa.int64()),
    "name": ["Zoë", "b", None],
    "balance": pa.array([Decimal("10.50"), Decimal("-1.25"), None], pa.decimal128(10, 2)),
    "seen_at": pa.array([datetime(2024, 1, 1, 12, 30, tzinfo=timezone.utc)] * 3, pa.timestamp("us", tz="UTC")),
    "born": pa.array([date(1990, 5, 17)] * 3, pa.date32()),
    "address": pa.array([{"city": "Oslo", "zip": "0150"}] * 3),
    "tags": pa.array([["a", "b"], [], None]),
})


def test_seed_example_and_types(mongo):
    uri, client = mongo
    host, port = uri.removeprefix("mongodb://").split(":")
    mongo_writer = WriterFactory.create_writer('mongodb', {
        'host': host, 'port': int(port), 'database': 'analytics', 'collection': 'users'})
    with mongo_writer:
        result = mongo_writer.write(ROWS.to_pylist())
        print(f"✓ Inserted {result['records_written']} documents")
    assert result["records_written"] == 3 and len(result["inserted_ids"]) == 3
    with mongo_writer:
        other = mongo_writer.write(ROWS, collection='logs')
    assert other["records_written"] == 3
    document = client.analytics.users.find_one({"user_id": 1})
    assert document["name"] == "Zoë" and document["balance"].to_decimal() == Decimal("10.50")
    assert document["seen_at"] == datetime(2024, 1, 1, 12, 30, tzinfo=timezone.utc)
    assert document["born"] == datetime(1990, 5, 17, tzinfo=timezone.utc)
    assert document["address"] == {"city": "Oslo", "zip": "0150"} and document["tags"] == ["a", "b"]
    assert client.analytics.logs.count_documents({}) == 3


def test_upsert_by_key_and_null_keys_refused(mongo):
    uri, client = mongo
    target = MongoTarget(uri=uri, database="shop", collection="customers")
    target.write(ROWS, "upsert", ["user_id"])
    changes = pa.table({"user_id": [2, 4], "name": ["b2", "d"]})
    result = target.write(changes, "upsert", ["user_id"])
    assert (result.upserted, result.modified) == (1, 1)
    names = {d["user_id"]: d.get("name") for d in client.shop.customers.find()}
    assert names == {1: "Zoë", 2: "b2", 3: None, 4: "d"}
    assert any(index.get("unique") for index in client.shop.customers.list_indexes())
    with pytest.raises(ValidationError, match="key column user_id holds 1 NULL"):
        target.write(pa.table({"user_id": pa.array([None, 5], pa.int64())}), "upsert", ["user_id"])


def test_overwrite_swaps_the_collection_and_a_failure_leaves_the_old_one(mongo):
    uri, client = mongo
    target = MongoTarget(uri=uri, database="shop", collection="products", batch_size=2)
    target.write(pa.table({"sku": ["a", "b", "c"]}), "overwrite")
    target.write(pa.table({"sku": ["x", "y"]}), "overwrite")
    assert sorted(d["sku"] for d in client.shop.products.find()) == ["x", "y"]
    duplicate_ids = pa.table({"_id": ["same", "other", "same"], "sku": ["1", "2", "3"]})
    with pytest.raises(ValidationError, match=r"refused by .*'_id': 'same'"):
        target.write(duplicate_ids, "overwrite")
    assert sorted(d["sku"] for d in client.shop.products.find()) == ["x", "y"]
    assert [c for c in client.shop.list_collection_names() if "__etl_new_" in c] == []
    # no rows (the source has none now): an empty collection is swapped in (the rename failed: nothing to rename)
    target.write(pa.RecordBatchReader.from_batches(pa.schema([]), []), "overwrite")
    assert "products" in client.shop.list_collection_names() and client.shop.products.count_documents({}) == 0


def test_io_manager_writes_and_reads_assets(mongo):
    uri, client = mongo

    @dg.asset(io_manager_key="mongo")
    def accounts() -> pa.Table:
        return ROWS.select(["user_id", "name"])

    @dg.asset
    def account_count(accounts: pa.Table) -> int:
        return accounts.num_rows

    manager = MongoDBIOManager(uri=uri, database="warehouse")
    result = dg.materialize([accounts, account_count], resources={"mongo": manager})
    assert result.success and result.output_for_node("account_count") == 3
    metadata = result.asset_materializations_for_node("accounts")[0].metadata
    assert metadata["records_written"].value == 3 and "warehouse.accounts" in metadata["target"].value
    assert client.warehouse.accounts.count_documents({}) == 3


def test_unreachable_server_and_bad_settings():
    with silent_server() as port:
        started = time.monotonic()
        with pytest.raises(DestinationConnectionError, match=f"cannot reach mongodb://127.0.0.1:{port}"):
            MongoTarget(port=port, database="d", collection="c", timeout_seconds=1).write(ROWS)
        assert time.monotonic() - started < 10
    with pytest.raises(ConfigurationError, match="unknown config key"):
        WriterFactory.create_writer("mongodb", {"database": "d", "hostname": "x"})
    with pytest.raises(ConfigurationError, match="needs key columns"):
        MongoTarget(database="d", collection="c").write(ROWS, "upsert")


def test_reader_streams_documents_incrementally_and_through_client_factory(mongo):
    import duckdb

    from etl_platform.readers import ClientFactory
    from etl_platform.sources import MongoSource, ingest

    uri, client = mongo
    client.crm.profiles.drop()
    client.crm.profiles.insert_many([{"_id": i, "name": f"p{i}", "updated": datetime(2024, 1, 1, i % 24,
                                      tzinfo=timezone.utc), "address": {"city": "Oslo"}} for i in range(250)])
    source = MongoSource(uri=uri, database="crm", collection="profiles", cursor_field="updated", batch_size=100)
    warehouse = duckdb.connect()
    first = ingest(warehouse, source, "profiles")
    assert first.rows_written == 250 and first.batches >= 3
    assert warehouse.execute("SELECT _record->>'$.address.city' FROM bronze.profiles WHERE _id = '7'").fetchone() == \
        ("Oslo",)
    client.crm.profiles.update_one({"_id": 7}, {"$set": {"name": "seven", "updated": datetime(2024, 1, 2,
                                                                                               tzinfo=timezone.utc)}})
    second = ingest(warehouse, source, "profiles")
    assert second.rows_read == 11  # the 10 documents at the mark (>=) and the updated one; none doubled
    assert warehouse.execute("SELECT count(*), max(CASE WHEN _id = '7' THEN _record->>'$.name' END) "
                             "FROM bronze.profiles").fetchone() == (250, "seven")

    reader = ClientFactory.create_client('mongodb', {'uri': uri, 'database': 'crm'})
    with reader:
        raw_data = reader.execute_query({'collection': 'profiles', 'filter': {'_id': {'$lt': 3}}})
    assert [d["name"] for d in raw_data] == ["p0", "p1", "p2"]


def test_reader_types_nested_documents_as_structs_and_flattens_paths(mongo):
    """``columns`` turns documents into typed Arrow columns: a sub-document as a struct, an array as a list, an
    inner field by its dotted path, Decimal128 as a decimal, ObjectId as text; a document whose value does not fit
    is quarantined naming the path, the rest land."""
    import duckdb
    from bson import Decimal128, ObjectId

    from etl_platform import errors
    from etl_platform.sources import MongoSource, ingest

    uri, client = mongo
    client.crm.orders.drop()
    owner = ObjectId()
    client.crm.orders.insert_many([
        {"_id": 1, "total": Decimal128("10.50"), "placed": datetime(2024, 3, 1, 9, tzinfo=timezone.utc),
         "ship": {"city": "Oslo", "zip": "0150", "geo": {"lat": 59.9}}, "tags": ["gift", "rush"], "owner": owner},
        {"_id": 2, "total": Decimal128("7.00"), "placed": datetime(2024, 3, 2, tzinfo=timezone.utc),
         "ship": {"city": "Bergen"}, "tags": []},
    ])
    source = MongoSource(uri=uri, database="crm", collection="orders", columns={
        "total": "DECIMAL(12,2)", "placed": "TIMESTAMPTZ", "ship": "STRUCT(city VARCHAR, zip VARCHAR)",
        "ship.geo.lat": "DOUBLE", "tags": "VARCHAR[]", "owner": "VARCHAR"})
    table = source.read_table()
    assert table.schema.field("ship").type == pa.struct([("city", pa.string()), ("zip", pa.string())])
    assert table.schema.field("total").type == pa.decimal128(12, 2)
    assert table.column_names[:7] == ["_id", "total", "placed", "ship", "ship_geo_lat", "tags", "owner"]
    rows = table.sort_by("_id").to_pylist()
    assert [r["_id"] for r in rows] == ["1", "2"]
    assert rows[0]["ship"] == {"city": "Oslo", "zip": "0150"} and rows[1]["ship"] == {"city": "Bergen", "zip": None}
    assert rows[0]["ship_geo_lat"] == 59.9 and rows[1]["ship_geo_lat"] is None
    assert rows[0]["tags"] == ["gift", "rush"] and rows[0]["owner"] == str(owner)
    assert rows[0]["total"] == Decimal("10.50")

    client.crm.orders.insert_one({"_id": 3, "total": "not a number", "placed": datetime(2024, 3, 3, tzinfo=timezone.utc)})
    with pytest.raises(errors.ConfigurationError, match="1 record.* first at orders:3: field total"):
        source.read_table()  # the strict read: no quarantine to put it in
    warehouse = duckdb.connect()
    result = ingest(warehouse, source, "orders")
    assert (result.rows_written, result.rows_quarantined) == (2, 1)
    reason, = warehouse.execute("SELECT reason FROM bronze._source_quarantine").fetchone()
    assert reason.startswith("field total (column total): value 'not a number' cannot be held as decimal128(12, 2)")
    assert warehouse.execute("SELECT ship.city FROM bronze.orders ORDER BY _id").fetchall() == [("Oslo",), ("Bergen",)]

    with pytest.raises(errors.ConfigurationError, match=r"mongodb: columns: ship.city: 'STRUCTURE\(x\)' is not a SQL type"):
        MongoSource(uri=uri, database="crm", collection="orders", columns={"ship.city": "STRUCTURE(x)"}).column_types()
    with pytest.raises(errors.ConfigurationError, match=r"'ship_city' and 'ship.city' both become column 'ship_city'"):
        MongoSource(uri=uri, database="crm", collection="orders",
                    columns={"ship.city": "VARCHAR", "ship_city": "VARCHAR"}).column_types()


def test_a_document_over_16_mib_is_named_and_an_overwrite_leaves_the_collection(mongo):
    """pymongo refuses a document over the server's BSON limit (16 MiB) before sending it; the error names the
    document's key and its largest field, and the overwrite's new collection is dropped."""
    uri, client = mongo
    target = MongoTarget(uri=uri, database="sizes", collection="docs")
    target.write(pa.table({"doc_id": [1], "body": ["small"]}), "overwrite")
    rows = pa.table({"doc_id": [2, 3], "body": ["fine", "x" * (17 * 1024 * 1024)]})
    with pytest.raises(ValidationError, match=r"mongodb: the document \{'_id': ObjectId\('[0-9a-f]+'\)\} is "
                                              r"17,8\d\d,\d\d\d bytes, over the 16,777,216-byte limit of one "
                                              r"document; largest fields: body \(~17,825,792 bytes\)"):
        target.write(rows, "overwrite")
    assert [d["body"] for d in client.sizes.docs.find()] == ["small"]
    assert [name for name in client.sizes.list_collection_names() if "etl_new" in name] == []
    with pytest.raises(ValidationError, match=r"the document \{'doc_id': 3\} is 17,8\d\d,\d\d\d bytes, over the "
                                              r"16,777,216-byte limit"):
        target.write(rows, "upsert", ["doc_id"])
    # An unordered upsert is not atomic: the batch's other documents land, the refused one is named.
    assert sorted(d["body"] for d in client.sizes.docs.find()) == ["fine", "small"]


def test_a_collection_left_by_a_killed_overwrite_is_dropped_by_the_next(mongo):
    """Issue 20, item 9: a killed overwrite left `<name>__etl_new_*` forever. The next overwrite of the same name
    drops those of writers that are gone; a writer still at work keeps its own."""
    import signal
    import subprocess
    import sys

    from etl_platform_tests.test_opensearch import STALLING_OVERWRITE, _killed_writer

    uri, client = mongo
    database = client["leftovers"]
    target = MongoTarget(uri=uri, database="leftovers", collection="catalog")
    script = STALLING_OVERWRITE.format(module="mongodb", target="MongoTarget",
                                       settings=f"uri={uri!r}, database='leftovers', collection='catalog', batch_size=2")

    def staging():
        return sorted(n for n in database.list_collection_names() if n.startswith("catalog__etl_new_"))

    _killed_writer(script, lambda: len(staging()) == 1)
    assert len(staging()) == 1  # left behind
    target.write(pa.table({"sku": ["new"]}), "overwrite")
    assert staging() == [] and database["catalog"].count_documents({}) == 1
    alive = subprocess.Popen([sys.executable, "-c", script])  # a writer still at work keeps its collection
    try:
        deadline = time.monotonic() + 60
        while not any(n.endswith(f"-{alive.pid}") for n in staging()):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        working = staging()
        target.write(pa.table({"sku": ["newer"]}), "overwrite")
        assert staging() == working and database["catalog"].find_one()["sku"] == "newer"
    finally:
        alive.send_signal(signal.SIGKILL)
        alive.wait(30)
