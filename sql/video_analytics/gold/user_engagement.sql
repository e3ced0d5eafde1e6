-- gold.user_engagement: one row per silver user. Users without sessions get 0 counts and sums and
-- NULL averages, first/last times and favorite_device. first/last_session_at are session start times.
--
-- Incremental (docs/incremental.md). Inputs: `changed_users(user_id)` and `changed_sessions(session_id, user_id,
-- content_id)`, what changed in silver since this step's last run; the rows of those users are computed again.

CREATE OR REPLACE TEMP TABLE affected_keys AS
SELECT user_id FROM changed_users
UNION
SELECT user_id FROM changed_sessions WHERE user_id IS NOT NULL;

CREATE OR REPLACE TEMP VIEW key_source AS
WITH per_user AS (
    SELECT
        user_id,
        count(*)                   AS sessions_count,
        sum(watch_seconds)         AS total_watch_seconds,
        -- The average of the non-NULL completion_pct, summed exactly (DECIMAL: the same in any row order, on any
        -- engine) and rounded to 6 decimal places: a rebuild, a backfill and a rerun give the same bits.
        CAST(round(CAST(sum(CAST(completion_pct AS DECIMAL(38, 10))) AS DOUBLE) / count(completion_pct), 6) AS DOUBLE)
                                                        AS avg_completion_pct,
        count(DISTINCT content_id) AS distinct_content_count,
        min(started_at)            AS first_session_at,
        max(started_at)            AS last_session_at
    FROM silver.viewing_sessions
    WHERE is_affected(user_id)
    GROUP BY user_id
),
favorite AS (
    -- The device with most sessions; ties broken alphabetically.
    SELECT user_id, device
    FROM silver.viewing_sessions
    WHERE is_affected(user_id)
    GROUP BY user_id, device
    QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY count(*) DESC, device ASC) = 1
)
SELECT
    u.user_id,
    u.country,
    u.subscription_tier,
    coalesce(p.sessions_count, 0)                      AS sessions_count,
    CAST(coalesce(p.total_watch_seconds, 0) AS BIGINT) AS total_watch_seconds,
    p.avg_completion_pct,
    coalesce(p.distinct_content_count, 0)              AS distinct_content_count,
    p.first_session_at,
    p.last_session_at,
    f.device                                           AS favorite_device
FROM silver.users AS u
LEFT JOIN per_user AS p ON p.user_id = u.user_id
LEFT JOIN favorite AS f ON f.user_id = u.user_id
WHERE is_affected(u.user_id);

CREATE TABLE IF NOT EXISTS gold.user_engagement AS SELECT * FROM key_source LIMIT 0;

CREATE OR REPLACE TEMP TABLE before_rows AS
SELECT * FROM gold.user_engagement WHERE is_affected(user_id);
DELETE FROM gold.user_engagement WHERE is_affected(user_id);
INSERT INTO gold.user_engagement SELECT * FROM key_source;

DROP VIEW key_source;
