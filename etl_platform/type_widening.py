"""The type-widening lattice: what a column becomes when a later batch brings another type (one place, every engine).

Sources describe their types batch by batch (a DB-API driver's first rows, a JSON page, a CSV file), so the
first batch does not decide a column for good. When a batch's type for a column differs from the column's type
so far, the column takes the narrowest type that holds both, by this lattice (DuckDB type names):

- ``NULL`` (a column that was all NULL so far) becomes the other type;
- integers widen to the wider integer (signed and unsigned to a signed type holding both), integers and
  decimals to a ``DECIMAL`` with enough integer digits and the larger scale (at most 38 digits);
  any of these with ``FLOAT`` / ``DOUBLE`` to ``DOUBLE``;
- ``DATE`` and naive timestamps to the finest naive timestamp (``TIMESTAMP_S`` < ``_MS`` < ``TIMESTAMP`` < ``_NS``);
- ``JSON`` and ``VARCHAR`` to ``VARCHAR``; any type into a ``VARCHAR`` column (text holds every value).

Nothing else widens: a timestamp with a time zone and one without, text arriving in a typed column, a decimal
needing more than 38 digits. Then each value is cast to the column's type and a value that does not fit is
quarantined with its record, naming the column, the value and both types — never an engine error.
"""

from __future__ import annotations

import re

SIGNED = {"TINYINT": 8, "SMALLINT": 16, "INTEGER": 32, "BIGINT": 64, "HUGEINT": 128}
UNSIGNED = {"UTINYINT": 8, "USMALLINT": 16, "UINTEGER": 32, "UBIGINT": 64}
SIGNED_BY_BITS = {bits: name for name, bits in SIGNED.items()}
INTEGER_DIGITS = {"TINYINT": 3, "SMALLINT": 5, "INTEGER": 10, "BIGINT": 19, "HUGEINT": 39,
                  "UTINYINT": 3, "USMALLINT": 5, "UINTEGER": 10, "UBIGINT": 20}
FLOATS = ("FLOAT", "DOUBLE")
NAIVE_TIMESTAMPS = ("TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP", "TIMESTAMP_NS")  # coarsest first
TEXT = ("VARCHAR", "JSON")
MAX_DECIMAL_DIGITS = 38
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")


def widen(current: str, incoming: str) -> str | None:
    """The type a column of type ``current`` becomes to also hold ``incoming`` values; ``None``: no widening
    (each incoming value is then cast to ``current`` and quarantined when it does not fit)."""
    current, incoming = current.upper(), incoming.upper()
    if current == incoming or incoming == '"NULL"' or incoming == "NULL":
        return current
    if current in ('"NULL"', "NULL"):
        return incoming
    if current == "VARCHAR":
        return current
    if current in TEXT and incoming in TEXT:
        return "VARCHAR"
    numeric = _numeric(current, incoming)
    if numeric is not _NOT_NUMERIC:
        return numeric
    temporal = [t for t in (current, incoming) if t == "DATE" or t in NAIVE_TIMESTAMPS]
    if len(temporal) == 2:
        timestamps = [t for t in temporal if t != "DATE"] or ["TIMESTAMP"]
        return max(timestamps, key=NAIVE_TIMESTAMPS.index)
    return None


_NOT_NUMERIC = object()


def _numeric(current: str, incoming: str):
    kinds = [_numeric_kind(t) for t in (current, incoming)]
    if None in kinds:
        return _NOT_NUMERIC
    if "float" in kinds:
        return "DOUBLE"
    if kinds == ["integer", "integer"]:
        return _wider_integer(current, incoming)
    (digits_a, scale_a), (digits_b, scale_b) = _decimal_shape(current), _decimal_shape(incoming)
    scale = max(scale_a, scale_b)
    precision = max(digits_a - scale_a, digits_b - scale_b) + scale
    return f"DECIMAL({precision},{scale})" if precision <= MAX_DECIMAL_DIGITS else None


def _numeric_kind(type_name: str) -> str | None:
    if type_name in SIGNED or type_name in UNSIGNED:
        return "integer"
    if type_name in FLOATS:
        return "float"
    if _DECIMAL.fullmatch(type_name):
        return "decimal"
    return None


def _wider_integer(a: str, b: str) -> str | None:
    if a in UNSIGNED and b in UNSIGNED:
        return a if UNSIGNED[a] >= UNSIGNED[b] else b
    bits = max(SIGNED.get(t, 0) for t in (a, b))
    unsigned_bits = max(UNSIGNED.get(t, 0) for t in (a, b))
    if unsigned_bits:
        bits = max(bits, unsigned_bits * 2)  # a signed type holding every unsigned value too
    return SIGNED_BY_BITS.get(bits)


def _decimal_shape(type_name: str) -> tuple[int, int]:
    match = _DECIMAL.fullmatch(type_name)
    if match:
        return int(match.group(1)), int(match.group(2))
    return INTEGER_DIGITS[type_name], 0
