"""A Delta Lake table as a source: the table (or an earlier version of it: time travel) read in Arrow batches.

    from etl_platform.readers import ClientFactory

    reader = ClientFactory.create_client("delta", {"url": "s3://lake/tables/users", "version": 3})
    rows = reader.execute_query()                                   # version 3, as a list of dicts
    rows = reader.execute_query(["id", "email"], {"as_of": "2026-12-01T00:00:00Z"})   # columns, at a time

The table is read through ``deltalake`` (no Spark) from any store the datasets write (local disk, S3, Azure Blob,
GCS; the same settings). As a source asset it lands ``replace``: each run, bronze holds the table's version read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import Field

from etl_platform.errors import ClientConnectionError, ConfigurationError
from etl_platform.sources.base import Extraction, LandingPlan, Source, SourceBatch
from etl_platform.sources.files import StoreSource


class DeltaTableSource(StoreSource):
    """The Delta table at ``url``: its current version, or ``version`` / ``as_of`` (time travel)."""

    kind = "delta"

    version: int | None = Field(default=None, ge=0, description="Read this version of the table (time travel).")
    as_of: str | None = Field(default=None, description="Read the version current at this time (ISO 8601).")
    columns: list[str] | None = Field(default=None, description="Only these columns (default: all).")

    def describe(self) -> str:
        at = f"@v{self.version}" if self.version is not None else (f"@{self.as_of}" if self.as_of else "")
        return f"delta:{self.url.rstrip('/')}{at}"

    def landing_plan(self) -> LandingPlan:
        return LandingPlan("replace")

    def for_query(self, query: Any = None, params: Any = None) -> Source:
        """``query``: the columns to read (a list, or ``*``); ``params``: ``{"version": n}`` or ``{"as_of": ...}``."""
        update = dict(params or {})
        unknown = sorted(set(update) - {"version", "as_of"})
        if unknown:
            raise ConfigurationError(f"delta: unknown parameter(s) {unknown}; use version or as_of")
        if query and query != "*":
            update["columns"] = [query] if isinstance(query, str) else list(query)
        return self.model_copy(update=update)

    def extract(self, state: dict | None = None) -> Extraction:
        return DeltaExtraction(self, state)


class DeltaExtraction(Extraction):
    def __init__(self, source: DeltaTableSource, state: dict | None):
        super().__init__(state)
        self.source = source

    def _batches(self) -> Iterator[SourceBatch]:
        from etl_platform.destinations.delta import DeltaDataset
        from etl_platform.destinations.errors import DestinationError

        source = self.source
        if source.version is not None and source.as_of:
            raise ConfigurationError(f"{source.describe()}: give version or as_of, not both")
        delta = DeltaDataset(source.store(), "")
        try:
            table = delta.table(source.version, source.as_of)
        except DestinationError as error:
            raise ClientConnectionError(f"{source.describe()}: {error}") from error
        if table is None:
            raise ConfigurationError(f"{source.describe()}: there is no Delta table at {delta.uri}")
        self.state["version"] = table.version()
        dataset = table.to_pyarrow_dataset()
        missing = sorted(set(source.columns or ()) - set(dataset.schema.names))
        if missing:
            raise ConfigurationError(f"{source.describe()}: no column(s) {missing}; the table has "
                                     f"{', '.join(dataset.schema.names)}")
        for batch in dataset.to_batches(columns=source.columns, batch_size=source.batch_size):
            if batch.num_rows:
                yield SourceBatch(data=batch)
