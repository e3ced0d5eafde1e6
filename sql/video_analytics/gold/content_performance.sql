-- gold.content_performance: one row per silver content item.
-- completion_rate = sessions with completion_pct >= 90 / sessions with a non-NULL completion_pct.
CREATE OR REPLACE TABLE gold.content_performance AS
WITH per_content AS (
    SELECT
        content_id,
        count(*)                                        AS views,
        count(DISTINCT user_id)                         AS unique_viewers,
        sum(watch_seconds)                              AS total_watch_seconds,
        -- The average of the non-NULL completion_pct, summed exactly (DECIMAL: the same in any row order, on any
        -- engine) and rounded to 6 decimal places: a rebuild, a backfill and a rerun give the same bits.
        CAST(round(CAST(sum(CAST(completion_pct AS DECIMAL(38, 10))) AS DOUBLE) / count(completion_pct), 6) AS DOUBLE)
                                                        AS avg_completion_pct,
        count(*) FILTER (WHERE completion_pct >= 90)    AS completed_sessions,
        count(completion_pct)                           AS sessions_with_completion
    FROM silver.viewing_sessions
    GROUP BY content_id
)
SELECT
    c.content_id,
    c.title,
    c.content_type,
    c.primary_genre,
    coalesce(p.views, 0)                                AS views,
    coalesce(p.unique_viewers, 0)                       AS unique_viewers,
    CAST(coalesce(p.total_watch_seconds, 0) AS BIGINT)  AS total_watch_seconds,
    p.avg_completion_pct,
    CASE WHEN p.sessions_with_completion > 0
         THEN p.completed_sessions / p.sessions_with_completion END AS completion_rate
FROM silver.content AS c
LEFT JOIN per_content AS p ON p.content_id = c.content_id;
