"""Cassandra writer and reader at the driver boundary, and against a real cluster when ``ETL_TEST_CASSANDRA_HOSTS``
is set (host[,host...]; keyspace ``etl_test`` is created there).

No Cassandra installs on these machines. The boundary tests replace the driver's ``Cluster`` with a stand-in
(the only one in this file) that records every statement: the exact CQL, the bound values, the consistency
level, how many requests were in flight, and the ``fetch_size`` of reads.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pyarrow as pa
import pytest

from etl_platform.connectors.cassandra.writer import CassandraTarget
from etl_platform.destinations.errors import ValidationError
from etl_platform.sources import CassandraSource
from etl_platform.writers import WriterFactory


class StandInFuture:
    def __init__(self, session, error=None):
        self.session, self.error = session, error

    def result(self):
        self.session.in_flight -= 1
        if self.error:
            raise self.error
        return []


class StandInPrepared:
    def __init__(self, cql):
        self.cql, self.consistency_level = cql, None


class StandInResult:
    def __init__(self, pages, names):
        self.pages, self.column_names = list(pages), names
        self.current_rows = self.pages.pop(0) if self.pages else []

    @property
    def has_more_pages(self):
        return bool(self.pages)

    def fetch_next_page(self):
        self.current_rows = self.pages.pop(0)


class StandInSession:
    def __init__(self, log, pages=(), failing_values=()):
        self.log, self.pages, self.failing_values = log, pages, failing_values
        self.in_flight = self.most_in_flight = 0
        self.cluster = self
        self.row_factory = None

    def execute(self, statement, params=None):
        cql = getattr(statement, "query_string", statement)
        self.log.append(("execute", cql, params, getattr(statement, "fetch_size", None),
                         getattr(statement, "consistency_level", None)))
        return StandInResult(self.pages, ["id", "name"])

    def prepare(self, cql):
        self.log.append(("prepare", cql))
        return StandInPrepared(cql)

    def execute_async(self, prepared, values):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.log.append(("bind", values, prepared.consistency_level))
        error = RuntimeError("WriteTimeout: 1 replica of 2 responded") if values[0] in self.failing_values else None
        return StandInFuture(self, error)

    def shutdown(self):
        self.log.append(("shutdown",))


@pytest.fixture
def stand_in(monkeypatch):
    import cassandra.cluster

    state = {"log": [], "session": None, "pages": (), "failing": ()}

    class StandInCluster:
        def __init__(self, **settings):
            state["log"].append(("cluster", settings["contact_points"], settings["port"]))

        def connect(self, keyspace):
            state["log"].append(("connect", keyspace))
            state["session"] = StandInSession(state["log"], state["pages"], state["failing"])
            return state["session"]

    monkeypatch.setattr(cassandra.cluster, "Cluster", StandInCluster)
    return state


def test_writer_prepares_one_insert_and_bounds_requests_in_flight(stand_in):
    rows = pa.table({"id": pa.array(range(10), pa.int64()), "name": [f"n{i}" for i in range(10)],
                     "amount": pa.array([Decimal("1.50")] * 10, pa.decimal128(8, 2)),
                     "at": pa.array([datetime(2024, 1, 1)] * 10, pa.timestamp("us")),
                     "extra": pa.array([{"a": 1}] * 10)})
    target = CassandraTarget(hosts=["c1", "c2"], keyspace="shop", table="orders", concurrency=3,
                             consistency="QUORUM", create_table=True)
    result = target.write(rows, "upsert", ["id"])
    log = stand_in["log"]
    assert result.records_written == 10 and stand_in["session"].most_in_flight == 3
    assert log[0] == ("cluster", ["c1", "c2"], 9042) and log[1] == ("connect", "shop")
    assert log[2][1] == ('CREATE TABLE IF NOT EXISTS "shop"."orders" ("id" bigint, "name" text, "amount" decimal, '
                         '"at" timestamp, "extra" text, PRIMARY KEY ("id"))')
    assert log[3] == ("prepare", 'INSERT INTO "shop"."orders" ("id", "name", "amount", "at", "extra") '
                                 'VALUES (?, ?, ?, ?, ?)')
    binds = [entry for entry in log if entry[0] == "bind"]
    from cassandra import ConsistencyLevel

    assert binds[0] == ("bind", [0, "n0", Decimal("1.50"), datetime(2024, 1, 1, tzinfo=timezone.utc), '{"a": 1}'],
                        ConsistencyLevel.QUORUM)
    assert log[-1] == ("shutdown",)


def test_failed_rows_are_named_and_overwrite_truncates_first(stand_in):
    stand_in["failing"] = (3, 7)
    target = CassandraTarget(keyspace="shop", table="orders")
    with pytest.raises(ValidationError, match=r"2 row\(s\) could not be written .* \(8 were\): \{'id': 3\}: "
                                              r"RuntimeError: WriteTimeout"):
        target.write(pa.table({"id": list(range(10))}), "overwrite", ["id"])
    assert stand_in["log"][2][1] == 'TRUNCATE "shop"."orders"'
    stand_in["log"].clear()  # an overwrite with no rows (the source has none now) empties the table too
    assert target.write(pa.RecordBatchReader.from_batches(pa.schema([]), []), "overwrite", ["id"]
                        ).records_written == 0
    assert [entry[1] for entry in stand_in["log"] if entry[0] == "execute"] == ['TRUNCATE "shop"."orders"']


def test_reader_pages_with_fetch_size_and_the_seed_writer_form(stand_in):
    stand_in["pages"] = ([(1, "a"), (2, "b")], [(3, "c")])
    source = CassandraSource(keyspace="shop", table="users", batch_size=2, cursor_column="id")
    with source.extract({"cursor": 0}) as extraction:
        batches = [b.data for b in extraction]
    statement = [entry for entry in stand_in["log"] if entry[0] == "execute"][0]
    assert statement[1:4] == ('SELECT * FROM "shop"."users" WHERE "id" >= ? ALLOW FILTERING', [0], 2)
    assert [b.num_rows for b in batches] == [2, 1] and extraction.state == {"cursor": 3}

    writer = WriterFactory.create_writer('cassandra', {'hosts': ['localhost'], 'port': 9042,
                                                       'keyspace': 'mykeyspace', 'table': 'mytable',
                                                       'username': 'cassandra', 'password': 'cassandra'})
    with writer:
        result = writer.write([{"id": 1, "kind": "click"}], table='events')
    assert result["records_written"] == 1
    assert ("prepare", 'INSERT INTO "mykeyspace"."events" ("id", "kind") VALUES (?, ?)') in stand_in["log"]


@pytest.mark.skipif(not os.environ.get("ETL_TEST_CASSANDRA_HOSTS"), reason="ETL_TEST_CASSANDRA_HOSTS is not set")
def test_against_a_real_cluster():
    from cassandra.cluster import Cluster

    hosts = os.environ["ETL_TEST_CASSANDRA_HOSTS"].split(",")
    cluster = Cluster(hosts)
    cluster.connect().execute("CREATE KEYSPACE IF NOT EXISTS etl_test WITH replication = "
                              "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    cluster.shutdown()
    table = f"t_{uuid.uuid4().hex[:8]}"
    CassandraTarget(hosts=hosts, keyspace="etl_test", table=table, create_table=True, consistency="ONE").write(
        pa.table({"id": list(range(250)), "name": [f"n{i}" for i in range(250)]}), "upsert", ["id"])
    found = CassandraSource(hosts=hosts, keyspace="etl_test", table=table, batch_size=100,
                            consistency="ONE").read_table()
    assert found.num_rows == 250
    CassandraTarget(hosts=hosts, keyspace="etl_test", table=table, consistency="ONE").write(
        pa.RecordBatchReader.from_batches(pa.schema([]), []), "overwrite", ["id"])  # no rows: emptied
    assert CassandraSource(hosts=hosts, keyspace="etl_test", table=table, consistency="ONE").read_table().num_rows == 0
