-- The primary genre with the most sessions on each day (ties: alphabetical), and its share of the day's sessions.
SELECT
    view_date,
    primary_genre,
    sessions,
    round(sessions / sum(sessions) OVER (PARTITION BY view_date), 4) AS share_of_day
FROM insights.genre_daily
QUALIFY row_number() OVER (PARTITION BY view_date ORDER BY sessions DESC, primary_genre) = 1
