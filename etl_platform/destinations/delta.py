"""Datasets as Delta Lake tables (``format: delta``, through ``deltalake``, no Spark): every write is one commit.

A plain Parquet dataset is a folder of files written one by one: a reader listing it during a two-file
overwrite can see some of the new files beside some of the old. A Delta table's state is its transaction log:
a write adds its files, then commits one log entry naming what it adds and removes, so a reader sees the
version before or the version after, never a mix. What each mode does here:

- ``append``: adds files, one commit; two concurrent appends both land (delta-rs retries the commit);
- ``overwrite``: the whole table (schema included), or with a Dagster partition only that partition
  (``replaceWhere``): one commit; a concurrent conflicting overwrite fails with ``ConcurrentWriteError``;
- ``upsert``: the rows whose key is in the new data are read, merged with it by the upsert's pandas or pyspark
  backend (``destinations.merge``: the same rules as for plain datasets), and the winners go into one Delta
  ``MERGE``, which rewrites only the files holding those keys.

Reads take a version number or a timestamp (time travel); every write reports the version it committed.
Locking: on a local disk, Azure Blob and GCS delta-rs commits with the store's own create-if-absent; on S3 it uses
S3's conditional writes (If-None-Match, all AWS regions since 2024; MinIO and R2 too) — no DynamoDB table is needed
with deltalake >= 1.0.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from etl_platform.destinations.errors import ConfigurationError, CredentialsRefusedError, DestinationConnectionError, \
    ReadError, ValidationError, unless_refused
from etl_platform.destinations.streams import RowCounter, batch_reader
from etl_platform.destinations.tables import same_schema_or_raise
from etl_platform.destinations.results import WriteResult
from etl_platform.errors import EtlPlatformError


class ConcurrentWriteError(EtlPlatformError):
    """Another writer committed a conflicting change first; this write did not land (run it again)."""


def delta_location(store, path: str) -> tuple[str, dict[str, str]]:
    """A destinations ``Store`` (local, S3, Azure Blob, GCS) and a path in it as a Delta table URI and delta-rs
    storage options, built from the store's own settings."""
    kind, root, path = store.kind, store.root.rstrip("/"), path.strip("/")
    location = "/".join(part for part in (root, path) if part).lstrip("/")
    if kind in ("local", "csv"):  # root "/" (an absolute path's store) must stay absolute
        return (f"{root}/{path}" if path else root or "/"), {}
    if kind == "s3":
        options = {"AWS_REGION": store.region or "us-east-1"}
        for key, value in (("AWS_ACCESS_KEY_ID", store.aws_access_key_id),
                           ("AWS_SECRET_ACCESS_KEY", store.aws_secret_access_key),
                           ("AWS_SESSION_TOKEN", store.aws_session_token), ("AWS_ENDPOINT_URL", store.endpoint_url)):
            if value:
                options[key] = value
        if store.endpoint_url and store.endpoint_url.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
        return f"s3://{location}", options
    if kind == "azure_blob":
        options = {}
        if store.connection_string:
            parts = dict(p.split("=", 1) for p in store.connection_string.split(";") if "=" in p)
            options["azure_storage_account_name"] = parts.get("AccountName", "")
            options["azure_storage_account_key"] = parts.get("AccountKey", "")
            if "BlobEndpoint" in parts:
                options["azure_storage_endpoint"] = parts["BlobEndpoint"]  # Azurite, sovereign clouds
                options["azure_allow_http"] = "true" if parts["BlobEndpoint"].startswith("http://") else "false"
        else:
            options = {"azure_storage_account_name": store.account_name or "",
                       "azure_storage_account_key": store.account_key or ""}
        return f"az://{location}", {k: v for k, v in options.items() if v}
    if kind == "gcs":
        options = {"google_service_account": store.token} if store.token and store.token != "anon" else {}
        return f"gs://{location}", options
    raise ConfigurationError(f"a Delta table cannot be kept on a {kind!r} store")


class DeltaDataset:
    """The Delta side of a ``Dataset`` (``Dataset.delta()``): the table at ``path`` in ``store``, partitioned by
    ``partition_by`` (after a Dagster partition's column, when written with one)."""

    def __init__(self, store, path: str, partition_by: Sequence[str] = (), codec: str = "snappy"):
        self.partition_by, self.codec = tuple(partition_by), codec
        self.uri, self.storage_options = delta_location(store, path.strip("/"))

    # ---------------------------------------------------------------- reading

    def table(self, version: int | None = None, as_of: datetime | str | None = None):
        """The ``DeltaTable`` (at ``version`` or as of a time), or None when there is none yet."""
        from deltalake import DeltaTable

        try:
            if not DeltaTable.is_deltatable(self.uri, storage_options=self.storage_options):
                return None
            table = DeltaTable(self.uri, version=version, storage_options=self.storage_options)
            if as_of is not None:
                table.load_as_version(as_of)
            return table
        except EtlPlatformError:
            raise
        except Exception as error:
            raise self._read_error(error, version, as_of) from error

    def _read_error(self, error: Exception, version: int | None, as_of) -> ReadError | CredentialsRefusedError:
        return unless_refused(ReadError, error)(f"could not read the Delta table {self.uri}{_at(version, as_of)}: "
                                                f"{type(error).__name__}: {_first_line(error)}")

    def version(self) -> int | None:
        table = self.table()
        return table.version() if table is not None else None

    def read(self, partition: dict[str, str] | None = None, version: int | None = None,
             as_of: datetime | str | None = None) -> pa.Table | None:
        table = self.table(version, as_of)
        if table is None:
            if version is not None or as_of is not None:
                raise ReadError(f"the Delta table {self.uri} does not exist, so it has no version{_at(version, as_of)}")
            return None
        filters = [(name, "=", value) for name, value in (partition or {}).items()] or None
        try:
            data = pa.table(table.to_pyarrow_table(filters=filters))
        except Exception as error:
            raise self._read_error(error, version, as_of) from error
        return data if data.num_rows or partition is None else None

    def schema(self) -> pa.Schema | None:
        table = self.table()
        return pa.schema(table.schema().to_arrow()) if table is not None else None

    # ---------------------------------------------------------------- writing

    def write(self, data, mode: str, partition: dict[str, str] | None, merge) -> WriteResult:
        started = time.monotonic()
        stream_errors: list[Exception] = []  # raised inside the stream delta-rs consumes, which wraps them
        reader = delta_types(batch_reader(data), self.uri, stream_errors)
        partition = partition or {}
        if partition:
            reader = _with_constant_columns(reader, partition)
        partition_by = [*partition, *self.partition_by] or None
        existing = self.table()
        before = _files(existing)
        if existing is not None and mode in ("append", "upsert"):
            same_schema_or_raise(pa.schema(existing.schema().to_arrow()), reader.schema, self.uri)
        counter = RowCounter()
        if mode == "upsert" and existing is not None:
            new, ids = reader.read_all(), merge.__self__.ids  # the key columns of the upsert's Merger
            merged = merge(_rows_with_keys_of(existing, new, ids, partition), new)
            counter.rows = new.num_rows
            result_schema = merged.schema
            self._commit(lambda: _replace_keys(existing, merged, ids, partition, self._writer_properties()), "upsert",
                         stream_errors)
        else:
            from deltalake import write_deltalake

            if mode == "upsert":  # the first upsert: the new rows merged among themselves
                reader = batch_reader(merge(None, reader.read_all()))
            result_schema = reader.schema
            arguments = {"mode": "append" if mode in ("append", "upsert") else "overwrite",
                         "partition_by": partition_by, "storage_options": self.storage_options,
                         "writer_properties": self._writer_properties()}
            if mode == "overwrite" and existing is not None:
                if partition:
                    arguments["predicate"] = " AND ".join(f"`{k}` = '{_quoted(v)}'" for k, v in partition.items())
                else:
                    arguments["schema_mode"] = "overwrite"
            self._commit(lambda: write_deltalake(self.uri, counter.wrap(reader), **arguments), mode, stream_errors)
        committed = self.table()
        result = WriteResult(records_written=counter.rows, schema=result_schema, version=committed.version())
        for path, size in _files(committed).items():
            if path not in before:  # the files this commit added
                result.uris.append(f"{self.uri}/{path}")
                result.size_bytes += size
        result.seconds = time.monotonic() - started
        return result

    def _writer_properties(self):
        """The Parquet codec the dataset's settings name (the metadata reports it: it must be the one written)."""
        from deltalake import WriterProperties

        return WriterProperties(compression="UNCOMPRESSED" if self.codec == "none" else self.codec.upper())

    def _commit(self, action, mode: str, stream_errors: list[Exception]) -> None:
        try:
            action()
        except EtlPlatformError:
            raise
        except Exception as error:
            if stream_errors:  # our own check of a value, raised while delta-rs read the stream: that is the error
                raise stream_errors[0] from None
            name = type(error).__name__
            if name == "CommitFailedError":
                raise ConcurrentWriteError(
                    f"{mode} of the Delta table {self.uri} did not land: another writer committed a conflicting "
                    f"change first ({_first_line(error)}); run it again") from error
            if name in ("SchemaMismatchError", "DeltaError") and "schema" in str(error).lower():
                raise ConfigurationError(f"{mode} of the Delta table {self.uri}: {_first_line(error)}") from error
            raise unless_refused(DestinationConnectionError, error)(
                f"{mode} of the Delta table {self.uri} failed: {name}: {_first_line(error)}") from error


UNSIGNED_AS_SIGNED = {pa.uint8(): pa.int16(), pa.uint16(): pa.int32(), pa.uint32(): pa.int64(), pa.uint64(): pa.int64()}


def delta_types(reader: pa.RecordBatchReader, where: str, errors: list[Exception]) -> pa.RecordBatchReader:
    """The stream in types a Delta table keeps, losing nothing: nanosecond timestamps (pandas') become microseconds
    only when no value has digits below a microsecond (delta-rs would truncate them silently), unsigned integers
    a signed type that holds them (uint64 only below 2^63); a type Delta has none for (time of day, duration) is
    refused. A value that does not fit is named with its column (and kept in ``errors``: delta-rs, reading the
    stream, re-raises it as its own error)."""
    fields, casts = [], {}
    for field in reader.schema:
        target = field.type
        if pa.types.is_timestamp(field.type) and field.type.unit == "ns":
            target = pa.timestamp("us", field.type.tz)
        elif field.type in UNSIGNED_AS_SIGNED:
            target = UNSIGNED_AS_SIGNED[field.type]
        elif pa.types.is_time(field.type) or pa.types.is_duration(field.type):
            raise ValidationError(f"{where}: column {field.name!r} is {field.type}, which a Delta table cannot hold; "
                                  "cast it to a string or an integer first")
        if target != field.type:
            casts[field.name] = target
        fields.append(field.with_type(target))
    if not casts:
        return reader
    schema = pa.schema(fields)

    def batches():
        for batch in reader:
            arrays = []
            for field, column in zip(batch.schema, batch.columns):
                if field.name in casts:
                    try:
                        column = pc.cast(column, casts[field.name], safe=True)
                    except pa.ArrowInvalid as error:
                        errors.append(ValidationError(
                            f"{where}: column {field.name!r} ({field.type}) has a value a Delta table would change "
                            f"({casts[field.name]}: {error}); nothing was written"))
                        raise errors[-1] from error
                arrays.append(column)
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _rows_with_keys_of(table, new: pa.Table, ids: list[str], partition: dict[str, str]) -> pa.Table:
    """The table's rows (in the Dagster partition written, if any) whose key (``ids``) is among ``new``'s keys: what
    the upsert's merge needs; the rest stay as they are, in files the MERGE does not touch."""
    condition = pc.field(ids[0]).isin(new[ids[0]].unique())
    for name, value in partition.items():
        condition = condition & (pc.field(name) == value)
    candidates = pa.table(table.to_pyarrow_dataset().to_table(filter=condition))
    if len(ids) == 1 or not candidates.num_rows:
        return candidates
    keys = new.select(ids).group_by(ids).aggregate([])
    return candidates.join(keys, ids, join_type="left semi")


_ACTION = "__etl_action"


def _replace_keys(table, winners: pa.Table, ids: list[str], partition: dict[str, str], writer_properties) -> None:
    """One Delta MERGE that deletes every row of the table (in the Dagster partition written) whose key is among
    ``winners``' and inserts ``winners``: the upsert's result exactly, a key the table held twice (appended twice)
    included — an update of matched rows would keep both. Each key comes twice in the source: a ``delete`` row,
    which the key matches, and an ``insert`` row, which the predicate never matches. Only the files holding those
    keys are rewritten."""
    source = pa.concat_tables([
        winners.select(ids).append_column(_ACTION, pa.array(["delete"] * winners.num_rows)),
        winners.append_column(_ACTION, pa.array(["insert"] * winners.num_rows)),
    ], promote_options="default")
    predicate = " AND ".join([f"t.`{k}` = s.`{k}`" for k in ids] + [f"s.`{_ACTION}` = 'delete'"]
                             + [f"t.`{k}` = '{_quoted(v)}'" for k, v in partition.items()])
    (table.merge(source, predicate=predicate, source_alias="s", target_alias="t", writer_properties=writer_properties)
     .when_matched_delete()
     .when_not_matched_insert(updates={f"`{name}`": f"s.`{name}`" for name in winners.column_names},
                              predicate=f"s.`{_ACTION}` = 'insert'")
     .execute())


def _with_constant_columns(reader: pa.RecordBatchReader, values: dict[str, str]) -> pa.RecordBatchReader:
    """Each batch with the Dagster partition's column(s) set to its key (the table is partitioned by them)."""
    schema = reader.schema
    for name in values:
        if name in schema.names:
            raise ConfigurationError(f"the data already has a column {name!r}, the Dagster partition's column; "
                                     "set partition_column to another name")
        schema = schema.append(pa.field(name, pa.string()))

    def batches():
        for batch in reader:
            arrays = [*batch.columns, *(pa.array([value] * batch.num_rows, pa.string()) for value in values.values())]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _files(table) -> dict[str, int]:
    """``{path: bytes}`` of the table's current data files (none for no table)."""
    if table is None:
        return {}
    actions = pa.table(table.get_add_actions(flatten=True))
    return dict(zip(actions["path"].to_pylist(), actions["size_bytes"].to_pylist()))


def _quoted(value: str) -> str:
    return str(value).replace("'", "''")


def _at(version, as_of) -> str:
    return f" at version {version}" if version is not None else (f" as of {as_of}" if as_of is not None else "")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_QUERY = re.compile(r"(https?://[^\s?]+)\?\S*")


def _first_line(error: BaseException) -> str:
    """delta-rs's error as one line: its chain of causes (``↳`` lines) joined, an S3/Azure XML answer reduced to its
    code and message, and URLs without their query strings (where a signed URL would carry its signature)."""
    parts = []
    for line in _ANSI.sub("", str(error)).splitlines():
        line = line.strip().lstrip("↳").strip()
        code, message = re.search(r"<Code>(.*?)</Code>", line), re.search(r"<Message>(.*?)</Message>", line)
        if code:
            line = code.group(1) + (f" ({message.group(1)})" if message else "")
        elif line.startswith("<"):
            continue
        if line:
            parts.append(_QUERY.sub(r"\1", line))
    return " ← ".join(parts)[:600]
