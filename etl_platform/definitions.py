"""The Dagster code location: ``dagster dev`` / ``dagster asset materialize -m etl_platform.definitions``."""

from __future__ import annotations

import atexit
import gc
import os

import dagster as dg

from etl_platform.execution_log.assets import execution_log_sensor, pipeline_health, pipeline_health_job
from etl_platform.housekeeping.assets import housekeeping_job, housekeeping_schedule
from etl_platform.jobs.assets import build_job_definitions
from etl_platform.landing import LandingZone
from etl_platform.video_analytics.assets import build_assets, refresh_policy_from_environment
from etl_platform.video_analytics.automation import daily_schedule, landing_sensor, video_analytics_job
from etl_platform.video_analytics.checks import QualityPolicy, build_asset_checks
from etl_platform.video_analytics.exports import build_export_assets
from etl_platform.warehouse import ENGINE_ENV, warehouse_for


def _reference_pipeline(engine: str | None) -> dg.Definitions:
    """The video-analytics pipeline on the warehouse ``engine``: assets, checks, exports, its job, schedule and
    sensor."""
    warehouse = warehouse_for(engine)
    resources = {"warehouse": warehouse, "landing": LandingZone(), "quality_policy": QualityPolicy(),
                 "refresh_policy": refresh_policy_from_environment()}
    if warehouse.engine == "spark":
        # The Spark engine's session resource, also for the users' own assets (upsert's pyspark backend uses it).
        resources["pyspark"] = warehouse.spark
    return dg.Definitions(
        assets=[*build_assets(warehouse.engine), *build_export_assets(), pipeline_health],
        asset_checks=build_asset_checks(),
        jobs=[video_analytics_job, housekeeping_job, pipeline_health_job],
        schedules=[daily_schedule, housekeeping_schedule],
        sensors=[landing_sensor, execution_log_sensor],
        resources=resources,
        # One process for the whole run: the embedded DuckDB file has one writer at a time, and on small
        # machines a process per step costs more than the steps (see docs/architecture.md).
        executor=dg.in_process_executor,
    )

# Every YAML job of $ETL_PLATFORM_JOBS (default $ETL_PLATFORM_HOME/jobs) as assets, checks and schedules
# (docs/jobs.md); a broken job file shows as an invalid-job asset instead of taking the location down.
# The warehouse engine is a deployment choice (docs/engines.md): $ETL_PLATFORM_ENGINE = duckdb (default), postgres or
# spark;
# the engine's own settings are resource fields read through dg.EnvVar when a run starts.
defs = dg.Definitions.merge(_reference_pipeline(os.environ.get(ENGINE_ENV)), build_job_definitions())

# Dagster's objects and this location's, made while importing, live as long as the process. Frozen out of the cyclic
# garbage collector's sight, the run's collections no longer walk them again and again; frozen once more at exit,
# the interpreter skips its final full collection (the operating system takes the memory back). Together ~0.5 s of a
# `dagster asset materialize` process (bench/video_analytics.py, 1M sessions), the same for every run worker and
# sensor tick. What stays uncollected is cyclic garbage present at those two moments.
gc.freeze()
atexit.register(gc.freeze)
