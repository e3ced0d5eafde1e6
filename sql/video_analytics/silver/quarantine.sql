-- silver.quarantine: every rejected record of every entity, with the first rule it broke.
CREATE OR REPLACE TABLE silver.quarantine AS
SELECT entity, reason, source_file, row_number, raw FROM silver._quarantine_users
UNION ALL
SELECT entity, reason, source_file, row_number, raw FROM silver._quarantine_content
UNION ALL
SELECT entity, reason, source_file, row_number, raw FROM silver._quarantine_viewing_sessions;
