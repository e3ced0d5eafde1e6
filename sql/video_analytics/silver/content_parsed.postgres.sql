-- content_parsed.sql on PostgreSQL: the same rules in jsonb, because DuckDB's JSON
-- paths and list lambdas have no transpilation. etl_platform_tests/test_engines.py proves both give the same
-- silver.content and quarantine rows. Keep the files in step.

DROP TABLE IF EXISTS content_classified;
CREATE TEMP TABLE content_classified AS
WITH parsed AS (
    SELECT
        line,
        _source_file,
        _row_number,
        -- A JSON object, in valid UTF-8 (_parse_error says when the loader had to replace bytes).
        CASE WHEN _parse_error IS NULL THEN
            (SELECT CASE WHEN jsonb_typeof(j) = 'object' THEN j END FROM (SELECT try_cast_jsonb(line) AS j) AS t)
        END AS doc
    FROM bronze.content
    -- only the lines of the files read again in this run (all of them in a full refresh)
    WHERE _source_file IN (SELECT source_file FROM changed_files)
),
fields AS (
    SELECT
        *,
        clean_text(doc ->> 'content_id') AS content_id_text,
        CASE jsonb_typeof(doc -> 'genres')
            WHEN 'array' THEN ARRAY(
                SELECT g FROM (SELECT clean_text(e #>> '{}') AS g, n
                               FROM jsonb_array_elements(doc -> 'genres') WITH ORDINALITY AS a(e, n)) AS cleaned
                WHERE g IS NOT NULL ORDER BY n)
            WHEN 'string' THEN ARRAY(SELECT g FROM (SELECT clean_text(doc ->> 'genres') AS g) AS one WHERE g IS NOT NULL)
        END AS genre_list
    FROM parsed
)
SELECT
    as_integer(content_id_text)                                   AS content_id,
    clean_text(doc ->> 'title')                                   AS title,
    lower(clean_text(doc ->> 'type'))                             AS content_type,
    CASE WHEN cardinality(genre_list) > 0 THEN array_to_string(genre_list, ',') END AS genres,
    genre_list[1]                                                 AS primary_genre,
    try_cast_int(as_integer(clean_text(doc -> 'release' ->> 'year'))) AS release_year,
    clean_text(doc -> 'release' ->> 'country')                    AS release_country,
    try_cast_int(as_integer(clean_text(doc ->> 'duration_minutes'))) AS duration_minutes,
    CASE WHEN jsonb_typeof(doc -> 'cast') = 'array' THEN jsonb_array_length(doc -> 'cast') ELSE 0 END AS cast_count,
    (SELECT clean_text(c ->> 'name')
     FROM jsonb_array_elements(CASE WHEN jsonb_typeof(doc -> 'cast') = 'array' THEN doc -> 'cast' END)
          WITH ORDINALITY AS a(c, n)
     WHERE jsonb_typeof(c) = 'object' AND lower(clean_text(c ->> 'role')) = 'lead'
     ORDER BY n LIMIT 1)                                          AS lead_actor,
    as_number(clean_text(doc -> 'ratings' ->> 'imdb'))            AS imdb_rating,
    clean_text(doc -> 'ratings' ->> 'age_rating')                 AS age_rating,
    as_timestamp(clean_text(doc ->> 'updated_at'))                AS updated_at,
    _source_file,
    _row_number,
    CASE WHEN doc IS NULL THEN to_json(raw_text(line))::text ELSE line END AS raw,
    CASE
        WHEN doc IS NULL                          THEN 'malformed_json'
        WHEN NOT is_integer_text(content_id_text) THEN 'invalid_content_id'
    END                                                           AS reason
FROM fields;
