"""Sources in Dagster: an asset per source that lands it in ``bronze.<name>``, and a sensor that starts it.

    defs = dg.Definitions(
        assets=[source_asset("orders", source_key="orders_db")],
        sensors=[source_sensor("orders", source_key="orders_db")],
        resources={"orders_db": PostgresSource(host=..., password=dg.EnvVar("ORDERS_PG_PASSWORD"),
                                               table="public.orders", cursor_column="updated_at", primary_key=["id"]),
                   "warehouse": DuckDBWarehouse()},
    )
"""


import hashlib
import json

import dagster as dg
from pydantic import Field

from etl_platform.errors import EtlPlatformError
from etl_platform.retries import network_retry_policy, step_failure
from etl_platform.sources.base import Source
from etl_platform.sources.files import FileSource
from etl_platform.sources.ingest import QUARANTINE_TABLE, ingest, unreadable_parts, validate_name
from etl_platform.warehouse import WAREHOUSE_POOL, Warehouse, table_metadata

SOURCE_TAG = "etl_platform/source"
QUARANTINE_CHECK = "no_quarantined_records"


class IngestConfig(dg.Config):
    full_refresh: bool = Field(default=False, description="Forget the stored state (cursor, files seen) and read "
                                                          "everything again.")


def source_asset(name: str, *, source_key: str | None = None, kinds: set[str] | None = None,
                 group_name: str = "sources", description: str | None = None, owners: list[str] | None = None,
                 automation_condition: dg.AutomationCondition | None = None) -> dg.AssetsDefinition:
    """The asset ``bronze/<name>``: reads the source resource ``source_key`` (default ``<name>_source``)."""
    validate_name(name)
    resource_key = source_key or f"{name}_source"
    key = dg.AssetKey(["bronze", name])

    @dg.asset(
        key=key, group_name=group_name, kinds={*(kinds or set()), "sql"}, owners=owners,
        required_resource_keys={resource_key, "warehouse"}, automation_condition=automation_condition,
        pool=WAREHOUSE_POOL,
        tags={SOURCE_TAG: name}, retry_policy=network_retry_policy(),
        description=description or (
            f"Everything the source `{resource_key}` yields, landed in bronze.{name} with `_ingested_at` and "
            "`_source_position`; new data only on each run (the state is committed with the rows). Records that "
            f"could not be converted are in {QUARANTINE_TABLE}."),
        check_specs=[dg.AssetCheckSpec(QUARANTINE_CHECK, asset=key, blocking=True, description=(
            "No record of this run went to the quarantine (WARN: the run goes on; the records and their reasons "
            f"are in {QUARANTINE_TABLE}). A file source's file that cannot be read, under `bad_files: block`, "
            "fails it as an ERROR at every run until the file is fixed or removed: assets downstream wait."))],
    )
    def _source_asset(context: dg.AssetExecutionContext, config: IngestConfig):
        source: Source = getattr(context.resources, resource_key)
        warehouse: Warehouse = context.resources.warehouse
        with warehouse.connect() as conn:
            try:
                blocks = isinstance(source, FileSource) and source.bad_file_policy == "block"
                result = ingest(conn, source, name, full_refresh=config.full_refresh, log=context.log.info)
            except EtlPlatformError as error:  # retried (the step's policy) only when the source did not answer
                raise step_failure(error, {"source": source.describe()}) from error
            blocked = unreadable_parts(conn, name) if blocks else []
            extra = {
                "source": source.describe(), "rows_read": result.rows_read, "rows_written": result.rows_written,
                "rows_quarantined": result.rows_quarantined, "batches": result.batches,
                "state_before": dg.MetadataValue.json(result.state_before or {}),
                "state_after": dg.MetadataValue.json(result.state_after or {}),
                "seconds": round(result.seconds, 2),
            }
            exists = conn.table_exists(result.table)
            metadata = table_metadata(conn, result.table, **extra) if exists else {
                **extra, "dagster/row_count": dg.MetadataValue.int(0)}
            sample = conn.execute(f"SELECT position, reason FROM {QUARANTINE_TABLE} WHERE source = ? "
                                  "ORDER BY detected_at DESC LIMIT 5", [name]).fetchall()
        if blocked:
            check = dg.AssetCheckResult(
                check_name=QUARANTINE_CHECK, passed=False, severity=dg.AssetCheckSeverity.ERROR,
                metadata={"rows_quarantined": result.rows_quarantined,
                          "unreadable_files": dg.MetadataValue.json([{"file": f, "reason": r} for f, r in blocked])},
                description=f"{len(blocked)} file(s) of {source.describe()} cannot be read (bad_files: block; fix or "
                            "remove them, or set bad_files: reject): "
                            + "; ".join(f"{part}: {reason[:300]}" for part, reason in blocked[:5]))
        else:
            check = dg.AssetCheckResult(
                check_name=QUARANTINE_CHECK, passed=result.rows_quarantined == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"rows_quarantined": result.rows_quarantined,
                          "examples": dg.MetadataValue.json([{"position": p, "reason": r} for p, r in sample])
                          if result.rows_quarantined else dg.MetadataValue.json([])},
                description=None if not result.rows_quarantined else
                f"{result.rows_quarantined} record(s) quarantined in {QUARANTINE_TABLE}")
        return dg.MaterializeResult(metadata=metadata, check_results=[check])

    return _source_asset


def source_sensor(name: str, *, source_key: str | None = None, minimum_interval_seconds: int = 30,
                  default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED) -> dg.SensorDefinition:
    """Starts ``bronze/<name>`` when its queue holds messages or its files changed; never while one is running.

    Files: the cursor is a digest of the listing, so a run is requested once per change. Queues: a run is
    requested while messages wait and no run of this source is queued or in progress.
    """
    resource_key = source_key or f"{name}_source"
    key = dg.AssetKey(["bronze", name])

    @dg.sensor(name=f"{name}_source_sensor", asset_selection=[key], minimum_interval_seconds=minimum_interval_seconds,
               default_status=default_status, required_resource_keys={resource_key},
               description=f"Materializes bronze/{name} when {resource_key} has new data.")
    def _sensor(context: dg.SensorEvaluationContext):
        source: Source = getattr(context.resources, resource_key)
        active = context.instance.get_run_records(dg.RunsFilter(
            tags={SOURCE_TAG: name}, statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
                                               dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]), limit=1)
        if active:
            return dg.SkipReason(f"a run of bronze/{name} is queued or in progress")
        if isinstance(source, FileSource):
            _, _, files = source.list_files()
            digest = hashlib.sha256(json.dumps([(f["relative"], f["fingerprint"]) for f in files]).encode()).hexdigest()
            if digest == context.cursor:
                return dg.SkipReason(f"no file of {source.describe()} changed")
            context.update_cursor(digest)
            return dg.RunRequest(run_key=f"{name}-{digest[:16]}", tags={SOURCE_TAG: name})
        pending = getattr(source, "pending_messages", None)
        if pending is None:
            return dg.SkipReason(f"{source.kind} sources are read on a schedule, not by a sensor")
        waiting = pending()
        if not waiting:
            return dg.SkipReason(f"no message waiting in {source.describe()}")
        number = int(context.cursor or 0) + 1
        context.update_cursor(str(number))
        return dg.RunRequest(run_key=f"{name}-{number}", tags={SOURCE_TAG: name, "messages_waiting": str(waiting)})

    return _sensor
