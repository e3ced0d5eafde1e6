"""Bronze keeps every record losslessly, with lineage, and re-ingests files idempotently."""

from __future__ import annotations

import os

import dagster as dg
import pytest

from etl_platform_tests.conftest import check_results, materialized_keys

USER = {"user_id": "1", "email": "a@x.com", "name": "Ann", "country": "US", "subscription_tier": "free",
        "signup_date": "2024-01-01", "birth_year": "1990", "updated_at": "2024-01-01T00:00:00Z"}


def test_csv_quoting_bom_non_ascii_and_row_numbers(platform):
    platform.write_text(
        "users_a.csv",
        "\ufeffuser_id,email,name,country,subscription_tier,signup_date,birth_year,updated_at\n"
        '1,a@x.com,"Smith, John",US,free,2024-01-01,1990,2024-01-01T00:00:00Z\n'
        '2,b@x.com,"multi\nline ""quoted""",GB,basic,2024-01-02,,\n'
        "\n"
        "3,c@x.com,Zoë Ñandú 李,FR,premium,2024-01-03,,\n",
    )
    platform.materialize(selection="bronze/users")
    rows = platform.rows("SELECT user_id, name, _source_file, _row_number FROM bronze.users ORDER BY _row_number")
    assert rows == [
        {"user_id": "1", "name": "Smith, John", "_source_file": "users_a.csv", "_row_number": 1},
        {"user_id": "2", "name": 'multi\nline "quoted"', "_source_file": "users_a.csv", "_row_number": 2},
        {"user_id": "3", "name": "Zoë Ñandú 李", "_source_file": "users_a.csv", "_row_number": 3},
    ]
    assert platform.scalar("SELECT count(*) FROM bronze.users WHERE _ingested_at IS NULL") == 0


def test_a_large_file_is_stored_in_file_order(platform):
    """Bronze rows are inserted without sorting (DuckDB keeps the stage's order): a file of several row groups,
    inserted by both threads, reads back in file order."""
    records = 300_000
    header = ",".join(USER)
    platform.write_text("users_big.csv", header + "\n" + "".join(f"{n},e,n,US,free,2024-01-01,1990,\n"
                                                                     for n in range(1, records + 1)))
    platform.materialize(selection="bronze/users")
    stored = platform.rows("SELECT _row_number, user_id FROM bronze.users")  # storage order: no ORDER BY
    assert [(r["_row_number"], int(r["user_id"])) for r in stored] == [(n, n) for n in range(1, records + 1)]


def test_several_files_empty_and_header_only(platform):
    platform.write_csv("users_1.csv", [USER, {**USER, "user_id": "2"}])
    platform.write_csv("users_2.csv", [{**USER, "user_id": "3"}])
    platform.write_text("users_3_empty.csv", "")
    platform.write_csv("users_4_header_only.csv", [])
    result = platform.materialize(selection="bronze/users")
    assert platform.rows("SELECT _source_file, count(*) AS n FROM bronze.users GROUP BY 1 ORDER BY 1") == [
        {"_source_file": "users_1.csv", "n": 2}, {"_source_file": "users_2.csv", "n": 1},
    ]
    present = check_results(result)["bronze/users:files_present_and_not_empty"]
    assert not present.passed and present.severity == dg.AssetCheckSeverity.WARN
    assert "users_3_empty.csv" in present.description and "users_4_header_only.csv" in present.description


def test_ragged_rows_are_kept_with_a_parse_error(platform):
    platform.write_text(
        "users_1.csv",
        "user_id,email,name,country,subscription_tier,signup_date,birth_year,updated_at\n"
        "1,a@x.com,Ann,US,free,2024-01-01,1990,2024-01-01T00:00:00Z\n"
        "2,b@x.com,Bob,GB,basic,2024-01-02,1991,2024-01-01T00:00:00Z,surplus\n"
        "3,c@x.com\n",
    )
    platform.materialize(selection="bronze/users")
    rows = platform.rows("SELECT user_id, email, name, _parse_error, _extra_fields, _row_number FROM bronze.users "
                         "ORDER BY _row_number")
    assert [r["_row_number"] for r in rows] == [1, 2, 3]
    assert rows[0]["_parse_error"] is None
    assert rows[1]["_parse_error"] == "expected 8 fields, found 9"
    assert '"_surplus_fields":["surplus"]' in rows[1]["_extra_fields"].replace(" ", "")
    assert rows[2] == {"user_id": "3", "email": "c@x.com", "name": None, "_parse_error": "expected 8 fields, found 2",
                       "_extra_fields": None, "_row_number": 3}


def test_unexpected_columns_are_kept_as_json(platform):
    header = [*USER.keys(), "referrer"]
    platform.write_csv("users_1.csv", [[*USER.values(), "newsletter"]], header=header)
    platform.materialize(selection="bronze/users")
    assert platform.scalar("SELECT _extra_fields FROM bronze.users") == '{"referrer":"newsletter"}'


def test_reingesting_a_changed_file_replaces_its_rows_and_skips_unchanged(platform):
    first = platform.write_csv("users_1.csv", [USER, {**USER, "user_id": "2"}])
    platform.write_csv("users_2.csv", [{**USER, "user_id": "9"}])
    platform.materialize(selection="bronze/users")
    platform.materialize(selection="bronze/users")  # nothing changed: nothing is duplicated
    assert platform.scalar("SELECT count(*) FROM bronze.users") == 3

    platform.write_csv("users_1.csv", [{**USER, "user_id": "5"}])
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 1_000_000_000))
    result = platform.materialize(selection="bronze/users")
    assert platform.rows("SELECT user_id, _source_file FROM bronze.users ORDER BY _source_file") == [
        {"user_id": "5", "_source_file": "users_1.csv"}, {"user_id": "9", "_source_file": "users_2.csv"},
    ]
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["files_loaded"].value == ["users_1.csv"]
    assert metadata["files_unchanged"].value == 1
    assert metadata["dagster/row_count"].value == 2
    assert "user_id" in [c.name for c in metadata["dagster/column_schema"].schema.columns]


def test_jsonl_keeps_malformed_lines_and_line_numbers(platform):
    platform.write_text("content_1.jsonl", '\ufeff{"content_id": 1}\n\n{broken\n  \n[1, 2]\n')
    platform.materialize(selection="bronze/content")
    assert platform.rows("SELECT line, _row_number FROM bronze.content ORDER BY _row_number") == [
        {"line": '{"content_id": 1}', "_row_number": 1},
        {"line": "{broken", "_row_number": 3},
        {"line": "[1, 2]", "_row_number": 5},
    ]


def test_missing_expected_column_fails_the_bronze_check_naming_column_and_file(platform):
    header = [c for c in USER if c != "signup_date"]
    platform.write_csv("users_1.csv", [[USER[c] for c in header]], header=header)
    platform.write_jsonl("content_1.jsonl", ['{"content_id": 1}'])
    platform.write_csv("viewing_sessions_1.csv", [])
    result = platform.materialize(raise_on_error=False)
    check = check_results(result)["bronze/users:expected_columns_present"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.description == "users_1.csv lacks column signup_date"
    assert "silver/users" not in materialized_keys(result)


def test_missing_landing_folder_is_a_clear_failure_naming_the_path(platform):
    result = platform.materialize(selection="bronze/users", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert str(platform.landing.resolve()) in message and "does not exist" in message
    assert "etl-platform demo-data" in message


def test_no_matching_files_in_an_existing_folder(platform):
    platform.write_text("notes.txt", "not an input")
    with pytest.raises(dg.Failure, match="holds no file matching users\\*.csv"):
        platform.materialize(selection="bronze/users")


def test_a_deleted_or_renamed_file_leaves_bronze(platform):
    first = platform.write_csv("users_1.csv", [USER])
    platform.write_csv("users_2.csv", [{**USER, "user_id": "2"}])
    platform.materialize(selection="bronze/users")
    first.rename(platform.landing / "users_1_renamed.csv")
    result = platform.materialize(selection="bronze/users")
    assert platform.rows("SELECT _source_file, user_id FROM bronze.users ORDER BY 1") == [
        {"_source_file": "users_1_renamed.csv", "user_id": "1"}, {"_source_file": "users_2.csv", "user_id": "2"}]
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["files_removed"].value == ["users_1.csv"]
    assert platform.scalar("SELECT count(*) FROM bronze._ingested_files WHERE source_file = 'users_1.csv'") == 0


def test_a_missing_landing_folder_keeps_bronze(platform):
    """A folder that is gone (an unmounted share) is not a deletion of every file."""
    platform.write_csv("users_1.csv", [USER])
    platform.materialize(selection="bronze/users")
    (platform.landing / "users_1.csv").unlink()
    platform.landing.rmdir()
    platform.materialize(selection="bronze/users")
    assert platform.scalar("SELECT count(*) FROM bronze.users") == 1


def test_runs_wait_for_a_file_still_being_written(platform):
    """A file modified within the settle time is watched until it stops changing, then loaded."""
    import threading
    import time

    path = platform.write_text("users_1.csv", ",".join(USER) + "\n")

    def keep_writing():
        for number in range(1, 5):
            time.sleep(0.3)
            with open(path, "a") as handle:
                handle.write(",".join({**USER, "user_id": str(number)}.values()) + "\n")

    writer = threading.Thread(target=keep_writing)
    writer.start()
    started = time.monotonic()
    platform.materialize(selection="bronze/users", landing_overrides={"settle_seconds": 1.0})
    writer.join()
    assert platform.scalar("SELECT count(*) FROM bronze.users") == 4  # every row the writer wrote
    assert time.monotonic() - started >= 1.2


def test_a_file_that_keeps_changing_is_left_for_the_next_run(platform, monkeypatch):
    from etl_platform.landing import LandingZone

    path = platform.write_csv("users_1.csv", [USER])
    zone = LandingZone(root=str(platform.home / "landing"), settle_seconds=0.3)
    original_discover = __import__("etl_platform.landing.files", fromlist=["discover_files"]).discover_files

    def touching_discover(folder, pattern):
        with open(path, "a") as handle:  # another writer appends between every two looks
            handle.write("\n")
        return original_discover(folder, pattern)

    monkeypatch.setattr("etl_platform.landing.files.discover_files", touching_discover)
    ready, arriving = zone.wait_for_files(platform.landing, "users*.csv")
    assert ready == [] and [f.name for f in arriving] == ["users_1.csv"]
