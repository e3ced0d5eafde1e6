"""Every silver rule and quarantine reason of the contract, on small hand-made inputs."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import dagster as dg
import pytest

from etl_platform_tests.conftest import check_results


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def user(user_id, **fields) -> dict:
    row = {"user_id": user_id, "email": "u@x.com", "name": "U", "country": "US", "subscription_tier": "free",
           "signup_date": "2024-01-01", "birth_year": "1990", "updated_at": "2024-01-01T00:00:00Z"}
    return {**row, **fields}


def session(session_id, **fields) -> dict:
    row = {"session_id": session_id, "user_id": "1", "content_id": "10", "started_at": "2024-01-01T10:00:00Z",
           "ended_at": "2024-01-01T10:30:00Z", "device": "tv", "completion_pct": "50"}
    return {**row, **fields}


def content(content_id, **fields) -> str:
    return json.dumps({"content_id": content_id, "title": f"T{content_id}", "type": "movie", "genres": ["drama"],
                       "updated_at": "2024-01-01T00:00:00Z", **fields})


def quarantine(platform, entity: str) -> list[tuple]:
    return [(r["source_file"], r["row_number"], r["reason"]) for r in platform.rows(
        "SELECT * FROM silver.quarantine WHERE entity = ? ORDER BY source_file, row_number", [entity])]


@pytest.fixture
def minimal_inputs(platform):
    """One valid row per entity, so each test only writes the entity it is about."""
    platform.write_csv("users_0.csv", [user("1")])
    platform.write_jsonl("content_0.jsonl", [content(10)])
    platform.write_csv("viewing_sessions_0.csv", [session("1")])
    return platform


# ---------------------------------------------------------------- users


def test_users_rules_cleaning_and_first_reason(minimal_inputs):
    platform = minimal_inputs
    platform.write_csv("users_1.csv", [
        user(" 2 ", email=" Ann@Example.COM ", name="  Ann  ", country=" gb ", subscription_tier=" PREMIUM ",
             birth_year=" 1985 ", updated_at="2024-02-01T10:00:00+02:00"),
        user("3", email="", name="", subscription_tier="gold", birth_year="19.5", updated_at="yesterday"),
        user("4", subscription_tier=""),
        user("abc"), user("0"), user("-3"), user("12.5"), user(""), user("1e3"),
        user("5", signup_date="2024-02-30"), user("6", signup_date="03/04/2021"), user("7", signup_date=""),
        user("xyz", signup_date="bad"),  # both rules broken: the first one listed is the reason
    ])
    platform.materialize()
    users = {r["user_id"]: r for r in platform.rows("SELECT * FROM silver.users")}
    assert set(users) == {1, 2, 3, 4}
    assert users[2] | {} == users[2] and (users[2]["email"], users[2]["name"], users[2]["country"],
                                          users[2]["subscription_tier"], users[2]["birth_year"]) == (
        "ann@example.com", "Ann", "GB", "premium", 1985)
    assert users[2]["updated_at"] == utc(2024, 2, 1, 8) and users[2]["signup_date"] == date(2024, 1, 1)
    assert (users[3]["email"], users[3]["name"], users[3]["subscription_tier"], users[3]["birth_year"],
            users[3]["updated_at"]) == (None, None, "unknown", None, None)
    assert users[4]["subscription_tier"] == "unknown"
    assert quarantine(platform, "users") == [
        ("users_1.csv", 4, "invalid_user_id"), ("users_1.csv", 5, "invalid_user_id"),
        ("users_1.csv", 6, "invalid_user_id"), ("users_1.csv", 7, "invalid_user_id"),
        ("users_1.csv", 8, "invalid_user_id"), ("users_1.csv", 9, "invalid_user_id"),
        ("users_1.csv", 10, "invalid_signup_date"), ("users_1.csv", 11, "invalid_signup_date"),
        ("users_1.csv", 12, "invalid_signup_date"), ("users_1.csv", 13, "invalid_user_id"),
    ]
    raw = json.loads(platform.scalar("SELECT raw FROM silver.quarantine WHERE row_number = 13"))
    assert raw["user_id"] == "xyz" and raw["signup_date"] == "bad"


def test_users_deduplication(minimal_inputs):
    platform = minimal_inputs
    platform.write_csv("users_1.csv", [
        user("7", name="old", updated_at="2024-01-01T00:00:00Z"),
        user("7", name="newest", updated_at="2024-03-01T00:00:00Z"),
        user("8", name="first of tie", updated_at="2024-01-01T00:00:00Z"),
        user("8", name="second of tie", updated_at="2024-01-01T00:00:00Z"),
        user("9", name="file 1", updated_at="2024-01-01T00:00:00Z"),
        user("10", name="dated", updated_at="2020-01-01T00:00:00Z"),
        user("bad"), user("bad"),  # every copy of a bad row is quarantined
    ])
    platform.write_csv("users_2.csv", [
        user("7", name="undated", updated_at=""),
        user("9", name="file 2", updated_at="2024-01-01T01:00:00+01:00"),  # same instant: the later file wins
        user("10", name="undated later", updated_at=""),
    ])
    result = platform.materialize()
    names = {r["user_id"]: r["name"] for r in platform.rows("SELECT user_id, name FROM silver.users")}
    assert names == {1: "U", 7: "newest", 8: "second of tie", 9: "file 2", 10: "dated"}
    assert [q[2] for q in quarantine(platform, "users")] == ["invalid_user_id", "invalid_user_id"]
    reconciliation = check_results(result)["silver/users:reconciliation"]
    assert reconciliation.passed, reconciliation.description
    assert "bronze 12 = silver 5 + quarantined 2 + duplicates removed 5" in reconciliation.metadata["details"].value


def test_malformed_csv_row_is_quarantined_first(minimal_inputs):
    platform = minimal_inputs
    platform.write_text("users_1.csv", "user_id,email,name,country,subscription_tier,signup_date,birth_year,updated_at\n"
                                       "2,a@x.com,Ann,US,free,2024-01-01,1990,2024-01-01T00:00:00Z,extra\n")
    platform.materialize()
    assert quarantine(platform, "users") == [("users_1.csv", 1, "malformed_row")]
    raw = json.loads(platform.scalar("SELECT raw FROM silver.quarantine"))
    assert raw["user_id"] == "2" and raw["_surplus_fields"] == ["extra"]


# ---------------------------------------------------------------- content


def test_content_rules_and_flattening(minimal_inputs):
    platform = minimal_inputs
    platform.write_jsonl("content_1.jsonl", [
        json.dumps({"content_id": 1, "title": "  Full  ", "type": " MOVIE ", "genres": [" Drama ", "Comedy", ""],
                    "release": {"year": 2020, "country": "US"}, "duration_minutes": 90,
                    "cast": [{"name": "Sup", "role": "support"}, {"name": " Lea ", "role": "Lead"},
                             {"name": "Second lead", "role": "lead"}],
                    "ratings": {"imdb": 7.5, "age_rating": " PG "}, "updated_at": "2024-01-01T00:00:00Z"}),
        json.dumps({"content_id": 2, "genres": [], "release": None, "duration_minutes": "90 min",
                    "cast": [{"name": "X", "role": "support"}]}),
        json.dumps({"content_id": "3", "genres": "Horror", "duration_minutes": 12.5, "ratings": {"imdb": "n/a"}}),
        json.dumps({"content_id": 4.5}),
        json.dumps({"content_id": "abc"}),
        json.dumps({"title": "no id"}),
        '{"content_id": 5, "title": "broken',
        "[1, 2]",
        '"just text"',
    ])
    platform.materialize()
    rows = {r["content_id"]: r for r in platform.rows("SELECT * FROM silver.content")}
    assert set(rows) == {1, 2, 3, 10}
    assert {k: rows[1][k] for k in ("title", "content_type", "genres", "primary_genre", "release_year",
                                    "release_country", "duration_minutes", "cast_count", "lead_actor",
                                    "imdb_rating", "age_rating", "updated_at")} == {
        "title": "Full", "content_type": "movie", "genres": "Drama,Comedy", "primary_genre": "Drama",
        "release_year": 2020, "release_country": "US", "duration_minutes": 90, "cast_count": 3,
        "lead_actor": "Lea", "imdb_rating": 7.5, "age_rating": "PG", "updated_at": utc(2024, 1, 1)}
    assert {k: rows[2][k] for k in ("genres", "primary_genre", "release_year", "release_country",
                                    "duration_minutes", "cast_count", "lead_actor", "imdb_rating")} == {
        "genres": None, "primary_genre": None, "release_year": None, "release_country": None,
        "duration_minutes": None, "cast_count": 1, "lead_actor": None, "imdb_rating": None}
    assert (rows[3]["genres"], rows[3]["duration_minutes"], rows[3]["cast_count"], rows[3]["imdb_rating"]) == (
        "Horror", None, 0, None)
    assert quarantine(platform, "content") == [
        ("content_1.jsonl", 4, "invalid_content_id"), ("content_1.jsonl", 5, "invalid_content_id"),
        ("content_1.jsonl", 6, "invalid_content_id"), ("content_1.jsonl", 7, "malformed_json"),
        ("content_1.jsonl", 8, "malformed_json"), ("content_1.jsonl", 9, "malformed_json"),
    ]
    broken = platform.scalar("SELECT raw FROM silver.quarantine WHERE row_number = 7")
    assert json.loads(broken) == '{"content_id": 5, "title": "broken'


def test_content_deduplication(minimal_inputs):
    platform = minimal_inputs
    platform.write_jsonl("content_1.jsonl", [
        content(20, title="old", updated_at="2024-01-01T00:00:00Z"),
        content(20, title="new", updated_at="2024-05-01T00:00:00Z"),
        content(21, title="tie 1"), content(21, title="tie 2"),
        content(22, title="dated"), content(22, title="undated", updated_at=None),
    ])
    platform.materialize()
    titles = {r["content_id"]: r["title"] for r in platform.rows("SELECT content_id, title FROM silver.content")}
    assert titles == {10: "T10", 20: "new", 21: "tie 2", 22: "dated"}


# ---------------------------------------------------------------- viewing sessions


def test_sessions_rules_in_order(minimal_inputs):
    platform = minimal_inputs
    platform.write_csv("users_1.csv", [user("2")])
    rows = [
        session("100", started_at="2024-01-01T10:00:00Z", ended_at="2024-01-01T10:30:00.900Z", device=" TV ",
                completion_pct="95"),                                                         # 1 valid
        session("x1"), session("1.0"), session(""),                                           # 2-4
        session("101", started_at="not a time"), session("102", ended_at=""),                 # 5-6
        session("103", started_at="2024-02-30T00:00:00"),                                     # 7
        session("104", started_at="2024-01-01T11:00:00Z", ended_at="2024-01-01T10:00:00Z"),   # 8
        session("105", completion_pct="n/a"), session("106", completion_pct="NaN"),          # 9-10
        session("107", completion_pct="inf"),                                                 # 11
        session("108", completion_pct="101"), session("109", completion_pct="-1"),           # 12-13
        session("110", user_id="999"), session("111", user_id="abc"),                         # 14-15
        session("112", content_id="999"),                                                     # 16
        session("113", completion_pct="1e1", device="SmartTV"),                               # 17 valid
        session("114", completion_pct="", device=""),                                         # 18 valid
        session("115", completion_pct="100", user_id="2"), session("116", completion_pct="0"),  # 19-20 valid
        session("bad", started_at="never"),                                                   # 21 first reason
        session("117", started_at="2024-01-01T11:00:00Z", ended_at="2024-01-01T10:00:00Z", completion_pct="n/a"),
        session("118", completion_pct="500", user_id="999"),                                  # 23
        session("119", user_id="999", content_id="999"),                                      # 24
    ]
    platform.write_csv("viewing_sessions_1.csv", rows)
    platform.materialize()
    reasons = [(r[1], r[2]) for r in quarantine(platform, "viewing_sessions")]
    assert reasons == [
        (2, "invalid_session_id"), (3, "invalid_session_id"), (4, "invalid_session_id"),
        (5, "invalid_timestamp"), (6, "invalid_timestamp"), (7, "invalid_timestamp"),
        (8, "negative_duration"),
        (9, "invalid_completion_pct"), (10, "invalid_completion_pct"), (11, "invalid_completion_pct"),
        (12, "completion_out_of_range"), (13, "completion_out_of_range"),
        (14, "orphan_user"), (15, "orphan_user"), (16, "orphan_content"),
        (21, "invalid_session_id"), (22, "negative_duration"), (23, "completion_out_of_range"), (24, "orphan_user"),
    ]
    sessions = {r["session_id"]: r for r in platform.rows("SELECT * FROM silver.viewing_sessions")}
    assert set(sessions) == {1, 100, 113, 114, 115, 116}
    assert (sessions[100]["device"], sessions[100]["watch_seconds"], sessions[100]["completion_pct"]) == ("tv", 1800, 95.0)
    assert (sessions[113]["device"], sessions[113]["completion_pct"]) == ("other", 10.0)
    assert (sessions[114]["device"], sessions[114]["completion_pct"]) == ("other", None)
    assert sessions[100]["ended_at"] == datetime(2024, 1, 1, 10, 30, 0, 900000, tzinfo=timezone.utc)


def test_sessions_deduplication_and_offsets(minimal_inputs):
    platform = minimal_inputs
    platform.write_csv("viewing_sessions_1.csv", [
        session("200", ended_at="2024-01-01T10:40:00Z", device="web"),
        session("200", ended_at="2024-01-01T10:50:00Z", device="mobile"),   # latest ended_at wins
        session("201", device="web"), session("201", device="tablet"),      # tie: the later row wins
        session("202", started_at="2024-01-01T23:30:00-02:00", ended_at="2024-01-02T01:31:00Z"),
        session("x"), session("x"),
    ])
    platform.write_csv("viewing_sessions_2.csv", [session("200", ended_at="2024-01-01T11:50:00+01:00", device="web")])
    result = platform.materialize()
    rows = {r["session_id"]: r for r in platform.rows("SELECT * FROM silver.viewing_sessions")}
    assert rows[200]["device"] == "web" and rows[200]["_source_file"] == "viewing_sessions_2.csv"
    assert rows[201]["device"] == "tablet"
    assert rows[202]["started_at"] == utc(2024, 1, 2, 1, 30) and rows[202]["watch_seconds"] == 60
    assert len(quarantine(platform, "viewing_sessions")) == 2
    errors = {name: c.description for name, c in check_results(result).items()
              if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR}
    assert errors == {}


def test_bytes_that_are_not_utf8_are_kept_flagged_and_quarantined(minimal_inputs):
    platform = minimal_inputs
    (platform.landing / "content_1.jsonl").write_bytes(b'{"content_id": 31, "title": "ok"}\n'
                                                      b'{"content_id": 32, "title": "caf\xe9"}\n')
    (platform.landing / "users_1.csv").write_bytes(
        ",".join(["user_id", "email", "name", "country", "subscription_tier", "signup_date", "birth_year",
                  "updated_at"]).encode() + b"\n2,a@x.com,Ren\xe9,FR,free,2024-01-01,1990,\n")
    platform.materialize()
    bronze = platform.rows("SELECT line, _parse_error FROM bronze.content WHERE _source_file = 'content_1.jsonl' "
                           "ORDER BY _row_number")
    assert bronze[0]["_parse_error"] is None
    assert bronze[1]["line"] == '{"content_id": 32, "title": "caf\ufffd"}'
    assert "not UTF-8 (at byte 32)" in bronze[1]["_parse_error"]
    assert quarantine(platform, "content") == [("content_1.jsonl", 2, "malformed_json")]
    assert quarantine(platform, "users") == [("users_1.csv", 1, "malformed_row")]
    assert {r["content_id"] for r in platform.rows("SELECT content_id FROM silver.content")} == {10, 31}
