"""The incremental medallion equals a full rebuild, after any sequence of landing changes (issue 21).

hypothesis writes, rewrites and deletes landing files of the three entities — late sessions, sessions sent again
with a later end, users who move country, content that changes, bad rows, orphans whose user or content arrives
later — and after every batch of changes the incremental warehouse (one warehouse, run after run) holds exactly
what a full rebuild of the same landing zone holds, table for table: the seven tables and the quarantine.

The pipeline runs here without Dagster (bronze loading and the incremental steps, as the assets call them), so a
hundred sequences take seconds; test_video_analytics_daily_run covers the assets themselves.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import PrivateAttr

from etl_platform.landing import BronzeLoader, discover_files
from etl_platform.medallion import DayRange, run_step
from etl_platform.video_analytics import contract
from etl_platform.video_analytics.assets import QUARANTINE_SCRIPT, STEPS
from etl_platform.warehouse import DuckDBWarehouse

TABLES = ("silver.users", "silver.content", "silver.viewing_sessions", "silver.quarantine", "gold.viewing_fact",
          "gold.daily_viewing", "gold.user_engagement", "gold.content_performance")
ORDER = ("users", "content", "viewing_sessions", "viewing_fact", "daily_viewing", "user_engagement",
         "content_performance")
FILE_NAMES = {"users": "users_{}.csv", "content": "content_{}.jsonl", "viewing_sessions": "viewing_sessions_{}.csv"}

# ---------------------------------------------------------------- landing changes

USER_ROW = st.fixed_dictionaries({
    "user_id": st.sampled_from(["1", "2", "3", "4", "5", "6", "x", "0"]),
    "email": st.sampled_from(["A@x.io", "b@y.io"]),
    "name": st.sampled_from(["Ann", " Bo "]),
    "country": st.sampled_from(["US", "gb", "", "FR"]),
    "subscription_tier": st.sampled_from(["free", "premium", "gold"]),
    "signup_date": st.sampled_from(["2024-01-01", "2024-02-30"]),
    "birth_year": st.sampled_from(["1990", ""]),
    "updated_at": st.sampled_from(["2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z", ""]),
})
CONTENT_LINE = st.one_of(
    st.builds(lambda cid, title, kind, genres, updated: json.dumps(
        {"content_id": cid, "title": title, "type": kind, "genres": genres, "updated_at": updated}),
        st.sampled_from([1, 2, 3, 4, "x"]), st.sampled_from(["A", "B"]), st.sampled_from(["Movie", "series"]),
        st.sampled_from([[], ["drama"], ["comedy", "drama"]]),
        st.sampled_from(["2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z", None])),
    st.just("{not json"),
)
SESSION_ROW = st.builds(
    lambda sid, uid, cid, day, hour, minutes, device, pct: {
        "session_id": sid, "user_id": uid, "content_id": cid,
        "started_at": f"2024-01-0{day}T{hour:02d}:00:00Z",
        "ended_at": f"2024-01-0{day}T{hour:02d}:00:00Z" if minutes == 0 else
        (f"2024-01-0{day}T{hour:02d}:{minutes:02d}:00Z" if minutes > 0 else f"2024-01-0{day}T{hour - 1:02d}:30:00Z"),
        "device": device, "completion_pct": pct},
    st.sampled_from([str(n) for n in range(1, 13)] + ["x"]), st.sampled_from([str(n) for n in range(1, 8)]),
    st.sampled_from(["1", "2", "3", "4", "5"]), st.integers(1, 3), st.sampled_from([1, 23]),
    st.sampled_from([0, 10, 45, -1]), st.sampled_from(["tv", "mobile", "Toaster"]),
    st.sampled_from(["", "50", "95", "101", "n/a"]),
)
ROWS = {"users": USER_ROW, "content": CONTENT_LINE, "viewing_sessions": SESSION_ROW}
CHANGE = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(list(ROWS)), st.integers(1, 3)).flatmap(
        lambda t: st.tuples(st.just(t[0]), st.just(t[1]), st.just(t[2]), st.lists(ROWS[t[1]], max_size=6))),
    st.tuples(st.just("delete"), st.sampled_from(list(ROWS)), st.integers(1, 3), st.just([])),
)


# Rows that pass every rule, over two ids each: a batch writing both users and both content items and sessions of
# them (facts are built), and a later write of one user or content item, newer, which changes it under those facts.
# Arbitrary rows rarely line up like that: 20 sequences of them (3 seeds) missed gold.viewing_fact ignoring users
# who moved country, which these batches find in most seeds.
def _valid_user(uid: str):
    return st.builds(lambda country, tier: {**dict.fromkeys(contract.USERS_COLUMNS, ""), "user_id": uid,
                                            "signup_date": "2024-01-01", "country": country,
                                            "subscription_tier": tier, "updated_at": "2024-01-01T00:00:00Z"},
                     st.sampled_from(["US", "FR"]), st.sampled_from(["free", "premium"]))


def _valid_content(cid: int):
    return st.builds(lambda kind, genres: json.dumps({"content_id": cid, "title": "T", "type": kind, "genres": genres,
                                                      "updated_at": "2024-01-01T00:00:00Z"}),
                     st.sampled_from(["Movie", "series"]), st.sampled_from([[], ["drama"]]))


VALID_SESSION = st.builds(lambda sid, uid, cid, day, device: {
    "session_id": sid, "user_id": uid, "content_id": cid, "started_at": f"2024-01-0{day}T10:00:00Z",
    "ended_at": f"2024-01-0{day}T10:30:00Z", "device": device, "completion_pct": "50"},
    st.sampled_from(["1", "2", "3", "4"]), st.sampled_from(["1", "2"]), st.sampled_from(["1", "2"]), st.integers(1, 3),
    st.sampled_from(["tv", "mobile"]))
VALID_WORLD = st.tuples(
    st.tuples(st.just("write"), st.just("users"), st.integers(1, 3), st.tuples(_valid_user("1"), _valid_user("2"))),
    st.tuples(st.just("write"), st.just("content"), st.integers(1, 3), st.tuples(_valid_content(1),
                                                                                 _valid_content(2))),
    st.tuples(st.just("write"), st.just("viewing_sessions"), st.integers(1, 3),
              st.lists(VALID_SESSION, min_size=1, max_size=3)),
).map(lambda changes: [(action, entity, number, list(rows)) for action, entity, number, rows in changes])
NEWER = "2024-06-01T00:00:00Z"  # than any earlier version of the row
DIMENSION_CHANGE = st.one_of(
    st.tuples(st.just("write"), st.just("users"), st.integers(1, 3),
              st.sampled_from(["1", "2"]).flatmap(_valid_user).map(lambda row: [{**row, "updated_at": NEWER}])),
    st.tuples(st.just("write"), st.just("content"), st.integers(1, 3),
              st.sampled_from([1, 2]).flatmap(_valid_content).map(
                  lambda line: [json.dumps({**json.loads(line), "updated_at": NEWER})])),
).map(lambda change: [change])
BATCHES = st.lists(st.one_of(st.lists(CHANGE, min_size=1, max_size=4), VALID_WORLD, DIMENSION_CHANGE), min_size=2,
                   max_size=4)
# A run may also build a range of days again (the days job's partitions, ETL_PLATFORM_REBUILD_DAYS): the sessions'
# days are 2024-01-01..03; a range may hold no session at all.
DAY_RANGES = st.lists(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(0, 2)).map(
    lambda t: DayRange(date(2024, 1, t[0]), date(2024, 1, t[0] + t[1])))), min_size=4, max_size=4)


class Landing:
    """The landing folder; each write gets a later modification time, so bronze sees every rewrite."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.clock = 1_700_000_000_000_000_000

    def apply(self, change) -> None:
        action, entity, number, rows = change
        path = self.folder / FILE_NAMES[entity].format(number)
        if action == "delete":
            path.unlink(missing_ok=True)
            return
        if entity == "content":
            text = "".join(line + "\n" for line in rows)
        else:
            out = io.StringIO()
            columns = contract.USERS_COLUMNS if entity == "users" else contract.SESSIONS_COLUMNS
            writer = csv.DictWriter(out, columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            text = out.getvalue()
        path.write_text(text, encoding="utf-8")
        self.clock += 1_000_000_000
        os.utime(path, ns=(self.clock, self.clock))


# ---------------------------------------------------------------- the pipeline without Dagster


def load_bronze(conn, folder: Path) -> None:
    """What the bronze assets do: forget deleted files, (re)load new and changed ones."""
    for entity, spec in contract.BRONZE.items():
        loader = BronzeLoader(conn, spec, "reject")
        files = discover_files(folder, spec.pattern)
        loader.forget_missing(files)
        for file in loader.pending(files):
            loader.load(file)


def build(warehouse, folder: Path, full: bool, steps=ORDER, days: DayRange | None = None, log=None) -> dict:
    with warehouse.connect() as conn:
        load_bronze(conn, folder)
        runs = {}
        for name in steps:
            runs[name] = run_step(warehouse, conn, STEPS[name], full_refresh=full, days=days, log=log)
            if name == "viewing_sessions":
                warehouse.run_script(conn, QUARANTINE_SCRIPT)
    return runs


def _value(value):
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 9)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def snapshot(warehouse) -> dict[str, list[tuple]]:
    tables = {}
    with warehouse.connect() as conn:
        for table in TABLES:
            names = [name for name, _ in conn.columns(table)]
            rows = conn.execute(f"SELECT {', '.join(names)} FROM {table}").fetchall()
            tables[table] = sorted((tuple(_value(v) for v in row) for row in rows), key=repr)
    return tables


def assert_same(incremental: dict, full: dict, where: str) -> None:
    for table in TABLES:
        assert incremental[table] == full[table], f"{table} differs from a full rebuild {where}"


# ---------------------------------------------------------------- the properties


def duckdb_warehouse(folder: Path, name: str) -> DuckDBWarehouse:
    return DuckDBWarehouse(path=str(folder / f"{name}.duckdb"), temp_directory=str(folder / "tmp"),
                           memory_limit="512MB")


def _user(country: str, updated_at: str) -> dict:
    return {**dict.fromkeys(contract.USERS_COLUMNS, ""), "user_id": "1", "signup_date": "2024-01-01",
            "country": country, "updated_at": updated_at}


_SESSION = {"session_id": "1", "user_id": "1", "content_id": "1", "started_at": "2024-01-01T10:00:00Z",
            "ended_at": "2024-01-01T10:10:00Z", "device": "tv", "completion_pct": "50"}
# Always tried besides the random sequences (20 of them, before VALID_WORLD, missed it): a user with a session moves
# country, which changes no silver session, so only the facts of a changed user's sessions carry it to gold.
_USER_MOVES = [[("write", "users", 1, [_user("US", "2024-01-01T00:00:00Z")]),
                ("write", "content", 1, ['{"content_id": 1, "title": "A"}']),
                ("write", "viewing_sessions", 1, [_SESSION])],
               [("write", "users", 2, [_user("FR", "2024-03-01T00:00:00Z")])]]
# ... and a content item with a session changes its type (the content part of the facts' affected keys).
_CONTENT_CHANGES = [_USER_MOVES[0],
                    [("write", "content", 2, ['{"content_id": 1, "title": "A", "type": "series", '
                                              '"updated_at": "2024-03-01T00:00:00Z"}'])]]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=BATCHES, day_ranges=DAY_RANGES)
@example(batches=_USER_MOVES, day_ranges=[None, None, None, None])
@example(batches=_CONTENT_CHANGES, day_ranges=[None, None, None, None])
def test_incremental_runs_equal_a_full_rebuild_after_any_changes(tmp_path_factory, batches, day_ranges):
    home = tmp_path_factory.mktemp("incremental")
    landing = Landing(home / "landing")
    incremental = duckdb_warehouse(home, "incremental")
    for number, (batch, days) in enumerate(zip(batches, day_ranges), start=1):
        for change in batch:
            landing.apply(change)
        build(incremental, landing.folder, full=False, days=days)
        rebuilt = duckdb_warehouse(home, f"full_{number}")
        build(rebuilt, landing.folder, full=True)
        assert_same(snapshot(incremental), snapshot(rebuilt), f"after batch {number} (days {days}): {batch}")


def test_a_run_without_changes_changes_nothing(tmp_path):
    landing = Landing(tmp_path / "landing")
    landing.apply(("write", "users", 1, [{**dict.fromkeys(contract.USERS_COLUMNS, ""), "user_id": "1",
                                          "signup_date": "2024-01-01", "country": "US"}]))
    landing.apply(("write", "content", 1, ['{"content_id": 1, "title": "A"}']))
    landing.apply(("write", "viewing_sessions", 1, [
        {"session_id": "1", "user_id": "1", "content_id": "1", "started_at": "2024-01-01T10:00:00Z",
         "ended_at": "2024-01-01T10:10:00Z", "device": "tv", "completion_pct": "50"}]))
    warehouse = duckdb_warehouse(tmp_path, "w")
    first = build(warehouse, landing.folder, full=False)
    assert {run.mode for run in first.values()} == {"full"}
    assert first["users"].reason.startswith("first run")
    checked = {name: _checked_rows(warehouse, STEPS[name]) for name in ORDER}
    assert all(count > 0 for count in checked.values()), checked  # after a full run the checks look at every row
    again = build(warehouse, landing.folder, full=False)
    assert {run.mode for run in again.values()} == {"incremental"}
    assert all((run.new, run.updated, run.deleted, run.files_read) == (0, 0, 0, 0) for run in again.values())
    assert all(count == 0 for run in again.values() for count in run.inputs.values())
    # ... and after a run that changed nothing, at nothing (they looked at every row again: 5 s at 10M sessions)
    assert {name: _checked_rows(warehouse, STEPS[name]) for name in ORDER} == dict.fromkeys(ORDER, 0)


def test_a_row_lost_after_a_run_that_changed_nothing_is_caught_and_explained(tmp_path):
    """The row balance still counts the table after a run that logged no version, and says so in its details."""
    from etl_platform.medallion.checks import rows_balanced

    landing = Landing(tmp_path / "landing")
    for change in FIXED_BATCHES[0]:
        landing.apply(change)
    warehouse = duckdb_warehouse(tmp_path, "w")
    build(warehouse, landing.folder, full=False)
    build(warehouse, landing.folder, full=False)  # nothing new
    with warehouse.connect() as conn:
        check = rows_balanced(STEPS["users"])
        assert conn.execute(check.sql).fetchone()[0] == 0
        conn.execute("DELETE FROM silver.users WHERE user_id = 1")
        violations, details = conn.execute(check.sql).fetchone()
    assert violations == 1
    assert details == ("silver.users: 1 rows now, 2 after its last run (incremental run, version none: it changed "
                       "nothing); that run went from 2 to 2 rows with 0 new and 0 deleted keys")


def _checked_rows(warehouse, step) -> int:
    """How many rows of the step's table its scoped checks look at (medallion/checks.py)."""
    from etl_platform.medallion.checks import latest_changes

    with warehouse.connect() as conn:
        return conn.execute(f"WITH {latest_changes(step)} SELECT count(*) FROM _checked").fetchone()[0]


def test_a_user_who_moves_country_moves_their_facts_and_cells(tmp_path):
    """Only the user's rows and the two cells (old and new country) are computed again."""
    landing = Landing(tmp_path / "landing")
    user = {**dict.fromkeys(contract.USERS_COLUMNS, ""), "signup_date": "2024-01-01",
            "updated_at": "2024-01-01T00:00:00Z"}
    landing.apply(("write", "users", 1, [{**user, "user_id": "1", "country": "US"},
                                         {**user, "user_id": "2", "country": "US"}]))
    landing.apply(("write", "content", 1, ['{"content_id": 1, "title": "A"}']))
    landing.apply(("write", "viewing_sessions", 1, [
        {"session_id": str(n), "user_id": str(1 + n % 2), "content_id": "1", "started_at": "2024-01-01T10:00:00Z",
         "ended_at": "2024-01-01T10:10:00Z", "device": "tv", "completion_pct": "50"} for n in range(1, 7)]))
    warehouse = duckdb_warehouse(tmp_path, "w")
    build(warehouse, landing.folder, full=False)
    landing.apply(("write", "users", 2, [{**user, "user_id": "1", "country": "GB",
                                          "updated_at": "2024-02-01T00:00:00Z"}]))
    runs = build(warehouse, landing.folder, full=False)
    assert (runs["users"].files_read, runs["users"].updated) == (1, 1)
    assert (runs["viewing_sessions"].new, runs["viewing_sessions"].updated) == (0, 0)
    assert runs["viewing_fact"].updated == 3  # user 1's three sessions, now in GB
    assert (runs["daily_viewing"].new, runs["daily_viewing"].updated) == (1, 1)  # the GB cell; the US cell shrinks
    assert runs["user_engagement"].updated == 1
    assert runs["content_performance"].updated == 0
    rebuilt = duckdb_warehouse(tmp_path, "full")
    build(rebuilt, landing.folder, full=True)
    assert_same(snapshot(warehouse), snapshot(rebuilt), "after the move")


def test_an_orphan_becomes_a_session_when_its_user_arrives(tmp_path):
    landing = Landing(tmp_path / "landing")
    landing.apply(("write", "content", 1, ['{"content_id": 1, "title": "A"}']))
    landing.apply(("write", "users", 1, []))
    landing.apply(("write", "viewing_sessions", 1, [
        {"session_id": "1", "user_id": "9", "content_id": "1", "started_at": "2024-01-01T10:00:00Z",
         "ended_at": "2024-01-01T10:10:00Z", "device": "tv", "completion_pct": "50"}]))
    warehouse = duckdb_warehouse(tmp_path, "w")
    build(warehouse, landing.folder, full=False)
    assert [row[:2] for row in snapshot(warehouse)["silver.quarantine"]] == [("viewing_sessions", "orphan_user")]
    landing.apply(("write", "users", 2, [{**dict.fromkeys(contract.USERS_COLUMNS, ""), "user_id": "9",
                                          "signup_date": "2024-01-01"}]))
    runs = build(warehouse, landing.folder, full=False)
    assert runs["viewing_sessions"].files_read == 0 and runs["viewing_sessions"].new == 1
    tables = snapshot(warehouse)
    assert tables["silver.quarantine"] == [] and len(tables["gold.viewing_fact"]) == 1


def test_a_quarantined_session_whose_reason_changes_gets_the_new_reason(tmp_path):
    """A re-evaluated session quarantined again keeps its quarantine row only when the reason is the same (its raw
    comes from the same bronze row); an orphan_user whose user arrives while its content is missing becomes
    orphan_content, and a full rebuild agrees. Another orphan_content session of a user who changes keeps its row."""
    landing = Landing(tmp_path / "landing")
    user = {**dict.fromkeys(contract.USERS_COLUMNS, ""), "signup_date": "2024-01-01",
            "updated_at": "2024-01-01T00:00:00Z"}
    landing.apply(("write", "content", 1, ['{"content_id": 1, "title": "A"}']))
    landing.apply(("write", "users", 1, [{**user, "user_id": "2", "country": "US"}]))
    landing.apply(("write", "viewing_sessions", 1, [
        {**_SESSION, "session_id": "1", "user_id": "9", "content_id": "7"},   # no user, no content
        {**_SESSION, "session_id": "2", "user_id": "2", "content_id": "7"}]))  # no content
    warehouse = duckdb_warehouse(tmp_path, "w")
    build(warehouse, landing.folder, full=False)
    reasons = lambda tables: sorted(row[1:4] for row in tables["silver.quarantine"])  # noqa: E731
    assert reasons(snapshot(warehouse)) == [("orphan_content", "viewing_sessions_1.csv", 2),
                                            ("orphan_user", "viewing_sessions_1.csv", 1)]
    landing.apply(("write", "users", 2, [{**user, "user_id": "9", "country": "FR"},
                                         {**user, "user_id": "2", "country": "GB",
                                          "updated_at": "2024-02-01T00:00:00Z"}]))
    runs = build(warehouse, landing.folder, full=False)
    assert runs["viewing_sessions"].files_read == 0 and runs["viewing_sessions"].mode == "incremental"
    tables = snapshot(warehouse)
    assert reasons(tables) == [("orphan_content", "viewing_sessions_1.csv", 1),
                               ("orphan_content", "viewing_sessions_1.csv", 2)]
    rebuilt = duckdb_warehouse(tmp_path, "full")
    build(rebuilt, landing.folder, full=True)
    assert_same(tables, snapshot(rebuilt), "after the user arrived")


DAMAGE = [  # rows of day 2 and of day 3 altered behind the pipeline's back, in each session-grained table
    "UPDATE silver.viewing_sessions SET device = 'broken' WHERE session_id IN (3, 4)",
    "DELETE FROM gold.viewing_fact WHERE session_id IN (2, 5)",
    "UPDATE gold.daily_viewing SET sessions = 99",
]


def _of_day(rows: list[tuple], day: str) -> list[tuple]:
    return [row for row in rows if day in repr(row)]


def test_a_day_range_run_builds_those_days_again_and_only_those(tmp_path):
    """A run over 2024-01-02 repairs that day's rows in silver and gold (altered by hand here), leaves the damage
    of 2024-01-03 alone, and a run over all the days then equals a full rebuild."""
    landing = Landing(tmp_path / "landing")
    landing.apply(("write", "users", 1, [{**_USER, "user_id": "1", "country": "US"}]))
    landing.apply(("write", "content", 1, ['{"content_id": 1, "title": "A"}']))
    for day in (1, 2, 3):  # one file per day: session 1 on day 1, sessions 2 and 3 on day 2, 4 and 5 on day 3
        landing.apply(("write", "viewing_sessions", day, [
            {**_SESSION, "session_id": str(n), "user_id": "1", "started_at": f"2024-01-0{day}T10:00:00Z",
             "ended_at": f"2024-01-0{day}T10:10:00Z"} for n in (2 * day - 2, 2 * day - 1) if n > 0]))
    warehouse = duckdb_warehouse(tmp_path, "w")
    build(warehouse, landing.folder, full=False)
    rebuilt = duckdb_warehouse(tmp_path, "full")
    build(rebuilt, landing.folder, full=True)
    truth = snapshot(rebuilt)
    with warehouse.connect() as conn:
        for statement in DAMAGE:
            conn.execute(statement)
    runs = build(warehouse, landing.folder, full=False, days=DayRange(date(2024, 1, 2), date(2024, 1, 2)))
    assert runs["viewing_sessions"].files_read == 1  # the day's file only
    assert (runs["viewing_sessions"].updated, runs["viewing_fact"].new, runs["viewing_fact"].updated) == (1, 1, 0)
    assert runs["viewing_sessions"].metadata()["incremental/days"] == "2024-01-02"
    assert "incremental/days" not in runs["users"].metadata()  # a step without sessions has no days
    tables = snapshot(warehouse)
    for table in ("silver.viewing_sessions", "gold.viewing_fact", "gold.daily_viewing"):
        assert _of_day(tables[table], "2024-01-02") == _of_day(truth[table], "2024-01-02"), table
    # Day 3 was not asked for: its damage stays.
    assert [row[5] for row in _of_day(tables["silver.viewing_sessions"], "2024-01-03")] == ["broken", "tv"]
    assert [row[0] for row in _of_day(tables["gold.viewing_fact"], "2024-01-03")] == [4]
    assert {row[3] for row in _of_day(tables["gold.daily_viewing"], "2024-01-03")} == {99}
    build(warehouse, landing.folder, full=False, days=DayRange(date(2024, 1, 1), date(2024, 1, 3)))
    assert_same(snapshot(warehouse), truth, "after building every day again")


def test_the_days_setting_is_checked(monkeypatch):
    from etl_platform.video_analytics.assets import parse_day_range, refresh_policy_from_environment

    assert parse_day_range("2024-01-02...2024-01-09", "x") == DayRange(date(2024, 1, 2), date(2024, 1, 9))
    assert parse_day_range(" 2024-01-02 ", "x") == DayRange(date(2024, 1, 2), date(2024, 1, 2))
    monkeypatch.setenv("ETL_PLATFORM_REBUILD_DAYS", "2024-01-09...2024-01-02")
    with pytest.raises(Exception, match=r"ETL_PLATFORM_REBUILD_DAYS='2024-01-09...2024-01-02'.*before the first"):
        refresh_policy_from_environment()
    monkeypatch.setenv("ETL_PLATFORM_REBUILD_DAYS", "last week")
    with pytest.raises(Exception, match=r"ETL_PLATFORM_REBUILD_DAYS='last week': expected a day"):
        refresh_policy_from_environment()


def _metadata(result, key: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    return {name: value.value for name, value in event.materialization.metadata.items()}


def test_video_analytics_daily_run(platform, monkeypatch):
    """The assets themselves: a first run is full, the next one reads only the new file and says so in the
    materializations' metadata; the full-refresh switch (environment or resource) rebuilds every table."""
    import dagster as dg

    from etl_platform.video_analytics.assets import RefreshPolicy, refresh_policy_from_environment
    from etl_platform_tests.test_silver import content, session, user

    platform.write_csv("users_1.csv", [user("1", country="US"), user("2", country="US")])
    platform.write_jsonl("content_1.jsonl", [content(10)])
    platform.write_csv("viewing_sessions_1.csv", [session("1", user_id="1", content_id="10"),
                                                  session("2", user_id="2", content_id="10")])
    first = platform.materialize()
    assert _metadata(first, "silver/users")["incremental/mode"] == "full"
    assert _metadata(first, "silver/users")["incremental/rows_new"] == 2
    platform.write_csv("users_2.csv", [user("2", country="GB", updated_at="2030-01-01T00:00:00Z")])
    daily = platform.materialize()
    users, facts = _metadata(daily, "silver/users"), _metadata(daily, "gold/viewing_fact")
    assert (users["incremental/mode"], users["incremental/files_read"], users["incremental/rows_updated"],
            users["incremental/rows_new"]) == ("incremental", 1, 1, 0)
    assert facts["incremental/upstream_changes"] == {"silver.viewing_sessions": 0, "silver.users": 1,
                                                     "silver.content": 0}
    assert facts["incremental/rows_updated"] == 1 and facts["dagster/row_count"] == 2
    assert platform.rows("SELECT country FROM gold.viewing_fact WHERE user_id = 2") == [{"country": "GB"}]
    assert all(e.passed for e in daily.get_asset_check_evaluations() if e.severity == dg.AssetCheckSeverity.ERROR)

    monkeypatch.setenv("ETL_PLATFORM_FULL_REFRESH", "yes")
    assert refresh_policy_from_environment().full_refresh is True
    full = dg.materialize([*build_assets_and_checks()],
                          resources={**platform.resources(), "refresh_policy": RefreshPolicy(full_refresh=True)})
    assert {_metadata(full, key)["incremental/mode"] for key in ("silver/users", "gold/daily_viewing")} == {"full"}
    assert _metadata(full, "silver/users")["incremental/reason"] == "a full refresh was asked for"
    monkeypatch.setenv("ETL_PLATFORM_FULL_REFRESH", "sometimes")
    with pytest.raises(Exception, match="ETL_PLATFORM_FULL_REFRESH='sometimes'"):
        refresh_policy_from_environment()


def test_a_run_builds_the_days_it_is_given_again(platform, monkeypatch):
    """A backfill of days as a user asks for it: the run config of the pipeline job (the UI's launchpad) or
    ETL_PLATFORM_REBUILD_DAYS (the CLI); one run builds the range's days of sessions again."""
    import dagster as dg
    import duckdb

    from etl_platform.video_analytics.assets import refresh_policy_from_environment
    from etl_platform.video_analytics.automation import video_analytics_job
    from etl_platform_tests.test_silver import content, session, user

    platform.write_csv("users_1.csv", [user("1")])
    platform.write_jsonl("content_1.jsonl", [content(10)])
    platform.write_csv("viewing_sessions_1.csv", [session("1")])
    platform.write_csv("viewing_sessions_2.csv", [
        session("2", started_at="2024-01-02T10:00:00Z", ended_at="2024-01-02T10:30:00Z")])
    platform.materialize()

    def damage() -> None:
        with duckdb.connect(str(platform.warehouse_file)) as conn:
            conn.execute("UPDATE gold.daily_viewing SET sessions = 99")

    def sessions_per_day() -> dict:
        return {str(r["view_date"]): r["sessions"] for r in platform.rows("SELECT * FROM gold.daily_viewing")}

    job = dg.Definitions(assets=build_assets_and_checks(), jobs=[video_analytics_job],
                         resources=platform.resources()).resolve_job_def("video_analytics_pipeline")
    damage()
    one_day = job.execute_in_process(run_config={"resources": {"refresh_policy": {"config": {"days": "2024-01-01"}}}})
    assert _metadata(one_day, "gold/daily_viewing")["incremental/days"] == "2024-01-01"
    assert _metadata(one_day, "gold/daily_viewing")["incremental/rows_updated"] == 1
    assert sessions_per_day() == {"2024-01-01": 1, "2024-01-02": 99}

    monkeypatch.setenv("ETL_PLATFORM_REBUILD_DAYS", "2024-01-01...2024-01-02")
    ranged = dg.materialize(build_assets_and_checks(),
                            resources={**platform.resources(), "refresh_policy": refresh_policy_from_environment()})
    # Both days are in every landing file: silver.viewing_sessions is rebuilt in full instead (it costs less than
    # comparing every row), and so is what is built from it.
    sessions = _metadata(ranged, "silver/viewing_sessions")
    assert (sessions["incremental/mode"], sessions["incremental/files_read"]) == ("full", 2)
    assert sessions["incremental/reason"] == "every landing file is to be read again (a full rebuild costs less)"
    assert "incremental/days" not in sessions
    assert _metadata(ranged, "gold/daily_viewing")["incremental/reason"] == "gold.viewing_fact was rebuilt in full"
    assert sessions_per_day() == {"2024-01-01": 1, "2024-01-02": 1}


def build_assets_and_checks():
    from etl_platform.video_analytics.assets import build_assets
    from etl_platform.video_analytics.checks import build_asset_checks

    return [*build_assets(), *build_asset_checks()]


SABOTAGE = {
    # a changed key's row twice: the uniqueness check looks at the changed keys
    "doubled_changed_key": ("primary_key_unique",
                            "INSERT INTO silver.users SELECT * FROM silver.users "
                            "WHERE user_id IN (SELECT user_id FROM affected_keys);"),
    # an unchanged key's row twice, or lost: only the row balance sees it (the uniqueness check does not look there)
    "doubled_unchanged_key": ("rows_balanced",
                              "INSERT INTO silver.users SELECT * FROM silver.users WHERE user_id = 1;"),
    "lost_unchanged_key": ("rows_balanced", "DELETE FROM silver.users WHERE user_id = 1;"),
}


@pytest.mark.parametrize("sabotage", list(SABOTAGE))
def test_the_cheap_checks_still_fail_when_an_incremental_run_loses_or_doubles_a_row(platform, tmp_path, sabotage):
    import shutil

    from etl_platform import settings
    from etl_platform_tests.conftest import check_results
    from etl_platform_tests.test_silver import content, session, user

    platform.write_csv("users_1.csv", [user("1"), user("2"), user("3")])
    platform.write_jsonl("content_1.jsonl", [content(10)])
    platform.write_csv("viewing_sessions_1.csv", [session("1", user_id="1", content_id="10")])
    platform.materialize()
    check, statement = SABOTAGE[sabotage]
    sql_dir = tmp_path / "sql"
    shutil.copytree(settings.sql_root(), sql_dir)
    users_sql = sql_dir / "video_analytics" / "silver" / "users.sql"
    text = users_sql.read_text()
    anchor = "-- raw: the original fields"
    assert anchor in text
    users_sql.write_text(text.replace(anchor, statement + "\n" + anchor, 1))
    platform.write_csv("users_2.csv", [user("2", country="GB", updated_at="2030-01-01T00:00:00Z")])
    result = platform.materialize(selection="group:video_analytics_bronze or group:video_analytics_silver",
                                  raise_on_error=False, sql_dir=str(sql_dir))
    checks = check_results(result)
    assert _metadata(result, "silver/users")["incremental/mode"] == "incremental"
    failed = sorted(name for name, evaluation in checks.items() if name.startswith("silver/users:")
                    and not evaluation.passed)
    # The full reconciliation check (still reading all of bronze) fails too; the cheap check fails by itself.
    assert f"silver/users:{check}" in failed, failed


def test_the_orphan_check_sees_sessions_left_behind_by_a_user_who_leaves(platform, tmp_path):
    """no_orphans looks at the sessions the last run changed and at every session of a user who changed: when the
    sessions step (sabotaged here) fails to re-evaluate the sessions of a user whose file was deleted, the check
    fails although none of those sessions changed."""
    import shutil

    from etl_platform import settings
    from etl_platform_tests.conftest import check_results
    from etl_platform_tests.test_silver import content, session, user

    platform.write_csv("users_1.csv", [user("1")])
    platform.write_csv("users_2.csv", [user("2")])
    platform.write_jsonl("content_1.jsonl", [content(10)])
    platform.write_csv("viewing_sessions_1.csv", [session("1", user_id="1"), session("2", user_id="2")])
    platform.materialize()
    sql_dir = tmp_path / "sql"
    shutil.copytree(settings.sql_root(), sql_dir)
    sessions_sql = sql_dir / "video_analytics" / "silver" / "viewing_sessions.sql"
    text = sessions_sql.read_text()
    assert text.count("WHERE user_id IN (SELECT user_id FROM changed_users)") == 1
    sessions_sql.write_text(text.replace("WHERE user_id IN (SELECT user_id FROM changed_users)", "WHERE false"))
    (platform.landing / "users_2.csv").unlink()
    result = platform.materialize(selection="group:video_analytics_bronze or group:video_analytics_silver",
                                  raise_on_error=False, sql_dir=str(sql_dir))
    assert _metadata(result, "silver/viewing_sessions")["incremental/rows_deleted"] == 0  # the sabotage
    check = check_results(result)["silver/viewing_sessions:no_orphans"]
    assert not check.passed and "1 sessions without a user" in check.description, check.description


# A script that builds the pipeline incrementally and SIGKILLs itself at the n-th SQL script it runs (inside that
# step's transaction): the warehouse a real crash leaves behind.
KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from etl_platform.warehouse import DuckDBWarehouse
    from etl_platform_tests.test_incremental import build, duckdb_warehouse

    home, kill_at = Path(sys.argv[1]), int(sys.argv[2])
    original, seen = DuckDBWarehouse.run_script, [0]
    def run_script(self, session, path, own_transaction=True, **options):
        original(self, session, path, own_transaction, **options)
        seen[0] += 1
        if seen[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    DuckDBWarehouse.run_script = run_script
    build(duckdb_warehouse(home, "incremental"), home / "landing", full=False)
""")


@pytest.mark.parametrize("kill_at", [1, 3, 5, 7, 9])
def test_a_run_killed_mid_step_then_rerun_equals_a_full_rebuild(tmp_path, kill_at):
    landing = Landing(tmp_path / "landing")
    user = {**dict.fromkeys(contract.USERS_COLUMNS, ""), "signup_date": "2024-01-01"}
    landing.apply(("write", "users", 1, [{**user, "user_id": "1", "country": "US"}]))
    landing.apply(("write", "content", 1, ['{"content_id": 1, "title": "A"}']))
    session = {"content_id": "1", "started_at": "2024-01-01T10:00:00Z", "ended_at": "2024-01-01T10:10:00Z",
               "device": "tv", "completion_pct": "50"}
    landing.apply(("write", "viewing_sessions", 1, [{**session, "session_id": "1", "user_id": "1"},
                                                    {**session, "session_id": "2", "user_id": "2"}]))
    build(duckdb_warehouse(tmp_path, "incremental"), landing.folder, full=False)
    # The next day: user 2 arrives (an orphan resolved), user 1 moves, a session is sent again with a later end.
    landing.apply(("write", "users", 2, [{**user, "user_id": "2", "country": "FR"},
                                         {**user, "user_id": "1", "country": "GB", "updated_at": "2024-02-01"}]))
    landing.apply(("write", "viewing_sessions", 2, [{**session, "session_id": "1", "user_id": "1",
                                                     "ended_at": "2024-01-01T10:20:00Z"}]))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path), str(kill_at)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    incremental = duckdb_warehouse(tmp_path, "incremental")
    build(incremental, landing.folder, full=False)
    rebuilt = duckdb_warehouse(tmp_path, "full")
    build(rebuilt, landing.folder, full=True)
    assert_same(snapshot(incremental), snapshot(rebuilt), f"after a kill at script {kill_at} and a rerun")


class LimitRecordingWarehouse(DuckDBWarehouse):
    """The DuckDB warehouse, noting the memory_limit each script of a step starts with (a spy, not a mock)."""

    _limits: list = PrivateAttr(default_factory=list)

    def run_script(self, session, relative_path, own_transaction=True, **options):
        self._limits.append(session.execute("SELECT current_setting('memory_limit')").fetchone()[0])
        super().run_script(session, relative_path, own_transaction, **options)


def _duckdb_says(limit: str) -> str:
    with duckdb.connect() as conn:
        conn.execute(f"SET memory_limit = '{limit}'")
        return conn.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def test_an_incremental_step_works_within_the_delta_memory_limit(tmp_path):
    """A daily run's steps scan history (the row store, the facts): with the whole memory_limit DuckDB kept every
    page they read, so a daily run's memory grew with history (issue 21). An incremental step's scripts run with
    memory_limit = delta_memory_limit, a full run's with the whole limit, and the limit is the configured one after."""
    landing = Landing(tmp_path / "landing")
    warehouse = LimitRecordingWarehouse(path=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"),
                                        memory_limit="512MB", delta_memory_limit="96MB")
    whole, bounded = _duckdb_says("512MB"), _duckdb_says("96MB")
    for change in FIXED_BATCHES[0]:
        landing.apply(change)
    build(warehouse, landing.folder, full=False)
    assert set(warehouse._limits) == {whole}  # the first run: every step full
    for change in FIXED_BATCHES[1]:
        landing.apply(change)
    warehouse._limits.clear()
    runs = build(warehouse, landing.folder, full=False)
    assert {run.mode for run in runs.values()} == {"incremental"}
    assert [limit for limit in warehouse._limits if limit != whole] == [bounded] * sum(
        len(STEPS[name].scripts) for name in ORDER)  # silver.quarantine is no step: rebuilt whole
    with warehouse.connect() as conn:
        assert conn.execute("SELECT current_setting('memory_limit')").fetchone()[0] == whole
    warehouse._limits.clear()
    build(warehouse, landing.folder, full=True)
    assert set(warehouse._limits) == {whole}


def test_a_delta_that_needs_more_memory_is_run_again_with_the_whole_limit(tmp_path):
    """A delta memory limit too small for the steps (8MB: most cannot even sort in it; where more than that is
    pinned already the bound is not set at all): a step that fails on it is rolled back and runs again once with the
    whole limit; the tables equal a full rebuild's and no change is counted twice."""
    messages = []
    incremental = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"),
                                  memory_limit="512MB", delta_memory_limit="8MB")
    landing = Landing(tmp_path / "landing")
    for number, batch in enumerate(FIXED_BATCHES, start=1):
        for change in batch:
            landing.apply(change)
        runs = build(incremental, landing.folder, full=False, log=messages.append)
        rebuilt = duckdb_warehouse(tmp_path, f"full_{number}")
        truth = build(rebuilt, landing.folder, full=True)
        assert_same(snapshot(incremental), snapshot(rebuilt), f"after batch {number}")
        if number > 1:
            assert {run.mode for run in runs.values()} == {"incremental"}
    again = [message for message in messages if "needed more than 8MB of memory" in message]
    assert len(again) >= 2, messages
    assert len(again) <= len(FIXED_BATCHES) * len(ORDER)  # once per step and run at most
    second = build(incremental, landing.folder, full=False)  # nothing changed since: nothing is counted
    assert all((run.new, run.updated, run.deleted) == (0, 0, 0) for run in second.values())
    assert truth  # the full rebuild ran every step


def test_a_full_run_reads_a_feed_holding_its_tables_key_without_deduplicating_it():
    """In a full run a step's inputs are every upstream row: a feed that holds the upstream table's key is distinct
    already (a DISTINCT over 10M sessions cost 1.3 s for each of three gold tables); gold.viewing_fact's cells are not."""
    from etl_platform.medallion import full_inputs_sql

    inputs = {statement.split(" AS ")[0].split()[-1]: statement for statement in full_inputs_sql(STEPS["viewing_fact"])}
    assert inputs["changed_sessions"].endswith("SELECT session_id, user_id, content_id FROM silver.viewing_sessions")
    assert inputs["changed_users"].endswith("SELECT user_id FROM silver.users")
    cells, = full_inputs_sql(STEPS["daily_viewing"])
    assert cells.endswith("SELECT DISTINCT view_date, device, country FROM gold.viewing_fact")


def test_is_affected_matches_affected_keys_and_is_true_in_a_full_run():
    """A script's ``is_affected(<the row's key columns>)`` is the step's key match against ``affected_keys`` (run on
    DuckDB here: the rows it keeps), and ``true`` in a full run (the tables start empty and every key is affected:
    at 10M sessions matching every fact against every key cost a third of writing gold.viewing_fact)."""
    from etl_platform.medallion import IncrementalStep
    from etl_platform.warehouse.base import SqlScriptError

    script = ("-- is_affected(x) in a comment stays as written\n"
              "SELECT f.view_date, f.country FROM facts AS f WHERE IS_AFFECTED( f.view_date , f.country ) -- is_affected(\n"
              "ORDER BY ALL")
    step = IncrementalStep("gold.cells", ("cells.sql",), ("view_date", "country"), ("gold.cells",))
    with duckdb.connect() as conn:
        conn.execute("CREATE TABLE facts AS SELECT * FROM (VALUES (DATE '2024-01-01', 'FR'), (DATE '2024-01-01', NULL), "
                     "(DATE '2024-01-02', 'FR')) AS t(view_date, country)")
        conn.execute("CREATE TABLE affected_keys AS SELECT * FROM (VALUES (DATE '2024-01-01', NULL), "
                     "(DATE '2024-01-02', 'FR'), (DATE '2024-01-02', 'FR')) AS t(view_date, country)")
        incremental, full = step.expand(script, False, "cells.sql"), step.expand(script, True, "cells.sql")
        # NULL matches NULL (a cell without a country); a key twice in affected_keys matches once.
        assert conn.execute(incremental).fetchall() == [(date(2024, 1, 1), None), (date(2024, 1, 2), "FR")]
        assert conn.execute(full).fetchall() == [(date(2024, 1, 1), "FR"), (date(2024, 1, 1), None),
                                                 (date(2024, 1, 2), "FR")]
    assert "WHERE true -- is_affected(" in full and full.startswith("-- is_affected(x) in a comment stays")
    one = IncrementalStep("gold.facts", ("facts.sql",), ("session_id",), ("gold.facts",))
    assert one.expand("DELETE FROM gold.facts WHERE is_affected(session_id)", False, "facts.sql") == (
        "DELETE FROM gold.facts WHERE (session_id IN (SELECT affected_key.session_id FROM affected_keys AS affected_key))")
    with pytest.raises(SqlScriptError) as error:
        step.expand("SELECT 1\nWHERE is_affected(f.view_date)", True, "video_analytics/gold/cells.sql")
    assert str(error.value) == ("video_analytics/gold/cells.sql: is_affected(f.view_date) names 1 column(s); "
                                "is_affected takes the row's columns of the key of gold.cells, in order: "
                                "(view_date, country)")


def test_a_delta_memory_limit_duckdb_cannot_read_is_named(tmp_path, monkeypatch):
    from etl_platform.warehouse.base import EngineSettingError

    landing = Landing(tmp_path / "landing")
    for change in FIXED_BATCHES[0]:
        landing.apply(change)
    monkeypatch.setenv("ETL_DUCKDB_DELTA_MEMORY_LIMIT", "lots")
    with pytest.raises(EngineSettingError, match=r"\$ETL_DUCKDB_DELTA_MEMORY_LIMIT = 'lots' is not a memory size"):
        build(duckdb_warehouse(tmp_path, "w"), landing.folder, full=False)
    monkeypatch.setenv("ETL_DUCKDB_DELTA_MEMORY_LIMIT", "none")  # no bound: the step keeps the whole limit
    build(duckdb_warehouse(tmp_path, "w"), landing.folder, full=False)


# ---------------------------------------------------------------- the same on PostgreSQL and Spark

# One sequence that passes through every kind of change: late and re-sent sessions, a user who moves, content that
# changes, a deleted file, bad rows, an orphan whose user arrives later, and a file rewritten with a header only.
# On Spark (each statement a job: ~40 s per run of this sequence) test_engines_spark_cluster.py runs a day's changes
# through the assets incrementally on DuckDB and Spark and compares the tables instead.
_USER = {**dict.fromkeys(contract.USERS_COLUMNS, ""), "signup_date": "2024-01-01", "updated_at": "2024-01-01T00:00:00Z"}
_SESSION = {"content_id": "1", "started_at": "2024-01-01T10:00:00Z", "ended_at": "2024-01-01T10:10:00Z",
            "device": "tv", "completion_pct": "50"}
FIXED_BATCHES = [
    [("write", "users", 1, [{**_USER, "user_id": "1", "country": "US"}, {**_USER, "user_id": "2", "country": "US"},
                            {**_USER, "user_id": "x"}]),
     ("write", "content", 1, ['{"content_id": 1, "title": "A", "genres": ["drama"]}', '{"content_id": 2}', "{bad"]),
     ("write", "viewing_sessions", 1, [{**_SESSION, "session_id": "1", "user_id": "1"},
                                       {**_SESSION, "session_id": "2", "user_id": "2", "device": "mobile"},
                                       {**_SESSION, "session_id": "3", "user_id": "3"},
                                       {**_SESSION, "session_id": "4", "user_id": "1", "completion_pct": "n/a"}])],
    [("write", "users", 2, [{**_USER, "user_id": "3", "country": "FR"},
                            {**_USER, "user_id": "1", "country": "GB", "updated_at": "2024-02-01T00:00:00Z"}]),
     ("write", "content", 2, ['{"content_id": 2, "title": "B", "updated_at": "2024-02-01T00:00:00Z"}']),
     ("write", "viewing_sessions", 2, [{**_SESSION, "session_id": "1", "user_id": "1",
                                        "ended_at": "2024-01-01T10:20:00Z"},
                                       {**_SESSION, "session_id": "5", "user_id": "2", "content_id": "2",
                                        "started_at": "2023-12-30T10:00:00Z", "ended_at": "2023-12-30T11:00:00Z"}])],
    [("delete", "users", 2, []), ("write", "viewing_sessions", 1, [])],
]


def run_fixed_sequence(home: Path, incremental, make_full, compare_after_each: bool = True) -> None:
    landing = Landing(home / "landing")
    for number, batch in enumerate(FIXED_BATCHES, start=1):
        for change in batch:
            landing.apply(change)
        build(incremental, landing.folder, full=False,
              days=DayRange(date(2024, 1, 1), date(2024, 1, 1)) if number == 2 else None)
        if compare_after_each or number == len(FIXED_BATCHES):
            rebuilt = make_full(number)
            build(rebuilt, landing.folder, full=True)
            assert_same(snapshot(incremental), snapshot(rebuilt), f"after batch {number}")


def test_the_fixed_sequence_on_duckdb(tmp_path):
    run_fixed_sequence(tmp_path, duckdb_warehouse(tmp_path, "incremental"),
                       lambda number: duckdb_warehouse(tmp_path, f"full_{number}"))


@pytest.fixture
def postgres_databases():
    """Fresh databases on the machine's PostgreSQL (dropped afterwards): a function making one per name."""
    import psycopg

    from etl_platform_tests.servers import require_service

    require_service("PostgreSQL", 5432)
    server, made = "postgresql://postgres@127.0.0.1:5432", []

    def make(name: str) -> str:
        database = f"etl_incremental_{os.getpid()}_{name}"
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {database}")
        made.append(database)
        return f"{server}/{database}"

    yield make
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        for database in made:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def test_the_fixed_sequence_on_postgres(tmp_path, postgres_databases):
    from etl_platform.warehouse.postgres_warehouse import PostgresWarehouse

    run_fixed_sequence(tmp_path, PostgresWarehouse(url=postgres_databases("incremental")),
                       lambda number: PostgresWarehouse(url=postgres_databases(f"full_{number}")))
