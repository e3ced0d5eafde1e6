-- gold.daily_viewing: one row per (UTC date of started_at, device, country of the user). Aggregated from
-- gold.viewing_fact, which holds each silver session with its view_date and its user's country already (the
-- same rows as silver.viewing_sessions joined to silver.users: gold_totals_reconcile checks it), so the
-- sessions are not joined to the users a second time.
--
-- Incremental (docs/incremental.md). Input: `changed_cells(view_date, device, country)`, the cells of the facts
-- that changed since this step's last run (before and after the change); only those cells are counted again.
-- A NULL country is a cell of its own, as GROUP BY makes it.

CREATE OR REPLACE TEMP TABLE affected_keys AS SELECT DISTINCT view_date, device, country FROM changed_cells;

CREATE OR REPLACE TEMP TABLE cell_rows AS
SELECT
    f.view_date,
    f.device,
    f.country,
    count(*)                                    AS sessions,
    count(DISTINCT f.user_id)                   AS unique_users,
    CAST(sum(f.watch_seconds) AS BIGINT)        AS total_watch_seconds
FROM gold.viewing_fact AS f
WHERE EXISTS (SELECT 1 FROM affected_keys AS c
              WHERE c.view_date = f.view_date AND c.device = f.device AND c.country IS NOT DISTINCT FROM f.country)
GROUP BY f.view_date, f.device, f.country;

CREATE TABLE IF NOT EXISTS gold.daily_viewing AS SELECT * FROM cell_rows LIMIT 0;

CREATE OR REPLACE TEMP TABLE before_rows AS
SELECT * FROM gold.daily_viewing AS d
WHERE EXISTS (SELECT 1 FROM affected_keys AS c
              WHERE c.view_date = d.view_date AND c.device = d.device AND c.country IS NOT DISTINCT FROM d.country);

DELETE FROM gold.daily_viewing AS d
WHERE EXISTS (SELECT 1 FROM affected_keys AS c
              WHERE c.view_date = d.view_date AND c.device = d.device AND c.country IS NOT DISTINCT FROM d.country);
INSERT INTO gold.daily_viewing SELECT * FROM cell_rows;

DROP TABLE cell_rows;
