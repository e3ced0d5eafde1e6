"""Upsert: merge new records into an existing dataset by key, with a pandas or a pyspark backend.

    from etl_platform.upsert import upsert
    upsert(new_data, "s3://bucket/datasets/users", method="by_id_and_modification",
           id_columns=["user_id"], modification_column="updated_at", storage_options={"endpoint_url": ...})

Methods (``by_id``, ``by_id_and_modification``) and backends: ``etl_platform/destinations/merge.py``, the
merge the datasets use. Both backends give the same rows and types. If the existing dataset cannot be read, the upsert raises ``ReadError`` and leaves
the dataset untouched: it never replaces data it could not read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from etl_platform.destinations.dataset import Dataset
from etl_platform.destinations.formats import FileFormat
from etl_platform.destinations.merge import BACKENDS, METHODS, Merger, spark_frame
from etl_platform.destinations.stores import store_for_uri

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
) -> dict:
    """Merge ``new_data`` into the dataset at ``target_uri``; returns what was written."""
    store, path = store_for_uri(target_uri, storage_options or {})
    dataset = Dataset(store, path, FileFormat(format, compression), tuple(partition_by))
    merger = Merger(method, id_columns, modification_column, backend)
    result = dataset.write(new_data, mode="upsert", merge=merger.merge)
    return {"success": True, "records_written": result.records_written, "size_bytes": result.size_bytes,
            "files": result.files, "uris": result.uris}
