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
from etl_platform.destinations.mongodb import MongoDBIOManager, MongoTarget
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
