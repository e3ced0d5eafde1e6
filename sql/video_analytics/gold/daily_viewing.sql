-- gold.daily_viewing: one row per (UTC date of started_at, device, country of the user). Aggregated from
-- gold.viewing_fact, which holds each silver session with its view_date and its user's country already (the
-- same rows as silver.viewing_sessions joined to silver.users: gold_totals_reconcile checks it), so the
-- sessions are not joined to the users a second time.
CREATE OR REPLACE TABLE gold.daily_viewing AS
SELECT
    f.view_date,
    f.device,
    f.country,
    count(*)                                    AS sessions,
    count(DISTINCT f.user_id)                   AS unique_users,
    CAST(sum(f.watch_seconds) AS BIGINT)        AS total_watch_seconds
FROM gold.viewing_fact AS f
GROUP BY f.view_date, f.device, f.country;
