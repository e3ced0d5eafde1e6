"""Keeping an installation that runs for months small: old runs pruned, files compacted, disk growth watched.

The job ``housekeeping`` (``housekeeping/assets.py``: one op, not an asset, so that no ``--select '*'`` run of
the pipeline includes it), run daily by the schedule ``housekeeping_daily`` (on by default), does, in order:

- **Runs**: deletes the finished runs (success, failure, canceled) that ended more than ``retention_days`` ago with
  their event logs and captured stdout/stderr, except the newest ``keep_last`` runs of each job and every run tagged
  ``etl_platform/keep=true``; queued and running runs are never touched. On the embedded SQLite instance each
  deleted run's own database file goes too (``instance_storage.PooledSqliteEventLogStorage``), then the run,
  event-index and schedule databases are vacuumed. Sensor and schedule ticks are pruned by Dagster's own
  ``retention`` settings (``dagster.yaml``), applied by the daemon.
- **The execution log** (Delta): small files compacted, then files no version within Delta's default retention
  (7 days) needs are vacuumed; its history stays longer than the runs' (it is the long-term record).
- **The warehouse**: ``Warehouse.reclaim_space`` — DuckDB checkpoints, and rewrites the file when most of it is
  free blocks (replaced tables leave them); PostgreSQL ``VACUUM (ANALYZE)``; Spark has nothing to reclaim.

``disk_report`` measures the instance, warehouse, execution log and landing folders, their growth per day since the
previous report and the days until the disk is full at that pace; ``ops/pipeline_health`` shows it with the check
``disk_space`` (WARN when the disk would fill within ``ETL_PLATFORM_DISK_HORIZON_DAYS``, default 14).

Settings: ``ETL_PLATFORM_RUN_RETENTION_DAYS`` (30), ``ETL_PLATFORM_RUNS_KEPT_PER_JOB`` (50), or the job's run
config (``ops: {housekeep: {config: {retention_days, keep_last, compact_warehouse}}}``).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg

from etl_platform import settings

RETENTION_ENV = "ETL_PLATFORM_RUN_RETENTION_DAYS"
KEEP_LAST_ENV = "ETL_PLATFORM_RUNS_KEPT_PER_JOB"
HORIZON_ENV = "ETL_PLATFORM_DISK_HORIZON_DAYS"
KEEP_TAG = "etl_platform/keep"
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


@dataclass(frozen=True)
class RetentionPolicy:
    retention_days: float = 30
    keep_last: int = 50

    @classmethod
    def from_env(cls) -> RetentionPolicy:
        return cls(settings.number_from_env(RETENTION_ENV, cls.retention_days),
                   int(settings.number_from_env(KEEP_LAST_ENV, cls.keep_last, int)))


@dataclass
class PruneResult:
    deleted: list[str] = field(default_factory=list)
    kept_recent: int = 0  # finished runs newer than the retention
    kept_last: int = 0  # older runs kept as one of the newest keep_last of their job
    kept_tagged: int = 0  # older runs tagged etl_platform/keep=true
    unfinished: int = 0  # queued or running: never touched


def prune_runs(instance: dg.DagsterInstance, policy: RetentionPolicy, now: datetime | None = None,
               log: Callable[[str], None] = lambda line: None) -> PruneResult:
    """Delete the finished runs older than the policy's retention (with their event logs), but the newest
    ``keep_last`` of each job and those tagged ``etl_platform/keep=true``."""
    now = now or datetime.now(timezone.utc)
    cutoff = (now - timedelta(days=policy.retention_days)).timestamp()
    result = PruneResult()
    newest_per_job: dict[str, int] = {}
    for record in instance.get_run_records(order_by="create_timestamp", ascending=False):  # newest first
        run = record.dagster_run
        if run.status not in FINISHED:
            result.unfinished += 1
            continue
        rank = newest_per_job[run.job_name] = newest_per_job.get(run.job_name, 0) + 1
        ended = record.end_time or record.update_timestamp.timestamp()
        if ended >= cutoff:
            result.kept_recent += 1
        elif str((run.tags or {}).get(KEEP_TAG, "")).lower() == "true":
            result.kept_tagged += 1
        elif rank <= policy.keep_last:
            result.kept_last += 1
        else:
            instance.delete_run(run.run_id)
            _delete_compute_logs(instance, run.run_id)
            result.deleted.append(run.run_id)
    before = datetime.fromtimestamp(cutoff, timezone.utc).strftime("%Y-%m-%d %H:%M")
    log(f"runs: {len(result.deleted)} deleted (ended before {before} UTC), {result.kept_recent} recent, "
        f"{result.kept_last} kept as the newest {policy.keep_last} of their job, {result.kept_tagged} tagged "
        f"{KEEP_TAG}=true, {result.unfinished} queued or running")
    return result


def _delete_compute_logs(instance: dg.DagsterInstance, run_id: str) -> None:
    """The run's captured stdout/stderr (``compute_logs/<run id>/`` on the embedded instance)."""
    try:
        instance.compute_log_manager.delete_logs(prefix=[run_id])
    except NotImplementedError:  # a compute log manager that cannot delete keeps them (its own retention applies)
        pass


def sqlite_files(instance: dg.DagsterInstance) -> list[Path]:
    """The embedded instance's shared SQLite databases (runs, event index, schedules); none on PostgreSQL."""
    from sqlalchemy.engine import make_url

    files = []
    for storage in (instance.run_storage, instance.schedule_storage):
        conn_string = getattr(storage, "_conn_string", None)
        if conn_string and conn_string.startswith("sqlite"):
            files.append(Path(make_url(conn_string).database))
    base_dir = getattr(instance.event_log_storage, "_base_dir", None)
    if base_dir:
        files.append(Path(base_dir) / "index.db")
    return [f for f in files if f.is_file()]


def vacuum_sqlite(instance: dg.DagsterInstance, log: Callable[[str], None] = lambda line: None) -> dict[str, int]:
    """VACUUM the instance's shared SQLite databases; the bytes before and after."""
    before = after = 0
    for path in sqlite_files(instance):
        before += path.stat().st_size
        with sqlite3.connect(path, timeout=60) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("VACUUM")
        after += path.stat().st_size
    log(f"instance databases vacuumed: {_mib(before)} -> {_mib(after)}")
    return {"bytes_before": before, "bytes_after": after}


def compact_execution_log(log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Compact the execution log's small files and vacuum what no version within Delta's retention needs."""
    from etl_platform.execution_log.models import WriterConfig
    from etl_platform.execution_log.writer import LogWriter

    writer = LogWriter(config=WriterConfig(sync_dagster_runs=False))
    result = writer.optimize_table(enable_partitioning=False, enable_zordering=False, enable_compression=True,
                                   enable_vacuum=True)
    log(f"execution log: {result.get('reason') or ', '.join(result['optimizations_applied'])}")
    return result


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # a file removed while walking
                pass
    return total


def instance_folder(instance: dg.DagsterInstance) -> Path:
    """The folder holding the instance's SQLite files (the embedded default), else $DAGSTER_HOME."""
    base_dir = getattr(instance.event_log_storage, "_base_dir", None)
    if base_dir:  # <storage>/history/runs: the storage folder is two levels up
        return Path(base_dir).parent.parent
    return Path(instance.root_directory)


def disk_report(instance: dg.DagsterInstance, warehouse_file: Path | None, log_location: str,
                previous: dict | None, now: float | None = None) -> dict[str, Any]:
    """Sizes of the instance, warehouse, execution log and landing folders, their growth per day since
    ``previous`` (an earlier report), the disk's free space and the days until it is full at that pace."""
    now = now or time.time()
    places = {"instance": instance_folder(instance), "warehouse": warehouse_file,
              "execution_log": Path(log_location) if "://" not in log_location else None,
              "landing": settings.landing_root()}
    sizes = {name: folder_bytes(path) for name, path in places.items() if path is not None and path.exists()}
    home = settings.platform_home()
    usage = shutil.disk_usage(home if home.exists() else Path.cwd())
    growth = None
    if previous and previous.get("measured_at") and now - previous["measured_at"] >= 60:
        days = (now - previous["measured_at"]) / 86400
        growth = {name: (size - previous["sizes"].get(name, size)) / days for name, size in sizes.items()}
    per_day = sum(growth.values()) if growth else None
    days_left = usage.free / per_day if per_day and per_day > 0 else None
    return {"measured_at": now, "sizes": sizes, "free_bytes": usage.free, "total_bytes": usage.total,
            "growth_bytes_per_day": growth, "days_until_full": days_left}


def horizon_days() -> float:
    return settings.number_from_env(HORIZON_ENV, 14)


def _mib(count: float) -> str:
    return f"{count / 2**20:,.1f} MiB"


def describe_disk(report: dict[str, Any]) -> str:
    sizes = ", ".join(f"{name} {_mib(size)}" for name, size in report["sizes"].items())
    text = f"{sizes}; {_mib(report['free_bytes'])} free of {_mib(report['total_bytes'])}"
    if report["growth_bytes_per_day"] is None:
        return text + " (growth: measured from the next report on)"
    growth = sum(report["growth_bytes_per_day"].values())
    text += f"; growing {_mib(growth)} a day"
    if report["days_until_full"] is not None:
        text += f", full in {report['days_until_full']:,.1f} days at that pace"
    return text

