-- silver.users: one typed, cleaned row per user_id; rows that break a rule go to silver._quarantine_users.
-- Rules run before deduplication, so every copy of a bad row is quarantined.

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

CREATE OR REPLACE TABLE silver.users AS
SELECT user_id, email, name, country, subscription_tier, signup_date, birth_year, updated_at,
       _source_file, _row_number
FROM users_classified
WHERE reason IS NULL
-- The greatest updated_at wins (NULL is oldest); on a tie the later row (file order, then row order).
QUALIFY row_number() OVER (
    PARTITION BY user_id ORDER BY updated_at DESC NULLS LAST, _source_file DESC, _row_number DESC) = 1;

-- raw: the original fields (untrimmed, extra columns merged in), built for quarantined rows only.
CREATE OR REPLACE TABLE silver._quarantine_users AS
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
