-- What one incremental run of viewing_sessions.sql changed (docs/incremental.md): `changes`, the old and new images'
-- keys of the rows it replaced, from `before_rows` (left by viewing_sessions.sql). Not run in a full refresh.

-- What changed, for gold: the old and new images of the sessions (their users and content too).
CREATE OR REPLACE TEMP TABLE after_rows AS
SELECT session_id, user_id, content_id, started_at, ended_at, device, completion_pct, watch_seconds,
       _source_file, _row_number
FROM silver.viewing_sessions WHERE session_id IN (SELECT session_id FROM affected_keys);
CREATE OR REPLACE TEMP TABLE changes AS
SELECT session_id, user_id, content_id, 'old' AS image FROM (SELECT * FROM before_rows EXCEPT SELECT * FROM after_rows)
UNION ALL
SELECT session_id, user_id, content_id, 'new' AS image FROM (SELECT * FROM after_rows EXCEPT SELECT * FROM before_rows);
