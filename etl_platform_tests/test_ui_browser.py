"""The Dagster UI as a user sees it, in a real browser: headless Chromium (Debian's `chromium`, installed by
.ci/run) driven by Playwright's Python API. After a run of the pipeline from the command line, the webserver on
that instance, started with `dg dev`, shows the lineage of the assets, an asset's columns with their descriptions, and its checks'
results. No mock: the real webserver, the real code location, the real instance."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from etl_platform_tests.servers import free_port, running, unavailable
from etl_platform.video_analytics import demo_data

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A materialized pipeline and the webserver on its instance: yields the UI's address."""
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        unavailable("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)")
    tmp = tmp_path_factory.mktemp("ui")
    (tmp / "dagster").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ETL_PLATFORM_EXPORTS", "ETL_PLATFORM_JOBS",
                                                            "ETL_PLATFORM_ENGINE")}
    env.update(ETL_PLATFORM_HOME=str(tmp / "home"), DAGSTER_HOME=str(tmp / "dagster"))
    demo_data.generate(tmp / "home" / "landing" / "video_analytics", sessions=2_000, seed=5, defects=True,
                       progress=False)
    run = subprocess.run([BIN / "dagster", "asset", "materialize", "-m", "etl_platform.definitions", "--select", "*"],
                         env=env, cwd=tmp, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    port = free_port()
    # `dg dev` as the README says (the UI and the daemon, the project's code location), on a free port. The webserver
    # listens once the code location has loaded: 45-50 s in the suite's runs on two busy cores (CI, beside Spark).
    server = [str(BIN / "dg"), "dev", "--host", "127.0.0.1", "--port", str(port), "--target-path", str(ROOT)]
    with running("dg dev", server, port, env=env, seconds=240):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def page(ui):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser.new_page(viewport={"width": 1600, "height": 1000})
        finally:
            browser.close()


def _open(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    skip = page.get_by_role("button", name="Skip")  # the UI's first-visit "Join the Dagster community" dialog
    try:
        skip.click(timeout=5_000)
    except Exception:  # noqa: BLE001 - shown once per browser profile
        pass


def _shows(page, text: str, timeout: float = 60_000) -> None:
    page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=timeout)


def test_the_lineage_page_draws_the_medallion(ui, page):
    """gold/viewing_fact's lineage: the silver tables it reads and the gold table built from it, in their groups,
    materialized, their checks passed."""
    _open(page, f"{ui}/assets/gold/viewing_fact?view=lineage")
    for name in ("video_analytics_silver", "video_analytics_gold", "viewing_sessions", "daily_viewing"):
        _shows(page, name)
    _shows(page, "3 / 3 Passed")  # daily_viewing's checks on its node
    _shows(page, "Materialized")


def test_an_asset_shows_its_columns_with_descriptions(ui, page):
    _open(page, f"{ui}/assets/gold/user_engagement")
    _shows(page, "favorite_device")
    _shows(page, "Device with most sessions")  # the column's description, from the contract
    _shows(page, "avg_completion_pct")


def test_an_asset_shows_its_checks_and_their_results(ui, page):
    _open(page, f"{ui}/assets/gold/user_engagement?view=checks")
    _shows(page, "one_row_per_user")
    _shows(page, "no_negative_metrics")
    _shows(page, "Passed")
