-- Sessions, viewers and watch hours per UTC day and primary genre (unknown when the content has none).
SELECT
    view_date,
    coalesce(primary_genre, 'unknown')          AS primary_genre,
    count(*)                                    AS sessions,
    count(DISTINCT user_id)                     AS viewers,
    round(sum(watch_seconds) / 3600.0, 2)       AS watch_hours
FROM gold.viewing_fact
GROUP BY view_date, coalesce(primary_genre, 'unknown')
