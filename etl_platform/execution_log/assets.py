"""The execution log in Dagster: a sensor that logs every finished run and, now and then, refreshes the report (a
run of the job ``pipeline_health``), and the ``ops/pipeline_health`` asset with its ``disk_space`` check.

The refresh is a run rather than a materialization the sensor reports: Dagster keeps a sensor's own asset events in
no run, where housekeeping could never prune them (each report carries its chart, ~70 KiB); runs of
``pipeline_health`` are pruned like any other, and come at most every 15 minutes."""

import base64
import json
import time
from pathlib import Path

import dagster as dg

from etl_platform import settings
from etl_platform.execution_log.dagster_runs import sync_runs, sync_runs_after
from etl_platform.execution_log.report import anomalies_in_window, chart, markdown
from etl_platform.execution_log.models import WriterConfig
from etl_platform.execution_log.writer import LogWriter
from etl_platform.housekeeping import describe_disk, disk_report, horizon_days

HEALTH_KEY = dg.AssetKey(["ops", "pipeline_health"])
REPORT_DAYS = 30


DISK_CHECK = "disk_space"


def _previous_disk(instance: dg.DagsterInstance) -> dict | None:
    """The disk report of the last materialization of ops/pipeline_health, for the growth per day."""
    event = instance.get_latest_materialization_event(HEALTH_KEY)
    materialization = event.asset_materialization if event is not None else None
    value = materialization.metadata.get("disk") if materialization is not None else None
    return getattr(value, "value", value) if value is not None else None


def health_report(instance: dg.DagsterInstance, writer: LogWriter, added: int) -> tuple[dict, dict]:
    """The health asset's metadata (report, chart, disk sizes and growth) and its ``disk_space`` check's result."""
    with writer.table.snapshot(REPORT_DAYS):  # the window read once for the report, the chart and the count
        anomalies = anomalies_in_window(writer, REPORT_DAYS) if writer.table.exists() else []
        report = markdown(writer, REPORT_DAYS, anomalies)
        image = chart(writer, REPORT_DAYS, Path(writer.location).parent / "pipeline_health.png", anomalies=anomalies)
    warehouse = settings.warehouse_path()
    disk = disk_report(instance, warehouse if warehouse.exists() else None, writer.location, _previous_disk(instance))
    metadata = {"report": dg.MetadataValue.md(report), "rows_synced": added, "anomalies": len(anomalies),
                "log_table": dg.MetadataValue.path(writer.location), "disk": dg.MetadataValue.json(disk),
                "disk_summary": describe_disk(disk)}
    if image is not None:
        encoded = base64.b64encode(image.read_bytes()).decode()
        metadata["chart"] = dg.MetadataValue.md(f"![pipeline health](data:image/png;base64,{encoded})")
        metadata["chart_file"] = dg.MetadataValue.path(str(image))
    horizon, left = horizon_days(), disk["days_until_full"]
    check = {"check_name": DISK_CHECK, "passed": left is None or left >= horizon,
             "severity": dg.AssetCheckSeverity.WARN,
             "metadata": {"days_until_full": round(left, 1) if left is not None else -1.0,
                          "horizon_days": horizon, "free_bytes": disk["free_bytes"]},
             "description": describe_disk(disk) if left is not None and left < horizon else None}
    return metadata, check


@dg.asset(
    key=HEALTH_KEY,
    group_name="ops",
    kinds={"deltalake", "python"},
    owners=["team:data-platform"],
    description="Platform health over the last 30 days from the execution log: runs, success rate, rows, "
                "validation rates, anomalies per step (robust z-score against each step's own history), steps "
                "getting slower, a chart of duration and rows per step with anomalies marked, and the disk: the "
                "instance, warehouse, log and landing sizes, their growth per day and the days until it is full.",
    check_specs=[dg.AssetCheckSpec(DISK_CHECK, asset=HEALTH_KEY, description=(
        "The disk holding the platform would not fill within $ETL_PLATFORM_DISK_HORIZON_DAYS (14) days at the "
        "growth measured since the previous report (WARN)."))],
)
def pipeline_health(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    writer = LogWriter(config=WriterConfig(sync_dagster_runs=False))  # synced below with this instance
    added = sync_runs(context.instance, writer)  # runs started without a daemon are logged before the report
    metadata, check = health_report(context.instance, writer, added)
    context.log.info(f"execution log: {added} new row(s); {metadata['anomalies']} anomaly(ies) in {REPORT_DAYS} "
                     f"days; disk: {metadata['disk_summary']}")
    return dg.MaterializeResult(metadata=metadata, check_results=[dg.AssetCheckResult(**check)])


REFRESH_ENV = "ETL_PLATFORM_HEALTH_REFRESH_MINUTES"
pipeline_health_job = dg.define_asset_job(
    "pipeline_health", selection=[HEALTH_KEY], tags={"etl_platform/kind": "report"},
    description="Refreshes ops/pipeline_health and its disk_space check (launched by execution_log_sensor).")


@dg.sensor(
    name="execution_log_sensor",
    job=pipeline_health_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Logs the runs finished since its cursor into the execution log on each tick (idempotent: rows are "
                "keyed by run and "
                "step; no run is launched for that), and refreshes ops/pipeline_health with a run of the job "
                "pipeline_health when runs other than its own were logged, at most every "
                f"${REFRESH_ENV} (15) minutes.",
)
def execution_log_sensor(context: dg.SensorEvaluationContext):
    # The cursor: the update time of the last finished run logged, and whether a new report is owed. Each tick
    # reads only the runs finished since (the first tick: every finished run the log lacks).
    state = json.loads(context.cursor) if context.cursor and context.cursor.startswith("{") else {}
    writer = LogWriter(config=WriterConfig(sync_dagster_runs=False))  # synced below with this instance
    added, keys, runs_cursor = sync_runs_after(context.instance, writer, state.get("runs"))
    # runs with a row other than the health asset's own, not yet reported: worth a new report
    pending = state.get("pending", False) or bool(keys - {HEALTH_KEY.to_user_string()})
    state = {"runs": runs_cursor, "pending": pending}
    if not pending:
        context.update_cursor(json.dumps(state))
        return dg.SkipReason("no finished run to log" if not added else
                             f"logged {added} row(s) of the health asset's own runs")
    last = context.instance.get_latest_materialization_event(HEALTH_KEY)
    minutes = settings.number_from_env(REFRESH_ENV, 15)
    if last is not None and time.time() - last.timestamp < minutes * 60:
        context.update_cursor(json.dumps(state))  # the report is owed until it may be refreshed
        return dg.SkipReason(f"logged {added} row(s); the report was refreshed less than {minutes:g} minutes ago")
    context.update_cursor(json.dumps({**state, "pending": False}))
    return dg.RunRequest(run_key=f"health-{int(time.time())}")
