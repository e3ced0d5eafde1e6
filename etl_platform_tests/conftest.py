"""Shared fixtures: a private platform home (landing zone + warehouse file) and a pipeline runner.

The pipeline runs through ``dg.materialize`` with the real resources (a DuckDB file in a temporary
folder), as a user's run would.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from etl_platform.landing import LandingZone
from etl_platform.video_analytics import contract
from etl_platform.video_analytics.assets import RefreshPolicy, build_assets
from etl_platform.video_analytics.checks import QualityPolicy, build_asset_checks
from etl_platform.warehouse import DuckDBWarehouse

# Steps that talk to other systems retry connection failures (etl_platform/retries.py): kept on in the suite, with
# a short first delay so that a test of an unreachable server does not wait minutes. Set before any asset is built.
os.environ.setdefault("ETL_PLATFORM_STEP_RETRY_DELAY", "0.2")


def pytest_xdist_auto_num_workers(config) -> int:
    """``--numprocesses=auto`` (pyproject's addopts): one worker more than the cores. Much of the suite waits on
    servers it started (a Kafka group join, a Spark cluster's executors, an emulator's answer): with a worker per
    core the two cores of a test machine were busy 62% of the suite's 22 minutes. pyproject's ``--maxprocesses``
    still caps it."""
    return (os.cpu_count() or 1) + 1


# The files whose tests take minutes, longest first. xdist gives each worker whole files (``--dist=loadfile``) in
# collection order (``--no-loadscope-reorder``: by default it starts the files with the most tests first, which
# left the one-test Spark-cluster file, the suite's longest at ~6 minutes, to start 16 minutes in and end alone).
LONGEST_FILES = ("test_engines_spark_cluster.py", "test_faults.py", "test_incremental.py", "test_engines_spark.py")


def pytest_collection_modifyitems(config, items) -> None:
    rank = {name: number for number, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's own order is kept


@dataclass
class Platform:
    home: Path

    @property
    def landing(self) -> Path:
        return self.home / "landing" / contract.DOMAIN

    @property
    def warehouse_file(self) -> Path:
        return self.home / "warehouse.duckdb"

    def warehouse(self, **overrides) -> DuckDBWarehouse:
        return DuckDBWarehouse(**{"path": str(self.warehouse_file), "temp_directory": str(self.home / "tmp"),
                                  "memory_limit": "512MB", **overrides})

    def resources(self, landing_overrides: dict | None = None, **warehouse_overrides) -> dict:
        landing_overrides = landing_overrides or {}
        return {
            "warehouse": self.warehouse(**warehouse_overrides),
            "landing": LandingZone(root=str(self.home / "landing"), **{"settle_seconds": 0, **landing_overrides}),
            "quality_policy": QualityPolicy(), "refresh_policy": RefreshPolicy(),
        }

    # ---- landing files

    def write_text(self, name: str, text: str, encoding: str = "utf-8") -> Path:
        self.landing.mkdir(parents=True, exist_ok=True)
        path = self.landing / name
        path.write_bytes(text.encode(encoding))
        return path

    def write_csv(self, name: str, rows: list, header=None, bom: bool = False) -> Path:
        """Rows as dicts (missing keys are empty) or lists; header defaults to the entity's contract columns."""
        if header is None:
            header = contract.USERS_COLUMNS if name.startswith("users") else contract.SESSIONS_COLUMNS
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(c, "") for c in header] if isinstance(row, dict) else row)
        return self.write_text(name, ("\ufeff" if bom else "") + out.getvalue())

    def write_jsonl(self, name: str, lines: list[str]) -> Path:
        return self.write_text(name, "\n".join(lines) + "\n")

    # ---- running and reading

    def materialize(self, selection: str | None = None, raise_on_error: bool = True,
                    landing_overrides: dict | None = None, **warehouse_overrides):
        return dg.materialize(
            [*build_assets(), *build_asset_checks()],
            resources=self.resources(landing_overrides, **warehouse_overrides),
            selection=selection,
            raise_on_error=raise_on_error,
        )

    def rows(self, sql: str, params: list | None = None) -> list[dict]:
        with duckdb.connect(str(self.warehouse_file), read_only=True) as conn:
            cursor = conn.execute(sql, params or [])
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def scalar(self, sql: str):
        return next(iter(self.rows(sql)[0].values()))


@pytest.fixture
def platform(tmp_path: Path, monkeypatch) -> Platform:
    monkeypatch.setenv("ETL_PLATFORM_HOME", str(tmp_path))
    return Platform(tmp_path)


WRITE_ID = re.compile(r"part-[0-9a-f]+-[0-9a-f]{8}-(\d{5})")


def without_write_ids(names):
    """File names with each write's unique id taken out (``part-<id>-00000.parquet`` -> ``part-00000.parquet``)."""
    return sorted(WRITE_ID.sub(r"part-\1", str(name)) for name in names)


def only_file(folder: Path, pattern: str = "*.parquet") -> Path:
    (path,) = sorted(folder.glob(pattern))
    return path


def sql_without_users_dedup(tmp_path: Path) -> Path:
    """A copy of the SQL folder whose silver/users forgets to deduplicate (the primary-key check must catch it)."""
    from etl_platform import settings

    sql_dir = tmp_path / "sql"
    shutil.copytree(settings.sql_root(), sql_dir)
    users_sql = sql_dir / "video_analytics" / "silver" / "users.sql"
    text = users_sql.read_text()
    start = text.index("QUALIFY row_number()")
    users_sql.write_text(text[:start] + ";" + text[text.index("= 1;", start) + len("= 1;"):])
    return sql_dir


def defs_load_error(sandbox) -> str:
    """Loading a components sandbox's defs folder must fail: the text of every error in the chain (Dagster's
    component loader wraps the component's own error)."""
    with pytest.raises(Exception) as raised:
        with sandbox.build_all_defs():
            pass
    chain, error = [], raised.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    return "\n".join(chain)


def materialized_keys(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """``{'asset/key:check_name': evaluation}`` for every check evaluated in the run."""
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e for e in result.get_asset_check_evaluations()}


@pytest.fixture
def postgres_url():
    """A fresh database on the machine's PostgreSQL (its own name: no user's schema is touched), dropped after."""
    import psycopg

    from etl_platform_tests.servers import require_service

    require_service("PostgreSQL", 5432)
    server, name = "postgresql://postgres@127.0.0.1:5432", f"etl_engines_{os.getpid()}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    yield f"{server}/{name}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def spark_session():
    """One local Spark session for the whole suite (starting one costs about 10 s)."""
    from pyspark import sql as pyspark_sql

    session = (pyspark_sql.SparkSession.builder.master("local[2]").appName("etl_platform_tests")
               .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "4").getOrCreate())
    yield session
    session.stop()


@pytest.fixture
def rabbit_queue():
    """A queue of its own on the machine's RabbitMQ: ``(name, publish(bodies, with_ids=True), channel)``."""
    import pika

    from etl_platform_tests.servers import require_service

    require_service("RabbitMQ", 5672)
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", credentials=pika.PlainCredentials(
        "guest", "guest")))
    channel = connection.channel()
    name = f"etl_test_{uuid.uuid4().hex[:8]}"
    channel.queue_declare(name)

    def publish(bodies, with_ids=True):
        for body in bodies:
            properties = pika.BasicProperties(message_id=f"m-{uuid.uuid4().hex}" if with_ids else None)
            channel.basic_publish("", name, body, properties)

    yield name, publish, channel
    channel.queue_delete(name)
    connection.close()
