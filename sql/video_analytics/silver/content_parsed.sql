-- Content lines parsed and classified (the temporary table content_classified), read by content.sql.
-- The one statement of silver.content an engine may need its own version of (content_parsed.<engine>.sql:
-- DuckDB's JSON paths and list lambdas do not transpile); everything after it is shared.

CREATE OR REPLACE TEMP TABLE content_classified AS
WITH parsed AS (
    SELECT
        line,
        _source_file,
        _row_number,
        -- A JSON object, in valid UTF-8 (_parse_error says when the loader had to replace bytes).
        CASE WHEN _parse_error IS NULL AND json_valid(line)
             THEN (CASE WHEN json_type(line) = 'OBJECT' THEN CAST(line AS JSON) END) END AS doc
    FROM bronze.content
    -- only the lines of the files read again in this run (all of them in a full refresh)
    WHERE _source_file IN (SELECT source_file FROM changed_files)
),
fields AS (
    SELECT
        *,
        clean_text(doc ->> '$.content_id') AS content_id_text,
        CASE json_type(doc, '$.genres')
            WHEN 'ARRAY'   THEN list_filter(list_transform(json_extract_string(doc, '$.genres[*]'), lambda g: clean_text(g)),
                                            lambda g: g IS NOT NULL)
            WHEN 'VARCHAR' THEN list_filter([clean_text(doc ->> '$.genres')], lambda g: g IS NOT NULL)
        END AS genre_list
    FROM parsed
)
SELECT
    as_integer(content_id_text)                                   AS content_id,
    clean_text(doc ->> '$.title')                                 AS title,
    lower(clean_text(doc ->> '$.type'))                           AS content_type,
    CASE WHEN len(genre_list) > 0 THEN array_to_string(genre_list, ',') END AS genres,
    genre_list[1]                                                 AS primary_genre,
    try_cast(as_integer(clean_text(doc ->> '$.release.year')) AS INTEGER) AS release_year,
    clean_text(doc ->> '$.release.country')                       AS release_country,
    try_cast(as_integer(clean_text(doc ->> '$.duration_minutes')) AS INTEGER) AS duration_minutes,
    CASE WHEN json_type(doc, '$.cast') = 'ARRAY' THEN CAST(json_array_length(doc, '$.cast') AS INTEGER) ELSE 0 END
                                                                  AS cast_count,
    clean_text(list_filter(json_extract(doc, '$.cast[*]'),
                           lambda c: lower(clean_text(c ->> '$.role')) = 'lead')[1] ->> '$.name') AS lead_actor,
    as_number(clean_text(doc ->> '$.ratings.imdb'))               AS imdb_rating,
    clean_text(doc ->> '$.ratings.age_rating')                    AS age_rating,
    as_timestamp(clean_text(doc ->> '$.updated_at'))              AS updated_at,
    _source_file,
    _row_number,
    CASE WHEN doc IS NULL THEN CAST(to_json(raw_text(line)) AS VARCHAR) ELSE line END AS raw,
    CASE
        WHEN doc IS NULL                          THEN 'malformed_json'
        WHEN NOT is_integer_text(content_id_text) THEN 'invalid_content_id'
    END                                                           AS reason
FROM fields;
