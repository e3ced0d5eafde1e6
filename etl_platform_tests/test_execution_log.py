"""The execution log (seed 001's LogWriter) on a real Delta table: every API call, the statistics computed from
the data, and maintenance that really changes the table (versions, files)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from datetime import datetime, timedelta, timezone

import pytest
from deltalake import DeltaTable

from etl_platform.execution_log import (
    ExecutionContext,
    ExecutionMode,
    ExecutionResult,
    LogWriter,
    StepResult,
    WriteMode,
    WriterConfig,
    WriterConfigurationError,
    WriterValidationError,
)

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
def writer(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_PLATFORM_HOME", str(tmp_path / "home"))
    return LogWriter(None, WriterConfig(table_schema="analytics", table_name="pipeline_logs",
                                        write_mode=WriteMode.APPEND))


def history_of(writer: LogWriter, durations: list[float], step: str = "bronze_extract", rows: int = 1000,
               valid: int = 950) -> None:
    """One run a day ending today, one step each, with the given durations."""
    for number, seconds in enumerate(durations):
        start = NOW - timedelta(days=len(durations) - number)
        context = ExecutionContext(mode=ExecutionMode.INCREMENTAL, start_time=start, execution_id=f"exec-{number}",
                                   pipeline_id="video", schema="analytics")
        step_result = StepResult(step_name=step, phase="bronze", start_time=start,
                                 end_time=start + timedelta(seconds=seconds), rows_processed=rows,
                                 rows_written=valid, valid_rows=valid, success=True, execution_context=context)
        writer.write_execution_result(ExecutionResult(success=True, context=context, step_results=[step_result],
                                                      total_duration_secs=seconds))


def test_seed_quick_start_and_table_info(writer, tmp_path):
    log_rows = [{"run_id": "my-first-run", "phase": "bronze", "step_name": "extract_data", "duration_secs": 15.0,
                 "rows_processed": 1000, "validation_rate": 95.0}]
    result = writer.write_log_rows(log_rows)
    assert result["success"] and result["rows_written"] == 1
    info = writer.get_table_info()
    assert info["row_count"] == 1 and "validation_rate" in info["columns"]
    assert info["location"] == str(tmp_path / "home" / "logs" / "analytics" / "pipeline_logs")
    assert info["partition_columns"] == ["log_date"]
    rows = writer.show_logs(limit=5)
    assert rows[0]["run_id"] == "my-first-run" and rows[0]["success"] is True
    assert DeltaTable(info["location"]).version() == 0


def test_execution_results_and_step_results_land_as_rows_with_rates_from_the_counts(writer):
    context = ExecutionContext(mode=ExecutionMode.INITIAL, start_time=NOW, execution_id="exec-123",
                               pipeline_id="my-pipeline", schema="analytics")
    steps = [StepResult(step_name="bronze_extract", phase="bronze", start_time=NOW,
                        end_time=NOW + timedelta(seconds=10), rows_processed=1000, rows_written=950, valid_rows=950,
                        invalid_rows=50, success=True, execution_context=context),
             StepResult(step_name="silver_clean", phase="silver", start_time=NOW, duration_secs=4.0,
                        rows_processed=950, rows_written=0, success=False, error_message="disk full",
                        execution_context=context)]
    writer.write_execution_result(ExecutionResult(success=False, context=context, step_results=steps), run_id="run-123")
    writer.write_step_results(step_results=steps[:1], execution_context=context, run_id="step-run-123")
    rows = {(r["run_id"], r["step_name"]): r for r in writer.show_logs(limit=10)}
    bronze = rows[("run-123", "bronze_extract")]
    assert bronze["validation_rate"] == 95.0 and bronze["duration_secs"] == 10.0  # from the counts and the times
    assert rows[("run-123", "silver_clean")]["success"] is False
    assert ("step-run-123", "bronze_extract") in rows
    with pytest.raises(WriterValidationError, match=r"validation_rate 99\.0 disagrees with valid_rows/rows_processed "
                                                    r"= 950/1000 = 95\.0"):
        writer.write_log_rows([{"run_id": "r", "step_name": "s", "rows_processed": 1000, "valid_rows": 950,
                                "validation_rate": 99.0}])


def test_invalid_rows_are_refused_naming_row_and_field_and_nothing_is_written(writer):
    writer.write_log_rows([{"run_id": "ok", "phase": "bronze", "step_name": "s", "duration_secs": 1.0}])
    with pytest.raises(WriterValidationError) as refused:
        writer.write_log_rows([{"run_id": "valid-run", "phase": "bronze", "duration_secs": 10.0},
                               {"run_id": "", "phase": "bronze", "duration_secs": -1.0, "colour": "red"},
                               {"run_id": "r", "step_name": ["x"], "success": "yes"}])
    message = str(refused.value)
    assert "row 2: step_name ['x'] must be a text" in message and "row 2: success 'yes' must be true or false" in message
    assert "row 1: unknown field(s) ['colour']" in message and "row 1: run_id '' must be a non-empty text" in message
    assert "row 1: duration_secs -1.0 must be a number >= 0" in message
    assert writer.get_table_info()["row_count"] == 1
    with pytest.raises(WriterConfigurationError, match="table_schema: '' must be a name"):
        WriterConfig(table_schema="", table_name="test")


def test_quality_validation_with_custom_rules(writer):
    rows = [{"run_id": f"r{i}", "phase": "bronze" if i < 9 else "platinum", "step_name": "s", "duration_secs": 10.0,
             "rows_processed": 100, "validation_rate": 99.0} for i in range(10)]
    result = writer.validate_log_data_quality(rows, validation_rules={
        "duration_secs": ["duration_secs >= 0 AND duration_secs <= 3600"],
        "phase": ["phase IN ('bronze', 'silver', 'gold')"]})
    assert (result["valid_rows"], result["invalid_rows"], result["validation_rate"]) == (9, 1, 90.0)
    assert not result["quality_passed"] and not result["threshold_met"]  # 90 % < min_validation_rate 95 %
    assert result["rule_failures"] == {"phase: phase IN ('bronze', 'silver', 'gold')": 1}
    with pytest.raises(WriterValidationError, match="a validation rule is not valid SQL"):
        writer.validate_log_data_quality(rows, validation_rules={"x": ["no_such_column > 1"]})


def test_a_slowed_step_is_an_anomaly_against_its_own_history_and_normal_runs_are_not(writer):
    history_of(writer, [10.0, 11.0, 10.5, 9.5, 10.0, 10.8, 11.2, 9.9])
    history_of(writer, [120.0, 118.0, 125.0, 121.0, 119.0, 122.0], step="gold_build")  # slow but steady
    normal = writer.detect_anomalies([{"run_id": "today", "pipeline_id": "video", "phase": "bronze",
                                       "step_name": "bronze_extract", "duration_secs": 10.4, "rows_processed": 1000,
                                       "valid_rows": 950}])
    assert normal["anomalies_detected"] is False
    slowed = writer.detect_anomalies([{"run_id": "today", "pipeline_id": "video", "phase": "bronze",
                                       "step_name": "bronze_extract", "duration_secs": 45.0, "rows_processed": 1000,
                                       "valid_rows": 950},
                                      {"run_id": "today", "pipeline_id": "video", "phase": "gold",
                                       "step_name": "gold_build", "duration_secs": 121.0, "rows_processed": 1000,
                                       "valid_rows": 950}])
    assert slowed["anomaly_count"] == 1
    anomaly = slowed["anomalies"][0]
    assert (anomaly["type"], anomaly["step_name"], anomaly["value"], anomaly["severity"]) == \
        ("duration_secs_anomaly", "bronze_extract", 45.0, "high")
    low, high = anomaly["expected_range"]
    assert low < 10.4 < high < 45.0 and anomaly["history_runs"] == 8
    assert "duration 45 is higher than its usual" in anomaly["description"]
    fresh = writer.detect_anomalies([{"run_id": "x", "pipeline_id": "video", "step_name": "brand_new_step",
                                      "duration_secs": 999.0}])
    assert fresh["anomaly_count"] == 0  # a step's first runs are never anomalies


def test_the_report_and_its_chart_are_made_without_pandas(writer, tmp_path):
    """Every health run and `etl-platform report` pays for what logging and the report import: rows become Arrow
    through DuckDB, the log is read through delta-rs, the chart drawn with Pillow (pa.array and pyarrow.dataset
    import pandas, ~0.3 s; matplotlib ~0.5 s)."""
    import subprocess
    import sys

    history_of(writer, [10.0, 11.0, 10.5, 9.5, 45.0])
    code = ("import sys; from pathlib import Path; from etl_platform.execution_log import LogWriter, WriterConfig; "
            "from etl_platform.execution_log.report import chart, markdown; "
            "w = LogWriter(None, WriterConfig(table_schema='analytics', table_name='pipeline_logs')); "
            "w.write_log_rows([{'run_id': 'sub', 'phase': 'bronze', 'step_name': 'bronze_extract', "
            "'duration_secs': 10.2}]); "
            f"print(markdown(w, 30).count('bronze_extract') > 0, chart(w, 30, Path({str(tmp_path / 'c.png')!r})) "
            "is not None, sorted(m for m in ('pandas', 'pyarrow.dataset', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ})
    assert done.stdout.split() == ["True", "True", "[]"], done.stdout + done.stderr


def test_a_snapshot_reads_the_window_once_for_the_whole_report(writer):
    """The health asset asks for the window several times (summary, trends, anomalies, chart): one read serves all
    inside `snapshot`, so a row written meanwhile shows only after it, or in another window."""
    history_of(writer, [10.0, 11.0])
    with writer.table.snapshot(30):
        before = writer.generate_summary_report(30)["total_executions"]
        history_of(writer, [12.0], step="later")
        assert writer.generate_summary_report(30)["total_executions"] == before
        assert writer.generate_summary_report(90)["total_executions"] == before + 1
    assert writer.generate_summary_report(30)["total_executions"] == before + 1
    assert writer.table.dagster_run_ids() == set()  # rows written without Dagster carry no run of it


def test_summary_trends_metrics_and_export(writer, tmp_path):
    history_of(writer, [10.0 + 2 * day for day in range(10)])  # getting slower by 2 s a day
    writer.write_log_rows([{"run_id": "broken", "pipeline_id": "video", "phase": "silver", "step_name": "clean",
                            "start_time": NOW, "duration_secs": 3.0, "error_message": "boom"}])
    summary = writer.generate_summary_report(days=30)
    assert summary["report_available"] and summary["total_executions"] == 11
    assert summary["success_rate_percent"] == round(100 * 10 / 11, 2)
    assert summary["phase_distribution"] == {"bronze": 10, "silver": 1}
    assert summary["total_rows_processed"] == 10_000 and summary["most_failing_steps"][0]["step_name"] == "clean"
    trends = writer.analyze_performance_trends(days=90)
    step = next(s for s in trends["step_trends"] if s["step_name"] == "bronze_extract")
    assert step["duration_slope_secs_per_day"] == pytest.approx(2.0, abs=0.01) and step["getting_slower"]
    assert trends["duration_trend"]["max"] == 28.0 and trends["validation_trend"]["mean"] == 95.0
    metrics = writer.get_metrics()
    assert metrics["total_writes"] == 11 and metrics["success_rate_percent"] == 100.0
    assert metrics["average_validation_rate"] == 95.0
    for format in ("json", "csv", "parquet"):
        exported = writer.export_analytics_data(format=format, limit=5, filters={"phase": "bronze"},
                                                output_dir=str(tmp_path / "exports"))
        assert exported["export_successful"] and exported["records_exported"] == 5
    rows = json.loads(open(writer.export_analytics_data(format="json", filters={"success": False},
                                                        output_dir=str(tmp_path / "exports"))["export_path"]).read())
    assert [r["run_id"] for r in rows] == ["broken"]
    # issue 23, trip-up 7: runs minutes apart make no trend (a slope per day from them was "+681 s per day")
    for minute, seconds in enumerate([1.0, 5.0, 9.0, 20.0]):
        writer.write_log_rows([{"run_id": f"fresh-{minute}", "pipeline_id": "video", "phase": "bronze",
                                "step_name": "fresh_install", "start_time": NOW + timedelta(minutes=minute),
                                "duration_secs": seconds}])
    assert "fresh_install" not in {s["step_name"] for s in writer.analyze_performance_trends(days=90)["step_trends"]}

def test_optimize_vacuum_and_history_really_change_the_table(writer):
    for number in range(6):
        writer.write_log_rows([{"run_id": f"r{number}", "phase": "silver", "step_name": "s", "duration_secs": 1.0}])
    location = writer.get_table_info()["location"]
    assert len(DeltaTable(location).file_uris()) == 6 and DeltaTable(location).version() == 5
    history = writer.get_table_history(limit=3)
    assert history["history_available"] and history["total_versions"] == 6
    assert [v["version"] for v in history["versions"]] == [5, 4, 3] and history["versions"][0]["row_count"] == 1
    result = writer.optimize_table(enable_zordering=False, enable_compression=True, enable_vacuum=True)
    assert result["optimized"] and (result["files_before"], result["files_after"]) == (6, 1)
    assert "vacuum (0 files removed, retention 7 days)" in result["optimizations_applied"]
    assert DeltaTable(location, version=5).to_pyarrow_table().num_rows == 6  # an earlier version stays readable
    assert writer.get_table_history(limit=1)["versions"][0]["operation"] == "OPTIMIZE"  # nothing vacuumed yet
    asked = writer.optimize_table(enable_zordering=False, enable_compression=True, enable_vacuum=True,
                                  retention_hours=0)  # the caller asks: the replaced files go now
    assert "vacuum (6 files removed, retention 0 h)" in asked["optimizations_applied"]
    operations = [v["operation"] for v in writer.get_table_history(limit=3)["versions"]]
    assert operations == ["VACUUM END", "VACUUM START", "OPTIMIZE"]  # the compaction, then the vacuum
    assert writer.get_table_info()["row_count"] == 6
    maintained = writer.maintain_table({"vacuum": True, "analyze": True, "validate_schema": True})
    assert maintained["maintained"] and "validate_schema: all columns present" in maintained["maintenance_operations"]
    assert writer.get_memory_usage()["rss_mb"] > 0


# ---------------------------------------------------------------- filled from Dagster runs


def test_every_run_lands_in_the_log_once_with_counts_from_the_warehouse(platform):
    import dagster as dg

    from etl_platform.execution_log.dagster_runs import sync_runs
    from etl_platform.video_analytics import demo_data
    from etl_platform.video_analytics.assets import build_assets
    from etl_platform.video_analytics.checks import build_asset_checks

    demo_data.generate(platform.landing, sessions=2_000, seed=5, defects=True, progress=False)
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([*build_assets(), *build_asset_checks()], resources=platform.resources(),
                          instance=instance).success

    @dg.asset(key=["gold", "always_fails"])
    def always_fails():
        raise RuntimeError("the disk went away")

    assert not dg.materialize([always_fails], instance=instance, raise_on_error=False).success
    writer = LogWriter(config=WriterConfig())
    added = sync_runs(instance, writer)
    assert added > 0 and sync_runs(instance, writer) == 0  # a second sync (a restarted logger) adds nothing
    rows = {r["step_name"]: r for r in writer.table.read().to_pylist()}
    assert len(rows) == added

    sessions = rows["silver/viewing_sessions"]
    kept = platform.scalar("SELECT count(*) FROM silver.viewing_sessions")
    quarantined = platform.scalar("SELECT count(*) FROM silver._quarantine_viewing_sessions")
    assert (sessions["rows_written"], sessions["invalid_rows"], sessions["rows_processed"]) == \
        (kept, quarantined, kept + quarantined)
    assert sessions["validation_rate"] == pytest.approx(100 * kept / (kept + quarantined), abs=1e-3)
    assert sessions["phase"] == "silver" and sessions["success"] and sessions["duration_secs"] > 0
    assert rows["gold/viewing_fact"]["rows_written"] == platform.scalar("SELECT count(*) FROM gold.viewing_fact")
    checks = [r for r in rows.values() if r["phase"] == "check"]
    assert checks and all(r["asset_key"] for r in checks)
    # a step that failed before materializing: logged under its asset's name, one name per step (issue 23, trip-up 7)
    failed = rows["gold/always_fails"]
    assert failed["success"] is False and "the disk went away" in failed["error_message"]
    assert failed["phase"] == "gold" and "gold__always_fails" not in rows
    assert len({r["dagster_run_id"] for r in rows.values()}) == 2


def test_a_slowed_step_is_flagged_in_the_health_report_and_the_sensor_refreshes_it(platform, monkeypatch, tmp_path):
    import time as clock

    import dagster as dg
    from click.testing import CliRunner

    from etl_platform.cli import main
    from etl_platform.execution_log.assets import execution_log_sensor, pipeline_health
    from etl_platform.video_analytics import demo_data
    from etl_platform.video_analytics.assets import build_assets
    from etl_platform.video_analytics.checks import build_asset_checks
    from etl_platform.warehouse import DuckDBWarehouse

    demo_data.generate(platform.landing, sessions=2_000, seed=9, progress=False)
    instance = dg.DagsterInstance.ephemeral()
    assets = [*build_assets(), *build_asset_checks()]
    assert dg.materialize(assets, resources=platform.resources(), instance=instance).success
    for _ in range(6):  # the step's history: six ordinary runs
        dg.materialize(assets, resources=platform.resources(), instance=instance, selection="gold/user_engagement")
    original = DuckDBWarehouse.run_script

    def slowed(self, conn, relative_path, own_transaction=True, **options):
        if relative_path.endswith("gold/user_engagement.sql"):
            clock.sleep(3)
        return original(self, conn, relative_path, own_transaction, **options)

    monkeypatch.setattr(DuckDBWarehouse, "run_script", slowed)
    dg.materialize(assets, resources=platform.resources(), instance=instance, selection="gold/user_engagement")
    monkeypatch.setattr(DuckDBWarehouse, "run_script", original)

    health = dg.materialize([pipeline_health], instance=instance)
    metadata = health.asset_materializations_for_node("ops__pipeline_health")[0].metadata
    report = metadata["report"].value
    anomalies = report.split("## Anomalies")[1].split("##")[0]
    assert "gold/user_engagement" in anomalies and "duration_secs" in anomalies
    assert "gold/viewing_fact" not in anomalies and "silver/" not in anomalies  # the normal steps are not flagged
    assert metadata["anomalies"].value == 1 and metadata["rows_synced"].value > 0
    assert _red_pixels(Path(metadata["chart_file"].value)) > 0  # the slowed run's point is ringed

    import json

    from etl_platform.execution_log import dagster_runs

    read = []
    original_rows = dagster_runs.rows_for_run
    monkeypatch.setattr(dagster_runs, "rows_for_run", lambda i, run, *a: read.append(run.run_id) or
                        original_rows(i, run, *a))  # counts the runs a tick reads, then reads them
    context = dg.build_sensor_context(instance=instance)
    assert isinstance(execution_log_sensor(context), dg.SkipReason)  # only the health run was new
    assert json.loads(context.cursor)["pending"] is False and len(read) == 1
    idle = dg.build_sensor_context(instance=instance, cursor=context.cursor)
    assert isinstance(execution_log_sensor(idle), dg.SkipReason) and len(read) == 1
    dg.materialize(assets, resources=platform.resources(), instance=instance, selection="gold/daily_viewing")
    # a report less than 15 minutes old: the refresh waits (the cursor remembers it), the runs are logged already
    waiting = dg.build_sensor_context(instance=instance, cursor=idle.cursor)
    assert isinstance(execution_log_sensor(waiting), dg.SkipReason) and json.loads(waiting.cursor)["pending"]
    assert len(read) == 2  # the one new run, not the nine before it
    monkeypatch.setenv("ETL_PLATFORM_HEALTH_REFRESH_MINUTES", "0")
    request = execution_log_sensor(dg.build_sensor_context(instance=instance, cursor=waiting.cursor))
    assert isinstance(request, dg.RunRequest)
    assert execution_log_sensor.job_name == "pipeline_health"  # a named job, pruned by housekeeping like any run

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    printed = CliRunner().invoke(main, ["report", "--days", "30", "--chart", str(tmp_path / "health.png")])
    assert printed.exit_code == 0 and "# Pipeline health, last 30 days" in printed.output
    assert _red_pixels(tmp_path / "health.png") > 0


def _red_pixels(png: Path) -> int:
    """Pixels of the chart's anomaly rings (pure red; the series' own red is darker), 0 if none."""
    from PIL import Image

    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (990, 630)
        return sum(1 for r, g, b in image.convert("RGB").getdata() if r > 240 and g < 40 and b < 40)


def test_the_chart_draws_each_series_and_rings_only_the_flagged_points(tmp_path):
    from etl_platform.execution_log.chart import Panel, Series, draw, nice_ticks

    assert nice_ticks(0) == [0.0, 1.0] and nice_ticks(4.7) == [0, 1, 2, 3, 4, 5]
    assert nice_ticks(1_000_000) == [0, 200_000, 400_000, 600_000, 800_000, 1_000_000]
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    times = [start + timedelta(hours=h) for h in range(10)]
    plain = [Series("silver/users", [(t, 1.0 + i % 3) for i, t in enumerate(times)]),
             Series("gold/one_point", [(times[4], 2.5)])]  # a step run once is a dot
    calm = draw([Panel("duration (s)", plain), Panel("rows written", plain)], "calm", tmp_path / "calm.png")
    assert _red_pixels(calm) == 0
    flagged = [Series("silver/users", plain[0].points, {7}), plain[1]]
    alarmed = draw([Panel("duration (s)", flagged), Panel("rows written", plain)], "one anomaly",
                   tmp_path / "alarm.png")
    assert _red_pixels(alarmed) > 50
    # One point in all and no series at all still make a chart (a padded time axis, a 0-1 value axis).
    assert _red_pixels(draw([Panel("a", [plain[1]]), Panel("b", [])], "lonely", tmp_path / "lonely.png")) == 0


def test_the_chart_leaves_out_a_run_without_a_duration(writer, tmp_path):
    from etl_platform.execution_log.report import chart

    history_of(writer, [10.0, 11.0, 10.5])
    writer.write_log_rows([{"run_id": "no-duration", "phase": "bronze", "step_name": "bronze_extract",
                            "start_time": NOW, "rows_processed": 5}])
    assert _red_pixels(chart(writer, 30, tmp_path / "gaps.png")) == 0


def test_every_column_of_the_pipeline_tables_is_described_in_its_column_schema(platform):
    from etl_platform.video_analytics import demo_data

    demo_data.generate(platform.landing, sessions=500, seed=2, progress=False)
    result = platform.materialize()
    undescribed = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        schema = materialization.metadata.get("dagster/column_schema")
        if schema is None:
            continue
        missing = [c.name for c in schema.value.columns if not c.description]
        if missing:
            undescribed[materialization.asset_key.to_user_string()] = missing
    assert undescribed == {}


def test_with_spark_rows_go_in_and_come_out_as_spark_dataframes(writer, spark_session):
    """LogWriter(spark, config) as in the seed: Spark DataFrames of log rows are written and the table is read back
    as a Spark DataFrame (through Arrow and delta-rs: the delta-spark jars are not installable here)."""
    spark_writer = LogWriter(spark_session, writer.config)
    frame = spark_session.createDataFrame([("spark-run", "gold", "aggregate", 12.5, 1000, 990)],
                                          "run_id string, phase string, step_name string, duration_secs double, "
                                          "rows_processed long, valid_rows long")
    assert spark_writer.write_log_rows(frame)["rows_written"] == 1
    back = spark_writer.read_logs()
    assert type(back).__module__.startswith("pyspark")
    row = back.where("run_id = 'spark-run'").collect()[0]
    assert (row["step_name"], row["validation_rate"]) == ("aggregate", 99.0)
    assert writer.read_logs().num_rows == 1  # the same table, read without Spark


def test_reading_the_log_first_logs_the_runs_of_dagster_home(writer, platform, monkeypatch, tmp_path):
    """A run started from the CLI with no daemon (here: dg.materialize on the instance at $DAGSTER_HOME) is in
    the log by the time LogWriter reads it."""
    import dagster as dg

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()

    @dg.asset(key=["gold", "tiny"])
    def tiny():
        return dg.MaterializeResult(metadata={"dagster/row_count": 7})

    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([tiny], instance=instance).success
    reader = LogWriter(config=WriterConfig(table_schema="analytics", table_name="pipeline_logs"))
    rows = reader.read_logs().to_pylist()
    assert [(r["step_name"], r["rows_written"], r["phase"]) for r in rows] == [("gold/tiny", 7, "gold")]


def test_the_log_can_live_on_s3_through_the_destinations_store(tmp_path, monkeypatch):
    import boto3

    from etl_platform.destinations import S3Store
    from etl_platform_tests import servers

    monkeypatch.setenv("ETL_PLATFORM_HOME", str(tmp_path))
    with servers.moto_s3() as url:
        client = boto3.client("s3", endpoint_url=url, aws_access_key_id="k", aws_secret_access_key="s",
                              region_name="us-east-1")
        client.create_bucket(Bucket="ops")
        store = S3Store(bucket="ops", prefix="platform", endpoint_url=url, aws_access_key_id="k",
                        aws_secret_access_key="very-secret", region="us-east-1")
        writer = LogWriter(config=WriterConfig(store=store, table_name="pipeline_logs", sync_dagster_runs=False))
        assert writer.location == "s3://ops/platform/pipeline_logs"
        writer.write_log_rows([{"run_id": "r1", "phase": "gold", "step_name": "s", "duration_secs": 2.0}])
        writer.write_log_rows([{"run_id": "r2", "phase": "gold", "step_name": "s", "duration_secs": 3.0}])
        assert writer.get_table_info()["row_count"] == 2 and writer.get_table_history()["total_versions"] == 2
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="ops", Prefix="platform/")["Contents"]]
        assert any(k.startswith("platform/pipeline_logs/_delta_log/") for k in keys)
        assert "very-secret" not in repr(writer.config.store)


def test_the_log_can_live_on_azure_blob_through_the_destinations_store(tmp_path, monkeypatch):
    from azure.storage.blob import BlobServiceClient

    from etl_platform.destinations import AzureBlobStore
    from etl_platform_tests import servers

    monkeypatch.setenv("ETL_PLATFORM_HOME", str(tmp_path))
    with servers.azurite(tmp_path / "azurite") as connection_string:
        container = BlobServiceClient.from_connection_string(connection_string).create_container("ops")
        store = AzureBlobStore(container="ops", prefix="platform", connection_string=connection_string)
        writer = LogWriter(config=WriterConfig(store=store, sync_dagster_runs=False))
        assert writer.location == "az://ops/platform/pipeline_logs"
        writer.write_log_rows([{"run_id": "r1", "phase": "gold", "step_name": "s", "duration_secs": 2.0}])
        assert writer.read_logs().column("run_id").to_pylist() == ["r1"]
        assert any(b.name.startswith("platform/pipeline_logs/_delta_log/") for b in container.list_blobs())


def test_the_quarantine_table_itself_has_no_validation_rate(platform):
    """silver/quarantine's rows are the refused rows of the other tables, not rows it refused: logged without a
    validation rate, so it does not drag the platform's average down."""
    import dagster as dg

    from etl_platform.execution_log.dagster_runs import sync_runs
    from etl_platform.video_analytics import demo_data
    from etl_platform.video_analytics.assets import build_assets
    from etl_platform.video_analytics.checks import build_asset_checks

    demo_data.generate(platform.landing, sessions=1_000, seed=4, defects=True, progress=False)
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize([*build_assets(), *build_asset_checks()], resources=platform.resources(), instance=instance)
    writer = LogWriter(config=WriterConfig(sync_dagster_runs=False))
    sync_runs(instance, writer)
    rows = {r["step_name"]: r for r in writer.read_logs().to_pylist()}
    assert rows["silver/quarantine"]["validation_rate"] is None
    assert rows["silver/quarantine"]["rows_written"] == platform.scalar("SELECT count(*) FROM silver.quarantine")
    assert 90 < rows["silver/users"]["validation_rate"] < 100


def test_chart_time_labels_never_repeat():
    """Issue 23, trip-up 7: runs minutes apart gave six identical tick labels."""
    from etl_platform.execution_log.chart import time_ticks

    start = datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc).timestamp()
    for span in (150, 6 * 3600, 10 * 86400):
        labels = [label for _, label in time_ticks(start, start + span)]
        assert len(set(labels)) == 6, labels
    assert [label for _, label in time_ticks(start, start + 10 * 86400)][0] == "2026-12-06"
    assert [label for _, label in time_ticks(start, start + 150)][1] == "12-06 09:00:30"
