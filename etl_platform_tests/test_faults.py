"""Faults: a run killed with SIGKILL inside each layer's step, a full disk, exhausted spill space.

The killed run is the user's command (`dagster asset materialize`) in a subprocess, killed while the
step named in its own log is running; the next run must complete with tables equal to those of a
clean run, and leave no staging table, staging object or temporary file behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import duckdb
import pytest

from etl_platform.destinations import Dataset, S3Store
from etl_platform.destinations.formats import FileFormat
from etl_platform.video_analytics import demo_data
from etl_platform_tests import servers

BIN = Path(sys.executable).parent
TABLES = ["silver.users", "silver.content", "silver.viewing_sessions", "silver.quarantine", "gold.user_engagement",
          "gold.content_performance", "gold.daily_viewing", "gold.viewing_fact"]
SESSIONS = 150_000


@pytest.fixture(scope="module")
def moto():
    with servers.moto_s3_bucket() as url:
        yield url


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("landing") / "video_analytics"
    demo_data.generate(folder, sessions=SESSIONS, seed=11, defects=True, progress=False)
    old = time.time() - 60
    for path in folder.iterdir():
        os.utime(path, (old, old))  # settled: runs do not wait for them
    return folder.parent


def environment(home: Path, landing: Path, moto: str, prefix: str) -> dict:
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    exports = home / "exports.yaml"
    exports.write_text(
        "exports:\n  - name: viewing_fact_s3\n    table: gold.viewing_fact\n    destination: s3\n"
        f"    config: {{bucket: lake, prefix: {prefix}, endpoint_url: '{moto}', aws_access_key_id: k, "
        "aws_secret_access_key: s, region: us-east-1}\n    partition_by: [view_date]\n")
    return {**os.environ, "ETL_PLATFORM_HOME": str(home), "ETL_PLATFORM_LANDING": str(landing),
            "DAGSTER_HOME": str(home / "dagster"), "ETL_PLATFORM_EXPORTS": str(exports), "TMPDIR": str(home / "tmp"),
            "ETL_PLATFORM_SETTLE_SECONDS": "0"}


def materialize(env: dict, kill_in_step: str | None = None) -> str:
    """Run the whole pipeline; with ``kill_in_step``, SIGKILL it while that step runs. Returns its output."""
    Path(env["TMPDIR"]).mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [BIN / "dagster", "asset", "materialize", "-m", "etl_platform.definitions", "--select", "*"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=env["ETL_PLATFORM_HOME"],
    )
    lines: list[str] = []
    started = threading.Event()

    def read():
        for line in process.stdout:
            lines.append(line)
            if kill_in_step and f'Started execution of step "{kill_in_step}"' in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if kill_in_step:
        assert started.wait(240), "".join(lines[-40:])
        time.sleep(0.05)  # into the step's SQL: at this size gold/viewing_fact's whole step takes ~0.15 s
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        reader.join(10)
        output = "".join(lines)
        assert f'Finished execution of step "{kill_in_step}"' not in output, "the step ended before the kill"
        assert process.returncode == -signal.SIGKILL
        return output
    process.wait(600)
    reader.join(10)
    output = "".join(lines)
    assert process.returncode == 0, output[-4000:]
    return output


def tables(home: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        result = {}
        for table in TABLES:
            columns = [c for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema || '.' || table_name = ? "
                "AND column_name <> '_ingested_at' ORDER BY ordinal_position", [table]).fetchall()]
            rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            result[table] = sorted((_rounded(row) for row in rows), key=repr)
        names = {name for (name,) in conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables").fetchall()}
    result["_tables"] = sorted(names)
    return result


def _rounded(row: tuple) -> tuple:
    """Floating-point sums differ in their last bits with the order parallel aggregation takes."""
    return tuple(round(value, 9) if isinstance(value, float) else value for value in row)


def exported(moto: str, prefix: str) -> list[tuple]:
    store = S3Store(bucket="lake", prefix=prefix, endpoint_url=moto, aws_access_key_id="k", aws_secret_access_key="s",
                    region="us-east-1")
    table = Dataset(store, "gold/viewing_fact", FileFormat("parquet"), ("view_date",)).read()
    return sorted((_rounded(tuple(row.values())) for row in table.to_pylist()), key=repr)


def leftovers(home: Path, moto: str, prefix: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=moto, aws_access_key_id="k", aws_secret_access_key="s",
                          region_name="us-east-1")
    staged = [o["Key"] for o in client.list_objects_v2(Bucket="lake", Prefix=f"{prefix}/_staging/").get("Contents", [])]
    temporary = [str(p) for p in (home / "tmp").rglob("*") if p.is_file()] if (home / "tmp").exists() else []
    return staged + temporary


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, landing, moto):
    home = tmp_path_factory.mktemp("clean")
    materialize(environment(home, landing, moto, "clean"))
    return tables(home), exported(moto, "clean")


@pytest.mark.parametrize("step", ["bronze__viewing_sessions", "silver__viewing_sessions", "gold__viewing_fact",
                                  "exports__viewing_fact_s3"])
def test_a_run_killed_inside_a_step_reruns_to_the_clean_result(tmp_path, landing, moto, clean_run, step):
    env = environment(tmp_path, landing, moto, step)
    if step.startswith("exports"):
        materialize(env)  # an earlier export exists: the killed one must not damage it either
    materialize(env, kill_in_step=step)
    materialize(env)
    clean_tables, clean_export = clean_run
    assert tables(tmp_path) == clean_tables
    assert exported(moto, step) == clean_export
    assert leftovers(tmp_path, moto, step) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 40 MiB tmpfs (root may mount one here; a machine that does not allow it skips, or fails in CI)."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        servers.unavailable(f"cannot mount a tmpfs: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_a_clear_error_and_the_last_good_tables_stay_readable(platform, small_disk):
    demo_data.generate(platform.landing, sessions=2_000, seed=3, progress=False)
    warehouse = {"path": str(small_disk / "warehouse.duckdb"), "temp_directory": str(small_disk / "tmp")}
    platform.materialize(**warehouse)
    layers = ("bronze", "silver", "gold")
    with duckdb.connect(warehouse["path"], read_only=True) as conn:
        names = [f"{schema}.{table}" for schema, table in conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN ? "
            "AND table_name NOT LIKE '\\_%' ESCAPE '\\'", [list(layers)]).fetchall()]
        good = {name: sorted(conn.execute(f"SELECT * FROM {name}").fetchall(), key=repr) for name in names}
    demo_data.generate(platform.landing / "more", sessions=600_000, seed=4, progress=False)
    for path in (platform.landing / "more").iterdir():
        path.rename(platform.landing / f"{path.stem}_more{path.suffix}")
    result = platform.materialize(raise_on_error=False, **warehouse)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.cause.message if failure.step_failure_data.error.cause else \
        failure.step_failure_data.error.message
    assert "WarehouseSpaceError" in message
    assert f"The disk holding the warehouse {warehouse['path']} is full" in message and "free of" in message
    # Where the disk fills up varies from run to run; the table of the step that failed is the last good one,
    # and every table (older ones, or new ones of the steps that finished) is whole and readable.
    failed_table = failure.step_key.replace("__", ".")
    with duckdb.connect(warehouse["path"], read_only=True) as conn:
        for name in names:
            rows = sorted(conn.execute(f"SELECT * FROM {name}").fetchall(), key=repr)
            if name == failed_table:
                assert rows == good[name], f"{name} changed although its step failed"
    assert failure.step_key.endswith("_checks") or failed_table in names


def test_exhausted_spill_space_is_a_clear_error(platform):
    demo_data.generate(platform.landing, sessions=300_000, seed=5, progress=False)
    result = platform.materialize(selection="group:video_analytics_bronze", raise_on_error=False)
    assert result.success
    with pytest.raises(Exception) as raised:
        platform.materialize(selection="group:video_analytics_silver", memory_limit="24MB", max_temp_size="1MB", threads=1)
    text = "".join(str(e) for e in _chain(raised.value))
    assert "DuckDB ran out of memory: it needed more than memory_limit=24MB and could not spill the rest to" in text


def _chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__
