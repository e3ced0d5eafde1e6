-- silver.viewing_sessions: one typed row per session_id; bad rows go to silver._quarantine_viewing_sessions.
-- Orphan rules look up silver.users and silver.content, so those are built first.

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
        WHEN u.user_id IS NULL                                           THEN 'orphan_user'
        WHEN c.content_id IS NULL                                        THEN 'orphan_content'
    END AS reason
FROM cleaned AS s
LEFT JOIN silver.users   AS u ON u.user_id = as_integer(s.user_id)
LEFT JOIN silver.content AS c ON c.content_id = as_integer(s.content_id);

CREATE OR REPLACE TABLE silver.viewing_sessions AS
SELECT session_id, user_id, content_id, started_at, ended_at, device, completion_pct, watch_seconds,
       _source_file, _row_number
FROM viewing_sessions_classified
WHERE reason IS NULL
-- The latest ended_at wins; on a tie the later row (file order, then row order).
QUALIFY row_number() OVER (
    PARTITION BY session_id ORDER BY ended_at DESC, _source_file DESC, _row_number DESC) = 1;

-- raw: the original fields (untrimmed, extra columns merged in), built for quarantined rows only.
CREATE OR REPLACE TABLE silver._quarantine_viewing_sessions AS
SELECT 'viewing_sessions' AS entity, q.reason, q._source_file AS source_file, q._row_number AS row_number,
       CAST(json_merge_patch(
           json_object('session_id', raw_text(b.session_id), 'user_id', raw_text(b.user_id),
                       'content_id', raw_text(b.content_id), 'started_at', raw_text(b.started_at),
                       'ended_at', raw_text(b.ended_at), 'device', raw_text(b.device),
                       'completion_pct', raw_text(b.completion_pct)),
           raw_extras(b._extra_fields)) AS VARCHAR) AS raw
FROM viewing_sessions_classified AS q
JOIN bronze.viewing_sessions AS b ON b._source_file = q._source_file AND b._row_number = q._row_number
WHERE q.reason IS NOT NULL;

DROP TABLE viewing_sessions_classified;
