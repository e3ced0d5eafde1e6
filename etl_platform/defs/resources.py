"""The resources every component of the location shares, bound once: the warehouse of ``$ETL_PLATFORM_ENGINE``
(duckdb, postgres or spark; docs/engines.md), the landing zone, the quality and refresh policies, and on Spark the
session resource (the upsert's pyspark backend uses it too)."""

import dagster as dg

from etl_platform.components import engine_name
from etl_platform.landing import LandingZone
from etl_platform.medallion.assets import refresh_policy_from_environment
from etl_platform.video_analytics.checks import QualityPolicy
from etl_platform.warehouse import warehouse_for


@dg.definitions
def resources() -> dg.Definitions:
    warehouse = warehouse_for(engine_name())
    bound = {"warehouse": warehouse, "landing": LandingZone(), "quality_policy": QualityPolicy(),
             "refresh_policy": refresh_policy_from_environment()}
    if warehouse.engine == "spark":
        bound["pyspark"] = warehouse.spark
    # One process for the whole run: the embedded DuckDB file has one writer at a time, and on small machines a
    # process per step costs more than the steps (see docs/architecture.md).
    return dg.Definitions(resources=bound, executor=dg.in_process_executor)
