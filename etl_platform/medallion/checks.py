"""Checks of incremental tables that cost what the last run changed, not what the table holds.

- ``last_run(step)``: the version of the step's last run, and whether it was a full refresh (CTEs);
- ``changed_rows(step, table, ...)``: the rows of a table whose key the step's last run changed (every row after a
  full refresh); with ``through``, also the rows whose foreign key an upstream table changed (a session whose user
  left); ``latest_changes(step)``: those of the step's table, as CTEs ending in ``_checked``, for a check to look at
  (``quality.unique(..., scope=...)``);
- ``unread_files(step)``: the landing files the step has not read yet (new, changed), for bronze's checks;
- ``rows_balanced(step)``: the table's row count is what its last run left (``<schema>._runs``), and that run's
  row count moved by exactly its new keys minus its deleted keys. With one row per key checked on the changed keys,
  this catches a row doubled, added or lost anywhere in the table, at the cost of a count.
"""

from __future__ import annotations

from collections.abc import Sequence

from etl_platform.medallion.incremental import MANIFEST, Feed, IncrementalStep, has_key_of, unread_files_sql
from etl_platform.quality import SqlCheck
from etl_platform.warehouse.base import sql_string


def last_run(step: IncrementalStep) -> str:
    """CTEs ``_last`` (the version the step's last run logged: NULL when it changed nothing, so nothing is looked
    at) and ``_everything`` (``yes`` = 1 when that run was a full refresh, or nothing records it: check every row)."""
    return f"""
        _last AS (SELECT max(version) AS version, max(CASE WHEN full_refresh THEN 1 ELSE 0 END) AS full_refresh
                  FROM {step.schema}._runs WHERE table_name = {sql_string(step.table)}),
        _everything AS (
            SELECT CASE WHEN coalesce((SELECT full_refresh FROM _last), 1) = 1
                          OR EXISTS (SELECT 1 FROM {step.feed.log}
                                     WHERE _version = (SELECT version FROM _last) AND _full)
                        THEN 1 ELSE 0 END AS yes)"""


def changed_rows(step: IncrementalStep, table: str, columns: str, where: str = "true",
                 through: Sequence[tuple[str, Feed]] = ()) -> str:
    """A SELECT of ``columns`` (SQL over ``table`` as ``t``) of the rows for which ``where`` holds and whose key
    the step's last run changed — or whose column ``c`` holds a key that upstream ``feed`` changed, for each
    ``(c, feed)`` of ``through`` (its change log's rows not yet pruned: they hold every change the step's last run
    read); every such row after a full refresh. It reads the CTEs of ``last_run(step)``."""
    latest = f"(SELECT * FROM {step.feed.log} WHERE _version = (SELECT version FROM _last))"
    upstream = "".join(f" OR t.{column} IN (SELECT {upstream.columns[0]} FROM {upstream.log} WHERE NOT _full)"
                       for column, upstream in through)
    return f"""
            SELECT {columns} FROM {table} AS t WHERE ({where}) AND (SELECT yes FROM _everything) = 1
            UNION ALL
            SELECT {columns} FROM {table} AS t
            WHERE ({where}) AND (SELECT yes FROM _everything) = 0
              AND ({has_key_of(step.key, "t", latest)}{upstream})"""


def latest_changes(step: IncrementalStep, columns: str | None = None,
                   through: Sequence[tuple[str, Feed]] = ()) -> str:
    """CTEs ending in ``_checked``: ``changed_rows`` of the step's table, ``columns`` defaulting to its key."""
    columns = columns or ", ".join(f"t.{column}" for column in step.key)
    return f"""{last_run(step)},
        _checked AS ({changed_rows(step, step.table, columns, through=through)})"""


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
                               CASE WHEN full_refresh THEN 'full' ELSE 'incremental' END,
                               coalesce(CAST(version AS VARCHAR), 'none: it changed nothing'),
                               rows_before, rows_after, rows_new, rows_deleted),
                        'no record of a run of {table} in {runs}') AS details
        FROM (SELECT 1 AS one) AS x LEFT JOIN last ON true
        """,
    )
