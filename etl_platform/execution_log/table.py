"""The execution log as a Delta Lake table (the ``deltalake`` package: no Spark), partitioned by ``log_date``.

Rows are appended in one Delta commit per write; ``insert_new`` adds only rows whose ``log_id`` is not there yet
(one MERGE), so a logger that restarts and sends rows again never doubles them. Reads of the current version go
through delta-rs's own query engine (the day filter prunes ``log_date`` partitions) into Arrow, queried with DuckDB.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import duckdb
import pyarrow as pa

from etl_platform.execution_log.models import LOG_SCHEMA, WriterTableError

PARTITION = "log_date"




class LogTable:
    def __init__(self, uri: str, storage_options: dict[str, str] | None = None, retries: int = 3,
                 retry_delay_secs: float = 1.0):
        self.uri = uri
        self.storage_options = dict(storage_options or {}) or None
        self.retries, self.retry_delay_secs = retries, retry_delay_secs
        self._snapshot: tuple[int | None, duckdb.DuckDBPyConnection] | None = None

    def exists(self) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.uri, storage_options=self.storage_options)

    def delta(self):
        from deltalake import DeltaTable

        if not self.exists():
            raise WriterTableError(f"no log table at {self.uri} yet", context={"table": self.uri},
                                   suggestions=["write log rows first (write_log_rows / write_execution_result)"])
        return DeltaTable(self.uri, storage_options=self.storage_options)

    def _retrying(self, action):
        """Commit conflicts and transient store errors are retried with exponential backoff."""
        for attempt in range(self.retries + 1):
            try:
                return action()
            except Exception as error:  # deltalake raises its own CommitFailedError, DeltaError, OSError
                if attempt == self.retries or type(error).__name__ not in ("CommitFailedError", "OSError",
                                                                           "DeltaError", "TransactionError"):
                    raise WriterTableError(f"writing the log table {self.uri} failed: {type(error).__name__}: "
                                           f"{str(error).splitlines()[0][:300]}", context={"table": self.uri}) \
                        from error
                time.sleep(self.retry_delay_secs * 2 ** attempt)

    def append(self, rows: pa.Table, mode: str = "append") -> int:
        """Add ``rows`` (cast to the log schema) in one commit; returns the new version."""
        from deltalake import write_deltalake

        rows = rows.select(LOG_SCHEMA.names).cast(LOG_SCHEMA)
        self._retrying(lambda: write_deltalake(self.uri, rows, mode=mode, partition_by=[PARTITION],
                                               storage_options=self.storage_options))
        return self.delta().version()

    def insert_new(self, rows: pa.Table) -> int:
        """Add the rows whose ``log_id`` the table does not hold yet; returns how many were added."""
        rows = rows.select(LOG_SCHEMA.names).cast(LOG_SCHEMA)
        if rows.num_rows == 0:
            return 0
        if not self.exists():
            self.append(rows)
            return rows.num_rows

        def merge():
            return (self.delta().merge(rows, predicate="target.log_id = source.log_id", source_alias="source",
                                       target_alias="target")
                    .when_not_matched_insert_all().execute())

        metrics = self._retrying(merge)
        return int(metrics.get("num_target_rows_inserted", 0))

    def _query(self, sql: str) -> pa.RecordBatchReader:
        """``sql`` over the table (named ``logs``, which its callers know exists) run by delta-rs (DataFusion),
        streamed as Arrow batches. Not through a pyarrow dataset: ``pyarrow.dataset`` imports pandas, ~0.3 s of
        every report and health run."""
        from deltalake import DeltaTable, QueryBuilder

        table = DeltaTable(self.uri, storage_options=self.storage_options)
        return pa.RecordBatchReader.from_stream(QueryBuilder().register("logs", table).execute(sql))

    def stream(self, days: int | None = None) -> pa.RecordBatchReader:
        """The rows (of the last ``days`` days, by ``log_date``) batch by batch, with the log schema."""
        if not self.exists():
            return pa.RecordBatchReader.from_batches(LOG_SCHEMA, [])
        since = "" if days is None else f" WHERE {PARTITION} >= DATE '{date.today() - timedelta(days=days)}'"
        batches = self._query(f"SELECT * FROM logs{since}")
        # delta-rs gives strings as views and the partition column last: the log schema's own types and order
        return pa.RecordBatchReader.from_batches(
            LOG_SCHEMA, (batch.select(LOG_SCHEMA.names).cast(LOG_SCHEMA) for batch in batches))

    def read(self, days: int | None = None) -> pa.Table:
        """The rows (of the last ``days`` days, by ``log_date``), or an empty table with the log schema."""
        return self.stream(days).read_all()

    def count_rows(self) -> int:
        return self._query("SELECT count(*) AS n FROM logs").read_all().column(0)[0].as_py() if self.exists() else 0

    def dagster_run_ids(self, other_than_asset: str | None = None) -> set[str]:
        """The Dagster runs with rows in the log (with a row of another asset than ``other_than_asset``), read
        from the two columns only."""
        if not self.exists():
            return set()
        where = "" if other_than_asset is None else \
            " AND asset_key IS DISTINCT FROM '{}'".format(other_than_asset.replace("'", "''"))
        ids = self._query(f"SELECT DISTINCT dagster_run_id FROM logs WHERE dagster_run_id IS NOT NULL{where}")
        return set(ids.read_all().column(0).to_pylist())

    @contextmanager
    def snapshot(self, days: int | None = None) -> Iterator[None]:
        """Within the block, every :meth:`sql` of the same ``days`` shares one read of the table (a report asks
        for it several times); what is written meanwhile is not seen."""
        with self.sql(days) as conn:
            self._snapshot = (days, conn)
            try:
                yield
            finally:
                self._snapshot = None

    @contextmanager
    def sql(self, days: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection with the temporary table ``logs``: the log's rows (of the last ``days`` days)."""
        if self._snapshot is not None and self._snapshot[0] == days:
            yield self._snapshot[1]
            return
        conn = duckdb.connect()
        try:
            conn.execute("SET TimeZone = 'UTC'")
            # The day filter applied by delta-rs; the batches streamed into DuckDB's compressed columns (a view
            # would not do: DuckDB pushes filters into Arrow through pyarrow.dataset, which imports pandas).
            conn.register("logs_read", self.stream(days))
            conn.execute("CREATE TEMP TABLE logs AS SELECT * FROM logs_read")
            conn.unregister("logs_read")
            yield conn
        finally:
            conn.close()
