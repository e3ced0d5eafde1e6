"""The warehouse interface: what assets, checks and loaders ask of a SQL engine, whichever it is.

A :class:`Warehouse` is a Dagster resource; ``connect()`` opens a :class:`WarehouseSession`. Assets depend on
``Warehouse`` (the resource key ``warehouse``); the definitions bind the engine chosen by configuration
(``engines.warehouse_for``). The SQL of the pipelines is written once, in DuckDB's dialect, under ``sql/``: an
engine runs a file as it is (DuckDB), or compiled for it (``dialects.compile_script``), or, where it truly needs
its own statement, the file ``<name>.<engine>.sql`` beside the shared one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pyarrow as pa
from pydantic import Field

from etl_platform import settings
from etl_platform.errors import ConfigurationError

MACROS_FILE = "macros.sql"
LAYERS = ("bronze", "silver", "gold")


def sql_string(text: str) -> str:
    """``text`` as a SQL string literal (quotes doubled), the same on every engine."""
    return "'" + text.replace("'", "''") + "'"


class SqlScriptError(RuntimeError):
    """A SQL file (or statement) of the pipeline failed on an engine; the message names file, statement and engine."""


class EngineSettingError(ConfigurationError):
    """The warehouse engine setting names no engine we have, or the engine it names cannot be reached."""


class WarehouseSession:
    """One open connection to the warehouse. Statements use ``?`` placeholders on every engine."""

    engine: str = ""
    # Whether an asset's checks are better run as one query (a query costs a job of its own on Spark).
    checks_in_one_query: bool = False

    def execute(self, sql: str, params: Sequence[Any] | None = None):
        """Run one statement as written; the result has ``fetchall()``, ``fetchone()`` and ``description``."""
        raise NotImplementedError

    def query(self, sql: str, where: str = "a query") -> Any:
        """Run one statement written in the shared (DuckDB) dialect, compiled for this engine."""
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        self.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def append_arrow(self, table: str, data: pa.Table | pa.RecordBatchReader) -> int:
        """Append Arrow data to an existing table, matching columns by name; the number of rows appended."""
        raise NotImplementedError

    def arrow_reader(self, sql: str, batch_rows: int = 100_000) -> pa.RecordBatchReader:
        """A query's result (shared dialect) as a stream of record batches."""
        raise NotImplementedError

    def columns(self, table: str) -> list[tuple[str, str]]:
        """``(name, type)`` of each column of ``<schema>.<table>``, in order; types in DuckDB's names."""
        schema_name, table_name = table.split(".")
        rows = self.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [schema_name, table_name],
        ).fetchall()
        return [(name, self.normalize_type(data_type)) for name, data_type in rows]

    def table_exists(self, table: str) -> bool:
        schema_name, table_name = table.split(".")
        return bool(self.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema_name, table_name],
        ).fetchall()[0][0])

    @staticmethod
    def normalize_type(data_type: str) -> str:
        return data_type.upper()


# The concurrency pool of every step that reads or writes the warehouse (dagster.yaml: `concurrency.pools`, run
# granularity, limit 1: one run at a time holds the embedded DuckDB file; runs without such a step run beside it).
WAREHOUSE_POOL = "warehouse"


class DeltaMemory:
    """The memory an incremental step is held to while it works on what changed (``Warehouse.delta_memory``).
    ``limit``: the bound in force (None: none — this engine has no such setting, or it is switched off);
    ``lift()``: give the step the engine's full memory again (the step turned out to be a full rebuild)."""

    def __init__(self, limit: str | None = None, lift: Callable[[], object] | None = None):
        self.limit = limit
        self._lift = lift

    def lift(self) -> None:
        if self.limit is not None and self._lift is not None:
            self._lift()
        self.limit = None


class Warehouse(dg.ConfigurableResource):
    """A SQL engine holding the bronze, silver and gold schemas. Subclasses: one per engine."""

    engine: ClassVar[str] = ""
    sql_dir: str | None = Field(
        default=None, description="Folder holding the SQL files. Default: the project's sql/ folder."
    )

    @property
    def sql_folder(self) -> Path:
        return Path(self.sql_dir) if self.sql_dir else settings.sql_root()

    def sql_text(self, relative_path: str) -> str:
        """The text of a SQL file below the SQL folder, e.g. ``video_analytics/silver/users.sql``."""
        path = self.sql_folder / relative_path
        if not path.is_file():
            raise FileNotFoundError(f"SQL file not found: {path}")
        return path.read_text(encoding="utf-8")

    def macros_text(self, name: str) -> str:
        """The parsing macros the pipelines' SQL uses (``name``: this engine's macros file): the SQL folder's own
        file when it has one, else the platform's, so a folder of a user's own scripts needs none."""
        if (self.sql_folder / name).is_file():
            return self.sql_text(name)
        return (settings.sql_root() / name).read_text(encoding="utf-8")

    def engine_sql_path(self, relative_path: str) -> str:
        """``<name>.<engine>.sql`` when this engine has its own version of a file, else the shared file."""
        own = relative_path.removesuffix(".sql") + f".{self.engine}.sql"
        return own if (self.sql_folder / own).is_file() else relative_path

    @contextmanager
    def connect(self) -> Iterator[WarehouseSession]:
        raise NotImplementedError
        yield

    def run_script(self, session: WarehouseSession, relative_path: str, own_transaction: bool = True,
                   expand: Callable[[str], str] | None = None) -> None:
        """Execute a SQL file as one transaction: readers see the old tables or the new ones, never half.
        ``own_transaction=False``: inside the caller's transaction (``session.transaction()``) instead. The
        engine's own version of the file (``<name>.<engine>.sql``) when there is one, else the shared file.
        ``expand``: what the file's text becomes before it runs (an incremental step writes out its
        ``is_affected``: medallion/incremental.py)."""
        path = self.engine_sql_path(relative_path)
        text = self.sql_text(path)
        self.run_sql(session, expand(text) if expand else text, path, own_transaction,
                     engine_dialect=path != relative_path)

    def run_sql(self, session: WarehouseSession, script: str, name: str, own_transaction: bool = True,
                engine_dialect: bool = False) -> None:
        """Execute ``script`` (statements in the shared SQL dialect, DuckDB's, compiled for this engine; or in
        the engine's own dialect: ``engine_dialect``) as one transaction, as ``run_script`` does; ``name`` (its
        file) is named in errors."""
        raise NotImplementedError

    @contextmanager
    def delta_memory(self, session: WarehouseSession) -> Iterator[DeltaMemory]:
        """Hold ``session`` to a smaller memory budget while an incremental step works on a delta, so a daily
        run's memory does not grow with the history its scans pass over; the engine's own limit again on exit.
        Engines without a per-session memory setting hold nothing (PostgreSQL and Spark size their own)."""
        yield DeltaMemory()

    def out_of_memory(self, error: BaseException) -> bool:
        """Whether ``error`` (or what caused it) is this engine saying it ran out of memory."""
        return False

    def reclaim_space(self, compact: bool = False) -> dict[str, Any]:
        """Give back the space replaced tables left (housekeeping); what was done, and the sizes where known.
        ``compact``: also rewrite storage that only a rewrite shrinks (DuckDB's file: only when no run is in
        progress, see ``DuckDBWarehouse.reclaim_space``)."""
        return {"engine": self.engine, "done": "nothing: this engine keeps no space to reclaim"}
