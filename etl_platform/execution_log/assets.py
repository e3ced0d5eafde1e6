"""The execution log in Dagster: a sensor that logs every finished run, and the ``ops/pipeline_health`` asset."""

import base64
from pathlib import Path

import dagster as dg

from etl_platform.execution_log.dagster_runs import sync_runs
from etl_platform.execution_log.report import anomalies_in_window, chart, markdown
from etl_platform.execution_log.models import WriterConfig
from etl_platform.execution_log.writer import LogWriter

HEALTH_KEY = dg.AssetKey(["ops", "pipeline_health"])
REPORT_DAYS = 30


@dg.asset(
    key=HEALTH_KEY,
    group_name="ops",
    kinds={"deltalake", "python"},
    owners=["team:data-platform"],
    description="Platform health over the last 30 days from the execution log: runs, success rate, rows, "
                "validation rates, anomalies per step (robust z-score against each step's own history), steps "
                "getting slower, and a chart of duration and rows per step with anomalies marked.",
)
def pipeline_health(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    writer = LogWriter(config=WriterConfig(sync_dagster_runs=False))  # synced below with this instance
    added = sync_runs(context.instance, writer)  # runs started without a daemon are logged before the report
    with writer.table.snapshot(REPORT_DAYS):  # the window read once for the report, the chart and the count
        anomalies = anomalies_in_window(writer, REPORT_DAYS) if writer.table.exists() else []
        report = markdown(writer, REPORT_DAYS, anomalies)
        image = chart(writer, REPORT_DAYS, Path(writer.location).parent / "pipeline_health.png", anomalies=anomalies)
    metadata = {"report": dg.MetadataValue.md(report), "rows_synced": added, "anomalies": len(anomalies),
                "log_table": dg.MetadataValue.path(writer.location)}
    if image is not None:
        encoded = base64.b64encode(image.read_bytes()).decode()
        metadata["chart"] = dg.MetadataValue.md(f"![pipeline health](data:image/png;base64,{encoded})")
        metadata["chart_file"] = dg.MetadataValue.path(str(image))
    context.log.info(f"execution log: {added} new row(s); {len(anomalies)} anomaly(ies) in {REPORT_DAYS} days")
    return dg.MaterializeResult(metadata=metadata)


@dg.sensor(
    name="execution_log_sensor",
    asset_selection=[HEALTH_KEY],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Logs every finished run into the execution log (idempotent: rows are keyed by run and step), "
                "then refreshes ops/pipeline_health when runs other than its own were added.",
)
def execution_log_sensor(context: dg.SensorEvaluationContext):
    writer = LogWriter(config=WriterConfig(sync_dagster_runs=False))  # synced below with this instance
    before = writer.table.dagster_run_ids()
    added = sync_runs(context.instance, writer)
    if not added:
        return dg.SkipReason("no finished run to log")
    # runs with a row other than the health asset's own: worth a new report
    runs = writer.table.dagster_run_ids(other_than_asset=HEALTH_KEY.to_user_string())
    if not (runs - before):
        return dg.SkipReason(f"logged {added} row(s) of the health asset's own runs")
    return dg.RunRequest(run_key=f"health-{max(runs - before)}")
