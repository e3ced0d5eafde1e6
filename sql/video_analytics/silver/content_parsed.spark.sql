-- content_parsed.sql on Spark: the same rules with Spark's JSON functions, because
-- DuckDB's JSON paths and list lambdas have no transpilation. etl_platform_tests/test_engines.py proves both give
-- the same silver.content and quarantine rows. Keep the files in step. (Spark refuses SQL functions inside
-- lambdas, so clean_text is written out there.)

CREATE OR REPLACE TEMPORARY VIEW content_classified AS
WITH parsed AS (
    SELECT
        line,
        _source_file,
        _row_number,
        -- A JSON object, in valid UTF-8 (_parse_error says when the loader had to replace bytes).
        CASE WHEN _parse_error IS NULL AND startswith(schema_of_variant(try_parse_json(line)), 'OBJECT')
             THEN line END AS doc
    FROM bronze.content
    -- only the lines of the files read again in this run (all of them in a full refresh)
    WHERE _source_file IN (SELECT source_file FROM changed_files)
),
fields AS (
    SELECT
        *,
        clean_text(get_json_object(doc, '$.content_id')) AS content_id_text,
        CASE
            WHEN startswith(schema_of_variant(variant_get(try_parse_json(doc), '$.genres')), 'ARRAY')
                THEN filter(transform(from_json(get_json_object(doc, '$.genres'), 'array<string>'),
                                      g -> nullif(btrim(g, concat(' ', char(9), char(10), char(13))), '')),
                            g -> g IS NOT NULL)
            WHEN schema_of_variant(variant_get(try_parse_json(doc), '$.genres')) = 'STRING'
                THEN filter(array(clean_text(get_json_object(doc, '$.genres'))), g -> g IS NOT NULL)
        END AS genre_list,
        get_json_object(try_element_at(filter(from_json(get_json_object(doc, '$.cast'), 'array<string>'),
                                              c -> lower(btrim(get_json_object(c, '$.role'),
                                                               concat(' ', char(9), char(10), char(13)))) = 'lead'), 1),
                        '$.name') AS lead_actor_text
    FROM parsed
)
SELECT
    as_integer(content_id_text)                                   AS content_id,
    clean_text(get_json_object(doc, '$.title'))                   AS title,
    lower(clean_text(get_json_object(doc, '$.type')))             AS content_type,
    CASE WHEN size(genre_list) > 0 THEN array_join(genre_list, ',') END AS genres,
    try_element_at(genre_list, 1)                                 AS primary_genre,
    try_cast(as_integer(clean_text(get_json_object(doc, '$.release.year'))) AS INT) AS release_year,
    clean_text(get_json_object(doc, '$.release.country'))         AS release_country,
    try_cast(as_integer(clean_text(get_json_object(doc, '$.duration_minutes'))) AS INT) AS duration_minutes,
    coalesce(json_array_length(get_json_object(doc, '$.cast')), 0) AS cast_count,
    clean_text(lead_actor_text)                                   AS lead_actor,
    as_number(clean_text(get_json_object(doc, '$.ratings.imdb'))) AS imdb_rating,
    clean_text(get_json_object(doc, '$.ratings.age_rating'))      AS age_rating,
    as_timestamp(clean_text(get_json_object(doc, '$.updated_at'))) AS updated_at,
    _source_file,
    _row_number,
    -- A line that is not a JSON object is kept as one JSON string (as DuckDB's to_json of text).
    CASE WHEN doc IS NULL THEN regexp_extract(to_json(array(raw_text(line))), '^\\[(.*)\\]$', 1) ELSE line END AS raw,
    CASE
        WHEN doc IS NULL                          THEN 'malformed_json'
        WHEN NOT is_integer_text(content_id_text) THEN 'invalid_content_id'
    END                                                           AS reason
FROM fields;
