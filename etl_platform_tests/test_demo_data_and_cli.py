"""The demo-data generator, and the whole pipeline driven from the command line as a user would."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import duckdb

from etl_platform.video_analytics import demo_data

BIN = Path(sys.executable).parent


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_demo_data_is_deterministic_by_seed(tmp_path):
    demo_data.generate(tmp_path / "a", sessions=3_000, seed=1, defects=True, progress=False)
    demo_data.generate(tmp_path / "b", sessions=3_000, seed=1, defects=True, progress=False)
    demo_data.generate(tmp_path / "c", sessions=3_000, seed=2, defects=True, progress=False)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert digests(tmp_path / "a") != digests(tmp_path / "c")


def test_demo_data_defects_include_the_text_hazards(tmp_path):
    summary = demo_data.generate(tmp_path, sessions=2_000, seed=3, defects=True, progress=False)
    users = (tmp_path / "users_0001.csv").read_bytes()
    assert users.startswith(b"\xef\xbb\xbfuser_id,")
    updates = (tmp_path / "users_0002.csv").read_text(encoding="utf-8")
    assert '"  O\'Brien, ""Jack"" 6\nZoë Ñandú 李  "' in updates
    assert "Broken line" in (tmp_path / "content_0001.jsonl").read_text(encoding="utf-8")
    assert summary.defect_rows["viewing_sessions"] == 20  # 1 % of 2,000


def test_demo_data_writes_several_session_files_for_large_inputs(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_data, "CHUNK_ROWS", 1_000)
    monkeypatch.setattr(demo_data, "SESSIONS_PER_FILE", 2_000)
    summary = demo_data.generate(tmp_path, sessions=5_000, seed=4, progress=False)
    assert [f for f in summary.files if f.startswith("viewing")] == [
        "viewing_sessions_0001.csv", "viewing_sessions_0002.csv", "viewing_sessions_0003.csv"]
    lines = sum(len(p.read_text().splitlines()) - 1 for p in tmp_path.glob("viewing_sessions_*.csv"))
    assert lines == 5_000


def test_the_first_run_after_demo_data_does_not_wait_for_its_files(tmp_path, monkeypatch):
    """Issue 23, trip-up 6: the run right after `demo-data` waited for the files it had just written to settle."""
    import time

    from etl_platform.landing import LandingZone

    monkeypatch.delenv("ETL_PLATFORM_SETTLE_SECONDS", raising=False)
    folder = tmp_path / "landing" / "video_analytics"
    summary = demo_data.generate(folder, sessions=500, seed=1, progress=False)
    landing = LandingZone(root=str(tmp_path / "landing"))
    started = time.monotonic()
    for pattern in ("users*.csv", "content*.jsonl", "viewing_sessions*.csv"):
        ready, arriving = landing.wait_for_files(folder, pattern)
        assert ready and not arriving
    assert time.monotonic() - started < 2 and len(summary.files) == 3


def test_command_line_end_to_end(tmp_path):
    """`etl-platform demo-data` then `dagster asset materialize --select '*'` then `etl-platform summary`, in
    subprocesses, with the repository's dagster.yaml (README command 1)."""
    import shutil

    env = {**os.environ, "ETL_PLATFORM_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    (tmp_path / "dagster").mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "dagster.yaml", tmp_path / "dagster" / "dagster.yaml")
    generated = subprocess.run(
        [BIN / "etl-platform", "demo-data", "--sessions", "3000", "--seed", "5", "--defects"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert generated.returncode == 0, generated.stderr
    assert "3,000 sessions" in generated.stdout

    run = subprocess.run(
        [BIN / "dagster", "asset", "materialize", "-m", "etl_platform.definitions", "--select", "*"],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb"), read_only=True) as conn:
        tables = {row[0] for row in conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_name NOT LIKE '\\_%' ESCAPE '\\'").fetchall()}
        assert tables >= {
            "bronze.users", "bronze.content", "bronze.viewing_sessions",
            "silver.users", "silver.content", "silver.viewing_sessions", "silver.quarantine",
            "gold.user_engagement", "gold.content_performance", "gold.daily_viewing", "gold.viewing_fact",
        }
        sessions = conn.execute("SELECT count(*) FROM silver.viewing_sessions").fetchall()[0][0]
        assert conn.execute("SELECT sum(sessions_count) FROM gold.user_engagement").fetchall()[0][0] == sessions
        assert conn.execute("SELECT count(*) FROM gold.viewing_fact").fetchall()[0][0] == sessions
        quarantined = conn.execute("SELECT count(*) FROM silver.quarantine").fetchall()[0][0]
    # issue 23: a quiet end — INFO and above, none of Dagster's DEBUG events — then a summary
    output = run.stdout + run.stderr
    assert " - DEBUG - " not in output and " - INFO - " in output
    summary = subprocess.run([BIN / "etl-platform", "summary"], env=env, capture_output=True, text=True,
                             timeout=120, cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    lines = summary.stdout.splitlines()
    assert lines[0].startswith("bronze ") and "users " in lines[0]
    assert f"viewing_sessions {sessions:,}" in lines[1] and lines[2].startswith("gold ")
    assert "checks  last run" in summary.stdout and "(__ASSET_JOB, success)" in summary.stdout
    assert f"quarantined {quarantined:,} rows" in summary.stdout and "warehouse " in summary.stdout
    assert "http://127.0.0.1:3000" in summary.stdout


def test_command_line_reports_a_missing_landing_folder(tmp_path):
    env = {**os.environ, "ETL_PLATFORM_HOME": str(tmp_path / "empty"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    (tmp_path / "dagster").mkdir()
    run = subprocess.run(
        [BIN / "dagster", "asset", "materialize", "-m", "etl_platform.definitions", "--select", "bronze/users"],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert run.returncode != 0
    expected = f"No users input: the landing folder {tmp_path / 'empty' / 'landing' / 'video_analytics'} does not exist"
    assert expected in run.stdout + run.stderr


def test_definitions_validate_from_module_and_workspace():
    for target in (["-m", "etl_platform.definitions"], ["-w", str(Path(__file__).resolve().parents[1] / "workspace.yaml")]):
        run = subprocess.run([BIN / "dagster", "definitions", "validate", *target], capture_output=True, text=True,
                             timeout=300, cwd=Path(__file__).resolve().parents[1])
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
