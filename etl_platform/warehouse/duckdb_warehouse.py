"""The embedded warehouse: one DuckDB file, schemas per layer, SQL files executed as scripts."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from etl_platform import settings


MACROS_FILE = "macros.sql"


class WarehouseLockedError(RuntimeError):
    """Another process holds the DuckDB file's write lock for longer than we were willing to wait."""


class WarehouseSpaceError(RuntimeError):
    """The warehouse ran out of disk (or of the temp space it may spill to); the message says where and how much."""


class DuckDBWarehouse(dg.ConfigurableResource):
    """A DuckDB database file used as the warehouse.

    DuckDB spills to ``temp_directory`` when a query needs more than ``memory_limit``, so inputs
    larger than memory are transformed without the process growing with them.
    """

    path: str | None = Field(
        default=None,
        description="DuckDB file. Default: $ETL_PLATFORM_WAREHOUSE, else $ETL_PLATFORM_HOME/warehouse.duckdb.",
    )
    memory_limit: str = Field(default="1GB", description="DuckDB memory_limit; beyond it DuckDB spills to disk.")
    threads: int | None = Field(default=None, description="DuckDB worker threads; default: one per core.")
    temp_directory: str | None = Field(
        default=None, description="Where DuckDB spills. Default: $ETL_PLATFORM_HOME/tmp/duckdb."
    )
    max_temp_size: str | None = Field(
        default=None, description="DuckDB max_temp_directory_size: how much it may spill. Default: 90% of the free disk."
    )
    sql_dir: str | None = Field(
        default=None, description="Folder holding the SQL files. Default: the project's sql/ folder."
    )
    lock_timeout_seconds: float = Field(
        default=60.0, description="How long to wait for another process's write lock on the file."
    )

    @property
    def database_path(self) -> Path:
        return Path(self.path) if self.path else settings.warehouse_path()

    @property
    def sql_folder(self) -> Path:
        return Path(self.sql_dir) if self.sql_dir else settings.sql_root()

    def sql_text(self, relative_path: str) -> str:
        """The text of a SQL file below the SQL folder, e.g. ``video_analytics/silver/users.sql``."""
        path = self.sql_folder / relative_path
        if not path.is_file():
            raise FileNotFoundError(f"SQL file not found: {path}")
        return path.read_text(encoding="utf-8")

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with the platform's settings; closed (and the file lock released) on exit."""
        database = self.database_path
        database.parent.mkdir(parents=True, exist_ok=True)
        temp_dir = Path(self.temp_directory) if self.temp_directory else settings.platform_home() / "tmp" / "duckdb"
        temp_dir.mkdir(parents=True, exist_ok=True)
        config = {"memory_limit": self.memory_limit, "temp_directory": str(temp_dir)}
        if self.threads:
            config["threads"] = self.threads
        if self.max_temp_size:
            config["max_temp_directory_size"] = self.max_temp_size
        conn = self._open(database, config)
        try:
            conn.execute("SET TimeZone = 'UTC'")
            conn.execute("CREATE SCHEMA IF NOT EXISTS bronze; CREATE SCHEMA IF NOT EXISTS silver; CREATE SCHEMA IF NOT EXISTS gold")
            conn.execute(self.sql_text(MACROS_FILE))
            yield conn
        except Exception as error:
            # One place turns "disk full" and "spill space exhausted", wherever they happen, into words to act on.
            explained = self._explain_space(error, database, temp_dir)
            if explained is None:
                raise
            raise explained from error
        finally:
            conn.close()

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
                f"DuckDB ran out of memory: it needed more than memory_limit={self.memory_limit} and could not spill "
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

    def run_script(self, conn: duckdb.DuckDBPyConnection, relative_path: str) -> None:
        """Execute a SQL file as one transaction: readers see the old tables or the new ones, never half."""
        script = self.sql_text(relative_path)
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(script)
            conn.execute("COMMIT")
        except Exception as error:
            try:
                conn.execute("ROLLBACK")
            except duckdb.Error:
                pass  # a failed COMMIT has already ended the transaction
            raise SqlScriptError(f"{relative_path} failed: {error}") from error


class SqlScriptError(RuntimeError):
    """A SQL file of the pipeline failed; the message names the file and DuckDB's error."""

    def __init__(self, message: str):
        super().__init__(message)


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024
    return str(count)
