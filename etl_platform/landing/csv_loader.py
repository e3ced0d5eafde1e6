"""CSV files into a bronze table, every record kept as text.

Fast path: DuckDB's parallel CSV reader with the dialect fixed to RFC 4180 (no sniffing) and the
columns taken from the file's own header. Records keep file order (DuckDB preserves insertion
order), so ``rowid + 1`` of the staging table is the record's 1-based number in the file.

Exact path: when DuckDB refuses the file (a record with too many or too few fields, a stray quote,
bytes that are not UTF-8) the file is read again with Python's ``csv`` module in batches, and each
record that cannot be split into the header's fields is kept too, with ``_parse_error`` saying why
and its surplus fields in ``_extra_fields``. Nothing is dropped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator

import duckdb
import pyarrow as pa

from etl_platform.landing.files import LandingFile
from etl_platform.landing.staging import STAGE, Staged


BATCH_ROWS = 50_000
REPLACEMENT_CHAR = "\ufffd"


def read_header(file: LandingFile) -> list[str]:
    """The file's header fields, trimmed, BOM removed; ``[]`` for an empty file."""
    with open(file.path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        header = next(csv.reader(handle), [])
    return unique_names([name.strip() for name in header])


def unique_names(names: list[str]) -> list[str]:
    """Header names made unique (``a, a`` -> ``a, a_2``) and non-empty (``column_3``)."""
    seen: dict[str, int] = {}
    result = []
    for position, name in enumerate(names, start=1):
        name = name or f"column_{position}"
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return result


def stage(conn: duckdb.DuckDBPyConnection, expected_columns: tuple[str, ...], file: LandingFile) -> Staged:
    """Read ``file`` into the temporary staging table, outside any transaction.

    A read that fails leaves the bronze table untouched: only :meth:`Staged.insert_sql` touches it.
    """
    header = read_header(file) if file.size else []
    if not header:
        return Staged(0, "empty", header, "")
    try:
        rows = _stage_with_duckdb(conn, _projection(header, expected_columns), header, file)
        return Staged(rows, "duckdb", header, f"SELECT *, ? AS _source_file, rowid + 1, ? FROM {STAGE} ORDER BY rowid")
    except duckdb.Error:
        # DuckDB refused the file's structure; the exact reader keeps every record and says what is wrong.
        rows = _stage_with_python(conn, _projection(header, expected_columns, surplus=True), header, file)
        return Staged(
            rows, "python-csv", header,
            f"SELECT * EXCLUDE (_row_number), ? AS _source_file, _row_number, ? FROM {STAGE} ORDER BY _row_number",
        )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _projection(header: list[str], expected_columns: tuple[str, ...], surplus: bool = False) -> str:
    """SELECT list mapping the file's columns onto the bronze columns.

    Columns the contract does not name, and (with ``surplus``) fields beyond the header's width,
    are kept as a JSON object in ``_extra_fields``.
    """
    present = set(header)
    columns = [_quote(c) if c in present else f"NULL AS {_quote(c)}" for c in expected_columns]
    pairs = [f"{_literal(c)}, {_quote(c)}" for c in header if c not in expected_columns]
    extra = f"CAST(json_object({', '.join(pairs)}) AS VARCHAR)" if pairs else "NULL"
    if surplus:
        with_surplus = ", ".join([*pairs, "'_surplus_fields', json(_surplus_fields)"])
        extra = f"CASE WHEN _surplus_fields IS NULL THEN {extra} ELSE CAST(json_object({with_surplus}) AS VARCHAR) END"
    columns.append(f"{extra} AS _extra_fields")
    return ", ".join(columns)


def _stage_with_duckdb(conn, select: str, header: list[str], file: LandingFile) -> int:
    columns = "{" + ", ".join(f"{_literal(name)}: 'VARCHAR'" for name in header) + "}"
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {STAGE} AS SELECT {select}, NULL::VARCHAR AS _parse_error "
        "FROM read_csv(?, header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
        f"strict_mode = true, encoding = 'utf-8', columns = {columns})",
        [str(file.path)],
    )
    return conn.execute(f"SELECT count(*) FROM {STAGE}").fetchall()[0][0]


def _stage_with_python(conn, select: str, header: list[str], file: LandingFile) -> int:
    total = 0
    for batch in _python_batches(file, header):
        conn.register("_bronze_csv_batch", batch)
        statement = f"INSERT INTO {STAGE} " if total else f"CREATE OR REPLACE TEMP TABLE {STAGE} AS "
        conn.execute(statement + f"SELECT {select}, _parse_error, _row_number FROM _bronze_csv_batch")
        conn.unregister("_bronze_csv_batch")
        total += batch.num_rows
    if not total:
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE {STAGE} AS SELECT {select}, _parse_error, _row_number FROM "
            f"{_empty_batch_sql(header)}"
        )
    return total


def _empty_batch_sql(header: list[str]) -> str:
    columns = ", ".join(f"NULL::VARCHAR AS {_quote(name)}" for name in [*header, "_surplus_fields", "_parse_error"])
    return f"(SELECT {columns}, NULL::BIGINT AS _row_number WHERE false)"


def _python_batches(file: LandingFile, header: list[str]) -> Iterator[pa.Table]:
    width = len(header)
    with open(file.path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle, strict=False)
        next(reader, None)
        columns: list[list] = [[] for _ in range(width)]
        extras, errors, numbers = [], [], []
        record_number = 0
        for fields in reader:
            if not fields:
                continue  # a blank line holds no record (DuckDB's reader skips it too)
            record_number += 1
            problems = []
            if len(fields) != width:
                problems.append(f"expected {width} fields, found {len(fields)}")
            if any(REPLACEMENT_CHAR in value for value in fields):
                problems.append("bytes that are not UTF-8 were replaced by U+FFFD")
            for position in range(width):
                columns[position].append(fields[position] if position < len(fields) else None)
            extras.append(json.dumps(fields[width:], ensure_ascii=False) if len(fields) > width else None)
            errors.append("; ".join(problems) or None)
            numbers.append(record_number)
            if len(numbers) >= BATCH_ROWS:
                yield _batch(header, columns, extras, errors, numbers)
                columns = [[] for _ in range(width)]
                extras, errors, numbers = [], [], []
        if numbers:
            yield _batch(header, columns, extras, errors, numbers)


def _batch(header, columns, extras, errors, numbers) -> pa.Table:
    arrays = {name: pa.array(values, pa.string()) for name, values in zip(header, columns)}
    arrays["_surplus_fields"] = pa.array(extras, pa.string())
    arrays["_parse_error"] = pa.array(errors, pa.string())
    arrays["_row_number"] = pa.array(numbers, pa.int64())
    return pa.table(arrays)
