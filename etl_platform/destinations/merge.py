"""The merge behind file-dataset upserts, with a pandas or a pyspark backend giving the same rows and types.

- ``by_id``: for each key the new row wins; among new rows with the same key, the last one.
- ``by_id_and_modification``: for each key the row with the greatest ``modification_column`` wins
  (NULL counts as oldest); on a tie the new row wins, and among new rows the last one.

Rows of the existing dataset whose key is not in the new data are kept. ``Dataset.write(mode="upsert",
merge=Merger(...).merge)`` uses it; ``etl_platform.upsert`` is the plain-Python surface over it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from etl_platform.destinations.errors import ConfigurationError, ValidationError
from etl_platform.destinations.tables import cast_to, spark_frame, widens
from etl_platform.extras import require

METHODS = ("by_id", "by_id_and_modification")
BACKENDS = ("pandas", "pyspark")
_SEQUENCE, _ORIGIN = "__etl_sequence", "__etl_origin"


class Merger:
    def __init__(self, method: str, id_columns: Sequence[str], modification_column: str | None, backend: str,
                 spark=None):
        if method not in METHODS:
            raise ConfigurationError(f"method: {method!r} is not one of {', '.join(METHODS)}")
        if backend not in BACKENDS:
            raise ConfigurationError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
        if not id_columns:
            raise ConfigurationError("id_columns: at least one key column is required")
        if method == "by_id_and_modification" and not modification_column:
            raise ConfigurationError("modification_column: required with method 'by_id_and_modification'")
        self.method, self.ids, self.modification, self.backend = method, list(id_columns), modification_column, backend
        self.spark = spark  # the pyspark backend's session (None: the active one, else the platform's)

    def merge(self, existing: pa.Table | None, new: pa.Table) -> pa.Table:
        needed = self.ids + ([self.modification] if self.method == "by_id_and_modification" else [])
        for name, table in (("new data", new), ("existing dataset", existing)):
            if table is not None:
                missing = [c for c in needed if c not in table.column_names]
                if missing:
                    raise ValidationError(f"{name} lacks the key/modification columns {missing}")
                _refuse_null_keys(table, self.ids, name)
        # The dataset's types win where the new data widens them (checked by the dataset before the merge).
        schema = pa.schema([existing.schema.field(n) if existing is not None and n in existing.column_names
                            and widens(new.schema.field(n).type, existing.schema.field(n).type)
                            else new.schema.field(n) for n in new.schema.names])
        frames = [self._tagged(cast_to(existing.select(schema.names), schema, "existing dataset"), 0)] \
            if existing is not None else []
        frames.append(self._tagged(cast_to(new, schema, "new data"), 1))
        combined = pa.concat_tables(frames)
        merged = self._merge_pandas(combined) if self.backend == "pandas" else self._merge_pyspark(combined)
        return merged.select(schema.names).cast(schema)

    @staticmethod
    def _tagged(table: pa.Table, origin: int) -> pa.Table:
        table = table.append_column(_ORIGIN, pa.array([origin] * table.num_rows, pa.int8()))
        return table.append_column(_SEQUENCE, pa.array(range(table.num_rows), pa.int64()))

    def _order(self) -> list[str]:
        """Sort keys, ascending: the last row of each key after sorting is the winner."""
        return ([self.modification] if self.method == "by_id_and_modification" else []) + [_ORIGIN, _SEQUENCE]

    def _merge_pandas(self, combined: pa.Table) -> pa.Table:
        pd = require("pandas", "The upsert's pandas backend")
        frame = combined.to_pandas(types_mapper=pd.ArrowDtype)
        frame = frame.sort_values(self._order(), na_position="first", kind="stable")
        winners = frame.drop_duplicates(self.ids, keep="last").sort_values([_ORIGIN, _SEQUENCE], kind="stable")
        return pa.Table.from_pandas(winners, preserve_index=False)

    def _merge_pyspark(self, combined: pa.Table) -> pa.Table:
        require("pyspark", "The upsert's pyspark backend")
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        from etl_platform.spark_session import spark_session

        spark = self.spark or spark_session()
        # Spark converts timestamps without a zone through its session time zone on the way in and out; in UTC
        # the round trip is exact whatever the session is set to.
        zone = spark.conf.get("spark.sql.session.timeZone")
        spark.conf.set("spark.sql.session.timeZone", "UTC")
        try:
            frame = spark_frame(spark, combined)
            order = [F.col(c).desc_nulls_last() for c in self._order()]
            ranked = frame.withColumn("__etl_rank",
                                      F.row_number().over(Window.partitionBy(*self.ids).orderBy(*order)))
            winners = ranked.where(F.col("__etl_rank") == 1).drop("__etl_rank").orderBy(_ORIGIN, _SEQUENCE)
            result = winners.toArrow() if hasattr(winners, "toArrow") else pa.Table.from_pandas(winners.toPandas())
        finally:
            spark.conf.set("spark.sql.session.timeZone", zone)
        return result.select(combined.column_names).cast(combined.schema, safe=False)


def _refuse_null_keys(table: pa.Table, ids: Sequence[str], what: str) -> None:
    """A NULL key matches nothing (pandas and Spark would each fold such rows into one): refuse it, naming it."""
    for column in ids:
        nulls = table[column].null_count
        if nulls:
            raise ValidationError(f"id_columns: {column!r} is NULL in {nulls:,} row(s) of the {what}; "
                                  "every row needs a key to be upserted")
