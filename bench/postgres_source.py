"""PostgreSQL table → Arrow (and → Parquet): our reader against the raw drivers and dlt, side by side in one run.

    .venv/bin/python bench/postgres_source.py --rows 1000000 5000000 --repeat 3 [--dlt-python /tmp/dltvenv/bin/python]

The table ``bench_orders`` (bigint id, int customer, text note, numeric(12,2) amount, timestamptz at) is made
in the database ``test`` once per size. Every contender runs in its own process, one after the other, and
reports its wall time and its peak RSS; the table prints medians and ratios to our reader.

Imports are not timed (dagster alone takes about a second to import); connecting is.

Contenders:
- ``etl_platform``: ``PostgresSource(...).extract()`` — Arrow batches, numeric as decimal128(12,2).
- ``adbc``: the ADBC driver by hand (numeric left as text: less work than ours).
- ``connectorx``: ``connectorx.read_sql(..., return_type="arrow")`` (the whole table at once).
- ``psycopg_copy``: psycopg 3 ``COPY ... TO STDOUT (FORMAT BINARY)`` rows into Arrow arrays per 50,000 rows.
- ``etl_platform_parquet`` / ``dlt_parquet``: the same table written to a Parquet file; dlt's ``sql_database``
  source with ``backend="pyarrow"`` to its filesystem destination, run with ``--dlt-python`` (its own
  virtualenv, as its pins clash with ours).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

DSN = "postgresql://postgres@127.0.0.1:5432/test"

PROGRAMS = {
    "etl_platform": """
        from etl_platform.sources import PostgresSource
        rows = 0
        with PostgresSource(database="test", table=TABLE, batch_size=100_000).extract() as extraction:
            for batch in extraction:
                rows += batch.data.num_rows
    """,
    "adbc": """
        import adbc_driver_postgresql.dbapi as adbc
        rows = 0
        with adbc.connect(DSN) as conn, conn.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {TABLE}")
            for batch in cursor.fetch_record_batch():
                rows += batch.num_rows
    """,
    "connectorx": """
        import connectorx as cx
        rows = cx.read_sql(DSN, f"SELECT * FROM {TABLE}", return_type="arrow").num_rows
    """,
    "psycopg_copy": """
        import psycopg, pyarrow as pa
        rows, chunk = 0, []
        types = [pa.int64(), pa.int32(), pa.string(), pa.decimal128(12, 2), pa.timestamp("us", tz="UTC")]
        def flush(chunk):
            columns = list(zip(*chunk))
            return pa.RecordBatch.from_arrays([pa.array(c, t) for c, t in zip(columns, types)],
                                              names=["id", "customer", "note", "amount", "at"])
        with psycopg.connect(DSN) as conn, conn.cursor() as cursor:
            with cursor.copy(f"COPY {TABLE} TO STDOUT (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "int4", "text", "numeric", "timestamptz"])
                for row in copy.rows():
                    chunk.append(row)
                    if len(chunk) == 50_000:
                        rows += flush(chunk).num_rows; chunk = []
        rows += flush(chunk).num_rows if chunk else 0
    """,
    "etl_platform_parquet": """
        import pyarrow.parquet as pq
        from etl_platform.sources import PostgresSource
        rows, writer = 0, None
        with PostgresSource(database="test", table=TABLE, batch_size=100_000).extract() as extraction:
            for batch in extraction:
                data = batch.data.drop_columns(["_source_position"])
                writer = writer or pq.ParquetWriter(f"{OUT}/orders.parquet", data.schema)
                writer.write_batch(data)
                rows += data.num_rows
        writer.close()
    """,
    "dlt_parquet": """
        import dlt
        from dlt.sources.sql_database import sql_table
        source = sql_table(credentials=DSN.replace("postgresql://", "postgresql+psycopg2://"), table=TABLE,
                           backend="pyarrow", chunk_size=100_000)
        pipeline = dlt.pipeline(pipeline_name="bench", destination=dlt.destinations.filesystem(f"file://{OUT}"),
                                dataset_name="bench", pipelines_dir=f"{OUT}/pipelines")
        info = pipeline.run(source, loader_file_format="parquet")
        rows = pipeline.last_trace.last_normalize_info.row_counts[TABLE]
    """,
}


def prepare(rows: int) -> str:
    import psycopg

    table = f"bench_orders_{rows}"
    with psycopg.connect(DSN, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()[0]
        if exists and conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == rows:
            return table
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"""CREATE TABLE {table} AS SELECT g::int8 AS id, (g % 10000)::int4 AS customer,
            'order note ' || md5(g::text) AS note, round((random() * 10000)::numeric, 2)::numeric(12,2) AS amount,
            '2024-01-01'::timestamptz + g * interval '1 second' AS at FROM generate_series(1, {rows}) g""")
        conn.execute(f"VACUUM ANALYZE {table}")
    return table


def run(name: str, table: str, python: str) -> tuple[float, float, int]:
    lines = textwrap.dedent(PROGRAMS[name]).strip().splitlines()
    imports = "\n".join(line for line in lines if line.startswith(("import ", "from ")))  # not timed
    body = "\n".join(line for line in lines if not line.startswith(("import ", "from ")))
    with tempfile.TemporaryDirectory() as out:
        program = (f"import resource, time\nDSN = {DSN!r}\nTABLE = {table!r}\nOUT = {out!r}\n{imports}\n"
                   f"started = time.perf_counter()\n{body}\n"
                   "import json\nprint(json.dumps({'seconds': time.perf_counter() - started, 'rows': rows, "
                   "'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n")
        done = subprocess.run([python, "-c", program], capture_output=True, text=True, env={**os.environ})
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["seconds"], result["rss_mb"], result["rows"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dlt-python", help="python of a virtualenv with dlt[parquet,sql_database] and psycopg2")
    args = parser.parse_args()
    names = [n for n in PROGRAMS if n != "dlt_parquet" or args.dlt_python]
    for rows in args.rows:
        table = prepare(rows)
        results: dict[str, list[tuple[float, float, int]]] = {n: [] for n in names}
        for _ in range(args.repeat):  # interleaved, so a noisy minute hits every contender alike
            for name in names:
                python = args.dlt_python if name == "dlt_parquet" else sys.executable
                results[name].append(run(name, table, python))
        print(f"\n{rows:,} rows ({args.repeat} runs each; median seconds, ratio to etl_platform, peak RSS)")
        base = {"arrow": statistics.median(r[0] for r in results["etl_platform"]),
                "parquet": statistics.median(r[0] for r in results["etl_platform_parquet"])}
        print("| contender | seconds | vs etl_platform | peak RSS MB | rows |\n|---|---|---|---|---|")
        for name in names:
            seconds = statistics.median(r[0] for r in results[name])
            rss = statistics.median(r[1] for r in results[name])
            reference = base["parquet" if name.endswith("parquet") else "arrow"]
            print(f"| {name} | {seconds:.2f} | {seconds / reference:.2f}x | {rss:.0f} | {results[name][0][2]:,} |")


if __name__ == "__main__":
    main()
