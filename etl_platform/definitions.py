"""The Dagster code location: ``dg`` (a dg project: pyproject.toml's ``[tool.dg]``), ``dagster dev`` and
``dagster asset materialize -m etl_platform.definitions`` all load this.

What it holds is declared in the defs folder, ``etl_platform/defs/``: the reference pipeline, the exports, the YAML
jobs and the platform's upkeep, each a component (``etl_platform.components``), and the resources they share
(``defs/resources.py``: the warehouse engine of ``$ETL_PLATFORM_ENGINE``, read through ``dg.EnvVar`` when a run
starts). A broken YAML job file shows as an invalid-job asset instead of taking the location down.
"""

from __future__ import annotations

import atexit
import gc
import warnings
from pathlib import Path

import dagster as dg
from dagster.components.core.component_tree import ComponentTree


def _load_defs_folder() -> dg.Definitions:
    """The defs folder's definitions, as ``dg.load_from_defs_folder`` builds them minus the catalog of every
    component type installed in the environment it adds at the root: that catalog imports each installed Dagster
    integration (dagster-aws, -gcp, -azure, -pyspark: ~0.8 s and pandas in every run process and sensor tick);
    ``dg list components`` still lists them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        tree = ComponentTree.for_project(Path(__file__).parent)
        return tree.build_defs_at_path(Path("."))


defs = _load_defs_folder()

# Dagster's objects and this location's, made while importing, live as long as the process. Frozen out of the cyclic
# garbage collector's sight, the run's collections no longer walk them again and again; frozen once more at exit,
# the interpreter skips its final full collection (the operating system takes the memory back). Together ~0.5 s of a
# `dagster asset materialize` process (bench/video_analytics.py, 1M sessions), the same for every run worker and
# sensor tick. What stays uncollected is cyclic garbage present at those two moments.
gc.freeze()
atexit.register(gc.freeze)
