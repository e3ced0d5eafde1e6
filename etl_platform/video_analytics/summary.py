"""What a run left, in a few lines: ``etl-platform summary`` (README command 1 ends with it).

Each layer's tables and rows, the last run's checks (passed / warned / failed), the quarantined rows by entity
and reason, where the warehouse file is, and how to open the UI. Read-only: the warehouse is opened read-only and
the Dagster instance (``$DAGSTER_HOME``) is only queried.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from etl_platform.video_analytics.assets import GROUPS

LAYERS = ("bronze", "silver", "gold")


def tables(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, int]]]:
    """``{layer: [(table, rows)]}`` of the warehouse's own tables (internal ones, ``_...``, left out)."""
    found: dict[str, list[tuple[str, int]]] = {layer: [] for layer in LAYERS}
    names = conn.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN "
                         "('bronze', 'silver', 'gold') AND NOT starts_with(table_name, '_') "
                         "ORDER BY schema_name, table_name").fetchall()
    for schema, table in names:
        rows = conn.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]
        found[schema].append((table, rows))
    return found


def quarantine(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int]]:
    """``[(entity, reason, rows)]`` of ``silver.quarantine``, largest first (empty when it is not there)."""
    exists = conn.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'silver' "
                          "AND table_name = 'quarantine'").fetchone()[0]
    if not exists:
        return []
    return conn.execute("SELECT entity, reason, count(*) FROM silver.quarantine GROUP BY ALL "
                        "ORDER BY 3 DESC, 1, 2").fetchall()


def last_run_checks() -> tuple[str | None, dict[str, int]]:
    """The pipeline's latest run in the instance at ``$DAGSTER_HOME`` and its checks: ``{passed, warned, failed}``."""
    if not os.environ.get("DAGSTER_HOME"):
        return None, {}
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_run_records(limit=1, order_by="create_timestamp", ascending=False)
        if not runs:
            return None, {}
        run = runs[0].dagster_run
        counts = {"passed": 0, "warned": 0, "failed": 0}
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data
            if evaluation.passed:
                counts["passed"] += 1
            elif evaluation.severity == dg.AssetCheckSeverity.WARN:
                counts["warned"] += 1
            else:
                counts["failed"] += 1
        return f"{run.run_id[:8]} ({run.job_name}, {run.status.value.lower()})", counts


def render(warehouse_path: Path) -> str:
    lines = []
    if not warehouse_path.is_file():
        return f"No warehouse at {warehouse_path}: run the pipeline first (README, command 1)."
    with duckdb.connect(str(warehouse_path), read_only=True) as conn:
        layers, rejected = tables(conn), quarantine(conn)
    for layer in LAYERS:
        listed = ", ".join(f"{table} {rows:,}" for table, rows in layers[layer]) or "(none)"
        lines.append(f"{layer:<7}{listed}")
    run, checks = last_run_checks()
    if run:
        lines.append(f"checks  last run {run}: {checks['passed']} passed, {checks['warned']} warned, "
                     f"{checks['failed']} failed")
    if rejected:
        total = sum(rows for _, _, rows in rejected)
        shown = "; ".join(f"{entity} {reason} {rows:,}" for entity, reason, rows in rejected[:8])
        lines.append(f"quarantined {total:,} rows (silver.quarantine): {shown}" + (" ..." if len(rejected) > 8 else ""))
    else:
        lines.append("quarantined 0 rows")
    lines.append(f"warehouse {warehouse_path.resolve()}  (duckdb.connect(path, read_only=True))")
    lines.append("UI: DAGSTER_HOME=$PWD .venv/bin/dg dev, then http://127.0.0.1:3000 (groups: "
                 + ", ".join(GROUPS.values()) + ")")
    return "\n".join(lines)
