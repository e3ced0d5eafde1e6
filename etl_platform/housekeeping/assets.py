"""Housekeeping in Dagster: the job ``housekeeping`` (one op) and its daily schedule (see the package)."""

import dagster as dg

from etl_platform.housekeeping import (
    KEEP_TAG,
    RetentionPolicy,
    compact_execution_log,
    folder_bytes,
    instance_folder,
    prune_runs,
    vacuum_sqlite,
)
from etl_platform.warehouse import WAREHOUSE_POOL, Warehouse

class HousekeepingConfig(dg.Config):
    retention_days: float | None = None  # default: $ETL_PLATFORM_RUN_RETENTION_DAYS, else 30
    keep_last: int | None = None  # default: $ETL_PLATFORM_RUNS_KEPT_PER_JOB, else 50
    compact_warehouse: bool = False  # rewrite the DuckDB file (only while nothing else runs)


# An op, not an asset: housekeeping makes no data, and an asset would join every `--select '*'` run of the pipeline
# (vacuuming the instance files that run writes to).
@dg.op(
    name="housekeep",
    description="Prunes runs older than the retention (30 days; the newest 50 of each job and runs tagged "
                f"{KEEP_TAG}=true are kept) with their event logs, vacuums the instance's SQLite files, compacts and "
                "vacuums the execution log (Delta's 7-day retention), and reclaims the warehouse's free space.",
    tags={"kind": "housekeeping"},
    pool=WAREHOUSE_POOL,
)
def housekeeping_op(context: dg.OpExecutionContext, config: HousekeepingConfig, warehouse: Warehouse) -> dict:
    defaults = RetentionPolicy.from_env()
    policy = RetentionPolicy(defaults.retention_days if config.retention_days is None else config.retention_days,
                             defaults.keep_last if config.keep_last is None else config.keep_last)
    instance_before = folder_bytes(instance_folder(context.instance))
    pruned = prune_runs(context.instance, policy, log=context.log.info)
    vacuumed = vacuum_sqlite(context.instance, log=context.log.info)
    log_result = compact_execution_log(log=context.log.info)
    reclaimed = warehouse.reclaim_space(compact=config.compact_warehouse)
    context.log.info(f"warehouse ({reclaimed['engine']}): {reclaimed['done']}")
    summary = {
        "runs_deleted": len(pruned.deleted), "runs_kept_recent": pruned.kept_recent,
        "runs_kept_last": pruned.kept_last, "runs_kept_tagged": pruned.kept_tagged,
        "runs_unfinished": pruned.unfinished, "retention_days": policy.retention_days, "keep_last": policy.keep_last,
        "instance_bytes_before": instance_before,
        "instance_bytes_after": folder_bytes(instance_folder(context.instance)),
        "sqlite_bytes_before": vacuumed["bytes_before"], "sqlite_bytes_after": vacuumed["bytes_after"],
        "execution_log": {k: v for k, v in log_result.items() if k != "optimized"}, "warehouse": reclaimed,
    }
    context.add_output_metadata({key: dg.MetadataValue.json(value) if isinstance(value, dict) else value
                                 for key, value in summary.items()})
    return summary


@dg.job(name="housekeeping", tags={"etl_platform/kind": "housekeeping"},
        description="ops/housekeeping's work as one op: run pruning, SQLite vacuum, execution-log compaction, "
                    "warehouse checkpoint (docs/deployment.md).")
def housekeeping_job():
    housekeeping_op()


housekeeping_schedule = dg.ScheduleDefinition(
    name="housekeeping_daily", job=housekeeping_job, cron_schedule="30 4 * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily at 04:30 UTC: the housekeeping job (runs older than the retention, SQLite vacuum, "
                "execution-log compaction, warehouse checkpoint). Stop it in the UI or with `dagster schedule stop`.")
