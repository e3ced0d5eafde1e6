"""CSV files into a bronze table, every record kept as text.

Fast path: DuckDB's parallel CSV reader with the dialect fixed to RFC 4180 (no sniffing) and the
columns taken from the file's own header. Records keep file order (DuckDB preserves insertion
order), so ``rowid + 1`` of the staging table is the record's 1-based number in the file.

Records DuckDB refuses (too many or too few fields, a stray quote, bytes that are not UTF-8) are
set aside by its reader (``store_rejects``) and only those records are read again, exactly, with
Python's ``csv`` module: each is kept with ``_parse_error`` saying why and its surplus fields in
``_extra_fields``. The other records' numbers are shifted past the rejected ones.

Exact path: when that repair cannot number records exactly (blank lines, a compressed file, a
record longer than DuckDB's line limit) the whole file is read with Python's ``csv`` module in
batches. Only errors about the file's content lead there: running out of memory or disk fails the
load with the engine's error.
"""

from __future__ import annotations

import csv
import io
import json
import mmap
import os
import sys
from collections.abc import Iterator

import duckdb
import pyarrow as pa

from etl_platform.landing.files import LandingFile, open_binary
from etl_platform.landing.inspect import corrupt_compression, decompression_errors
from etl_platform.landing.staging import INGESTED_AT, SOURCE_FILE, STAGE, Staged
from etl_platform.warehouse.base import sql_string as _literal

BATCH_ROWS = 50_000
BATCH_CELLS = 1_000_000  # fields per batch on the exact path: a very wide file gets fewer rows per batch
WIDE_HEADER = 256  # DuckDB's reader needs memory per column: wider files take the exact path
REPLACEMENT_CHAR = "\ufffd"
REJECTS_TABLE, REJECTS_SCANS = "_bronze_csv_rejects", "_bronze_csv_reject_scans"
BLANK_LINE_MARKS = (b"\n\n", b"\r\r", b"\n\r\n")
SCAN_CHUNK = 8 * 1024 * 1024
CR_AS_LF = bytes.maketrans(b"\r", b"\n")
MAX_LINE_BYTES = 2_000_000  # DuckDB's max_line_size; a longer record goes through the exact path

# The stage's bronze rows, numbered by their position in the file (fast path) or by the reader (the others).
# The fast path's rows are in file order already and DuckDB keeps that order in a plain INSERT ... SELECT
# (preserve_insertion_order, on by default): an ORDER BY rowid would sort every record again (0.25 s of 1M).
FILE_ORDER_INSERT = (f"SELECT * EXCLUDE (_row_number), {SOURCE_FILE} AS _source_file, "
                     f"rowid + 1 AS _row_number, {INGESTED_AT} AS _ingested_at FROM {STAGE}")
NUMBERED_INSERT = (f"SELECT * EXCLUDE (_row_number), {SOURCE_FILE} AS _source_file, _row_number, "
                   f"{INGESTED_AT} AS _ingested_at FROM {STAGE} ORDER BY _row_number")

# A record may be as long as the file (one 50 MB line is still one record).
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _text(file: LandingFile) -> io.TextIOWrapper:
    return io.TextIOWrapper(open_binary(file), encoding="utf-8-sig", errors="replace", newline="")


def read_header(file: LandingFile) -> list[str]:
    """The file's header fields (the first record that is not blank), trimmed, BOM removed; ``[]`` if none."""
    try:
        with _text(file) as handle:
            header = next((fields for fields in csv.reader(handle, strict=False) if fields), [])
    except decompression_errors() as error:
        raise corrupt_compression(file, error) from None
    return unique_names([printable(name.strip()) for name in header])


def printable(name: str) -> str:
    """``name`` with control characters escaped (``a\\x00b``): safe in SQL, logs and check results."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name)


def unique_names(names: list[str]) -> list[str]:
    """Header names made unique (``a, a`` -> ``a, a_2``) and non-empty (``column_3``)."""
    seen: dict[str, int] = {}
    result = []
    for position, name in enumerate(names, start=1):
        name = name or f"column_{position}"
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return result


def stage(conn: duckdb.DuckDBPyConnection, expected_columns: tuple[str, ...], file: LandingFile,
          header: list[str]) -> Staged:
    """Read ``file`` (whose header is ``header``) into the temporary staging table, outside any transaction.

    A read that fails leaves the bronze table untouched: only the commit of :meth:`Staged.rows_sql` touches it.
    """
    if not header:
        return Staged(0, "empty", header, "")

    def exact() -> Staged:
        return Staged(_stage_with_python(conn, expected_columns, header, file), "python-csv", header, NUMBERED_INSERT)

    if len(header) > WIDE_HEADER or not _header_is_first_line(file) or _has_lone_carriage_return(file):
        return exact()
    select = _projection(header, expected_columns)
    try:
        return Staged(_stage_with_duckdb(conn, select, header, file), "duckdb", header, FILE_ORDER_INSERT)
    except duckdb.Error as error:
        if not _is_content_error(error):
            raise  # out of memory, disk full, ...: not the file's fault; the load fails with DuckDB's message
    # Some records are malformed. Where DuckDB's numbering of the records it sets aside can be trusted, read
    # only those again; else read the whole file exactly.
    if file.compression or not _plain_lines(file):
        return exact()
    try:
        try:
            rows = _stage_with_duckdb(conn, select, header, file, keep_rejects=True)
        except duckdb.Error as error:
            if not _is_content_error(error):
                raise
            rows = 0
        rejected = _rejected_records(conn) if rows else []
        if not rejected or not _offsets_start_records(file, rejected):
            return exact()
        repaired = _repair(conn, expected_columns, header, file, rejected)
        return Staged(rows + repaired, "duckdb+python-csv", header, NUMBERED_INSERT)
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {REJECTS_TABLE}; DROP TABLE IF EXISTS {REJECTS_SCANS}")


def _is_content_error(error: duckdb.Error) -> bool:
    """Whether DuckDB refused the file's content (then the exact reader takes over), not the machine's limits."""
    if isinstance(error, (duckdb.InvalidInputException, duckdb.ConversionException)):
        return True
    text = str(error)
    if isinstance(error, duckdb.NotImplementedException):
        return "CSV" in text or "line size" in text.lower() or "full read" in text
    if isinstance(error, duckdb.IOException):
        return any(word in text for word in ("GZIP", "gzip", "ZSTD", "zstd", "compressed"))
    return False


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _projection(header: list[str], expected_columns: tuple[str, ...]) -> str:
    """SELECT list mapping the file's columns onto the bronze columns.

    Columns the contract does not name are kept as a JSON object in ``_extra_fields``.
    """
    present = set(header)
    columns = [_quote(c) if c in present else f"NULL AS {_quote(c)}" for c in expected_columns]
    pairs = [f"{_literal(c)}, {_quote(c)}" for c in header if c not in expected_columns]
    extra = f"CAST(json_object({', '.join(pairs)}) AS VARCHAR)" if pairs else "NULL::VARCHAR"
    columns.append(f"{extra} AS _extra_fields")
    return ", ".join(columns)


def _stage_with_duckdb(conn, select: str, header: list[str], file: LandingFile, keep_rejects: bool = False) -> int:
    """Read with DuckDB. Strict: any malformed record raises. With ``keep_rejects`` malformed records are set
    aside in ``REJECTS_TABLE`` instead (but a physical line over ``max_line_size`` is then dropped without a
    word, so that mode is only used once :func:`_plain_lines` has ruled such lines out)."""
    columns = "{" + ", ".join(f"{_literal(name)}: 'VARCHAR'" for name in header) + "}"
    rejects = (f", store_rejects = true, rejects_table = '{REJECTS_TABLE}', rejects_scan = '{REJECTS_SCANS}'"
               if keep_rejects else "")
    conn.execute(f"DROP TABLE IF EXISTS {REJECTS_TABLE}; DROP TABLE IF EXISTS {REJECTS_SCANS}")
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {STAGE} AS SELECT {select}, NULL::VARCHAR AS _parse_error, "
        "NULL::BIGINT AS _row_number "
        "FROM read_csv(?, header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
        f"strict_mode = true, encoding = 'utf-8', compression = '{file.compression or 'none'}', "
        f"max_line_size = {MAX_LINE_BYTES}, columns = {columns}{rejects})",
        [str(file.path)],
    )
    return conn.execute(f"SELECT count(*) FROM {STAGE}").fetchall()[0][0]


def _rejected_records(conn) -> list[tuple[int, int]]:
    """``(record number, byte offset)`` of each record DuckDB set aside, in file order."""
    rows = conn.execute(
        f"SELECT line, min(line_byte_position) FROM {REJECTS_TABLE} GROUP BY line ORDER BY line"
    ).fetchall()
    # ``line`` counts the header and blank lines but not line breaks inside quotes; the byte position is 1-based.
    return [(line - 1, position - 1) for line, position in rows]


def _has_lone_carriage_return(file: LandingFile) -> bool:
    """Whether a CR not followed by LF occurs anywhere (CR-only line ends, or a CR inside a quoted field).

    DuckDB 2.0's reader mis-reads such files, some without an error (a quoted "\\r" field comes back NULL),
    so they take the exact path. Reading the file through also proves a compressed stream complete (DuckDB
    reads a truncated zstd stream without a word)."""
    if not file.compression and not _has_carriage_return(file):
        return False  # most files: one memchr over the mapped file (~10 ms for 80 MB; reading it in chunks ~80 ms)
    previous_ends_with_cr = False  # a CR at the end of a chunk is judged by the next chunk's first byte
    try:
        with open_binary(file) as handle:
            while chunk := handle.read(SCAN_CHUNK):
                if previous_ends_with_cr and not chunk.startswith(b"\n"):
                    return True
                carriage_returns = chunk.count(b"\r")  # most files have none: one pass over the bytes
                ends_with_cr = chunk.endswith(b"\r")
                if carriage_returns and carriage_returns - chunk.count(b"\r\n") - ends_with_cr:
                    return True
                previous_ends_with_cr = ends_with_cr
    except decompression_errors() as error:
        raise corrupt_compression(file, error) from None
    return previous_ends_with_cr


def _has_carriage_return(file: LandingFile) -> bool:
    """Whether an uncompressed file holds a CR byte at all."""
    with open(file.path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return False
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return data.find(b"\r") != -1


def _header_is_first_line(file: LandingFile) -> bool:
    with open_binary(file) as handle:
        start = handle.read(4).removeprefix(b"\xef\xbb\xbf")
    return not start.startswith((b"\n", b"\r"))


def _plain_lines(file: LandingFile) -> bool:
    """No blank line and no physical line of ``MAX_LINE_BYTES`` bytes or more: then DuckDB's record numbers
    (which count blank lines, unlike ours) match ours, and it drops no over-long line unannounced.

    A line must break within ``MAX_LINE_BYTES`` of its start: one ``rfind`` per that many bytes finds the last
    break of each window (most files' lines are far shorter: a few calls per chunk)."""
    with open(file.path, "rb") as handle:
        tail, carried = b"", 0  # the last bytes of the previous chunk; the current line's bytes in earlier chunks
        while chunk := handle.read(SCAN_CHUNK):
            window = tail + chunk
            if any(mark in window for mark in BLANK_LINE_MARKS):
                return False
            data, start = chunk.translate(CR_AS_LF), 0  # a CR is a line break as an LF is
            while True:
                end = start + MAX_LINE_BYTES - carried  # the current line must break before this index
                if end > len(data):
                    last = data.rfind(b"\n", start)
                    carried = carried + len(data) - start if last == -1 else len(data) - last - 1
                    break
                last = data.rfind(b"\n", start, end)
                if last == -1:
                    return False
                start, carried = last + 1, 0
            tail = window[-2:]
    return True


def _offsets_start_records(file: LandingFile, rejected: list[tuple[int, int]]) -> bool:
    """Each rejected record's byte offset follows a line break (a check on DuckDB's reported positions)."""
    with open(file.path, "rb") as handle:
        for _, offset in rejected:
            if offset <= 0:
                return False
            handle.seek(offset - 1)
            if handle.read(1) not in (b"\n", b"\r"):
                return False
    return True


def _repair(conn, expected_columns, header: list[str], file: LandingFile, rejected: list[tuple[int, int]]) -> int:
    """Number the accepted records past the rejected ones, then read each rejected record exactly."""
    values = ", ".join(f"({number})" for number, _ in rejected)
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE _bronze_rejected AS SELECT number, number - row_number() OVER (ORDER BY number) "
        f"AS accepted_before FROM (VALUES {values}) AS r(number)"
    )
    # The k-th accepted record is preceded by every rejected record with fewer than k accepted records before it.
    conn.execute(
        f"UPDATE {STAGE} SET _row_number = rowid + 1 + (SELECT count(*) FROM _bronze_rejected AS r "
        f"WHERE r.accepted_before < {STAGE}.rowid + 1)"
    )
    conn.execute("DROP TABLE _bronze_rejected")
    return _insert_batches(conn, _rejected_batches(file, header, expected_columns, rejected))


def _rejected_batches(file: LandingFile, header: list[str], expected_columns,
                      rejected: list[tuple[int, int]]) -> Iterator[pa.Table]:
    rows = _Rows(header, expected_columns)
    with open(file.path, "rb") as raw:
        for number, offset in rejected:
            raw.seek(offset)
            with io.TextIOWrapper(io.BufferedReader(_Unclosed(raw)), encoding="utf-8", errors="replace",
                                  newline="") as handle:
                fields = next(csv.reader(handle, strict=False), [])
            rows.add(number, fields)
            if rows.full:
                yield rows.take()
    if rows.count:
        yield rows.take()


class _Unclosed(io.RawIOBase):
    """A view of an open binary file that a text wrapper may close without closing the file."""

    def __init__(self, raw):
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _stage_with_python(conn, expected_columns, header: list[str], file: LandingFile) -> int:
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {STAGE} AS SELECT * FROM {_empty_batch_sql(expected_columns)}")
    try:
        return _insert_batches(conn, _python_batches(file, header, expected_columns))
    except decompression_errors() as error:
        raise corrupt_compression(file, error) from None


def _insert_batches(conn, batches: Iterator[pa.Table]) -> int:
    total = 0
    for batch in batches:
        conn.register("_bronze_csv_batch", batch)
        conn.execute(f"INSERT INTO {STAGE} BY NAME SELECT * FROM _bronze_csv_batch")
        conn.unregister("_bronze_csv_batch")
        total += batch.num_rows
    return total


def _empty_batch_sql(expected_columns: tuple[str, ...]) -> str:
    columns = ", ".join(f"NULL::VARCHAR AS {_quote(name)}" for name in [*expected_columns, "_extra_fields", "_parse_error"])
    return f"(SELECT {columns}, NULL::BIGINT AS _row_number WHERE false)"


def _python_batches(file: LandingFile, header: list[str], expected_columns) -> Iterator[pa.Table]:
    rows = _Rows(header, expected_columns)
    with _text(file) as handle:
        reader = (fields for fields in csv.reader(handle, strict=False) if fields)  # blank lines hold no record
        next(reader, None)
        for number, fields in enumerate(reader, start=1):
            rows.add(number, fields)
            if rows.full:
                yield rows.take()
    if rows.count:
        yield rows.take()


class _Rows:
    """Records read exactly, as Arrow batches of the bronze columns.

    The contract's columns are kept as columns; the file's other columns and the fields beyond the
    header's width are folded into ``_extra_fields`` (a JSON object, as on the fast path) right here,
    so a batch stays narrow however wide the file is. Batches hold at most ``BATCH_CELLS`` fields.
    """

    def __init__(self, header: list[str], expected_columns: tuple[str, ...]):
        self.header = header
        self.expected = [(name, header.index(name) if name in header else None) for name in expected_columns]
        self.others = [(position, name) for position, name in enumerate(header) if name not in expected_columns]
        self.batch_rows = max(1, min(BATCH_ROWS, BATCH_CELLS // max(len(header), 1)))
        self._reset()

    def _reset(self) -> None:
        self.columns: list[list] = [[] for _ in self.expected]
        self.extras, self.errors, self.numbers = [], [], []

    @property
    def count(self) -> int:
        return len(self.numbers)

    @property
    def full(self) -> bool:
        return self.count >= self.batch_rows

    def add(self, number: int, fields: list[str]) -> None:
        width = len(self.header)
        problems = []
        if len(fields) != width:
            problems.append(f"expected {width} fields, found {len(fields)}")
        if any(REPLACEMENT_CHAR in value for value in fields):
            problems.append("bytes that are not UTF-8 were replaced by U+FFFD")
        for column, (_, position) in zip(self.columns, self.expected):
            # An empty field is NULL, as DuckDB's reader gives it: both paths store the same bronze rows.
            column.append(fields[position] or None if position is not None and position < len(fields) else None)
        extra = {name: fields[position] if position < len(fields) else None for position, name in self.others}
        if len(fields) > width:
            extra["_surplus_fields"] = fields[width:]
        self.extras.append(json.dumps(extra, ensure_ascii=False, separators=(",", ":")) if extra else None)
        self.errors.append("; ".join(problems) or None)
        self.numbers.append(number)

    def take(self) -> pa.Table:
        arrays = {name: pa.array(values, pa.string()) for (name, _), values in zip(self.expected, self.columns)}
        arrays["_extra_fields"] = pa.array(self.extras, pa.string())
        arrays["_parse_error"] = pa.array(self.errors, pa.string())
        arrays["_row_number"] = pa.array(self.numbers, pa.int64())
        self._reset()
        return pa.table(arrays)
