"""The benchmark's hand-written DuckDB script computes the same contract as the platform (else comparing their
speed would mean nothing): same silver, quarantine and gold on the defective demo data."""

from __future__ import annotations

import importlib.util

import duckdb

from etl_platform.video_analytics import demo_data
from etl_platform_tests.servers import REPO
from etl_platform_tests.test_engines import COMPARED_TABLES, _normalised


def _rows(database, table: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as conn:
        cursor = conn.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cursor.description]
        rows = [tuple(_normalised(v, n) for v, n in zip(row, names)) for row in cursor.fetchall()]
        types = conn.execute(f"SELECT column_name, data_type FROM information_schema.columns WHERE table_schema || "
                             f"'.' || table_name = '{table}' ORDER BY ordinal_position").fetchall()
    return types, sorted(rows, key=lambda row: tuple((v is None, str(v)) for v in row))


def test_the_handwritten_baseline_gives_the_platforms_tables(platform, tmp_path):
    demo_data.generate(platform.landing, sessions=4_000, seed=11, defects=True, progress=False)
    platform.materialize()
    spec = importlib.util.spec_from_file_location("handwritten_duckdb", REPO / "bench" / "handwritten_duckdb.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    baseline = tmp_path / "baseline.duckdb"
    module.run(str(platform.landing), str(baseline), "512MB", str(tmp_path / "spill"))
    for table in COMPARED_TABLES:
        expected_types, expected = _rows(platform.warehouse_file, table)
        types, rows = _rows(baseline, table)
        assert types == expected_types, table
        assert len(rows) == len(expected), table
        different = [(e, r) for e, r in zip(expected, rows) if e != r]
        assert not different, f"{table}: first differing rows {different[:2]}"
