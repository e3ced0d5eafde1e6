"""Readers: each system a Dagster resource streaming Arrow record batches (docs/sources.md).

``SOURCES`` maps each type name (as ``ClientFactory`` and YAML jobs spell it) to its resource class.
"""

from __future__ import annotations

import importlib

# Bound now, not lazily: the function `ingest` has its module's name, and importing the submodule (which landing code
# does) would set the package's attribute `ingest` to the module before __getattr__ is ever asked.
from etl_platform.sources.ingest import QUARANTINE_TABLE, STATE_TABLE, IngestResult, ingest

# Where each public name lives. The modules are imported on first use (PEP 562), not with the package: every Dagster
# process loads the code location, which needs `sources.base` but not the thirteen readers and their clients.
_HOMES = {
    "IngestConfig": "assets", "source_asset": "assets", "source_sensor": "assets",
    "Extraction": "base", "LandingPlan": "base", "Rejected": "base", "Source": "base", "SourceBatch": "base",
    "FileSource": "files", "StoreSource": "files", "DeltaTableSource": "delta",
    # one package per system (etl_platform.connectors.<system>): its reader beside its connection and writer
    **{name: f"etl_platform.connectors.{system}.reader" for name, system in {
        "PostgresSource": "postgres", "MySQLSource": "mysql", "SQLiteSource": "sqlite", "SqlServerSource": "mssql",
        "RestApiSource": "rest", "RabbitMQSource": "rabbitmq", "SQSSource": "sqs", "KafkaSource": "kafka",
        "MongoSource": "mongodb", "CassandraSource": "cassandra", "OpenSearchSource": "opensearch",
        "SolrSource": "solr"}.items()},
}

#: Each type name (as ``ClientFactory`` and YAML jobs spell it) -> the name of its resource class.
SOURCE_CLASSES: dict[str, str] = {
    "postgres": "PostgresSource", "postgresql": "PostgresSource",
    "mysql": "MySQLSource", "mariadb": "MySQLSource",
    "sqlite": "SQLiteSource",
    "mssql": "SqlServerSource", "sqlserver": "SqlServerSource",
    "files": "FileSource", "local": "FileSource", "s3": "FileSource", "azure_blob": "FileSource", "gcs": "FileSource",
    "delta": "DeltaTableSource",
    "rest": "RestApiSource", "http": "RestApiSource",
    "rabbitmq": "RabbitMQSource",
    "sqs": "SQSSource",
    "kafka": "KafkaSource",
    "mongodb": "MongoSource", "mongo": "MongoSource",
    "opensearch": "OpenSearchSource",
    "solr": "SolrSource",
    "cassandra": "CassandraSource",
}


def __getattr__(name: str):
    if name == "SOURCES":  # type name -> resource class, every reader imported
        value = {type_name: __getattr__(class_name) for type_name, class_name in SOURCE_CLASSES.items()}
    elif name in _HOMES:
        home = _HOMES[name]
        value = getattr(importlib.import_module(home if "." in home else f"{__name__}.{home}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = [
    "SOURCES", "Source", "SourceBatch", "Extraction", "LandingPlan", "Rejected", "IngestResult", "IngestConfig",
    "ingest", "source_asset", "source_sensor", "STATE_TABLE", "QUARANTINE_TABLE", "FileSource", "DeltaTableSource", "KafkaSource",
    "SqlServerSource", "MySQLSource", "MongoSource", "OpenSearchSource", "SolrSource", "CassandraSource", "PostgresSource", "RabbitMQSource", "RestApiSource", "SQLiteSource", "SQSSource",
]
