"""YAML jobs as a Dagster Component: a ``defs.yaml`` in a project's defs folder loads a folder of job files.

    # defs/crm/defs.yaml
    type: etl_platform.jobs.component.YamlJobs
    attributes:
      jobs_folder: jobs          # relative to this defs.yaml; every *.yaml in it is a job (docs/jobs.md)

Without ``jobs_folder``, the folders of ``$ETL_PLATFORM_JOBS`` (default ``$ETL_PLATFORM_HOME/jobs``): this
project's own ``etl_platform/defs/jobs/defs.yaml`` is that form.

Each job becomes the same assets, checks and schedule as through ``$ETL_PLATFORM_JOBS``
(``etl_platform.jobs.assets``); a broken job file becomes an invalid-job asset naming its problems.
"""

from pathlib import Path

import dagster as dg

from etl_platform.jobs.assets import build_job_definitions, job_folders


class YamlJobs(dg.Component, dg.Model, dg.Resolvable):
    """Every YAML job file (seed 003's form) of ``jobs_folder`` as assets with checks and schedules."""

    jobs_folder: str | None = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        if self.jobs_folder is None:
            return build_job_definitions(job_folders())
        folder = Path(self.jobs_folder)
        if not folder.is_absolute():
            folder = Path(context.path) / folder
        if not folder.is_dir():
            raise FileNotFoundError(f"{context.path}: jobs_folder {self.jobs_folder!r} is not a folder ({folder})")
        return build_job_definitions([folder])
