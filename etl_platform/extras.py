"""Which optional install ("extra") each connector's library comes from, and the error when one is missing.

``pip install etl_platform`` holds what the main job needs (DuckDB, local files, the SQLite Dagster instance);
each family of connectors is an extra (pyproject.toml, docs/install.md): ``pip install 'etl_platform[postgres]'``,
``[aws]``, ..., or ``[all]``. A connector imports its library through :func:`require`, which names the extra to
install when the library is missing instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from etl_platform.errors import ConfigurationError

# The top-level module → the extra that installs it (one place: pyproject.toml's extras list the same families).
EXTRA_OF = {
    "psycopg": "postgres",
    "adbc_driver_postgresql": "postgres",
    "adbc_driver_manager": "postgres",
    "pymysql": "mysql",
    "pymssql": "mssql",
    "pika": "rabbitmq",
    "confluent_kafka": "kafka",
    "pymongo": "mongodb",
    "bson": "mongodb",
    "opensearchpy": "opensearch",
    "cassandra": "cassandra",
    "boto3": "aws",
    "botocore": "aws",
    "s3fs": "aws",
    "gcsfs": "gcp",
    "adlfs": "azure",
    "pyspark": "spark",
    "dagster_pyspark": "spark",
    "pandas": "pandas",
}


class MissingExtraError(ConfigurationError, ImportError):
    """A connector's library is not installed; the message names the ``pip install`` that adds it."""


def install_hint(module: str) -> str:
    extra = EXTRA_OF.get(module.partition(".")[0])
    return f"pip install 'etl_platform[{extra}]'" if extra else f"pip install {module.partition('.')[0]}"


def require(module: str, needed_by: str) -> ModuleType:
    """``import module`` for ``needed_by`` (what the user asked for, e.g. "PostgresSource"); when it is missing,
    a :class:`MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        top = module.partition(".")[0]
        if error.name is None or error.name.partition(".")[0] != top:
            raise  # the library is there but one of its own dependencies is not: its own error says which
        raise MissingExtraError(
            f"{needed_by} needs the Python package {top!r}, which is not installed: run `{install_hint(module)}` "
            "(or `pip install 'etl_platform[all]'` for every connector)"
        ) from None
