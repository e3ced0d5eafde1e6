"""Data-quality checks that run as SQL on the warehouse and report as Dagster asset checks."""

from etl_platform.quality.checks import (
    SqlCheck,
    all_in_range,
    check_specs,
    column_types,
    evaluate_checks,
    in_step,
    no_null,
    sql_asset_checks,
    sql_file_check,
    unique,
)

__all__ = ["SqlCheck", "all_in_range", "check_specs", "column_types", "evaluate_checks", "in_step", "no_null",
           "sql_asset_checks", "sql_file_check", "unique"]
