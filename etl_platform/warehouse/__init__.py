"""The warehouse: the SQL engine the pipelines transform data on (DuckDB by default)."""

from etl_platform.warehouse.duckdb_warehouse import (
    DuckDBWarehouse,
    SqlScriptError,
    WarehouseLockedError,
    WarehouseSpaceError,
)
from etl_platform.warehouse.metadata import table_metadata

__all__ = ["DuckDBWarehouse", "SqlScriptError", "WarehouseLockedError", "WarehouseSpaceError", "table_metadata"]
