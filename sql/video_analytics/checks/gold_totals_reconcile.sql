-- sum(user_engagement.sessions_count) = sum(content_performance.views) = rows of viewing_fact
-- = rows of silver.viewing_sessions.
WITH totals AS (
    SELECT
        (SELECT coalesce(sum(sessions_count), 0) FROM gold.user_engagement)   AS engagement_sessions,
        (SELECT coalesce(sum(views), 0)          FROM gold.content_performance) AS content_views,
        (SELECT count(*)                         FROM gold.viewing_fact)        AS fact_rows,
        (SELECT count(*)                         FROM silver.viewing_sessions)  AS silver_sessions
)
SELECT
    CAST(engagement_sessions <> silver_sessions AS INTEGER)
    + CAST(content_views <> silver_sessions AS INTEGER)
    + CAST(fact_rows <> silver_sessions AS INTEGER) AS violations,
    format('sum(user_engagement.sessions_count) = {}, sum(content_performance.views) = {}, '
           'viewing_fact rows = {}, silver.viewing_sessions rows = {}',
           engagement_sessions, content_views, fact_rows, silver_sessions) AS details
FROM totals;
