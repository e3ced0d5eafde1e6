"""What every relational reader shares: table / columns / query with bound parameters, the incremental cursor,
and turning a DB-API driver's rows into Arrow batches (for drivers that do not speak Arrow themselves).

Incremental reads keep the high-water mark of ``cursor_column`` in the state and read rows with
``cursor_column >= mark - lookback`` next time (rows whose cursor is NULL land in the initial read only): ``>=`` so rows written later with the same cursor value
are not missed, and the lookback re-reads a window for rows updated late. Re-read rows are not doubled in
bronze: with ``primary_key`` the newer version replaces the older (merge), without it an identical row is
skipped (append).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from etl_platform.arrow_columns import row_numbers
from etl_platform.errors import ConfigurationError
from etl_platform.sources.base import (
    POSITION_COLUMN,
    Extraction,
    LandingPlan,
    Rejected,
    Source,
    SourceBatch,
    decode_value,
    encode_value,
    minus_lookback,
)

CURSOR_PARAMETER = "etl_platform_cursor"


class RelationalSource(Source):
    """A table (optionally some of its columns) or a query, read whole or incrementally by a cursor column."""

    object_setting: ClassVar[str | None] = "table"
    cursor_setting: ClassVar[str | None] = "cursor_column"

    identifier_quote: ClassVar[tuple[str, str]] = ('"', '"')
    named_placeholder: ClassVar[str] = "%({})s"
    positional_placeholder: ClassVar[str] = "%s"

    table: str | None = Field(default=None, description="Table to read, optionally schema-qualified (schema.table).")
    columns: list[str] | None = Field(default=None, description="Columns of `table` to read (default: all).")
    query: str | None = Field(default=None, description="A SELECT to read instead of a table; may hold parameters.")
    params: list[Any] | None = Field(default=None, description="Values bound to the query's positional parameters.")
    named_params: dict[str, Any] | None = Field(default=None, description="Values bound to named parameters.")
    cursor_column: str | None = Field(default=None, description="Incremental reads: the column whose high-water "
                                                                "mark is kept (a number, date or timestamp).")
    lookback: float = Field(default=0, ge=0, description="Re-read this much before the mark: seconds for dates "
                                                         "and timestamps, units for numbers.")
    initial_value: str | None = Field(default=None, description="Where the first incremental read starts "
                                                                "(an ISO date/timestamp or a number).")
    primary_key: list[str] = Field(default_factory=list, description="Key columns: a re-read row replaces its "
                                                                     "older version in bronze.")

    # ------------------------------------------------------------------ the query

    def validate_target(self) -> None:
        if bool(self.table) == bool(self.query):
            raise ConfigurationError(f"{self.kind}: set exactly one of `table` or `query` "
                                     f"(got {'both' if self.table else 'neither'})")
        if self.columns and not self.table:
            raise ConfigurationError(f"{self.kind}: `columns` goes with `table`; select columns in the query instead")
        if self.params and self.named_params:
            raise ConfigurationError(f"{self.kind}: use `params` or `named_params`, not both")

    def quote(self, name: str) -> str:
        left, right = self.identifier_quote
        return ".".join(left + part.replace(right, right + right) + right for part in name.split("."))

    def base_query(self) -> str:
        self.validate_target()
        if self.table:
            columns = ", ".join(self.quote(c) for c in self.columns) if self.columns else "*"
            return f"SELECT {columns} FROM {self.quote(self.table)}"
        return f"SELECT * FROM ({self.query.strip().rstrip(';')}) AS etl_platform_query"

    def statement(self, state: dict) -> tuple[str, Sequence | dict | None, Any]:
        """The SQL, its parameters, and the cursor value it starts from (``None``: from the beginning)."""
        sql = self.base_query()
        start = self.start_value(state)
        params: Sequence | dict | None = self.named_params if self.named_params else list(self.params or []) or None
        if self.cursor_column and start is not None:
            column = self.quote(self.cursor_column)
            # Rows whose cursor is NULL have no place after a mark: the initial read lands them, later reads
            # do not see them (docs/sources.md).
            placeholder = self.named_placeholder.format(CURSOR_PARAMETER) if self.named_params else \
                self.positional_placeholder
            condition = f"{column} >= {placeholder}"
            sql += f" WHERE ({condition} OR {column} IS NULL)" if "cursor" not in state else f" WHERE {condition}"
            if self.named_params:
                params = {**self.named_params, CURSOR_PARAMETER: start}
            else:
                params = [*(params or []), start]
        return sql, params, start

    def start_value(self, state: dict) -> Any:
        if not self.cursor_column:
            return None
        if "cursor" in state:
            return minus_lookback(decode_value(state["cursor"]), self.lookback)
        if self.initial_value is not None:
            return _parse_initial(self.initial_value)
        return None

    def for_query(self, query: Any = None, params: Any = None) -> Source:
        """SQL with its parameters (a sequence for positional placeholders, a dict for named ones)."""
        if not query:
            return self
        update = {"query": query, "table": None, "columns": None, "params": None, "named_params": None}
        if isinstance(params, dict):
            update["named_params"] = params
        elif params is not None:
            update["params"] = list(params)
        return self.model_copy(update=update)

    def landing_plan(self) -> LandingPlan:
        if self.primary_key:
            return LandingPlan("merge" if self.cursor_column else "replace", tuple(self.primary_key))
        return LandingPlan("append" if self.cursor_column else "replace")

    def target_text(self) -> str:
        return f"table {self.table}" if self.table else "query"


def _parse_initial(text: str) -> Any:
    for parse in (int, Decimal):
        try:
            return parse(text)
        except Exception:
            pass
    try:
        value = datetime.fromisoformat(text)
        return value if ("T" in text or " " in text or ":" in text) else value.date()
    except ValueError:
        raise ConfigurationError(f"initial_value {text!r} is neither a number nor an ISO date/timestamp") from None


class CursorTracker:
    """Follows the high-water mark of the cursor column across batches."""

    def __init__(self, column: str | None, state: dict):
        self.column = column
        self.state = state
        self.mark = decode_value(state["cursor"]) if column and "cursor" in state else None

    def see(self, batch: pa.RecordBatch) -> None:
        if not self.column or batch.num_rows == 0:
            return
        if self.column not in batch.schema.names:
            raise ConfigurationError(f"cursor_column {self.column!r} is not among the columns read "
                                     f"({', '.join(batch.schema.names)})")
        highest = pc.max(batch.column(self.column)).as_py()
        if highest is not None and (self.mark is None or highest > self.mark):
            self.mark = highest
            self.state["cursor"] = encode_value(highest)


def with_positions(batch: pa.RecordBatch, first_row: int) -> pa.RecordBatch:
    """``_source_position`` of a relational row: its number (from 1) in the read that landed it, as a bigint.

    (Where a row came from is said by its key and cursor columns; a number costs nothing to make, a text per
    row would cost a quarter of the read.)"""
    numbers = row_numbers(first_row, batch.num_rows)
    return pa.RecordBatch.from_arrays([*batch.columns, numbers], names=[*batch.schema.names, POSITION_COLUMN])


# ----------------------------------------------------------------------------- DB-API rows to Arrow

def infer_type(values: Sequence) -> pa.DataType:
    """The Arrow type of a column from a driver's Python values (for drivers that describe no types): the type
    holding all of them where one does (integers and floats: float64; integers and decimals: a decimal), else the
    first value's (the others are then rejected with their rows)."""
    sample = [v for v in values if v is not None]
    if not sample:
        return pa.null()
    kinds = {type(v) for v in sample}
    if kinds <= {int, float} and float in kinds:
        return pa.float64()
    if kinds <= {int, Decimal} and Decimal in kinds:
        finite = [v for v in sample if isinstance(v, Decimal) and v.is_finite()]
        scale = max(max((-v.as_tuple().exponent for v in finite), default=0), 0)
        digits = max((len(str(abs(int(v)))) for v in sample if not isinstance(v, Decimal) or v.is_finite()),
                     default=1)
        return pa.decimal128(38, scale) if digits + scale <= 38 else pa.float64()
    first = sample[0]
    if isinstance(first, bool):
        return pa.bool_()
    if isinstance(first, int):
        return pa.int64()
    if isinstance(first, float):
        return pa.float64()
    if isinstance(first, datetime):
        return pa.timestamp("us", tz="UTC") if first.tzinfo else pa.timestamp("us")
    if isinstance(first, date):
        return pa.date32()
    if isinstance(first, time):
        return pa.time64("us")
    if isinstance(first, timedelta):
        return pa.duration("us")
    if isinstance(first, (bytes, bytearray, memoryview)):
        return pa.binary()
    return pa.string()


def _truncated(values: Sequence, column_type: pa.DataType) -> int | None:
    """The first row whose float value an integer column would silently truncate (pyarrow does), if any."""
    if pa.types.is_integer(column_type):
        for row, value in enumerate(values):
            if isinstance(value, float) and not value.is_integer():
                return row
    return None


def rows_to_batch(rows: list[tuple], names: list[str], types: list[pa.DataType | None],
                  position_of: Callable[[int], str]) -> tuple[pa.RecordBatch, list[Rejected]]:
    """Rows as one Arrow batch; a row holding a value its column's type cannot hold is rejected with the reason.

    ``types`` entries that are ``None`` (the driver describes no type) are inferred from these rows, batch by
    batch: the landing widens a column whose type changes between batches (``type_widening``).
    """
    columns = list(zip(*rows)) if rows else [() for _ in names]
    types = [infer_type(columns[index]) if column_type is None or pa.types.is_null(column_type) else column_type
             for index, column_type in enumerate(types)]
    bad: dict[int, str] = {}
    arrays = []
    for index, (name, column_type) in enumerate(zip(names, types)):
        try:
            if _truncated(columns[index], column_type) is not None:
                raise pa.ArrowInvalid("a float with a fraction in an integer column")
            arrays.append(pa.array(columns[index], type=column_type))
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            arrays.append(None)
            for row, value in enumerate(columns[index]):
                if row not in bad:
                    try:
                        if _truncated([value], column_type) is not None:
                            raise pa.ArrowInvalid(f"{value!r} is not an integer")
                        pa.array([value], type=column_type)
                    except (pa.ArrowException, TypeError, ValueError, OverflowError) as error:
                        bad[row] = (f"column {name}: value {str(value)[:200]!r} cannot be held as {column_type} "
                                    f"({str(error).splitlines()[0][:200]})")
    rejected = []
    if bad:
        keep = [row for row in range(len(rows)) if row not in bad]
        rejected = [Rejected(position_of(row), reason, _row_text(names, rows[row])) for row, reason in bad.items()]
        columns = [[column[row] for row in keep] for column in columns]
        arrays = [pa.array(column, type=column_type) for column, column_type in zip(columns, types)]
    schema = pa.schema([pa.field(name, column_type) for name, column_type in zip(names, types)])
    return pa.RecordBatch.from_arrays(arrays, schema=schema), rejected


def _row_text(names: list[str], row: tuple) -> str:
    import json

    return json.dumps(dict(zip(names, row)), default=str, ensure_ascii=False)


class RelationalExtraction(Extraction):
    """A read holding one database connection (``self.connection``), closed when the read ends."""

    def __init__(self, source: RelationalSource, state: dict | None):
        super().__init__(state)
        self.source = source
        self.connection = None

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception:
                pass  # the connection may already be gone (that is often why the read ended)
            self.connection = None


class DbApiExtraction(RelationalExtraction):
    """A read through a DB-API cursor that streams (server-side / unbuffered), ``batch_size`` rows at a time.

    The source supplies ``connect()``, ``open_cursor(connection)``, ``arrow_types(cursor)`` (``None`` entries
    are inferred) and ``translate_error(error)``.
    """

    def _batches(self) -> Iterator[SourceBatch]:
        source = self.source
        sql, params, _ = source.statement(self.state)
        tracker = CursorTracker(source.cursor_column, self.state)
        try:
            self.connection = source.connect()
            self.cursor = cursor = source.open_cursor(self.connection)
            cursor.execute(sql, params) if params is not None else cursor.execute(sql)
            names = [d[0] for d in cursor.description]
            types = source.arrow_types(cursor)
            read = 0
            while True:
                rows = cursor.fetchmany(source.batch_size)
                if not rows and read:
                    break
                offset = read
                batch, rejected = rows_to_batch(list(rows), names, types, lambda row: f"row {offset + row + 1}")
                read += len(rows)
                tracker.see(batch)
                yield SourceBatch(with_positions(batch, offset + 1), rejected)
                if not rows:
                    break
        except Exception as error:
            translated = source.translate_error(error)
            if translated is None or translated is error:
                raise
            raise translated from error

    def close(self) -> None:
        cursor, self.cursor = getattr(self, "cursor", None), None
        if cursor is not None:
            self.source.close_cursor(cursor)
        super().close()


class DbApiSource(RelationalSource):
    """A relational source read through a DB-API driver (rows converted to Arrow here)."""

    def extract(self, state: dict | None = None) -> Extraction:
        self.validate_target()
        return DbApiExtraction(self, state)

    def check_connection(self) -> None:
        self.connect().close()

    def connect(self):
        raise NotImplementedError

    def open_cursor(self, connection):
        return connection.cursor()

    def close_cursor(self, cursor) -> None:
        try:
            cursor.close()
        except Exception:
            pass  # the connection is gone; closing it next ends the read anyway

    def arrow_types(self, cursor) -> list[pa.DataType | None]:
        return [None] * len(cursor.description)

    def translate_error(self, error: Exception) -> Exception | None:
        return None
