"""The reference pipeline's assets, as its defs.yaml declares them (``etl_platform/defs/video_analytics/defs.yaml``,
built by the SQL medallion component: medallion/assets.py). ``build_assets`` gives them to the tests and benchmarks
that run the pipeline without the code location."""

import dagster as dg

from etl_platform.medallion.assets import (
    BRONZE_AUTOMATION,
    DOWNSTREAM_AUTOMATION,
    FULL_REFRESH_ENV,
    REBUILD_DAYS_ENV,
    BronzeConfig,
    RefreshPolicy,
    landing_specs as _landing_specs,
    medallion_assets,
    parse_day_range,
    refresh_policy_from_environment,
)
from etl_platform.video_analytics.steps import (
    BRONZE_KEYS,
    CONTENT_FEED,
    ENTITIES,
    FACTS_FEED,
    GOLD_KEYS,
    GOLD_TABLES,
    GROUPS,
    LANDING_KEYS,
    MEDALLION,
    QUARANTINE_SCRIPT,
    SESSIONS_FEED,
    SILVER_KEYS,
    STEPS,
    USERS_FEED,
    column_lineage,
    sql_deps,
)


def landing_specs() -> list[dg.AssetSpec]:
    """Each entity's landing files as an external asset (observed by the landing sensor)."""
    return _landing_specs(MEDALLION)


def build_assets(engine: str = "duckdb") -> list[dg.AssetsDefinition]:
    """The pipeline's bronze, silver and gold assets with their in-step checks; ``engine`` (the warehouse engine's
    name) is shown as their kind."""
    from etl_platform.video_analytics.checks import CHECKS

    return [asset for asset in medallion_assets(MEDALLION, engine, CHECKS) if isinstance(asset, dg.AssetsDefinition)]


# Re-exported: the pipeline's names and resources, one import away.
__all__ = ["BRONZE_AUTOMATION", "DOWNSTREAM_AUTOMATION", "FULL_REFRESH_ENV", "REBUILD_DAYS_ENV", "BronzeConfig",
           "RefreshPolicy", "parse_day_range", "refresh_policy_from_environment", "BRONZE_KEYS", "CONTENT_FEED",
           "ENTITIES", "FACTS_FEED", "GOLD_KEYS", "GOLD_TABLES", "GROUPS", "LANDING_KEYS", "MEDALLION",
           "QUARANTINE_SCRIPT", "SESSIONS_FEED", "SILVER_KEYS", "STEPS", "USERS_FEED", "column_lineage", "sql_deps",
           "landing_specs", "build_assets"]
