"""Blocking checks stop the layer below; reconciliation holds on defective demo data."""

from __future__ import annotations

import shutil

import dagster as dg

from etl_platform import settings
from etl_platform.video_analytics import demo_data
from etl_platform.video_analytics.assets import GOLD_KEYS
from etl_platform_tests.conftest import check_results, materialized_keys, sql_without_users_dedup
from etl_platform_tests.test_hostile_files import write_good_inputs
from etl_platform_tests.test_silver import content, session, user


def test_duplicate_key_fails_the_blocking_check_and_gold_does_not_run(platform, tmp_path):
    sql_dir = sql_without_users_dedup(tmp_path)

    platform.write_csv("users_1.csv", [user("1"), user("1", name="again")])
    platform.write_jsonl("content_1.jsonl", [content(10)])
    platform.write_csv("viewing_sessions_1.csv", [session("1")])
    result = platform.materialize(raise_on_error=False, sql_dir=str(sql_dir))

    check = check_results(result)["silver/users:primary_key_unique"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "1: 2" in check.description
    materialized = materialized_keys(result)
    assert "silver/users" in materialized
    assert "silver/viewing_sessions" not in materialized
    assert not materialized & {key.to_user_string() for key in GOLD_KEYS.values()}
    assert not result.success


def test_reconciliation_holds_on_defective_demo_data(platform):
    summary = demo_data.generate(platform.landing, sessions=5_000, seed=7, defects=True, progress=False)
    result = platform.materialize()
    checks = check_results(result)
    for entity in ("users", "content", "viewing_sessions"):
        reconciliation = checks[f"silver/{entity}:reconciliation"]
        assert reconciliation.passed, reconciliation.description
    errors = {n: c.description for n, c in checks.items() if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR}
    assert errors == {}
    # Every quarantine reason of the contract (but malformed CSV rows, which the generator does not write) occurs.
    reasons = {(r["entity"], r["reason"]) for r in platform.rows("SELECT DISTINCT entity, reason FROM silver.quarantine")}
    assert reasons == {
        ("users", "invalid_user_id"), ("users", "invalid_signup_date"),
        ("content", "malformed_json"), ("content", "invalid_content_id"),
        *{("viewing_sessions", r) for r in ("invalid_session_id", "invalid_timestamp", "negative_duration",
                                            "invalid_completion_pct", "completion_out_of_range", "orphan_user",
                                            "orphan_content")},
    }
    bronze_sessions = platform.scalar("SELECT count(*) FROM bronze.viewing_sessions")
    assert bronze_sessions == 5_000 + summary.defect_rows["viewing_sessions"]
    # Every clean session survives; defect rows that are valid after cleaning (mixed-case devices, '1e1') too.
    assert platform.scalar("SELECT count(*) FROM silver.viewing_sessions WHERE session_id <= 5000") == 5_000


def test_reconciliation_fails_when_silver_loses_a_row_silently(platform, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(settings.sql_root(), sql_dir)
    users_sql = sql_dir / "video_analytics" / "silver" / "users.sql"
    text = users_sql.read_text()
    sabotaged = text.replace("FROM silver._users_rows\nWHERE reason IS NULL AND",
                             "FROM silver._users_rows\nWHERE reason IS NULL AND user_id <> 3 AND", 1)
    assert sabotaged != text, "users.sql no longer has the statement this test changes"
    users_sql.write_text(sabotaged)
    # users 1 and 2 twice (one copy is a duplicate removed), user 3 once: its row vanishes from silver.
    platform.write_csv("users_1.csv", [user("1"), user("1", name="again"), user("2"), user("2"), user("3")])
    platform.write_jsonl("content_1.jsonl", [content(10)])
    platform.write_csv("viewing_sessions_1.csv", [session("1")])
    result = platform.materialize(selection="group:video_analytics_bronze or group:video_analytics_silver",
                                  raise_on_error=False, sql_dir=str(sql_dir))

    check = check_results(result)["silver/users:reconciliation"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["violations"].value == 1
    assert ("bronze 5 = silver 2 + quarantined 0 + duplicates removed 2 (difference 1)"
            in check.metadata["details"].value)


def run_with_check_sql(platform, tmp_path, check_file: str, sql: str) -> dg.ExecuteInProcessResult:
    """The pipeline on a copy of sql/ in which the check file ``check_file`` holds ``sql``."""
    sql_dir = tmp_path / "sql"
    shutil.copytree(settings.sql_root(), sql_dir)
    (sql_dir / "video_analytics" / "checks" / check_file).write_text(sql)
    write_good_inputs(platform)
    return platform.materialize(raise_on_error=False, sql_dir=str(sql_dir))


def test_a_check_whose_sql_fails_is_a_failed_check_naming_the_check_file_and_error(platform, tmp_path):
    result = run_with_check_sql(platform, tmp_path, "gold_totals_reconcile.sql",
                                "SELECT count(*) AS violations FROM gold.no_such_table")
    checks = check_results(result)
    broken = checks["gold/viewing_fact:totals_reconcile"]
    assert not broken.passed and broken.severity == dg.AssetCheckSeverity.ERROR
    assert broken.description.startswith(
        "check totals_reconcile could not run (SQL file video_analytics/checks/gold_totals_reconcile.sql): "
        "CatalogException")
    assert "no_such_table" in broken.description
    # The step's other checks still ran.
    assert checks["gold/viewing_fact:one_row_per_session"].passed


def test_a_check_that_returns_no_row_says_so(platform, tmp_path):
    result = run_with_check_sql(platform, tmp_path, "gold_totals_reconcile.sql", "SELECT 0 AS violations WHERE false")
    broken = check_results(result)["gold/viewing_fact:totals_reconcile"]
    assert not broken.passed
    assert "must return one row with a 'violations' column; it returned 0 row(s)" in broken.description


def test_completely_empty_csv_rows_warn_with_file_and_row(platform):
    """Rows whose every field is empty or white space are named (file:row); a row whose first field is white space
    but another field holds a value is not empty (the check only trims the other fields of such rows)."""
    blank = {name: " " for name in session("1")}
    tabs = {name: "\t" for name in session("1")}
    platform.write_csv("users_1.csv", [user("1")])
    platform.write_jsonl("content_1.jsonl", [content(10)])
    platform.write_csv("viewing_sessions_1.csv", [session("1"), blank, session(" 2"), tabs,
                                                   {**blank, "device": "tv"}, {**session("3"), "session_id": ""}])
    result = platform.materialize(selection="bronze/viewing_sessions", raise_on_error=False)

    check = check_results(result)["bronze/viewing_sessions:no_completely_null_rows"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["violations"].value == 2, check.description
    assert "viewing_sessions_1.csv:2" in check.description and "viewing_sessions_1.csv:4" in check.description


def test_bronze_row_checks_look_at_each_file_until_silver_has_read_it(platform):
    """The bronze row checks cost the new files, not the history: a file with an empty row is named in every run
    until silver.viewing_sessions has read it, and not after."""
    blank = {name: " " for name in session("1")}
    platform.write_csv("users_1.csv", [user("1")])
    platform.write_jsonl("content_1.jsonl", [content(10)])
    platform.write_csv("viewing_sessions_1.csv", [session("1")])
    platform.materialize()
    platform.write_csv("viewing_sessions_2.csv", [session("2"), blank])

    def empty_rows_check(selection: str | None = None):
        result = platform.materialize(selection=selection, raise_on_error=False)
        return check_results(result)["bronze/viewing_sessions:no_completely_null_rows"]

    for selection in ("bronze/viewing_sessions", None):  # bronze alone, then the whole pipeline (silver reads it)
        check = empty_rows_check(selection)
        assert not check.passed and check.metadata["violations"].value == 1, check.description
        assert "viewing_sessions_2.csv:2" in check.description
    assert empty_rows_check("bronze/viewing_sessions").passed
