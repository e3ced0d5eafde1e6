"""The Dagster code location: ``dagster dev`` / ``dagster asset materialize -m etl_platform.definitions``."""

from __future__ import annotations

import os

import dagster as dg

from etl_platform.landing import LandingZone
from etl_platform.video_analytics.assets import build_assets
from etl_platform.video_analytics.automation import daily_schedule, landing_sensor, video_analytics_job
from etl_platform.video_analytics.checks import QualityPolicy, build_asset_checks
from etl_platform.video_analytics.exports import build_export_assets
from etl_platform.warehouse import DuckDBWarehouse

defs = dg.Definitions(
    assets=[*build_assets(), *build_export_assets()],
    asset_checks=build_asset_checks(),
    jobs=[video_analytics_job],
    schedules=[daily_schedule],
    sensors=[landing_sensor],
    resources={
        "warehouse": DuckDBWarehouse(memory_limit=os.environ.get("ETL_DUCKDB_MEMORY_LIMIT", "1GB")),
        "landing": LandingZone(),
        "quality_policy": QualityPolicy(),
    },
    # One process for the whole run: the embedded DuckDB file has one writer at a time, and on small
    # machines a process per step costs more than the steps (see docs/architecture.md).
    executor=dg.in_process_executor,
)
