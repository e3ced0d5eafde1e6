-- The parsing rules of sql/macros.sql, for Spark: the same names, arguments and meaning, so the shared SQL files
-- run unchanged. Spark SQL functions, created on every warehouse connection (etl_platform/warehouse/spark_warehouse.py).
-- Spark's regular expressions find a match anywhere: the patterns are anchored (DuckDB's regexp_full_match).

-- Text is trimmed (spaces, tabs, line breaks); an empty string becomes NULL.
CREATE OR REPLACE TEMPORARY FUNCTION clean_text(x STRING) RETURNS STRING
RETURN nullif(btrim(x, concat(' ', char(9), char(10), char(13))), '');

-- An integer holds an optional sign and digits only, and fits in 64 bits ('12.5', '1e3', '0x10', '1_000' do not).
CREATE OR REPLACE TEMPORARY FUNCTION is_integer_text(x STRING) RETURNS BOOLEAN
RETURN coalesce(x RLIKE '^[+-]?[0-9]+$' AND try_cast(x AS BIGINT) IS NOT NULL, false);
CREATE OR REPLACE TEMPORARY FUNCTION as_integer(x STRING) RETURNS BIGINT
RETURN CASE WHEN x RLIKE '^[+-]?[0-9]+$' THEN try_cast(x AS BIGINT) END;

-- A number is a finite decimal, optionally with an exponent ('1e1' is 10; 'NaN', 'inf', 'n/a' are not numbers).
CREATE OR REPLACE TEMPORARY FUNCTION is_number_text(x STRING) RETURNS BOOLEAN
RETURN coalesce(x RLIKE '^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$'
                AND abs(try_cast(x AS DOUBLE)) < double('Infinity'), false);
CREATE OR REPLACE TEMPORARY FUNCTION as_number(x STRING) RETURNS DOUBLE
RETURN CASE WHEN x RLIKE '^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$'
                 AND abs(try_cast(x AS DOUBLE)) < double('Infinity') THEN try_cast(x AS DOUBLE) END;

-- A date is YYYY-MM-DD and a real calendar day.
CREATE OR REPLACE TEMPORARY FUNCTION as_date(x STRING) RETURNS DATE
RETURN CASE WHEN x RLIKE '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN try_cast(x AS DATE) END;

-- A timestamp is ISO-8601: a date, optionally a time (T or space), optionally an offset; no offset means UTC
-- (the session's time zone is UTC).
CREATE OR REPLACE TEMPORARY FUNCTION as_timestamp(x STRING) RETURNS TIMESTAMP
RETURN CASE WHEN x RLIKE '^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?)?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)?$'
            THEN try_cast(replace(x, ',', '.') AS TIMESTAMP) END;

-- Whole seconds elapsed from a to b (truncated, not boundaries crossed).
CREATE OR REPLACE TEMPORARY FUNCTION whole_seconds_between(a TIMESTAMP, b TIMESTAMP) RETURNS BIGINT
RETURN (unix_micros(b) - unix_micros(a)) DIV 1000000;

-- `raw` of a quarantined record: a field longer than 64 KiB is cut there, saying so.
CREATE OR REPLACE TEMPORARY FUNCTION raw_text(x STRING) RETURNS STRING
RETURN CASE WHEN length(x) > 65536
            THEN concat(left(x, 65536), '…[cut: ', length(x), ' characters in all; the whole record is in bronze]')
            ELSE x END;
CREATE OR REPLACE TEMPORARY FUNCTION raw_extras(x STRING) RETURNS STRING
RETURN CASE WHEN length(x) > 65536 THEN to_json(named_struct('_extra_fields', raw_text(x))) ELSE coalesce(x, '{}') END;
-- DuckDB's json_merge_patch of two objects: the keys of b added to (or replacing those of) a.
CREATE OR REPLACE TEMPORARY FUNCTION json_merge_patch(a STRING, b STRING) RETURNS STRING
RETURN to_json(map_concat(from_json(a, 'map<string,string>'),
                          map_filter(from_json(b, 'map<string,string>'), (k, v) -> v IS NOT NULL)),
               map('ignoreNullFields', 'false'));

-- JSON questions the checks ask of bronze text (sql/macros.sql has the DuckDB versions).
CREATE OR REPLACE TEMPORARY FUNCTION json_list_has(l STRING, x STRING) RETURNS BOOLEAN
RETURN array_contains(from_json(l, 'array<string>'), x);
CREATE OR REPLACE TEMPORARY FUNCTION json_object_has_key(x STRING, k STRING) RETURNS BOOLEAN
RETURN array_contains(json_object_keys(x), k);
CREATE OR REPLACE TEMPORARY FUNCTION json_is_empty_record(x STRING) RETURNS BOOLEAN
RETURN CASE WHEN try_parse_json(x) IS NULL THEN NULL
            WHEN json_object_keys(x) IS NOT NULL THEN forall(map_values(from_json(x, 'map<string,string>')), v -> v IS NULL)
            ELSE trim(x) = 'null' END;
CREATE OR REPLACE TEMPORARY FUNCTION json_field_text(x STRING, k STRING) RETURNS STRING
RETURN CASE WHEN json_object_keys(x) IS NOT NULL THEN get_json_object(x, concat('$.', k)) END;
