"""Every gold metric on a hand-computed example."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from etl_platform_tests.conftest import check_results
from etl_platform_tests.test_silver import session, user


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def gold(tmp_path_factory):
    from etl_platform_tests.conftest import Platform

    platform = Platform(tmp_path_factory.mktemp("gold"))
    platform.write_csv("users_1.csv", [
        user("1", country="US", subscription_tier="premium"),
        user("2", country="GB", subscription_tier="free"),
        user("3", country="US", subscription_tier="basic"),     # no sessions
    ])
    platform.write_jsonl("content_1.jsonl", [
        '{"content_id": 10, "title": "A", "type": "movie", "genres": ["drama", "comedy"]}',
        '{"content_id": 20, "title": "B", "type": "series", "genres": ["comedy"]}',
        '{"content_id": 30, "title": "C", "type": "movie", "genres": []}',     # no sessions
    ])
    platform.write_csv("viewing_sessions_1.csv", [
        session("1", user_id="1", content_id="10", started_at="2024-01-01T10:00:00Z",
                ended_at="2024-01-01T10:10:00Z", device="tv", completion_pct="95"),
        session("2", user_id="1", content_id="10", started_at="2024-01-01T20:00:00Z",
                ended_at="2024-01-01T20:20:00Z", device="mobile", completion_pct="50"),
        session("3", user_id="1", content_id="20", started_at="2024-01-02T08:00:00Z",
                ended_at="2024-01-02T08:05:00Z", device="tv", completion_pct=""),
        session("4", user_id="2", content_id="10", started_at="2024-01-01T23:00:00Z",
                ended_at="2024-01-01T23:30:00Z", device="web", completion_pct="90"),
        session("5", user_id="2", content_id="20", started_at="2024-01-01T23:00:00-02:00",
                ended_at="2024-01-02T01:01:00Z", device="mobile", completion_pct="10"),
        session("6", user_id="1", content_id="20", started_at="2024-01-01T12:00:00Z",
                ended_at="2024-01-01T12:00:30Z", device="tv", completion_pct="100"),
    ])
    result = platform.materialize()
    return platform, result


def test_user_engagement(gold):
    platform, _ = gold
    rows = {r["user_id"]: r for r in platform.rows("SELECT * FROM gold.user_engagement")}
    assert rows[1] == {
        "user_id": 1, "country": "US", "subscription_tier": "premium", "sessions_count": 4,
        "total_watch_seconds": 600 + 1200 + 300 + 30, "avg_completion_pct": pytest.approx((95 + 50 + 100) / 3),
        "distinct_content_count": 2, "first_session_at": utc(2024, 1, 1, 10), "last_session_at": utc(2024, 1, 2, 8),
        "favorite_device": "tv",
    }
    assert rows[2] == {
        "user_id": 2, "country": "GB", "subscription_tier": "free", "sessions_count": 2,
        "total_watch_seconds": 1800 + 60, "avg_completion_pct": pytest.approx(50.0), "distinct_content_count": 2,
        "first_session_at": utc(2024, 1, 1, 23), "last_session_at": utc(2024, 1, 2, 1),
        "favorite_device": "mobile",  # mobile and web tie at one session: alphabetical
    }
    assert rows[3] == {
        "user_id": 3, "country": "US", "subscription_tier": "basic", "sessions_count": 0, "total_watch_seconds": 0,
        "avg_completion_pct": None, "distinct_content_count": 0, "first_session_at": None, "last_session_at": None,
        "favorite_device": None,
    }


def test_content_performance(gold):
    platform, _ = gold
    rows = {r["content_id"]: r for r in platform.rows("SELECT * FROM gold.content_performance")}
    assert rows[10] == {
        "content_id": 10, "title": "A", "content_type": "movie", "primary_genre": "drama", "views": 3,
        "unique_viewers": 2, "total_watch_seconds": 3600, "avg_completion_pct": pytest.approx((95 + 50 + 90) / 3),
        "completion_rate": pytest.approx(2 / 3),
    }
    assert rows[20] == {
        "content_id": 20, "title": "B", "content_type": "series", "primary_genre": "comedy", "views": 3,
        "unique_viewers": 2, "total_watch_seconds": 300 + 60 + 30, "avg_completion_pct": pytest.approx(55.0),
        "completion_rate": pytest.approx(0.5),  # 100 of (10, 100); the NULL completion does not count
    }
    assert rows[30] == {
        "content_id": 30, "title": "C", "content_type": "movie", "primary_genre": None, "views": 0,
        "unique_viewers": 0, "total_watch_seconds": 0, "avg_completion_pct": None, "completion_rate": None,
    }


def test_daily_viewing(gold):
    platform, _ = gold
    rows = platform.rows("SELECT * FROM gold.daily_viewing ORDER BY view_date, device, country")
    d1, d2 = date(2024, 1, 1), date(2024, 1, 2)
    assert rows == [
        {"view_date": d1, "device": "mobile", "country": "US", "sessions": 1, "unique_users": 1, "total_watch_seconds": 1200},
        {"view_date": d1, "device": "tv", "country": "US", "sessions": 2, "unique_users": 1, "total_watch_seconds": 630},
        {"view_date": d1, "device": "web", "country": "GB", "sessions": 1, "unique_users": 1, "total_watch_seconds": 1800},
        # 2024-01-01T23:00-02:00 is 2024-01-02T01:00 UTC
        {"view_date": d2, "device": "mobile", "country": "GB", "sessions": 1, "unique_users": 1, "total_watch_seconds": 60},
        {"view_date": d2, "device": "tv", "country": "US", "sessions": 1, "unique_users": 1, "total_watch_seconds": 300},
    ]


def test_viewing_fact(gold):
    platform, _ = gold
    rows = {r["session_id"]: r for r in platform.rows("SELECT * FROM gold.viewing_fact")}
    assert len(rows) == 6
    assert {k: rows[5][k] for k in ("user_id", "content_id", "device", "completion_pct", "watch_seconds", "view_date",
                                    "country", "subscription_tier", "title", "content_type", "primary_genre")} == {
        "user_id": 2, "content_id": 20, "device": "mobile", "completion_pct": 10.0, "watch_seconds": 60,
        "view_date": date(2024, 1, 2), "country": "GB", "subscription_tier": "free", "title": "B",
        "content_type": "series", "primary_genre": "comedy",
    }


def test_gold_checks_pass(gold):
    _, result = gold
    checks = {name: c for name, c in check_results(result).items() if name.startswith("gold/")}
    assert len(checks) == 13  # 9 rules + rows_balanced on each of the four tables
    assert all(c.passed for c in checks.values()), {n: c.description for n, c in checks.items() if not c.passed}
    assert "sum(user_engagement.sessions_count) = 6" in checks["gold/viewing_fact:totals_reconcile"].metadata["details"].value


def test_gold_is_the_same_to_the_last_bit_whatever_order_the_rows_arrived_in(tmp_path, monkeypatch):
    """The same sessions landed in another order (a rebuild, a backfill and a run over files that arrived in
    another order add them up in another order): every gold table is identical, averages included (they are
    summed exactly in DECIMAL and rounded to 6 places, not summed in floating point in arrival order)."""
    import random
    import shutil

    import duckdb

    from etl_platform.video_analytics import demo_data
    from etl_platform_tests.conftest import Platform

    tables = {}
    for order in ("as_generated", "shuffled"):
        home = tmp_path / order
        monkeypatch.setenv("ETL_PLATFORM_HOME", str(home))
        platform = Platform(home)
        source = tmp_path / "generated"
        if not source.exists():
            demo_data.generate(source, sessions=30_000, seed=11, progress=False)
        shutil.copytree(source, platform.landing)
        if order == "shuffled":
            (sessions_file,) = platform.landing.glob("viewing_sessions*.csv")
            header, *lines = sessions_file.read_text().splitlines(keepends=True)
            random.Random(3).shuffle(lines)
            sessions_file.unlink()
            half = len(lines) // 2  # and in two files, the second first
            (platform.landing / "viewing_sessions_b.csv").write_text(header + "".join(lines[:half]))
            (platform.landing / "viewing_sessions_a.csv").write_text(header + "".join(lines[half:]))
        platform.materialize()
        with duckdb.connect(str(platform.warehouse_file), read_only=True) as conn:
            tables[order] = {name: conn.sql(f"SELECT * {exclude} FROM gold.{name} ORDER BY ALL").fetchall()
                             for name, exclude in (("user_engagement", ""), ("content_performance", ""),
                                                   ("daily_viewing", ""),  # a fact's lineage names its file and row:
                                                   ("viewing_fact", "EXCLUDE (_source_file, _row_number)"))}
    for name in tables["as_generated"]:
        assert tables["as_generated"][name] == tables["shuffled"][name], f"gold.{name} differs"
    averages = [row[7] for row in tables["shuffled"]["content_performance"] if row[7] is not None]
    assert averages and all(round(a, 6) == a for a in averages)
