"""etl_platform: a data platform on Dagster.

Layout (one module per external system, one place per rule):

- ``etl_platform.settings``: where the platform keeps its files (``ETL_PLATFORM_HOME``).
- ``etl_platform.warehouse``: the SQL engine resource (DuckDB by default) and table metadata.
- ``etl_platform.landing``: discovering landing files and loading them losslessly into bronze.
- ``etl_platform.quality``: reusable SQL-backed asset checks.
- ``etl_platform.video_analytics``: the reference medallion pipeline (assets, checks, automation,
  demo data). Its SQL lives in ``sql/video_analytics/``.
- ``etl_platform.definitions``: the Dagster ``Definitions`` object (``defs``).
"""
