"""A dataset on a store: Hive-partitioned files written in append, overwrite or upsert mode.

Layout: ``<root>/<path>/[<partition column>=<Dagster partition key>/][col=value/...]part-<write id>-<n><ext>``,
so DuckDB, Spark and pyarrow read the folder as one dataset. The write id (time-ordered, then random)
is new for every write, so two writers never pick the same file name (two concurrent appends both
land) and a write never replaces an existing file in place.

Nothing half-written is ever visible: each file is encoded locally and uploaded whole (one PUT, or
an S3 multipart upload that only appears when completed). A write of several files is first
uploaded under ``<root>/_staging/<token>/``; only when every file is there are they moved into
place. If a move fails, the files already moved are removed again, so the previous version stays
whole; only then are the replaced files deleted. A failed write leaves the previous version as it was
(and a retry does not duplicate anything: the staged files of a failed attempt are never published).
"""

from __future__ import annotations

import os
import shutil
from collections import OrderedDict
import socket
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from etl_platform.destinations.errors import (
    ConfigurationError,
    ContainerNotFoundError,
    CredentialsRefusedError,
    DestinationConnectionError,
    ReadError,
    refused_credentials,
)
from etl_platform.errors import EtlPlatformError
from etl_platform.destinations.formats import FileFormat
from etl_platform.destinations.results import WriteResult
from etl_platform.destinations.stores import Store
from etl_platform.destinations.streams import RowCounter, batch_reader, table_or_reader
from etl_platform.destinations.tables import cast_to, same_schema_or_raise

WRITE_MODES = ("append", "overwrite", "upsert")
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
STAGING = "_staging"


@dataclass
class Dataset:
    store: Store
    path: str
    file_format: FileFormat = field(default_factory=FileFormat)
    partition_by: Sequence[str] = ()
    _fs: fsspec.AbstractFileSystem | None = None

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self._fs is None:
            self._fs = self.store.filesystem()
        return self._fs

    @property
    def location(self) -> str:
        return "/".join(part for part in (self.store.root, self.path.strip("/")) if part)

    def scope(self, partition: dict[str, str] | None) -> str:
        """The folder a write replaces: the whole dataset, or one Dagster partition of it."""
        return "/".join([self.location, *(f"{k}={v}" for k, v in (partition or {}).items())])

    # ---------------------------------------------------------------- reading

    def files(self, scope: str | None = None) -> list[str]:
        """Data files below ``scope`` (default: the dataset), staging areas excluded."""
        scope = scope or self.location
        try:
            if not self.fs.exists(scope):
                return []
            found = self.fs.find(scope)
        except Exception as error:
            raise _connection_error(self.store, "list", scope, error) from error
        return sorted(f for f in found if f.endswith(self.file_format.extension) and f"/{STAGING}/" not in f"/{f}")

    def read(self, partition: dict[str, str] | None = None, version: int | None = None,
             as_of=None) -> pa.Table | None:
        """The dataset (or one Dagster partition) as one table, with Hive partition columns; None if empty.
        ``version`` / ``as_of`` (a datetime or ISO text): an earlier version of a Delta dataset (time travel)."""
        if self.is_delta():
            return self.delta().read(partition, version, as_of)
        if version is not None or as_of is not None:
            raise ConfigurationError(f"reading a version of {self.store.uri(self.location)} needs format 'delta' "
                                     f"(this dataset is {self.file_format.format}: files have no versions)")
        return self._read_paths(self.files(self.scope(partition)))

    def is_delta(self) -> bool:
        """Whether the dataset is a Delta table: ``format='delta'``, or a ``parquet`` dataset whose folder already holds
        a Delta log (its Parquet files include removed versions: read or written as plain files it would be wrong).
        Another plain format over a Delta table is refused, naming it."""
        if self.file_format.is_table:
            return True
        log = f"{self.location}/_delta_log"
        if not self._call("check", log, lambda: self.fs.exists(log)):
            return False
        if self.file_format.format != "parquet":
            raise ConfigurationError(f"{self.store.uri(self.location)} is a Delta table; it cannot be read or written as "
                                     f"{self.file_format.format} files (use format 'delta')")
        return True

    def delta(self):
        """The Delta table behind the dataset (``etl_platform.destinations.delta``)."""
        from etl_platform.destinations.delta import DeltaDataset

        return DeltaDataset(self.store, self.path, self.partition_by, self.file_format.codec)

    def _read_paths(self, paths: list[str]) -> pa.Table | None:
        if not paths:
            return None
        with scratch_folder("read") as tmp:
            tables = [self._read_file(remote, Path(tmp)) for remote in paths]
        table = pa.concat_tables(tables, promote_options="permissive")
        return _cast_partition_columns(table, {name for name, _ in self._partition_values(paths[0])})

    def _partition_values(self, remote: str) -> list[tuple[str, str | None]]:
        """``(column, value)`` of each Hive folder between the dataset's root and ``remote``."""
        folders = remote[len(self.location):].strip("/").split("/")[:-1]
        return [(name, None if value == NULL_PARTITION else value)
                for name, _, value in (folder.partition("=") for folder in folders)]

    def _read_file(self, remote: str, tmp: Path) -> pa.Table:
        """One data file, with its Hive partition values as (text) columns."""
        local = tmp / f"{uuid.uuid4().hex}{self.file_format.extension}"
        try:
            self.fs.get_file(remote, str(local))
            table = self.file_format.read(local)
        except Exception as error:
            raise ReadError(f"could not read {self.store.uri(remote)}: {error}") from error
        finally:
            local.unlink(missing_ok=True)
        for name, value in self._partition_values(remote):
            table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
        return table

    # ---------------------------------------------------------------- writing

    def write(self, data, mode: str = "overwrite", partition: dict[str, str] | None = None,
              merge=None) -> WriteResult:
        """Write ``data``: a pyarrow Table, a RecordBatchReader (e.g. a warehouse query) or anything
        ``streams.batch_reader`` takes. Append and overwrite stream it: memory is bounded by the batch size, the
        files are encoded on local disk. An overwrite with data of no columns empties the dataset, keeping its
        columns. Upsert needs the existing and the new rows together:
        ``merge(existing, new) -> table`` (required for ``mode='upsert'``) holds both in memory."""
        if mode not in WRITE_MODES:
            raise ConfigurationError(f"mode: {mode!r} is not one of {', '.join(WRITE_MODES)}")
        reader = batch_reader(data)
        if mode == "overwrite" and not reader.schema.names:
            # An overwrite with no rows (a source that now has none): the dataset keeps its columns and loses its
            # rows (one empty file; none when partitioned); nothing there stays nothing.
            existing = self.schema()
            if existing is None:
                return WriteResult(schema=reader.schema)
            reader = pa.RecordBatchReader.from_batches(existing, [])
        missing = [c for c in self.partition_by if c not in reader.schema.names]
        if missing:
            raise ConfigurationError(f"partition_by: columns {missing} are not in the data "
                                     f"(columns: {reader.schema.names})")
        if mode == "upsert" and merge is None:
            raise ConfigurationError("mode 'upsert' needs id_columns (and a merge method)")
        self._call("check", self.store.container, lambda: self.store.ensure_container(self.fs))
        if self.is_delta():
            return self.delta().write(reader, mode, partition, merge)
        started = time.monotonic()
        scope = self.scope(partition)
        current = self.files(scope)  # one listing serves the schema check, the merge and the clean-up
        if mode in ("append", "upsert"):
            existing = self._read_paths(current) if mode == "upsert" else self._existing_schema(current)
            if existing is not None:
                existing_schema = existing if isinstance(existing, pa.Schema) else existing.schema
                # Folder columns (Hive partitions, the Dagster partition) are not inside the files.
                folders = [*self.partition_by, *(partition or {})]
                compare = _without if self.file_format.format == "parquet" else _names_only
                same_schema_or_raise(compare(existing_schema, folders), compare(reader.schema, folders),
                                     self.store.uri(scope))
                if mode == "append" and self.file_format.format == "parquet":
                    reader = _cast_stream(reader, _without(existing_schema, folders),
                                          f"append to {self.store.uri(scope)}")
            if mode == "upsert":
                reader = batch_reader(merge(existing, reader.read_all()))
        result = WriteResult(schema=reader.schema)
        with scratch_folder("write") as tmp:
            encoded = self._encode(reader, Path(tmp))
            result.records_written = sum(rows for _, _, rows in encoded)
            result.size_bytes = sum(local.stat().st_size for _, local, _ in encoded)
            targets = self._targets(scope, [folder for folder, _, _ in encoded])
            self._publish(list(zip([local for _, local, _ in encoded], targets)))
        if mode in ("overwrite", "upsert"):
            self._remove_replaced(current)
        result.uris = [self.store.uri(t) for t in targets]
        result.seconds = time.monotonic() - started
        return result

    def _encode(self, reader: pa.RecordBatchReader, tmp: Path) -> list[tuple[str, Path, int]]:
        """``(folder, local file, rows)`` per Hive folder: without ``partition_by`` one file straight from the
        stream; with it, the batches are first sorted into a spill file per folder, then each is encoded."""
        if not self.partition_by:
            local = tmp / f"0{self.file_format.extension}"
            counter = RowCounter()
            self.file_format.write(counter.wrap(reader), local)
            return [("", local, counter.rows)]
        spill = _PartitionSpill(tmp / "spill", _without(reader.schema, self.partition_by))
        for batch in reader:
            for folder, part in _split(pa.Table.from_batches([batch], reader.schema), self.partition_by):
                spill.add(folder, part)
        encoded = []
        for number, (folder, part_reader, rows) in enumerate(spill.readers()):
            local = tmp / f"{number}{self.file_format.extension}"
            self.file_format.write(part_reader, local)
            encoded.append((folder, local, rows))
        return encoded

    def write_file(self, data, name: str, check_container: bool = True) -> WriteResult:
        """Write ``data`` as the one file ``name`` in the dataset's folder, replacing it whole (one PUT: no
        listing, staging or copy)."""
        started = time.monotonic()
        if check_container:
            self._call("check", self.store.container, lambda: self.store.ensure_container(self.fs))
        target = f"{self.location}/{name}"
        with scratch_folder("write") as tmp:
            local = Path(tmp) / f"file{self.file_format.extension}"
            data = table_or_reader(data)
            if isinstance(data, pa.Table):  # the common case of the seed's writers: no stream wrapper needed
                self.file_format.write(data, local)
                rows, schema = data.num_rows, data.schema
            else:
                counter, reader = RowCounter(), data
                self.file_format.write(counter.wrap(reader), local)
                rows, schema = counter.rows, reader.schema
            result = WriteResult([self.store.uri(target)], rows, local.stat().st_size, schema=schema)
            self._publish([(local, target)])
        result.seconds = time.monotonic() - started
        return result

    def schema(self) -> pa.Schema | None:
        """The schema of the dataset's files as they are now (Hive folder columns as text); None if it has none."""
        if self.is_delta():
            return self.delta().schema()
        return self._existing_schema(self.files())

    def _existing_schema(self, files: list[str]) -> pa.Schema | None:
        if not files:
            return None
        with scratch_folder("schema") as tmp:
            return self._read_file(files[0], Path(tmp)).schema

    def _targets(self, scope: str, folders: list[str]) -> list[str]:
        """Final file names, new to this write: ``part-<write id>-<n>`` in each folder."""
        write_id = f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
        targets, numbers = [], {}
        for folder in folders:
            numbers[folder] = numbers.get(folder, -1) + 1
            targets.append(f"{scope}/{folder}".rstrip("/") + f"/part-{write_id}-{numbers[folder]:05d}"
                           f"{self.file_format.extension}")
        return targets

    def _remove_replaced(self, replaced: list[str]) -> None:
        """Delete the files an overwrite replaced (the new version is already complete beside them)."""
        left = []
        for path in replaced:
            try:
                self._call("delete", path, lambda path=path: self.fs.rm_file(path))
            except EtlPlatformError:
                left.append(self.store.uri(path))
        if left:
            raise DestinationConnectionError(
                f"{self.store.kind}: the new version is in place, but {len(left)} replaced file(s) could not be "
                f"deleted, so readers see them beside it until they are: {', '.join(left[:10])}"
            )

    def _publish(self, uploads: list[tuple[Path, str]]) -> None:
        if len(uploads) == 1:  # one object: a single PUT is atomic
            local, target = uploads[0]
            self._call("upload", target, lambda: self.store.put_file(self.fs, str(local), target))
            return
        self._remove_abandoned_staging()
        staging = f"{self.store.root}/{STAGING}/{_owner()}-{uuid.uuid4().hex[:12]}"
        try:
            staged = []
            for number, (local, target) in enumerate(uploads):
                path = f"{staging}/{number}{self.file_format.extension}"
                self._call("upload", path, lambda local=local, path=path: self.store.put_file(self.fs, str(local), path))
                staged.append((path, target))
        except DestinationConnectionError:
            raise  # the store is unreachable: cleaning up would only retry against it; staging is never read
        except BaseException:
            self._remove_staging(staging)
            raise
        published = []
        try:
            for path, target in staged:
                self._call("commit", target, lambda path=path, target=target: self.store.move(self.fs, path, target))
                published.append(target)
        except BaseException:
            self._unpublish(published)
            self._remove_staging(staging)
            raise
        self._remove_staging(staging)

    def _remove_abandoned_staging(self) -> None:
        """Remove staging areas left by writers on this host whose process is gone (killed mid-upload)."""
        try:
            entries = self.fs.ls(f"{self.store.root}/{STAGING}", detail=False)
        except FileNotFoundError:
            return
        except Exception as error:
            raise _connection_error(self.store, "list", f"{self.store.root}/{STAGING}", error) from error
        for entry in entries:
            if _abandoned(entry.rstrip("/").rsplit("/", 1)[-1]):
                self._remove_staging(entry)

    def _unpublish(self, published: list[str]) -> None:
        """Take back the files a failed commit already moved into place: the previous version stays whole."""
        for target in published:
            try:
                self.fs.rm_file(target)
            except Exception as error:  # the store is gone: say which file readers may see
                raise DestinationConnectionError(
                    f"{self.store.kind}: a failed commit could not take back {self.store.uri(target)} "
                    f"({type(error).__name__}): delete it by hand"
                ) from error

    def _remove_staging(self, staging: str) -> None:
        try:
            if self.fs.exists(staging):
                self.fs.rm(staging, recursive=True)
        except Exception:  # best effort: the staging area is outside every dataset and never read
            pass

    def _call(self, action: str, path: str, operation):
        return store_call(self.store, action, path, operation)


def store_call(store: Store, action: str, path: str, operation):
    """``operation()``, its failures as the destinations' errors naming the store, the action and the path."""
    try:
        return operation()
    except EtlPlatformError:
        raise
    except FileNotFoundError as error:
        raise ContainerNotFoundError(f"{store.kind}: {action} {store.uri(path)} failed: "
                                     f"{store.container!r} does not exist") from error
    except Exception as error:
        raise _connection_error(store, action, path, error) from error


HOST = socket.gethostname().replace("-", "_")


def _owner() -> str:
    """``<host>-<pid>``: who a staging area or a scratch folder belongs to."""
    return f"{HOST}-{os.getpid()}"


def _abandoned(name: str) -> bool:
    """Whether ``name`` (``<host>-<pid>-...``) belongs to a process of this host that no longer runs."""
    host, _, rest = name.partition("-")
    pid = rest.partition("-")[0]
    if host != HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextmanager
def scratch_folder(kind: str):
    """A local temporary folder for encoding or reading files; first removes those of killed processes."""
    root = Path(tempfile.gettempdir())
    for old in root.glob(f"etl_{kind}_*"):
        if _abandoned(old.name.removeprefix(f"etl_{kind}_")):
            shutil.rmtree(old, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f"etl_{kind}_{_owner()}-") as folder:
        yield folder


def _connection_error(store: Store, action: str, path: str, error: Exception) -> DestinationConnectionError:
    if refused_credentials(error):
        return CredentialsRefusedError(f"{store.kind}: {action} {store.uri(path)} failed: the store refused the "
                                       f"credentials or their permission ({type(error).__name__}: "
                                       f"{str(error).splitlines()[0][:300]})")
    return DestinationConnectionError(f"{store.kind}: {action} {store.uri(path)} failed: "
                                      f"{type(error).__name__}: {error}")


MAX_OPEN_SPILLS = 64


class _PartitionSpill:
    """A stream's rows sorted by Hive folder into Arrow IPC files on local disk: memory holds one batch, however
    many partitions. At most ``MAX_OPEN_SPILLS`` files are open; a folder seen again after its file was closed
    gets another file, and its files are read back in order."""

    def __init__(self, root: Path, schema: pa.Schema):
        root.mkdir()
        self.root, self.schema = root, schema
        self.paths: dict[str, list[Path]] = {}
        self.rows: dict[str, int] = {}
        self.open: OrderedDict[str, tuple] = OrderedDict()

    def add(self, folder: str, table: pa.Table) -> None:
        handle = self.open.pop(folder, None)
        if handle is None:
            if len(self.open) >= MAX_OPEN_SPILLS:
                _close(self.open.popitem(last=False)[1])
            path = self.root / f"{sum(len(p) for p in self.paths.values())}.arrow"
            self.paths.setdefault(folder, []).append(path)
            sink = pa.OSFile(str(path), "wb")
            handle = (pa.ipc.new_stream(sink, self.schema), sink)
        self.open[folder] = handle  # the most recently used last
        handle[0].write_table(table)
        self.rows[folder] = self.rows.get(folder, 0) + table.num_rows

    def readers(self):
        """``(folder, reader, rows)`` per folder, in the order the folders first appeared."""
        while self.open:
            _close(self.open.popitem()[1])
        for folder, paths in self.paths.items():
            yield folder, pa.RecordBatchReader.from_batches(self.schema, self._read(paths)), self.rows[folder]

    @staticmethod
    def _read(paths: list[Path]):
        for path in paths:
            with pa.OSFile(str(path), "rb") as source:
                yield from pa.ipc.open_stream(source)
            path.unlink()


def _close(handle) -> None:
    writer, sink = handle
    writer.close()
    sink.close()


def _cast_stream(reader: pa.RecordBatchReader, schema: pa.Schema, what: str) -> pa.RecordBatchReader:
    """The stream with the types of ``schema`` for the columns both have (a widening checked before)."""
    target = pa.schema([schema.field(n) if n in schema.names else reader.schema.field(n) for n in reader.schema.names])
    if target == reader.schema:
        return reader
    batches = (cast_to(pa.Table.from_batches([batch], reader.schema), target, what).to_batches() for batch in reader)
    return pa.RecordBatchReader.from_batches(target, (b for converted in batches for b in converted))


def _split(table: pa.Table, partition_by: Sequence[str]):
    """``(folder, table without the partition columns)`` per distinct value of the partition columns."""
    if not partition_by:
        yield "", table
        return
    # One grouping pass collects each combination's row numbers (in order of appearance); each part is then one
    # take() of its rows, so the split costs one pass over the data however many partitions there are.
    columns = list(partition_by)
    numbered = table.select(columns).append_column(_ROW, pa.array(range(table.num_rows), pa.int64()))
    groups = numbered.group_by(columns, use_threads=False).aggregate([(_ROW, "list")])
    data = table.drop_columns(columns)
    rows = groups[f"{_ROW}_list"]
    for number, combo in enumerate(groups.select(columns).to_pylist()):
        folder = "/".join(f"{c}={NULL_PARTITION if v is None else _partition_text(v)}" for c, v in combo.items())
        yield folder, data.take(rows[number].values)


_ROW = "__etl_row"


def _partition_text(value) -> str:
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text.replace("/", "%2F")


def _cast_partition_columns(table: pa.Table, names: set[str]) -> pa.Table:
    """Partition values come back as text; integers and ISO dates are given their type again."""
    for index, name in enumerate(table.column_names):
        column = table[name]
        if name not in names or not pa.types.is_string(column.type):
            continue
        for target in (pa.int64(), pa.date32()):
            try:
                table = table.set_column(index, name, pc.cast(column, target))
                break
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
    return table


def _without(schema: pa.Schema, names: Sequence[str]) -> pa.Schema:
    return pa.schema([f for f in schema if f.name not in names])


def _names_only(schema: pa.Schema, names: Sequence[str]) -> pa.Schema:
    """CSV and JSON do not keep types exactly: for those compare column names only."""
    return pa.schema([pa.field(f.name, pa.null()) for f in schema if f.name not in names])
