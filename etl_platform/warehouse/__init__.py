"""The warehouse: the SQL engine the pipelines transform data on (DuckDB by default)."""

from etl_platform.warehouse.duckdb_warehouse import DuckDBWarehouse, WarehouseLockedError
from etl_platform.warehouse.metadata import table_metadata

__all__ = ["DuckDBWarehouse", "WarehouseLockedError", "table_metadata"]
