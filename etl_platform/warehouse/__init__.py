"""The warehouse: the SQL engine the pipelines transform data on (DuckDB by default, or PostgreSQL)."""

from etl_platform.warehouse.base import (
    WAREHOUSE_POOL,
    EngineSettingError,
    SqlScriptError,
    Warehouse,
    WarehouseSession,
)
from etl_platform.warehouse.duckdb_warehouse import DuckDBWarehouse, WarehouseLockedError, WarehouseSpaceError
from etl_platform.warehouse.engines import ENGINE_ENV, warehouse_for
from etl_platform.warehouse.metadata import table_metadata

__all__ = ["ENGINE_ENV", "WAREHOUSE_POOL", "DuckDBWarehouse", "EngineSettingError", "SqlScriptError", "Warehouse",
           "WarehouseLockedError", "WarehouseSession", "WarehouseSpaceError", "table_metadata", "warehouse_for"]
