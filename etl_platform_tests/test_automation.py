"""The daily schedule, the landing-files sensor (cursor, observations, settling) and the declarative automation
that runs what changed files feed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import dagster as dg

from etl_platform.definitions import defs
from etl_platform.landing import LandingZone
from etl_platform.video_analytics.automation import daily_schedule, landing_sensor
from etl_platform_tests.test_silver import user


def age(path, seconds: float = 60) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def tick(platform, cursor):
    context = dg.build_sensor_context(cursor=cursor, instance=dg.DagsterInstance.ephemeral(),
                                      resources={"landing": LandingZone(root=str(platform.home / "landing"))})
    result = landing_sensor(context)
    return result, context.cursor


def observed(result) -> dict[str, str]:
    """The landing sensor's observations: {entity: data version}."""
    assert isinstance(result, dg.SensorResult) and not result.run_requests, result
    return {event.asset_key.path[1]: event.tags["dagster/data_version"] for event in result.asset_events}


def test_sensor_observes_the_entities_whose_files_changed(platform):
    first = platform.write_csv("users_1.csv", [user("1")])
    age(first)
    result, cursor = tick(platform, None)
    versions = observed(result)
    assert list(versions) == ["users"] and set(json.loads(cursor)) == {"users_1.csv"}

    skip, same_cursor = tick(platform, cursor)  # nothing new: no observation
    assert isinstance(skip, dg.SkipReason) and same_cursor == cursor

    second = platform.write_jsonl("content_1.jsonl", ['{"content_id": 1}'])
    third = platform.write_csv("viewing_sessions_1.csv", [])
    age(second), age(third)
    batch, cursor = tick(platform, cursor)  # two entities changed: an observation each
    assert set(observed(batch)) == {"content", "viewing_sessions"}

    platform.write_csv("users_1.csv", [user("1"), user("2")])
    age(first, 30)  # changed content and time: a new data version of landing/users
    changed, cursor = tick(platform, cursor)
    assert list(observed(changed)) == ["users"] and observed(changed)["users"] != versions["users"]

    first.unlink()  # a deleted file changes its entity too
    deleted, cursor = tick(platform, cursor)
    assert list(observed(deleted)) == ["users"]
    assert deleted.asset_events[0].metadata["deleted"].value == "users_1.csv"


def test_the_first_tick_observes_no_change_for_files_a_run_already_loaded(platform):
    """Issue 23, trip-up 11: the sensor's first tick started a full run although nothing had changed since the last
    run. Files older than their bronze asset's last materialization count as seen; a newer one is a change."""
    from etl_platform.video_analytics.assets import build_assets

    loaded = platform.write_csv("users_1.csv", [user("1")])
    age(loaded)
    instance = dg.DagsterInstance.ephemeral()
    users = [a for a in build_assets() if dg.AssetKey(["bronze", "users"]) in a.keys]
    assert dg.materialize(users, resources=platform.resources(), instance=instance).success

    def first_tick():
        context = dg.build_sensor_context(instance=instance, resources={
            "landing": LandingZone(root=str(platform.home / "landing"), settle_seconds=0)})
        return landing_sensor(context), context.cursor

    skip, cursor = first_tick()
    assert isinstance(skip, dg.SkipReason) and set(json.loads(cursor)) == {"users_1.csv"}
    time.sleep(0.05)
    platform.write_csv("users_2.csv", [user("2")])  # arrives after the run
    result, _ = first_tick()
    assert list(observed(result)) == ["users"]


def test_declarative_automation_runs_what_the_changed_files_feed(platform):
    """An update of landing/users (the sensor saw new users files) requests bronze/users and everything built from it, not
    the content or sessions bronze tables; nothing more is requested until the next change. Dagster's own
    evaluator, on an instance where the pipeline has run."""
    from etl_platform.video_analytics import demo_data
    from etl_platform.video_analytics.assets import build_assets, landing_specs
    from etl_platform.video_analytics.checks import build_asset_checks

    demo_data.generate(platform.landing, sessions=500, seed=4, progress=False)
    instance = dg.DagsterInstance.ephemeral()
    assets = [*build_assets(), *build_asset_checks()]
    automation_defs = dg.Definitions(assets=[*landing_specs(), *build_assets()], asset_checks=build_asset_checks(),
                                     resources=platform.resources())
    for entity in ("users", "content", "viewing_sessions"):
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=dg.AssetKey(["landing", entity]), tags={"dagster/data_version": "v1"}))
    assert dg.materialize(assets, resources=platform.resources(), instance=instance).success
    quiet = dg.evaluate_automation_conditions(automation_defs, instance)
    assert quiet.total_requested == 0

    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=dg.AssetKey(["landing", "users"]), tags={"dagster/data_version": "v2"}))
    result = dg.evaluate_automation_conditions(automation_defs, instance, cursor=quiet.cursor)
    requested = {key.to_user_string() for key in automation_defs.resolve_asset_graph().get_all_asset_keys()
                 if result.get_num_requested(key)}
    assert requested == {"bronze/users", "silver/users", "silver/viewing_sessions", "silver/quarantine",
                         "gold/user_engagement", "gold/content_performance", "gold/viewing_fact",
                         "gold/daily_viewing"}
    again = dg.evaluate_automation_conditions(automation_defs, instance, cursor=result.cursor)
    assert again.total_requested == 0  # handled: no new request until the files change again


def test_sensor_waits_for_files_still_being_written(platform):
    platform.write_csv("users_1.csv", [user("1")])  # modified just now
    result, cursor = tick(platform, None)
    assert isinstance(result, dg.SkipReason)
    assert cursor is None


def test_daily_schedule_runs_the_whole_pipeline():
    assert daily_schedule.cron_schedule == "0 3 * * *"
    assert daily_schedule.execution_timezone == "UTC"
    job = defs.resolve_job_def(daily_schedule.job_name)
    assert job.executor_def.name == "in_process"
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert selected == {
        "bronze/users", "bronze/content", "bronze/viewing_sessions",
        "silver/users", "silver/content", "silver/viewing_sessions", "silver/quarantine",
        "gold/user_engagement", "gold/content_performance", "gold/daily_viewing", "gold/viewing_fact",
    }
    context = dg.build_schedule_context(scheduled_execution_time=None)
    requests = daily_schedule.evaluate_tick(context).run_requests
    assert len(requests) == 1


def test_definitions_load():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    # the contract's eleven assets, the landing files they read, and the execution log's ops/pipeline_health
    assert keys == {
        "landing/users", "landing/content", "landing/viewing_sessions",
        "bronze/users", "bronze/content", "bronze/viewing_sessions",
        "silver/users", "silver/content", "silver/viewing_sessions", "silver/quarantine",
        "gold/user_engagement", "gold/content_performance", "gold/daily_viewing", "gold/viewing_fact",
        "ops/pipeline_health",
    }
    assert defs.resolve_sensor_def("video_analytics_landing_sensor").default_status == dg.DefaultSensorStatus.STOPPED
    assert defs.resolve_sensor_def("video_analytics_automation").default_status == dg.DefaultSensorStatus.STOPPED


def test_code_location_loads_without_the_heavy_optional_libraries(tmp_path):
    """Every `dagster` command and run process loads the code location: it must not import what only some assets
    use (pandas alone is ~0.3 s of each start; pyarrow.dataset and the ADBC driver import it), nor every installed
    Dagster integration, nor sqlglot once what the SQL says is cached (the first load reads the SQL with it)."""
    code = ("import sys, etl_platform.definitions; "
            "print(sorted(m for m in ('pandas', 'pyarrow.dataset', 'PIL', 'pyspark', 'sqlglot', 'dagster_aws', "
            "'adbc_driver_postgresql.dbapi', 'deltalake') if m in sys.modules))")
    env = {**os.environ, "ETL_PLATFORM_HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    cold = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          env=env)
    assert cold.stdout.strip() == "['sqlglot']", cold.stdout
    assert list((tmp_path / "cache" / "etl_platform" / "sql").glob("*.json"))
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                            env=env)
    assert loaded.stdout.strip() == "[]", loaded.stdout


def test_the_code_location_keeps_its_import_time_objects_out_of_the_garbage_collector():
    """Loading the code location freezes what it made (later collections skip it) and, at exit, whatever the process
    made since (the interpreter's last full collection is skipped): ~0.5 s of each `dagster` process."""
    # gc.get_objects() lists what the collector still walks (frozen objects are not in it).
    code = ("import gc, atexit, etl_platform.definitions; "
            "walked = lambda o: any(x is o for x in gc.get_objects()); "
            "print(walked(etl_platform.definitions.defs), gc.get_freeze_count() > 50_000); "
            "made = [1]; print(walked(made)); atexit._run_exitfuncs(); print(walked(made))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["False", "True", "True", "False"], done.stdout + done.stderr


def test_the_sources_package_gives_its_names_whatever_was_imported_first():
    """`etl_platform.sources` imports its readers on first use; a submodule imported before (as landing code does)
    must not shadow a name of the package (the function `ingest` shares its module's name)."""
    code = ("import etl_platform.sources.ingest, etl_platform.sources.files; "
            "from etl_platform.sources import ingest, FileSource, SOURCES, source_asset; "
            "print(callable(ingest) and not hasattr(ingest, '__file__'), SOURCES['local'] is FileSource, "
            "callable(source_asset))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["True", "True", "True"], done.stdout + done.stderr
