-- silver.orders: one row per order, typed, from the rows bronze.orders holds (landed from PostgreSQL).
-- Orders without an amount are left out here; a real pipeline would quarantine them with a reason.
CREATE OR REPLACE TABLE silver.orders AS
SELECT
    id                                   AS order_id,
    trim(customer)                       AS customer,
    amount,
    lower(status)                        AS status,
    updated_at,
    CAST(updated_at AS DATE)             AS order_date
FROM bronze.orders
WHERE amount IS NOT NULL;
