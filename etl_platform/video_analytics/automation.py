"""When the reference pipeline runs, as its defs.yaml declares it: a daily schedule of the whole job, and declarative
automation — a sensor watches the landing files, and the automation conditions run what the changed files feed
(medallion/automation.py). The tests use these objects; the code location builds its own from the same file."""

from etl_platform.medallion.automation import automation_definitions
from etl_platform.video_analytics.steps import MEDALLION

(video_analytics_job,), (daily_schedule,), (landing_sensor, video_analytics_automation) = \
    automation_definitions(MEDALLION)
