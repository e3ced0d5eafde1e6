"""Property-based tests of the CSV and JSONL loaders (hypothesis), straight on a warehouse connection.

- Any valid CSV round-trips through bronze field for field, with the right record numbers, whichever
  reader path (DuckDB, DuckDB plus exact re-reads of rejected records, or the exact reader) loads it.
- Any byte string terminates: the file is either refused as a whole (with a reason) or every one of its
  records is in bronze, and then every bronze row is in silver, in quarantine, or lost deduplication.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_platform.landing import BronzeLoader, discover_files
from etl_platform.video_analytics import contract
from etl_platform.medallion import run_step
from etl_platform.video_analytics.assets import STEPS
from etl_platform.video_analytics.checks import _reconciliation
from etl_platform.warehouse import DuckDBWarehouse, WarehouseSpaceError

FIELD = st.text(alphabet=st.sampled_from(list("ab1 ,\"\n\r\t;éß李'-.:") + ["0", "9", "Z"]), max_size=12)
ROW = st.lists(FIELD, min_size=len(contract.USERS_COLUMNS), max_size=len(contract.USERS_COLUMNS))
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def warehouse(tmp_path):
    return DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"), memory_limit="256MB")


def load(warehouse: DuckDBWarehouse, folder: Path, name: str, data: bytes, entity: str = "users"):
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    (folder / name).write_bytes(data)
    spec = contract.BRONZE[entity]
    with warehouse.connect() as conn:
        conn.execute(f"DROP TABLE IF EXISTS {spec.table}; DROP VIEW IF EXISTS bronze.rejected_files; "
                     "DROP TABLE IF EXISTS bronze._ingested_files")
        loader = BronzeLoader(conn, spec, policy="reject")
        result = loader.load(discover_files(folder, spec.pattern)[0])
        rows = conn.execute(f"SELECT * FROM {spec.table} ORDER BY _row_number").fetchall()
        names = [d[0] for d in conn.description]
    return result, [dict(zip(names, row)) for row in rows]


@PROPERTY_SETTINGS
@given(rows=st.lists(ROW, max_size=25), bad_rows=st.sets(st.integers(0, 24), max_size=3),
       line_end=st.sampled_from(["\n", "\r\n"]))
def test_any_valid_csv_round_trips_field_for_field(warehouse, tmp_path, rows, bad_rows, line_end):
    """Rows with a wrong number of fields may be mixed in: they are kept too, flagged, at their number.

    Valid: a field holding a line-break character is quoted (Python's writer quotes only the characters of its
    own line terminator, so with LF endings every field is quoted)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_end, quoting=csv.QUOTE_ALL if line_end == "\n" else csv.QUOTE_MINIMAL)
    writer.writerow(contract.USERS_COLUMNS)
    expected = []
    for number, row in enumerate(rows):
        fields = row[:3] if number in bad_rows else row
        writer.writerow(fields)
        expected.append(fields)
    result, loaded = load(warehouse, tmp_path / "landing", "users_p.csv", out.getvalue().encode())
    assert result.status == "loaded"
    assert [r["_row_number"] for r in loaded] == list(range(1, len(expected) + 1))
    for fields, row in zip(expected, loaded):
        text = [row[c] if row[c] is not None else "" for c in contract.USERS_COLUMNS]  # an empty field is NULL
        if len(fields) == len(contract.USERS_COLUMNS):
            assert text == fields
            assert row["_parse_error"] is None
        else:
            assert row["_parse_error"] == f"expected {len(contract.USERS_COLUMNS)} fields, found {len(fields)}"
            assert text[: len(fields)] == fields


@PROPERTY_SETTINGS
@given(data=st.binary(max_size=3_000), header=st.booleans(), entity=st.sampled_from(["users", "content"]))
def test_any_bytes_are_loaded_or_refused_and_every_row_is_accounted_for(warehouse, tmp_path, data, header, entity):
    if header and entity == "users":
        data = (",".join(contract.USERS_COLUMNS) + "\n").encode() + data
    name = "users_p.csv" if entity == "users" else "content_p.jsonl"
    result, loaded = load(warehouse, tmp_path / "landing", name, data, entity)
    if result.status != "loaded":
        assert result.problem and len(result.problem) < 600 and not loaded
        return
    assert len(loaded) == result.rows
    with warehouse.connect() as conn:
        run_step(warehouse, conn, STEPS[entity], full_refresh=True)
        violations, details = conn.execute(_reconciliation(entity).query(None)).fetchall()[0]
    assert violations == 0, details


def test_unreadable_files_are_named_with_an_escaped_excerpt(warehouse, tmp_path):
    result, _ = load(warehouse, tmp_path / "landing", "users_p.csv", b"\x00\x01\x02\x03" * 100)
    assert result.status == "rejected"
    assert result.problem.startswith("is not text: 400 control bytes") and "b'\\x00\\x01\\x02\\x03" in result.problem


def test_repaired_and_exact_paths_agree(warehouse, tmp_path):
    """A file with bad records and multi-line fields, loaded with and without a blank line (which forces the
    exact path): the same rows with the same numbers."""
    good = '1,a@x,"multi\nline",US,free,2024-01-01,,\n'
    body = (good + "2,only-two\n" + good.replace("1,", "3,") + "4,x,y,z,w,v,u,t,EXTRA\n" + good.replace("1,", "5,"))
    header = ",".join(contract.USERS_COLUMNS) + "\n"
    repaired, repaired_rows = load(warehouse, tmp_path / "a", "users_1.csv", (header + body).encode())
    exact, exact_rows = load(warehouse, tmp_path / "b", "users_1.csv", (header + body + "\n\n").encode())
    assert (repaired.loader, exact.loader) == ("duckdb+python-csv", "python-csv")
    strip = [{k: v for k, v in row.items() if k != "_ingested_at"} for row in repaired_rows]
    assert strip == [{k: v for k, v in row.items() if k != "_ingested_at"} for row in exact_rows]
    assert [(r["user_id"], r["_row_number"], r["_parse_error"]) for r in repaired_rows] == [
        ("1", 1, None), ("2", 2, "expected 8 fields, found 2"), ("3", 3, None),
        ("4", 4, "expected 8 fields, found 9"), ("5", 5, None)]


def test_engine_errors_are_not_taken_for_bad_content(warehouse, tmp_path, monkeypatch):
    """Out of memory is the machine's problem, not the file's: the load fails with it instead of re-reading the
    file slowly with Python."""
    import duckdb

    from etl_platform.landing import csv_loader

    def out_of_memory(*args, **kwargs):
        raise duckdb.OutOfMemoryException("Out of Memory Error: failed to allocate data of size 1.0 GiB")

    monkeypatch.setattr(csv_loader, "_stage_with_duckdb", out_of_memory)
    monkeypatch.setattr(csv_loader, "_stage_with_python", lambda *a: pytest.fail("fell back to the exact path"))
    header = ",".join(contract.USERS_COLUMNS) + "\n"
    with pytest.raises(WarehouseSpaceError, match="DuckDB ran out of memory") as raised:
        load(warehouse, tmp_path / "landing", "users_1.csv", (header + "1,a,b,c,d,e,f,g\n").encode())
    assert isinstance(raised.value.__cause__, duckdb.OutOfMemoryException)
    assert os.path.exists(tmp_path / "w.duckdb")


@pytest.mark.parametrize("data,lone", [(b"ab\r\ncd\r\n", False), (b"abc\r\nd\r\n", False), (b"ab\rcd\n", True),
                                       (b"abc\r", True), (b"ab\ncd\n", False), (b"abc\r\r\n", True)])
def test_lone_carriage_returns_are_found_across_read_chunks(tmp_path, monkeypatch, data, lone):
    from etl_platform.landing import csv_loader

    monkeypatch.setattr(csv_loader, "SCAN_CHUNK", 4)  # a CR at the end of one chunk, its LF in the next
    (tmp_path / "users_1.csv").write_bytes(data)
    assert csv_loader._has_lone_carriage_return(discover_files(tmp_path, "users*.csv")[0]) is lone


LINE = st.tuples(st.sampled_from([0, 1, 5, 8, 9, 10, 11, 25]), st.sampled_from([b"\n", b"\r\n", b"\r", b"", b"\n\n"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, max_size=30), chunk=st.sampled_from([1, 2, 3, 7, 16, 1024]))
def test_the_line_scan_agrees_with_the_whole_file_rule_at_any_read_size(tmp_path, lines, chunk):
    """The plain-lines scan reads the file in chunks and jumps from break to break: whatever the chunk size, it
    says what splitting the whole file at every CR and LF says (no blank line; every line under the limit)."""
    from unittest import mock

    from etl_platform.landing import csv_loader

    data = b"".join(b"x" * length + end for length, end in lines)
    (tmp_path / "users_x.csv").write_bytes(data)
    whole_file = (not any(mark in data for mark in csv_loader.BLANK_LINE_MARKS)
                  and all(len(line) < 10 for line in data.translate(csv_loader.CR_AS_LF).split(b"\n")))
    with mock.patch.object(csv_loader, "SCAN_CHUNK", chunk), mock.patch.object(csv_loader, "MAX_LINE_BYTES", 10):
        assert csv_loader._plain_lines(discover_files(tmp_path, "users*.csv")[0]) is whole_file
