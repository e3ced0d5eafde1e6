"""JSON-lines files into a bronze table: each line kept as its raw text, parsed later in SQL.

A line that is not valid JSON is kept like any other (silver quarantines it as ``malformed_json``).
JSON text is UTF-8: a line with other bytes is kept with them replaced by U+FFFD and ``_parse_error``
saying so, and silver quarantines it as ``malformed_json`` too.
A line longer than MAX_LINE_BYTES is kept with ``_parse_error`` saying so (silver quarantines it
without parsing it). Lines holding only white space carry no record and are not stored; ``_row_number`` is the line's
1-based number in the file, so the numbers of the stored lines still point at the right place.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterator

import duckdb
import pyarrow as pa

from etl_platform.landing.files import LandingFile, open_binary
from etl_platform.landing.inspect import corrupt_compression, decompression_errors
from etl_platform.landing.staging import INGESTED_AT, SOURCE_FILE, STAGE, Staged

LINE_COLUMN = "line"
BATCH_LINES = 50_000
# A longer line is kept but flagged, so silver quarantines it without parsing it (a JSON parser needs many
# times a document's size in memory).
MAX_LINE_BYTES = 8 * 1024 * 1024
BOM = "\ufeff".encode()


def stage(conn: duckdb.DuckDBPyConnection, file: LandingFile) -> Staged:
    """Read ``file``'s lines into the staging table in batches."""
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {STAGE} ({LINE_COLUMN} VARCHAR, _parse_error VARCHAR, _row_number BIGINT)")
    total = 0
    try:
        for batch in _batches(file):
            conn.register("_bronze_jsonl_batch", batch)
            conn.execute(f"INSERT INTO {STAGE} SELECT * FROM _bronze_jsonl_batch")
            conn.unregister("_bronze_jsonl_batch")
            total += batch.num_rows
    except decompression_errors() as error:
        raise corrupt_compression(file, error) from None
    return Staged(
        total, "python-lines", [],
        f"SELECT {LINE_COLUMN}, _parse_error, {SOURCE_FILE} AS _source_file, _row_number, "
        f"{INGESTED_AT} AS _ingested_at FROM {STAGE} ORDER BY _row_number",
    )


def _batches(file: LandingFile) -> Iterator[pa.Table]:
    lines: list[bytes] = []  # each line's UTF-8 bytes (with U+FFFD where the file's bytes were not UTF-8)
    errors: list[str | None] = []
    numbers: list[int] = []
    with open_binary(file) as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1:
                raw = raw.removeprefix(BOM)
            raw = raw.rstrip(b"\r\n")
            try:
                line, error, data = raw.decode("utf-8"), None, raw
            except UnicodeDecodeError as problem:
                line = raw.decode("utf-8", errors="replace")
                data = line.encode("utf-8")
                error = f"bytes that are not UTF-8 (at byte {problem.start}) were replaced by U+FFFD"
            if not line.strip():
                continue
            if len(raw) > MAX_LINE_BYTES:
                error = (f"the line is {len(raw):,} bytes long, more than the {MAX_LINE_BYTES // 1024 // 1024} MiB "
                         "a JSON line may hold")
            lines.append(data)
            errors.append(error)
            numbers.append(number)
            if len(lines) >= BATCH_LINES:
                yield _batch(lines, errors, numbers)
                lines, errors, numbers = [], [], []
    if lines:
        yield _batch(lines, errors, numbers)


def _batch(lines: list[bytes], errors: list[str | None], numbers: list[int]) -> pa.Table:
    """The batch as Arrow, built from buffers: ``pa.array`` over Python lists imports pandas (~0.2 s of a run's
    start) and encodes every string again; the lines are UTF-8 bytes already."""
    offsets = array("q", [0])
    offsets.extend(itertools.accumulate(map(len, lines)))
    line_array = pa.LargeStringArray.from_buffers(len(lines), pa.py_buffer(offsets), pa.py_buffer(b"".join(lines)))
    if any(error is not None for error in errors):
        error_array = pa.array(errors, pa.string())
    else:
        error_array = pa.nulls(len(lines), pa.string())
    number_array = pa.Array.from_buffers(pa.int64(), len(numbers), [None, pa.py_buffer(array("q", numbers))])
    return pa.Table.from_arrays([line_array, error_array, number_array],
                                names=[LINE_COLUMN, "_parse_error", "_row_number"])
