"""The ``sigmasight`` CLI against a real warehouse: ``symbol-status``, ``show``, the load report,
progress bars and ``--help`` on every command.

One warehouse for the module, filled by a single Dagster run (``materialize_range``, synthetic
market, seed 7) of 35 sessions ending 2026-11-20 over the sample book plus ``P-HOLD``, which still
holds ``GONE`` after it stopped trading (2026-06-30), so the provider's failure is recorded in
``symbol_status``. Tests that write copy the SQLite file first.
"""

from __future__ import annotations

import json
import re
import sqlite3

import pandas as pd
import pytest
from click.testing import CliRunner
from dagster import DagsterInstance

from sigmasight_assets import calendar
from sigmasight_assets.cli import main
from sigmasight_assets.local_runs import materialize_range
from sigmasight_assets.defs.resources import MarketDataResource, WarehouseResource
from sigmasight_assets.ledger import parse_ledger
from sigmasight_assets.warehouse import Warehouse
from sigmasight_assets.warehouse.ledger import store_ledger

from .conftest import SAMPLE_FLOWS, SAMPLE_POSITIONS

END = "2026-11-20"
DAYS = 62  # 61 returns: the joint factor model (stress) needs 60
HOLD = ("portfolio_id,portfolio_name,symbol,quantity,entry_price,entry_date\n"
        "P-HOLD,Still holds a delisted name,GONE,100,13.94,2025-02-03\n"
        "P-HOLD,Still holds a delisted name,AAPL,50,48.0,2025-01-02\n")


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """(url, warehouse) after one run of the whole graph over DAYS sessions ending END."""
    base = tmp_path_factory.mktemp("cli_warehouse")
    url = f"sqlite:///{base / 'warehouse.sqlite'}"
    wh = Warehouse(url)
    wh.create_all()
    store_ledger(wh, parse_ledger(SAMPLE_POSITIONS, SAMPLE_FLOWS))
    hold = base / "hold.csv"
    hold.write_text(HOLD)
    store_ledger(wh, parse_ledger(hold))
    sess = calendar.sessions_back(END, DAYS)
    with DagsterInstance.ephemeral() as instance:
        result = materialize_range(
            sess[0].date().isoformat(), END, instance=instance,
            resources={"warehouse": WarehouseResource(url=url), "market_data": MarketDataResource(spec="synthetic", seed=7)},
        )
    assert result.success
    yield url, wh
    wh.engine.dispose()


def invoke(args, url=None, **kwargs):
    env = {"SIGMASIGHT_DATABASE_URL": url} if url else None
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False, prog_name="sigmasight", **kwargs)


def table_rows(output: str, header_first: str) -> list[list[str]]:
    """Rows of the table whose header starts with ``header_first`` (columns split on 2+ spaces)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(header_first))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("  ") or not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def status_by_symbol(output: str) -> dict[str, list[str]]:
    return {r[0]: r for r in table_rows(output, "symbol")}


def money(v: float) -> str:
    return f"{v:,.0f}"


# -- --help ---------------------------------------------------------------------------------------
def test_help_on_every_command():
    res = invoke(["--help"])
    assert res.exit_code == 0
    commands = set(main.commands)
    assert {"load-portfolios", "list", "demo", "symbol-status", "show"} <= commands
    for name in commands:
        assert name in res.output
        for flag in ("--help", "-h"):
            sub = invoke([name, flag])
            assert sub.exit_code == 0, (name, sub.output)
            assert f"Usage: sigmasight {name}" in sub.output
            first_line = main.commands[name].help.strip().splitlines()[0]
            assert first_line[:40] in " ".join(sub.output.split()), name
    states = invoke(["symbol-status", "--help"]).output
    for state in ("pending", "active", "error", "private"):
        assert re.search(rf"^\s+{state}\s", states, flags=re.M), state


# -- symbol-status --------------------------------------------------------------------------------
def test_symbol_status_states_from_the_warehouse(filled):
    url, wh = filled
    res = invoke(["symbol-status", "aapl", "GONE", "PRIVATE_FUND_A", "SPY260618C01400000", "XOM", "NOPE",
                  "SPY261218P01400000", "AAPL"], url)
    assert res.exit_code == 0, res.output
    assert f"latest symbol_universe partition: {END}" in res.output
    st = status_by_symbol(res.output)
    assert list(st) == ["AAPL", "GONE", "PRIVATE_FUND_A", "SPY260618C01400000", "XOM", "NOPE", "SPY261218P01400000"]
    status = {s: r[1] for s, r in st.items()}
    assert status == {"AAPL": "active", "GONE": "error", "PRIVATE_FUND_A": "private", "SPY260618C01400000": "expired",
                      "XOM": "inactive", "NOPE": "unknown", "SPY261218P01400000": "active"}

    # active: the day's close and market beta are the warehouse's.
    px = wh.read("prices", END, END, keys=["AAPL"]).iloc[0]
    beta = wh.read("symbol_betas", END, END, keys=["AAPL"]).set_index("factor").loc["market", "beta"]
    assert st["AAPL"][2:5] == ["PUBLIC", "P-HOLD, P-LONG", END]
    assert f"close {px['close']:,.2f} on {END}, market beta {beta:.2f}" in st["AAPL"][5]

    # error: the reason is the provider's, as recorded in symbol_status for the day.
    failed = wh.read("symbol_status", END, END, keys=["GONE"])
    assert set(failed["asset"]) >= {"prices"}
    reason = failed.set_index("asset").loc["prices", "reason"]
    assert reason == "stopped trading after 2026-06-30"
    assert st["GONE"][2:4] == ["PUBLIC", "P-HOLD"]
    assert st["GONE"][4] == "—"  # no price in the warehouse (the range starts after its delisting)
    assert f"{END}: " in st["GONE"][5] and f"prices failed: {reason}" in st["GONE"][5]

    assert st["PRIVATE_FUND_A"][2] == "PRIVATE" and "never fetched" in st["PRIVATE_FUND_A"][5]
    assert "manual value 310,000" in st["PRIVATE_FUND_A"][5]
    assert st["SPY260618C01400000"][2] == "OPTIONS" and "expired 2026-06-18" in st["SPY260618C01400000"][5]
    assert st["XOM"][3] == "—" and "last exit 2026-05-01" in st["XOM"][5]
    assert st["SPY261218P01400000"][2] == "OPTIONS"  # options need a price, not a beta


def test_new_portfolio_report_and_pending_symbol(filled, tmp_path):
    url, _ = filled
    copy = tmp_path / "copy.sqlite"
    with sqlite3.connect(url.removeprefix("sqlite:///")) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)  # the warehouse runs in WAL mode: copying the main file alone would lose rows
    copy_url = f"sqlite:///{copy}"
    pos = tmp_path / "new.csv"
    pos.write_text("portfolio_id,symbol,quantity,entry_price,entry_date,exit_date,exit_price,investment_class,manual_value\n"
                   "P-NEW,NEWSYM,10,100,2026-11-02,,,,\n"
                   "P-NEW,AAPL,5,80,2026-10-15,,,,\n"
                   "P-NEW,MSFT,5,30,2025-06-02,2026-11-10,35,,\n"
                   "P-NEW,FOO_FUND,1,1000,2026-01-02,,,PRIVATE,1200\n")
    res = invoke(["load-portfolios", str(pos)], copy_url)
    assert res.exit_code == 0, res.output
    assert (f"loaded 1 portfolio(s), 4 position(s) from {pos}; capital flows unchanged (no --flows file): "
            "0 stored flow(s) kept") in res.stdout
    rows = {r[0]: r for r in table_rows(res.stdout, "portfolio")}
    # PUBLIC OPTIONS PRIVATE positions open exited deleted symbols first-entry
    assert rows["P-NEW"][2:] == ["3", "0", "1", "4", "3", "1", "0", "4", "2025-06-02"]
    warnings = res.stdout.split("warnings:")[1]
    assert f"1 symbol(s) not in the latest symbol_universe partition ({END}): NEWSYM " in warnings
    assert "AAPL" not in warnings.split("\n")[1]  # known to the universe
    first = calendar.sessions_back(END, DAYS)[0].date()
    assert f"first symbol_universe partition ({first}): P-NEW from 2025-06-02" in warnings
    assert "never sent to a market data provider: FOO_FUND" in warnings

    st = status_by_symbol(invoke(["symbol-status", "NEWSYM", "FOO_FUND", "--database-url", copy_url]).output)
    assert st["NEWSYM"][1] == "pending" and f"not in the latest symbol_universe partition ({END})" in st["NEWSYM"][5]
    assert st["NEWSYM"][4] == "—"
    assert st["FOO_FUND"][1] == "private"


def test_symbol_status_before_any_run(warehouse):
    assert invoke(["load-portfolios", "--sample"]).exit_code == 0
    res = invoke(["symbol-status", "AAPL", "EQ1A2B3C4D5E"])
    assert res.exit_code == 0
    assert "latest symbol_universe partition: none (never materialised)" in res.output
    st = status_by_symbol(res.output)
    assert st["AAPL"][1] == "pending" and "symbol_universe never materialised" in st["AAPL"][5]
    assert st["EQ1A2B3C4D5E"][1] == "private"


# -- show -----------------------------------------------------------------------------------------
def test_show_latest_snapshot_exposures_and_stress(filled):
    url, wh = filled
    res = invoke(["show", "P-LONG"], url)
    assert res.exit_code == 0, res.output
    out = res.output
    assert out.startswith(f"P-LONG — Long-only core equity — {END}")
    snap = wh.read("portfolio_snapshots", END, END, keys=["P-LONG"]).iloc[0]
    assert re.search(rf"equity\s+{re.escape(money(snap['equity']))}\s", out)
    assert re.search(rf"gross exposure\s+{re.escape(money(snap['gross_exposure']))}\s", out)

    expo = wh.read("aggregated_exposures", END, END, keys=["P-LONG"])
    shown = table_rows(out, "factor")
    assert len(shown) == min(10, len(expo))
    expected = expo.assign(a=expo["exposure_value"].abs()).sort_values("a", ascending=False)["factor"].head(10)
    assert [r[0] for r in shown] == list(expected)
    assert f"of {len(expo)})" in out

    stress = wh.read("stress_results", END, END, keys=["P-LONG"])
    rows = table_rows(out, "scenario")
    assert len(rows) == 10
    pnl = [float(r[4].replace(",", "")) for r in rows]
    assert pnl == sorted(pnl), "worst first"
    worst = stress.sort_values("correlated_pnl").iloc[0]
    assert rows[0][0] == worst["scenario_name"] and rows[0][4] == money(worst["correlated_pnl"])
    assert rows[0][5] == f"{worst['correlated_pct_equity'] * 100:.2f}%"
    top = json.loads(worst["top_contributors"])[0]
    assert rows[0][6] == f"{top[1]} {money(top[2])}"  # [position_id, symbol, pnl]

    every = invoke(["show", "P-LONG", "--top", "0"], url)
    assert len(table_rows(every.output, "scenario")) == len(stress) == 24  # 19 shocks, 5 replays


def test_show_a_given_date_and_clear_errors(filled):
    url, wh = filled
    day = calendar.sessions_back(END, 3)[0].date().isoformat()
    res = invoke(["show", "P-LS", "--date", day, "--top", "3"], url)
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"P-LS — Long/short equity — {day}")
    assert len(table_rows(res.output, "scenario")) == 3
    snap = wh.read("portfolio_snapshots", day, day, keys=["P-LS"]).iloc[0]
    assert re.search(rf"equity\s+{re.escape(money(snap['equity']))}\s", res.output)

    weekend = invoke(["show", "P-LS", "--date", "2026-11-21"], url)
    assert weekend.exit_code == 1
    first = calendar.sessions_back(END, DAYS)[0].date()
    assert f"no snapshot of P-LS on 2026-11-21 (not a trading day); snapshots cover {first}..{END}" in weekend.stderr

    unknown = invoke(["show", "P-NOPE"], url)
    assert unknown.exit_code == 2
    assert "unknown portfolio 'P-NOPE'; loaded: P-HOLD, P-LONG, P-LS, P-OPT, P-PRIV" in unknown.stderr

    bad = invoke(["show", "P-LS", "--date", "yesterday"], url)
    assert bad.exit_code == 2 and "not a date" in bad.output


def test_show_before_any_run(warehouse):
    assert invoke(["load-portfolios", "--sample"]).exit_code == 0
    res = invoke(["show", "P-LONG"])
    assert res.exit_code == 1
    assert "P-LONG has no portfolio_snapshots yet" in res.stderr


# -- load-portfolios report and progress ----------------------------------------------------------
def test_load_report_on_an_empty_warehouse(warehouse):
    res = invoke(["load-portfolios", "--sample"])
    assert res.exit_code == 0
    out = res.stdout
    assert "loaded 4 portfolio(s), 25 position(s), 9 capital flow(s)" in out
    rows = {r[0]: r for r in table_rows(out, "portfolio")}
    assert set(rows) == {"P-LONG", "P-LS", "P-OPT", "P-PRIV"}
    assert rows["P-OPT"][2:6] == ["2", "3", "0", "5"]
    assert rows["P-PRIV"][2:6] == ["2", "0", "2", "4"]
    assert "symbol_universe has no partition yet" in out
    assert "never sent to a market data provider: EQ1A2B3C4D5E, PRIVATE_FUND_A" in out
    assert "past expiration (inactive, never fetched): SPY260618C01400000" in out
    assert res.stderr == ""  # no progress bar when stderr is not a terminal


def test_progress_bar_on_request(warehouse):
    res = invoke(["load-portfolios", "--sample", "--progress"])
    assert res.exit_code == 0
    assert "load-portfolios: 100%" in res.stderr and "4/4" in res.stderr
    assert "load-portfolios" not in res.stdout


def test_loading_a_ledger_records_an_observation_of_the_portfolios_source(isolated_env):
    """The UI shows when the ledger last changed (not "Never observed"); the data version changes with it."""
    from dagster import AssetKey, DagsterInstance

    def observations():
        with DagsterInstance.get() as instance:
            return instance.fetch_observations(AssetKey("portfolios"), limit=10).records

    (isolated_env / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert invoke(["load-portfolios", "--sample", "--no-progress"]).exit_code == 0
    [first] = observations()
    obs = first.event_log_entry.asset_observation
    assert obs.metadata["portfolios"].value == 4 and obs.metadata["positions"].value == 25
    version = obs.tags["dagster/data_version"]
    assert invoke(["remove-portfolios", "P-PRIV"]).exit_code == 0
    latest = observations()[0].event_log_entry.asset_observation
    assert latest.metadata["portfolios"].value == 3 and latest.tags["dagster/data_version"] != version
