"""The dg defs folder (``[tool.dg.project] defs_module``): each subfolder's ``defs.yaml`` declares a component of
``etl_platform.components``; ``resources.py`` binds the resources they share. ``etl_platform.definitions`` loads
it, so ``dg`` and ``dagster ... -m etl_platform.definitions`` see the same code location."""
