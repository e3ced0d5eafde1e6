"""Incremental SQL steps: each run processes what changed since the step's last successful run.

A step builds one table (``silver.users``) with SQL files. Before its scripts run, it is given temporary tables
holding what changed upstream since its last run, and its scripts replace only the rows those changes touch:

- ``changed_files(source_file)``: the landing files whose bronze rows were loaded, changed or removed since then,
  found by comparing the bronze manifest (``bronze._ingested_files``: each file's load time) with the files the
  step last read (``silver._files``);
- one table per upstream **feed** (``changed_users(user_id)``): a feed is a table's change log
  (``silver._changes_users``), the key columns of the rows each run of its producer changed, with the run's
  version. The consumer reads the versions after its **watermark** (``<schema>._watermarks``) up to the
  producer's current version (``<schema>._versions``).

The scripts leave ``affected_keys`` (the keys of the rows they replaced, in the table's key columns; a key may be
there more than once, since it is only matched against) and
``before_rows`` (those rows' old images). They match rows against ``affected_keys`` with ``is_affected(<the row's
key columns>)`` (``is_affected(f.session_id)``), which the step writes out before the script runs
(:meth:`IncrementalStep.expand`): a semi-join on ``affected_keys``, or ``true`` in a full refresh, where every key
is affected and the tables start empty (a semi-join of 10M sessions against the 10M-30M keys of a full run cost
more than a third of writing the table). After an incremental run the step compares ``before_rows`` with the rows
now there for ``affected_keys`` (``after_rows``) and keeps
``changes``: the feed columns of the rows that differ, ``image`` 'old' or 'new'.
The step turns that into counts (new, updated, deleted), appends it to its own feed under a new version, records
the run's row counts (``<schema>._runs``, which its checks compare the table with: ``medallion/checks.py``) and
moves its watermarks — in the same transaction as its output, so a run that dies leaves the output and the watermarks
as they were, and the next run does the work again, once.

A **full refresh** drops the step's tables and runs the same scripts with everything as changed: every landing
file, every upstream row (nothing is compared: everything is new, and one ``_full`` row tells the consumers). It happens when asked (``full_refresh``), on a step's first run, when one of its tables
is missing, and when an upstream producer was refreshed in full (it logs one ``_full`` row, not every key). Full
refreshes and incremental runs run the same SQL, so the rules live in one place; the property tests compare the
two (etl_platform_tests/test_incremental.py).

On Spark (no transactions) each statement replaces whole tables; docs/incremental.md says what a crash then means.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from etl_platform.warehouse.base import DeltaMemory, SqlScriptError, Warehouse, WarehouseSession
from etl_platform.warehouse.base import sql_string

MANIFEST = "bronze._ingested_files"
# Temporary tables a step's scripts leave (and the step drops): the old images of the rows the run replaced, the
# keys they touched; and the step's own: the new images of those rows, and what changed.
SCRIPT_TABLES = ("before_rows", "after_rows", "affected_keys", "changes")
STATE_LAYERS = ("silver", "gold")
# ``is_affected(<the row's key columns>)`` in a step's script (outside a ``--`` comment): the arguments are column
# references, so they hold no parentheses.
IS_AFFECTED = re.compile(r"\bis_affected\s*\(([^()]*)\)", re.IGNORECASE)


@dataclass(frozen=True)
class Feed:
    """The change log of ``table``: per run of its producer, the ``columns`` of the rows the run changed. ``key``: the
    table's primary key, when known: a feed that holds it reads the table's rows as they are in a full run (they are
    distinct already; a DISTINCT over 10M sessions cost 1.3 s per consumer)."""

    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...] = ()

    @property
    def rows_are_distinct(self) -> bool:
        return bool(self.key) and set(self.key) <= set(self.columns)

    @property
    def log(self) -> str:
        schema, name = self.table.split(".")
        return f"{schema}._changes_{name}"


@dataclass(frozen=True)
class IncrementalStep:
    """A table built incrementally by SQL files (paths below the SQL folder, run in order)."""

    table: str
    scripts: tuple[str, ...]
    key: tuple[str, ...]  # the table's primary key: the changes are counted by it
    owns: tuple[str, ...]  # every table the scripts keep: a full refresh drops them all
    files_of: str | None = None  # the bronze entity whose landing files the scripts read (changed_files)
    inputs: Mapping[str, Feed] = field(default_factory=dict)  # temporary table name → the feed read into it
    feed_columns: tuple[str, ...] = ()  # the columns of `changes` this step logs for its consumers (none: no feed)
    # For a run over a range of days (a backfill: refresh_policy.days): input temporary table name → a SELECT of
    # the rows to add to it so that the scripts build the days again; ``{days}`` stands for the condition on a
    # DATE expression, e.g. "CAST(timezone('UTC', started_at) AS DATE) {days}".
    by_day: Mapping[str, str] = field(default_factory=dict)
    # The schemas whose ``_watermarks`` hold its consumers' places in its feed: its log is pruned only up to what
    # all of them have read. A declared medallion gives the schemas of all its models.
    state_schemas: tuple[str, ...] = STATE_LAYERS

    @property
    def schema(self) -> str:
        return self.table.split(".")[0]

    @property
    def feed(self) -> Feed:
        """The step's change log: its consumers read it, and its checks read the latest run's keys from it."""
        return Feed(self.table, tuple(dict.fromkeys((*self.key, *self.feed_columns))), self.key)

    def expand(self, text: str, full: bool, where: str) -> str:
        """``text`` (one of the step's scripts, named ``where`` in errors) with each ``is_affected(<columns>)``
        written out: whether the row whose key (the step's key columns, in order) those columns hold is among
        ``affected_keys``, matched as the step matches its rows (``has_key_of``). In a full run, ``true``: every key
        is affected, and the step's tables were dropped, so there is nothing else to match."""
        def written_out(call: re.Match) -> str:
            columns = [column.strip() for column in call.group(1).split(",")]
            if len(columns) != len(self.key) or not all(columns):
                raise SqlScriptError(
                    f"{where}: {' '.join(call.group(0).split())} names {len([c for c in columns if c])} column(s); "
                    f"is_affected takes the row's columns of the key of {self.table}, in order: "
                    f"({', '.join(self.key)})")
            return "true" if full else f"({key_match(columns, self.key, 'affected_keys')})"

        lines = []
        for line in text.splitlines(keepends=True):
            code, dashes, comment = line.partition("--")
            lines.append(IS_AFFECTED.sub(written_out, code) + dashes + comment)
        return "".join(lines)


@dataclass(frozen=True)
class DayRange:
    """The days ``first`` to ``last`` (inclusive): a run over them builds those days again from bronze."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"day range {self.first}...{self.last}: the last day is before the first")

    @property
    def condition(self) -> str:
        return f"BETWEEN CAST('{self.first.isoformat()}' AS DATE) AND CAST('{self.last.isoformat()}' AS DATE)"

    def __str__(self) -> str:
        return self.first.isoformat() if self.first == self.last else f"{self.first}...{self.last}"


@dataclass
class StepRun:
    """What one run of a step did."""

    mode: str  # "incremental" or "full"
    reason: str  # why a full refresh, or what the incremental run read
    new: int = 0
    updated: int = 0
    deleted: int = 0
    files_read: int = 0
    inputs: dict[str, int] = field(default_factory=dict)  # upstream feed → changed keys read
    watermarks: dict[str, int] = field(default_factory=dict)  # upstream feed → version read up to
    version: int | None = None  # the version of this step's change log after this run
    days: DayRange | None = None  # the days this run built again (a backfill), besides what changed

    def metadata(self) -> dict[str, Any]:
        return {
            "incremental/mode": self.mode,
            "incremental/reason": self.reason,
            "incremental/rows_new": self.new,
            "incremental/rows_updated": self.updated,
            "incremental/rows_deleted": self.deleted,
            "incremental/files_read": self.files_read,
            "incremental/upstream_changes": dict(self.inputs),
            "incremental/watermarks": dict(self.watermarks),
            "incremental/version": self.version,
            **({"incremental/days": str(self.days)} if self.days else {}),
        }


class _Run:
    def __init__(self, warehouse: Warehouse, session: WarehouseSession, step: IncrementalStep):
        self.warehouse, self.session, self.step = warehouse, session, step
        self.consumer = sql_string(step.table)

    def sql(self, statement: str):
        return self.session.query(statement, f"the incremental state of {self.step.table}")

    def scalar(self, statement: str):
        row = self.sql(statement).fetchone()
        return row[0] if row else None

    def ensure_state(self) -> None:
        schema = self.step.schema
        if schema not in STATE_LAYERS:  # a declared medallion's own schema (the warehouse makes silver and gold)
            self.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        self.sql(f"CREATE TABLE IF NOT EXISTS {schema}._versions (producer VARCHAR, version BIGINT)")
        self.sql(f"CREATE TABLE IF NOT EXISTS {schema}._watermarks (consumer VARCHAR, upstream VARCHAR, version BIGINT)")
        if self.step.files_of:
            self.sql(f"CREATE TABLE IF NOT EXISTS {schema}._files "
                     "(consumer VARCHAR, source_file VARCHAR, ingested_at TIMESTAMPTZ)")

    def version_of(self, feed: Feed) -> int:
        schema = feed.table.split(".")[0]
        if not self.session.table_exists(f"{schema}._versions"):
            return 0
        return int(self.scalar(f"SELECT coalesce(max(version), 0) FROM {schema}._versions "
                               f"WHERE producer = {sql_string(feed.table)}") or 0)

    def watermark(self, feed: Feed) -> int | None:
        value = self.scalar(f"SELECT max(version) FROM {self.step.schema}._watermarks "
                            f"WHERE consumer = {self.consumer} AND upstream = {sql_string(feed.table)}")
        return None if value is None else int(value)

    def full_reason(self, full_refresh: bool, windows: dict[str, tuple[int | None, int]]) -> str | None:
        if full_refresh:
            return "a full refresh was asked for"
        missing = [table for table in self.step.owns if not self.session.table_exists(table)]
        if missing:
            return f"first run ({', '.join(missing)} did not exist)"
        if not self.scalar(f"SELECT count(*) FROM {self.step.schema}._watermarks WHERE consumer = {self.consumer}"):
            return "no record of an earlier run of this step"
        for name, feed in self.step.inputs.items():
            after, upto = windows[feed.table]
            if after is None:
                return f"no watermark for {feed.table} yet"
            if upto > after and self.session.table_exists(feed.log) and self.scalar(
                    f"SELECT count(*) FROM {feed.log} WHERE _full AND _version > {after} AND _version <= {upto}"):
                return f"{feed.table} was rebuilt in full"
            if upto < after:
                return f"{feed.table} is at version {upto}, behind this step's watermark {after} (rebuilt elsewhere?)"
        return None

    def with_days(self, name: str, select: str, days: DayRange | None) -> str:
        """``select`` (the rows of input ``name``), plus the rows that make the scripts build ``days`` again."""
        if days is None or name not in self.step.by_day:
            return select
        return (f"SELECT * FROM ({select}) AS changed UNION "
                f"SELECT * FROM ({self.step.by_day[name].format(days=days.condition)}) AS by_day")

    def changed_files(self, full: bool, days: DayRange | None = None) -> int:
        entity = sql_string(self.step.files_of)
        schema = self.step.schema
        if self.session.table_exists(MANIFEST):
            self.sql(f"CREATE OR REPLACE TEMP TABLE manifest_now AS SELECT source_file, ingested_at FROM {MANIFEST} "
                     f"WHERE entity = {entity}")
        else:
            self.sql("CREATE OR REPLACE TEMP TABLE manifest_now AS "
                     "SELECT CAST(NULL AS VARCHAR) AS source_file, CAST(NULL AS TIMESTAMPTZ) AS ingested_at LIMIT 0")
        if full:
            self.sql("CREATE OR REPLACE TEMP TABLE changed_files AS SELECT DISTINCT source_file FROM manifest_now")
        else:
            self.sql("CREATE OR REPLACE TEMP TABLE changed_files AS " + self.with_days("changed_files", f"""
                {unread_files_sql(self.step, "manifest_now")}
                UNION
                SELECT f.source_file FROM {schema}._files AS f
                WHERE f.consumer = {self.consumer}
                  AND NOT EXISTS (SELECT 1 FROM manifest_now AS m WHERE m.source_file = f.source_file)""", days))
        return int(self.scalar("SELECT count(*) FROM changed_files"))

    def every_file_changed(self) -> bool:
        """Whether every landing file of the step's entity in bronze now is among ``changed_files`` (new, loaded
        again, or holding a day asked for)."""
        return bool(self.scalar("SELECT count(*) > 0 AND count(*) = count(c.source_file) FROM manifest_now AS m "
                                "LEFT JOIN (SELECT DISTINCT source_file FROM changed_files) AS c "
                                "ON c.source_file = m.source_file"))

    def changed_keys(self, name: str, feed: Feed, window: tuple[int | None, int], full: bool,
                     days: DayRange | None = None) -> int:
        columns = ", ".join(feed.columns)
        if full:  # everything upstream counts as changed
            self.sql(_feed_sql(name, feed))
        elif not self.session.table_exists(feed.log):  # the producer has never logged a change
            self.sql(f"CREATE OR REPLACE TEMP TABLE {name} AS "
                     + self.with_days(name, f"SELECT {columns} FROM {feed.table} LIMIT 0", days))
        else:
            after, upto = window
            self.sql(f"CREATE OR REPLACE TEMP TABLE {name} AS " + self.with_days(
                name, f"SELECT DISTINCT {columns} FROM {feed.log} "
                      f"WHERE NOT _full AND _version > {after} AND _version <= {upto}", days))
        return int(self.scalar(f"SELECT count(*) FROM {name}"))

    def compare(self) -> None:
        """``changes``: the feed columns of the rows the scripts replaced whose old image (``before_rows``) and new
        image (the rows now there for ``affected_keys``) differ, marked 'old' and 'new'."""
        replaced = has_key_of(self.step.key, "t", "affected_keys")
        self.sql(f"CREATE OR REPLACE TEMP TABLE after_rows AS SELECT * FROM {self.step.table} AS t WHERE {replaced}")
        columns = ", ".join(self.step.feed.columns)
        self.sql(f"CREATE OR REPLACE TEMP TABLE changes AS "
                 f"SELECT {columns}, 'old' AS image FROM (SELECT * FROM before_rows EXCEPT SELECT * FROM after_rows) AS o "
                 f"UNION ALL "
                 f"SELECT {columns}, 'new' AS image FROM (SELECT * FROM after_rows EXCEPT SELECT * FROM before_rows) AS n")

    def count_changes(self, full: bool) -> tuple[int, int, int]:
        if full:  # every row is new; nothing was compared
            return int(self.scalar(f"SELECT count(*) FROM {self.step.table}")), 0, 0
        keys = ", ".join(self.step.key)
        row = self.sql(f"""
            SELECT coalesce(sum(CASE WHEN has_new AND NOT has_old THEN 1 ELSE 0 END), 0),
                   coalesce(sum(CASE WHEN has_new AND has_old THEN 1 ELSE 0 END), 0),
                   coalesce(sum(CASE WHEN has_old AND NOT has_new THEN 1 ELSE 0 END), 0)
            FROM (SELECT {keys}, max(CASE WHEN image = 'new' THEN 1 ELSE 0 END) = 1 AS has_new,
                         max(CASE WHEN image = 'old' THEN 1 ELSE 0 END) = 1 AS has_old
                  FROM changes GROUP BY {keys}) AS per_key""").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def publish(self, full: bool) -> tuple[int, bool]:
        """Append this run's changes to the step's feed under a new version; the feed's version now, and whether
        this run logged one (a run that changed nothing logs none)."""
        feed = self.step.feed
        columns = ", ".join(feed.columns)
        self.sql(f"CREATE TABLE IF NOT EXISTS {feed.log} AS SELECT {columns}, CAST(0 AS BIGINT) AS _version, "
                 f"false AS _full FROM {feed.table} LIMIT 0")
        if not full and not self.scalar("SELECT count(*) FROM changes"):
            return self.version_of(feed), False  # nothing changed: consumers have nothing new to read
        version = self.version_of(feed) + 1
        if full:  # one row says "everything": consumers rebuild in full too
            nulls = ", ".join(f"NULL AS {c}" for c in feed.columns)
            self.sql(f"INSERT INTO {feed.log} ({columns}, _version, _full) "
                     f"SELECT {nulls}, CAST({version} AS BIGINT), true")
        else:
            self.sql(f"INSERT INTO {feed.log} ({columns}, _version, _full) "
                     f"SELECT DISTINCT {columns}, CAST({version} AS BIGINT), false FROM changes")
        producer = sql_string(feed.table)
        self.sql(f"DELETE FROM {self.step.schema}._versions WHERE producer = {producer}")
        self.sql(f"INSERT INTO {self.step.schema}._versions (producer, version) "
                 f"SELECT {producer}, CAST({version} AS BIGINT)")
        self.prune(feed)
        return version, True

    def prune(self, feed: Feed) -> None:
        """Forget the log rows every consumer has read (consumers that never ran will start with a full refresh)."""
        tables = [f"{schema}._watermarks" for schema in self.step.state_schemas
                  if self.session.table_exists(f"{schema}._watermarks")]
        union = " UNION ALL ".join(f"SELECT version FROM {t} WHERE upstream = {sql_string(feed.table)}" for t in tables)
        read_by_all = self.scalar(f"SELECT min(version) FROM ({union}) AS w") if tables else None
        latest = self.version_of(feed)
        # Without consumers only the latest run's rows are kept (its checks read them).
        forget_upto = latest - 1 if read_by_all is None else min(int(read_by_all), latest - 1)
        if forget_upto > 0:
            self.sql(f"DELETE FROM {feed.log} WHERE _version <= {forget_upto}")

    def rows(self) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {self.step.table}")) \
            if self.session.table_exists(self.step.table) else 0

    def record_run(self, full: bool, version: int | None, rows_before: int, run: "StepRun") -> None:
        """The step's last run in ``<schema>._runs``: its checks compare the table with these totals, and look at the
        keys logged under ``version``: NULL when the run logged nothing (it changed nothing: nothing to look at; an
        earlier run's version there made a run without changes check again what that run changed — every row, after
        a full refresh)."""
        schema, table = self.step.schema, sql_string(self.step.table)
        self.sql(f"CREATE TABLE IF NOT EXISTS {schema}._runs (table_name VARCHAR, version BIGINT, "
                 "full_refresh BOOLEAN, rows_before BIGINT, rows_after BIGINT, rows_new BIGINT, rows_deleted BIGINT)")
        self.sql(f"DELETE FROM {schema}._runs WHERE table_name = {table}")
        logged = "NULL" if version is None else str(version)
        self.sql(f"INSERT INTO {schema}._runs SELECT {table}, CAST({logged} AS BIGINT), {str(full).lower()}, "
                 f"CAST({rows_before} AS BIGINT), CAST({self.rows()} AS BIGINT), CAST({run.new} AS BIGINT), "
                 f"CAST({run.deleted} AS BIGINT)")

    def record_reads(self, windows: dict[str, tuple[int | None, int]]) -> None:
        schema = self.step.schema
        self.sql(f"DELETE FROM {schema}._watermarks WHERE consumer = {self.consumer}")
        for feed in self.step.inputs.values():
            self.sql(f"INSERT INTO {schema}._watermarks (consumer, upstream, version) "
                     f"SELECT {self.consumer}, {sql_string(feed.table)}, CAST({windows[feed.table][1]} AS BIGINT)")
        if not self.step.inputs:  # the watermark row says "this step has run" for steps that read only files
            self.sql(f"INSERT INTO {schema}._watermarks (consumer, upstream, version) "
                     f"SELECT {self.consumer}, {sql_string(MANIFEST)}, CAST(0 AS BIGINT)")
        if self.step.files_of:
            self.sql(f"DELETE FROM {schema}._files WHERE consumer = {self.consumer}")
            self.sql(f"INSERT INTO {schema}._files (consumer, source_file, ingested_at) "
                     f"SELECT {self.consumer}, source_file, ingested_at FROM manifest_now")

    def drop_temporary(self) -> None:
        for name in (*SCRIPT_TABLES, *self.step.inputs, *(("changed_files", "manifest_now") if self.step.files_of else ())):
            self.sql(f"DROP TABLE IF EXISTS {name}")


def has_key_of(key: Sequence[str], alias: str, relation: str) -> str:
    """A condition: the row ``alias`` has the ``key`` (columns) of a row of ``relation`` (a table, or a subquery in
    parentheses)."""
    return key_match([f"{alias}.{column}" for column in key], key, relation)


def key_match(columns: Sequence[str], key: Sequence[str], relation: str) -> str:
    """A condition: ``columns`` (expressions of the row, in the order of ``key``) are the ``key`` of a row of
    ``relation``. A one-column key is an IN, which every engine hashes; a composite key may hold NULLs
    (gold.daily_viewing's country), and NULL matches NULL."""
    if len(key) == 1:
        return f"{columns[0]} IN (SELECT affected_key.{key[0]} FROM {relation} AS affected_key)"
    return (f"EXISTS (SELECT 1 FROM {relation} AS affected_key WHERE "
            + " AND ".join(f"affected_key.{k} IS NOT DISTINCT FROM {c}" for k, c in zip(key, columns)) + ")")


def unread_files_sql(step: IncrementalStep, manifest: str, columns: str = "m.source_file") -> str:
    """The files of ``manifest`` (a relation of the step's entity's ``source_file, ingested_at``) the step has not
    read as they are now: new files, and files loaded again since."""
    return f"""SELECT {columns} FROM {manifest} AS m
                WHERE NOT EXISTS (SELECT 1 FROM {step.schema}._files AS f WHERE f.consumer = {sql_string(step.table)}
                                  AND f.source_file = m.source_file AND f.ingested_at = m.ingested_at)"""


def full_inputs_sql(step: IncrementalStep) -> list[str]:
    """The statements that give ``step``'s scripts their inputs for a full refresh: every landing file of its entity,
    every row upstream (changed_files first, when the step reads files)."""
    statements = []
    if step.files_of:
        statements.append(f"CREATE OR REPLACE TEMP TABLE changed_files AS SELECT DISTINCT source_file FROM {MANIFEST} "
                          f"WHERE entity = {sql_string(step.files_of)}")
    return statements + [_feed_sql(name, feed) for name, feed in step.inputs.items()]


def _feed_sql(name: str, feed: Feed) -> str:
    distinct = "" if feed.rows_are_distinct else "DISTINCT "
    return f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {distinct}{', '.join(feed.columns)} FROM {feed.table}"


def run_step(warehouse: Warehouse, session: WarehouseSession, step: IncrementalStep, full_refresh: bool = False,
             log: Callable[[str], None] | None = None, days: DayRange | None = None) -> StepRun:
    """Run ``step``'s scripts on what changed since its last run (or everything), in one transaction. ``days``: also
    build those days again from bronze (a backfill of those days; a full refresh builds every day anyway).

    An incremental run works within the engine's delta memory (``Warehouse.delta_memory``: on DuckDB its scans of
    history then stream through a small buffer pool, so a daily run's memory does not grow with history); a delta
    that needs more is rolled back and run again, once, with the engine's full memory."""
    if not full_refresh:
        with warehouse.delta_memory(session) as memory:
            try:
                return _run_step(warehouse, session, step, False, log, days, memory)
            except Exception as error:
                bound = memory.limit  # None when lifted: a full rebuild ran out of the engine's whole memory
                if bound is None or not warehouse.out_of_memory(error):
                    raise
        if log:
            log(f"{step.table}: the incremental run needed more than {bound} of memory (the delta memory limit); "
                "rolled back and run again with the warehouse's memory limit")
    return _run_step(warehouse, session, step, full_refresh, log, days, DeltaMemory())


def _run_step(warehouse: Warehouse, session: WarehouseSession, step: IncrementalStep, full_refresh: bool,
              log: Callable[[str], None] | None, days: DayRange | None, memory: DeltaMemory) -> StepRun:
    run = _Run(warehouse, session, step)
    with session.transaction():
        run.ensure_state()
        windows = {feed.table: (run.watermark(feed), run.version_of(feed)) for feed in step.inputs.values()}
        reason = run.full_reason(full_refresh, windows)
        days = None if reason or not step.by_day else days  # a full run builds every day; some steps have none
        files_read = run.changed_files(reason is not None, days) if step.files_of else 0
        if reason is None and files_read and run.every_file_changed():
            # Every landing file is to be read again (bronze reloaded them all, or the days asked for are in every
            # file): a full rebuild gives the same result for less work and memory than comparing every row.
            reason, days = "every landing file is to be read again (a full rebuild costs less)", None
            files_read = run.changed_files(True)
        full = reason is not None
        if full:
            memory.lift()  # a full rebuild gets the engine's whole memory
            for table in step.owns:
                run.sql(f"DROP TABLE IF EXISTS {table}")
        rows_before = run.rows()
        result = StepRun("full" if full else "incremental",
                         reason or ("what changed since the last run" if days is None else
                                    f"the days {days} again, and what changed since the last run"),
                         files_read=files_read, days=days)
        for name, feed in step.inputs.items():
            result.inputs[feed.table] = run.changed_keys(name, feed, windows[feed.table], full, days)
            result.watermarks[feed.table] = windows[feed.table][1]
        if log:
            upstream = ", ".join(f"{n:,} changed in {t}" for t, n in result.inputs.items())
            files = f"{result.files_read:,} landing file(s) to read" if step.files_of else ""
            log(f"{step.table}: {result.mode} run ({result.reason}); " + "; ".join(x for x in (files, upstream) if x))
        for script in step.scripts:
            warehouse.run_script(session, script, own_transaction=False,
                                 expand=lambda text, where=script: step.expand(text, full, where))
        if not full:
            run.compare()
        result.new, result.updated, result.deleted = run.count_changes(full)
        result.version, logged = run.publish(full)
        run.record_run(full, result.version if logged else None, rows_before, result)
        run.record_reads(windows)
        run.drop_temporary()
    return result
