"""The embedded warehouse: one DuckDB file, schemas per layer, SQL files executed as scripts."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
from pydantic import Field, PrivateAttr

from etl_platform import settings
from etl_platform.warehouse.arrow import arrow_reader
from etl_platform.warehouse.base import (LAYERS, MACROS_FILE, DeltaMemory, EngineSettingError, SqlScriptError,
                                         Warehouse, WarehouseSession)


class WarehouseLockedError(RuntimeError):
    """Another process holds the DuckDB file's write lock for longer than we were willing to wait."""


class WarehouseSpaceError(RuntimeError):
    """The warehouse ran out of disk (or of the temp space it may spill to); the message says where and how much."""


class DuckDBSession(WarehouseSession):
    """A DuckDB connection on the warehouse interface; anything else DuckDB offers (``sql``, ``register``, ...)
    is reached through it unchanged, so DuckDB-only code (the bronze loader's fast path) keeps its speed."""

    engine = "duckdb"

    def __init__(self, conn: duckdb.DuckDBPyConnection):
        self.raw = conn

    def __getattr__(self, name: str):
        return getattr(self.raw, name)

    def execute(self, sql: str, params=None):
        return self.raw.execute(sql, params) if params is not None else self.raw.execute(sql)

    def query(self, sql: str, where: str = "a query"):
        return self.raw.execute(sql)  # the shared dialect is DuckDB's

    def append_arrow(self, table: str, data: pa.Table | pa.RecordBatchReader) -> int:
        self.raw.register("_warehouse_append", data)
        try:
            before = self.raw.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            self.raw.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _warehouse_append")
            return self.raw.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] - before
        finally:
            self.raw.unregister("_warehouse_append")

    def arrow_reader(self, sql: str, batch_rows: int = 100_000) -> pa.RecordBatchReader:
        return arrow_reader(self.raw.sql(sql), batch_rows)


def session_of(conn: duckdb.DuckDBPyConnection | WarehouseSession) -> WarehouseSession:
    """The warehouse session of ``conn``: a bare DuckDB connection is wrapped in one, a session is itself."""
    return DuckDBSession(conn) if isinstance(conn, duckdb.DuckDBPyConnection) else conn


def staging_connection(session: WarehouseSession) -> duckdb.DuckDBPyConnection:
    """The DuckDB where files and source batches are read and staged for ``session``, so the reading rules are
    DuckDB's on every engine: on the DuckDB warehouse its own connection; on another engine a private in-memory
    DuckDB (spilling to $ETL_PLATFORM_HOME/tmp/staging), which the caller closes."""
    if session.engine == "duckdb":
        return session.raw
    temp = settings.platform_home() / "tmp" / "staging"
    temp.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(config={"temp_directory": str(temp), "memory_limit": "1GB"})
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def machine_memory_limit(total_bytes: int | None = None) -> str:
    """The default DuckDB ``memory_limit``: half the memory this process may use — the machine's, or its cgroup's
    limit when lower (a container) — and at least 1GB. Half, not DuckDB's own 80 %: Dagster, Python and the Arrow
    batches in flight share the machine. A fixed 1GB cost speed on machines that have memory (issue 21)."""
    total = total_bytes if total_bytes is not None else _memory_available()
    limit_mb = max(1024, total // 2 // (1 << 20))
    return f"{limit_mb // 1024}GB" if limit_mb % 1024 == 0 else f"{limit_mb}MB"


def _memory_available() -> int:
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return min(physical, int(text))
    return physical


# What the buffer pool is lowered to between a run's steps (DuckDBWarehouse._release_cache).
RELEASED_CACHE = "64MB"
# The memory_limit an incremental step works on its delta with (DuckDBWarehouse.delta_memory_limit).
DELTA_MEMORY_LIMIT = "256MB"


class DuckDBWarehouse(Warehouse):
    """A DuckDB database file used as the warehouse (the default engine: embedded, no server).

    DuckDB spills to ``temp_directory`` when a query needs more than ``memory_limit``, so inputs
    larger than memory are transformed without the process growing with them.
    """

    path: str | None = Field(
        default=None,
        description="DuckDB file. Default: $ETL_PLATFORM_WAREHOUSE, else $ETL_PLATFORM_HOME/warehouse.duckdb.",
    )
    engine = "duckdb"

    memory_limit: str | None = Field(
        default=None,
        description="DuckDB memory_limit; beyond it DuckDB spills to disk. Default: $ETL_DUCKDB_MEMORY_LIMIT, else "
                    "half the memory this process may use (the machine's, or its container's limit), at least 1GB.",
    )
    delta_memory_limit: str | None = Field(
        default=None,
        description="DuckDB memory_limit while an incremental step works on what changed (a daily run): its scans "
                    "of history then stream through this much memory instead of filling the buffer pool, so a "
                    "daily run's memory does not grow with history. A step that needs more is run again with "
                    "memory_limit. Default: $ETL_DUCKDB_DELTA_MEMORY_LIMIT, else 256MB; 'none': no bound.",
    )
    threads: int | None = Field(default=None, description="DuckDB worker threads; default: one per core.")
    temp_directory: str | None = Field(
        default=None, description="Where DuckDB spills. Default: $ETL_PLATFORM_HOME/tmp/duckdb."
    )
    max_temp_size: str | None = Field(
        default=None, description="DuckDB max_temp_directory_size: how much it may spill. Default: 90% of the free disk."
    )
    lock_timeout_seconds: float = Field(
        default=60.0, description="How long to wait for another process's write lock on the file."
    )

    # During a run the database is opened once (at the first connect) and each step's connection is a cursor on
    # it: no re-open and no checkpoint per step. The file stays locked until the run ends (teardown).
    _run_scoped: bool = PrivateAttr(default=False)
    _database: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)
    # Cursors of the run's database that a finished step gave back, with the session settings and macros already
    # made (~6 ms a connection: 22 steps and checks of the reference pipeline each connect).
    _idle: list = PrivateAttr(default_factory=list)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_scoped = True

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._run_scoped = False
        self._close_database()

    def _close_database(self) -> None:
        database, self._database = self._database, None
        idle, self._idle = self._idle, []
        for cursor in idle:
            cursor.close()
        if database is not None:
            database.close()

    @property
    def database_path(self) -> Path:
        return Path(self.path) if self.path else settings.warehouse_path()

    @property
    def effective_memory_limit(self) -> str:
        return self.memory_limit or os.environ.get("ETL_DUCKDB_MEMORY_LIMIT") or machine_memory_limit()

    @contextmanager
    def connect(self) -> Iterator[DuckDBSession]:
        """A connection with the platform's settings; closed (and the file lock released) on exit."""
        database = self.database_path
        database.parent.mkdir(parents=True, exist_ok=True)
        temp_dir = Path(self.temp_directory) if self.temp_directory else settings.platform_home() / "tmp" / "duckdb"
        temp_dir.mkdir(parents=True, exist_ok=True)
        config = {"memory_limit": self.effective_memory_limit, "temp_directory": str(temp_dir)}
        if self.threads:
            config["threads"] = self.threads
        if self.max_temp_size:
            config["max_temp_directory_size"] = self.max_temp_size
        if self._run_scoped:
            conn, prepared = self._run_connection(database, config)
        else:
            conn, prepared = self._open(database, config), False
        reusable = False
        try:
            if not prepared:
                conn.execute("SET TimeZone = 'UTC'")
                conn.execute("; ".join(f"CREATE SCHEMA IF NOT EXISTS {layer}" for layer in LAYERS))
                conn.execute(self.macros_text(MACROS_FILE))
            yield DuckDBSession(conn)
            reusable = self._run_scoped
        except Exception as error:
            # One place turns "disk full" and "spill space exhausted", wherever they happen, into words to act on.
            explained = self._explain_space(error, database, temp_dir)
            if explained is None:
                raise
            raise explained from error
        finally:
            if not (reusable and self._give_back(conn)):
                conn.close()

    def _run_connection(self, database: Path, config: dict) -> tuple[duckdb.DuckDBPyConnection, bool]:
        """A connection to the run's open database and whether it is prepared (settings and macros made): a cursor
        an earlier step gave back, else a new one; the database is opened now if this is the run's first connect
        (or if a fatal error such as a full disk invalidated it: DuckDB then refuses every statement until
        re-opened)."""
        if self._database is not None:
            try:
                conn, prepared = (self._idle.pop(), True) if self._idle else (self._database.cursor(), False)
                conn.execute("SELECT 1").fetchall()  # read to the end: no relation runs while a result is unread
                return conn, prepared
            except duckdb.Error:
                self._close_database()
        self._database = self._open(database, config)
        return self._database.cursor(), False

    def _give_back(self, conn: duckdb.DuckDBPyConnection) -> bool:
        """Keep a step's cursor for the next step, unless it is still inside a transaction (a step that did not
        finish its own: it is closed, which rolls the transaction back) or the database was closed meanwhile."""
        if self._database is None:
            return False
        try:
            conn.execute("BEGIN TRANSACTION").fetchall()  # fails inside a transaction
            conn.execute("ROLLBACK").fetchall()
        except duckdb.Error:
            return False
        self._release_cache(conn)
        self._idle.append(conn)
        return True

    def _release_cache(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Let go of the pages the step read: DuckDB keeps what it has read in its buffer pool until
        ``memory_limit``, so over a run's steps the process grew with every table read (a 10M-session daily run
        peaked at 1.3 GB, 0.9 GB with this; docs/incremental.md). Lowering the limit evicts them (the file and
        the operating system's cache still hold them); memory a temporary table pins stays. The next step reads
        again what it needs.

        First the step's changes are checkpointed into the file: until then DuckDB holds the rows a step
        deleted and inserted in memory it cannot evict (after silver.viewing_sessions' daily run on 10M sessions,
        ~60 MB), which the next steps' delta memory bound then lacked (gold.viewing_fact failed on a 128MB bound
        and ran again). A checkpoint of a daily step's changes takes milliseconds; one that cannot run now
        (another connection is inside a transaction) is left to DuckDB's own."""
        try:
            conn.execute("CHECKPOINT")
        except duckdb.Error:
            pass
        try:
            conn.execute(f"SET memory_limit = '{RELEASED_CACHE}'")
        except duckdb.OutOfMemoryException:
            pass  # more is pinned than that: it was evicted down to what is pinned
        self._set_full_memory_limit(conn)

    def _set_full_memory_limit(self, conn: duckdb.DuckDBPyConnection) -> None:
        conn.execute(f"SET memory_limit = '{self.effective_memory_limit}'")

    @property
    def effective_delta_memory_limit(self) -> str | None:
        value = self.delta_memory_limit or os.environ.get("ETL_DUCKDB_DELTA_MEMORY_LIMIT") or DELTA_MEMORY_LIMIT
        return None if value.strip().lower() in ("none", "off", "") else value

    @contextmanager
    def delta_memory(self, session: WarehouseSession) -> Iterator[DeltaMemory]:
        """``memory_limit`` lowered to ``delta_memory_limit`` for an incremental step (not below what is pinned:
        then no bound), and set back on exit, which also lets go of the pages the step read."""
        conn, bound = session.raw, self.effective_delta_memory_limit
        bound_bytes, full_bytes = memory_bytes(bound or ""), memory_bytes(self.effective_memory_limit)
        if bound is not None and (bound_bytes is None or full_bytes is None or bound_bytes < full_bytes):
            try:
                conn.execute(f"SET memory_limit = '{bound}'")
            except duckdb.OutOfMemoryException:
                bound = None  # more than that is pinned already: the step keeps the full limit
            except duckdb.Error as error:
                where = ("the warehouse resource's delta_memory_limit" if self.delta_memory_limit
                         else "$ETL_DUCKDB_DELTA_MEMORY_LIMIT")
                raise EngineSettingError(
                    f"{where} = {bound!r} is not a memory size DuckDB reads (e.g. 256MB, 1GB; 'none' for no bound): "
                    f"{str(error).splitlines()[0]}") from error
        else:
            bound = None
        try:
            yield DeltaMemory(bound, lambda: self._set_full_memory_limit(conn))
        finally:
            if bound is not None:
                self._set_full_memory_limit(conn)

    def out_of_memory(self, error: BaseException) -> bool:
        seen: BaseException | None = error
        while seen is not None:
            if isinstance(seen, duckdb.OutOfMemoryException):
                return True
            seen = seen.__cause__ or seen.__context__
        return False

    def reclaim_space(self, compact: bool = False) -> dict:
        """CHECKPOINT the file; its free blocks (left by replaced tables) are reused by later writes, so the file
        stops growing at about its working size, but only a rewrite makes it smaller. ``compact=True`` rewrites
        it (``COPY FROM DATABASE`` into a new file, swapped in with one rename) when free blocks are at least
        ``COMPACT_FREE_SHARE`` of it. Rewrite only while no other process uses the warehouse (no run in progress,
        schedules and sensors paused): a process that opened the file between this one closing it and the rename
        would write into the file being replaced. A rewrite cut short leaves the old file untouched and a
        ``.compact-<pid>`` file the next call removes."""
        database = self.database_path
        if not database.exists():
            return {"engine": "duckdb", "done": f"nothing: no warehouse file at {database} yet"}
        self._close_database()  # this run's own handle: the file must be closed to be rewritten
        for stale in database.parent.glob(f"{database.name}.compact-*"):
            stale.unlink(missing_ok=True)
        before = database.stat().st_size
        conn = self._open(database, {"memory_limit": self.effective_memory_limit})
        target = database.with_name(f"{database.name}.compact-{os.getpid()}")
        try:
            conn.execute("CHECKPOINT")
            name, block_size, total, free = conn.execute(
                "SELECT database_name, block_size, total_blocks, free_blocks FROM pragma_database_size() "
                "WHERE database_name = current_database()").fetchone()
            free_share = free / total if total else 0.0
            rewrite = compact and free_share >= COMPACT_FREE_SHARE
            if rewrite:
                conn.execute(f"ATTACH '{_sql_text(target)}' AS etl_compacted")
                conn.execute(f'COPY FROM DATABASE "{name}" TO etl_compacted')
                conn.execute("DETACH etl_compacted")
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        finally:
            conn.close()
        if rewrite:
            os.replace(target, database)
        after = database.stat().st_size
        done = (f"rewritten: {_size(before)} -> {_size(after)}" if rewrite else
                f"checkpointed: {_size(after)}, {free_share:.0%} free blocks (reused by later writes)"
                + ("; `etl-platform compact-warehouse` rewrites it smaller while nothing else runs"
                   if free_share >= COMPACT_FREE_SHARE else ""))
        return {"engine": "duckdb", "done": done, "bytes_before": before, "bytes_after": after,
                "free_share": round(free_share, 4), "reclaimable_bytes": int(free * block_size) if not rewrite else 0}

    def _explain_space(self, error: Exception, database: Path, temp_dir: Path) -> WarehouseSpaceError | None:
        text = str(error)
        if "No space left on device" in text or "Disk is full" in text:
            usage = shutil.disk_usage(database.parent)
            size = database.stat().st_size if database.exists() else 0
            return WarehouseSpaceError(
                f"The disk holding the warehouse {database} is full: {_size(usage.free)} free of {_size(usage.total)}. "
                f"The file is {_size(size)}, and rebuilding a layer can need as much again beside it (DuckDB keeps the "
                f"old tables until the new ones are committed), plus spill space in {temp_dir}. Free space there or "
                "point ETL_PLATFORM_WAREHOUSE / ETL_PLATFORM_HOME to a larger disk. The tables of the last successful "
                f"run are intact. (DuckDB: {text.splitlines()[0][:300]})"
            )
        cause = error if isinstance(error, duckdb.Error) else error.__cause__
        if isinstance(cause, duckdb.OutOfMemoryException):
            usage = shutil.disk_usage(temp_dir)
            return WarehouseSpaceError(
                f"DuckDB ran out of memory: it needed more than memory_limit={self.effective_memory_limit} and could not spill "
                f"the rest to {temp_dir} ({_size(usage.free)} free on that disk; max_temp_size="
                f"{self.max_temp_size or 'most of that disk'}). "
                "Raise ETL_DUCKDB_MEMORY_LIMIT or free space there. The tables of the last successful run are "
                f"intact. (DuckDB: {text.splitlines()[0][:300]})"
            )
        return None

    def _open(self, database: Path, config: dict) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout_seconds
        while True:
            try:
                return duckdb.connect(str(database), config=config)
            except duckdb.IOException as error:
                if "lock" not in str(error).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseLockedError(
                        f"The warehouse file {database} is locked by another process (waited "
                        f"{self.lock_timeout_seconds:.0f} s). DuckDB allows one writing process: "
                        "wait for the other run to finish, or close the program holding the file."
                    ) from error
                time.sleep(0.5)

    def run_sql(self, conn: DuckDBSession, script: str, name: str, own_transaction: bool = True,
                engine_dialect: bool = False) -> None:
        if not own_transaction:
            try:
                conn.execute(script)
            except duckdb.Error as error:
                raise SqlScriptError(f"{name} failed on duckdb: {error}") from error
            return
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(script)
            conn.execute("COMMIT")
        except Exception as error:
            try:
                conn.execute("ROLLBACK")
            except duckdb.Error:
                pass  # a failed COMMIT has already ended the transaction
            raise SqlScriptError(f"{name} failed on duckdb: {error}") from error


COMPACT_FREE_SHARE = 0.3  # a rewrite is worth it when this share of the file is free blocks


_UNITS = {"": 1, "b": 1, "bytes": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def memory_bytes(size: str) -> int | None:
    """A DuckDB memory size (``'256MB'``, ``'2 GiB'``) in bytes as DuckDB reads it; None for a form this does not
    know (DuckDB itself then judges it when it is set)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", size)
    if not match or match.group(2).lower() not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024
    return str(count)
