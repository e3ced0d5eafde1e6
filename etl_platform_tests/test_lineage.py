"""Dependencies and column lineage read from the SQL with sqlglot (etl_platform/medallion/lineage.py), against
expectations checked by hand from the reference pipeline's SQL files."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from etl_platform.medallion.lineage import read_table_sql, read_table_sql_cached
from etl_platform.video_analytics.steps import STEPS, column_lineage, sql_deps, table_sql

S, U, C, F = "silver.viewing_sessions", "silver.users", "silver.content", "gold.viewing_fact"

# Checked by hand against sql/video_analytics/gold/*.sql: each gold column and the silver (or gold) columns its
# expression reads. count(*) reads no column: no lineage.
GOLD_LINEAGE = {
    "viewing_fact": {
        **{c: {(S, c)} for c in ("session_id", "user_id", "content_id", "started_at", "ended_at", "device",
                                 "completion_pct", "watch_seconds")},
        "view_date": {(S, "started_at")},
        "_source_file": {(S, "_source_file")}, "_row_number": {(S, "_row_number")},
        "country": {(U, "country")}, "subscription_tier": {(U, "subscription_tier")},
        "title": {(C, "title")}, "content_type": {(C, "content_type")}, "primary_genre": {(C, "primary_genre")},
    },
    "daily_viewing": {
        "view_date": {(F, "view_date")}, "device": {(F, "device")}, "country": {(F, "country")}, "sessions": set(),
        "unique_users": {(F, "user_id")}, "total_watch_seconds": {(F, "watch_seconds")},
    },
    "user_engagement": {
        "user_id": {(U, "user_id")}, "country": {(U, "country")}, "subscription_tier": {(U, "subscription_tier")},
        "sessions_count": set(), "total_watch_seconds": {(S, "watch_seconds")},
        "avg_completion_pct": {(S, "completion_pct")}, "distinct_content_count": {(S, "content_id")},
        "first_session_at": {(S, "started_at")}, "last_session_at": {(S, "started_at")},
        "favorite_device": {(S, "device")},
    },
    "content_performance": {
        "content_id": {(C, "content_id")}, "title": {(C, "title")}, "content_type": {(C, "content_type")},
        "primary_genre": {(C, "primary_genre")}, "views": set(), "unique_viewers": {(S, "user_id")},
        "total_watch_seconds": {(S, "watch_seconds")}, "avg_completion_pct": {(S, "completion_pct")},
        "completion_rate": {(S, "completion_pct")},
    },
}


@pytest.mark.parametrize("table", sorted(GOLD_LINEAGE))
def test_gold_column_lineage_is_what_the_sql_says(table):
    read = table_sql()[table]
    assert list(read.columns) == list(GOLD_LINEAGE[table])  # every column, in the table's order
    assert {column: set(origins) for column, origins in read.lineage.items()} == GOLD_LINEAGE[table]


def test_silver_columns_trace_through_the_row_store_to_bronze():
    """silver.users is filled from its row store (silver._users_rows), which is filled from bronze: the lineage
    follows the step's own tables to the upstream one; watch_seconds reads both timestamps."""
    users = table_sql()["users"].lineage
    assert users["country"] == (("bronze.users", "country"),)
    assert users["_row_number"] == (("bronze.users", "_row_number"),)
    sessions = table_sql()["viewing_sessions"].lineage
    assert set(sessions["watch_seconds"]) == {("bronze.viewing_sessions", "started_at"),
                                             ("bronze.viewing_sessions", "ended_at")}
    content = table_sql()["content"].lineage
    assert ("bronze.content", "line") in content["title"]  # parsed from the JSON line


def test_dependencies_come_from_the_tables_the_sql_reads():
    expected = {
        "users": ["bronze/users"], "content": ["bronze/content"],
        "viewing_sessions": ["bronze/viewing_sessions", "silver/content", "silver/users"],
        "viewing_fact": ["silver/content", "silver/users", "silver/viewing_sessions"],
        "daily_viewing": ["gold/viewing_fact"],
        "user_engagement": ["silver/users", "silver/viewing_sessions"],
        "content_performance": ["silver/content", "silver/viewing_sessions"],
        "quarantine": ["silver/content", "silver/users", "silver/viewing_sessions"],
    }
    assert {name: [key.to_user_string() for key in sql_deps(name)] for name in expected} == expected
    assert set(expected) == {*STEPS, "quarantine"}


def test_column_lineage_metadata_names_upstream_assets():
    lineage = column_lineage("user_engagement")
    assert isinstance(lineage, dg.TableColumnLineage)
    assert lineage.deps_by_column["favorite_device"] == [
        dg.TableColumnDep(asset_key=dg.AssetKey(["silver", "viewing_sessions"]), column_name="device")]
    assert "sessions_count" not in lineage.deps_by_column  # count(*): no column


def test_a_script_with_temporary_relations_self_reads_and_a_star():
    """Temporary views and tables in script order, a table read while it is rebuilt (its earlier state), and a
    SELECT * of a temporary relation."""
    script = """
        CREATE TEMP TABLE keys AS SELECT id FROM changes;
        CREATE OR REPLACE TEMP VIEW src AS
            SELECT o.id, upper(o.name) AS name, o.amount * r.rate AS amount_eur
            FROM up.orders AS o JOIN up.rates AS r ON r.currency = o.currency
            WHERE o.id IN (SELECT id FROM keys);
        CREATE TABLE IF NOT EXISTS out.t AS SELECT * FROM src LIMIT 0;
        CREATE TEMP TABLE before AS SELECT * FROM out.t WHERE id IN (SELECT id FROM keys);
        DELETE FROM out.t WHERE id IN (SELECT id FROM keys);
        INSERT INTO out.t SELECT * FROM src;
    """
    read = read_table_sql("out.t", [script], schema={"up.orders": ["id", "name", "amount", "currency"],
                                                     "up.rates": ["currency", "rate"]},
                          inputs={"changes": ["id"]})
    assert read.reads == {"up.orders", "up.rates"}
    assert read.columns == ("id", "name", "amount_eur")
    assert {c: set(o) for c, o in read.lineage.items()} == {
        "id": {("up.orders", "id")}, "name": {("up.orders", "name")},
        "amount_eur": {("up.orders", "amount"), ("up.rates", "rate")}}


def test_the_cache_is_keyed_by_the_sql_and_survives_a_damaged_entry(tmp_path):
    script = "CREATE TABLE out.t AS SELECT a + b AS c FROM up.x"
    first = read_table_sql_cached(tmp_path, "out.t", [script], schema={"up.x": ["a", "b"]})
    (entry,) = tmp_path.iterdir()
    assert json.loads(entry.read_text())["lineage"] == {"c": [["up.x", "a"], ["up.x", "b"]]}
    entry.write_text("{not json")
    assert read_table_sql_cached(tmp_path, "out.t", [script], schema={"up.x": ["a", "b"]}) == first
    changed = read_table_sql_cached(tmp_path, "out.t", [script.replace("a + b", "a")], schema={"up.x": ["a", "b"]})
    assert changed.lineage == {"c": (("up.x", "a"),)}
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_a_change_to_the_reader_itself_is_not_served_from_the_cache(tmp_path, monkeypatch):
    """The cache's key holds the reader's own code: results kept by an earlier version are read again."""
    from etl_platform.medallion import lineage

    script = "CREATE TABLE out.t AS SELECT a AS c FROM up.x"
    read_table_sql_cached(tmp_path, "out.t", [script], schema={"up.x": ["a"]})
    monkeypatch.setattr(lineage, "_READER", "another-version")
    read_table_sql_cached(tmp_path, "out.t", [script], schema={"up.x": ["a"]})
    assert len(list(tmp_path.glob("*.json"))) == 2
