"""Every destination type by name, in one place: what ``WriterFactory``, the exports and the docs offer.

Two kinds share one write protocol — ``write(data, mode, keys)`` where ``data`` is a stream of record batches
(``streams.batch_reader``) or a table:

- **file stores** (local, csv, s3, azure_blob, gcs): a ``Store`` plus a ``Dataset`` path, format and partitions;
- **databases and search engines** (mongodb, opensearch, solr, cassandra): a target model with
  ``write(data, mode, keys, <where>=..., log=...)``.

Each type names its settings class (what a config mapping is validated against) and its Dagster IO manager.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from etl_platform.connectors.cassandra.writer import CassandraIOManager, CassandraTarget
from etl_platform.destinations.errors import ConfigurationError
from etl_platform.destinations.io_managers import (
    AzureBlobDatasetIOManager,
    GCSDatasetIOManager,
    LocalDatasetIOManager,
    S3DatasetIOManager,
)
from etl_platform.connectors.mongodb.writer import MongoDBIOManager, MongoTarget
from etl_platform.connectors.opensearch.writer import OpenSearchIOManager, OpenSearchTarget
from etl_platform.connectors.solr.writer import SolrIOManager, SolrTarget
from etl_platform.destinations.stores import STORES, Store
from etl_platform.errors import invalid_configuration


@dataclass(frozen=True)
class DestinationType:
    name: str
    settings: type  # a Store subclass (file stores) or a target model (databases, search engines)
    io_manager: type
    write_arguments: tuple[str, ...] = ()  # the seed's write() keywords (databases): collection=, index=, ...
    place: str | None = None  # the setting naming where rows go (collection, index, table), if the type has one

    @property
    def is_file_store(self) -> bool:
        return issubclass(self.settings, Store)

    def place_of(self, config: dict[str, Any], name: str) -> str | None:
        """Where the rows of the object called ``name`` go in a target of this type: the place the connection names
        (``collection``, ``index``, ``table``), else the one named after the object; None where the type's place is
        the connection itself (Solr: the collection of its url)."""
        return (config.get(self.place) or name) if self.place else None

    def setting_names(self) -> set[str]:
        return {info.alias or name for name, info in self.settings.model_fields.items()}

    def check_keys(self, config: dict[str, Any], where: str) -> None:
        """An unknown config key is an error naming it and the allowed ones (values are not looked at)."""
        unknown = sorted(set(config) - self.setting_names())
        if unknown:
            raise ConfigurationError(f"{where}: unknown config key(s) {unknown}; allowed: "
                                     f"{', '.join(sorted(self.setting_names()))}")

    def build(self, config: dict[str, Any], where: str | None = None):
        """The store or target from ``config``; an unknown or missing key and a bad value are named (secrets never
        echoed)."""
        where = where or self.name
        self.check_keys(config, where)
        missing = [info.alias or name for name, info in self.settings.model_fields.items()
                   if info.is_required() and (info.alias or name) not in config]
        if missing:
            raise ConfigurationError(f"{where}: missing required config key(s) {missing}")
        try:
            return self.settings(**config)
        except Exception as error:  # pydantic names the field and the problem; secrets are not echoed
            raise invalid_configuration(where, error, ConfigurationError) from None


DESTINATIONS: dict[str, DestinationType] = {
    "local": DestinationType("local", STORES["local"], LocalDatasetIOManager),
    "csv": DestinationType("csv", STORES["csv"], LocalDatasetIOManager),
    "s3": DestinationType("s3", STORES["s3"], S3DatasetIOManager),
    "azure_blob": DestinationType("azure_blob", STORES["azure_blob"], AzureBlobDatasetIOManager),
    "gcs": DestinationType("gcs", STORES["gcs"], GCSDatasetIOManager),
    "mongodb": DestinationType("mongodb", MongoTarget, MongoDBIOManager, ("collection",), "collection"),
    "opensearch": DestinationType("opensearch", OpenSearchTarget, OpenSearchIOManager, ("index",), "index"),
    "solr": DestinationType("solr", SolrTarget, SolrIOManager, ("commit",)),
    "cassandra": DestinationType("cassandra", CassandraTarget, CassandraIOManager, ("table",), "table"),
}


def destination_type(name: str, what: str = "destination") -> DestinationType:
    if name not in DESTINATIONS:
        raise ConfigurationError(f"{what} {name!r} is unknown; use one of {', '.join(sorted(DESTINATIONS))}")
    return DESTINATIONS[name]
