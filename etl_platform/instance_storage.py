"""The embedded Dagster instance's event log: Dagster's SQLite event log with its database engines kept open.

Dagster's ``SqliteEventLogStorage`` creates a SQLAlchemy engine, opens a SQLite connection and disposes of
both for every event it writes or reads (and compiles each statement anew, since SQLAlchemy's statement
cache lives in the engine). A run of the reference pipeline writes ~210 events (an asset event twice: in the
run's database and in the index), so that is ~1 s of a 1M-session run on these machines. This class keeps
one engine per database file for the life of the process (the index and the most recent run databases,
least recently used closed first) and is otherwise Dagster's: the same files, schema, migrations, WAL
journal, busy timeout and lock, so an instance written by one works with the other.

``dagster.yaml`` selects it as the instance's ``event_log_storage`` (runs and schedules stay Dagster's
SQLite storages in the same folders as ``storage: sqlite:`` uses).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator

from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

#: Engines kept open at once: the index and the run databases a process touched last (a run writes to its
#: own and the index; the webserver reads many runs, and must not hold a file handle for each).
OPEN_ENGINES = 8


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` that reuses one engine (one pooled connection) per SQLite file."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._engines_lock = threading.Lock()
        self._tables_present: set[str] = set()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # Dagster's returns its own class, not cls
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            if self._engines_pid != os.getpid():
                # A forked child must not share the parent's SQLite connections; they stay the parent's.
                for engine in self._engines.values():
                    engine.dispose(close=False)
                self._engines.clear()
                self._engines_pid = os.getpid()
            engine = self._engines.get(shard)
            if engine is not None:
                self._engines.move_to_end(shard)
                return engine
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool, pool_size=1, max_overflow=4,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            event.listen(engine, "connect", _wal_synchronous_normal)
            self._engines[shard] = engine
            while len(self._engines) > OPEN_ENGINES:
                _, oldest = self._engines.popitem(last=False)
                oldest.dispose()
            return engine

    @contextlib.contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        """Dagster asks this (with a new engine each time) before every asset-check event; a table once present
        stays (migrations add tables, nothing here drops one), so a yes is remembered."""
        if table_name in self._tables_present:
            return True
        # Not through _connect: Dagster asks while it holds the storage's lock (inside an index transaction).
        with self._engine(INDEX_SHARD_NAME).connect() as conn:
            present = bool(conn.dialect.has_table(conn, table_name))
        if present:
            self._tables_present.add(table_name)
        return present

    def close_engines(self, keep_index: bool = False) -> None:
        """Close the open database files (all of them, or all but the index)."""
        with self._engines_lock:
            for shard in list(self._engines):
                if keep_index and shard == INDEX_SHARD_NAME:
                    continue
                self._engines.pop(shard).dispose()

    def wipe(self) -> None:
        self.close_engines(keep_index=True)  # the run databases are deleted: no connection may keep them
        super().wipe()

    def delete_events(self, run_id: str) -> None:
        """Dagster deletes a run's events but leaves its database file (~700 KiB for a pipeline run): the file, its
        WAL and shared-memory files go too, after this process's connection to it is closed."""
        super().delete_events(run_id)
        with self._db_lock:
            with self._engines_lock:
                engine = self._engines.pop(run_id, None)
            if engine is not None:
                engine.dispose()
            self._initialized_dbs.discard(run_id)
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.path_for_shard(run_id) + suffix)

    def dispose(self) -> None:
        self.close_engines()
        super().dispose()


def _wal_synchronous_normal(dbapi_connection, _record) -> None:
    """Dagster creates these databases in WAL mode; with ``synchronous=NORMAL`` (SQLite's advice for WAL) a commit
    no longer waits for the disk: the file cannot be corrupted, but a power cut may lose the last events written."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
