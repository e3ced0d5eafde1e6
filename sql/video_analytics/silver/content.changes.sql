-- What one incremental run of content.sql changed (docs/incremental.md): `changes`, the old and new images'
-- keys of the rows it replaced, from `before_rows` (left by content.sql). Not run in a full refresh.

CREATE OR REPLACE TEMP TABLE after_rows AS
SELECT content_id, title, content_type, genres, primary_genre, release_year, release_country, duration_minutes,
       cast_count, lead_actor, imdb_rating, age_rating, updated_at, _source_file, _row_number
FROM silver.content WHERE content_id IN (SELECT content_id FROM affected_keys);
CREATE OR REPLACE TEMP TABLE changes AS
SELECT content_id, 'old' AS image FROM (SELECT * FROM before_rows EXCEPT SELECT * FROM after_rows)
UNION ALL
SELECT content_id, 'new' AS image FROM (SELECT * FROM after_rows EXCEPT SELECT * FROM before_rows);
