"""Pipelines without Python: YAML jobs (seed 003) run by ``etl-platform run`` or as Dagster assets.

``model`` reads and validates a job file; ``runner`` runs it: reader (built-in or plugin) → schema transform →
writer (built-in or plugin), with incremental state saved only after the target committed.
"""

from etl_platform.jobs.model import JobSpec, load_job, validate_job
from etl_platform.jobs.runner import ObjectResult, run_job, run_object

__all__ = ["JobSpec", "load_job", "validate_job", "run_job", "run_object", "ObjectResult"]
