"""Readers: each system a Dagster resource streaming Arrow record batches (docs/sources.md).

``SOURCES`` maps each type name (as ``ClientFactory`` and YAML jobs spell it) to its resource class.
"""

from etl_platform.sources.assets import IngestConfig, source_asset, source_sensor
from etl_platform.sources.base import Extraction, LandingPlan, Rejected, Source, SourceBatch
from etl_platform.sources.cassandra import CassandraSource
from etl_platform.sources.files import FileSource
from etl_platform.sources.ingest import QUARANTINE_TABLE, STATE_TABLE, IngestResult, ingest
from etl_platform.sources.kafka import KafkaSource
from etl_platform.sources.mongodb import MongoSource
from etl_platform.sources.opensearch import OpenSearchSource
from etl_platform.sources.mssql import SqlServerSource
from etl_platform.sources.mysql import MySQLSource
from etl_platform.sources.postgres import PostgresSource
from etl_platform.sources.rabbitmq import RabbitMQSource
from etl_platform.sources.rest import RestApiSource
from etl_platform.sources.solr import SolrSource
from etl_platform.sources.sqlite import SQLiteSource
from etl_platform.sources.sqs import SQSSource

SOURCES: dict[str, type[Source]] = {
    "postgres": PostgresSource, "postgresql": PostgresSource,
    "mysql": MySQLSource, "mariadb": MySQLSource,
    "sqlite": SQLiteSource,
    "mssql": SqlServerSource, "sqlserver": SqlServerSource,
    "files": FileSource, "local": FileSource, "s3": FileSource, "azure_blob": FileSource, "gcs": FileSource,
    "rest": RestApiSource, "http": RestApiSource,
    "rabbitmq": RabbitMQSource,
    "sqs": SQSSource,
    "kafka": KafkaSource,
    "mongodb": MongoSource, "mongo": MongoSource,
    "opensearch": OpenSearchSource,
    "solr": SolrSource,
    "cassandra": CassandraSource,
}

__all__ = [
    "SOURCES", "Source", "SourceBatch", "Extraction", "LandingPlan", "Rejected", "IngestResult", "IngestConfig",
    "ingest", "source_asset", "source_sensor", "STATE_TABLE", "QUARANTINE_TABLE", "FileSource", "KafkaSource",
    "SqlServerSource", "MySQLSource", "MongoSource", "OpenSearchSource", "SolrSource", "CassandraSource", "PostgresSource", "RabbitMQSource", "RestApiSource", "SQLiteSource", "SQSSource",
]
