"""Hostile landing files beside good ones: no engine exception ever leaves an asset step.

A file that cannot be read as its entity is handled by the landing resource's ``bad_files`` policy:
``block`` (the blocking ``files_readable`` check fails naming the file) or ``reject`` (the file is
recorded as rejected and the run goes on). A file that can be read record by record keeps its good
records and quarantines its bad ones under both policies.
"""

from __future__ import annotations

import gzip
import random
from dataclasses import dataclass
from typing import Callable

import dagster as dg
import pytest
import pyarrow as pa

from etl_platform.video_analytics import contract
from etl_platform_tests.conftest import check_results, materialized_keys
from etl_platform_tests.test_silver import content, session, user

USERS_HEADER = ",".join(contract.USERS_COLUMNS)
GOOD_USER = "7,g@x.com,Gus,US,free,2024-01-01,1990,2024-01-01T00:00:00Z"


def users_csv(*rows: str, header: str = USERS_HEADER, newline: str = "\n") -> bytes:
    return newline.join([header, *rows, ""]).encode()


def random_bytes(size: int = 200_000) -> bytes:
    return random.Random(6).randbytes(size)


@dataclass
class Hostile:
    id: str
    name: str
    data: Callable[[], bytes]
    unreadable: str | None = None  # what the rejection reason says; None: the file is readable
    users_loaded: int | None = None  # bronze rows this file yields when readable


CASES = [
    Hostile("random_bytes_csv", "viewing_sessions_x.csv", random_bytes, unreadable="is not text"),
    Hostile("random_bytes_jsonl", "content_x.jsonl", random_bytes, unreadable="is not text"),
    Hostile("utf16_with_bom", "users_x.csv", lambda: users_csv(GOOD_USER).decode().encode("utf-16"),
            unreadable="is encoded as UTF-16LE"),
    Hostile("utf16_jsonl", "content_x.jsonl", lambda: content(77).encode("utf-16"), unreadable="UTF-16LE"),
    Hostile("latin1_text", "users_x.csv",
            lambda: users_csv(*[f"{i},é@x.com,Zoé Ñandú,FR,free,2024-01-01,,x" for i in range(100, 400)])
            .decode().encode("latin-1"), unreadable="is not UTF-8"),
    Hostile("truncated_gzip", "users_x.csv.gz",
            lambda: gzip.compress(users_csv(*[GOOD_USER] * 20_000))[:3_000], unreadable="truncated or corrupt gzip"),
    Hostile("truncated_zstd_jsonl", "content_x.jsonl.zst",
            lambda: pa.compress(("\n".join(content(i) for i in range(5_000))).encode(), "zstd", asbytes=True)[:900],
            unreadable="truncated or corrupt zstd"),
    Hostile("nul_in_header", "users_x.csv", lambda: users_csv(GOOD_USER, header=USERS_HEADER.replace("email", "em\0ail")),
            unreadable="lacks column email"),
    Hostile("nul_in_fields", "users_x.csv", lambda: users_csv("8,a\0b@x.com,N\0ul,US,free,2024-01-01,,", GOOD_USER),
            users_loaded=2),
    Hostile("a_few_invalid_utf8_bytes", "users_x.csv",
            lambda: users_csv(GOOD_USER).replace(b"Gus", b"G\xffus") + b"9,z@x.com,Zed,US,free,2024-01-01,,\n",
            users_loaded=2),
    Hostile("header_only", "users_x.csv", lambda: users_csv(), users_loaded=0),
    Hostile("duplicate_empty_and_blank_column_names", "users_x.csv",
            lambda: users_csv(GOOD_USER + ",a,b,c", header=USERS_HEADER + ",user_id,, "), users_loaded=1),
    Hostile("ten_thousand_columns", "users_x.csv",
            lambda: users_csv(GOOD_USER + "," + ",".join(["v"] * 9_992),
                              header=USERS_HEADER + "," + ",".join(f"extra_{i}" for i in range(9_992))),
            users_loaded=1),
    Hostile("one_50_mb_line", "users_x.csv",
            lambda: users_csv(f"8,big@x.com,{'x' * 50_000_000},US,free,2024-01-01,,", GOOD_USER), users_loaded=2),
    Hostile("one_50_mb_json_line", "content_x.jsonl",
            lambda: (content(78, title="t" * 50_000_000) + "\n" + "{broken" + "x" * 50_000_000 + "\n").encode()),
    Hostile("cr_only_line_endings", "users_x.csv", lambda: users_csv(GOOD_USER, "9,z@x.com,Zed,US,free,2024-01-01,,",
                                                                      newline="\r"), users_loaded=2),
    Hostile("gzip_compressed", "users_x.csv.gz", lambda: gzip.compress(users_csv(GOOD_USER)), users_loaded=1),
    Hostile("zstd_compressed", "users_x.csv.zst", lambda: pa.compress(users_csv(GOOD_USER), "zstd", asbytes=True),
            users_loaded=1),
]


def write_good_inputs(platform) -> None:
    platform.write_csv("users_0.csv", [user("1"), user("2")])
    platform.write_jsonl("content_0.jsonl", [content(10)])
    platform.write_csv("viewing_sessions_0.csv", [session("1"), session("2", user_id="2")])


def entity_of(name: str) -> str:
    return next(entity for entity, spec in contract.BRONZE.items() if name.startswith(spec.pattern.split("*")[0]))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reject_policy_records_the_file_and_the_run_goes_on(platform, case):
    write_good_inputs(platform)
    (platform.landing / case.name).write_bytes(case.data())
    result = platform.materialize(landing_overrides={"bad_files": "reject"}, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert "gold/viewing_fact" in materialized_keys(result)
    entity = entity_of(case.name)
    readable = check_results(result)[f"bronze/{entity}:files_readable"]
    rejected = platform.rows("SELECT * FROM bronze.rejected_files")
    if case.unreadable:
        assert [(r["source_file"], r["status"]) for r in rejected] == [(case.name, "rejected")]
        assert case.unreadable in rejected[0]["reason"]
        assert rejected[0]["size_bytes"] == (platform.landing / case.name).stat().st_size
        assert not readable.passed and readable.severity == dg.AssetCheckSeverity.WARN
        assert case.name in readable.description and case.unreadable in readable.description
        assert len(readable.description) < 1_000  # a short escaped excerpt, not the file's bytes
        assert platform.scalar(f"SELECT count(*) FROM bronze.{entity} WHERE _source_file = '{case.name}'") == 0
    else:
        assert rejected == [] and readable.passed
        if entity == "users":
            assert platform.scalar(f"SELECT count(*) FROM bronze.users WHERE _source_file = '{case.name}'") == \
                case.users_loaded
    # Whatever happened, every bronze row is in silver or in quarantine or lost deduplication: the checks say so.
    assert all(check.passed for key, check in check_results(result).items() if key.endswith(":reconciliation"))


@pytest.mark.parametrize("case", [c for c in CASES if c.unreadable], ids=[c.id for c in CASES if c.unreadable])
def test_block_policy_fails_the_blocking_check_naming_the_file(platform, case):
    write_good_inputs(platform)
    (platform.landing / case.name).write_bytes(case.data())
    entity = entity_of(case.name)
    result = platform.materialize(raise_on_error=False)
    failures = [e for e in result.all_events if e.is_step_failure]
    # No exception left an asset step: steps fail only the way Dagster blocks on a failed blocking check (the
    # checks run in their asset's step).
    assert failures and all("blocking asset check failed" in e.step_failure_data.error.message for e in failures), [e.step_failure_data.error.message[:300] for e in failures]
    checks = check_results(result)
    if case.id == "nul_in_header":  # readable, but a required column is missing: the column check blocks
        blocking = checks["bronze/users:expected_columns_present"]
        assert blocking.description == "users_x.csv lacks column email"
    else:
        blocking = checks[f"bronze/{entity}:files_readable"]
        assert case.name in blocking.description and case.unreadable in blocking.description
        assert "blocked" in blocking.description
    assert not blocking.passed and blocking.severity == dg.AssetCheckSeverity.ERROR
    assert f"silver/{entity}" not in materialized_keys(result)


def test_a_few_invalid_bytes_and_ragged_rows_are_quarantined_record_by_record(platform):
    write_good_inputs(platform)
    (platform.landing / "users_x.csv").write_bytes(
        users_csv(GOOD_USER, "8,only,three", GOOD_USER.replace("7,", "9,")).replace(b"Gus", b"G\xffus", 1))
    platform.materialize(landing_overrides={"bad_files": "reject"})
    quarantined = platform.rows("SELECT row_number, reason FROM silver.quarantine WHERE source_file = 'users_x.csv' "
                                "ORDER BY row_number")
    assert quarantined == [{"row_number": 1, "reason": "malformed_row"}, {"row_number": 2, "reason": "malformed_row"}]
    assert platform.scalar("SELECT user_id FROM silver.users WHERE _source_file = 'users_x.csv'") == 9


def test_switching_policy_reevaluates_a_blocked_file_and_deleting_it_clears_the_check(platform):
    write_good_inputs(platform)
    bad = platform.landing / "viewing_sessions_x.csv"
    bad.write_bytes(random_bytes())
    blocked = platform.materialize(raise_on_error=False)
    assert not check_results(blocked)["bronze/viewing_sessions:files_readable"].passed
    assert "gold/viewing_fact" not in materialized_keys(blocked)

    rejected = platform.materialize(landing_overrides={"bad_files": "reject"})
    assert platform.rows("SELECT source_file, status FROM bronze.rejected_files") == [
        {"source_file": "viewing_sessions_x.csv", "status": "rejected"}]
    assert "gold/viewing_fact" in materialized_keys(rejected)

    bad.unlink()  # the way out under either policy: remove (or replace) the file
    cleared = platform.materialize()
    assert check_results(cleared)["bronze/viewing_sessions:files_readable"].passed
    assert platform.rows("SELECT * FROM bronze.rejected_files") == []


def test_an_unknown_policy_is_named_with_the_allowed_values(platform, monkeypatch):
    write_good_inputs(platform)
    monkeypatch.setenv("ETL_PLATFORM_BAD_FILES", "skip")
    result = platform.materialize(selection="bronze/users", raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "ETL_PLATFORM_BAD_FILES: 'skip' is not one of block, reject" in failure.step_failure_data.error.message
