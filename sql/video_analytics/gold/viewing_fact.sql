-- gold.viewing_fact: one row per silver session, with the user's and the content's attributes,
-- and view_date (the UTC date of started_at, as in gold.daily_viewing) for partitioned exports.
--
-- Incremental (docs/incremental.md). Inputs: `changed_sessions(session_id, user_id, content_id)`,
-- `changed_users(user_id)`, `changed_content(content_id)`: what changed in silver since this step's last run.
-- The facts of those sessions, and of every session of those users and content items, are built again.

-- Every fact as silver makes it now; only the changed ones are written (on Spark a script's temporary view is
-- computed once, as a temporary table is).
CREATE OR REPLACE TEMP VIEW fact_source AS
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

CREATE TABLE IF NOT EXISTS gold.viewing_fact AS SELECT * FROM fact_source LIMIT 0;

-- The facts to build again: the changed sessions (before and after), and every session of a changed user or
-- content item (silver.viewing_sessions is built before this table, so it names them all). UNION ALL: a session
-- may be named twice (the keys are only matched against); in a full run every part names every session.
CREATE OR REPLACE TEMP TABLE affected_keys AS
SELECT session_id FROM changed_sessions
UNION ALL
SELECT session_id FROM silver.viewing_sessions WHERE user_id IN (SELECT user_id FROM changed_users)
UNION ALL
SELECT session_id FROM silver.viewing_sessions WHERE content_id IN (SELECT content_id FROM changed_content);

-- is_affected(session_id): the session is in affected_keys; in a full run it is true (every session is), so a
-- full run does not match 10M facts against 30M keys (docs/incremental.md).
CREATE OR REPLACE TEMP TABLE before_rows AS
SELECT * FROM gold.viewing_fact WHERE is_affected(session_id);

DELETE FROM gold.viewing_fact WHERE is_affected(session_id);
INSERT INTO gold.viewing_fact
SELECT * FROM fact_source WHERE is_affected(session_id);

DROP VIEW fact_source;
