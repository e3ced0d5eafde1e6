-- silver.viewing_sessions: one typed row per session_id; bad rows go to silver._quarantine_viewing_sessions.
-- Orphan rules look up silver.users and silver.content, so those are built first.
--
-- Incremental (docs/incremental.md). Inputs: `changed_files(source_file)` (bronze files loaded, changed or
-- removed since this step's last run), `changed_users(user_id)` and `changed_content(content_id)` (keys whose
-- silver row changed since then). silver._viewing_sessions_rows keeps every bronze row with the rules that need
-- no other table (base_reason); the orphan rules are applied when a session is deduplicated, so a session whose
-- user or content arrives (or leaves) later is evaluated again, as a full rebuild would.

CREATE OR REPLACE TEMP TABLE viewing_sessions_classified AS
WITH cleaned AS (
    SELECT
        clean_text(session_id)     AS session_id,
        clean_text(user_id)        AS user_id,
        clean_text(content_id)     AS content_id,
        as_timestamp(clean_text(started_at)) AS started_at,
        as_timestamp(clean_text(ended_at))   AS ended_at,
        clean_text(device)         AS device,
        clean_text(completion_pct) AS completion_pct,
        _parse_error,
        _source_file,
        _row_number
    FROM bronze.viewing_sessions
    WHERE _source_file IN (SELECT source_file FROM changed_files)
)
SELECT
    as_integer(s.session_id)                 AS session_id,
    as_integer(s.user_id)                    AS user_id,
    as_integer(s.content_id)                 AS content_id,
    s.started_at,
    s.ended_at,
    CASE WHEN lower(s.device) IN ('tv', 'mobile', 'web', 'tablet') THEN lower(s.device) ELSE 'other' END AS device,
    as_number(s.completion_pct)              AS completion_pct,
    whole_seconds_between(s.started_at, s.ended_at) AS watch_seconds,
    s._source_file,
    s._row_number,
    CASE
        WHEN s._parse_error IS NOT NULL                                  THEN 'malformed_row'
        WHEN NOT is_integer_text(s.session_id)                           THEN 'invalid_session_id'
        WHEN s.started_at IS NULL OR s.ended_at IS NULL                  THEN 'invalid_timestamp'
        WHEN s.ended_at < s.started_at                                   THEN 'negative_duration'
        WHEN s.completion_pct IS NOT NULL AND NOT is_number_text(s.completion_pct) THEN 'invalid_completion_pct'
        WHEN as_number(s.completion_pct) NOT BETWEEN 0 AND 100           THEN 'completion_out_of_range'
    END AS base_reason
FROM cleaned AS s;

CREATE TABLE IF NOT EXISTS silver._viewing_sessions_rows AS
SELECT *, base_reason AS reason FROM viewing_sessions_classified LIMIT 0;
CREATE TABLE IF NOT EXISTS silver.viewing_sessions AS
SELECT session_id, user_id, content_id, started_at, ended_at, device, completion_pct, watch_seconds,
       _source_file, _row_number
FROM viewing_sessions_classified LIMIT 0;
CREATE TABLE IF NOT EXISTS silver._quarantine_viewing_sessions AS
SELECT 'viewing_sessions' AS entity, base_reason AS reason, _source_file AS source_file, _row_number AS row_number,
       _source_file AS raw
FROM viewing_sessions_classified LIMIT 0;

-- The valid rows of the files that did not change whose user or content did: their orphan rules are applied again.
CREATE OR REPLACE TEMP TABLE reevaluated AS
SELECT session_id, user_id, content_id, started_at, ended_at, device, completion_pct, watch_seconds,
       _source_file, _row_number, base_reason
FROM silver._viewing_sessions_rows
WHERE user_id IN (SELECT user_id FROM changed_users)
  AND base_reason IS NULL AND _source_file NOT IN (SELECT source_file FROM changed_files)
UNION
SELECT session_id, user_id, content_id, started_at, ended_at, device, completion_pct, watch_seconds,
       _source_file, _row_number, base_reason
FROM silver._viewing_sessions_rows
WHERE content_id IN (SELECT content_id FROM changed_content)
  AND base_reason IS NULL AND _source_file NOT IN (SELECT source_file FROM changed_files);

-- The orphan rules, after the others: a row breaking no other rule needs its user and content in silver.
CREATE OR REPLACE TEMP VIEW evaluated AS
SELECT r.*,
       CASE WHEN r.base_reason IS NOT NULL THEN r.base_reason
            WHEN u.user_id IS NULL         THEN 'orphan_user'
            WHEN c.content_id IS NULL      THEN 'orphan_content'
       END AS reason
FROM (SELECT * FROM viewing_sessions_classified UNION ALL SELECT * FROM reevaluated) AS r
LEFT JOIN silver.users   AS u ON u.user_id = r.user_id
LEFT JOIN silver.content AS c ON c.content_id = r.content_id;

-- The sessions to deduplicate again: those the changed and re-evaluated rows named before and name now.
-- UNION ALL: a session may be named twice (the keys are only matched against); deduplicating 10M keys of a full
-- run cost 1 s.
CREATE OR REPLACE TEMP TABLE affected_keys AS
SELECT session_id FROM silver._viewing_sessions_rows
WHERE _source_file IN (SELECT source_file FROM changed_files) AND session_id IS NOT NULL
UNION ALL
SELECT session_id FROM viewing_sessions_classified WHERE session_id IS NOT NULL
UNION ALL
SELECT session_id FROM reevaluated;

-- is_affected(session_id): the session is in affected_keys (true in a full run: docs/incremental.md).
CREATE OR REPLACE TEMP TABLE before_rows AS
SELECT session_id, user_id, content_id, started_at, ended_at, device, completion_pct, watch_seconds,
       _source_file, _row_number
FROM silver.viewing_sessions WHERE is_affected(session_id);

-- The rows this run quarantines (its quarantine rows are made from bronze below).
CREATE OR REPLACE TEMP TABLE quarantined AS
SELECT _source_file, _row_number, reason FROM evaluated WHERE reason IS NOT NULL;

DELETE FROM silver._viewing_sessions_rows WHERE _source_file IN (SELECT source_file FROM changed_files);
DELETE FROM silver._viewing_sessions_rows AS k
WHERE EXISTS (SELECT 1 FROM reevaluated AS e WHERE e._source_file = k._source_file AND e._row_number = k._row_number);
INSERT INTO silver._viewing_sessions_rows SELECT * FROM evaluated;

DELETE FROM silver.viewing_sessions WHERE is_affected(session_id);
INSERT INTO silver.viewing_sessions
SELECT session_id, user_id, content_id, started_at, ended_at, device, completion_pct, watch_seconds,
       _source_file, _row_number
FROM silver._viewing_sessions_rows
WHERE reason IS NULL AND is_affected(session_id)
-- The latest ended_at wins; on a tie the later row (file order, then row order).
QUALIFY row_number() OVER (
    PARTITION BY session_id ORDER BY ended_at DESC, _source_file DESC, _row_number DESC) = 1;

-- The quarantine rows of the changed and re-evaluated rows are made again, but for a re-evaluated row quarantined
-- again for the same reason (an orphan_content session of a user who changed): its row stays, since its raw comes
-- from the same bronze row. So only the rows of the changed files, and rows newly quarantined, are looked up in
-- bronze, which then reads the changed files' row groups rather than the whole table.
-- raw: the original fields (untrimmed, extra columns merged in), built for quarantined rows only.
DELETE FROM silver._quarantine_viewing_sessions WHERE source_file IN (SELECT source_file FROM changed_files);
DELETE FROM silver._quarantine_viewing_sessions AS q
WHERE EXISTS (SELECT 1 FROM reevaluated AS e WHERE e._source_file = q.source_file AND e._row_number = q.row_number)
  AND NOT EXISTS (SELECT 1 FROM quarantined AS n
                  WHERE n._source_file = q.source_file AND n._row_number = q.row_number AND n.reason = q.reason);
CREATE OR REPLACE TEMP TABLE quarantine_to_make AS
SELECT n._source_file, n._row_number, n.reason FROM quarantined AS n
WHERE NOT EXISTS (SELECT 1 FROM silver._quarantine_viewing_sessions AS k
                  WHERE k.source_file = n._source_file AND k.row_number = n._row_number);
INSERT INTO silver._quarantine_viewing_sessions
SELECT 'viewing_sessions' AS entity, q.reason, q._source_file AS source_file, q._row_number AS row_number,
       CAST(json_merge_patch(
           json_object('session_id', raw_text(b.session_id), 'user_id', raw_text(b.user_id),
                       'content_id', raw_text(b.content_id), 'started_at', raw_text(b.started_at),
                       'ended_at', raw_text(b.ended_at), 'device', raw_text(b.device),
                       'completion_pct', raw_text(b.completion_pct)),
           raw_extras(b._extra_fields)) AS VARCHAR) AS raw
FROM quarantine_to_make AS q
JOIN bronze.viewing_sessions AS b ON b._source_file = q._source_file AND b._row_number = q._row_number;

DROP VIEW evaluated;
DROP TABLE quarantined;
DROP TABLE quarantine_to_make;
DROP TABLE reevaluated;
DROP TABLE viewing_sessions_classified;
