-- silver.users: one typed, cleaned row per user_id; rows that break a rule go to silver._quarantine_users.
-- Rules run before deduplication, so every copy of a bad row is quarantined.
--
-- Incremental (docs/incremental.md): the step gives this script `changed_files(source_file)`, the bronze files
-- loaded, changed or removed since its last run (every file in a full refresh). silver._users_rows keeps every
-- bronze row classified; only the rows of those files are classified again, and only the users they name are
-- deduplicated again. The script leaves `affected_keys` and `before_rows` (their old silver rows) to the step;
-- is_affected(user_id) says a row's user is in affected_keys (true in a full run, where every user is).

CREATE OR REPLACE TEMP TABLE users_classified AS
WITH cleaned AS (
    SELECT
        clean_text(user_id)           AS user_id,
        clean_text(email)             AS email,
        clean_text(name)              AS name,
        clean_text(country)           AS country,
        clean_text(subscription_tier) AS subscription_tier,
        clean_text(signup_date)       AS signup_date,
        clean_text(birth_year)        AS birth_year,
        clean_text(updated_at)        AS updated_at,
        _parse_error,
        _source_file,
        _row_number
    FROM bronze.users
    WHERE _source_file IN (SELECT source_file FROM changed_files)
)
SELECT
    as_integer(user_id)                                          AS user_id,
    lower(email)                                                 AS email,
    name,
    upper(country)                                               AS country,
    CASE WHEN lower(subscription_tier) IN ('free', 'basic', 'premium')
         THEN lower(subscription_tier) ELSE 'unknown' END        AS subscription_tier,
    as_date(signup_date)                                         AS signup_date,
    try_cast(as_integer(birth_year) AS INTEGER)                  AS birth_year,
    as_timestamp(updated_at)                                     AS updated_at,
    _source_file,
    _row_number,
    CASE
        WHEN _parse_error IS NOT NULL                            THEN 'malformed_row'
        WHEN coalesce(as_integer(user_id) <= 0, true)            THEN 'invalid_user_id'
        WHEN as_date(signup_date) IS NULL                        THEN 'invalid_signup_date'
    END                                                          AS reason
FROM cleaned;

CREATE TABLE IF NOT EXISTS silver._users_rows AS SELECT * FROM users_classified LIMIT 0;
CREATE TABLE IF NOT EXISTS silver.users AS
SELECT user_id, email, name, country, subscription_tier, signup_date, birth_year, updated_at, _source_file, _row_number
FROM users_classified LIMIT 0;
CREATE TABLE IF NOT EXISTS silver._quarantine_users AS
SELECT 'users' AS entity, reason, _source_file AS source_file, _row_number AS row_number, _source_file AS raw
FROM users_classified LIMIT 0;

-- The users to deduplicate again: those the changed files named before, and those they name now.
CREATE OR REPLACE TEMP TABLE affected_keys AS
SELECT user_id FROM silver._users_rows
WHERE _source_file IN (SELECT source_file FROM changed_files) AND user_id IS NOT NULL
UNION
SELECT user_id FROM users_classified WHERE user_id IS NOT NULL;

CREATE OR REPLACE TEMP TABLE before_rows AS
SELECT user_id, email, name, country, subscription_tier, signup_date, birth_year, updated_at, _source_file, _row_number
FROM silver.users WHERE is_affected(user_id);

DELETE FROM silver._users_rows WHERE _source_file IN (SELECT source_file FROM changed_files);
INSERT INTO silver._users_rows SELECT * FROM users_classified;

DELETE FROM silver.users WHERE is_affected(user_id);
INSERT INTO silver.users
SELECT user_id, email, name, country, subscription_tier, signup_date, birth_year, updated_at, _source_file, _row_number
FROM silver._users_rows
WHERE reason IS NULL AND is_affected(user_id)
-- The greatest updated_at wins (NULL is oldest); on a tie the later row (file order, then row order).
QUALIFY row_number() OVER (
    PARTITION BY user_id ORDER BY updated_at DESC NULLS LAST, _source_file DESC, _row_number DESC) = 1;

-- raw: the original fields (untrimmed, extra columns merged in), built for quarantined rows only.
DELETE FROM silver._quarantine_users WHERE source_file IN (SELECT source_file FROM changed_files);
INSERT INTO silver._quarantine_users
SELECT 'users' AS entity, q.reason, q._source_file AS source_file, q._row_number AS row_number,
       CAST(json_merge_patch(
           json_object('user_id', raw_text(b.user_id), 'email', raw_text(b.email), 'name', raw_text(b.name),
                       'country', raw_text(b.country), 'subscription_tier', raw_text(b.subscription_tier),
                       'signup_date', raw_text(b.signup_date), 'birth_year', raw_text(b.birth_year),
                       'updated_at', raw_text(b.updated_at)),
           raw_extras(b._extra_fields)) AS VARCHAR) AS raw
FROM users_classified AS q
JOIN bronze.users AS b ON b._source_file = q._source_file AND b._row_number = q._row_number
WHERE q.reason IS NOT NULL;

DROP TABLE users_classified;
