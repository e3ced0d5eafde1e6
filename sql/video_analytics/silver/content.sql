-- silver.content: one flattened, typed row per content_id; bad lines go to silver._quarantine_content.
-- Runs after content_parsed.sql (or its engine's version), which leaves content_classified behind: the lines of
-- `changed_files` parsed and classified. Incremental as silver.users is (see users.sql): silver._content_rows
-- keeps every line classified; only the content ids the changed files name are deduplicated again.

CREATE TABLE IF NOT EXISTS silver._content_rows AS SELECT * FROM content_classified LIMIT 0;
CREATE TABLE IF NOT EXISTS silver.content AS
SELECT content_id, title, content_type, genres, primary_genre, release_year, release_country, duration_minutes,
       cast_count, lead_actor, imdb_rating, age_rating, updated_at, _source_file, _row_number
FROM content_classified LIMIT 0;
CREATE TABLE IF NOT EXISTS silver._quarantine_content AS
SELECT 'content' AS entity, reason, _source_file AS source_file, _row_number AS row_number, raw
FROM content_classified LIMIT 0;

CREATE OR REPLACE TEMP TABLE affected_keys AS
SELECT content_id FROM silver._content_rows
WHERE _source_file IN (SELECT source_file FROM changed_files) AND content_id IS NOT NULL
UNION
SELECT content_id FROM content_classified WHERE content_id IS NOT NULL;

CREATE OR REPLACE TEMP TABLE before_rows AS
SELECT content_id, title, content_type, genres, primary_genre, release_year, release_country, duration_minutes,
       cast_count, lead_actor, imdb_rating, age_rating, updated_at, _source_file, _row_number
FROM silver.content WHERE is_affected(content_id);

DELETE FROM silver._content_rows WHERE _source_file IN (SELECT source_file FROM changed_files);
INSERT INTO silver._content_rows SELECT * FROM content_classified;

DELETE FROM silver.content WHERE is_affected(content_id);
INSERT INTO silver.content
SELECT content_id, title, content_type, genres, primary_genre, release_year, release_country, duration_minutes,
       cast_count, lead_actor, imdb_rating, age_rating, updated_at, _source_file, _row_number
FROM silver._content_rows
WHERE reason IS NULL AND is_affected(content_id)
QUALIFY row_number() OVER (
    PARTITION BY content_id ORDER BY updated_at DESC NULLS LAST, _source_file DESC, _row_number DESC) = 1;

DELETE FROM silver._quarantine_content WHERE source_file IN (SELECT source_file FROM changed_files);
INSERT INTO silver._quarantine_content
SELECT 'content' AS entity, reason, _source_file AS source_file, _row_number AS row_number, raw
FROM content_classified
WHERE reason IS NOT NULL;

DROP TABLE content_classified;
