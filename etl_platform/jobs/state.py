"""Where a YAML job keeps its incremental state between runs (docs/jobs.md#incremental-state).

In the warehouse, table ``etl_jobs.job_state`` (one row per tenant, job and object), so every run worker that
shares the warehouse (PostgreSQL) shares the state, and a state is saved only if no other run of the same object
saved one since this run read it: two runs of one job at once cannot both move the mark (the second fails, naming
the job, and its target's writes are the ones an idempotent write mode makes harmless). Saved only after the
target committed, as before.

In files instead (``<folder>/<tenant>/<job>/<object>.json``, replaced atomically) when ``ETL_PLATFORM_JOB_STATE``
names a folder, and on the Spark warehouse (its tables have no row-level transactions). A state file of the
earlier default place (``$ETL_PLATFORM_HOME/state/jobs``) is read once when the warehouse has no row yet, and
removed when the first state is saved in the warehouse: an upgrade does not read everything again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from etl_platform import settings
from etl_platform.errors import ConfigurationError, EtlPlatformError

STATE_ENV = "ETL_PLATFORM_JOB_STATE"
STATE_TABLE = "etl_jobs.job_state"


class StaleStateError(EtlPlatformError):
    """Another run of the same job object saved its state after this run read it."""


@dataclass(frozen=True)
class SavedState:
    """A state as read: ``version`` 0 when none was saved; ``legacy_file``, a state file of the earlier default
    place it came from (removed once the warehouse holds the state)."""

    state: dict
    version: int = 0
    legacy_file: Path | None = None


def _file_of(root: Path, tenant: str, job: str, obj: str | None) -> Path:
    return root / tenant / job / f"{obj or '_all'}.json"


def _read_file(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"{path}: the saved state is not JSON ({error}); delete it or run with "
                                 "--full-refresh") from None


def legacy_root() -> Path:
    """The earlier default folder of state files."""
    return settings.platform_home() / "state" / "jobs"


class FileJobStates:
    """States in JSON files below ``root``, each written beside and renamed over the old one (a crash leaves the old
    state or the new, never half). Two runs at once are not told apart: keep one run per job."""

    def __init__(self, root: Path):
        self.root = root

    def load(self, tenant: str, job: str, obj: str | None) -> SavedState:
        state = _read_file(_file_of(self.root, tenant, job, obj))
        return SavedState(state or {}, 0 if state is None else 1)

    def save(self, tenant: str, job: str, obj: str | None, state: dict, read: SavedState) -> None:
        path = _file_of(self.root, tenant, job, obj)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(state, default=str, sort_keys=True), encoding="utf-8")
        os.replace(partial, path)


class WarehouseJobStates:
    """States in the warehouse's ``etl_jobs.job_state``; a save names the version it read and fails with
    ``StaleStateError`` when the row moved meanwhile."""

    def __init__(self, warehouse):
        self.warehouse = warehouse

    @staticmethod
    def _ensure(conn) -> None:
        conn.execute("CREATE SCHEMA IF NOT EXISTS etl_jobs")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (tenant_id VARCHAR NOT NULL, job VARCHAR NOT NULL, "
                     "object VARCHAR NOT NULL, state VARCHAR NOT NULL, version BIGINT NOT NULL, "
                     "saved_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (tenant_id, job, object))")

    def load(self, tenant: str, job: str, obj: str | None) -> SavedState:
        with self.warehouse.connect() as conn:
            self._ensure(conn)
            row = conn.execute(f"SELECT state, version FROM {STATE_TABLE} WHERE tenant_id = ? AND job = ? "
                               "AND object = ?", [tenant, job, obj or "_all"]).fetchone()
        if row is not None:
            return SavedState(json.loads(row[0]), int(row[1]))
        legacy = _file_of(legacy_root(), tenant, job, obj)
        state = _read_file(legacy)
        return SavedState(state, 0, legacy) if state is not None else SavedState({})

    def save(self, tenant: str, job: str, obj: str | None, state: dict, read: SavedState) -> None:
        text = json.dumps(state, default=str, sort_keys=True)
        key = [tenant, job, obj or "_all"]
        with self.warehouse.connect() as conn:
            self._ensure(conn)
            try:
                with conn.transaction():
                    if read.version:  # moves only the version this run read (PostgreSQL re-checks it under the
                        saved = conn.execute(  # row lock a concurrent save holds)
                            f"UPDATE {STATE_TABLE} SET state = ?, version = version + 1, saved_at = now() "
                            "WHERE tenant_id = ? AND job = ? AND object = ? AND version = ? RETURNING version",
                            [text, *key, read.version]).fetchall()
                    else:  # the first state: the primary key refuses a second first
                        saved = conn.execute(
                            f"INSERT INTO {STATE_TABLE} (tenant_id, job, object, state, version, saved_at) "
                            "VALUES (?, ?, ?, ?, 1, now()) RETURNING version", [*key, text]).fetchall()
                    if not saved:
                        raise StaleStateError(self._stale(key, read))
            except Exception as error:
                # the first INSERT of two runs: the primary key refuses the second (DuckDB's ConstraintException,
                # PostgreSQL's unique_violation, SQLSTATE 23505)
                if type(error).__name__ == "ConstraintException" or getattr(error, "sqlstate", None) == "23505":
                    raise StaleStateError(self._stale(key, read)) from None
                raise
        if read.legacy_file is not None:
            read.legacy_file.unlink(missing_ok=True)  # the warehouse holds the state now

    @staticmethod
    def _stale(key: list[str], read: SavedState) -> str:
        return (f"job {key[0]}/{key[1]}, object {key[2]}: another run saved its state after this run read it "
                f"(version {read.version}); this run's state is not saved, so the next run reads again from the "
                "newer mark. Run one job at a time (a schedule, or the jobs' concurrency pool).")


JobStates = FileJobStates | WarehouseJobStates


def job_states(warehouse=None) -> JobStates:
    """Where states are kept: the folder of ``$ETL_PLATFORM_JOB_STATE`` when set; else ``warehouse`` (the step's
    resource; None: the location's, from ``$ETL_PLATFORM_ENGINE``), or files below ``$ETL_PLATFORM_HOME`` on Spark."""
    if os.environ.get(STATE_ENV):
        return FileJobStates(Path(os.environ[STATE_ENV]))
    from etl_platform.warehouse.engines import engine_name, warehouse_for

    engine = warehouse.engine if warehouse is not None else engine_name()
    if engine == "spark":  # no row-level transactions (and no Spark session started for a state)
        return FileJobStates(legacy_root())
    if warehouse is None:
        warehouse = warehouse_for(engine)
        if engine == "postgres":  # its address is a dg.EnvVar: resolved here, as Dagster does when a run starts
            warehouse = warehouse.process_config_and_initialize()
    return WarehouseJobStates(warehouse)
