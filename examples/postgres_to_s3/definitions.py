"""A PostgreSQL table → bronze → a silver SQL asset → a parquet dataset on S3 (see the README).

    export ORDERS_PG_HOST=127.0.0.1 ORDERS_PG_DATABASE=test ORDERS_PG_USER=postgres ORDERS_PG_PASSWORD=...
    export ORDERS_EXPORT_BUCKET=lake S3_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
    DAGSTER_HOME=$PWD/.etl_platform/examples_home dagster asset materialize -f examples/postgres_to_s3/definitions.py --select '*'

(An instance of its own: with the main pipeline's ``DAGSTER_HOME`` its assets would sit in that UI's catalog
without a code location.)

The source reads ``public.orders`` (``$ORDERS_PG_TABLE`` names another) incrementally by ``updated_at`` (one hour of lookback for late updates) and
keeps one row per ``id`` in ``bronze.orders``; ``silver.orders`` is ``sql/examples/orders/silver_orders.sql``;
``exports/orders`` writes it to ``s3://$ORDERS_EXPORT_BUCKET/exports/orders/`` as parquet.
"""

import os

import dagster as dg
import pyarrow as pa
from dagster_aws.s3 import S3Resource

from etl_platform.destinations.io_managers import S3DatasetIOManager
from etl_platform.sources import PostgresSource, source_asset
from etl_platform.warehouse import DuckDBWarehouse, table_metadata
from etl_platform.warehouse.arrow import arrow_table

bronze_orders = source_asset("orders", source_key="orders_db", kinds={"postgres"}, group_name="orders")


@dg.asset(key=["silver", "orders"], deps=[bronze_orders.key], group_name="orders", kinds={"duckdb"},
          description="Typed orders with an amount: sql/examples/orders/silver_orders.sql.")
def silver_orders(warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        warehouse.run_script(conn, "examples/orders/silver_orders.sql")
        return dg.MaterializeResult(metadata=table_metadata(conn, "silver.orders"))


@dg.asset(key=["exports", "orders"], deps=[silver_orders], group_name="orders", kinds={"s3", "parquet"},
          io_manager_key="lake", description="silver.orders as a parquet dataset on S3.")
def export_orders(warehouse: DuckDBWarehouse) -> pa.Table:
    with warehouse.connect() as conn:
        return arrow_table(conn.sql("SELECT * FROM silver.orders ORDER BY order_id"))


s3 = S3Resource(endpoint_url=dg.EnvVar("S3_ENDPOINT_URL"), region_name="us-east-1",
                aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"), aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"))

defs = dg.Definitions(
    assets=[bronze_orders, silver_orders, export_orders],
    resources={
        "orders_db": PostgresSource(
            host=dg.EnvVar("ORDERS_PG_HOST"), database=dg.EnvVar("ORDERS_PG_DATABASE"),
            username=dg.EnvVar("ORDERS_PG_USER"), password=dg.EnvVar("ORDERS_PG_PASSWORD"),
            table=os.environ.get("ORDERS_PG_TABLE", "public.orders"), cursor_column="updated_at", lookback=3600,
            primary_key=["id"]),
        "warehouse": DuckDBWarehouse(),
        "lake": S3DatasetIOManager(bucket=dg.EnvVar("ORDERS_EXPORT_BUCKET"), storage_resource=s3, format="parquet"),
    },
    executor=dg.in_process_executor,
)
