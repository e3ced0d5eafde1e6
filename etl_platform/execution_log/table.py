"""The execution log as a Delta Lake table (the ``deltalake`` package: no Spark), partitioned by ``log_date``.

Rows are appended in one Delta commit per write; ``insert_new`` adds only rows whose ``log_id`` is not there yet
(one MERGE), so a logger that restarts and sends rows again never doubles them. Reads go through a pyarrow
dataset of the current version, queried with DuckDB.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from etl_platform.execution_log.models import LOG_SCHEMA, WriterTableError

if TYPE_CHECKING:
    import pyarrow.dataset as ds

PARTITION = "log_date"


def delta_location(store, path: str) -> tuple[str, dict[str, str]]:
    """A destinations ``Store`` (local, S3, Azure Blob, GCS) and a path in it as a Delta table URI and delta-rs
    storage options: the log goes wherever the datasets go, with the same settings."""
    kind, root = store.kind, store.root.rstrip("/")
    location = f"{root}/{path}".lstrip("/") if root else path
    if kind in ("local", "csv"):
        return f"{root}/{path}", {}
    if kind == "s3":
        options = {"AWS_REGION": store.region or "us-east-1",
                   # delta-rs needs a lock for concurrent S3 writers; the log has one writer (the sensor or a run)
                   "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
        for key, value in (("AWS_ACCESS_KEY_ID", store.aws_access_key_id),
                           ("AWS_SECRET_ACCESS_KEY", store.aws_secret_access_key),
                           ("AWS_SESSION_TOKEN", store.aws_session_token), ("AWS_ENDPOINT_URL", store.endpoint_url)):
            if value:
                options[key] = value
        if store.endpoint_url and store.endpoint_url.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
        return f"s3://{location}", options
    if kind == "azure_blob":
        options = {}
        if store.connection_string:
            parts = dict(p.split("=", 1) for p in store.connection_string.split(";") if "=" in p)
            options["azure_storage_account_name"] = parts.get("AccountName", "")
            options["azure_storage_account_key"] = parts.get("AccountKey", "")
            if "BlobEndpoint" in parts:
                options["azure_storage_endpoint"] = parts["BlobEndpoint"]  # Azurite, sovereign clouds
                options["azure_allow_http"] = "true" if parts["BlobEndpoint"].startswith("http://") else "false"
        else:
            options = {"azure_storage_account_name": store.account_name or "",
                       "azure_storage_account_key": store.account_key or ""}
        return f"az://{location}", {k: v for k, v in options.items() if v}
    if kind == "gcs":
        options = {"google_service_account": store.token} if store.token and store.token != "anon" else {}
        return f"gs://{location}", options
    raise WriterTableError(f"the execution log cannot be kept on a {kind!r} store")


class LogTable:
    def __init__(self, uri: str, storage_options: dict[str, str] | None = None, retries: int = 3,
                 retry_delay_secs: float = 1.0):
        self.uri = uri
        self.storage_options = dict(storage_options or {}) or None
        self.retries, self.retry_delay_secs = retries, retry_delay_secs

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

    def dataset(self) -> ds.Dataset:
        return self.delta().to_pyarrow_dataset()

    def read(self, days: int | None = None) -> pa.Table:
        """The rows (of the last ``days`` days, by ``log_date``), or an empty table with the log schema."""
        if not self.exists():
            return LOG_SCHEMA.empty_table()
        import pyarrow.dataset as ds  # here, not at import: it imports pandas (~0.3 s of every Dagster process's start)

        dataset = self.dataset()
        if days is None:
            return dataset.to_table()
        return dataset.to_table(filter=ds.field(PARTITION) >= pa.scalar(date.today() - timedelta(days=days)))

    @contextmanager
    def sql(self, days: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection with the view ``logs`` over the table (the last ``days`` days)."""
        conn = duckdb.connect()
        try:
            conn.execute("SET TimeZone = 'UTC'")
            if not self.exists():
                conn.register("logs", LOG_SCHEMA.empty_table())
            else:  # the day filter pushed into the Delta files; the rows land in DuckDB's compressed columns (a
                # view over the Arrow dataset would push string filters pyarrow cannot run on string views)
                conn.register("logs_all", self.dataset())
                since = "" if days is None else f" WHERE {PARTITION} >= DATE '{date.today() - timedelta(days=days)}'"
                conn.execute(f"CREATE TEMP TABLE logs AS SELECT * FROM logs_all{since}")
                conn.unregister("logs_all")
            yield conn
        finally:
            conn.close()
