-- gold.daily_viewing: one row per (UTC date of started_at, device, country of the user).
CREATE OR REPLACE TABLE gold.daily_viewing AS
SELECT
    CAST(timezone('UTC', s.started_at) AS DATE) AS view_date,
    s.device,
    u.country,
    count(*)                                    AS sessions,
    count(DISTINCT s.user_id)                   AS unique_users,
    CAST(sum(s.watch_seconds) AS BIGINT)        AS total_watch_seconds
FROM silver.viewing_sessions AS s
JOIN silver.users AS u ON u.user_id = s.user_id
GROUP BY ALL;
