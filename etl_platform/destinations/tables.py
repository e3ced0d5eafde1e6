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
            return pa.Table.from_pylist(data)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise ValidationError(f"records cannot be converted to a table: {error}") from error
    raise ValidationError(
        f"cannot write a {type(data).__module__}.{type(data).__name__}: expected a pyarrow.Table, "
        "pandas.DataFrame, pyspark.sql.DataFrame or a list of dicts"
    )


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
        from pyspark.sql import SparkSession

        from etl_platform.upsert import spark_frame

        return spark_frame(SparkSession.builder.getOrCreate(), table)
    raise ValidationError(f"cannot load a dataset as {target_type!r}: use pyarrow.Table, pandas.DataFrame, "
                          "list or pyspark.sql.DataFrame")


def same_schema_or_raise(existing: pa.Schema, new: pa.Schema, where: str) -> None:
    """New data must have the existing dataset's columns and types (no silent evolution)."""
    existing_fields = {f.name: f.type for f in existing}
    new_fields = {f.name: f.type for f in new}
    missing = [name for name in existing_fields if name not in new_fields]
    extra = [name for name in new_fields if name not in existing_fields]
    changed = [f"{name} ({existing_fields[name]} -> {new_fields[name]})" for name in new_fields
               if name in existing_fields and not _compatible(existing_fields[name], new_fields[name])]
    if missing or extra or changed:
        parts = ([f"missing columns {missing}"] if missing else []) + ([f"new columns {extra}"] if extra else []) + (
            [f"changed types {changed}"] if changed else [])
        raise ValidationError(f"data does not match the existing dataset at {where}: " + "; ".join(parts))


def _compatible(old: pa.DataType, new: pa.DataType) -> bool:
    if old == new or pa.types.is_null(new) or pa.types.is_null(old):
        return True
    def is_text(t: pa.DataType) -> bool:
        return pa.types.is_string(t) or pa.types.is_large_string(t)

    same_kind = (pa.types.is_integer, pa.types.is_floating, is_text, pa.types.is_timestamp, pa.types.is_date)
    return any(kind(old) and kind(new) for kind in same_kind)
