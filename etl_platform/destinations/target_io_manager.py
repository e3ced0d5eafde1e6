"""The IO-manager half shared by the database and search-engine destinations (MongoDB, OpenSearch, Solr,
Cassandra): each subclass only says how to build its target for an asset and how to read one back."""

from __future__ import annotations

from dataclasses import asdict

import dagster as dg
from pydantic import Field


NUMBER_TYPES = (int, float, bool)


class TargetIOManager(dg.ConfigurableIOManager):
    """Writes an asset's output (Arrow, pandas, pyspark, list of dicts) with ``target(context).write(...)``.

    The asset's definition metadata may override ``etl_platform/write_mode`` and ``etl_platform/id_columns``.
    Materialization metadata: the target (no credentials), the mode, every count the write reports, seconds."""

    write_mode: str = Field(default="overwrite", description="append, upsert or overwrite.")
    id_columns: list[str] = Field(default_factory=list, description="Key columns (upsert; ids of documents).")

    def build(self, model_class, **overrides):
        """``model_class`` (a target or a source) from this IO manager's fields of the same names, with
        ``overrides``: the connection settings are declared once (``<System>Connection``) and handed on."""
        settings = {name: getattr(self, name) for name in model_class.model_fields if name in type(self).model_fields}
        return model_class(**{**settings, **overrides})

    def target(self, context):
        """The destination for ``context``'s asset: an object with ``write(data, mode, keys, log=...)``."""
        raise NotImplementedError

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        metadata = context.definition_metadata or {}
        mode = metadata.get("etl_platform/write_mode", self.write_mode)
        keys = metadata.get("etl_platform/id_columns", self.id_columns)
        result = self.target(context).write(obj, mode, keys, log=context.log.info)
        context.log.info(f"wrote {result.records_written:,} records to {result.target} ({mode}) in "
                         f"{result.seconds:.1f} s")
        context.add_output_metadata(target_write_metadata(result, mode))


def target_write_metadata(result, mode: str) -> dict:
    """Materialization metadata of a database/search-engine write: every count it reports, the target (no
    credentials), the mode, seconds."""
    counts = {k: v for k, v in asdict(result).items() if isinstance(v, NUMBER_TYPES)}
    return {**counts, "target": result.target, "write_mode": mode, "dagster/row_count": result.records_written,
            "seconds": round(result.seconds, 2)}
