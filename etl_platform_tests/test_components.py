"""Source streams and exports declared in a defs.yaml (etl_platform/sources/component.py, components.py), loaded
through Dagster's component machinery as a user's defs folder is, and run against real systems (a SQLite file, the
machine's PostgreSQL, the local disk)."""

from __future__ import annotations

import sqlite3

import dagster as dg
import duckdb
import pytest
import yaml
from dagster.components.testing import create_defs_folder_sandbox

from etl_platform_tests.conftest import defs_load_error
from etl_platform_tests.servers import require_service


def _defs_yaml(sandbox, folder: str, document: dict):
    path = sandbox.defs_folder_path / folder
    path.mkdir(parents=True)
    (path / "defs.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _assets(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    return [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]


def test_one_connection_many_streams_land_in_bronze(platform, tmp_path):
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as conn:
        conn.executescript("""
            CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL, updated_at TEXT);
            INSERT INTO orders VALUES (1, 9.5, '2024-01-01'), (2, 3.0, '2024-01-02');
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
            INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Edsger');
        """)
    document = {"type": "etl_platform.components.SourceStreams", "attributes": {
        "connection": {"type": "sqlite", "config": {"path": str(database)}},
        "streams": [
            {"name": "shop_orders", "config": {"table": "orders", "cursor_column": "updated_at",
                                               "primary_key": ["id"]}},
            {"name": "shop_customers", "config": {"table": "customers", "primary_key": ["id"]}},
        ],
        "sensor": True,
    }}
    with create_defs_folder_sandbox() as sandbox:
        _defs_yaml(sandbox, "shop", document)
        with sandbox.build_all_defs() as defs:
            assert {s.name for s in defs.sensors} == {"shop_orders_source_sensor", "shop_customers_source_sensor"}
            resources = {**defs.resources, "warehouse": platform.warehouse()}
            result = dg.materialize(_assets(defs), resources=resources)
            assert result.success
            with sqlite3.connect(database) as conn:
                conn.execute("INSERT INTO orders VALUES (3, 1.25, '2024-01-03')")
            assert dg.materialize(_assets(defs), resources=resources, selection="bronze/shop_orders").success
    assert platform.scalar("SELECT count(*) FROM bronze.shop_orders") == 3  # the second run: the new row only
    assert platform.scalar("SELECT count(*) FROM bronze.shop_customers") == 3


def test_a_secret_is_an_env_var_read_at_run_time_not_at_load(platform, monkeypatch):
    require_service("PostgreSQL", 5432)
    monkeypatch.setenv("ETL_TEST_COMPONENT_PG_PASSWORD", "never-in-the-definitions")
    document = {"type": "etl_platform.components.SourceStreams", "attributes": {
        "connection": {"type": "postgres", "config": {"host": "127.0.0.1", "database": "test",
                                                      "username": "postgres",
                                                      "password": "${ETL_TEST_COMPONENT_PG_PASSWORD}"}},
        "streams": [{"name": "component_probe", "config": {"query": "SELECT 1 AS one, 'x' AS two"}}],
    }}
    with create_defs_folder_sandbox() as sandbox:
        _defs_yaml(sandbox, "pg", document)
        with sandbox.build_all_defs() as defs:
            resource = defs.resources["component_probe_source"]
            assert isinstance(resource.password, dg.EnvVar)  # the name, not the value
            assert "never-in-the-definitions" not in repr(defs.resources) + repr(resource.__dict__)
            result = dg.materialize(_assets(defs), resources={**defs.resources, "warehouse": platform.warehouse()})
    assert result.success
    assert platform.rows("SELECT one, two FROM bronze.component_probe") == [{"one": 1, "two": "x"}]


@pytest.mark.parametrize("attributes, message", [
    ({"connection": {"type": "oracle"}, "streams": [{"name": "a"}]}, "connection type 'oracle' is not one of"),
    ({"connection": {"type": "sqlite", "config": {"path": "x.db"}}, "streams": [{"name": "a", "config": {"tabel": "t"}}]},
     "stream a: SQLiteSource has no setting(s) tabel"),
    ({"connection": {"type": "sqlite", "config": {"path": "db-${HOME}.db"}}, "streams": [{"name": "a"}]},
     "path: a variable must be the whole value"),
    ({"connection": {"type": "sqlite", "config": {"path": "x.db"}}, "streams": [{"name": "a"}, {"name": "a"}]},
     "stream names repeat"),
])
def test_a_bad_stream_fails_the_load_naming_it(attributes, message):
    with create_defs_folder_sandbox() as sandbox:
        _defs_yaml(sandbox, "bad", {"type": "etl_platform.components.SourceStreams", "attributes": attributes})
        text = defs_load_error(sandbox)
    assert message in text, text


def test_an_export_written_in_the_defs_yaml(platform, tmp_path):
    from etl_platform.video_analytics import demo_data

    demo_data.generate(platform.landing, sessions=500, seed=2, progress=False)
    assert platform.materialize().success
    document = {"type": "etl_platform.components.WarehouseExports", "attributes": {"exports": [
        {"name": "daily_csv", "table": "gold.daily_viewing", "destination": "local",
         "config": {"base_path": str(tmp_path / "out")}, "format": "csv"},
    ]}}
    with create_defs_folder_sandbox() as sandbox:
        _defs_yaml(sandbox, "exports", document)
        with sandbox.build_all_defs() as defs:
            assert [a.key.to_user_string() for a in _assets(defs)] == ["exports/daily_csv"]
            assert dg.materialize(_assets(defs), resources={"warehouse": platform.warehouse()}).success
    files = list((tmp_path / "out").rglob("*.csv"))
    assert files
    exported = duckdb.sql(f"SELECT count(*) FROM read_csv_auto({[str(f) for f in files]})").fetchall()[0][0]
    assert exported == platform.scalar("SELECT count(*) FROM gold.daily_viewing")


@pytest.mark.parametrize("component, asset", [("SourceStreams", "bronze/crm_orders"),
                                              ("WarehouseExports", "exports/daily_viewing_files")])
def test_scaffolding_writes_a_defs_yaml_that_loads(component, asset):
    """`dg scaffold defs etl_platform.components.<component> <folder>` writes a starter to edit; it loads as is."""
    import etl_platform.components as components

    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(component_cls=getattr(components, component))
        assert f".{component}\n" in (path / "defs.yaml").read_text()
        with sandbox.build_all_defs() as defs:
            assert [a.key.to_user_string() for a in _assets(defs)] == [asset]
