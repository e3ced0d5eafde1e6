"""Data in and out of the destinations: everything is converted to a pyarrow.Table once, at the edge.

Accepted: pyarrow.Table / RecordBatch, pandas.DataFrame, a list of dicts (the seed's record format),
and pyspark.sql.DataFrame (through Arrow).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from etl_platform.destinations.errors import ValidationError


def to_arrow(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__
    if module.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False)
    if module.startswith("pyspark"):
        return data.toArrow() if hasattr(data, "toArrow") else pa.Table.from_pandas(data.toPandas())
    if isinstance(data, list):
        if not all(isinstance(row, dict) for row in data):
            bad = next(i for i, row in enumerate(data) if not isinstance(row, dict))
            raise ValidationError(f"record {bad} is a {type(data[bad]).__name__}, expected a dict")
        try:
            return table_of_records(data)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise ValidationError(f"records cannot be converted to a table: {error}") from error
    raise ValidationError(
        f"cannot write a {type(data).__module__}.{type(data).__name__}: expected a pyarrow.Table, "
        "pyarrow.RecordBatchReader (or an iterable of RecordBatches), pandas.DataFrame, pyspark.sql.DataFrame "
        "or a list of dicts"
    )


def table_of_records(records: list[dict]) -> pa.Table:
    """A list of dicts as a table with the union of their keys. (``pa.Table.from_pylist`` takes its columns from
    the first record alone and would silently drop a key the first record lacks.)"""
    if not records:
        return pa.table({})
    return pa.Table.from_struct_array(pa.array(records))


def from_arrow(table: pa.Table, target_type: Any) -> Any:
    """``table`` as ``target_type`` (the type annotation of the asset that loads it)."""
    if target_type in (None, Any, pa.Table) or target_type is object:
        return table
    name = getattr(target_type, "__module__", "") + "." + getattr(target_type, "__name__", "")
    if name.startswith("pandas") and name.endswith("DataFrame"):
        return table.to_pandas()
    if target_type is list or getattr(target_type, "__origin__", None) is list:
        return table.to_pylist()
    if name.startswith("pyspark") and name.endswith("DataFrame"):
        from etl_platform.spark_session import spark_session

        return spark_frame(spark_session(), table)
    raise ValidationError(f"cannot load a dataset as {target_type!r}: use pyarrow.Table, pandas.DataFrame, "
                          "list or pyspark.sql.DataFrame")


def same_schema_or_raise(existing: pa.Schema, new: pa.Schema, where: str) -> None:
    """New data must have the existing dataset's columns, with the same types or a lossless widening of them.

    Allowed widenings (new -> existing): integers to wider integers (unsigned into wider signed), 8-32-bit
    integers to float64, floats to wider floats, a timestamp to a finer unit with the same time zone,
    string <-> large_string, decimals to a larger precision with the same scale, and NULL-typed columns.
    Anything else (naive vs zone-aware timestamps, int64 into int8, a number into a string) is refused:
    no silent evolution, no lossy cast.
    """
    existing_fields = {f.name: f.type for f in existing}
    new_fields = {f.name: f.type for f in new}
    missing = [name for name in existing_fields if name not in new_fields]
    extra = [name for name in new_fields if name not in existing_fields]
    changed = [f"{name} ({existing_fields[name]} -> {new_fields[name]})" for name in new_fields
               if name in existing_fields and not widens(new_fields[name], existing_fields[name])]
    if missing or extra or changed:
        parts = ([f"missing columns {missing}"] if missing else []) + ([f"new columns {extra}"] if extra else []) + (
            [f"changed types {changed} (only lossless widenings are allowed: see docs/destinations.md)"]
            if changed else [])
        raise ValidationError(f"data does not match the existing dataset at {where}: " + "; ".join(parts))


def align_timestamps(table: pa.Table, existing: pa.Schema | None) -> pa.Table:
    """``table`` with each timestamp column given the dataset's form where that loses nothing: naive and UTC are the
    same instant (naive timestamps are UTC, as every writer of the platform takes them), and a finer unit becomes the
    dataset's coarser one when no value has digits below it (a checked cast). Used where the pandas and the pyspark
    backends share a dataset (``upsert``, seed 004's faces): pandas writes naive ``datetime64[ns]`` columns, Spark's
    ``TimestampType`` is always zone-aware microseconds (its session runs in UTC). Anything else (another zone, a
    value with nanoseconds) is left as it is, for ``same_schema_or_raise`` to name."""
    if existing is None:
        return table
    for index, field in enumerate(table.schema):
        if field.name not in existing.names or not pa.types.is_timestamp(field.type):
            continue
        old = existing.field(field.name).type
        if not pa.types.is_timestamp(old) or old == field.type:
            continue
        if field.type.tz != old.tz and {field.type.tz, old.tz} not in ({None, "UTC"}, {None, "+00:00"}):
            continue
        try:
            column = table.column(index).cast(old)  # safe: fails rather than drop digits
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        table = table.set_column(index, field.with_type(old), column)
    return table


TIME_UNITS = ("s", "ms", "us", "ns")


def widens(new: pa.DataType, old: pa.DataType) -> bool:
    """Whether every value of type ``new`` can be stored as ``old`` without loss."""
    t = pa.types
    if new == old or t.is_null(new) or t.is_null(old):
        return True
    if _is_text(new) and _is_text(old):
        return True
    if t.is_integer(new) and t.is_integer(old):
        if t.is_signed_integer(new) == t.is_signed_integer(old):
            return new.bit_width <= old.bit_width
        return t.is_unsigned_integer(new) and new.bit_width < old.bit_width
    if t.is_integer(new) and t.is_floating(old):
        return new.bit_width <= 32 and old.bit_width == 64
    if t.is_floating(new) and t.is_floating(old):
        return new.bit_width <= old.bit_width
    if t.is_timestamp(new) and t.is_timestamp(old):
        return new.tz == old.tz and TIME_UNITS.index(new.unit) <= TIME_UNITS.index(old.unit)
    if t.is_decimal(new) and t.is_decimal(old):
        return new.scale == old.scale and new.precision <= old.precision
    return False


def _is_text(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def cast_to(table: pa.Table, schema: pa.Schema, what: str) -> pa.Table:
    """``table`` with the types of ``schema`` for the columns both have (a widening checked before)."""
    fields = [schema.field(name) if name in schema.names else table.schema.field(name) for name in table.column_names]
    target = pa.schema(fields)
    if target == table.schema:
        return table
    try:
        return table.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        bad = [f"{f.name} ({f.type} -> {target.field(f.name).type})" for f in table.schema
               if f.type != target.field(f.name).type]
        raise ValidationError(f"{what}: cannot convert columns {bad}: {error}") from error


def spark_frame(spark, table: pa.Table):
    """A Spark DataFrame from Arrow: directly on Spark >= 4, through pandas before."""
    try:
        return spark.createDataFrame(table)
    except TypeError:
        return spark.createDataFrame(table.to_pandas())
