"""The component types of this project (``dg list components``), declared in ``etl_platform/defs/*/defs.yaml``.

    # etl_platform/defs/video_analytics/defs.yaml
    type: etl_platform.components.SqlMedallion
    attributes: {project_sql_folder: video_analytics, models: {...}, landing: {...}, job: {...}}

Each builds what the code location had built by hand before; the warehouse and the other shared resources are
bound once, in ``etl_platform/defs/resources.py``. ``dg scaffold defs etl_platform.components.<Type> <folder>``
writes a ``defs.yaml`` for one (docs/dg.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from etl_platform.jobs.component import YamlJobs
from etl_platform.medallion.component import SqlMedallion
from etl_platform.sources.component import SourceStreams
from etl_platform.warehouse.engines import engine_name

__all__ = ["WarehouseExports", "PlatformOperations", "YamlJobs", "SqlMedallion",
           "SourceStreams", "engine_name"]


class WarehouseExportsScaffolder(dg.Scaffolder):
    """``dg scaffold defs etl_platform.components.WarehouseExports <folder>``: a defs.yaml with one export."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        dg.scaffold_component(request, {"exports": [
            {"name": "daily_viewing_files", "table": "gold.daily_viewing", "destination": "local",
             "config": {"base_path": "exports"}, "format": "parquet", "mode": "overwrite"}]})


@dg.scaffold_with(WarehouseExportsScaffolder)
class WarehouseExports(dg.Component, dg.Model, dg.Resolvable):
    """Warehouse tables published to destinations (docs/destinations.md#exports): ``exports``, a list of entries
    written in the defs.yaml itself (each names a table and a destination), or ``exports_file`` (relative to this
    defs.yaml); with neither, ``$ETL_PLATFORM_EXPORTS`` (none: no exports)."""

    exports: list[dict] | None = None
    exports_file: str | None = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from etl_platform.video_analytics.exports import (
            EXPORTS_ENV,
            build_export_asset,
            load_export_specs,
            parse_export_entries,
        )

        if self.exports is not None:
            specs = parse_export_entries(self.exports, f"{context.path}/defs.yaml")
        else:
            name = self.exports_file or os.environ.get(EXPORTS_ENV)
            if not name:
                return dg.Definitions()
            path = Path(name) if Path(name).is_absolute() or not self.exports_file else Path(context.path) / name
            specs = load_export_specs(path)
        return dg.Definitions(assets=[build_export_asset(spec) for spec in specs])


class PlatformOperations(dg.Component, dg.Model, dg.Resolvable):
    """The platform's own upkeep: ``ops/pipeline_health`` and the execution log's sensor (docs/execution_log.md),
    and the daily housekeeping job (docs/operations.md)."""

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from etl_platform.execution_log.assets import execution_log_sensor, pipeline_health, pipeline_health_job
        from etl_platform.housekeeping.assets import housekeeping_job, housekeeping_schedule

        return dg.Definitions(assets=[pipeline_health], jobs=[housekeeping_job, pipeline_health_job],
                              schedules=[housekeeping_schedule], sensors=[execution_log_sensor])
