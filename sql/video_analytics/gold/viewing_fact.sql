-- gold.viewing_fact: one row per silver session, with the user's and the content's attributes,
-- and view_date (the UTC date of started_at, as in gold.daily_viewing) for partitioned exports.
CREATE OR REPLACE TABLE gold.viewing_fact AS
SELECT
    s.session_id,
    s.user_id,
    s.content_id,
    s.started_at,
    s.ended_at,
    s.device,
    s.completion_pct,
    s.watch_seconds,
    CAST(timezone('UTC', s.started_at) AS DATE) AS view_date,
    s._source_file,
    s._row_number,
    u.country,
    u.subscription_tier,
    c.title,
    c.content_type,
    c.primary_genre
FROM silver.viewing_sessions AS s
JOIN silver.users   AS u ON u.user_id = s.user_id
JOIN silver.content AS c ON c.content_id = s.content_id;
