"""When the pipeline runs: a daily schedule of the whole job, and declarative automation: a sensor watches the
landing files, and the automation conditions run what the changed files feed."""


import hashlib
import json
from fnmatch import fnmatch

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG  # the tag an event's data version is in

from etl_platform.landing import LandingZone, discover_files
from etl_platform.landing.files import pattern_globs, settled
from etl_platform.video_analytics import contract
from etl_platform.video_analytics.assets import GROUPS, LANDING_KEYS
from etl_platform.video_analytics.exports import GROUP as EXPORTS_GROUP

video_analytics_job = dg.define_asset_job(
    "video_analytics_pipeline",
    selection=dg.AssetSelection.groups(*GROUPS.values(), EXPORTS_GROUP),
    description="The video-analytics medallion pipeline: landing files -> bronze -> silver -> gold, with checks.",
)

daily_schedule = dg.ScheduleDefinition(
    name="video_analytics_daily",
    job=video_analytics_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    description="Runs the whole pipeline every day at 03:00 UTC (new or changed files are loaded; the rest is rebuilt).",
)


def landing_snapshot(landing: LandingZone) -> dict[str, tuple[str, str, int]]:
    """``{file name: (fingerprint, entity, modified_ns)}`` of the pipeline's landing files that are not still being
    written (modified less than ``landing.settle_seconds`` ago: those wait for a later tick)."""
    folder = landing.folder(contract.DOMAIN)
    return {
        file.name: (file.fingerprint, entity, file.modified_ns)
        for entity, spec in contract.BRONZE.items()
        for file in settled(discover_files(folder, spec.pattern), landing.settle_time)
    }


def _already_loaded(instance: dg.DagsterInstance, current: dict[str, tuple[str, str, int]]) -> dict[str, str]:
    """The sensor's first tick (no cursor): the files its entity's bronze asset was materialized after — a run
    (by hand, by the schedule) has loaded them already, so they are not a change to start another run for."""
    loaded_at: dict[str, float] = {}
    for entity in {entity for _, entity, _ in current.values()}:
        event = instance.get_latest_materialization_event(dg.AssetKey(["bronze", entity]))
        loaded_at[entity] = event.timestamp if event is not None else float("-inf")
    return {name: fingerprint for name, (fingerprint, entity, modified_ns) in current.items()
            if modified_ns / 1e9 < loaded_at[entity]}


@dg.sensor(
    name="video_analytics_landing_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches the landing files: for each entity whose settled files changed (new, changed or deleted), "
    "it reports landing/<entity> updated (an external asset's materialization, with a digest of the files' "
    "fingerprints as its data version, in no run); declarative "
    "automation (the sensor video_analytics_automation) then runs that entity's bronze asset and what is built from "
    "it. The cursor holds each file's fingerprint as last seen; on its first tick, files older than their bronze "
    "asset's last materialization count as seen (a run loaded them already).",
)
def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
    current = landing_snapshot(landing)
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else _already_loaded(context.instance, current)
    fingerprints = {name: fingerprint for name, (fingerprint, _, _) in current.items()}
    entity_of = {name: entity for name, (_, entity, _) in current.items()}
    changed = {name for name, fingerprint in fingerprints.items() if seen.get(name) != fingerprint}
    gone = {name for name in seen if name not in fingerprints}
    entities = sorted({entity_of[name] for name in changed} | {_entity(name) for name in gone} - {None})
    if context.cursor or fingerprints:
        context.update_cursor(json.dumps(fingerprints, sort_keys=True))
    if not entities:
        return dg.SkipReason(f"No new, changed or deleted files in {landing.folder(contract.DOMAIN)}")
    updates = []
    for entity in entities:
        files = {name: fingerprint for name, fingerprint in fingerprints.items() if entity_of[name] == entity}
        digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:32]
        updates.append(dg.AssetMaterialization(
            asset_key=LANDING_KEYS[entity], tags={DATA_VERSION_TAG: digest},
            metadata={"files": len(files), "changed": ", ".join(sorted(n for n in changed if entity_of[n] == entity)),
                      "deleted": ", ".join(sorted(n for n in gone if _entity(n) == entity))}))
        context.log.info(f"landing/{entity}: files changed; data version {digest}")
    return dg.SensorResult(asset_events=updates)


def _entity(file_name: str) -> str | None:
    """The entity whose pattern a (deleted) landing file's name matches."""
    return next((entity for entity, spec in contract.BRONZE.items()
                 if any(fnmatch(file_name, glob) for glob in pattern_globs(spec.pattern))), None)


video_analytics_automation = dg.AutomationConditionSensorDefinition(
    "video_analytics_automation",
    target=dg.AssetSelection.groups(GROUPS["bronze"], GROUPS["silver"], GROUPS["gold"], EXPORTS_GROUP),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Evaluates the pipeline's automation conditions: a bronze table when its landing files were reported "
    "to change, each table below when what it reads was updated (AutomationCondition.eager()).",
)
