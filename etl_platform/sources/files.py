"""Files on local disk, S3, Azure Blob or GCS: a glob or a Hive-partitioned folder of parquet, csv, jsonl or json.

The stores are the destinations' stores (``destinations/stores.py``): the same URLs, credentials and
emulator settings read and write. Each run reads only the files that are new or changed since the last
(size and modification time/ETag are remembered in the state). Files land ``replace_by_file``
(``_source_file`` names the file): a changed file's rows and quarantined records replace its old ones (a file
rewritten empty, or whose every record is quarantined, leaves no rows), a deleted file's leave. Files may be gzip (``.gz``) or zstd (``.zst``) compressed.

How each format lands (docs/sources.md): parquet keeps its types; csv columns are text, exactly as written
(bronze is lossless; silver decides the types), a row with the wrong number of fields is quarantined with
its line; jsonl lines and the records of a json array become one ``_record`` JSON column, a line that is not
JSON is quarantined. Folders named ``key=value`` add a text column ``key`` (Hive partitioning). A file whose
content is not what its format says (corrupt or truncated parquet, gzip or zstd, a csv that is not UTF-8) is
quarantined whole, naming it and why, and lands no rows; the other files land (as the reference pipeline's landing
does with a bad file).
"""

from __future__ import annotations

import gzip
import json
import posixpath
import zlib
from collections.abc import Iterator
from dataclasses import replace
from fnmatch import fnmatch
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import Field

from etl_platform.destinations.stores import Store, options_from_dagster_resource, store_for_uri, store_kind
from etl_platform.errors import ClientConnectionError, ConfigurationError
from etl_platform.landing.files import decompressed
from etl_platform.settings import bad_file_policy
from etl_platform.sources.base import POSITION_COLUMN, Extraction, LandingPlan, Rejected, Source, SourceBatch, \
    first_line, unicode_problem

FORMATS = ("parquet", "csv", "jsonl", "json")
# What a file's content raises when it is not what its format says: corrupt or truncated parquet, gzip or zstd
# (EOFError, BadGzipFile, zlib.error, ZstdStreamError), a csv that is not UTF-8. Not a connection's errors (OSError).
UNREADABLE = (pa.ArrowException, ValueError, EOFError, gzip.BadGzipFile, zlib.error)
SOURCE_FILE_COLUMN = "_source_file"
RECORD_COLUMN = "_record"
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}


class StoreSource(Source):
    """A reader of something at ``url`` on a store (local disk, S3, Azure Blob, GCS), reached with the
    destinations' stores: the same URLs, credentials and emulator settings read and write. Files and Delta tables
    (``sources.delta``) are read this way."""

    url: str = Field(description="Folder to read: a local path, s3://bucket/prefix, abfs://container/prefix or "
                                 "gs://bucket/prefix.")
    # store settings, as for the destinations (secrets from the environment: dg.EnvVar)
    endpoint_url: str | None = None
    region: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = Field(default=None, repr=False)  # a secret
    aws_session_token: str | None = Field(default=None, repr=False)  # a secret
    connection_string: str | None = Field(default=None, repr=False)  # a secret
    account_name: str | None = None
    account_key: str | None = Field(default=None, repr=False)  # a secret
    project: str | None = None
    token: str | None = Field(default=None, description="GCS: a service-account JSON file or 'anon'.")
    storage_resource: dg.ConfigurableResource | None = Field(
        default=None, description="Dagster's own S3Resource, GCSResource, AzureBlobStorageResource or ADLS2Resource: "
                                  "its settings are used instead of the fields above.")

    def store(self) -> Store:
        """The store holding ``url`` (the destinations' stores), its prefix set to the url's path."""
        kind = store_kind(self.url)
        options = {
            "s3": dict(endpoint_url=self.endpoint_url, region=self.region, aws_access_key_id=self.aws_access_key_id,
                       aws_secret_access_key=self.aws_secret_access_key, aws_session_token=self.aws_session_token,
                       connect_timeout=self.timeout_seconds, read_timeout=self.timeout_seconds, retries=3),
            "azure_blob": dict(connection_string=self.connection_string, account_name=self.account_name,
                               account_key=self.account_key),
            "gcs": dict(endpoint_url=self.endpoint_url, project=self.project, token=self.token),
            "local": {},
        }[kind]
        if self.storage_resource is not None:
            options.update(options_from_dagster_resource(self.storage_resource))
        store, path = store_for_uri(self.url, options)
        return store.model_copy(update={"prefix": path})

    def check_connection(self) -> None:
        """The bucket/container answers: one attempt, so a dead endpoint fails within ``timeout_seconds``."""
        store = self.store()
        if store.kind == "local":
            return
        if "retries" in type(store).model_fields:
            store = store.model_copy(update={"retries": 1})
        try:
            store.ensure_container(store.filesystem())
        except (ConfigurationError, ClientConnectionError):
            raise
        except Exception as error:
            raise ClientConnectionError(f"{self.kind}: cannot reach {self.url}: {first_line(error)}") from error


class FileSource(StoreSource):
    """Files below ``url`` matching ``glob``, read in batches."""

    kind = "files"
    delivers = "changed_files"

    glob: str = Field(default="**", description="Which files below `url` (e.g. '*.parquet', 'year=*/**/*.csv').")
    format: str | None = Field(default=None, description="parquet, csv, jsonl or json; default: from each file's "
                                                         "extension.")
    hive_partitioning: bool = Field(default=True, description="Add a column per key=value folder.")
    csv_delimiter: str = ","
    bad_files: str | None = Field(
        default=None,
        description="A file that cannot be read (not UTF-8, truncated or corrupt compression, a parquet without "
        "its footer) is quarantined whole and the other files land, either way. 'block': the asset's blocking "
        "check fails naming it, at every run until it is fixed or removed, so assets downstream wait; 'reject': "
        "the check warns once and they go on. Default: $ETL_PLATFORM_BAD_FILES, else 'block' (as the landing zone).",
    )

    @property
    def bad_file_policy(self) -> str:
        return bad_file_policy(self.bad_files, "FileSource.bad_files")

    def for_query(self, query: Any = None, params: Any = None) -> Source:
        """A glob of files below ``url`` (``*``: all of them)."""
        return self.model_copy(update={"glob": query}) if query and query != "*" else self

    def describe(self) -> str:
        return f"{self.url.rstrip('/')}/{self.glob}"

    def landing_plan(self) -> LandingPlan:
        return LandingPlan("replace_by_file", (SOURCE_FILE_COLUMN,))

    def list_files(self) -> tuple[Store, object, list[dict]]:
        """The matching files with their fingerprints, in path order."""
        self.check_connection()
        store = self.store()
        fs = store.filesystem()
        root = store.root
        try:
            found = fs.find(root, detail=True) if fs.exists(root) else {}
        except ConfigurationError:
            raise
        except Exception as error:
            raise ClientConnectionError(f"files: cannot list {self.url}: {first_line(error)}") from error
        files = []
        for path, info in sorted(found.items()):
            relative = posixpath.relpath(path.replace("\\", "/"), root.replace("\\", "/"))
            if relative == ".":  # the url names one file
                relative = posixpath.basename(path)
            name = relative.rsplit("/", 1)[-1]
            if info.get("type") != "file" or name.startswith((".", "_")) or not _matches(relative, self.glob):
                continue
            version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified") or \
                info.get("last_modified") or info.get("updated") or ""
            files.append({"path": path, "relative": relative, "fingerprint": f"{info.get('size')}:{version}"})
        return store, fs, files

    def extract(self, state: dict | None = None) -> Extraction:
        return FileExtraction(self, state)

    def format_of(self, relative: str) -> tuple[str, str | None]:
        name = relative.lower()
        compression = next((c for ext, c in COMPRESSIONS.items() if name.endswith(ext)), None)
        if compression:
            name = name.rsplit(".", 1)[0]
        file_format = self.format or name.rsplit(".", 1)[-1]
        if file_format == "ndjson":
            file_format = "jsonl"
        if file_format not in FORMATS:
            raise ConfigurationError(f"files: {relative}: format {file_format!r} is not one of {', '.join(FORMATS)} "
                                     "(set `format` when the extension does not say)")
        return file_format, compression


def _matches(relative: str, pattern: str) -> bool:
    """fnmatch over the path below the url (``*`` also crosses folders); ``**/x`` matches ``x`` at the top too."""
    if pattern in ("**", "**/*"):
        return True
    if fnmatch(relative, pattern):
        return True
    return pattern.startswith("**/") and fnmatch(relative, pattern[3:])


class FileExtraction(Extraction):
    def __init__(self, source: FileSource, state: dict | None):
        super().__init__(state)
        self.source = source

    def _batches(self) -> Iterator[SourceBatch]:
        source = self.source
        store, fs, files = source.list_files()
        seen = dict(self.state.get("files", {}))
        listed = {file["relative"] for file in files}
        deleted = sorted(set(seen) - listed)
        for relative in deleted:  # a deleted file's rows and quarantined records leave bronze
            del seen[relative]
        self.replaced_parts.extend(deleted)
        if deleted:
            self.state["files"] = dict(seen)
        for file in files:
            if seen.get(file["relative"]) == file["fingerprint"]:
                continue
            file_format, compression = source.format_of(file["relative"])
            partitions = _hive_values(file["relative"]) if source.hive_partitioning else {}
            try:
                with fs.open(file["path"], "rb") as raw:
                    stream = decompressed(raw, compression)
                    reader = {"parquet": self._parquet, "csv": self._csv, "jsonl": self._jsonl,
                              "json": self._json}[file_format]
                    for batch in reader(stream, file["relative"]):
                        if batch.data is not None:
                            batch.data = _with_lineage(batch.data, file["relative"], partitions)
                        batch.rejected = [replace(r, part=file["relative"]) for r in batch.rejected]
                        yield batch
            except (ConfigurationError, ClientConnectionError):
                raise
            except UNREADABLE as error:  # the file's content, not the reading of it: quarantined whole, the rest land
                as_format = f"{file_format}{' (' + compression + ')' if compression else ''}"
                yield SourceBatch(None, [Rejected(file["relative"], f"the file cannot be read as {as_format}: "
                                                  f"{first_line(error)}", None, part=file["relative"])],
                                  unreadable_part=file["relative"])
            except OSError as error:
                raise ClientConnectionError(f"files: reading {store.uri(file['path'])} failed: "
                                            f"{first_line(error)}") from error
            seen[file["relative"]] = file["fingerprint"]
            self.state["files"] = dict(seen)
            self.replaced_parts.append(file["relative"])

    def _parquet(self, stream, name: str) -> Iterator[SourceBatch]:
        parquet = pq.ParquetFile(stream)
        row = 0
        for batch in parquet.iter_batches(batch_size=self.source.batch_size):
            yield SourceBatch(_with_position(batch, name, row))
            row += batch.num_rows
        if parquet.metadata.num_rows == 0:
            yield SourceBatch(_with_position(pa.RecordBatch.from_pylist([], schema=parquet.schema_arrow), name, 0))

    def _csv(self, stream, name: str) -> Iterator[SourceBatch]:
        import io

        buffered = io.BufferedReader(stream, buffer_size=1 << 20) if not hasattr(stream, "peek") else stream
        header_line = buffered.peek(1 << 20).split(b"\n", 1)[0]
        header = next(iter(pacsv.read_csv(io.BytesIO(header_line + b"\n"), parse_options=pacsv.ParseOptions(
            delimiter=self.source.csv_delimiter), read_options=pacsv.ReadOptions(autogenerate_column_names=True))
            .to_pylist()), {})
        names = [str(v) for v in header.values()]
        rejected: list[Rejected] = []

        def invalid(row) -> str:
            rejected.append(Rejected(f"{name}:line {row.number}" if row.number else name,
                                     f"{row.actual_columns} fields where the header has {row.expected_columns}",
                                     row.text))
            return "skip"

        reader = pacsv.open_csv(
            buffered,
            read_options=pacsv.ReadOptions(block_size=8 << 20, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=self.source.csv_delimiter, invalid_row_handler=invalid,
                                             newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 strings_can_be_null=True, quoted_strings_can_be_null=False),
        )
        row = 0
        for batch in reader:
            for start in range(0, max(batch.num_rows, 1), self.source.batch_size):
                piece = batch.slice(start, self.source.batch_size)
                yield SourceBatch(_with_position(piece, name, row), rejected[:])
                rejected.clear()
                row += piece.num_rows
        if rejected or row == 0:
            yield SourceBatch(_with_position(pa.RecordBatch.from_pylist([], schema=reader.schema), name, row),
                              rejected[:])

    def _jsonl(self, stream, name: str) -> Iterator[SourceBatch]:
        records, positions, rejected = [], [], []
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
            problem = _json_problem(text)
            if problem:
                rejected.append(Rejected(f"{name}:line {number}", problem, text))
            else:
                records.append(text)
                positions.append(f"{name}:line {number}")
            if len(records) >= self.source.batch_size:
                yield SourceBatch(_records_batch(records, positions), rejected)
                records, positions, rejected = [], [], []
        if records or rejected:
            yield SourceBatch(_records_batch(records, positions), rejected)

    def _json(self, stream, name: str) -> Iterator[SourceBatch]:
        """A JSON array of records (or one record): read whole — use jsonl for files larger than memory."""
        try:
            document = json.load(stream)
        except json.JSONDecodeError as error:
            yield SourceBatch(None, [Rejected(name, f"not JSON: {error}", None)])
            return
        items = document if isinstance(document, list) else [document]
        for start in range(0, len(items), self.source.batch_size):
            records, positions, rejected = [], [], []
            for number, item in enumerate(items[start:start + self.source.batch_size], start=start + 1):
                text = json.dumps(item, ensure_ascii=False)
                problem = unicode_problem(text)
                if problem:
                    rejected.append(Rejected(f"{name}:record {number}", problem, json.dumps(item)))
                else:
                    records.append(text)
                    positions.append(f"{name}:record {number}")
            yield SourceBatch(_records_batch(records, positions), rejected)


def _json_problem(text: str) -> str | None:
    if "\ufffd" in text:
        return "not UTF-8 text"
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        return f"not JSON: {error}"
    return unicode_problem(text)


def _records_batch(records: list[str], positions: list[str]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array(records, pa.json_()), pa.array(positions, pa.string())],
                                      names=[RECORD_COLUMN, POSITION_COLUMN])


def _with_position(batch: pa.RecordBatch, name: str, first_row: int) -> pa.RecordBatch:
    labels = pa.array([f"{name}:record {first_row + i + 1}" for i in range(batch.num_rows)], pa.string())
    return pa.RecordBatch.from_arrays([*batch.columns, labels], names=[*batch.schema.names, POSITION_COLUMN])


def _with_lineage(batch: pa.RecordBatch, relative: str, partitions: dict[str, str]) -> pa.RecordBatch:
    arrays, names = list(batch.columns), list(batch.schema.names)
    for key, value in partitions.items():
        if key not in names:
            arrays.append(pa.array([value] * batch.num_rows, pa.string()))
            names.append(key)
    arrays.append(pa.array([relative] * batch.num_rows, pa.string()))
    names.append(SOURCE_FILE_COLUMN)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _hive_values(relative: str) -> dict[str, str]:
    from urllib.parse import unquote

    values = {}
    for part in relative.split("/")[:-1]:
        key, sep, value = part.partition("=")
        if sep and key:
            values[key] = unquote(value)
    return values
