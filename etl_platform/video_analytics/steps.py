"""The reference pipeline's tables: their asset keys, and the incremental steps that build silver and gold, as its
defs.yaml declares them (``etl_platform/defs/video_analytics/defs.yaml``, read here once: its checks (checks.py)
need the steps; the component reads the same file). docs/incremental.md says how a step runs."""

import functools
from pathlib import Path

import dagster as dg

from etl_platform.medallion import IncrementalStep
from etl_platform.medallion.declaration import Medallion
from etl_platform.medallion.lineage import TableSql
from etl_platform.video_analytics import contract

DEFS_YAML = Path(__file__).parents[1] / "defs" / "video_analytics" / "defs.yaml"
MEDALLION = Medallion.from_defs_yaml(DEFS_YAML)

ENTITIES = tuple(contract.BRONZE)
# Each entity's landing files, an external asset the landing sensor observes (automation.py).
LANDING_KEYS = {entity: dg.AssetKey(["landing", entity]) for entity in ENTITIES}
BRONZE_KEYS = {entity: dg.AssetKey(["bronze", entity]) for entity in ENTITIES}
SILVER_KEYS = {entity: dg.AssetKey(["silver", entity]) for entity in (*ENTITIES, "quarantine")}
GOLD_TABLES = tuple(table.split(".")[1] for table in MEDALLION.models if table.startswith("gold."))
GOLD_KEYS = {table: dg.AssetKey(["gold", table]) for table in GOLD_TABLES}
GROUPS = {layer: MEDALLION.group(layer) for layer in MEDALLION.layers()}

# How each table is built (its SQL files, in order, what it reads, what it keeps), by the table's name:
# STEPS["users"] builds silver.users.
STEPS: dict[str, IncrementalStep] = {table.split(".")[1]: step for table, step in MEDALLION.steps.items()}
QUARANTINE_SCRIPT, = MEDALLION.scripts("silver.quarantine")


# What each silver and gold table logs of its changes, for the tables built from it (docs/incremental.md).
USERS_FEED, CONTENT_FEED = MEDALLION.feed("silver.users"), MEDALLION.feed("silver.content")
SESSIONS_FEED, FACTS_FEED = MEDALLION.feed("silver.viewing_sessions"), MEDALLION.feed("gold.viewing_fact")


def _table(name: str) -> str:
    """The table of ``name`` (an entry of STEPS, or "quarantine")."""
    return next(table for table in MEDALLION.models if table.split(".")[1] == name)


@functools.cache
def table_sql() -> dict[str, TableSql]:
    """What each silver and gold table's SQL says (etl_platform/medallion/lineage.py), by the table's name: the
    tables it reads (its asset's dependencies) and each column's upstream columns."""
    return {table.split(".")[1]: read for table, read in MEDALLION.table_sql.items()}


def sql_deps(name: str) -> list[dg.AssetKey]:
    """The assets whose tables the SQL of ``name`` (an entry of STEPS, or "quarantine") reads."""
    return MEDALLION.deps(_table(name))


def column_lineage(name: str) -> dg.TableColumnLineage:
    """``dagster/column_lineage`` of the table of ``name``: each column's upstream (asset, column) pairs."""
    return MEDALLION.column_lineage(_table(name))
