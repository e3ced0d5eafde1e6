"""The plain-Python writers: the same datasets as the IO managers, without Dagster.

    from etl_platform.writers import WriterFactory, WriterBuilder

    with WriterFactory.create_writer("s3", {"bucket": "lake", "endpoint_url": url, "format": "jsonl"}) as writer:
        result = writer.write(records, key="events/2024-01-01")
    # {'success': True, 'records_written': 3, 'size_bytes': 512, 'files': 1, 'uris': [...], 's3_uri': 's3://...'}

    writer = (WriterBuilder().with_writer_type("gcs").add_config_param("bucket", "lake").build())

Failures raise ``ConfigurationError``, ``DestinationConnectionError`` or ``ValidationError`` (all
``DestinationError``) with the cause attached; a writer never returns ``{'success': False}``.
"""

from __future__ import annotations

from typing import Any

from etl_platform.destinations.dataset import Dataset
from etl_platform.destinations.errors import ConfigurationError
from etl_platform.destinations.options import KEYS as WRITE_OPTION_KEYS
from etl_platform.destinations.options import WriteOptions
from etl_platform.destinations.stores import STORES, Store
from etl_platform.destinations.tables import to_arrow
from etl_platform.errors import invalid_configuration

URI_KEYS = {"s3": "s3_uri", "azure_blob": "blob_url", "gcs": "gcs_uri", "local": "file_path", "csv": "file_path"}


class Writer:
    """Writes data (pyarrow.Table, pandas or pyspark DataFrame, list of dicts) as a dataset below ``key``."""

    def __init__(self, writer_type: str, store: Store, options: dict[str, Any]):
        self.writer_type = writer_type
        self.store = store
        self.options = WriteOptions.from_mapping(options, "csv" if writer_type == "csv" else "parquet")
        self._fs = None

    @property
    def file_format(self):
        return self.options.file_format

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._fs = None

    def write(self, data: Any, key: str, partition: dict[str, str] | None = None) -> dict[str, Any]:
        if not key or not key.strip("/"):
            raise ConfigurationError("key: a dataset path is required (e.g. 'events/2024-01-01')")
        dataset = Dataset(self.store, key, self.options.file_format, self.options.partition_by, self._fs)
        result = dataset.write(to_arrow(data), self.options.mode, partition, merge=self.options.merge)
        self._fs = dataset.fs
        return {
            "success": True, "records_written": result.records_written, "size_bytes": result.size_bytes,
            "files": result.files, "uris": result.uris,
            URI_KEYS[self.writer_type]: result.uris[0] if len(result.uris) == 1 else dataset.store.uri(dataset.location),
        }


class WriterFactory:
    @staticmethod
    def writer_types() -> list[str]:
        return sorted(STORES)

    @staticmethod
    def create_writer(writer_type: str, config: dict[str, Any] | None = None) -> Writer:
        if writer_type not in STORES:
            raise ConfigurationError(
                f"writer type {writer_type!r} is unknown; use one of {', '.join(WriterFactory.writer_types())}"
            )
        config = dict(config or {})
        store_class = STORES[writer_type]
        store_keys = {info.alias or name for name, info in store_class.model_fields.items()}
        unknown = sorted(set(config) - store_keys - WRITE_OPTION_KEYS)
        if unknown:
            raise ConfigurationError(
                f"{writer_type}: unknown config key(s) {unknown}; allowed: {', '.join(sorted(store_keys | WRITE_OPTION_KEYS))}"
            )
        store_config = {k: v for k, v in config.items() if k in store_keys}
        missing = [info.alias or name for name, info in store_class.model_fields.items()
                   if info.is_required() and (info.alias or name) not in store_config]
        if missing:
            raise ConfigurationError(f"{writer_type}: missing required config key(s) {missing}")
        try:
            store = store_class(**store_config)
        except Exception as error:  # pydantic names the field and the problem; secrets are not echoed
            raise invalid_configuration(writer_type, error, ConfigurationError) from None
        return Writer(writer_type, store, {k: v for k, v in config.items() if k in WRITE_OPTION_KEYS})


class WriterBuilder:
    def __init__(self):
        self._type: str | None = None
        self._config: dict[str, Any] = {}

    def with_writer_type(self, writer_type: str) -> WriterBuilder:
        self._type = writer_type
        return self

    def add_config_param(self, key: str, value: Any) -> WriterBuilder:
        self._config[key] = value
        return self

    def build(self) -> Writer:
        if self._type is None:
            raise ConfigurationError(f"writer type: call with_writer_type() with one of {', '.join(sorted(STORES))}")
        return WriterFactory.create_writer(self._type, self._config)
