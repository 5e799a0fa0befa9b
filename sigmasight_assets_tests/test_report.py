"""``sigmasight report``: one portfolio's risk as a self-contained HTML page of plotly charts.

A module fixture materialises the whole graph for a short range of sessions on the sample book (with
prices warmed up before it, as the demo does), then the page is written through the command line and
opened in headless Chromium (``ui_helpers.HeadlessChromium``): the sections render and each chart is
a drawn plotly figure. The screenshot goes to ``docs/screenshots/report.png`` with
``SIGMASIGHT_SCREENSHOT_DIR=docs/screenshots`` (README, "Risk report").
"""

from __future__ import annotations

import json
import re
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from dagster import DagsterInstance

from sigmasight_assets import calendar
from sigmasight_assets.cli import main
from sigmasight_assets.cli.report import correlation_matrix
from sigmasight_assets.defs.resources import MarketDataResource, WarehouseResource
from sigmasight_assets.local_runs import materialize_range

from . import ui_helpers as ui

END = "2026-11-20"
DAYS = 40
WARMUP = 100  # enough for the betas and covariances of every day of the range


def test_correlation_matrix_rebuilds_the_symmetric_matrix_and_keeps_gaps():
    row = pd.Series({"symbols": json.dumps(["A", "B", "C"]), "matrix": json.dumps([0.5, None, -0.2])})
    m = correlation_matrix(row)
    assert list(m.index) == ["A", "B", "C"] and list(m.columns) == ["A", "B", "C"]
    assert m.loc["A", "B"] == m.loc["B", "A"] == 0.5
    assert m.loc["B", "C"] == m.loc["C", "B"] == -0.2
    assert np.isnan(m.loc["A", "C"]) and np.isnan(m.loc["C", "A"])  # too little overlap stays a gap
    assert (np.diag(m.to_numpy()) == 1).all()


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """(environment, warehouse URL) of a warehouse holding the sample book and DAYS sessions of the graph."""
    base = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{base / 'warehouse.sqlite'}"
    env = {"DAGSTER_HOME": str(base), "SIGMASIGHT_DATABASE_URL": url}
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    try:
        res = CliRunner().invoke(main, ["load-portfolios", "--sample", "--no-progress"])
        assert res.exit_code == 0, res.output
        sess = calendar.sessions_back(END, DAYS + WARMUP)
        resources = {"warehouse": WarehouseResource(url=url), "market_data": MarketDataResource(spec="synthetic", seed=7)}
        with DagsterInstance.ephemeral() as instance:
            warm = materialize_range(str(sess[0].date()), str(sess[WARMUP - 1].date()), instance=instance,
                                     selection=["symbol_universe", "prices", "symbol_returns"], resources=resources)
            assert warm.success
            assert materialize_range(str(sess[WARMUP].date()), END, instance=instance, resources=resources).success
        yield env, url
    finally:
        mp.undo()


def _report(env: dict, *args: str):
    return CliRunner().invoke(main, ["report", *args], env=env)


def test_report_writes_one_self_contained_page(filled, tmp_path):
    env, _ = filled
    out = tmp_path / "p-long.html"
    res = _report(env, "P-LONG", "--html", str(out))
    assert res.exit_code == 0, res.output
    assert f"P-LONG as of {END}" in res.output
    page = out.read_text()
    # plotly.js is inline: no script is loaded from anywhere else.
    assert not re.findall(r"<script\s[^>]*src=", page)
    for section in ("Equity and daily P&amp;L", "Factor exposures", "Stress scenarios: direct vs correlated",
                    "Correlation of the holdings", "Risk contributions", "VaR against realised P&amp;L"):
        assert section in page


def test_report_of_an_earlier_day_and_clear_errors(filled, tmp_path):
    env, _ = filled
    earlier = calendar.sessions_back(END, 5)[0].date().isoformat()
    res = _report(env, "P-LS", "--date", earlier, "--html", str(tmp_path / "r.html"))
    assert res.exit_code == 0 and f"as of {earlier}" in res.output, res.output
    res = _report(env, "NOPE", "--html", str(tmp_path / "x.html"))
    assert res.exit_code == 2 and "unknown portfolio 'NOPE'" in res.output and "P-LONG" in res.output
    assert not (tmp_path / "x.html").exists()
    res = _report(env, "P-LONG", "--date", "1999-01-04", "--html", str(tmp_path / "y.html"))
    assert res.exit_code == 1 and "no portfolio_snapshots on or before 1999-01-04" in res.output


def test_report_plots_risk_contributions_and_the_var_backtest(filled, tmp_path):
    env, url = filled
    from sigmasight_assets.warehouse import Warehouse

    wh = Warehouse(url)
    bt = wh.read("var_backtest", keys=["P-LONG"], key_column="portfolio_id")
    observed = bt[bt["var_99_previous"].notna() & bt["hypothetical_pnl"].notna()]
    assert len(observed) >= DAYS - 2  # every day after the first of the range has a VaR to compare
    out = tmp_path / "risk.html"
    res = _report(env, "P-LONG", "--html", str(out))
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "skipped: the warehouse has no" not in page
    assert 'id="plot-risk_contributions"' in page and 'id="plot-var_backtest"' in page
    assert f"{int(observed['exception'].astype(bool).sum())} exception(s) in {len(observed)} day(s)" in page
    rc = wh.read("risk_contributions", END, END, keys=["P-LONG"], key_column="portfolio_id")
    volatility = rc.loc[rc["component_type"].isin(["factor", "specific"]), "contribution"].sum()
    assert f"add up to the daily volatility, ${volatility:,.0f}" in page


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_report_renders_in_headless_chromium(filled, tmp_path):
    chromium = ui.find_chromium()
    if chromium is None:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail("CI=true but chromium is missing (apt-get install -y chromium)")
        pytest.skip("needs Debian's chromium package (/usr/bin/chromium)")
    env, _ = filled
    out = tmp_path / "report.html"
    assert _report(env, "P-LONG", "--html", str(out)).exit_code == 0
    with ui.HeadlessChromium(chromium, tmp_path / "profile", 1400, 2400) as browser:
        browser.open(out.as_uri(), wait_for=["Equity and daily P&L", "Factor exposures", "Stress scenarios",
                                             "Correlation of the holdings"])
        plots = browser.evaluate("""
            Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => ({
              id: p.id, traces: (p.data || []).length,
              drawn: p.querySelectorAll('.main-svg').length > 0,
              marks: p.querySelectorAll('path.point, g.trace path, .hm, image, .scatterlayer path').length}))
        """)
        ids = {p["id"] for p in plots}
        assert {"plot-history", "plot-exposures", "plot-stress", "plot-correlation"} <= ids, plots
        for p in plots:
            assert p["traces"] >= 1 and p["drawn"] and p["marks"] > 0, p
        assert browser.evaluate("typeof Plotly") == "object"  # the embedded plotly.js ran
        shot = browser.screenshot(tmp_path / "report.png")
    summary = ui.png_summary(shot)
    assert (summary["width"], summary["height"]) == (1400, 2400), summary
    assert summary["distinct_rows"] > 300, f"the report looks blank: {summary}"
    target = os.environ.get("SIGMASIGHT_SCREENSHOT_DIR")
    if target:
        dest = Path(target) if Path(target).is_absolute() else ui.REPO_ROOT / target
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, dest / "report.png")
