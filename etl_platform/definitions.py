"""The Dagster code location: ``dagster dev`` / ``dagster asset materialize -m etl_platform.definitions``."""

from __future__ import annotations

import os

import dagster as dg

from etl_platform.execution_log.assets import execution_log_sensor, pipeline_health
from etl_platform.jobs.assets import build_job_definitions
from etl_platform.landing import LandingZone
from etl_platform.video_analytics.assets import build_assets
from etl_platform.video_analytics.automation import daily_schedule, landing_sensor, video_analytics_job
from etl_platform.video_analytics.checks import QualityPolicy, build_asset_checks
from etl_platform.video_analytics.exports import build_export_assets
from etl_platform.warehouse import DuckDBWarehouse


def _reference_pipeline() -> dg.Definitions:
    """The video-analytics pipeline: assets, checks, exports, its job, schedule and sensor."""
    return dg.Definitions(
        assets=[*build_assets(), *build_export_assets(), pipeline_health],
        asset_checks=build_asset_checks(),
        jobs=[video_analytics_job],
        schedules=[daily_schedule],
        sensors=[landing_sensor, execution_log_sensor],
        resources={
            "warehouse": DuckDBWarehouse(memory_limit=os.environ.get("ETL_DUCKDB_MEMORY_LIMIT", "1GB")),
            "landing": LandingZone(),
            "quality_policy": QualityPolicy(),
        },
        # One process for the whole run: the embedded DuckDB file has one writer at a time, and on small
        # machines a process per step costs more than the steps (see docs/architecture.md).
        executor=dg.in_process_executor,
    )

# Every YAML job of $ETL_PLATFORM_JOBS (default $ETL_PLATFORM_HOME/jobs) as assets, checks and schedules
# (docs/jobs.md); a broken job file shows as an invalid-job asset instead of taking the location down.
defs = dg.Definitions.merge(_reference_pipeline(), build_job_definitions())
