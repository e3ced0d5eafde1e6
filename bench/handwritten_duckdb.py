"""The baseline issue 11 measures the DuckDB path against: the fastest plain DuckDB script for the
video-analytics contract that we know how to write, independent of the platform's SQL.

    python bench/handwritten_duckdb.py LANDING_FOLDER DATABASE MEMORY_LIMIT TEMP_DIR

It imports nothing but DuckDB and the standard library. One pass per entity: each file is read once by
DuckDB's parallel CSV reader (JSON lines by a single-column read), every field is trimmed and parsed once
(each regular expression runs once per value), the rules are evaluated on those values, the kept rows are
deduplicated with one window, and `raw` JSON is built for quarantined rows only. It writes the contract's
tables (silver.users, silver.content, silver.viewing_sessions, silver.quarantine and the four gold tables) and
no bronze copy, manifest, check or metadata: what a user would write by hand for a one-off load.
`etl_platform_tests/test_bench_baseline.py` proves it gives the platform's silver, quarantine and gold on the
defective demo data. Limits (it is a baseline, not a product): a CSV record DuckDB cannot parse stops it, and a
JSON line longer than DuckDB's line limit too.
"""

import glob
import os
import sys
import time

import duckdb

# Parsing, written out once as macros of this script (DuckDB inlines them; nothing is evaluated twice below
# because each value is parsed once in a subquery and reused).
MACROS = r"""
CREATE OR REPLACE TEMP MACRO tidy(x) AS nullif(trim(x, ' ' || chr(9) || chr(10) || chr(13)), '');
CREATE OR REPLACE TEMP MACRO int_or_null(x) AS
    CASE WHEN regexp_full_match(x, '[+-]?[0-9]+') THEN try_cast(x AS BIGINT) END;
CREATE OR REPLACE TEMP MACRO num_or_null(x) AS
    CASE WHEN regexp_full_match(x, '[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?')
         THEN (SELECT CASE WHEN isfinite(d) THEN d END FROM (SELECT try_cast(x AS DOUBLE) AS d)) END;
CREATE OR REPLACE TEMP MACRO date_or_null(x) AS
    CASE WHEN regexp_full_match(x, '[0-9]{4}-[0-9]{2}-[0-9]{2}') THEN try_cast(x AS DATE) END;
CREATE OR REPLACE TEMP MACRO ts_or_null(x) AS
    CASE WHEN regexp_full_match(x, '[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?)?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)?')
         THEN try_cast(replace(x, ',', '.') AS TIMESTAMPTZ) END;
CREATE OR REPLACE TEMP MACRO cut(x) AS
    CASE WHEN length(x) > 65536 THEN left(x, 65536) || '…[cut: ' || length(x) || ' characters in all; the whole record is in bronze]'
         ELSE x END;
"""


def csv_files(landing: str, prefix: str) -> list[str]:
    return sorted(glob.glob(os.path.join(landing, f"{prefix}*.csv")), key=os.path.basename)


def numbered_csv(conn, table: str, files: list[str]) -> None:
    """All files of an entity in one table with file name and 1-based record number (one read per file)."""
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    for number, path in enumerate(files):
        name = os.path.basename(path).replace("'", "''")
        conn.execute(f"CREATE OR REPLACE TEMP TABLE _one AS SELECT * FROM read_csv('{path}', all_varchar = true, "
                     "header = true)")
        if number == 0:
            conn.execute(f"CREATE TEMP TABLE {table} AS SELECT *, '{name}' AS src, rowid + 1 AS rn FROM _one")
        else:
            conn.execute(f"INSERT INTO {table} SELECT *, '{name}', rowid + 1 FROM _one")
    conn.execute("DROP TABLE IF EXISTS _one")


USERS = """
CREATE TEMP TABLE users_parsed AS
SELECT user_id AS raw_user_id, email AS raw_email, name AS raw_name, country AS raw_country,
       subscription_tier AS raw_tier, signup_date AS raw_signup, birth_year AS raw_birth, updated_at AS raw_updated,
       src, rn,
       int_or_null(tidy(user_id)) AS uid, lower(tidy(email)) AS email, tidy(name) AS name,
       upper(tidy(country)) AS country, lower(tidy(subscription_tier)) AS tier,
       date_or_null(tidy(signup_date)) AS signup, try_cast(int_or_null(tidy(birth_year)) AS INTEGER) AS birth,
       ts_or_null(tidy(updated_at)) AS updated
FROM users_in;

CREATE TABLE silver.users AS
SELECT uid AS user_id, email, name, country,
       CASE WHEN tier IN ('free', 'basic', 'premium') THEN tier ELSE 'unknown' END AS subscription_tier,
       signup AS signup_date, birth AS birth_year, updated AS updated_at, src AS _source_file, rn AS _row_number
FROM users_parsed
WHERE uid > 0 AND signup IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY uid ORDER BY updated DESC NULLS LAST, src DESC, rn DESC) = 1;

CREATE TEMP TABLE q_users AS
SELECT 'users' AS entity,
       CASE WHEN coalesce(uid <= 0, true) THEN 'invalid_user_id' ELSE 'invalid_signup_date' END AS reason,
       src AS source_file, rn AS row_number,
       CAST(json_object('user_id', cut(raw_user_id), 'email', cut(raw_email), 'name', cut(raw_name),
                        'country', cut(raw_country), 'subscription_tier', cut(raw_tier),
                        'signup_date', cut(raw_signup), 'birth_year', cut(raw_birth),
                        'updated_at', cut(raw_updated)) AS VARCHAR) AS raw
FROM users_parsed
WHERE NOT (uid > 0 AND signup IS NOT NULL) OR uid IS NULL;
"""

CONTENT = """
CREATE TEMP TABLE content_parsed AS
WITH docs AS (
    SELECT line, src, rn,
           CASE WHEN json_valid(line) AND json_type(line) = 'OBJECT' THEN CAST(line AS JSON) END AS doc
    FROM content_in
),
fields AS (
    SELECT *, tidy(doc ->> '$.content_id') AS id_text,
           CASE json_type(doc, '$.genres')
               WHEN 'ARRAY' THEN list_filter(list_transform(json_extract_string(doc, '$.genres[*]'), lambda g: tidy(g)),
                                             lambda g: g IS NOT NULL)
               WHEN 'VARCHAR' THEN list_filter([tidy(doc ->> '$.genres')], lambda g: g IS NOT NULL)
           END AS genre_list
    FROM docs
)
SELECT line, src, rn, doc, int_or_null(id_text) AS cid, id_text,
       tidy(doc ->> '$.title') AS title, lower(tidy(doc ->> '$.type')) AS content_type,
       CASE WHEN len(genre_list) > 0 THEN array_to_string(genre_list, ',') END AS genres, genre_list[1] AS primary_genre,
       try_cast(int_or_null(tidy(doc ->> '$.release.year')) AS INTEGER) AS release_year,
       tidy(doc ->> '$.release.country') AS release_country,
       try_cast(int_or_null(tidy(doc ->> '$.duration_minutes')) AS INTEGER) AS duration_minutes,
       CASE WHEN json_type(doc, '$.cast') = 'ARRAY' THEN CAST(json_array_length(doc, '$.cast') AS INTEGER) ELSE 0 END AS cast_count,
       tidy(list_filter(json_extract(doc, '$.cast[*]'), lambda c: lower(tidy(c ->> '$.role')) = 'lead')[1] ->> '$.name') AS lead_actor,
       num_or_null(tidy(doc ->> '$.ratings.imdb')) AS imdb_rating, tidy(doc ->> '$.ratings.age_rating') AS age_rating,
       ts_or_null(tidy(doc ->> '$.updated_at')) AS updated_at
FROM fields;

CREATE TABLE silver.content AS
SELECT cid AS content_id, title, content_type, genres, primary_genre, release_year, release_country, duration_minutes,
       cast_count, lead_actor, imdb_rating, age_rating, updated_at, src AS _source_file, rn AS _row_number
FROM content_parsed
WHERE doc IS NOT NULL AND cid IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY cid ORDER BY updated_at DESC NULLS LAST, src DESC, rn DESC) = 1;

CREATE TEMP TABLE q_content AS
SELECT 'content' AS entity, CASE WHEN doc IS NULL THEN 'malformed_json' ELSE 'invalid_content_id' END AS reason,
       src AS source_file, rn AS row_number,
       CASE WHEN doc IS NULL THEN CAST(to_json(cut(line)) AS VARCHAR) ELSE line END AS raw
FROM content_parsed
WHERE doc IS NULL OR cid IS NULL;
"""

SESSIONS = """
CREATE TEMP TABLE sessions_parsed AS
SELECT p.*,
       CASE
           WHEN sid IS NULL                                   THEN 'invalid_session_id'
           WHEN started IS NULL OR ended IS NULL              THEN 'invalid_timestamp'
           WHEN ended < started                               THEN 'negative_duration'
           WHEN pct_text IS NOT NULL AND pct IS NULL          THEN 'invalid_completion_pct'
           WHEN pct NOT BETWEEN 0 AND 100                     THEN 'completion_out_of_range'
           WHEN NOT EXISTS (SELECT 1 FROM silver.users u WHERE u.user_id = p.uid)     THEN 'orphan_user'
           WHEN NOT EXISTS (SELECT 1 FROM silver.content c WHERE c.content_id = p.cid) THEN 'orphan_content'
       END AS reason
FROM (
    SELECT session_id AS raw_session_id, user_id AS raw_user_id, content_id AS raw_content_id,
           started_at AS raw_started, ended_at AS raw_ended, device AS raw_device, completion_pct AS raw_pct, src, rn,
           int_or_null(tidy(session_id)) AS sid, int_or_null(tidy(user_id)) AS uid,
           int_or_null(tidy(content_id)) AS cid, ts_or_null(tidy(started_at)) AS started,
           ts_or_null(tidy(ended_at)) AS ended, lower(tidy(device)) AS device, tidy(completion_pct) AS pct_text,
           num_or_null(tidy(completion_pct)) AS pct
    FROM sessions_in
) AS p;

CREATE TABLE silver.viewing_sessions AS
SELECT sid AS session_id, uid AS user_id, cid AS content_id, started AS started_at, ended AS ended_at,
       CASE WHEN device IN ('tv', 'mobile', 'web', 'tablet') THEN device ELSE 'other' END AS device,
       pct AS completion_pct, (epoch_us(ended) - epoch_us(started)) // 1000000 AS watch_seconds,
       src AS _source_file, rn AS _row_number
FROM sessions_parsed
WHERE reason IS NULL
QUALIFY row_number() OVER (PARTITION BY sid ORDER BY ended DESC, src DESC, rn DESC) = 1;

CREATE TEMP TABLE q_sessions AS
SELECT 'viewing_sessions' AS entity, reason, src AS source_file, rn AS row_number,
       CAST(json_object('session_id', cut(raw_session_id), 'user_id', cut(raw_user_id),
                        'content_id', cut(raw_content_id), 'started_at', cut(raw_started), 'ended_at', cut(raw_ended),
                        'device', cut(raw_device), 'completion_pct', cut(raw_pct)) AS VARCHAR) AS raw
FROM sessions_parsed
WHERE reason IS NOT NULL;

CREATE TABLE silver.quarantine AS
SELECT * FROM q_users UNION ALL SELECT * FROM q_content UNION ALL SELECT * FROM q_sessions;
"""

GOLD = """
CREATE TABLE gold.viewing_fact AS
SELECT s.session_id, s.user_id, s.content_id, s.started_at, s.ended_at, s.device, s.completion_pct, s.watch_seconds,
       CAST(timezone('UTC', s.started_at) AS DATE) AS view_date, s._source_file, s._row_number,
       u.country, u.subscription_tier, c.title, c.content_type, c.primary_genre
FROM silver.viewing_sessions AS s
JOIN silver.users AS u USING (user_id)
JOIN silver.content AS c USING (content_id);

CREATE TABLE gold.user_engagement AS
WITH per_device AS (
    SELECT user_id, device, count(*) AS n, sum(watch_seconds) AS secs,
           sum(CAST(completion_pct AS DECIMAL(38, 10))) AS pct_sum,  -- exact, as the platform's averages
           count(completion_pct) AS pct_n, min(started_at) AS first_at, max(started_at) AS last_at
    FROM silver.viewing_sessions GROUP BY user_id, device
),
per_user AS (
    -- the favorite device: most sessions, ties alphabetically
    SELECT user_id, CAST(sum(n) AS BIGINT) AS n, sum(secs) AS secs,
           CAST(round(CAST(sum(pct_sum) AS DOUBLE) / nullif(sum(pct_n), 0), 6) AS DOUBLE) AS pct,
           min(first_at) AS first_at, max(last_at) AS last_at, arg_min(device, (-n, device)) AS favorite
    FROM per_device GROUP BY user_id
),
titles AS (SELECT user_id, count(DISTINCT content_id) AS titles FROM silver.viewing_sessions GROUP BY user_id)
SELECT u.user_id, u.country, u.subscription_tier, coalesce(p.n, 0) AS sessions_count,
       CAST(coalesce(p.secs, 0) AS BIGINT) AS total_watch_seconds, p.pct AS avg_completion_pct,
       coalesce(t.titles, 0) AS distinct_content_count, p.first_at AS first_session_at,
       p.last_at AS last_session_at, p.favorite AS favorite_device
FROM silver.users AS u LEFT JOIN per_user AS p USING (user_id) LEFT JOIN titles AS t USING (user_id);

CREATE TABLE gold.content_performance AS
WITH per_content AS (
    SELECT content_id, count(*) AS views, count(DISTINCT user_id) AS viewers, sum(watch_seconds) AS secs,
           CAST(round(CAST(sum(CAST(completion_pct AS DECIMAL(38, 10))) AS DOUBLE) / count(completion_pct), 6)
                AS DOUBLE) AS pct, count(*) FILTER (WHERE completion_pct >= 90) AS completed,
           count(completion_pct) AS reported
    FROM silver.viewing_sessions GROUP BY content_id
)
SELECT c.content_id, c.title, c.content_type, c.primary_genre, coalesce(p.views, 0) AS views,
       coalesce(p.viewers, 0) AS unique_viewers, CAST(coalesce(p.secs, 0) AS BIGINT) AS total_watch_seconds,
       p.pct AS avg_completion_pct, CASE WHEN p.reported > 0 THEN p.completed / p.reported END AS completion_rate
FROM silver.content AS c LEFT JOIN per_content AS p USING (content_id);

CREATE TABLE gold.daily_viewing AS
SELECT view_date, device, country, count(*) AS sessions, count(DISTINCT user_id) AS unique_users,
       CAST(sum(watch_seconds) AS BIGINT) AS total_watch_seconds
FROM gold.viewing_fact GROUP BY ALL;
"""


def run(landing: str, database: str, memory_limit: str, temp_dir: str) -> None:
    conn = duckdb.connect(database, config={"temp_directory": temp_dir,
                                            **({} if memory_limit == "default" else {"memory_limit": memory_limit})})
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("CREATE SCHEMA IF NOT EXISTS silver; CREATE SCHEMA IF NOT EXISTS gold")
    conn.execute(MACROS)
    numbered_csv(conn, "users_in", csv_files(landing, "users"))
    conn.execute(USERS)
    conn.execute("CREATE TEMP TABLE content_in (line VARCHAR, src VARCHAR, rn BIGINT)")
    for path in sorted(glob.glob(os.path.join(landing, "content*.jsonl")), key=os.path.basename):
        with open(path, encoding="utf-8-sig") as handle:
            numbered = [(line.rstrip("\r\n"), number) for number, line in enumerate(handle, start=1) if line.strip()]
        conn.execute("INSERT INTO content_in SELECT unnest($1), $2, unnest($3)",
                     [[line for line, _ in numbered], os.path.basename(path), [number for _, number in numbered]])
    conn.execute(CONTENT)
    numbered_csv(conn, "sessions_in", csv_files(landing, "viewing_sessions"))
    conn.execute(SESSIONS)
    conn.execute(GOLD)
    conn.close()


if __name__ == "__main__":
    started = time.monotonic()
    run(*sys.argv[1:5])
    print(f"handwritten DuckDB script: {time.monotonic() - started:.1f} s")
