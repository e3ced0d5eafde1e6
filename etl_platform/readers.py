"""The plain-Python readers: the same sources as the Dagster resources, without Dagster.

    from etl_platform.readers import ClientFactory

    reader = ClientFactory.create_client("postgres", {"host": "localhost", "database": "mydb",
                                                      "username": "user", "password": "pass"})
    with reader:
        rows = reader.execute_query("SELECT * FROM users WHERE country = %s", ["FR"])   # a list of dicts
        for batch in reader.iter_batches("SELECT * FROM events"):                        # pyarrow.RecordBatch
            ...

    reader = ClientFactory.create_from_config_file("source.yaml")   # {type: ..., config: {...}}, ${VAR} expanded

Errors are ``ConfigurationError`` (unknown type or key, bad value), ``ClientConnectionError`` (unreachable,
refused login, connection lost) and ``QueryError`` (missing table, bad query, unconvertible records); each
names the system and the host, never the password.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from etl_platform.config_files import load_config_file
from etl_platform.errors import ClientConnectionError, ConfigurationError, QueryError, invalid_configuration
from etl_platform.sources import SOURCES
from etl_platform.sources.base import LINEAGE_COLUMNS, Source
from etl_platform.sources.files import SOURCE_FILE_COLUMN, StoreSource

__all__ = ["ClientFactory", "Client", "ClientConnectionError", "ConfigurationError", "QueryError"]

# Spellings users bring from other tools, accepted as the field they mean.
ALIASES = {"user": "username", "dbname": "database", "db": "database", "bucket": "url_bucket",
           "container": "url_container", "file_path": "url"}
RECORD_COLUMNS = ("_record",)
HIDDEN_COLUMNS = (*LINEAGE_COLUMNS, SOURCE_FILE_COLUMN)


class Client:
    """A reader: ``execute_query`` for a list of dicts, ``iter_batches`` for Arrow batches of any size."""

    def __init__(self, client_type: str, source: Source):
        self.client_type = client_type
        self.source = source

    def __enter__(self) -> "Client":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> None:
        """Check the system answers (fails fast, within the timeout, with a clear error)."""
        check = getattr(self.source, "check_connection", None)
        if check is not None:
            check()

    def close(self) -> None:
        """Nothing is held between calls: each read opens and closes its own connection."""

    def iter_batches(self, query: Any = None, params: Any = None, state: dict | None = None
                     ) -> Iterator[pa.RecordBatch]:
        """The result as Arrow batches (memory bounded by ``batch_size``); a record that cannot be converted
        raises :class:`QueryError` naming its position. Queue messages are acknowledged once all are read."""
        source = self.source.for_query(query, params)
        with source.extract(state) as extraction:
            for batch in extraction:
                if batch.rejected:
                    first = batch.rejected[0]
                    raise QueryError(f"{source.describe()}: {len(batch.rejected)} record(s) could not be converted; "
                                     f"first at {first.position}: {first.reason}")
                if batch.data is not None and batch.data.num_rows:
                    yield batch.data
            extraction.acknowledge()

    def execute_query(self, query: Any = None, params: Any = None) -> list[dict[str, Any]]:
        """The whole result as a list of dicts (column → value); JSON records come back as dicts."""
        rows: list[dict[str, Any]] = []
        for batch in self.iter_batches(query, params):
            visible = batch.drop_columns([c for c in HIDDEN_COLUMNS if c in batch.schema.names])
            if RECORD_COLUMNS[0] in visible.schema.names:
                records = [json.loads(text) for text in visible.column(RECORD_COLUMNS[0]).to_pylist()]
                if "_id" in visible.schema.names:  # search hits: the id beside the document's fields
                    records = [{"_id": i, **r} if "_id" not in r else r
                               for i, r in zip(visible.column("_id").to_pylist(), records)]
                rows += records
            else:
                rows += visible.to_pylist()
        return rows


class ClientFactory:
    @staticmethod
    def client_types() -> list[str]:
        return sorted(SOURCES)

    @staticmethod
    def create_client(client_type: str, config: dict[str, Any] | None = None) -> Client:
        source_class = SOURCES.get(client_type)
        if source_class is None:
            raise ConfigurationError(f"reader type {client_type!r} is unknown; use one of "
                                     f"{', '.join(ClientFactory.client_types())}")
        config = {ALIASES.get(key, key): value for key, value in (config or {}).items()}
        if issubclass(source_class, StoreSource) and "url" not in config:
            config = _file_url(client_type, config)
        allowed = set(source_class.model_fields)
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ConfigurationError(f"{client_type}: unknown config key(s) {', '.join(unknown)}; allowed: "
                                     f"{', '.join(sorted(allowed))}")
        try:
            return Client(client_type, source_class(**config))
        except Exception as error:
            raise invalid_configuration(client_type, error) from None

    @staticmethod
    def create_from_config_file(path: str | Path) -> Client:
        """A reader from a YAML/JSON file: ``type`` and either ``config: {...}`` or the keys beside ``type``."""
        document = load_config_file(path)
        client_type = document.get("type") or document.get("source_type")
        if not client_type:
            raise ConfigurationError(f"{path}: `type` is missing (one of {', '.join(ClientFactory.client_types())})")
        config = document.get("config") if isinstance(document.get("config"), dict) else \
            {k: v for k, v in document.items() if k not in ("type", "source_type")}
        return ClientFactory.create_client(client_type, config)


def _file_url(client_type: str, config: dict) -> dict:
    """``bucket``/``container`` + ``prefix`` (the writers' keys) as the reader's url."""
    config = dict(config)
    prefix = str(config.pop("prefix", "")).strip("/")
    scheme = {"s3": "s3", "azure_blob": "abfs", "gcs": "gs"}.get(client_type)
    container = config.pop("url_bucket", None) or config.pop("url_container", None)
    if scheme and container:
        config["url"] = f"{scheme}://{container}" + (f"/{prefix}" if prefix else "")
    elif not scheme and config.get("base_path"):
        config["url"] = str(Path(config.pop("base_path")) / prefix)
    return config
