"""The plain-Python writers: the same datasets as the IO managers, without Dagster.

    from etl_platform.writers import WriterFactory, WriterBuilder

    with WriterFactory.create_writer("s3", {"bucket": "lake", "endpoint_url": url, "format": "jsonl"}) as writer:
        result = writer.write(records, key="custom/path/data.json")   # exactly that object, one upload
        result = writer.write(records)                               # <prefix>/YYYY/MM/DD/data_<time>_<id>.jsonl
        result = writer.write(records, key="events/2024-01-01")      # a dataset folder (no extension)
    # {'success': True, 'records_written': 3, 'size_bytes': 512, 'files': 1, 'uris': [...], 's3_uri': 's3://...'}

    WriterFactory.create_writer("csv", {"file_path": "output/data.csv", "mode": "a", "delimiter": ";",
                                        "include_header": True})

    writer = (WriterBuilder().with_writer_type("gcs").add_config_param("bucket", "lake").build())

The seed's config keys work as written (``region_name``, ``project_id``, ``credentials_path``, ``file_path``,
``mode: 'w'|'a'``, ``delimiter``, ``include_header``, ``connection_string``, ``container``, ``blob_name=``).
Failures raise ``ConfigurationError``, ``ClientConnectionError`` (``DestinationConnectionError``) or
``ValidationError`` (all ``DestinationError``, importable from here) with the cause attached; a writer never
returns ``{'success': False}``. A missing bucket or container is ``ContainerNotFoundError``: a
``ClientConnectionError`` (the seed's error-handling example catches it as one) and a ``ConfigurationError``.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
import uuid
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from etl_platform.destinations.dataset import Dataset, WriteResult
from etl_platform.destinations.errors import ConfigurationError
from etl_platform.destinations.options import KEYS as WRITE_OPTION_KEYS
from etl_platform.destinations.formats import PARQUET_CODECS, SUFFIX, TEXT_COMPRESSIONS, FileFormat, format_of_name
from etl_platform.destinations.options import WriteOptions
from etl_platform.destinations.registry import DESTINATIONS, DestinationType, destination_type
from etl_platform.destinations.stores import Store
from etl_platform.destinations.streams import RowCounter, batch_reader
from etl_platform.destinations.errors import (
    ContainerNotFoundError,
    DestinationConnectionError,
    DestinationError,
    ValidationError,
)
from etl_platform.errors import ClientConnectionError

__all__ = ["WriterFactory", "WriterBuilder", "Writer", "DocumentWriter", "ConfigurationError", "ClientConnectionError",
           "ContainerNotFoundError", "DestinationConnectionError", "DestinationError", "ValidationError"]

URI_KEYS = {"s3": "s3_uri", "azure_blob": "blob_url", "gcs": "gcs_uri", "local": "file_path", "csv": "file_path"}


class Writer:
    """Writes data (pyarrow.Table, pandas or pyspark DataFrame, list of dicts) to a store.

    ``write(data, key=...)``: a key with a data file's extension (``custom/path/data.json``, ``x.csv.gz``)
    names **the object itself**, written with one upload (with ``compression: gzip`` configured,
    ``custom/path/data.json`` is written gzip-encoded as ``custom/path/data.json.gz``: the result's URI says so); any other key names a dataset folder (files
    ``part-<write id>-<n>``, partitions, append/overwrite/upsert). Without a key, a new object
    ``<prefix>/YYYY/MM/DD/data_<timestamp>_<id><extension>`` is written. ``blob_name=`` is the same as ``key=``.
    """

    def __init__(self, writer_type: str, store: Store, options: dict[str, Any], file_path: str | None = None):
        self.writer_type = writer_type
        self.store = store
        self.options = WriteOptions.from_mapping(options, "csv" if writer_type == "csv" else "parquet")
        self.file_path = file_path  # csv: the one file this writer writes
        self._fs = None
        self._container_checked = False

    @property
    def file_format(self):
        return self.options.file_format

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._fs = None
        self._container_checked = False

    def write(self, data: Any, key: str | None = None, partition: dict[str, str] | None = None,
              blob_name: str | None = None) -> dict[str, Any]:
        name = key or blob_name
        if name is None and self.file_path:
            name = os.path.basename(self.file_path)
        if name is not None and not name.strip("/"):
            raise ConfigurationError("key: an object or dataset path is required (e.g. 'events/2024-01-01.json')")
        if name is None:
            name = _generated_key(self.file_format.extension)
        if format_of_name(name) is None or partition:
            return self._write_dataset(data, name, partition)
        name, file_format = self._object_format(name.strip("/"))
        return self._write_object(data, name, file_format)

    def _object_format(self, name: str) -> tuple[str, FileFormat]:
        """The object's name and encoding: the format its extension says, with the configured ``compression``
        honoured. A text object without a compression extension gets the codec's (``data.json`` with gzip is
        written as ``data.json.gz``, gzip-encoded); a Parquet object takes the codec inside the file. A compression
        the name contradicts is refused, never ignored."""
        kind, named = format_of_name(name)
        configured = self.file_format.compression  # None: not set
        if kind == "parquet":
            if configured is not None and configured not in PARQUET_CODECS:
                raise ConfigurationError(f"key {name!r}: compression {configured!r} is not a Parquet codec "
                                         f"({', '.join(PARQUET_CODECS)})")
            codec = configured
        elif configured is None or configured == named:
            codec = named or "none"
        elif configured not in TEXT_COMPRESSIONS:
            raise ConfigurationError(f"key {name!r}: compression {configured!r} is a Parquet codec; a {kind} object "
                                     f"takes one of {', '.join(TEXT_COMPRESSIONS)}")
        elif named is not None or configured == "none":
            raise ConfigurationError(f"key {name!r} says {named or 'no'} compression but the writer is configured "
                                     f"with compression {configured!r}: name the object {_plain(name, named)}"
                                     f"{SUFFIX[configured]} or change the compression")
        else:
            codec, name = configured, name + SUFFIX[configured]
        return name, FileFormat(kind, codec, self.file_format.csv_delimiter, self.file_format.csv_header)

    def _write_dataset(self, data: Any, key: str, partition: dict[str, str] | None) -> dict[str, Any]:
        dataset = Dataset(self.store, key, self.options.file_format, self.options.partition_by, self._fs)
        result = dataset.write(data, self.options.mode, partition, merge=self.options.merge)
        self._fs = dataset.fs
        one_file = len(result.uris) == 1 and not dataset.file_format.is_table
        return self._result(result, result.uris[0] if one_file else dataset.store.uri(dataset.location))

    def _write_object(self, data: Any, key: str, file_format: FileFormat) -> dict[str, Any]:
        if self.options.mode == "upsert":
            raise ConfigurationError(f"{key}: upsert needs a dataset folder key (no file extension), not one object")
        folder, name = posixpath.split(key)
        dataset = Dataset(self.store, folder, file_format, (), self._fs)
        if self.options.mode == "append" and self.writer_type == "csv":
            result = _append_csv(dataset, name, data)
        elif self.options.mode == "append":
            raise ConfigurationError(f"{key}: an object in {self.store.kind} cannot be appended to; write a new "
                                     "object (no key) or use a dataset folder key with mode append")
        else:
            result = dataset.write_file(data, name, check_container=not self._container_checked)
        self._fs, self._container_checked = dataset.fs, True
        return self._result(result, result.uris[0])

    def _result(self, result, uri: str) -> dict[str, Any]:
        location = URI_KEYS[self.writer_type]
        if location == "file_path":  # a path, as the user gave it: the configured file's own spelling
            uri = self._path_of(uri)
        return {"success": True, "records_written": result.records_written, "size_bytes": result.size_bytes,
                "files": result.files, "uris": result.uris, location: uri}

    def _path_of(self, uri: str) -> str:
        """A local ``file://`` URI as a file-system path; the configured ``file_path`` as written when it is that
        file (seed 000 prints ``result['file_path']`` as the path it configured)."""
        from urllib.parse import unquote, urlsplit

        path = unquote(urlsplit(uri).path) if uri.startswith("file://") else uri
        if self.file_path and os.path.abspath(path) == os.path.abspath(self.file_path):
            return self.file_path
        return path


def _plain(name: str, compression: str | None) -> str:
    """``name`` without its compression suffix."""
    return name[: -len(SUFFIX[compression])] if compression else name


def _generated_key(extension: str) -> str:
    now = datetime.now(timezone.utc)
    return f"{now:%Y/%m/%d}/data_{now:%Y%m%dT%H%M%S%f}_{uuid.uuid4().hex[:8]}{extension}"


def _append_csv(dataset: Dataset, name: str, data) -> WriteResult:
    """Add rows to the end of a local CSV file (its header written only when the file is new or empty)."""
    target = Path(dataset.location) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh = not target.exists() or target.stat().st_size == 0
    file_format = FileFormat("csv", "none", dataset.file_format.csv_delimiter, dataset.file_format.csv_header and fresh)
    with tempfile.TemporaryDirectory() as tmp:
        encoded, counter = Path(tmp) / "rows.csv", RowCounter()
        file_format.write(counter.wrap(batch_reader(data)), encoded)
        with open(target, "ab") as out, open(encoded, "rb") as rows:
            shutil.copyfileobj(rows, out)
        size = encoded.stat().st_size
    return WriteResult([dataset.store.uri(str(target))], counter.rows, size)


class DocumentWriter:
    """Seed 000's database and search-engine writers: ``write(data, collection=...)`` (MongoDB),
    ``write(data, index=...)`` (OpenSearch), ``write(data, commit=True)`` (Solr), ``write(data, table=...)``
    (Cassandra); the result has
    ``records_written`` and the store's counts (``inserted_ids`` for MongoDB, ``created``/``updated`` for
    OpenSearch, ``committed`` for Solr).

    ``mode`` (config): append (default), upsert (with ``id_columns``) or overwrite (a new collection or index
    swapped in whole)."""

    def __init__(self, writer_type: str, target, mode: str, id_columns: list[str]):
        self.writer_type, self.target, self.mode, self.id_columns = writer_type, target, mode, list(id_columns)
        self.arguments = DESTINATIONS[writer_type].write_arguments

    def __enter__(self) -> DocumentWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Each write opens and closes its own client."""

    def write(self, data: Any, **arguments: Any) -> dict[str, Any]:
        unknown = sorted(set(arguments) - set(self.arguments))
        if unknown:
            raise ConfigurationError(f"{self.writer_type}: write() takes {', '.join(a + '=' for a in self.arguments)}"
                                     f" not {unknown}")
        result = self.target.write(data, self.mode, self.id_columns, **arguments)
        return {"success": True, **{k: v for k, v in asdict(result).items()}}


DOCUMENT_WRITER_KEYS = {"mode", "id_columns"}


class WriterFactory:
    @staticmethod
    def writer_types() -> list[str]:
        return sorted(DESTINATIONS)

    @staticmethod
    def create_writer(writer_type: str, config: dict[str, Any] | None = None) -> Writer | DocumentWriter:
        kind = destination_type(writer_type, "writer type")
        if not kind.is_file_store:
            return _document_writer(kind, dict(config or {}))
        config, file_path = _seed_config(writer_type, dict(config or {}))
        allowed = kind.setting_names() | WRITE_OPTION_KEYS
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ConfigurationError(f"{writer_type}: unknown config key(s) {unknown}; allowed: {', '.join(sorted(allowed))}")
        store = kind.build({k: v for k, v in config.items() if k not in WRITE_OPTION_KEYS})
        return Writer(writer_type, store, {k: v for k, v in config.items() if k in WRITE_OPTION_KEYS}, file_path)


def _document_writer(kind: DestinationType, config: dict[str, Any]) -> DocumentWriter:
    allowed = kind.setting_names() | DOCUMENT_WRITER_KEYS
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConfigurationError(f"{kind.name}: unknown config key(s) {unknown}; allowed: {', '.join(sorted(allowed))}")
    target = kind.build({k: v for k, v in config.items() if k not in DOCUMENT_WRITER_KEYS})
    return DocumentWriter(kind.name, target, config.get("mode", "append"), config.get("id_columns") or [])


# The seed's config keys (seed 000), per writer type, and the settings they are.
SEED_KEYS = {
    "s3": {"region_name": "region"},
    "gcs": {"project_id": "project", "credentials_path": "token"},
    "csv": {"delimiter": "csv_delimiter", "include_header": "csv_header"},
}
CSV_FILE_MODES = {"w": "overwrite", "a": "append"}


def _seed_config(writer_type: str, config: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The seed's spellings as ours; for ``csv`` a ``file_path`` (with ``mode`` 'w' or 'a') names one file."""
    for seed_key, key in SEED_KEYS.get(writer_type, {}).items():
        if seed_key in config:
            config[key] = config.pop(seed_key)
    file_path = None
    if writer_type == "csv" and "file_path" in config:
        file_path = str(config.pop("file_path"))
        if format_of_name(file_path) is None:
            raise ConfigurationError(f"csv: file_path {file_path!r} must end in .csv (optionally .gz or .zst)")
        config.setdefault("base_path", os.path.dirname(os.path.abspath(file_path)))
        mode = config.get("mode", "w")
        if mode in CSV_FILE_MODES:
            config["mode"] = CSV_FILE_MODES[mode]
        elif mode not in CSV_FILE_MODES.values():
            raise ConfigurationError(f"csv: mode {mode!r} is not one of 'w' (write) or 'a' (append)")
    return config, file_path


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

    def build(self) -> Writer | DocumentWriter:
        if self._type is None:
            raise ConfigurationError(f"writer type: call with_writer_type() with one of "
                                     f"{', '.join(WriterFactory.writer_types())}")
        return WriterFactory.create_writer(self._type, self._config)
