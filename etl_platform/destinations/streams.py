"""What the database and search-engine writers share about their input."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from etl_platform.destinations.errors import ConfigurationError

TABLE_CHUNK_ROWS = 10_000


def record_batches(data) -> Iterator[pa.RecordBatch]:
    """A pyarrow Table, RecordBatch, RecordBatchReader or any iterable of batches, as batches (a table in
    chunks of 10,000 rows, so the documents built from one chunk stay small)."""
    if isinstance(data, pa.Table):
        yield from data.to_batches(max_chunksize=TABLE_CHUNK_ROWS)
    elif isinstance(data, pa.RecordBatch):
        yield data
    else:
        yield from data


def quietly(action) -> None:
    """Run a clean-up step whose failure must not hide the error being raised."""
    try:
        action()
    except Exception:
        pass


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
