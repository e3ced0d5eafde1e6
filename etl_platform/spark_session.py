"""The one Spark session of a process, shared by the Spark warehouse engine and the upsert's pyspark backend.

Both take dagster-pyspark's ``PySparkResource`` (its ``spark_config`` is Spark's own settings, e.g.
``{"spark.master": "spark://host:7077"}``); without one they use the session already running, or start a local one.
Spark keeps one session per process (``getOrCreate``), so whoever asks first decides the JVM settings
(``spark.master``, ``spark.driver.memory``); the SQL settings the platform needs are set on every use.
"""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field

from etl_platform import settings
from etl_platform.errors import ConfigurationError
from etl_platform.extras import require

# Imported only where Spark is used: without the [spark] extra, the error names the pip install.
PySparkResource = require("dagster_pyspark", "Spark (the Spark warehouse engine, the pyspark backends)").PySparkResource

MASTER_ENV = "ETL_SPARK_MASTER"
DEFAULT_MASTER = "local[*]"

# Settings fixed when the JVM starts (a later session in the same process keeps the first one's).
START_SETTINGS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.catalogImplementation": "in-memory",
}
# SQL settings the platform relies on (UTC wall clock, timestamps Parquet readers outside Spark understand).
SQL_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.mapKeyDedupPolicy": "LAST_WIN",
}


class SparkMasterError(ConfigurationError):
    """spark.master names a cluster that cannot be reached."""


def spark_session(resource: Any | None = None, where: str = "spark_config['spark.master']"):
    """The process's Spark session: the one ``resource`` (a ``PySparkResource``) set up, else one started with
    its ``spark_config`` (master: the config's, else $ETL_SPARK_MASTER, else local[*])."""
    SparkSession = require("pyspark.sql", "Spark (the Spark warehouse engine, the pyspark backends)").SparkSession
    config = dict(getattr(resource, "spark_config", None) or {})
    configured = config.pop("spark.master", None)
    master = configured or os.environ.get(MASTER_ENV) or DEFAULT_MASTER
    ensure_master_reachable(master, where if configured else f"${MASTER_ENV}")
    existing = getattr(resource, "_spark_session", None) if resource is not None else None
    if existing is None:
        existing = SparkSession.getActiveSession()
    if existing is not None:
        return existing
    builder = SparkSession.builder.master(master)
    # Spark creates a folder per database under its warehouse dir (otherwise ./spark-warehouse); the platform's
    # tables all live at explicit locations, so this holds nothing but those empty folders.
    warehouse_dir = {"spark.sql.warehouse.dir": str(settings.platform_home() / "tmp" / "spark-warehouse")}
    for key, value in {**START_SETTINGS, **warehouse_dir, **SQL_SETTINGS, **config}.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as error:  # the JVM's own error (a bad setting, no Java): name the setting we were given
        raise SparkMasterError(f"Spark could not start with spark.master={master!r} ({where}): "
                               f"{str(error).strip().splitlines()[0][:300]}") from error
    session.sparkContext.setLogLevel("ERROR")
    _quiet_query_errors(session)
    return session


def _quiet_query_errors(session) -> None:
    """PySpark logs every failed query with its whole JVM stack to stderr; the error reaches the caller anyway,
    named with its file and statement, so that log is only noise."""
    import logging

    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)


def ensure_master_reachable(master: str, where: str, timeout_seconds: float = 5.0) -> None:
    """A ``spark://`` or ``sc://`` master must answer on its port: Spark itself retries for a minute or more."""
    if not master.startswith(("spark://", "sc://")):
        return
    for address in master.split("://", 1)[1].split(","):
        parts = urlsplit("//" + address.split("/")[0])
        host, port = parts.hostname, parts.port or (7077 if master.startswith("spark://") else 15002)
        try:
            with socket.create_connection((host, port), timeout=timeout_seconds):
                return
        except OSError as error:
            last = f"{host}:{port}: {error.strerror or error}"
    raise SparkMasterError(f"The Spark master {master!r} ({where}) cannot be reached ({last})")


def apply_sql_settings(session) -> None:
    for key, value in SQL_SETTINGS.items():
        session.conf.set(key, value)


class SparkSessionResource(PySparkResource):
    """dagster-pyspark's ``PySparkResource`` starting its session the platform's way: a ``spark://`` master that
    does not answer is a clear error at once (Spark would retry for a minute), and the platform's settings apply."""

    spark_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Spark settings, e.g. {'spark.master': 'spark://host:7077', 'spark.executor.memory': '8g'}. "
                    f"Without spark.master: ${MASTER_ENV}, else {DEFAULT_MASTER}.",
    )

    def setup_for_execution(self, context) -> None:
        self._spark_session = spark_session(self)
