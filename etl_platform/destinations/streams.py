"""What the database and search-engine writers share about their input."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

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
