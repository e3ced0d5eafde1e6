"""When the pipeline runs: a daily schedule, and a sensor that starts a run for each new batch of files."""


import hashlib
import json

import dagster as dg

from etl_platform.landing import LandingZone, discover_files
from etl_platform.landing.files import settled
from etl_platform.video_analytics import contract
from etl_platform.video_analytics.assets import GROUPS
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
    job=video_analytics_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Starts one pipeline run for each new batch of new or changed landing files. "
    "The cursor holds each file's fingerprint (size and modification time) as last seen; on its first tick, files "
    "older than their bronze asset's last materialization count as seen (a run loaded them already).",
)
def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
    current = landing_snapshot(landing)
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else _already_loaded(context.instance, current)
    fingerprints = {name: fingerprint for name, (fingerprint, _, _) in current.items()}
    changed = {name: fingerprint for name, fingerprint in fingerprints.items() if seen.get(name) != fingerprint}
    if not changed:
        if not context.cursor and fingerprints:
            context.update_cursor(json.dumps({**seen, **fingerprints}, sort_keys=True))
        return dg.SkipReason(f"No new or changed files in {landing.folder(contract.DOMAIN)}")
    context.update_cursor(json.dumps({**seen, **fingerprints}, sort_keys=True))
    batch = json.dumps(changed, sort_keys=True)
    return dg.RunRequest(
        run_key=hashlib.sha256(batch.encode()).hexdigest()[:32],
        tags={"etl_platform/landing_files": ", ".join(sorted(changed))[:1000]},
    )
