"""The light install: the core holds the main job; each connector's library is an extra, and a missing one is an
error naming the ``pip install`` to run (etl_platform/extras.py, docs/install.md).

"Not installed" is made real in a subprocess: a finder first on ``sys.meta_path`` answers every import of a blocked
package with the ``ModuleNotFoundError`` an absent package gives (no mock of the code under test)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from etl_platform.extras import EXTRA_OF

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, blocked: list[str]) -> subprocess.CompletedProcess:
    prelude = textwrap.dedent(f"""
        import sys
        class Absent:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in {set(blocked)!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, Absent())
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_every_extra_named_in_code_exists_in_pyproject_and_all_holds_them():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRA_OF.values()) <= set(extras), set(EXTRA_OF.values()) - set(extras)
    (all_line,) = extras["all"]
    in_all = set(all_line.partition("[")[2].rstrip("]").split(","))
    assert set(EXTRA_OF.values()) <= in_all
    assert "etl_platform[all]" in extras["dev"]  # the suite installs every connector


def test_the_code_location_loads_and_imports_no_connector_library():
    """What command 1 imports (the definitions, every source class by name) needs no extra."""
    result = _run("""
        import json, sys
        import etl_platform.definitions
        from etl_platform.sources import SOURCES
        from etl_platform import readers, writers, reader_writer, upsert
        from etl_platform.extras import EXTRA_OF
        print(json.dumps(sorted(m for m in EXTRA_OF if sys.modules.get(m) is not None)))
    """, blocked=[])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_the_main_job_runs_without_numpy_pandas_or_zstandard(tmp_path):
    """README command 1 on the core install: demo data with every defect (a landing file zstd-compressed too), the
    pipeline end to end, with numpy, pandas and zstandard absent (they are not in the core: docs/install.md)."""
    result = _run(f"""
        import os, sys
        os.environ["ETL_PLATFORM_HOME"] = {str(tmp_path)!r}
        from pathlib import Path
        import pyarrow as pa
        import dagster as dg
        from etl_platform import settings
        from etl_platform.video_analytics import demo_data
        folder = settings.landing_root() / "video_analytics"
        demo_data.generate(folder, 3_000, defects=True, progress=False)
        users = folder / "users_0002.csv"
        (folder / "users_0002.csv.zst").write_bytes(pa.compress(users.read_bytes(), "zstd", asbytes=True))
        users.unlink()
        from etl_platform.definitions import defs
        result = defs.resolve_job_def("video_analytics_pipeline").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
        print(result.success, sorted(m for m in ("numpy", "pandas", "zstandard") if m in sys.modules))
    """, blocked=["numpy", "pandas", "zstandard"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "True []", result.stdout[-3000:] + result.stderr[-3000:]


def test_each_missing_extra_is_an_error_naming_its_pip_install():
    cases = {
        "postgres": ("psycopg", "adbc_driver_manager", "adbc_driver_postgresql"), "aws": ("s3fs", "boto3"),
        "spark": ("pyspark", "dagster_pyspark"), "kafka": ("confluent_kafka",), "pandas": ("pandas",),
        "mongodb": ("pymongo", "bson"),
    }
    result = _run("""
        import json
        from etl_platform.extras import MissingExtraError
        from etl_platform.errors import ConfigurationError
        from etl_platform.sources import KafkaSource, MongoSource, PostgresSource
        from etl_platform.destinations.stores import S3Store
        from etl_platform.warehouse.engines import warehouse_for
        from etl_platform.reader_writer import DataReaderWriter
        import pyarrow as pa
        attempts = {
            "postgres": lambda: PostgresSource(database="d", table="t").check_connection(),
            "aws": lambda: S3Store(bucket="b").filesystem(),
            "spark": lambda: warehouse_for("spark"),
            "kafka": lambda: KafkaSource(bootstrap_servers="127.0.0.1:1", topics=["t"], group_id="g").pending_messages(),
            "pandas": lambda: DataReaderWriter(backend="pandas", bucket_name="b").reader._frame(pa.table({"a": [1]})),
            "mongodb": lambda: MongoSource(uri="mongodb://127.0.0.1:1", database="d", collection="c").check_connection(),
        }
        out = {}
        for extra, attempt in attempts.items():
            try:
                attempt()
                out[extra] = "no error"
            except MissingExtraError as error:
                assert isinstance(error, ConfigurationError) and isinstance(error, ImportError)
                out[extra] = str(error)
        print(json.dumps(out))
    """, blocked=[module for modules in cases.values() for module in modules])
    assert result.returncode == 0, result.stderr
    messages = json.loads(result.stdout.strip().splitlines()[-1])
    for extra in cases:
        assert f"pip install 'etl_platform[{extra}]'" in messages[extra], (extra, messages[extra])
