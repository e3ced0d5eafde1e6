"""The reference pipeline's tables: their asset keys, and the incremental steps that build silver and gold
(docs/incremental.md). The assets (assets.py) run them; the checks (checks.py) read their state."""

import functools

import dagster as dg

from etl_platform import settings
from etl_platform.medallion import Feed, IncrementalStep
from etl_platform.medallion.lineage import TableSql, read_table_sql_cached
from etl_platform.video_analytics import contract

ENTITIES = tuple(contract.BRONZE)
# Each entity's landing files, an external asset the landing sensor observes (automation.py).
LANDING_KEYS = {entity: dg.AssetKey(["landing", entity]) for entity in ENTITIES}
BRONZE_KEYS = {entity: dg.AssetKey(["bronze", entity]) for entity in ENTITIES}
SILVER_KEYS = {entity: dg.AssetKey(["silver", entity]) for entity in (*ENTITIES, "quarantine")}
GOLD_TABLES = ("user_engagement", "content_performance", "daily_viewing", "viewing_fact")
GOLD_KEYS = {table: dg.AssetKey(["gold", table]) for table in GOLD_TABLES}
GROUPS = {"landing": "video_analytics_landing", "bronze": "video_analytics_bronze",
          "silver": "video_analytics_silver", "gold": "video_analytics_gold"}

# What each silver and gold table logs of its changes, for the tables built from it (docs/incremental.md).
USERS_FEED = Feed("silver.users", ("user_id",))
CONTENT_FEED = Feed("silver.content", ("content_id",))
SESSIONS_FEED = Feed("silver.viewing_sessions", ("session_id", "user_id", "content_id"))
FACTS_FEED = Feed("gold.viewing_fact", ("view_date", "device", "country"))
# The UTC day of a session (gold's view_date): a run can build days of the session-grained tables again.
SESSION_DAY = "CAST(timezone('UTC', started_at) AS DATE)"
# How each table is built: its SQL files, in order, what it reads, what it keeps. Content's parsing is the one
# statement an engine may need its own version of (content_parsed.<engine>.sql); the rest is shared by every engine.
STEPS = {
    "users": IncrementalStep(
        "silver.users", ("video_analytics/silver/users.sql",), ("user_id",),
        owns=("silver.users", "silver._users_rows", "silver._quarantine_users"), files_of="users",
        feed_columns=USERS_FEED.columns),
    "content": IncrementalStep(
        "silver.content", ("video_analytics/silver/content_parsed.sql", "video_analytics/silver/content.sql"),
        ("content_id",), owns=("silver.content", "silver._content_rows", "silver._quarantine_content"),
        files_of="content", feed_columns=CONTENT_FEED.columns),
    "viewing_sessions": IncrementalStep(
        "silver.viewing_sessions", ("video_analytics/silver/viewing_sessions.sql",), ("session_id",),
        owns=("silver.viewing_sessions", "silver._viewing_sessions_rows", "silver._quarantine_viewing_sessions"),
        files_of="viewing_sessions", inputs={"changed_users": USERS_FEED, "changed_content": CONTENT_FEED},
        feed_columns=SESSIONS_FEED.columns,
        # A day is built again by reading again every landing file that holds one of its rows.
        by_day={"changed_files": "SELECT DISTINCT _source_file AS source_file FROM silver._viewing_sessions_rows "
                                 f"WHERE {SESSION_DAY} {{days}}"}),
    "viewing_fact": IncrementalStep(
        "gold.viewing_fact", ("video_analytics/gold/viewing_fact.sql",), ("session_id",), owns=("gold.viewing_fact",),
        inputs={"changed_sessions": SESSIONS_FEED, "changed_users": USERS_FEED, "changed_content": CONTENT_FEED},
        feed_columns=FACTS_FEED.columns,
        # The sessions of the days, in silver now and in gold before.
        by_day={"changed_sessions": f"SELECT session_id, user_id, content_id FROM silver.viewing_sessions "
                                    f"WHERE {SESSION_DAY} {{days}} UNION SELECT session_id, user_id, content_id "
                                    "FROM gold.viewing_fact WHERE view_date {days}"}),
    "daily_viewing": IncrementalStep(
        "gold.daily_viewing", ("video_analytics/gold/daily_viewing.sql",), ("view_date", "device", "country"),
        owns=("gold.daily_viewing",), inputs={"changed_cells": FACTS_FEED},
        by_day={"changed_cells": "SELECT view_date, device, country FROM gold.viewing_fact WHERE view_date {days} "
                                 "UNION SELECT view_date, device, country FROM gold.daily_viewing "
                                 "WHERE view_date {days}"}),
    "user_engagement": IncrementalStep(
        "gold.user_engagement", ("video_analytics/gold/user_engagement.sql",), ("user_id",),
        owns=("gold.user_engagement",), inputs={"changed_users": USERS_FEED, "changed_sessions": SESSIONS_FEED}),
    "content_performance": IncrementalStep(
        "gold.content_performance", ("video_analytics/gold/content_performance.sql",), ("content_id",),
        owns=("gold.content_performance",),
        inputs={"changed_content": CONTENT_FEED, "changed_sessions": SESSIONS_FEED}),
}
QUARANTINE_SCRIPT = "video_analytics/silver/quarantine.sql"


@functools.cache
def table_sql() -> dict[str, TableSql]:
    """What each silver and gold table's SQL says (etl_platform/medallion/lineage.py): the tables it reads (its
    asset's dependencies) and each column's upstream columns. Read in build order, each table's columns feeding
    the next; the quarantine (not an incremental step) last. Cached (settings.cache_folder())."""
    cache = settings.cache_folder() / "sql"
    columns: dict[str, tuple[str, ...]] = {spec.table: tuple(spec.columns) for spec in contract.BRONZE.values()}
    read = {}
    root = settings.sql_root()
    for name, step in STEPS.items():
        inputs = {"changed_files": ("source_file",)} if step.files_of else {}
        inputs.update({table: feed.columns for table, feed in step.inputs.items()})
        texts = [(root / script).read_text(encoding="utf-8") for script in step.scripts]
        read[name] = read_table_sql_cached(cache, step.table, texts, step.owns, columns, inputs)
        columns[step.table] = read[name].columns
    read["quarantine"] = read_table_sql_cached(cache, "silver.quarantine",
                                               [(root / QUARANTINE_SCRIPT).read_text(encoding="utf-8")])
    return read


@functools.cache
def owner_keys() -> dict[str, dg.AssetKey]:
    """Each warehouse table of the pipeline → the asset that writes it (a step's row store and quarantine are its
    table's asset's)."""
    owners = {contract.BRONZE[entity].table: key for entity, key in BRONZE_KEYS.items()}
    for name, step in STEPS.items():
        key = SILVER_KEYS.get(name) or GOLD_KEYS[name]
        owners.update({table: key for table in step.owns})
    owners["silver.quarantine"] = SILVER_KEYS["quarantine"]
    return owners


def sql_deps(name: str) -> list[dg.AssetKey]:
    """The assets whose tables the SQL of ``name`` (an entry of STEPS, or "quarantine") reads."""
    owners = owner_keys()
    unknown = sorted(table for table in table_sql()[name].reads if table not in owners)
    if unknown:
        raise ValueError(f"the SQL of {name} reads {', '.join(unknown)}, which no asset of the pipeline writes")
    return sorted({owners[table] for table in table_sql()[name].reads}, key=lambda key: key.to_user_string())


def column_lineage(name: str) -> dg.TableColumnLineage:
    """``dagster/column_lineage`` of the table of ``name``: each column's upstream (asset, column) pairs."""
    owners = owner_keys()
    return dg.TableColumnLineage(deps_by_column={
        column: [dg.TableColumnDep(asset_key=owners[table], column_name=origin) for table, origin in origins]
        for column, origins in table_sql()[name].lineage.items() if origins
    })
