"""docs/migrating.md stays true: every Python block runs (each section in a fresh process, in an empty folder that
is also ETL_PLATFORM_HOME, with moto's S3 holding the bucket ``lake``); its exports entry and run configuration
load as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from etl_platform_tests.servers import moto_s3_bucket

DOC = Path(__file__).resolve().parents[1] / "docs" / "migrating.md"


def sections() -> dict[str, str]:
    """``## `` title → the section's text."""
    parts = re.split(r"^## ", DOC.read_text(encoding="utf-8"), flags=re.M)[1:]
    return {part.splitlines()[0]: part for part in parts}


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def test_every_seed_has_a_section():
    titles = list(sections())
    for seed in ("seed 000", "seed 001", "seed 002", "seed 003", "seed 004"):
        assert any(seed in title for title in titles), f"docs/migrating.md has no section for {seed}"


@pytest.mark.parametrize("title", [t for t, text in sections().items() if blocks(text, "python")])
def test_the_python_of_each_section_runs(title, tmp_path):
    code = "\n\n".join(blocks(sections()[title], "python"))
    with moto_s3_bucket("lake") as endpoint:
        env = {**os.environ, "ETL_PLATFORM_HOME": str(tmp_path), "S3_ENDPOINT_URL": endpoint,
               "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1"}
        env.pop("DAGSTER_HOME", None)
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
    assert done.returncode == 0, f"docs/migrating.md, section {title!r}:\n{done.stderr[-3000:]}"


def test_the_exports_entry_and_run_config_of_seed_002_load(tmp_path, monkeypatch):
    from etl_platform.video_analytics.checks import QualityPolicy
    from etl_platform.video_analytics.exports import build_export_asset, load_export_specs

    (text,) = [t for title, t in sections().items() if "seed 002" in title]
    (exports,) = blocks(text, "yaml")
    file = tmp_path / "exports.yaml"
    file.write_text(exports)
    for name, value in {"MONGO_HOST": "127.0.0.1", "MONGO_PORT": "27017", "MONGO_DB": "video_content"}.items():
        monkeypatch.setenv(name, value)
    (spec,) = load_export_specs(file)
    asset = build_export_asset(spec)  # the destination's settings are validated here
    assert asset.key.path == ["exports", "bronze_content_json"] and asset.op.retry_policy is not None
    (command,) = [b for b in blocks(text, "bash") if "--config-json" in b]
    config = json.loads(re.search(r"--config-json '(.*)'", command).group(1))
    QualityPolicy(**config["resources"]["quality_policy"]["config"])
    assert yaml.safe_load(exports)["exports"][0]["mode"] == "overwrite"
