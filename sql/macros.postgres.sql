-- The parsing rules of sql/macros.sql, for PostgreSQL: the same names, arguments and meaning, so the shared
-- SQL files run unchanged. Run on every warehouse connection (etl_platform/warehouse/postgres_warehouse.py),
-- in the schema etl_macros (first on the search path).
-- try_cast_<type>(x) is DuckDB's try_cast(x AS <type>): NULL when the value does not convert. They catch the cast's
-- error in a PL/pgSQL block (a subtransaction), which parallel workers cannot start: they, and every function
-- calling them, are not PARALLEL SAFE.

CREATE OR REPLACE FUNCTION try_cast_bigint(x text) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RETURN x::bigint; EXCEPTION WHEN others THEN RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION try_cast_int(x bigint) RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT CASE WHEN x BETWEEN -2147483648 AND 2147483647 THEN x::integer END $$;
CREATE OR REPLACE FUNCTION try_cast_int(x text) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RETURN x::integer; EXCEPTION WHEN others THEN RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION try_cast_double(x text) RETURNS double precision LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RETURN x::double precision; EXCEPTION WHEN others THEN RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION try_cast_date(x text) RETURNS date LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RETURN x::date; EXCEPTION WHEN others THEN RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION try_cast_timestamptz(x text) RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$
BEGIN RETURN x::timestamptz; EXCEPTION WHEN others THEN RETURN NULL; END $$;
-- A JSON document, or NULL when the text is not JSON (DuckDB: json_valid + CAST(x AS JSON)).
CREATE OR REPLACE FUNCTION try_cast_jsonb(x text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RETURN x::jsonb; EXCEPTION WHEN others THEN RETURN NULL; END $$;

-- Text is trimmed (spaces, tabs, line breaks); an empty string becomes NULL.
CREATE OR REPLACE FUNCTION clean_text(x text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT nullif(btrim(x, E' \t\n\r'), '') $$;

-- An integer holds an optional sign and digits only, and fits in 64 bits ('12.5', '1e3', '0x10', '1_000' do not).
CREATE OR REPLACE FUNCTION is_integer_text(x text) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT coalesce(x ~ '^[+-]?[0-9]+$' AND length(ltrim(x, '+-0')) <= 19
                   AND ltrim(x, '+')::numeric BETWEEN -9223372036854775808 AND 9223372036854775807, false) $$;
CREATE OR REPLACE FUNCTION as_integer(x text) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT CASE WHEN is_integer_text(x) THEN ltrim(x, '+')::bigint END $$;

-- A number is a finite decimal, optionally with an exponent ('1e1' is 10; 'NaN', 'inf', 'n/a' are not numbers).
CREATE OR REPLACE FUNCTION is_number_text(x text) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT coalesce(x ~ '^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$' AND try_cast_double(x) IS NOT NULL, false) $$;
CREATE OR REPLACE FUNCTION as_number(x text) RETURNS double precision LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN x ~ '^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$' THEN try_cast_double(x) END $$;

-- A date is YYYY-MM-DD and a real calendar day.
CREATE OR REPLACE FUNCTION as_date(x text) RETURNS date LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN x ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN try_cast_date(x) END $$;

-- A timestamp is ISO-8601: a date, optionally a time (T or space), optionally an offset; no offset means UTC
-- (the session's time zone is UTC).
CREATE OR REPLACE FUNCTION as_timestamp(x text) RETURNS timestamptz LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN x ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?)?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)?$'
               THEN try_cast_timestamptz(replace(x, ',', '.')) END $$;

-- Whole seconds elapsed from a to b (truncated, not boundaries crossed).
CREATE OR REPLACE FUNCTION whole_seconds_between(a timestamptz, b timestamptz) RETURNS bigint LANGUAGE sql
IMMUTABLE PARALLEL SAFE AS $$ SELECT trunc(extract(epoch FROM b) - extract(epoch FROM a))::bigint $$;

-- `raw` of a quarantined record: a field longer than 64 KiB is cut there, saying so.
CREATE OR REPLACE FUNCTION raw_text(x text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT CASE WHEN length(x) > 65536
               THEN left(x, 65536) || '…[cut: ' || length(x) || ' characters in all; the whole record is in bronze]'
               ELSE x END $$;
CREATE OR REPLACE FUNCTION raw_extras(x text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT CASE WHEN length(x) > 65536 THEN json_build_object('_extra_fields', raw_text(x))::text
               ELSE coalesce(x, '{}') END $$;
-- DuckDB's json_merge_patch of two objects: the keys of b added to (or replacing those of) a.
CREATE OR REPLACE FUNCTION json_merge_patch(a json, b text) RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT a::jsonb || b::jsonb $$;

-- JSON questions the checks ask of bronze text (sql/macros.sql has the DuckDB versions).
CREATE OR REPLACE FUNCTION json_list_has(l text, x text) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT try_cast_jsonb(l) ? x $$;
CREATE OR REPLACE FUNCTION json_object_has_key(x text, k text) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN jsonb_typeof(try_cast_jsonb(x)) = 'object' THEN try_cast_jsonb(x) ? k END $$;
CREATE OR REPLACE FUNCTION json_is_empty_record(x text) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE jsonb_typeof(try_cast_jsonb(x))
              WHEN 'null' THEN true
              WHEN 'object' THEN NOT EXISTS (SELECT 1 FROM jsonb_each(try_cast_jsonb(x)) AS e WHERE e.value <> 'null'::jsonb)
              ELSE CASE WHEN try_cast_jsonb(x) IS NULL THEN NULL ELSE false END END $$;
CREATE OR REPLACE FUNCTION json_field_text(x text, k text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN jsonb_typeof(try_cast_jsonb(x)) = 'object' THEN try_cast_jsonb(x) ->> k END $$;
