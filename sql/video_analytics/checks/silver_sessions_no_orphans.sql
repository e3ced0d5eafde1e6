-- Every silver session points at a silver user and a silver content item.
WITH orphans AS (
    SELECT s.session_id,
           u.user_id IS NULL    AS missing_user,
           c.content_id IS NULL AS missing_content
    FROM silver.viewing_sessions AS s
    LEFT JOIN silver.users   AS u ON u.user_id = s.user_id
    LEFT JOIN silver.content AS c ON c.content_id = s.content_id
    WHERE u.user_id IS NULL OR c.content_id IS NULL
)
SELECT count(*) AS violations,
       format('{} sessions without a user, {} without content; sample session_ids: {}',
              count(*) FILTER (WHERE missing_user), count(*) FILTER (WHERE missing_content),
              coalesce(string_agg(CAST(session_id AS VARCHAR), ', ') FILTER (WHERE rn <= 5), '')) AS details
FROM (SELECT *, row_number() OVER (ORDER BY session_id) AS rn FROM orphans);
