"""YAML jobs as Dagster assets: every job file in the jobs folders becomes assets with checks and a schedule.

Folders: ``$ETL_PLATFORM_JOBS`` (several separated by ``:``), default ``$ETL_PLATFORM_HOME/jobs``. Each object of a
job (``source.tables`` / ``objects``; one for a query or a reader plugin) is an asset ``jobs/<tenant>/<job>`` or
``jobs/<tenant>/<job>/<object>`` in the group ``jobs_<tenant>``, with two checks from the asset definition:

- ``conforms_to_schema`` (WARN): no record was quarantined (types, required fields, enums); the quarantine file is
  in the check's metadata;
- ``keys_unique`` (when fields are ``unique`` or ``id_columns`` are set): no key repeats among the records read.

A job with ``schedule`` gets a schedule over its assets. A job file with problems does not take the code location
down: it becomes an asset ``jobs/_invalid/<file name>`` whose description lists the problems and whose
materialization fails naming them; the other jobs load.
"""


import os
from pathlib import Path

import dagster as dg

from etl_platform import settings
from etl_platform.errors import EtlPlatformError
from etl_platform.jobs.model import JobSpec, load_job, validate_job
from etl_platform.jobs.runner import run_object
from etl_platform.jobs.state import job_states
from etl_platform.retries import step_failure, write_retry_policy
from etl_platform.warehouse import WAREHOUSE_POOL, Warehouse

JOBS_ENV = "ETL_PLATFORM_JOBS"
TYPE_NAMES = {"integer": "BIGINT", "number": "DOUBLE", "string": "VARCHAR", "boolean": "BOOLEAN", "date": "DATE",
              "timestamp": "TIMESTAMPTZ", "object": "STRUCT", "array": "LIST"}


class JobRunConfig(dg.Config):
    full_refresh: bool = False  # ignore the saved incremental state: read everything again


def job_folders() -> list[Path]:
    value = os.environ.get(JOBS_ENV)
    return [Path(p) for p in value.split(":") if p] if value else [settings.platform_home() / "jobs"]


def job_files(folders: list[Path]) -> list[Path]:
    return sorted(p for folder in folders if folder.is_dir() for p in [*folder.glob("*.yaml"), *folder.glob("*.yml")])


def build_job_definitions(folders: list[Path] | None = None) -> dg.Definitions:
    assets, schedules = [], []
    for path in job_files(folders if folders is not None else job_folders()):
        problems = validate_job(path)
        if problems:
            assets.append(_invalid_job_asset(path, problems))
            continue
        spec = load_job(path)
        job_assets = [_object_asset(spec, obj) for obj in ((None,) if spec.source_type == "custom" else spec.objects)]
        assets += job_assets
        if spec.schedule:
            job = dg.define_asset_job(f"job_{spec.tenant_id}_{spec.name}", selection=[a.key for a in job_assets])
            schedules.append(dg.ScheduleDefinition(name=f"{spec.tenant_id}_{spec.name}_schedule", job=job,
                                                   cron_schedule=spec.schedule,
                                                   default_status=dg.DefaultScheduleStatus.STOPPED))
    return dg.Definitions(assets=assets, schedules=schedules)


def _key(spec: JobSpec, obj: str | None) -> dg.AssetKey:
    name = spec.object_name(obj)
    return dg.AssetKey(["jobs", spec.tenant_id, spec.name, *([name] if name is not None else [])])


def _object_asset(spec: JobSpec, obj: str | None) -> dg.AssetsDefinition:
    key = _key(spec, obj)
    checks = [dg.AssetCheckSpec("conforms_to_schema", asset=key,
                                description="No record was quarantined: every record had its fields' types, required "
                                            "fields and allowed values.")]
    if spec.key_columns():
        checks.append(dg.AssetCheckSpec("keys_unique", asset=key,
                                        description=f"No two records read share {', '.join(spec.key_columns())}."))
    owner = spec.asset.get("owner")
    columns = [dg.TableColumn(f["name"], TYPE_NAMES.get(f.get("type", "string"), str(f.get("type"))),
                              description=f.get("description"),
                              constraints=dg.TableColumnConstraints(nullable=not f.get("required"),
                                                                    unique=bool(f.get("unique"))))
               for f in spec.fields]

    @dg.asset(
        key=key,
        group_name=f"jobs_{spec.tenant_id}",
        kinds={"python" if spec.source_type == "custom" else spec.source_type,
               "python" if spec.target_type == "custom" else spec.target_type},
        owners=[owner] if isinstance(owner, str) and (owner.startswith("team:") or "@" in owner) else None,
        description=(spec.description or f"Job {spec.name} of {spec.tenant_id}") + f"\n\nJob file: `{spec.path}`",
        metadata={"job_file": str(spec.path), **({"dagster/column_schema": dg.TableSchema(columns=columns)}
                                                 if columns else {})},
        check_specs=checks,
        # retried only when writing again gives the same result (a built-in target's overwrite or upsert)
        retry_policy=write_retry_policy(spec.write_mode()) if spec.target_type != "custom" else None,
        pool=WAREHOUSE_POOL,  # its state is in the warehouse
    )
    def job_asset(context: dg.AssetExecutionContext, config: JobRunConfig, warehouse: Warehouse
                  ) -> dg.MaterializeResult:
        try:  # the incremental state is kept in the warehouse (jobs/state.py)
            result = run_object(spec, obj, config.full_refresh, log=context.log.info, states=job_states(warehouse))
            context.log.info(result.summary())
        except EtlPlatformError as error:  # retried (the step's policy) only when a system did not answer
            raise step_failure(error, {"job_file": str(spec.path)}) from error
        check_results = [dg.AssetCheckResult(check_name="conforms_to_schema", passed=result.records_quarantined == 0,
                                             severity=dg.AssetCheckSeverity.WARN,
                                             metadata={"records_quarantined": result.records_quarantined,
                                                       "quarantine_file": result.quarantine_file or ""})]
        if result.duplicate_keys is not None:
            check_results.append(dg.AssetCheckResult(check_name="keys_unique", passed=result.duplicate_keys == 0,
                                                     severity=dg.AssetCheckSeverity.WARN,
                                                     metadata={"duplicate_keys": result.duplicate_keys}))
        return dg.MaterializeResult(check_results=check_results, metadata={
            "records_read": result.records_read, "records_written": result.records_written,
            "records_quarantined": result.records_quarantined, "dagster/row_count": result.records_written,
            "target": result.target, "batches": result.batches, "seconds": round(result.seconds, 2),
            "state_before": dg.MetadataValue.json(result.state_before),
            "state_after": dg.MetadataValue.json(result.state_after)})

    return job_asset


def _invalid_job_asset(path: Path, problems: list[str]) -> dg.AssetsDefinition:
    listing = "\n".join(f"- {p}" for p in problems)

    @dg.asset(key=["jobs", "_invalid", path.stem.replace("-", "_").replace(".", "_")], group_name="jobs_invalid",
              description=f"The job file `{path}` has {len(problems)} problem(s) and was not loaded:\n\n{listing}")
    def invalid_job(context: dg.AssetExecutionContext) -> None:
        raise dg.Failure(f"{path}: {len(problems)} problem(s): " + "; ".join(problems))

    return invalid_job
