"""The SQL medallion component: a folder of SQL models and a checks file become assets with checks, dependencies
and column lineage read from the SQL (etl_platform/medallion/component.py). The example in
examples/content_insights is loaded as a user adds it (its folder copied into a defs folder) and run on the
reference pipeline's gold tables; its results are compared with the same numbers computed here."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from etl_platform.video_analytics import demo_data
from etl_platform_tests.conftest import defs_load_error

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "content_insights"


def _example_defs(sandbox, folder: Path = EXAMPLE):
    shutil.copytree(folder, sandbox.defs_folder_path / "content_insights")
    return sandbox.build_all_defs()


@pytest.fixture
def pipeline_built(platform):
    demo_data.generate(platform.landing, sessions=3_000, seed=11, defects=True, progress=False)
    platform.materialize()
    return platform


def test_the_example_pipeline_needs_no_python_and_equals_its_sql(pipeline_built):
    platform = pipeline_built
    with create_defs_folder_sandbox() as sandbox, _example_defs(sandbox) as defs:
        assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
        graph = dg.Definitions(assets=assets, resources={"warehouse": platform.warehouse()}).resolve_asset_graph()
        keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
        assert {"insights/genre_daily", "insights/genre_leaders", "insights/tier_device_mix"} <= keys
        leaders = graph.get(dg.AssetKey(["insights", "genre_leaders"]))
        assert leaders.parent_keys == {dg.AssetKey(["insights", "genre_daily"])}  # read from its SQL
        assert graph.get(dg.AssetKey(["insights", "genre_daily"])).parent_keys == {dg.AssetKey(["gold", "viewing_fact"])}
        result = dg.materialize(assets, resources={"warehouse": platform.warehouse()})
    assert result.success
    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    assert len(checks) == 9 and all(e.passed for e in checks.values()), {n: e.passed for n, e in checks.items()}

    expected = platform.rows("""
        SELECT view_date, coalesce(primary_genre, 'unknown') AS g, count(*) AS n, count(DISTINCT user_id) AS u
        FROM gold.viewing_fact GROUP BY ALL ORDER BY 1, 2""")
    got = platform.rows("SELECT view_date, primary_genre AS g, sessions AS n, viewers AS u FROM insights.genre_daily "
                        "ORDER BY 1, 2")
    assert got == expected and len(got) > 10
    days = platform.scalar("SELECT count(DISTINCT view_date) FROM gold.viewing_fact")
    assert platform.scalar("SELECT count(*) FROM insights.genre_leaders") == days

    materialization = result.asset_materializations_for_node("insights__genre_leaders")[0]
    lineage = materialization.metadata["dagster/column_lineage"].value
    assert lineage.deps_by_column["sessions"] == [
        dg.TableColumnDep(asset_key=dg.AssetKey(["insights", "genre_daily"]), column_name="sessions")]
    assert materialization.metadata["dagster/row_count"].value == days


def test_a_failing_error_check_blocks_the_models_below(pipeline_built, tmp_path):
    platform = pipeline_built
    folder = tmp_path / "broken"
    shutil.copytree(EXAMPLE, folder)
    (folder / "checks.yaml").write_text(
        "insights.genre_daily:\n  - range: {column: sessions, min: 1000000}\n", encoding="utf-8")
    with create_defs_folder_sandbox() as sandbox, _example_defs(sandbox, folder) as defs:
        assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
        result = dg.materialize(assets, resources={"warehouse": platform.warehouse()}, raise_on_error=False)
    assert not result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "sessions_in_range" and not evaluation.passed
    done = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert "insights/genre_leaders" not in done and "insights/tier_device_mix" in done


@pytest.mark.parametrize("checks, message", [
    ("insights.nope:\n  - row_count_min: 1\n", "'insights.nope' is not a model of this folder"),
    ("insights.genre_daily:\n  - unique: [a]\n    not_null: [b]\n", "exactly one rule"),
    ("insights.genre_daily:\n  - uniq: [a]\n", "uniq: Extra inputs are not permitted"),
    ("insights.genre_daily:\n  - range: {column: sessions}\n", "range takes column, min and/or max"),
    ("insights.genre_daily:\n  - sql: SELECT 1\n", "an sql check needs a name"),
    ("insights.genre_daily:\n  - not_null: ['x; DROP TABLE y']\n", "is not a column name"),
])
def test_a_bad_checks_file_fails_the_load_naming_the_entry(tmp_path, checks, message):
    text = _load_error(tmp_path, {"checks.yaml": checks})
    assert message in text and "checks.yaml" in text, text


def test_a_model_must_be_one_select(tmp_path):
    text = _load_error(tmp_path, {"sql/insights/genre_daily.sql": "SELECT 1 AS a; DROP TABLE gold.viewing_fact"})
    assert "genre_daily.sql: a model is one SELECT (found: SELECT, DROP)" in text, text


def _load_error(tmp_path: Path, files: dict[str, str]) -> str:
    """The example with ``files`` written over it, loaded as a defs folder: the text of every error in the chain."""
    folder = tmp_path / "bad"
    shutil.copytree(EXAMPLE, folder)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    with create_defs_folder_sandbox() as sandbox:
        shutil.copytree(folder, sandbox.defs_folder_path / "content_insights")
        return defs_load_error(sandbox)


def test_the_example_runs_on_the_postgres_warehouse_too(platform, postgres_url):
    """The models are DuckDB SQL (QUALIFY, count(DISTINCT), round); the PostgreSQL warehouse compiles them."""
    from etl_platform.warehouse.postgres_warehouse import PostgresWarehouse

    from etl_platform_tests.test_engines import _run

    demo_data.generate(platform.landing, sessions=2_000, seed=12, progress=False)
    warehouse = PostgresWarehouse(url=postgres_url)
    assert _run(platform, warehouse).success
    with create_defs_folder_sandbox() as sandbox, _example_defs(sandbox) as defs:
        assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
        result = dg.materialize(assets, resources={"warehouse": warehouse})
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    with warehouse.connect() as conn:
        days = conn.execute("SELECT count(DISTINCT view_date) FROM gold.viewing_fact").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM insights.genre_leaders").fetchone()[0] == days
        assert conn.execute("SELECT sum(sessions) FROM insights.genre_daily").fetchone()[0] == \
            conn.execute("SELECT count(*) FROM gold.viewing_fact").fetchone()[0]


def test_scaffolding_writes_a_starter_that_runs(pipeline_built):
    """`dg scaffold defs etl_platform.components.SqlMedallion <folder>`: defs.yaml, a model and its checks that
    load and run as written."""
    from etl_platform.components import SqlMedallion

    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(component_cls=SqlMedallion)
        assert (path / "sql" / "insights" / "daily_sessions.sql").is_file() and (path / "checks.yaml").is_file()
        with sandbox.build_all_defs() as defs:
            assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
            result = dg.materialize(assets, resources={"warehouse": pipeline_built.warehouse()})
    assert result.success and len(result.get_asset_check_evaluations()) == 2
    assert pipeline_built.scalar("SELECT sum(sessions) FROM insights.daily_sessions") == \
        pipeline_built.scalar("SELECT count(*) FROM gold.viewing_fact")


# ---------------------------------------------------------------- a medallion declared in YAML (models:)

MINI_DEFS = """
type: etl_platform.components.SqlMedallion
attributes:
  sql_folder: sql
  group_name: mini_{layer}
  landing: {contract: etl_platform.video_analytics.contract}
  checks_file: checks.yaml
  job: {name: mini_job, schedule: {name: mini_daily, cron: "0 4 * * *"}}
  models:
    mini.user_rows:
      description: Each users-file row's country.
      scripts: [mini/user_rows.sql]
      key: [_source_file, _row_number]
      files_of: users
      feed: [country]
    mini.countries:
      scripts: [mini/countries.sql]
      key: [country]
      reads: {changed_countries: mini.user_rows}
"""
# An incremental model by the protocol of docs/incremental.md: it leaves affected_keys and before_rows.
MINI_USER_ROWS = """
CREATE SCHEMA IF NOT EXISTS mini;
CREATE TABLE IF NOT EXISTS mini.user_rows AS
SELECT _source_file, _row_number, coalesce(upper(trim(country)), '?') AS country FROM bronze.users LIMIT 0;
CREATE OR REPLACE TEMP TABLE affected_keys AS
SELECT _source_file, _row_number FROM mini.user_rows WHERE _source_file IN (SELECT source_file FROM changed_files)
UNION
SELECT _source_file, _row_number FROM bronze.users WHERE _source_file IN (SELECT source_file FROM changed_files);
CREATE OR REPLACE TEMP TABLE before_rows AS
SELECT * FROM mini.user_rows WHERE _source_file IN (SELECT source_file FROM changed_files);
DELETE FROM mini.user_rows WHERE _source_file IN (SELECT source_file FROM changed_files);
INSERT INTO mini.user_rows
SELECT _source_file, _row_number, coalesce(upper(trim(country)), '?') AS country FROM bronze.users
WHERE _source_file IN (SELECT source_file FROM changed_files);
"""
MINI_COUNTRIES = """
CREATE TABLE IF NOT EXISTS mini.countries AS SELECT country, count(*) AS user_rows FROM mini.user_rows
GROUP BY country LIMIT 0;
CREATE OR REPLACE TEMP TABLE affected_keys AS SELECT DISTINCT country FROM changed_countries;
CREATE OR REPLACE TEMP TABLE before_rows AS
SELECT * FROM mini.countries WHERE country IN (SELECT country FROM affected_keys);
DELETE FROM mini.countries WHERE country IN (SELECT country FROM affected_keys);
INSERT INTO mini.countries
SELECT country, count(*) FROM mini.user_rows WHERE country IN (SELECT country FROM affected_keys) GROUP BY country;
"""


def _mini_folder(tmp_path: Path, defs: str = MINI_DEFS) -> Path:
    folder = tmp_path / "mini"
    (folder / "sql" / "mini").mkdir(parents=True)
    (folder / "defs.yaml").write_text(defs, encoding="utf-8")
    (folder / "sql" / "mini" / "user_rows.sql").write_text(MINI_USER_ROWS, encoding="utf-8")
    (folder / "sql" / "mini" / "countries.sql").write_text(MINI_COUNTRIES, encoding="utf-8")
    (folder / "checks.yaml").write_text("mini.countries:\n  - unique: [country]\n  - range: {column: user_rows, "
                                        "min: 1}\n", encoding="utf-8")
    return folder


def test_an_incremental_medallion_declared_in_yaml_equals_its_truth_run_after_run(platform, tmp_path):
    """A new incremental pipeline from a defs.yaml and SQL files only: landing files → bronze → two incremental
    models. Each run reads only what changed (a users file added, one rewritten, one deleted; the first model run
    twice before the second reads its changes), and after each the tables equal what bronze says."""
    from etl_platform.medallion.assets import RefreshPolicy

    truth = ("SELECT coalesce(upper(trim(country)), '?') AS country, count(*) AS user_rows FROM bronze.users "
             "GROUP BY ALL ORDER BY 1")
    demo_data.generate(platform.landing, sessions=500, seed=5, defects=True, progress=False)

    def users_file(name: str, countries: list[str]) -> None:
        platform.write_csv(name, [{"user_id": 90_000 + i, "country": c, "signup_date": "2024-01-01",
                                   "subscription_tier": "free", "updated_at": "2024-01-01T00:00:00Z"}
                                  for i, c in enumerate(countries)])

    with create_defs_folder_sandbox() as sandbox:
        shutil.copytree(_mini_folder(tmp_path), sandbox.defs_folder_path / "mini")
        with sandbox.build_all_defs() as defs:
            assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
            graph = dg.Definitions(assets=[*defs.assets], resources=platform.resources()).resolve_asset_graph()
            assert graph.get(dg.AssetKey(["mini", "countries"])).parent_keys == {dg.AssetKey(["mini", "user_rows"])}
            assert graph.get(dg.AssetKey(["mini", "user_rows"])).parent_keys == {dg.AssetKey(["bronze", "users"])}
            assert graph.get(dg.AssetKey(["mini", "user_rows"])).group_name == "mini_mini"
            assert graph.get(dg.AssetKey(["bronze", "users"])).group_name == "mini_bronze"
            assert [s.cron_schedule for s in defs.schedules] == ["0 4 * * *"]
            assert defs.schedules[0].job.name == "mini_job"

            def run(selection: str | None = None, full: bool = False) -> dg.ExecuteInProcessResult:
                resources = {**platform.resources(), "refresh_policy": RefreshPolicy(full_refresh=full)}
                result = dg.materialize(assets, resources=resources, selection=selection)
                assert all(e.passed for e in result.get_asset_check_evaluations())
                return result

            def mode(result, table: str) -> str:
                (event,) = [e for e in result.get_asset_materialization_events()
                            if e.asset_key == dg.AssetKey(table.split("."))]
                return event.materialization.metadata["incremental/mode"].value

            first = run()
            assert mode(first, "mini.countries") == "full"  # a first run reads everything
            assert platform.rows("SELECT * FROM mini.countries ORDER BY 1") == platform.rows(truth)

            users_file("users_extra_1.csv", ["DE", "QQ", "ZZ"])
            run("key:bronze/users or key:mini/user_rows")  # the producer runs twice before its consumer reads
            users_file("users_extra_2.csv", ["ZZ", "YY"])
            run("key:bronze/users or key:mini/user_rows")
            second = run("key:mini/countries")
            assert mode(second, "mini.countries") == "incremental"
            assert platform.rows("SELECT * FROM mini.countries ORDER BY 1") == platform.rows(truth)
            assert platform.scalar("SELECT user_rows FROM mini.countries WHERE country = 'QQ'") == 1

            (platform.landing / "users_extra_1.csv").unlink()
            users_file("users_extra_2.csv", ["YY"])  # rewritten: ZZ's last row leaves
            third = run()
            assert mode(third, "mini.user_rows") == "incremental"
            assert platform.rows("SELECT * FROM mini.countries ORDER BY 1") == platform.rows(truth)
            assert platform.scalar("SELECT count(*) FROM mini.countries WHERE country IN ('QQ', 'ZZ')") == 0
            incremental = platform.rows("SELECT * FROM mini.countries ORDER BY 1")
            run(full=True)
            assert platform.rows("SELECT * FROM mini.countries ORDER BY 1") == incremental


@pytest.mark.parametrize("change, message", [
    (("reads: {changed_countries: mini.user_rows}", "reads: {changed_countries: mini.nowhere}"),
     "models: mini.countries: reads changed_countries: 'mini.nowhere' is not a model declared above with a feed"),
    (("files_of: users", "files_of: customers"),
     "models: mini.user_rows: files_of 'customers' is not a landing entity (users, content, viewing_sessions)"),
    (("scripts: [mini/countries.sql]", "scripts: [mini/country.sql]"),
     "models: mini.countries: script mini/country.sql: no such file"),
    (("      key: [country]\n", "      key: [country]\n      primary_key: [country]\n"),
     "models: mini.countries: primary_key: Extra inputs are not permitted"),
    (("      key: [country]\n", ""), "models: mini.countries: reads need `key`"),
    (("      feed: [country]\n", "      feed: [country]\n      quarantine: mini.q; DROP TABLE x\n"),
     "models: mini.user_rows: 'mini.q; DROP TABLE x' is not a table name"),
    (('cron: "0 4 * * *"', 'cron: "0 4 * * *", tz: UTC'), "job: schedule.tz: Extra inputs are not permitted"),
    (("etl_platform.video_analytics.contract", "etl_platform.no_such_contract"),
     "landing.contract 'etl_platform.no_such_contract' cannot be imported"),
])
def test_a_bad_declaration_fails_the_load_naming_the_table_and_setting(tmp_path, change, message):
    old, new = change
    assert old in MINI_DEFS
    folder = _mini_folder(tmp_path, MINI_DEFS.replace(old, new))
    with create_defs_folder_sandbox() as sandbox:
        shutil.copytree(folder, sandbox.defs_folder_path / "mini")
        text = defs_load_error(sandbox)
    assert message in text and "defs.yaml" in text, text


def test_a_model_reading_a_table_of_its_schemas_that_no_asset_writes_fails_the_load(tmp_path):
    """A misspelt table of the medallion's own schemas is an error naming it, not a dependency on nothing."""
    folder = _mini_folder(tmp_path)
    (folder / "sql" / "mini" / "countries.sql").write_text(
        MINI_COUNTRIES.replace("FROM mini.user_rows WHERE", "FROM mini.user_row WHERE"), encoding="utf-8")
    with create_defs_folder_sandbox() as sandbox:
        shutil.copytree(folder, sandbox.defs_folder_path / "mini")
        text = defs_load_error(sandbox)
    assert "the SQL of mini.countries reads mini.user_row, which no asset of this medallion writes" in text, text
