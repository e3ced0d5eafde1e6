"""Baseline for bench/video_analytics.py: the pipeline's SQL on raw DuckDB, in one process, no Dagster.

``write_statements`` (not timed) writes the statements to a JSON file: bronze as a hand-written
DuckDB script would load it (``read_csv`` over the landing files, the lines of the JSONL file), then
the platform's own silver, gold and check SQL, unchanged and in pipeline order (the checks that read the
incremental steps' state — ``_runs``, change logs, files read — are left out: the replay keeps no such state; the
bronze checks run as on a first run). The timed process
(``python bench/raw_duckdb.py STATEMENTS DATABASE MEMORY_LIMIT TEMP_DIR``) imports nothing but DuckDB.
"""

import json
import sys
import time

import duckdb


def write_statements(output, landing, memory_limit: str) -> None:
    from types import SimpleNamespace

    from etl_platform.video_analytics import contract
    from etl_platform.video_analytics.assets import QUARANTINE_SCRIPT, STEPS
    from etl_platform.video_analytics.checks import BRONZE_CHECKS, GOLD_CHECKS, SILVER_CHECKS, QualityPolicy
    from etl_platform.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(memory_limit=None if memory_limit == "default" else memory_limit)
    resources = SimpleNamespace(warehouse=warehouse, quality_policy=QualityPolicy())
    statements = [
        "SET TimeZone = 'UTC'", "CREATE SCHEMA bronze", "CREATE SCHEMA silver", "CREATE SCHEMA gold",
        warehouse.sql_text("macros.sql"),
    ]
    for entity in ("users", "viewing_sessions"):
        # One read_csv per file (as the platform does); rowid of a fresh table is the record number.
        spec = contract.BRONZE[entity]
        for number, csv_file in enumerate(sorted(landing.glob(spec.pattern))):
            statements.append(
                f"CREATE OR REPLACE TEMP TABLE stage AS SELECT * FROM read_csv('{csv_file}', header = true, "
                "all_varchar = true)"
            )
            target = f"CREATE TABLE {spec.table} AS" if number == 0 else f"INSERT INTO {spec.table}"
            statements.append(
                f"{target} SELECT *, NULL::VARCHAR AS _extra_fields, NULL::VARCHAR AS _parse_error, "
                f"'{csv_file.name}' AS _source_file, rowid + 1 AS _row_number, now() AS _ingested_at FROM stage"
            )
    statements.append(
        "CREATE TABLE bronze.content AS SELECT unnest(lines) AS line, NULL::VARCHAR AS _parse_error, "
        "parse_filename(filename) AS _source_file, "
        "generate_subscripts(lines, 1) AS _row_number, now() AS _ingested_at FROM ("
        "SELECT filename, string_split(rtrim(content, chr(10)), chr(10)) AS lines "
        f"FROM read_text('{landing / contract.BRONZE['content'].pattern}'))"
    )
    statements.append(
        "CREATE TABLE bronze._ingested_files AS SELECT entity, source_file, '' AS fingerprint, 0 AS size_bytes, "
        "'[]' AS header, count(*) AS row_count, 'raw' AS loader, now() AS ingested_at, 'loaded' AS status, "
        "NULL::VARCHAR AS problem FROM ("
        + " UNION ALL ".join(f"SELECT '{e}' AS entity, _source_file AS source_file FROM bronze.{e}"
                             for e in contract.BRONZE) + ") GROUP BY ALL"
    )
    def replayable(checks) -> list[str]:
        queries = [check.sql_without_state or check.query(resources) for check in checks]
        return [sql for sql in queries if not any(state in sql for state in ("._runs", "._changes_", "._files"))]

    statements += [sql for checks in BRONZE_CHECKS.values() for sql in replayable(checks)]
    for name, checks in SILVER_CHECKS.items():
        statements += _step_statements(warehouse, STEPS[name]) if name in STEPS else [warehouse.sql_text(QUARANTINE_SCRIPT)]
        statements += replayable(checks)
    # Gold as the pipeline runs it: the fact table first (gold.daily_viewing reads it), then the other tables, then
    # the checks (viewing_fact's totals_reconcile reads every gold table).
    gold_in_order = sorted(GOLD_CHECKS, key=lambda name: name != "viewing_fact")
    statements += [s for name in gold_in_order for s in _step_statements(warehouse, STEPS[name])]
    statements += [sql for name in gold_in_order for sql in replayable(GOLD_CHECKS[name])]
    output.write_text(json.dumps(statements))


def _step_statements(warehouse, step) -> list[str]:
    """A step's SQL as its full refresh runs it: its inputs (everything), its scripts, then what it leaves dropped."""
    from etl_platform.medallion import full_inputs_sql

    return [*full_inputs_sql(step), *(step.expand(warehouse.sql_text(script), True, script) for script in step.scripts),
            *(f"DROP TABLE IF EXISTS {name}" for name in ("before_rows", "after_rows", "affected_keys")),
            *(f"DROP TABLE {name}" for name in step.inputs),
            *(["DROP TABLE changed_files"] if step.files_of else [])]


def run(statements_path: str, database: str, memory_limit: str, temp_directory: str) -> None:
    started = time.monotonic()
    with open(statements_path) as handle:
        statements = json.load(handle)
    conn = duckdb.connect(database, config={"temp_directory": temp_directory,
                                            **({} if memory_limit == "default" else {"memory_limit": memory_limit})})
    for statement in statements:
        conn.execute(statement).fetchall()
    rows = conn.execute("SELECT count(*) FROM gold.viewing_fact").fetchall()[0][0]
    conn.close()
    print(f"raw duckdb: {len(statements)} statements in {time.monotonic() - started:.2f} s; gold.viewing_fact {rows} rows")


if __name__ == "__main__":
    run(*sys.argv[1:5])
