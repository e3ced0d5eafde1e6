"""Bronze, silver and gold assets of the video-analytics pipeline.

Asset keys mirror the warehouse tables: ``bronze/users`` is ``bronze.users``. The transformations
are the SQL files in ``sql/video_analytics/``; the assets run them and describe what they wrote.
"""


import os
from datetime import date
from types import SimpleNamespace

import dagster as dg
from pydantic import Field

from etl_platform.landing import BronzeLoader, LandingZone
from etl_platform.landing.files import LandingSettingError
from etl_platform.medallion import DayRange, run_step
from etl_platform.quality import SqlCheck, check_specs, evaluate_checks, in_step
from etl_platform.video_analytics import contract
from etl_platform.video_analytics.checks import CHECKS
from etl_platform.video_analytics.steps import (  # noqa: F401 (re-exported: the pipeline's names, one import away)
    BRONZE_KEYS,
    CONTENT_FEED,
    ENTITIES,
    FACTS_FEED,
    GOLD_KEYS,
    GOLD_TABLES,
    GROUPS,
    LANDING_KEYS,
    QUARANTINE_SCRIPT,
    SESSION_DAY,
    SESSIONS_FEED,
    SILVER_KEYS,
    STEPS,
    USERS_FEED,
    column_lineage,
    sql_deps,
)
from etl_platform.warehouse import WAREHOUSE_POOL, Warehouse, table_metadata

OWNERS = ["team:data-platform"]

# Declarative automation (with the daemon, once the sensors video_analytics_landing_sensor and
# video_analytics_automation are on): a bronze table is loaded when the landing sensor observed its files change,
# and each table below follows when what it reads was updated and none of it is missing or in progress. A change to
# the users files runs bronze/users and what is built from it, not the whole job (docs/video_analytics.md).
BRONZE_AUTOMATION = (dg.AutomationCondition.any_deps_updated().since_last_handled()
                     & ~dg.AutomationCondition.in_progress()).with_label("landing files changed")
DOWNSTREAM_AUTOMATION = dg.AutomationCondition.eager()
FULL_REFRESH_ENV = "ETL_PLATFORM_FULL_REFRESH"
REBUILD_DAYS_ENV = "ETL_PLATFORM_REBUILD_DAYS"


class RefreshPolicy(dg.ConfigurableResource):
    """Whether the silver and gold steps process what changed since their last run (the default) or rebuild from
    all of bronze. One switch for a run: ``ETL_PLATFORM_FULL_REFRESH=1``, or the run config
    ``resources: {refresh_policy: {config: {full_refresh: true}}}``. ``days`` (``ETL_PLATFORM_REBUILD_DAYS``) also
    builds a range of days of sessions again in silver.viewing_sessions, gold.viewing_fact and gold.daily_viewing
    (a backfill of those days, in one run; docs/incremental.md)."""

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


def _checks_in_step(key: dg.AssetKey) -> list[SqlCheck]:
    """The asset's checks that run in its own step, after it (the others: checks.build_asset_checks)."""
    return [check for check in CHECKS.get(key, []) if in_step(check)]


def _with_checks(context: dg.AssetExecutionContext, conn, warehouse: Warehouse, key: dg.AssetKey,
                 result: dg.MaterializeResult):
    """The asset's materialization, then its checks' results (a failed blocking check fails the step, and what is
    downstream does not run)."""
    yield result
    yield from evaluate_checks(conn, key, _checks_in_step(key), SimpleNamespace(warehouse=warehouse), context.log,
                               selected=context.selected_asset_check_keys)


class BronzeConfig(dg.Config):
    force_reload: bool = Field(
        default=False, description="Re-ingest every landing file, even those unchanged since they were ingested."
    )


# ---------------------------------------------------------------- bronze


def _bronze_asset(entity: str, engine: str) -> dg.AssetsDefinition:
    spec = contract.BRONZE[entity]

    @dg.asset(
        key=BRONZE_KEYS[entity],
        group_name=GROUPS["bronze"],
        pool=WAREHOUSE_POOL,
        deps=[LANDING_KEYS[entity]],
        automation_condition=BRONZE_AUTOMATION,
        kinds={engine, "csv" if spec.format == "csv" else "json"},
        owners=OWNERS,
        check_specs=check_specs(BRONZE_KEYS[entity], _checks_in_step(BRONZE_KEYS[entity])),
        description=(
            f"Every record of the landing files `{spec.pattern}` (also .gz/.zst), kept as text with `_source_file`, "
            "`_row_number` and `_ingested_at`. New and changed files are (re)loaded, unchanged ones skipped, deleted "
            "ones removed; files that cannot be read are blocked or rejected by the `bad_files` policy."
        ),
    )
    def bronze_asset(context: dg.AssetExecutionContext, config: BronzeConfig, warehouse: Warehouse,
                     landing: LandingZone):
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
            yield from _with_checks(context, conn, warehouse, BRONZE_KEYS[entity],
                                    dg.MaterializeResult(metadata=metadata))

    return bronze_asset


# ---------------------------------------------------------------- silver


def _silver_asset(entity: str, description: str, engine: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=SILVER_KEYS[entity],
        deps=sql_deps(entity),  # the tables its SQL reads (sqlglot: video_analytics/steps.py)
        group_name=GROUPS["silver"],
        pool=WAREHOUSE_POOL,
        automation_condition=DOWNSTREAM_AUTOMATION,
        kinds={engine, "sql"},
        owners=OWNERS,
        description=description,
        check_specs=check_specs(SILVER_KEYS[entity], _checks_in_step(SILVER_KEYS[entity])),
    )
    def silver_asset(context: dg.AssetExecutionContext, warehouse: Warehouse, refresh_policy: RefreshPolicy):
        with warehouse.connect() as conn:
            if entity == "quarantine":
                warehouse.run_script(conn, QUARANTINE_SCRIPT)
                run_metadata = {}
            else:
                run = run_step(warehouse, conn, STEPS[entity], refresh_policy.full_refresh, log=context.log.info,
                               days=refresh_policy.day_range())
                run_metadata = run.metadata()
            quarantine = "silver.quarantine" if entity == "quarantine" else f"silver._quarantine_{entity}"
            by_reason = conn.query(
                f"SELECT entity || '/' || reason, count(*) FROM {quarantine} GROUP BY ALL ORDER BY 1"
            ).fetchall()
            # An entity's table reports the rows it set aside (its invalid rows, for the execution log's validation
            # rate); the quarantine table's own rows are those rows, not rows it refused.
            counts = {} if entity == "quarantine" else {"quarantined_rows": sum(count for _, count in by_reason)}
            metadata = table_metadata(
                conn,
                f"silver.{entity}",
                describe=contract.column_description,
                quarantined_by_reason=dg.MetadataValue.json(dict(by_reason)),
                **{"dagster/column_lineage": column_lineage(entity)},
                **counts,
                **run_metadata,
            )
            context.log.info(f"silver.{entity}: {metadata['dagster/row_count'].value:,} rows; "
                             f"quarantined {dict(by_reason)}")
            yield from _with_checks(context, conn, warehouse, SILVER_KEYS[entity],
                                    dg.MaterializeResult(metadata=metadata))

    return silver_asset


# ---------------------------------------------------------------- gold


def _gold_asset(table: str, description: str, engine: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=GOLD_KEYS[table],
        deps=sql_deps(table),  # the tables its SQL reads (sqlglot: video_analytics/steps.py)
        group_name=GROUPS["gold"],
        pool=WAREHOUSE_POOL,
        automation_condition=DOWNSTREAM_AUTOMATION,
        kinds={engine, "sql"},
        owners=OWNERS,
        description=description,
        check_specs=check_specs(GOLD_KEYS[table], _checks_in_step(GOLD_KEYS[table])),
    )
    def gold_asset(context: dg.AssetExecutionContext, warehouse: Warehouse, refresh_policy: RefreshPolicy):
        with warehouse.connect() as conn:
            run = run_step(warehouse, conn, STEPS[table], refresh_policy.full_refresh, log=context.log.info,
                           days=refresh_policy.day_range())
            metadata = table_metadata(conn, f"gold.{table}", describe=contract.column_description,
                                      **{"dagster/column_lineage": column_lineage(table)}, **run.metadata())
            yield from _with_checks(context, conn, warehouse, GOLD_KEYS[table], dg.MaterializeResult(metadata=metadata))

    return gold_asset


def landing_specs() -> list[dg.AssetSpec]:
    """Each entity's landing files as an external asset: observed by the landing sensor (a new data version when the
    files change), read by its bronze asset."""
    return [
        dg.AssetSpec(
            LANDING_KEYS[entity], group_name=GROUPS["landing"], owners=OWNERS,
            kinds={"csv" if spec.format == "csv" else "json", "file"},
            description=f"The landing files `{spec.pattern}` (also .gz/.zst) in the landing folder, as the landing "
                        "sensor last saw them settled (its observations carry a digest of their fingerprints).")
        for entity, spec in contract.BRONZE.items()
    ]


def build_assets(engine: str = "duckdb") -> list[dg.AssetsDefinition]:
    """The pipeline's assets; ``engine`` (the warehouse engine's name) is shown as their kind."""
    bronze = [_bronze_asset(entity, engine) for entity in ENTITIES]
    silver = [
        _silver_asset(
            "users",
            "Users typed and cleaned, one row per user_id (greatest updated_at wins). "
            "Rows with a bad user_id or signup_date are quarantined.", engine,
        ),
        _silver_asset(
            "content",
            "Content items flattened from JSON, one row per content_id (greatest updated_at wins). "
            "Malformed lines and bad content_ids are quarantined.", engine,
        ),
        _silver_asset(
            "viewing_sessions",
            "Viewing sessions typed, with watch_seconds, one row per session_id (latest ended_at wins). "
            "Bad ids, timestamps, durations, completion values and orphans are quarantined.", engine,
        ),
        _silver_asset(
            "quarantine",
            "Every rejected record with the first rule it broke: entity, reason, source_file, row_number, raw.", engine,
        ),
    ]
    gold = [
        _gold_asset("user_engagement", "One row per silver user: sessions, watch time, completion, favorite device.",
                    engine),
        _gold_asset(
            "content_performance", "One row per silver content item: views, viewers, watch time, completion rate.",
            engine,
        ),
        _gold_asset("daily_viewing", "One row per (UTC view_date, device, country): sessions, users, watch time "
                    "(aggregated from gold.viewing_fact).", engine),
        _gold_asset("viewing_fact", "One row per silver session with the user's and the content's attributes.",
                    engine),
    ]
    return [*bronze, *silver, *gold]
