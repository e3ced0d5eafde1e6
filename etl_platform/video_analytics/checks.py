"""The contract's quality checks: most run in their asset's step, the others in a step of their own after it.

Severities: ERROR checks are blocking (a failure stops the layer below); WARN checks report without
blocking. Which check has which severity, and why, is listed in docs/video_analytics.md.
"""

from __future__ import annotations

import dagster as dg

from etl_platform.quality import (
    SqlCheck,
    all_in_range,
    column_types,
    no_null,
    sql_file_check,
    unique,
)
from etl_platform.medallion.assets import separate_checks
from etl_platform.video_analytics import contract
from etl_platform.medallion.checks import changed_rows, last_run, latest_changes, rows_balanced, unread_files
from etl_platform.video_analytics.steps import BRONZE_KEYS, CONTENT_FEED, GOLD_KEYS, SILVER_KEYS, STEPS, USERS_FEED

WARN = dg.AssetCheckSeverity.WARN


class QualityPolicy(dg.ConfigurableResource):
    """Thresholds of the pipeline's checks that a deployment may tune."""

    quarantine_max_share: float = 0.05


def _in_unread_files(entity: str, name: str, description: str, sql: str, **kwargs) -> SqlCheck:
    """A bronze check of the rows in the files silver has not read yet (``sql`` starts with ``WITH {files},``): the
    files loaded since, which the next silver run takes. Each file is checked until silver has read it; a first
    run checks every file."""
    scoped, everything, needs = unread_files(STEPS[entity])
    return SqlCheck(name, f"{description} (in the files silver.{entity} has not read yet: new and changed ones)",
                    sql.format(files=scoped), needs=needs, sql_without_state=sql.format(files=everything), **kwargs)


# The rows of the unread files: the load-time comparison lets the engine skip older files' rows unread (with no
# unread file, a time no row has: DuckDB reads every row when the bound is NULL).
IN_UNREAD_FILES = ("_ingested_at >= coalesce((SELECT min(ingested_at) FROM _checked_files), "
                   "CAST('9999-12-31 00:00:00+00' AS TIMESTAMPTZ)) "
                   "AND _source_file IN (SELECT source_file FROM _checked_files)")


def _list(values) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


# ---------------------------------------------------------------- bronze


def _files_present(entity: str) -> SqlCheck:
    pattern = contract.BRONZE[entity].pattern
    return SqlCheck(
        "files_present_and_not_empty",
        f"At least one {pattern} file was loaded and holds data rows (ERROR); empty files are listed (WARN).",
        f"""
        WITH f AS (SELECT * FROM bronze._ingested_files WHERE entity = '{entity}' AND status = 'loaded')
        SELECT
            CASE WHEN coalesce(sum(row_count), 0) = 0 THEN 1 ELSE count(*) FILTER (WHERE row_count = 0) END AS violations,
            CASE WHEN count(*) = 0 THEN 'no file matching {pattern} has been loaded'
                 WHEN sum(row_count) = 0 THEN 'every {pattern} file is empty: ' || string_agg(source_file, ', ')
                 ELSE 'files without data rows: ' || coalesce(string_agg(source_file, ', ') FILTER (WHERE row_count = 0), '')
            END AS details,
            CASE WHEN coalesce(sum(row_count), 0) = 0 THEN 'ERROR' ELSE 'WARN' END AS severity
        FROM f
        """,
    )


def _files_readable(entity: str) -> SqlCheck:
    return SqlCheck(
        "files_readable",
        f"Every {entity} landing file could be read. A file that cannot (not UTF-8 text, truncated, required "
        "columns missing under the 'reject' policy) fails this check: ERROR when it was blocked (policy 'block'), "
        "WARN when it was rejected (policy 'reject'). Delete or replace the file to clear it.",
        f"""
        WITH f AS (SELECT * FROM bronze._ingested_files WHERE entity = '{entity}' AND status <> 'loaded')
        SELECT count(*) AS violations,
               coalesce(string_agg(source_file || ' (' || size_bytes || ' bytes) was ' || status || ': it ' || problem,
                                   '; ' ORDER BY source_file), '') AS details,
               CASE WHEN count(*) FILTER (WHERE status = 'blocked') > 0 THEN 'ERROR' ELSE 'WARN' END AS severity
        FROM f
        """,
    )


def _csv_expected_columns(entity: str) -> SqlCheck:
    expected = contract.BRONZE[entity].expected_columns
    return SqlCheck(
        "expected_columns_present",
        f"Every {entity} file's header has the contract's columns: {', '.join(expected)}.",
        f"""
        WITH expected(position, name) AS (VALUES {", ".join(f"({i}, '{c}')" for i, c in enumerate(expected))}),
        missing AS (
            SELECT f.source_file, string_agg(e.name, ', ' ORDER BY e.position) AS columns
            FROM bronze._ingested_files AS f CROSS JOIN expected AS e
            WHERE f.entity = '{entity}' AND f.status = 'loaded' AND f.header <> '[]'
              AND NOT json_list_has(f.header, e.name)
            GROUP BY f.source_file
        )
        SELECT count(*) AS violations,
               coalesce(string_agg(source_file || ' lacks column ' || columns, '; ' ORDER BY source_file), '') AS details
        FROM missing
        """,
    )


def _content_expected_keys() -> SqlCheck:
    return _in_unread_files(
        "content",
        "expected_columns_present",
        f"Every content file has the contract's keys in at least one object: {', '.join(contract.CONTENT_KEYS)}",
        f"""
        WITH {{files}},
        expected(key) AS (VALUES {", ".join(f"('{k}')" for k in contract.CONTENT_KEYS)}),
        files AS (SELECT DISTINCT _source_file FROM bronze.content WHERE {IN_UNREAD_FILES}),
        missing AS (
            SELECT f._source_file, e.key
            FROM files AS f CROSS JOIN expected AS e
            WHERE NOT EXISTS (SELECT 1 FROM bronze.content AS c
                              WHERE c._source_file = f._source_file AND c._parse_error IS NULL
                                AND json_object_has_key(c.line, e.key))
        )
        SELECT count(DISTINCT _source_file) AS violations,
               coalesce(string_agg(_source_file || ' lacks key ' || key, '; ' ORDER BY _source_file, key), '')
                   AS details
        FROM missing
        """,
        severity=WARN,
    )


def _csv_no_null_rows(entity: str) -> SqlCheck:
    spec = contract.BRONZE[entity]
    columns = ", ".join(f'clean_text("{c}")' for c in spec.expected_columns)
    # Trimming every field of every row is most of this check's time (0.15 s of 0.17 s at 1M rows); a row whose
    # first field starts with a character other than white space is not empty, so only the others are trimmed.
    first = f'"{spec.expected_columns[0]}"'
    may_be_empty = f"coalesce(ascii({first}) IN (0, 9, 10, 13, 32), true)"
    return _in_unread_files(
        entity,
        "no_completely_null_rows",
        f"No {entity} row has every field empty (such rows are quarantined by silver)",
        f"""
        WITH {{files}}
        SELECT count(*) AS violations,
               'empty rows (file:row): ' || coalesce(string_agg(_source_file || ':' || _row_number, ', ')
                   FILTER (WHERE rn <= 5), '') AS details
        FROM (SELECT *, row_number() OVER (ORDER BY _source_file, _row_number) AS rn
              FROM {spec.table} WHERE {IN_UNREAD_FILES} AND {may_be_empty} AND coalesce({columns}) IS NULL)
        """,
        severity=WARN,
    )


def _content_no_null_rows() -> SqlCheck:
    return _in_unread_files(
        "content",
        "no_completely_null_rows",
        "No content line is JSON null or an object whose values are all null",
        """
        WITH {files}
        SELECT count(*) AS violations,
               'empty lines (file:line): ' || coalesce(string_agg(_source_file || ':' || _row_number, ', '
                   ORDER BY _source_file, _row_number), '') AS details
        FROM bronze.content
        WHERE """ + IN_UNREAD_FILES + """ AND _parse_error IS NULL AND json_is_empty_record(line)
        """,
        severity=WARN,
    )


BRONZE_CHECKS = {
    "users": [_files_present("users"), _files_readable("users"), _csv_expected_columns("users"),
              _csv_no_null_rows("users")],
    "content": [_files_present("content"), _files_readable("content"), _content_expected_keys(),
                _content_no_null_rows()],
    "viewing_sessions": [
        _files_present("viewing_sessions"),
        _files_readable("viewing_sessions"),
        _csv_expected_columns("viewing_sessions"),
        _csv_no_null_rows("viewing_sessions"),
    ],
}

# ---------------------------------------------------------------- silver

SILVER_TYPES = {
    "users": {
        "user_id": "BIGINT", "email": "VARCHAR", "name": "VARCHAR", "country": "VARCHAR",
        "subscription_tier": "VARCHAR", "signup_date": "DATE", "birth_year": "INTEGER",
        "updated_at": "TIMESTAMP WITH TIME ZONE",
    },
    "content": {
        "content_id": "BIGINT", "title": "VARCHAR", "content_type": "VARCHAR", "genres": "VARCHAR",
        "primary_genre": "VARCHAR", "release_year": "INTEGER", "release_country": "VARCHAR",
        "duration_minutes": "INTEGER", "cast_count": "INTEGER", "lead_actor": "VARCHAR", "imdb_rating": "DOUBLE",
        "age_rating": "VARCHAR", "updated_at": "TIMESTAMP WITH TIME ZONE",
    },
    "viewing_sessions": {
        "session_id": "BIGINT", "user_id": "BIGINT", "content_id": "BIGINT",
        "started_at": "TIMESTAMP WITH TIME ZONE", "ended_at": "TIMESTAMP WITH TIME ZONE", "device": "VARCHAR",
        "completion_pct": "DOUBLE", "watch_seconds": "BIGINT",
    },
}

def _reconciliation(entity: str) -> SqlCheck:
    """bronze = silver + quarantined + duplicates removed, at the cost of counts plus the keys the last run changed.

    silver._<entity>_rows holds every bronze row classified (its key, and its reason when it is quarantined): the
    counts compare bronze with it and the quarantine with its bad rows; the keys the last run of silver.<entity>
    changed (every key after a full refresh) are checked row by row: each valid row's key has its silver row,
    and each silver row is a valid classified row."""
    key = contract.PRIMARY_KEYS[entity]
    step = STEPS[entity]
    rows = f"silver._{entity}_rows"
    columns = f"t.{key} AS k, t._source_file, t._row_number"

    return SqlCheck(
        "reconciliation",
        f"bronze.{entity} rows = silver.{entity} rows + quarantined rows + duplicates removed: every bronze row is "
        f"classified once (silver._{entity}_rows), every quarantined one is in the quarantine, and for the keys "
        "the last run changed (all after a full refresh) every valid row's key has its silver row, which is one of "
        "those rows.",
        f"""
        WITH {last_run(step)},
        _valid AS ({changed_rows(step, rows, columns, "t.reason IS NULL")}),
        _silver AS ({changed_rows(step, f"silver.{entity}", columns)}),
        counts AS (
            SELECT
                (SELECT count(*) FROM bronze.{entity}) AS bronze_rows,
                (SELECT count(*) FROM {rows}) AS classified_rows,
                (SELECT count(*) FROM {rows} WHERE reason IS NULL) AS valid_rows,
                (SELECT count(*) FROM silver.{entity}) AS silver_rows,
                (SELECT count(*) FROM silver._quarantine_{entity}) AS quarantined_rows,
                (SELECT count(*) FROM {rows} WHERE reason IS NOT NULL) AS bad_rows,
                (SELECT count(*) FROM _valid AS v WHERE NOT EXISTS (SELECT 1 FROM _silver AS s WHERE s.k = v.k))
                    AS lost_rows,
                (SELECT count(*) FROM _silver AS s WHERE NOT EXISTS (
                    SELECT 1 FROM _valid AS v WHERE v._source_file = s._source_file
                                                AND v._row_number = s._row_number)) AS silver_without_source
        )
        SELECT abs(bronze_rows - classified_rows) + abs(bad_rows - quarantined_rows) + lost_rows
                   + silver_without_source AS violations,
               format('bronze {{}} = silver {{}} + quarantined {{}} + duplicates removed {{}} (difference {{}}); '
                      'bronze rows classified: {{}}; quarantined rows without a bronze row, or bad rows not '
                      'quarantined: {{}}; silver rows without a valid bronze row: {{}}',
                      bronze_rows, silver_rows, quarantined_rows, valid_rows - silver_rows - lost_rows,
                      bronze_rows - silver_rows - quarantined_rows - (valid_rows - silver_rows - lost_rows),
                      classified_rows, abs(bad_rows - quarantined_rows), silver_without_source) AS details
        FROM counts
        """,
    )


def _silver_checks(entity: str) -> list[SqlCheck]:
    table = f"silver.{entity}"
    return [
        unique(table, [contract.PRIMARY_KEYS[entity]], scope=latest_changes(STEPS[entity])),
        rows_balanced(STEPS[entity]),
        no_null(table, contract.REQUIRED_COLUMNS[entity], scope=latest_changes(STEPS[entity], "t.*")),
        column_types(table, SILVER_TYPES[entity]),
        _reconciliation(entity),
    ]


def _no_orphans() -> SqlCheck:
    """Every session points at a silver user and a silver content item: the sessions the last run changed, and
    every session of a user or content item that changed (one that left silver would leave orphans behind)."""
    scope = latest_changes(STEPS["viewing_sessions"], "t.session_id, t.user_id, t.content_id",
                           through=(("user_id", USERS_FEED), ("content_id", CONTENT_FEED)))
    return SqlCheck(
        "no_orphans",
        "Every session's user_id is in silver.users and its content_id in silver.content (the sessions the last run "
        "changed and every session of a user or content item that changed; every session after a full refresh).",
        f"""
        WITH {scope},
        orphans AS (
            SELECT s.session_id, u.user_id IS NULL AS missing_user, c.content_id IS NULL AS missing_content
            FROM _checked AS s
            LEFT JOIN silver.users   AS u ON u.user_id = s.user_id
            LEFT JOIN silver.content AS c ON c.content_id = s.content_id
            WHERE u.user_id IS NULL OR c.content_id IS NULL
        )
        SELECT count(*) AS violations,
               format('{{}} sessions without a user, {{}} without content; sample session_ids: {{}}',
                      count(*) FILTER (WHERE missing_user), count(*) FILTER (WHERE missing_content),
                      coalesce(string_agg(CAST(session_id AS VARCHAR), ', ') FILTER (WHERE rn <= 5), '')) AS details
        FROM (SELECT *, row_number() OVER (ORDER BY session_id) AS rn FROM orphans) AS o
        """,
    )


def _quarantine_share() -> SqlCheck:
    def sql(resources) -> str:
        max_share = float(resources.quality_policy.quarantine_max_share)
        counts = " UNION ALL ".join(
            f"SELECT '{entity}' AS entity, count(*) AS bronze_rows FROM bronze.{entity}" for entity in contract.BRONZE
        )
        return f"""
        WITH b AS ({counts}),
        q AS (SELECT entity, count(*) AS quarantined FROM silver.quarantine GROUP BY entity),
        shares AS (
            SELECT b.entity, coalesce(q.quarantined, 0) AS quarantined, b.bronze_rows,
                   CASE WHEN b.bronze_rows > 0 THEN coalesce(q.quarantined, 0) / b.bronze_rows ELSE 0 END AS share
            FROM b LEFT JOIN q USING (entity)
        )
        SELECT count(*) FILTER (WHERE share > {max_share}) AS violations,
               string_agg(format('{{}}: {{}}% ({{}} of {{}} rows)', entity, CAST(share * 100 AS DECIMAL(10, 2)),
                                 quarantined, bronze_rows),
                          ', ' ORDER BY entity) || ' (threshold {max_share * 100:.2f}%)' AS details
        FROM shares
        """

    return SqlCheck(
        "quarantine_share_below_threshold",
        "Each entity's quarantined share of bronze rows is at most QualityPolicy.quarantine_max_share (default 5 %).",
        sql,
        severity=WARN,
        resource_keys=frozenset({"quality_policy"}),
    )


def _known_reasons() -> SqlCheck:
    pairs = ", ".join(f"('{entity}', '{reason}')" for entity, reasons in contract.QUARANTINE_REASONS.items()
                      for reason in reasons)
    return SqlCheck(
        "reasons_known",
        "Every quarantine row names its entity and one of the contract's reasons for it.",
        f"""
        WITH known(entity, reason) AS (VALUES {pairs})
        SELECT count(*) AS violations,
               coalesce(string_agg(DISTINCT entity || '/' || coalesce(reason, 'NULL'), ', '), '') AS details
        FROM silver.quarantine ANTI JOIN known USING (entity, reason)
        """,
    )


SILVER_CHECKS = {
    "users": _silver_checks("users"),
    "content": _silver_checks("content"),
    "viewing_sessions": [
        *_silver_checks("viewing_sessions"),
        _no_orphans(),
        all_in_range(
            "silver.viewing_sessions", {"completion_pct": (0, 100), "watch_seconds": (0, None)}, "values_in_range",
            scope=latest_changes(STEPS["viewing_sessions"], "t.*"),
        ),
    ],
    "quarantine": [_quarantine_share(), _known_reasons()],
}

# ---------------------------------------------------------------- gold


def _one_row_per(table: str, key: str, silver_table: str, name: str) -> SqlCheck:
    return SqlCheck(
        name,
        f"{table} has exactly one row per row of {silver_table} ({key}).",
        f"""
        SELECT (SELECT count(*) - count(DISTINCT {key}) FROM {table})
               + abs((SELECT count(*) FROM {table}) - (SELECT count(*) FROM {silver_table})) AS violations,
               format('{table}: {{}} rows, {{}} distinct {key}; {silver_table}: {{}} rows',
                      (SELECT count(*) FROM {table}), (SELECT count(DISTINCT {key}) FROM {table}),
                      (SELECT count(*) FROM {silver_table})) AS details
        """,
    )


def _non_negative(table: str, columns: list[str]) -> SqlCheck:
    return all_in_range(table, {c: (0, None) for c in columns}, "no_negative_metrics")


GOLD_CHECKS = {
    "user_engagement": [
        _one_row_per("gold.user_engagement", "user_id", "silver.users", "one_row_per_user"),
        rows_balanced(STEPS["user_engagement"]),
        _non_negative("gold.user_engagement", ["sessions_count", "total_watch_seconds", "avg_completion_pct",
                                               "distinct_content_count"]),
    ],
    "content_performance": [
        _one_row_per("gold.content_performance", "content_id", "silver.content", "one_row_per_content"),
        rows_balanced(STEPS["content_performance"]),
        _non_negative("gold.content_performance", ["views", "unique_viewers", "total_watch_seconds",
                                                   "avg_completion_pct"]),
        all_in_range("gold.content_performance", {"completion_rate": (0, 1)}, "completion_rate_in_0_1"),
    ],
    "daily_viewing": [
        unique("gold.daily_viewing", ["view_date", "device", "country"], "one_row_per_day_device_country",
               scope=latest_changes(STEPS["daily_viewing"])),
        rows_balanced(STEPS["daily_viewing"]),
        _non_negative("gold.daily_viewing", ["sessions", "unique_users", "total_watch_seconds"]),
    ],
    "viewing_fact": [
        unique("gold.viewing_fact", ["session_id"], "one_row_per_session", scope=latest_changes(STEPS["viewing_fact"])),
        rows_balanced(STEPS["viewing_fact"]),
        sql_file_check(
            "totals_reconcile",
            "sum(sessions_count) of user_engagement = sum(views) of content_performance = rows of viewing_fact "
            "= rows of silver.viewing_sessions.",
            "video_analytics/checks/gold_totals_reconcile.sql",
            additional_deps=[GOLD_KEYS["user_engagement"], GOLD_KEYS["content_performance"]],
        ),
    ],
}


# Every asset's checks. Most run in the asset's own step (its check_specs: assets.py); the others, in a step of
# their own after it (build_asset_checks).
CHECKS: dict[dg.AssetKey, list[SqlCheck]] = {
    keys[name]: checks
    for keys, layer in ((BRONZE_KEYS, BRONZE_CHECKS), (SILVER_KEYS, SILVER_CHECKS), (GOLD_KEYS, GOLD_CHECKS))
    for name, checks in layer.items()
}


def build_asset_checks() -> list[dg.AssetChecksDefinition]:
    """The checks that cannot run in their asset's step (``quality.in_step``): one step per asset that has any."""
    return separate_checks(CHECKS)
