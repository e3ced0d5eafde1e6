"""SQL medallions: assets built by SQL files that process only what changed since their last run."""

from etl_platform.medallion.incremental import DayRange, Feed, IncrementalStep, StepRun, full_inputs_sql, run_step

__all__ = ["DayRange", "Feed", "IncrementalStep", "StepRun", "full_inputs_sql", "run_step"]
