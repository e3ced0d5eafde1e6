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
