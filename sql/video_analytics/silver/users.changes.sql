-- What one incremental run of users.sql changed (docs/incremental.md): `changes`, the old and new images'
-- keys of the rows it replaced, from `before_rows` (left by users.sql). Not run in a full refresh.

-- What changed, for the steps that read silver.users (gold, and the sessions' orphan rule).
CREATE OR REPLACE TEMP TABLE after_rows AS
SELECT user_id, email, name, country, subscription_tier, signup_date, birth_year, updated_at, _source_file, _row_number
FROM silver.users WHERE user_id IN (SELECT user_id FROM affected_keys);
CREATE OR REPLACE TEMP TABLE changes AS
SELECT user_id, 'old' AS image FROM (SELECT * FROM before_rows EXCEPT SELECT * FROM after_rows)
UNION ALL
SELECT user_id, 'new' AS image FROM (SELECT * FROM after_rows EXCEPT SELECT * FROM before_rows);
