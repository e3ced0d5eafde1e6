-- silver.content: one flattened, typed row per content_id; bad lines go to silver._quarantine_content.
-- Runs after content_parsed.sql (or its engine's version), which leaves content_classified behind.

CREATE OR REPLACE TABLE silver.content AS
SELECT content_id, title, content_type, genres, primary_genre, release_year, release_country, duration_minutes,
       cast_count, lead_actor, imdb_rating, age_rating, updated_at, _source_file, _row_number
FROM content_classified
WHERE reason IS NULL
QUALIFY row_number() OVER (
    PARTITION BY content_id ORDER BY updated_at DESC NULLS LAST, _source_file DESC, _row_number DESC) = 1;

CREATE OR REPLACE TABLE silver._quarantine_content AS
SELECT 'content' AS entity, reason, _source_file AS source_file, _row_number AS row_number, raw
FROM content_classified
WHERE reason IS NOT NULL;

DROP TABLE content_classified;
