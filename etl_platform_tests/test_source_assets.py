"""Sources in Dagster: the README's example (PostgreSQL → bronze → silver → S3 parquet) materialized with real
resources, and the sensors that start source assets."""

from __future__ import annotations

import importlib.util
import json

import dagster as dg
import pika
import psycopg
import pyarrow.parquet as pq
import pytest
import s3fs

from etl_platform.errors import ConfigurationError
from etl_platform.sources import FileSource, RabbitMQSource, source_asset, source_sensor
from etl_platform.sources.assets import QUARANTINE_CHECK
from etl_platform.warehouse import DuckDBWarehouse
from etl_platform_tests.conftest import check_results
from etl_platform_tests.servers import REPO, moto_s3_bucket, require_service

PG = "postgresql://postgres@127.0.0.1:5432/test"


def _load_example():
    spec = importlib.util.spec_from_file_location("postgres_to_s3", REPO / "examples/postgres_to_s3/definitions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.defs


ORDERS = "etl_test_example.orders"  # the suite's own schema: never the public.orders the README tells users to make


@pytest.fixture
def orders_table(monkeypatch):
    require_service("PostgreSQL", 5432)
    monkeypatch.setenv("ORDERS_PG_TABLE", ORDERS)
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS etl_test_example")
        conn.execute(f"DROP TABLE IF EXISTS {ORDERS}")
        conn.execute(f"CREATE TABLE {ORDERS} (id int PRIMARY KEY, customer text, amount numeric(10,2), "
                     "status text, updated_at timestamptz)")
        conn.execute(f"INSERT INTO {ORDERS} SELECT g, ' customer ' || (g % 7), g * 1.25, 'NEW', "
                     "'2024-05-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 500) g")
        conn.execute(f"UPDATE {ORDERS} SET amount = NULL WHERE id = 3")
        yield conn
        conn.execute(f"DROP TABLE IF EXISTS {ORDERS}")


def _read_parquet(fs, folder: str):
    fs.invalidate_cache()  # the listing of the run before is cached
    (path,) = fs.find(folder)
    with fs.open(path, "rb") as handle:
        return pq.read_table(handle)


def test_readme_example_postgres_to_bronze_to_silver_to_s3(platform, orders_table, monkeypatch):
    with moto_s3_bucket("lake") as endpoint:
        for name, value in {"ORDERS_PG_HOST": "127.0.0.1", "ORDERS_PG_DATABASE": "test", "ORDERS_PG_USER": "postgres",
                            "ORDERS_PG_PASSWORD": "unused-with-trust-auth", "ORDERS_EXPORT_BUCKET": "lake",
                            "S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "k",
                            "AWS_SECRET_ACCESS_KEY": "s"}.items():
            monkeypatch.setenv(name, value)
        defs = _load_example()
        job = defs.resolve_implicit_global_asset_job_def()
        instance = dg.DagsterInstance.ephemeral()

        first = job.execute_in_process(instance=instance)
        assert first.success
        bronze = first.asset_materializations_for_node("bronze__orders")[0].metadata
        assert bronze["rows_read"].value == 500 and bronze["dagster/row_count"].value == 500
        assert bronze["state_after"].value == {"cursor": {"datetime": "2024-05-01T08:20:00+00:00"}}
        assert "unused-with-trust-auth" not in json.dumps({k: str(v) for k, v in bronze.items()})
        assert check_results(first)[f"bronze/orders:{QUARANTINE_CHECK}"].passed

        fs = s3fs.S3FileSystem(key="k", secret="s", endpoint_url=endpoint)
        exported = _read_parquet(fs, "lake/exports/orders")
        assert exported.num_rows == 499 and str(exported.schema.field("amount").type) == "decimal128(10, 2)"
        assert exported.column("customer")[0].as_py() == "customer 1"

        orders_table.execute(f"UPDATE {ORDERS} SET status = 'PAID', updated_at = '2024-05-01 08:10:30+00' "
                             "WHERE id = 480")
        orders_table.execute(f"INSERT INTO {ORDERS} VALUES (501, 'late', 9.99, 'NEW', '2024-05-01 09:00:00+00')")
        second = job.execute_in_process(instance=instance)
        bronze = second.asset_materializations_for_node("bronze__orders")[0].metadata
        assert bronze["rows_read"].value == 62  # the hour of lookback before the mark, and the new row
        assert bronze["dagster/row_count"].value == 501
        exported = _read_parquet(fs, "lake/exports/orders").to_pylist()
        assert len(exported) == 500 and {r["order_id"]: r["status"] for r in exported}[480] == "paid"


def test_a_failed_source_run_names_the_problem_and_keeps_the_state(platform, orders_table):
    from etl_platform.sources import PostgresSource

    asset = source_asset("orders", source_key="orders_db")
    good = PostgresSource(database="test", table=ORDERS, cursor_column="updated_at")
    resources = {**platform.resources(), "orders_db": good}
    assert dg.materialize([asset], resources=resources).success
    state = platform.scalar("SELECT state FROM bronze._source_state WHERE source = 'orders'")

    broken = {**resources, "orders_db": PostgresSource(database="test", table="public.no_such_orders",
                                                       cursor_column="updated_at")}
    result = dg.materialize([asset], resources=broken, raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("bronze__orders").user_failure_data
    assert "no_such_orders" in failure.description
    assert platform.scalar("SELECT state FROM bronze._source_state WHERE source = 'orders'") == state
    assert platform.scalar("SELECT count(*) FROM bronze.orders") == 500


def _only(tick):
    """The one run request, or the skip reason, of a sensor tick."""
    if tick.run_requests:
        (request,) = tick.run_requests
        return request
    return dg.SkipReason(tick.skip_message)


def test_file_sensor_requests_one_run_per_change(tmp_path):
    (tmp_path / "a.csv").write_text("id\n1\n")
    sensor = source_sensor("drops", source_key="drops")
    instance = dg.DagsterInstance.ephemeral()
    resources = {"drops": FileSource(url=str(tmp_path))}
    definitions = dg.Definitions(assets=[source_asset("drops", source_key="drops")], sensors=[sensor],
                                 resources={**resources, "warehouse": DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))})

    def evaluate(cursor):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources,
                                     definitions=definitions) as context:
            return _only(sensor.evaluate_tick(context)), context.cursor

    first, cursor = evaluate(None)
    assert isinstance(first, dg.RunRequest) and first.tags["etl_platform/source"] == "drops"
    again, same = evaluate(cursor)
    assert isinstance(again, dg.SkipReason) and same == cursor
    (tmp_path / "b.csv").write_text("id\n2\n")
    changed, _ = evaluate(cursor)
    assert isinstance(changed, dg.RunRequest) and changed.run_key != first.run_key


def test_a_file_that_cannot_be_read_blocks_what_is_downstream_until_fixed_unless_bad_files_is_reject(
        tmp_path, monkeypatch):
    """Issue 20's leftover: a file source quarantined an unreadable file with a warning and the assets downstream
    went on, with no way to stop them as the landing zone's `bad_files: block` does. Now, by the same setting
    (FileSource.bad_files, else $ETL_PLATFORM_BAD_FILES, else block), the source's blocking check fails as an ERROR
    naming the file at every run while it is there, and what is downstream waits; the other files land either
    way. Fixed, it lands and the check passes; under `reject` the check warns and downstream goes on."""
    monkeypatch.delenv("ETL_PLATFORM_BAD_FILES", raising=False)
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "good.csv").write_text("id,v\n1,a\n")
    (drops / "latin.csv").write_bytes("id,v\n2,café\n".encode("latin-1"))

    @dg.asset(deps=[dg.AssetKey(["bronze", "drops"])])
    def downstream() -> None:
        return None

    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    instance = dg.DagsterInstance.ephemeral()

    def run(**settings):
        result = dg.materialize([source_asset("drops", source_key="drops"), downstream], instance=instance,
                                resources={"drops": FileSource(url=str(drops), **settings), "warehouse": warehouse},
                                raise_on_error=False)
        check = check_results(result)[f"bronze/drops:{QUARANTINE_CHECK}"]
        ran_downstream = any(e.asset_key == downstream.key for e in result.get_asset_materialization_events())
        return check, ran_downstream

    def landed() -> list[tuple]:
        with warehouse.connect() as conn:
            return conn.execute("SELECT id, v FROM bronze.drops ORDER BY id").fetchall()

    for attempt in ("first run", "file unchanged"):  # blocked at every run while the file is there
        check, ran_downstream = run()
        assert (check.passed, check.severity, ran_downstream) == (False, dg.AssetCheckSeverity.ERROR, False), attempt
        assert "latin.csv: the file cannot be read as csv" in check.description and "bad_files" in check.description
        assert [f["file"] for f in check.metadata["unreadable_files"].value] == ["latin.csv"]
        assert landed() == [("1", "a")]  # the other file landed
    check, ran_downstream = run(bad_files="reject")
    assert (check.passed, check.severity, ran_downstream) == (True, dg.AssetCheckSeverity.WARN, True)  # nothing new
    monkeypatch.setenv("ETL_PLATFORM_BAD_FILES", "reject")  # the landing zone's variable says the same
    assert run()[1]
    monkeypatch.delenv("ETL_PLATFORM_BAD_FILES")
    (drops / "latin.csv").write_text("id,v\n2,café\n", encoding="utf-8")  # fixed: read again, lands
    check, ran_downstream = run()
    assert (check.passed, ran_downstream) == (True, True) and landed() == [("1", "a"), ("2", "café")]
    (drops / "broken.csv.gz").write_bytes(b"\x1f\x8b not really gzip")
    check, ran_downstream = run(bad_files="reject")
    assert (check.passed, check.severity, ran_downstream) == (False, dg.AssetCheckSeverity.WARN, True)
    with pytest.raises(ConfigurationError, match="FileSource.bad_files: 'skip' is not one of block, reject"):
        FileSource(url=str(drops), bad_files="skip").bad_file_policy


def test_queue_sensor_requests_a_run_while_messages_wait():
    require_service("RabbitMQ", 5672)
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    channel = connection.channel()
    channel.queue_declare("etl_sensor_test")
    channel.queue_purge("etl_sensor_test")
    try:
        sensor = source_sensor("events", source_key="events")
        resources = {"events": RabbitMQSource(queue="etl_sensor_test", password="guest")}
        instance = dg.DagsterInstance.ephemeral()
        definitions = dg.Definitions(assets=[source_asset("events", source_key="events")], sensors=[sensor],
                                     resources={**resources, "warehouse": DuckDBWarehouse()})
        with dg.build_sensor_context(instance=instance, resources=resources, definitions=definitions) as context:
            quiet = _only(sensor.evaluate_tick(context))
        assert isinstance(quiet, dg.SkipReason)
        channel.basic_publish("", "etl_sensor_test", b"{}")
        with dg.build_sensor_context(instance=instance, resources=resources, definitions=definitions) as context:
            busy = _only(sensor.evaluate_tick(context))
        assert isinstance(busy, dg.RunRequest) and busy.tags["messages_waiting"] == "1"
    finally:
        channel.queue_delete("etl_sensor_test")
        connection.close()


def test_one_connection_declared_once_serves_many_streams(tmp_path, monkeypatch):
    """Issue 22: the connection's settings (here the database file, from the environment through dg.EnvVar) are
    given once; each asset's resource is a stream of it. A setting the reader lacks is refused, naming it."""
    import sqlite3

    from etl_platform.errors import ConfigurationError
    from etl_platform.sources import SQLiteSource

    database = tmp_path / "crm.sqlite"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount INTEGER)")
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(1, 10), (2, 20), (3, 30)])
        conn.executemany("INSERT INTO customers VALUES (?, ?)", [(1, "a"), (2, "b")])
    monkeypatch.setenv("CRM_SQLITE_PATH", str(database))
    crm = SQLiteSource(path=dg.EnvVar("CRM_SQLITE_PATH"))
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    result = dg.materialize(
        [source_asset("crm_orders"), source_asset("crm_customers")],
        resources={"crm_orders_source": crm.stream(table="orders", primary_key=["id"]),
                   "crm_customers_source": crm.stream(table="customers", primary_key=["id"]), "warehouse": warehouse})
    assert result.success
    with warehouse.connect() as session:
        assert session.execute("SELECT count(*) FROM bronze.crm_orders").fetchone()[0] == 3
        assert session.execute("SELECT count(*) FROM bronze.crm_customers").fetchone()[0] == 2
    with pytest.raises(ConfigurationError, match="sqlite: tabel is not a setting of this reader; it takes .*table"):
        crm.stream(tabel="orders")
