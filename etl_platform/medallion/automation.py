"""When a declared medallion runs: its job and schedule, and declarative automation — a sensor watches the landing
files, and the automation conditions run what the changed files feed (docs/video_analytics.md)."""

from __future__ import annotations

import hashlib
import json
from fnmatch import fnmatch

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG  # the tag an event's data version is in

from etl_platform.landing import LandingZone, discover_files
from etl_platform.landing.files import pattern_globs, settled
from etl_platform.medallion.assets import landing_key
from etl_platform.medallion.declaration import JobDeclaration, Medallion


def medallion_job(medallion: Medallion, job: JobDeclaration) -> dg.UnresolvedAssetJobDefinition:
    """Every asset of the medallion's groups and of ``job.include_groups``."""
    groups = [medallion.group(layer) for layer in medallion.layers()]
    return dg.define_asset_job(job.name, selection=dg.AssetSelection.groups(*groups, *job.include_groups),
                               description=job.description)


def medallion_schedule(job_definition: dg.UnresolvedAssetJobDefinition, job: JobDeclaration) -> dg.ScheduleDefinition:
    schedule = job.schedule
    return dg.ScheduleDefinition(name=schedule.name, job=job_definition, cron_schedule=schedule.cron,
                                 execution_timezone=schedule.timezone, description=schedule.description)


def automation_sensor(medallion: Medallion, name: str, include_groups: list[str]) -> dg.AutomationConditionSensorDefinition:
    groups = [medallion.group(layer) for layer in medallion.layers() if layer != "landing"]
    return dg.AutomationConditionSensorDefinition(
        name,
        target=dg.AssetSelection.groups(*groups, *include_groups),
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Evaluates the pipeline's automation conditions: a bronze table when its landing files were "
        "reported to change, each table below when what it reads was updated (AutomationCondition.eager()).",
    )


def automation_definitions(medallion: Medallion) -> tuple[list, list, list]:
    """The jobs, schedules and sensors its declaration names (``job``, ``landing.sensor``, ``automation_sensor``):
    ``([job], [schedule], [landing sensor, automation sensor])``, each list holding what is declared."""
    job, automation = medallion.job, medallion.automation_sensor
    jobs, schedules, sensors = [], [], []
    if job:
        jobs.append(medallion_job(medallion, job))
        if job.schedule:
            schedules.append(medallion_schedule(jobs[0], job))
    if medallion.landing and medallion.landing.sensor:
        sensors.append(landing_sensor(medallion, medallion.landing.sensor, automation))
    if automation:
        sensors.append(automation_sensor(medallion, automation, job.include_groups if job else []))
    return jobs, schedules, sensors


def landing_snapshot(medallion: Medallion, landing: LandingZone) -> dict[str, tuple[str, str, int]]:
    """``{file name: (fingerprint, entity, modified_ns)}`` of the medallion's landing files that are not still being
    written (modified less than ``landing.settle_seconds`` ago: those wait for a later tick)."""
    contract = medallion.contract
    folder = landing.folder(contract.DOMAIN)
    return {
        file.name: (file.fingerprint, entity, file.modified_ns)
        for entity, spec in contract.BRONZE.items()
        for file in settled(discover_files(folder, spec.pattern), landing.settle_time)
    }


def _already_loaded(medallion: Medallion, instance: dg.DagsterInstance,
                    current: dict[str, tuple[str, str, int]]) -> dict[str, str]:
    """The sensor's first tick (no cursor): the files its entity's bronze asset was materialized after — a run
    (by hand, by the schedule) has loaded them already, so they are not a change to start another run for."""
    loaded_at: dict[str, float] = {}
    for entity in {entity for _, entity, _ in current.values()}:
        key = medallion.key(medallion.contract.BRONZE[entity].table)
        event = instance.get_latest_materialization_event(key)
        loaded_at[entity] = event.timestamp if event is not None else float("-inf")
    return {name: fingerprint for name, (fingerprint, entity, modified_ns) in current.items()
            if modified_ns / 1e9 < loaded_at[entity]}


def landing_sensor(medallion: Medallion, name: str, automation_sensor_name: str | None) -> dg.SensorDefinition:
    contract = medallion.contract

    def entity_of_name(file_name: str) -> str | None:
        """The entity whose pattern a (deleted) landing file's name matches."""
        return next((entity for entity, spec in contract.BRONZE.items()
                     if any(fnmatch(file_name, glob) for glob in pattern_globs(spec.pattern))), None)

    @dg.sensor(
        name=name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Watches the landing files: for each entity whose settled files changed (new, changed or "
        "deleted), it reports landing/<entity> updated (an external asset's materialization, with a digest of the "
        "files' fingerprints as its data version, in no run); declarative automation (the sensor "
        f"{automation_sensor_name or 'of the automation conditions'}) then runs that entity's bronze asset and what "
        "is built from it. The cursor holds each file's fingerprint as last seen; on its first tick, files older than "
        "their bronze asset's last materialization count as seen (a run loaded them already).",
    )
    def watch_landing(context: dg.SensorEvaluationContext, landing: LandingZone):
        current = landing_snapshot(medallion, landing)
        seen: dict[str, str] = (json.loads(context.cursor) if context.cursor
                                else _already_loaded(medallion, context.instance, current))
        fingerprints = {file: fingerprint for file, (fingerprint, _, _) in current.items()}
        entity_of = {file: entity for file, (_, entity, _) in current.items()}
        changed = {file for file, fingerprint in fingerprints.items() if seen.get(file) != fingerprint}
        gone = {file for file in seen if file not in fingerprints}
        entities = sorted({entity_of[file] for file in changed} | {entity_of_name(file) for file in gone} - {None})
        if context.cursor or fingerprints:
            context.update_cursor(json.dumps(fingerprints, sort_keys=True))
        if not entities:
            return dg.SkipReason(f"No new, changed or deleted files in {landing.folder(contract.DOMAIN)}")
        updates = []
        for entity in entities:
            files = {file: fingerprint for file, fingerprint in fingerprints.items() if entity_of[file] == entity}
            digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:32]
            updates.append(dg.AssetMaterialization(
                asset_key=landing_key(entity), tags={DATA_VERSION_TAG: digest},
                metadata={"files": len(files),
                          "changed": ", ".join(sorted(f for f in changed if entity_of[f] == entity)),
                          "deleted": ", ".join(sorted(f for f in gone if entity_of_name(f) == entity))}))
            context.log.info(f"landing/{entity}: files changed; data version {digest}")
        return dg.SensorResult(asset_events=updates)

    return watch_landing
