"""Which warehouse engine the definitions bind: ``ETL_PLATFORM_ENGINE`` = duckdb (default), postgres or spark.

PostgreSQL's address: ``ETL_PLATFORM_POSTGRES_URL``; when it is not set, seed 002's ``POSTGRES_HOST``,
``POSTGRES_PORT``, ``POSTGRES_DB``, ``POSTGRES_USER`` and ``POSTGRES_PASSWORD`` (each resolved when a run starts)."""

from __future__ import annotations

import os

import dagster as dg

from etl_platform.extras import require
from etl_platform.warehouse.base import EngineSettingError, Warehouse

ENGINE_ENV = "ETL_PLATFORM_ENGINE"
ENGINES = ("duckdb", "postgres", "spark")


def engine_name() -> str:
    """The warehouse engine the location binds: ``$ETL_PLATFORM_ENGINE`` (duckdb, postgres or spark; default duckdb)."""
    return (os.environ.get(ENGINE_ENV) or "duckdb").strip().lower()


def warehouse_for(engine: str | None, where: str = f"${ENGINE_ENV}") -> Warehouse:
    """The warehouse resource of ``engine`` (None or empty: DuckDB), configured from the environment through
    ``dg.EnvVar`` (read when a run starts, not here); an unknown name fails naming ``where`` and the choices."""
    name = (engine or "duckdb").strip().lower()
    if name == "duckdb":
        from etl_platform.warehouse.duckdb_warehouse import DuckDBWarehouse

        return DuckDBWarehouse()
    if name == "postgres":
        require("psycopg", f"{where}={engine!r} (the PostgreSQL warehouse)")
        from etl_platform.warehouse.postgres_warehouse import SEED_ENV, URL_ENV, PostgresWarehouse

        if not os.environ.get(URL_ENV) and os.environ.get(SEED_ENV["host"]):
            # seed 002's POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DB, POSTGRES_USER, POSTGRES_PASSWORD (those set)
            settings = {field: dg.EnvVar.int(env) if field == "port" else dg.EnvVar(env)
                        for field, env in SEED_ENV.items() if os.environ.get(env)}
            return PostgresWarehouse(**settings)
        return PostgresWarehouse(url=dg.EnvVar(URL_ENV))
    if name == "spark":
        for module in ("pyspark", "dagster_pyspark"):
            require(module, f"{where}={engine!r} (the Spark warehouse)")
        from etl_platform.warehouse.spark_warehouse import SparkWarehouse

        return SparkWarehouse()
    raise EngineSettingError(f"{where} is {engine!r}: the warehouse engines are {', '.join(ENGINES)}")
