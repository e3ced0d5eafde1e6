"""The one input every destination takes: a stream of Arrow record batches.

Every writer (file datasets, MongoDB, OpenSearch, Solr, Cassandra) accepts the same ``data``: a pyarrow Table,
RecordBatch, RecordBatchReader or iterable of batches — streamed, so memory stays bounded by the batch size —
or, converted once at the edge, a pandas / pyspark DataFrame or a list of dicts.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone

import pyarrow as pa

from etl_platform.destinations.errors import ConfigurationError, ValidationError
from etl_platform.destinations.tables import to_arrow

TABLE_CHUNK_ROWS = 10_000


def record_batches(data) -> Iterator[pa.RecordBatch]:
    """``data`` (anything ``batch_reader`` takes) as batches; a table in chunks of 10,000 rows, so the documents
    built from one chunk stay small."""
    yield from batch_reader(data)


def batch_reader(data) -> pa.RecordBatchReader:
    """``data`` as one ``RecordBatchReader``: streamed when it is a reader or an iterable of batches (every batch
    must have the first one's schema), else converted once (pandas, pyspark, list of dicts)."""
    data = table_or_reader(data)
    if isinstance(data, pa.Table):
        return pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=TABLE_CHUNK_ROWS))
    return data


def table_or_reader(data) -> pa.Table | pa.RecordBatchReader:
    """Data held in memory (Table, RecordBatch, pandas, pyspark, list of dicts) as one Table; a stream (a reader,
    an iterable of batches) as a RecordBatchReader, still unread."""
    if isinstance(data, (pa.Table, pa.RecordBatchReader)):
        return data
    if isinstance(data, (pa.RecordBatch, list, str, bytes, dict)) or \
            type(data).__module__.startswith(("pandas", "pyspark")):
        return to_arrow(data)  # str, bytes, dict: raises the error naming what is accepted
    try:
        batches = iter(data)
    except TypeError:
        to_arrow(data)  # raises the error naming what is accepted
        raise
    first = next(batches, None)
    if first is None:
        raise ValidationError("an empty stream of record batches has no schema: pass an empty pyarrow.Table instead")
    if not isinstance(first, pa.RecordBatch):
        raise ValidationError(f"expected a stream of pyarrow.RecordBatch, got a {type(first).__name__}")
    return pa.RecordBatchReader.from_batches(first.schema, _same_schema(first, batches))


def _same_schema(first: pa.RecordBatch, rest) -> Iterator[pa.RecordBatch]:
    for number, batch in enumerate(itertools.chain([first], rest)):
        if not batch.schema.equals(first.schema):
            before = {f.name: str(f.type) for f in first.schema}
            now = {f.name: str(f.type) for f in batch.schema}
            differences = [f"{name} {now.get(name, 'missing')} (first batch: {before.get(name, 'absent')})"
                           for name in dict.fromkeys([*before, *now]) if before.get(name) != now.get(name)]
            raise ValidationError(f"record batch {number} does not have the stream's schema: "
                                  f"{'; '.join(differences) or 'field order or metadata differ'}")
        yield batch


class RowCounter:
    """Counts the rows a stream hands on."""

    def __init__(self):
        self.rows = 0

    def wrap(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(reader.schema, self._counted(reader))

    def _counted(self, reader):
        for batch in reader:
            self.rows += batch.num_rows
            yield batch


def rechunked(reader: pa.RecordBatchReader, rows: int) -> Iterator[pa.Table]:
    """The stream as tables of about ``rows`` rows (small batches gathered, so a Parquet row group is not tiny)."""
    pending, count, yielded = [], 0, False
    for batch in reader:
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending, reader.schema)
            pending, count, yielded = [], 0, True
    if pending or not yielded:  # an empty stream is one empty table: the file still gets its schema
        yield pa.Table.from_batches(pending, reader.schema)


def quietly(action) -> None:
    """Run a clean-up step whose failure must not hide the error being raised."""
    try:
        action()
    except Exception:
        pass


def document_too_large(system: str, key, document: dict, size: int, limit: int) -> ValidationError:
    """The error for one document over a store's size limit: its key, its size and its largest fields."""
    fields = sorted(((len(str(value)), name) for name, value in document.items()), reverse=True)[:3]
    largest = ", ".join(f"{name} (~{length:,} bytes)" for length, name in fields)
    return ValidationError(f"{system}: the document {key} is {size:,} bytes, over the {limit:,}-byte limit of one "
                           f"document; largest fields: {largest}. The write stopped before sending it (in overwrite mode the "
                           "target is unchanged).")


WRITE_MODES = ("append", "upsert", "overwrite")


def checked_write(system: str, place: str, name: str | None, mode: str, keys) -> tuple[str, tuple[str, ...]]:
    """The target name and key columns of a database/search-engine write, or the error naming what is wrong.

    ``place`` is what ``name`` is called there (collection, index, table)."""
    if not name:
        raise ConfigurationError(f"{system}: no {place}: set `{place}` in the config or pass {place}=")
    if mode not in WRITE_MODES:
        raise ConfigurationError(f"{system}: mode {mode!r} is not one of {', '.join(WRITE_MODES)}")
    keys = tuple(keys or ())
    if mode == "upsert" and not keys:
        raise ConfigurationError(f"{system}: mode 'upsert' needs key columns (id_columns)")
    return name, keys


def document_id(values: Sequence) -> str:
    """A document's id from its key values: one key column is its value as text; several are a JSON array, so
    ``("x|y", "z")`` and ``("x", "y|z")`` stay two documents (joined with ``|`` they became one)."""
    if len(values) == 1:
        return str(values[0])
    return json.dumps([v if isinstance(v, (int, float, str, bool)) else str(v) for v in values],
                      ensure_ascii=False, separators=(",", ":"))


# ----------------------------------------------------------------------------- staging targets of an overwrite

STALE_AFTER_SECONDS = 24 * 3600
_TAG = re.compile(r"(\d{20})(?:-([a-z0-9]+)-(\d+))?$")


def writer_tag() -> str:
    """Names an overwrite's staging collection or index after its writer: ``<UTC time>-<host>-<pid>`` (lower
    case, safe in MongoDB and OpenSearch names), so a later write can tell whether that writer is gone."""
    return f"{datetime.now(timezone.utc):%Y%m%d%H%M%S%f}-{_host()}-{os.getpid()}"


def _host() -> str:
    return re.sub(r"[^a-z0-9]", "", socket.gethostname().lower())[:24] or "host"


def abandoned(names: Iterable[str], prefix: str, stale_after: float = STALE_AFTER_SECONDS) -> list[str]:
    """The staging targets ``prefix`` + :func:`writer_tag` left by writers that are gone (killed mid-overwrite):
    on this host, its process is no longer running; on another host (or a name without one), it started more than
    ``stale_after`` seconds ago. A writer still at work keeps its target."""
    gone = []
    for name in names:
        match = _TAG.fullmatch(name[len(prefix):]) if name.startswith(prefix) else None
        if not match:
            continue
        started = datetime.strptime(match.group(1), "%Y%m%d%H%M%S%f").replace(tzinfo=timezone.utc).timestamp()
        old = time.time() - started > stale_after
        here = match.group(2) == _host() and match.group(3) is not None
        if old or (here and not _running(int(match.group(3)))):
            gone.append(name)
    return gone


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
