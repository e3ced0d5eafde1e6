"""Seed 000's plain-Python readers: ``ClientFactory`` as its examples use it, against the real servers."""

from __future__ import annotations

import json
import sqlite3
import uuid

import psycopg
import pyarrow as pa
import pytest

from etl_platform.readers import ClientConnectionError, ClientFactory, ConfigurationError, QueryError
from etl_platform_tests.servers import require_service


@pytest.fixture
def users_table():
    require_service("PostgreSQL", 5432)
    name = f"users_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1/test", autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id int, name text, email text)")
        conn.execute(f"INSERT INTO {name} SELECT g, 'user ' || g, 'u' || g || '@example.com' "
                     "FROM generate_series(1, 1200) g")
        yield name
        conn.execute(f"DROP TABLE {name}")


def test_seed_postgres_example_runs_as_written(users_table):
    pg_reader = ClientFactory.create_client('postgres', {
        'host': 'localhost',
        'database': 'test',
        'username': 'postgres',
        'password': 'pass',
    })
    with pg_reader:
        raw_data = pg_reader.execute_query(f"SELECT * FROM {users_table} ORDER BY id")
    assert len(raw_data) == 1200 and raw_data[0] == {"id": 1, "name": "user 1", "email": "u1@example.com"}

    with pg_reader:
        rows = pg_reader.execute_query(f"SELECT id FROM {users_table} WHERE name = %s", ["user 7"])
        batches = list(pg_reader.iter_batches(f"SELECT * FROM {users_table}"))
    assert rows == [{"id": 7}]
    assert all(isinstance(b, pa.RecordBatch) for b in batches) and sum(b.num_rows for b in batches) == 1200


def test_config_file_with_environment_variables(tmp_path, monkeypatch, users_table):
    config = tmp_path / "source.yaml"
    config.write_text("type: postgres\nconfig:\n  host: 127.0.0.1\n  database: test\n  username: postgres\n"
                      "  password: ${PG_TEST_PASSWORD}\n")
    with pytest.raises(ConfigurationError, match=r"config.password uses \$\{PG_TEST_PASSWORD\}, but the environment variable PG_TEST_PASSWORD is not set"):
        ClientFactory.create_from_config_file(config)
    monkeypatch.setenv("PG_TEST_PASSWORD", "from-the-env")
    reader = ClientFactory.create_from_config_file(config)
    assert reader.source.password == "from-the-env" and "from-the-env" not in repr(reader.source)
    with reader:
        assert reader.execute_query(f"SELECT count(*) AS n FROM {users_table}") == [{"n": 1200}]

    as_json = tmp_path / "source.json"
    as_json.write_text(json.dumps({"type": "sqlite", "path": str(tmp_path / "app.db")}))
    sqlite3.connect(tmp_path / "app.db").execute("CREATE TABLE t (a TEXT)").connection.commit()
    with ClientFactory.create_from_config_file(as_json) as reader:
        assert reader.execute_query("SELECT 'é' AS a") == [{"a": "é"}]


def test_unknown_types_and_keys_are_named_with_the_allowed_ones():
    with pytest.raises(ConfigurationError, match="reader type 'oracle' is unknown; use one of .*postgres"):
        ClientFactory.create_client("oracle", {})
    with pytest.raises(ConfigurationError, match=r"postgres: unknown config key\(s\) hostname; allowed: .*host"):
        ClientFactory.create_client("postgres", {"hostname": "x"})
    with pytest.raises(ConfigurationError, match="port: Input should be a valid integer"):
        ClientFactory.create_client("postgres", {"port": "many"})


def test_connection_errors_name_system_and_host_not_the_password():
    require_service("PostgreSQL", 5432)
    reader = ClientFactory.create_client("postgres", {"host": "127.0.0.1", "database": "test",
                                                      "username": "no_such_role", "password": "tops3cret"})
    with pytest.raises(ClientConnectionError) as error:
        with reader:
            pass
    assert "postgres" in str(error.value) and "127.0.0.1" in str(error.value) and "tops3cret" not in str(error.value)
    with pytest.raises(QueryError, match="no_such_table"):
        with ClientFactory.create_client("postgres", {"database": "test"}) as reader:
            reader.execute_query("SELECT * FROM no_such_table")


def test_file_and_rest_readers_return_records_as_dicts(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"x": 1, "nested": {"y": [1, 2]}}\n{"x": 2}\n')
    with ClientFactory.create_client("local", {"url": str(tmp_path)}) as reader:
        assert reader.execute_query("*.jsonl") == [{"x": 1, "nested": {"y": [1, 2]}}, {"x": 2}]
