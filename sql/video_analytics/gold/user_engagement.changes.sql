-- What one incremental run of user_engagement.sql changed (docs/incremental.md): `changes`, the old and new images'
-- keys of the rows it replaced, from `before_rows` (left by user_engagement.sql). Not run in a full refresh.

CREATE OR REPLACE TEMP TABLE after_rows AS
SELECT * FROM gold.user_engagement WHERE user_id IN (SELECT user_id FROM affected_keys);
CREATE OR REPLACE TEMP TABLE changes AS
SELECT user_id, 'old' AS image FROM (SELECT * FROM before_rows EXCEPT SELECT * FROM after_rows)
UNION ALL
SELECT user_id, 'new' AS image FROM (SELECT * FROM after_rows EXCEPT SELECT * FROM before_rows);
