"""Checks of incremental tables that cost what the last run changed, not what the table holds.

- ``last_run(step)``: the version of the step's last run, and whether it was a full refresh (CTEs);
- ``latest_changes(step)``: the rows of the step's table whose key its last run changed (every row after a full
  refresh), as CTEs ending in ``_checked``, for a check to look at (``quality.unique(..., scope=...)``); with
  ``through``, also the rows whose foreign key an upstream table changed (a session whose user left);
- ``unread_files(step)``: the landing files the step has not read yet (new, changed), for bronze's checks;
- ``rows_balanced(step)``: the table's row count is what its last run left (``<schema>._runs``), and that run's
  row count moved by exactly its new keys minus its deleted keys. With one row per key checked on the changed keys,
  this catches a row doubled, added or lost anywhere in the table, at the cost of a count.
"""

from __future__ import annotations

from collections.abc import Sequence

from etl_platform.medallion.incremental import MANIFEST, Feed, IncrementalStep, unread_files_sql
from etl_platform.quality import SqlCheck
from etl_platform.warehouse.base import sql_string


def last_run(step: IncrementalStep) -> str:
    """CTEs ``_last`` (the version of the step's last run) and ``_everything`` (``yes`` = 1 when that run was a
    full refresh, or nothing records it: check every row)."""
    return f"""
        _last AS (SELECT max(version) AS version, max(CASE WHEN full_refresh THEN 1 ELSE 0 END) AS full_refresh
                  FROM {step.schema}._runs WHERE table_name = {sql_string(step.table)}),
        _everything AS (
            SELECT CASE WHEN coalesce((SELECT full_refresh FROM _last), 1) = 1
                          OR EXISTS (SELECT 1 FROM {step.feed.log}
                                     WHERE _version = (SELECT version FROM _last) AND _full)
                        THEN 1 ELSE 0 END AS yes)"""


def latest_changes(step: IncrementalStep, columns: str | None = None,
                   through: Sequence[tuple[str, Feed]] = ()) -> str:
    """CTEs ending in ``_checked``: ``columns`` (SQL over the table ``t``; default its key) of the rows whose key
    the step's last run changed, and of the rows whose column ``c`` holds a key that upstream ``feed`` changed, for
    each ``(c, feed)`` of ``through`` (its change log's rows not yet pruned: they hold every change the step's last
    run read). Every row after a full refresh."""
    feed, table = step.feed, step.table
    match = " AND ".join(f"c.{column} IS NOT DISTINCT FROM t.{column}" for column in step.key)
    columns = columns or ", ".join(f"t.{column}" for column in step.key)
    upstream = "".join(f" OR t.{column} IN (SELECT {upstream.columns[0]} FROM {upstream.log} WHERE NOT _full)"
                       for column, upstream in through)
    return f"""{last_run(step)},
        _checked AS (
            SELECT {columns} FROM {table} AS t WHERE (SELECT yes FROM _everything) = 1
            UNION ALL
            SELECT {columns} FROM {table} AS t
            WHERE (SELECT yes FROM _everything) = 0
              AND (EXISTS (SELECT 1 FROM {feed.log} AS c WHERE c._version = (SELECT version FROM _last) AND {match})
                   {upstream}))"""


def unread_files(step: IncrementalStep) -> tuple[str, str, tuple[str, ...]]:
    """A CTE ``_checked_files(source_file, ingested_at)``: the landing files of the step's entity that it has not
    read yet (the files its next run reads, by the same rule). Returns the CTE, the CTE of every file (before the
    step has ever run, when its state table does not exist yet) and the state table it needs. Bronze rows carry
    their file's load time (``_ingested_at``): a check that also compares it with the files' earliest skips the rows
    of older files without reading them."""
    entity = sql_string(step.files_of)
    manifest = f"(SELECT source_file, ingested_at FROM {MANIFEST} WHERE entity = {entity})"
    return (f"_checked_files AS ({unread_files_sql(step, manifest, 'm.source_file, m.ingested_at')})",
            f"_checked_files AS (SELECT source_file, ingested_at FROM {manifest} AS m)",
            (f"{step.schema}._files",))


def rows_balanced(step: IncrementalStep) -> SqlCheck:
    table, runs = step.table, f"{step.schema}._runs"
    return SqlCheck(
        "rows_balanced",
        f"{table} holds the rows its last run left, and that run changed its row count by its new keys minus its "
        "deleted keys (a row doubled, added or lost outside the keys it changed breaks the balance).",
        f"""
        WITH now AS (SELECT count(*) AS n FROM {table}),
        last AS (SELECT * FROM {runs} WHERE table_name = {sql_string(table)})
        SELECT coalesce(abs((SELECT n FROM now) - rows_after)
                        + abs((rows_after - rows_before) - (rows_new - rows_deleted)), 1) AS violations,
               coalesce(format('{table}: {{}} rows now, {{}} after its last run ({{}} run, version {{}}); that run '
                               'went from {{}} to {{}} rows with {{}} new and {{}} deleted keys',
                               (SELECT n FROM now), rows_after,
                               CASE WHEN full_refresh THEN 'full' ELSE 'incremental' END, version,
                               rows_before, rows_after, rows_new, rows_deleted),
                        'no record of a run of {table} in {runs}') AS details
        FROM (SELECT 1 AS one) AS x LEFT JOIN last ON true
        """,
    )
