"""The assets of a declared medallion (medallion/declaration.py): its landing files (external assets), their bronze
tables, and its models, each with the checks that run in its own step.

Asset keys mirror the warehouse tables: ``bronze/users`` is ``bronze.users``. A model's asset runs its SQL files
(incrementally when it has a key: medallion/incremental.py) and describes what they wrote.
"""


import os
from collections.abc import Mapping, Sequence
from datetime import date
from types import SimpleNamespace

import dagster as dg
from pydantic import Field

from etl_platform.landing import BronzeLoader, LandingZone
from etl_platform.landing.files import LandingSettingError
from etl_platform.medallion.declaration import Medallion
from etl_platform.medallion.incremental import DayRange, run_step
from etl_platform.quality import SqlCheck, check_specs, evaluate_checks, in_step, sql_asset_checks
from etl_platform.warehouse import WAREHOUSE_POOL, Warehouse, table_metadata

# Declarative automation (with the daemon, once the landing and automation sensors are on): a bronze table is loaded
# when the landing sensor observed its files change, and each table below follows when what it reads was updated and
# none of it is missing or in progress. A change to one entity's files runs its bronze asset and what is built from
# it, not the whole job (docs/video_analytics.md).
BRONZE_AUTOMATION = (dg.AutomationCondition.any_deps_updated().since_last_handled()
                     & ~dg.AutomationCondition.in_progress()).with_label("landing files changed")
DOWNSTREAM_AUTOMATION = dg.AutomationCondition.eager()
FULL_REFRESH_ENV = "ETL_PLATFORM_FULL_REFRESH"
REBUILD_DAYS_ENV = "ETL_PLATFORM_REBUILD_DAYS"

Checks = Mapping[dg.AssetKey, Sequence[SqlCheck]]


class RefreshPolicy(dg.ConfigurableResource):
    """Whether the incremental models process what changed since their last run (the default) or rebuild from
    all of bronze. One switch for a run: ``ETL_PLATFORM_FULL_REFRESH=1``, or the run config
    ``resources: {refresh_policy: {config: {full_refresh: true}}}``. ``days`` (``ETL_PLATFORM_REBUILD_DAYS``) also
    builds a range of days again in the models that declare ``rebuild_by_day`` (a backfill of those days, in one
    run; docs/incremental.md)."""

    full_refresh: bool = Field(default=False, description="Rebuild silver and gold from all of bronze.")
    days: str | None = Field(
        default=None,
        description="Also build these days of sessions (UTC view_date) again from bronze, in this run: YYYY-MM-DD "
        "or YYYY-MM-DD...YYYY-MM-DD (inclusive).",
    )

    def day_range(self) -> DayRange | None:
        return parse_day_range(self.days, "refresh_policy.days") if self.days else None


def parse_day_range(text: str, where: str) -> DayRange:
    """``2024-01-02`` or ``2024-01-02...2024-01-09`` (inclusive) as a DayRange; ``where`` names the setting."""
    first, _, last = text.strip().partition("...")
    try:
        return DayRange(date.fromisoformat(first.strip()), date.fromisoformat((last or first).strip()))
    except ValueError as error:
        raise LandingSettingError(
            f"{where}={text!r}: expected a day (YYYY-MM-DD) or a range of days (YYYY-MM-DD...YYYY-MM-DD): {error}"
        ) from None


def refresh_policy_from_environment() -> RefreshPolicy:
    value = os.environ.get(FULL_REFRESH_ENV, "").strip().lower()
    if value not in ("", "0", "1", "true", "false", "yes", "no"):
        raise LandingSettingError(f"{FULL_REFRESH_ENV}={value!r}: expected 1/true/yes or 0/false/no")
    days = os.environ.get(REBUILD_DAYS_ENV, "").strip() or None
    if days:
        parse_day_range(days, REBUILD_DAYS_ENV)
    return RefreshPolicy(full_refresh=value in ("1", "true", "yes"), days=days)


def _in_step(checks: Checks, key: dg.AssetKey) -> list[SqlCheck]:
    """The asset's checks that run in its own step, after it (the others: separate_checks)."""
    return [check for check in checks.get(key, []) if in_step(check)]


def _with_checks(context: dg.AssetExecutionContext, conn, warehouse: Warehouse, key: dg.AssetKey,
                 checks: Sequence[SqlCheck], result: dg.MaterializeResult):
    """The asset's materialization, then its checks' results (a failed blocking check fails the step, and what is
    downstream does not run)."""
    yield result
    yield from evaluate_checks(conn, key, checks, SimpleNamespace(warehouse=warehouse), context.log,
                               selected=context.selected_asset_check_keys)


class BronzeConfig(dg.Config):
    force_reload: bool = Field(
        default=False, description="Re-ingest every landing file, even those unchanged since they were ingested."
    )


# ---------------------------------------------------------------- landing and bronze


def landing_key(entity: str) -> dg.AssetKey:
    return dg.AssetKey(["landing", entity])


def landing_specs(medallion: Medallion) -> list[dg.AssetSpec]:
    """Each entity's landing files as an external asset: observed by the landing sensor (a new data version when the
    files change), read by its bronze asset."""
    return [
        dg.AssetSpec(
            landing_key(entity), group_name=medallion.group("landing"), owners=medallion.owners,
            kinds={"csv" if spec.format == "csv" else "json", "file"},
            description=f"The landing files `{spec.pattern}` (also .gz/.zst) in the landing folder, as the landing "
                        "sensor last saw them settled (its observations carry a digest of their fingerprints).")
        for entity, spec in medallion.contract.BRONZE.items()
    ]


def bronze_asset(medallion: Medallion, entity: str, engine: str, checks: Checks) -> dg.AssetsDefinition:
    contract = medallion.contract
    spec = contract.BRONZE[entity]
    key = medallion.key(spec.table)
    own_checks = _in_step(checks, key)

    @dg.asset(
        key=key,
        group_name=medallion.group("bronze"),
        pool=WAREHOUSE_POOL,
        deps=[landing_key(entity)],
        automation_condition=BRONZE_AUTOMATION,
        kinds={engine, "csv" if spec.format == "csv" else "json"},
        owners=medallion.owners,
        check_specs=check_specs(key, own_checks),
        description=(
            f"Every record of the landing files `{spec.pattern}` (also .gz/.zst), kept as text with `_source_file`, "
            "`_row_number` and `_ingested_at`. New and changed files are (re)loaded, unchanged ones skipped, deleted "
            "ones removed; files that cannot be read are blocked or rejected by the `bad_files` policy."
        ),
    )
    def bronze(context: dg.AssetExecutionContext, config: BronzeConfig, warehouse: Warehouse, landing: LandingZone):
        folder = landing.folder(contract.DOMAIN)
        try:
            policy = landing.bad_file_policy
            files, arriving = landing.wait_for_files(folder, spec.pattern, log=context.log.info)
        except LandingSettingError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        if arriving:
            context.log.warning(f"{entity}: left for the next run, still being written: "
                                f"{', '.join(f.name for f in arriving)}")
        with warehouse.connect() as conn:
            loader = BronzeLoader(conn, spec, policy)
            if not files and not arriving and not loader.ingested_fingerprints():
                reason = "does not exist" if not folder.is_dir() else f"holds no file matching {spec.pattern}"
                raise dg.Failure(
                    description=(
                        f"No {entity} input: the landing folder {folder.resolve()} {reason}. Put the files there, "
                        "or run `etl-platform demo-data` to generate a sample, or set ETL_PLATFORM_HOME / "
                        "ETL_PLATFORM_LANDING to the right place."
                    ),
                    metadata={"landing_folder": dg.MetadataValue.path(str(folder.resolve()))},
                    allow_retries=False,
                )
            # A missing folder is more likely an unmounted share than a deliberate clean-up: keep bronze then.
            removed = loader.forget_missing([*files, *arriving]) if folder.is_dir() else []
            for name in removed:
                context.log.info(f"{name}: no longer in the landing zone; its rows left bronze")
            pending = loader.pending(files, force=config.force_reload)
            context.log.info(
                f"{entity}: {len(files)} file(s) match {spec.pattern} in {folder}; "
                f"{len(pending)} new or changed, {len(files) - len(pending)} unchanged; bad files: {policy}"
            )
            loads = []
            for number, file in enumerate(pending, start=1):
                load = loader.load(file)
                loads.append(load)
                if load.status == "loaded":
                    context.log.info(
                        f"[{number}/{len(pending)}] {file.name}: {load.rows:,} rows ({file.size / 1e6:,.1f} MB) "
                        f"via {load.loader} in {load.seconds:.1f} s"
                    )
                else:
                    context.log.warning(f"[{number}/{len(pending)}] {file.name} {load.status}: "
                                        f"it {load.problem}")
            metadata = table_metadata(
                conn,
                spec.table,
                describe=contract.column_description,
                landing_folder=dg.MetadataValue.path(str(folder.resolve())),
                bad_file_policy=policy,
                files_loaded=dg.MetadataValue.json([x.file.name for x in loads if x.status == "loaded"]),
                files_not_loaded=dg.MetadataValue.json(
                    {x.file.name: f"{x.status}: {x.problem}" for x in loads if x.status != "loaded"}),
                files_removed=dg.MetadataValue.json(removed),
                files_still_arriving=dg.MetadataValue.json([f.name for f in arriving]),
                files_unchanged=len(files) - len(pending),
                rows_loaded=sum(x.rows for x in loads),
            )
            yield from _with_checks(context, conn, warehouse, key, own_checks, dg.MaterializeResult(metadata=metadata))

    return bronze


# ---------------------------------------------------------------- the models


def declared_model_asset(medallion: Medallion, table: str, engine: str, checks: Checks) -> dg.AssetsDefinition:
    """The asset of a declared model: its step (incremental, with a key) or its scripts (rebuilt whole), then its
    metadata (rows, columns, lineage, the step's counts, its quarantined rows by reason) and in-step checks."""
    model = medallion.models[table]
    key = medallion.key(table)
    step = medallion.steps.get(table)
    scripts = medallion.scripts(table)
    own_checks = _in_step(checks, key)
    describe = medallion.contract.column_description if medallion.contract else None

    @dg.asset(
        key=key,
        deps=medallion.deps(table),  # the tables its SQL reads (sqlglot)
        group_name=medallion.group(table.split(".")[0]),
        pool=WAREHOUSE_POOL,
        automation_condition=DOWNSTREAM_AUTOMATION,
        kinds={engine, "sql"},
        owners=medallion.owners,
        description=model.description or f"{table}, built by {', '.join(model.scripts)}",
        check_specs=check_specs(key, own_checks),
    )
    def sql_model(context: dg.AssetExecutionContext, warehouse: Warehouse, refresh_policy: RefreshPolicy):
        with warehouse.connect() as conn:
            if step is not None:
                run = run_step(warehouse, conn, step, refresh_policy.full_refresh, log=context.log.info,
                               days=refresh_policy.day_range())
                run_metadata = run.metadata()
            else:
                if len(scripts) == 1:
                    warehouse.run_script(conn, scripts[0])
                else:
                    with conn.transaction():
                        for script in scripts:
                            warehouse.run_script(conn, script, own_transaction=False)
                run_metadata = {}
            quarantine, by_reason = model.quarantine, None
            if quarantine:
                by_reason = dict(conn.query(
                    f"SELECT entity || '/' || reason, count(*) FROM {quarantine} GROUP BY ALL ORDER BY 1").fetchall())
            # A model reports the rows it set aside (for the execution log's validation rate); the quarantine
            # table's own rows are those rows, not rows it refused.
            counts = ({"quarantined_rows": sum(by_reason.values())}
                      if by_reason is not None and quarantine != table else {})
            extra = {"quarantined_by_reason": dg.MetadataValue.json(by_reason)} if by_reason is not None else {}
            metadata = table_metadata(conn, table, describe=describe,
                                      **extra, **{"dagster/column_lineage": medallion.column_lineage(table)},
                                      **counts, **run_metadata)
            if by_reason is not None:
                context.log.info(f"{table}: {metadata['dagster/row_count'].value:,} rows; quarantined {by_reason}")
            yield from _with_checks(context, conn, warehouse, key, own_checks, dg.MaterializeResult(metadata=metadata))

    return sql_model


def medallion_assets(medallion: Medallion, engine: str, checks: Checks) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """Every asset of the medallion: landing files and bronze (with a landing contract), then its models; ``engine``
    (the warehouse engine's name) is shown as their kind."""
    assets: list[dg.AssetsDefinition | dg.AssetSpec] = []
    if medallion.contract:
        assets += landing_specs(medallion)
        assets += [bronze_asset(medallion, entity, engine, checks) for entity in medallion.contract.BRONZE]
    assets += [declared_model_asset(medallion, table, engine, checks) for table in medallion.models]
    return assets


def separate_checks(checks: Checks) -> list[dg.AssetChecksDefinition]:
    """The checks that cannot run in their asset's step (``quality.in_step``): one step per asset that has any."""
    return [sql_asset_checks(key, separate) for key, listed in checks.items()
            if (separate := [check for check in listed if not in_step(check)])]
