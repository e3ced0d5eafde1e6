-- What one incremental run of content_performance.sql changed (docs/incremental.md): `changes`, the old and new images'
-- keys of the rows it replaced, from `before_rows` (left by content_performance.sql). Not run in a full refresh.

CREATE OR REPLACE TEMP TABLE after_rows AS
SELECT * FROM gold.content_performance WHERE content_id IN (SELECT content_id FROM affected_keys);
CREATE OR REPLACE TEMP TABLE changes AS
SELECT content_id, 'old' AS image FROM (SELECT * FROM before_rows EXCEPT SELECT * FROM after_rows)
UNION ALL
SELECT content_id, 'new' AS image FROM (SELECT * FROM after_rows EXCEPT SELECT * FROM before_rows);
