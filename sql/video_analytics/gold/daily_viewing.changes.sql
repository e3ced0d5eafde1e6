-- What one incremental run of daily_viewing.sql changed (docs/incremental.md): `changes`, the old and new images'
-- keys of the rows it replaced, from `before_rows` (left by daily_viewing.sql). Not run in a full refresh.

CREATE OR REPLACE TEMP TABLE changes AS
SELECT view_date, device, country, 'old' AS image FROM (SELECT * FROM before_rows EXCEPT SELECT * FROM after_rows)
UNION ALL
SELECT view_date, device, country, 'new' AS image FROM (SELECT * FROM after_rows EXCEPT SELECT * FROM before_rows);
