"""When the reference pipeline runs, as its defs.yaml declares it: a daily schedule of the whole job, and declarative
automation — a sensor watches the landing files, and the automation conditions run what the changed files feed
(medallion/automation.py). The tests use these objects; the code location builds its own from the same file."""

from etl_platform.medallion import automation
from etl_platform.medallion.declaration import JobDeclaration, validated
from etl_platform.video_analytics.steps import DEFS_YAML, MEDALLION

_JOB = validated(JobDeclaration, MEDALLION.attributes["job"], f"{DEFS_YAML}: job")
_AUTOMATION_SENSOR = MEDALLION.attributes["automation_sensor"]

video_analytics_job = automation.medallion_job(MEDALLION, _JOB)
daily_schedule = automation.medallion_schedule(video_analytics_job, _JOB)
landing_sensor = automation.landing_sensor(MEDALLION, MEDALLION.landing.sensor, _AUTOMATION_SENSOR)
video_analytics_automation = automation.automation_sensor(MEDALLION, _AUTOMATION_SENSOR, _JOB.include_groups)
