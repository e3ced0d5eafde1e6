-- What one incremental run of viewing_fact.sql changed (docs/incremental.md): `changes`, the old and new images'
-- keys of the rows it replaced, from `before_rows` (left by viewing_fact.sql). Not run in a full refresh.

-- What changed, for gold.daily_viewing: the (view_date, device, country) cells of the old and new facts.
CREATE OR REPLACE TEMP TABLE after_rows AS
SELECT * FROM gold.viewing_fact WHERE session_id IN (SELECT session_id FROM affected_keys);
CREATE OR REPLACE TEMP TABLE changes AS
SELECT session_id, view_date, device, country, 'old' AS image
FROM (SELECT * FROM before_rows EXCEPT SELECT * FROM after_rows)
UNION ALL
SELECT session_id, view_date, device, country, 'new' AS image
FROM (SELECT * FROM after_rows EXCEPT SELECT * FROM before_rows);
