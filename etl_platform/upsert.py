"""Upsert: merge new records into an existing dataset by key, with a pandas or a pyspark backend.

    from etl_platform.upsert import upsert
    upsert(new_data, "s3://bucket/datasets/users", method="by_id_and_modification",
           id_columns=["user_id"], modification_column="updated_at", storage_options={"endpoint_url": ...})

Methods (``by_id``, ``by_id_and_modification``) and backends: ``etl_platform/destinations/merge.py``, the
merge the datasets use. Both backends give the same rows and types, and share datasets: a dataset written from
pandas (naive timestamps) takes upserts of Spark DataFrames (zone-aware UTC timestamps) and the reverse, the new
rows given the dataset's form (``tables.align_timestamps``). If the existing dataset cannot be read, the
upsert raises ``ReadError`` and leaves the dataset untouched: it never replaces data it could not read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from etl_platform.destinations.dataset import Dataset
from etl_platform.destinations.formats import FileFormat
from etl_platform.destinations.merge import BACKENDS, METHODS, Merger
from etl_platform.destinations.tables import spark_frame
from etl_platform.destinations.stores import store_for_uri
from etl_platform.destinations.streams import table_or_reader
from etl_platform.destinations.tables import align_timestamps

__all__ = ["upsert", "Merger", "METHODS", "BACKENDS", "spark_frame"]


def upsert(
    new_data: Any,
    target_uri: str,
    method: str,
    id_columns: Sequence[str],
    modification_column: str | None = None,
    backend: str = "pandas",
    format: str = "parquet",
    compression: str | None = None,
    partition_by: Sequence[str] = (),
    storage_options: dict | None = None,
    spark: Any = None,
) -> dict:
    """Merge ``new_data`` into the dataset at ``target_uri``; returns what was written. ``spark``: the session
    the pyspark backend merges on (default: the active one, else the platform's)."""
    store, path = store_for_uri(target_uri, storage_options or {})
    dataset = Dataset(store, path, FileFormat(format, compression), tuple(partition_by))
    merger = Merger(method, id_columns, modification_column, backend, spark)
    data = table_or_reader(new_data)  # the merge holds the new rows whole anyway
    table = align_timestamps(data if isinstance(data, pa.Table) else data.read_all(), dataset.schema())
    result = dataset.write(table, mode="upsert", merge=merger.merge)
    return {"success": True, "records_written": result.records_written, "size_bytes": result.size_bytes,
            "files": result.files, "uris": result.uris}
