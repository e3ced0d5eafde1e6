-- Parsing rules shared by every pipeline: one place per rule.
-- Run on every warehouse connection (see etl_platform/warehouse/duckdb_warehouse.py).

-- Text is trimmed (spaces, tabs, line breaks); an empty string becomes NULL.
CREATE OR REPLACE TEMP MACRO clean_text(x) AS nullif(trim(x, ' ' || chr(9) || chr(10) || chr(13)), '');

-- An integer holds an optional sign and digits only, and fits in 64 bits ('12.5', '1e3', '0x10', '1_000' do not).
CREATE OR REPLACE TEMP MACRO is_integer_text(x) AS
    coalesce(regexp_full_match(x, '[+-]?[0-9]+') AND try_cast(x AS BIGINT) IS NOT NULL, false);
CREATE OR REPLACE TEMP MACRO as_integer(x) AS CASE WHEN is_integer_text(x) THEN CAST(x AS BIGINT) END;

-- A number is a finite decimal, optionally with an exponent ('1e1' is 10; 'NaN', 'inf', 'n/a' are not numbers).
CREATE OR REPLACE TEMP MACRO is_number_text(x) AS
    coalesce(regexp_full_match(x, '[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?')
             AND isfinite(try_cast(x AS DOUBLE)), false);
CREATE OR REPLACE TEMP MACRO as_number(x) AS CASE WHEN is_number_text(x) THEN CAST(x AS DOUBLE) END;

-- A date is YYYY-MM-DD and a real calendar day.
CREATE OR REPLACE TEMP MACRO as_date(x) AS
    CASE WHEN regexp_full_match(x, '[0-9]{4}-[0-9]{2}-[0-9]{2}') THEN try_cast(x AS DATE) END;

-- A timestamp is ISO-8601: a date, optionally a time (T or space), optionally an offset; no offset means UTC.
CREATE OR REPLACE TEMP MACRO as_timestamp(x) AS
    CASE WHEN regexp_full_match(x, '[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?)?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)?')
         THEN try_cast(replace(x, ',', '.') AS TIMESTAMPTZ) END;

-- Whole seconds elapsed from a to b (truncated, not boundaries crossed).
CREATE OR REPLACE TEMP MACRO whole_seconds_between(a, b) AS (epoch_us(b) - epoch_us(a)) // 1000000;

-- `raw` of a quarantined record: a field longer than 64 KiB is cut there, saying so (bronze keeps the whole
-- record, and source_file + row_number point at it); JSON building on huge values would need many times their size.
CREATE OR REPLACE TEMP MACRO raw_text(x) AS
    CASE WHEN length(x) > 65536 THEN left(x, 65536) || '…[cut: ' || length(x) || ' characters in all; the whole record is in bronze]'
         ELSE x END;
CREATE OR REPLACE TEMP MACRO raw_extras(x) AS
    CASE WHEN length(x) > 65536 THEN CAST(json_object('_extra_fields', raw_text(x)) AS VARCHAR) ELSE coalesce(x, '{}') END;

-- JSON questions the checks ask of bronze text (one definition per engine, so the check SQL is shared).
-- Does the JSON list of strings l hold x?
CREATE OR REPLACE TEMP MACRO json_list_has(l, x) AS list_contains(from_json(l, '["VARCHAR"]'), x);
-- Is x a JSON object with the key k?
CREATE OR REPLACE TEMP MACRO json_object_has_key(x, k) AS
    CASE WHEN json_valid(x) AND json_type(CAST(x AS JSON)) = 'OBJECT' THEN list_contains(json_keys(CAST(x AS JSON)), k) END;
-- Is x JSON null, or an object whose values are all null?
CREATE OR REPLACE TEMP MACRO json_is_empty_record(x) AS
    CASE WHEN json_valid(x) THEN
        json_type(CAST(x AS JSON)) = 'NULL'
        OR (json_type(CAST(x AS JSON)) = 'OBJECT'
            AND list_bool_and(list_transform(map_values(CAST(CAST(x AS JSON) AS MAP(VARCHAR, JSON))),
                                             lambda v: v IS NULL OR v = 'null')) IS NOT false)
    END;
-- The text of the top-level field k of the JSON object x (NULL when x is not a JSON object or lacks k).
CREATE OR REPLACE TEMP MACRO json_field_text(x, k) AS
    CASE WHEN json_valid(x) AND json_type(CAST(x AS JSON)) = 'OBJECT' THEN CAST(x AS JSON) ->> ('$.' || k) END;
