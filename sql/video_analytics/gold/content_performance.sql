-- gold.content_performance: one row per silver content item.
-- completion_rate = sessions with completion_pct >= 90 / sessions with a non-NULL completion_pct.
--
-- Incremental (docs/incremental.md). Inputs: `changed_content(content_id)` and `changed_sessions(session_id,
-- user_id, content_id)`, what changed in silver since this step's last run; the rows of those items are computed
-- again.

CREATE OR REPLACE TEMP TABLE affected_keys AS
SELECT content_id FROM changed_content
UNION
SELECT content_id FROM changed_sessions WHERE content_id IS NOT NULL;

CREATE OR REPLACE TEMP VIEW key_source AS
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
    WHERE is_affected(content_id)
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
LEFT JOIN per_content AS p ON p.content_id = c.content_id
WHERE is_affected(c.content_id);

CREATE TABLE IF NOT EXISTS gold.content_performance AS SELECT * FROM key_source LIMIT 0;

CREATE OR REPLACE TEMP TABLE before_rows AS
SELECT * FROM gold.content_performance WHERE is_affected(content_id);
DELETE FROM gold.content_performance WHERE is_affected(content_id);
INSERT INTO gold.content_performance SELECT * FROM key_source;

DROP VIEW key_source;
