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


def landing_snapshot(landing: LandingZone) -> dict[str, str]:
    """``{file name: fingerprint}`` of the pipeline's landing files that are not still being written
    (modified less than ``landing.settle_seconds`` ago: those wait for a later tick)."""
    folder = landing.folder(contract.DOMAIN)
    return {
        file.name: file.fingerprint
        for spec in contract.BRONZE.values()
        for file in settled(discover_files(folder, spec.pattern), landing.settle_time)
    }


@dg.sensor(
    name="video_analytics_landing_sensor",
    job=video_analytics_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Starts one pipeline run for each new batch of new or changed landing files. "
    "The cursor holds each file's fingerprint (size and modification time) as last seen.",
)
def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current = landing_snapshot(landing)
    changed = {name: fingerprint for name, fingerprint in current.items() if seen.get(name) != fingerprint}
    if not changed:
        return dg.SkipReason(f"No new or changed files in {landing.folder(contract.DOMAIN)}")
    context.update_cursor(json.dumps({**seen, **current}, sort_keys=True))
    batch = json.dumps(changed, sort_keys=True)
    return dg.RunRequest(
        run_key=hashlib.sha256(batch.encode()).hexdigest()[:32],
        tags={"etl_platform/landing_files": ", ".join(sorted(changed))[:1000]},
    )
