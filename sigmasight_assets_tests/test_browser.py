"""The Dagster UI in a real browser: headless Chromium (Debian's ``chromium`` package, never a
downloaded browser) on a real ``dagster-webserver`` serving this code location.

The instance (temporary ``DAGSTER_HOME``) and warehouse hold the sample book and one single-run
materialisation of five trading days, so the pages show what a data engineer sees after a backfill:
the asset graph with its groups and lineage, an asset's partitions, an asset's definition page.
Each test waits for the rendered page to contain what a person looks for, checks the DOM, and takes
a 1600×1000 screenshot (checked to be a rendered page, not a blank one).

Screenshots go to the test's temporary directory; with ``SIGMASIGHT_SCREENSHOT_DIR=docs/screenshots``
they are also written there (that is how the README's screenshots are refreshed).

Without ``/usr/bin/chromium`` the tests skip with the reason — except with ``CI=true``, where they
fail: CI must install the package (``apt-get install -y chromium``).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance

from sigmasight_assets.cli.launch import CodeLocation
from sigmasight_assets.defs.common import range_tags

from . import ui_helpers as ui

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

START, END = "2026-11-16", "2026-11-20"  # five sessions
GROUPS = ("ledger", "market_data", "symbol_analytics", "portfolio_analytics")
# The UI's default group ids (no per-code-location grouping flag).
EXPANDED = ",".join(f"global@global:{g}" for g in GROUPS)
ALL_ASSETS = (*ui.SOURCE_ASSETS, *ui.PARTITIONED_ASSETS)

EXPAND_SIDEBAR_GROUPS = """
(() => {
  let clicked = 0;
  for (const row of document.querySelectorAll('[class*="AssetSidebarNode_itemContainer"]')) {
    if (!row.querySelector('[aria-label="asset_group"]')) continue;
    const caret = row.querySelector('[aria-label="arrow_drop_down"]');
    if (caret && caret.style.transform.includes('-90')) { caret.closest('button').click(); clicked++; }
  }
  return clicked;
})()
"""


def _chromium_or_skip() -> str:
    chromium = ui.find_chromium()
    if chromium is None:
        message = ("headless browser tests need Debian's chromium package (/usr/bin/chromium): "
                   "apt-get install -y chromium")
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"CI=true but chromium is missing — {message}")
        pytest.skip(message)
    return chromium


@pytest.fixture(scope="module")
def chromium():
    return _chromium_or_skip()


@pytest.fixture(scope="module")
def web(chromium, tmp_path_factory):
    """(base URL, screenshot dir) of a webserver on an instance with five materialised sessions."""
    base = tmp_path_factory.mktemp("browser")
    home = ui.make_dagster_home(base / "dagster_home")
    ui.init_instance(home)
    warehouse_url = f"sqlite:///{base / 'warehouse.sqlite'}"
    # As after `make demo`: the partitions start with the materialised range (sigmasight.env).
    env = ui.dagster_env(home, warehouse_url, SIGMASIGHT_START_DATE=START)
    ui.load_sample_portfolios(env)
    server, url = ui.start_webserver(home, env, base)
    try:
        # Materialise while the webserver starts (both only read the instance's storage at start-up),
        # as a run of the daily_risk_graph job launched through the code location, as the demo does.
        with DagsterInstance.from_config(str(home)) as instance, \
                CodeLocation(home, base / "code-server.log", env=env) as location:
            run_id = location.launch("daily_risk_graph", range_tags(START, END))
            assert location.wait(instance, run_id) == "SUCCESS"
        ui.wait_for_webserver(url, server)
        ui.graphql(url, "mutation { setNuxSeen }")  # no first-visit community dialog over the pages
        yield url, base
    finally:
        survivors = server.stop()
        assert not survivors, f"webserver processes left running: {survivors}"


@pytest.fixture
def browser(chromium, web, tmp_path):
    with ui.HeadlessChromium(chromium, tmp_path / "profile", 1600, 1000) as b:
        yield b


def _save(browser, name: str, tmp_path: Path) -> Path:
    shot = browser.screenshot(tmp_path / name)
    summary = ui.png_summary(shot)
    assert (summary["width"], summary["height"]) == (1600, 1000), summary
    assert summary["distinct_rows"] > 150, f"{name} looks blank: {summary}"
    target = os.environ.get("SIGMASIGHT_SCREENSHOT_DIR")
    if target:
        out = Path(target)
        out = out if out.is_absolute() else ui.REPO_ROOT / out
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, out / name)
    return shot


def test_asset_graph_page_shows_every_asset_and_group(browser, web, tmp_path):
    url, _ = web
    # Top-to-bottom layout (a UI setting kept in the browser's localStorage) fits the whole graph in
    # 1600×1000; the `expanded` parameter opens the three groups in the graph.
    browser.open(f"{url}/overview", wait_for=["Overview"], max_settle=2)
    browser.evaluate("localStorage.setItem('asset-graph-direction', JSON.stringify('vertical'))")
    browser.open(f"{url}/asset-groups?expanded={EXPANDED}", wait_for=["Global asset lineage", *GROUPS])
    for _ in range(5):  # open the groups in the sidebar tree: every asset listed by its full name
        if not browser.evaluate(EXPAND_SIDEBAR_GROUPS):
            break
        time.sleep(0.5)
    browser.wait_for(ALL_ASSETS)
    dom = browser.dom()
    for name in ALL_ASSETS:
        assert re.search(rf'title="{name}"|>{name}<', dom), f"{name} not in the asset graph page"
    # The graph loaded every materialisable asset (the button counts them).
    assert f"Materialize all ({len(ui.PARTITIONED_ASSETS)})" in browser.text()
    _save(browser, "asset_graph.png", tmp_path)


def test_prices_partitions_page(browser, web, tmp_path):
    url, _ = web
    # The partition status bar and list, with the last session selected: its materialisation
    # metadata (written rows, coverage, sources, failures) and the run that wrote it.
    browser.open(f"{url}/assets/prices?view=partitions&partition={END}",
                 wait_for=["Partitions", "Materialized (5)", "Missing (", START, END, "coverage_pct",
                           "symbols_requested", "partition_range", f"{START}..{END}", "newest_day", "daily_risk_graph"])
    text = browser.text()
    n_missing = int(re.search(r"Missing \((\d+)\)", text).group(1))
    # The partitions start with the range: only the sessions after it are missing, not decades.
    assert n_missing < 30, n_missing
    assert "Failed (0)" in text
    _save(browser, "prices_partitions.png", tmp_path)


def test_asset_page_shows_description_and_columns(browser, web, tmp_path):
    url, _ = web
    browser.open(f"{url}/assets/symbol_betas",
                 wait_for=["Market beta", "raw_beta", "r_squared", "symbol_analytics", "risk-platform",
                           "Jobs → daily_risk_graph → Materialize"])
    text = browser.text()
    for column in ("date", "symbol", "factor", "beta", "observations"):
        assert column in text
    _save(browser, "symbol_betas_asset.png", tmp_path)


def test_overview_timeline_shows_the_job_run(browser, web, tmp_path):
    url, _ = web
    # The timeline groups runs by their code location and job; a run launched through the location
    # (UI, schedule, sensor, backfill, `sigmasight demo`) has that origin, an in-process one has none.
    browser.open(f"{url}/overview/activity/timeline", wait_for=["Timeline", "daily_risk_graph", "sigmasight_assets"])
    assert "No runs" not in browser.text()
    _save(browser, "overview_timeline.png", tmp_path)
