"""Tick tests of the onboarding sensors on a real temporary warehouse.

``new_symbol_sensor``: a symbol the ledger needs on the latest stored partition but absent from its
``symbol_universe`` is onboarded by one scoped single-run range (a year of history), then the
portfolios are refreshed on the latest partition — measured end to end (load → tick → run → betas).
``portfolio_ledger_sensor``: a new or changed portfolio gets its history recomputed from its first
entry date, after a scoped symbol run when it brings new symbols. The two sensors never request the
same symbol twice and never refresh portfolios while an onboarding run they depend on is unfinished.

Runs the sensors request are executed in process with the synthetic provider (what the daemon
would launch: same selection, run config and tags). A run the daemon has queued but not finished is
represented by a run record in status STARTED carrying the request's tags and run config.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    PartitionKeyRange,
    build_asset_context,
    build_sensor_context,
    materialize,
)
from dagster._core.events import DagsterEvent
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.utils import make_new_run_id

from sigmasight_assets import calendar
from sigmasight_assets.defs import sensors as automation
from sigmasight_assets.defs.sensors import (
    PORTFOLIO_ASSETS,
    SYMBOL_ASSET_NAMES,
    SYMBOL_ASSETS,
    new_symbol_sensor,
    portfolio_ledger_sensor,
)
from sigmasight_assets.defs.common import ScopeConfig
from sigmasight_assets.defs.market_assets import daily_valuations, prices, symbol_returns, symbol_universe
from sigmasight_assets.defs.resources import WarehouseResource
from sigmasight_assets.pipelines.portfolio import ledger_fingerprints
from sigmasight_assets.warehouse.ledger import read_ledger, store_ledger

from .conftest import SAMPLE_FLOWS, SAMPLE_POSITIONS
from .helpers_graph import copy_warehouse, iso, load_ledger, module_env, new_warehouse, resources, run_range

D = "2025-12-31"  # the latest stored partition of every test warehouse
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


# -- warehouses with history -----------------------------------------------------------------------
def _build_base(directory: Path, sessions: int):
    """Sample book; market assets over ``sessions`` sessions ending D (invoked directly: the asset
    code without Dagster's per-partition event bookkeeping), then the whole graph on the last two
    sessions as one run, so the latest partition has every asset and portfolio analytics."""
    from sigmasight_assets.ledger import parse_ledger

    url, wh = new_warehouse(directory, "base")
    store_ledger(wh, parse_ledger(SAMPLE_POSITIONS, SAMPLE_FLOWS))
    sess = calendar.sessions_back(D, sessions)
    keys = PartitionKeyRange(iso(sess[0]), iso(sess[-1]))
    for asset_def in (symbol_universe, prices, symbol_returns, daily_valuations):
        asset_def(build_asset_context(partition_key_range=keys, resources=resources(url)), ScopeConfig())
    assert run_range(url, sess[-2], sess[-1]).success
    return wh


@pytest.fixture(scope="module")
def short_base(tmp_path_factory):
    directory = tmp_path_factory.mktemp("short_base")
    with module_env(directory):
        wh = _build_base(directory, 40)
        yield wh
        wh.engine.dispose()


@pytest.fixture(scope="module")
def year_base(tmp_path_factory):
    directory = tmp_path_factory.mktemp("year_base")
    with module_env(directory):
        wh = _build_base(directory, 260)
        yield wh
        wh.engine.dispose()


@pytest.fixture
def wh(short_base, tmp_path):
    return copy_warehouse(short_base, tmp_path, "wh")[1]


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        yield inst


# -- helpers ---------------------------------------------------------------------------------------
def url_of(wh) -> str:
    return wh.url


def tick(sensor_def, wh, instance, cursor=None):
    """One evaluation as the sensor daemon does it (resources and the code location supplied)."""
    from sigmasight_assets.definitions import defs

    ctx = build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                               resources={"warehouse": WarehouseResource(url=url_of(wh))})
    return sensor_def.evaluate_tick(ctx)


def execute(request, wh, instance):
    """Run a sensor's RunRequest in process: same assets, run config, partition or range tags."""
    from sigmasight_assets.definitions import defs

    assets = [a for a in defs.assets if getattr(a, "partitions_def", None) is not None]
    kwargs = {"partition_key": request.partition_key} if request.partition_key else {}
    # materialize() always executes in process; the request's executor choice is for the daemon.
    run_config = {k: v for k, v in (request.run_config or {}).items() if k != "execution"}
    result = materialize(assets, selection=request.asset_selection, run_config=run_config,
                         resources=resources(url_of(wh)), tags=dict(request.tags), instance=instance, **kwargs)
    assert result.success
    return result


def in_flight(instance, request) -> DagsterRun:
    """A run the daemon has launched for ``request`` and that has not finished yet."""
    run = DagsterRun(job_name="daily_risk_graph", run_id=make_new_run_id(), status=DagsterRunStatus.NOT_STARTED,
                     tags=dict(request.tags), run_config=request.run_config or {})
    instance.add_run(run)
    instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name), run.run_id)
    return instance.get_run_by_id(run.run_id)


def finish(instance, run) -> None:
    instance.report_run_canceled(run)


def symbols_of(request) -> list[str]:
    return request.run_config["ops"]["symbol_universe"]["config"]["symbols"]


def position(pid, symbol, qty, price, entry, **extra) -> dict:
    return {"portfolio_id": pid, "portfolio_name": pid, "symbol": symbol, "quantity": qty, "entry_price": price,
            "entry_date": entry, **extra}


def sessions_before(day, n) -> str:
    """The session ``n`` sessions before ``day``."""
    return iso(calendar.sessions_back(day, n + 1)[0])


# -- no history / nothing new ----------------------------------------------------------------------
def test_both_sensors_wait_for_the_first_backfill(tmp_path, instance):
    _, wh = new_warehouse(tmp_path, "empty")
    from sigmasight_assets.ledger import parse_ledger

    store_ledger(wh, parse_ledger(SAMPLE_POSITIONS, SAMPLE_FLOWS))
    res = tick(new_symbol_sensor, wh, instance)
    assert res.run_requests == [] and "backfill" in res.skip_message
    res = tick(portfolio_ledger_sensor, wh, instance)
    assert res.run_requests == [] and "first backfill" in res.skip_message
    # The ledger as of now is the baseline: the backfill covers it, no second request later.
    assert set(json.loads(res.cursor)["fingerprints"]) == {"P-LONG", "P-LS", "P-OPT", "P-PRIV"}


def test_a_settled_book_requests_nothing(wh, instance):
    res = tick(new_symbol_sensor, wh, instance)
    assert res.run_requests == []
    assert "every symbol" in res.skip_message
    res = tick(portfolio_ledger_sensor, wh, instance)
    assert res.run_requests == []
    assert "no new or changed portfolio" in res.skip_message
    # First tick: portfolios with computed analytics are the baseline.
    assert set(json.loads(res.cursor)["fingerprints"]) == {"P-LONG", "P-LS", "P-OPT", "P-PRIV"}


# -- new symbol: the full flow, timed ----------------------------------------------------------------
def test_new_symbol_gets_a_year_of_history_and_factors(year_base, tmp_path, instance, capsys):
    _, wh = copy_warehouse(year_base, tmp_path, "wh")
    before = wh.read("symbol_betas", D, D)
    cursor = tick(new_symbol_sensor, wh, instance).cursor

    started = time.perf_counter()
    cpu_started = time.process_time()
    load_ledger(wh, tmp_path / "ledger", [position("P-NEW", "ZNEWCO", 100, 50.0, D),
                                          position("P-NEW", "AAPL", 10, 200.0, D)])
    res = tick(new_symbol_sensor, wh, instance, cursor)
    [request] = res.run_requests
    ticked = time.perf_counter()
    result = execute(request, wh, instance)
    betas = wh.read("symbol_betas", D, D, keys=["ZNEWCO"])
    latency = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    with capsys.disabled():
        print(f"\n[new-symbol latency] load→tick {ticked - started:.2f}s, load→symbol_betas rows {latency:.1f}s "
              f"wall ({cpu:.1f}s CPU in this process) for a {request.tags[RANGE_START]}..{request.tags[RANGE_END]} "
              f"scoped run")

    # The request: the eight symbol-level assets, scoped to the new symbol only (AAPL is known),
    # one single-run range from 253 sessions before the entry (a year of returns) to D.
    assert request.asset_selection == SYMBOL_ASSETS
    assert symbols_of(request) == ["ZNEWCO"]
    assert {n: c["config"]["symbols"] for n, c in request.run_config["ops"].items()} == \
        {n: ["ZNEWCO"] for n in SYMBOL_ASSET_NAMES}
    assert "execution" not in request.run_config  # runs execute in one process by default
    assert request.tags[RANGE_START] == sessions_before(D, 252)
    assert request.tags[RANGE_END] == D
    assert len(calendar.sessions(request.tags[RANGE_START], D)) == 253
    assert request.tags["sigmasight/onboarding"] == "symbols"
    assert result.success

    # Its factors on D exist, computed from a full window; nobody else's rows changed.
    assert set(betas["factor"]) == {"market", "ir", "provider"}
    assert (betas.set_index("factor").loc[["market", "ir"], "observations"] == 90).all()
    assert len(wh.read("ridge_factors", D, D, keys=["ZNEWCO"])) == 6
    assert len(wh.read("spread_factors", D, D, keys=["ZNEWCO"])) == 4
    model = wh.read("factor_model", D, D, keys=["ZNEWCO"])
    assert len(model) == 8 and (model["observations"] == 90).all()
    metrics = wh.read("symbol_metrics", D, D, keys=["ZNEWCO"])
    assert len(metrics) == 1 and metrics["return_3m"].notna().all() and metrics["volatility_63d"].notna().all()
    # The synthetic market drops ZNEWCO's 2025-03-06 and 03-26 sessions: a year's total return across
    # a missing day is unknown (never bridged), so return_1y stays missing, counted, not guessed.
    missing = wh.read("symbol_status", "2025-03-01", "2025-03-31", keys=["ZNEWCO"]).query("asset == 'prices'")
    assert sorted(missing["date"].dt.strftime("%m-%d")) == ["03-06", "03-26"]
    assert metrics["return_1y"].isna().all()
    after = wh.read("symbol_betas", D, D)
    pd.testing.assert_frame_equal(
        after[after["symbol"] != "ZNEWCO"].sort_values(["symbol", "factor"], ignore_index=True),
        before.sort_values(["symbol", "factor"], ignore_index=True))
    history = wh.read("prices", request.tags[RANGE_START], D, keys=["ZNEWCO"])
    assert len(history) >= 250  # a year of prices (the synthetic market drops ~0.2 % of sessions)

    # Next tick: the onboarding run has finished → refresh the portfolios on D, once.
    res = tick(new_symbol_sensor, wh, instance, res.cursor)
    [refresh] = res.run_requests
    assert refresh.asset_selection == PORTFOLIO_ASSETS and refresh.partition_key == D
    execute(refresh, wh, instance)
    expo = wh.read("aggregated_exposures", D, D, keys=["P-NEW"], key_column="portfolio_id")
    market = expo[expo["factor"] == "market"].iloc[0]
    assert market["positions_missing_beta"] == 0 and market["coverage"] == pytest.approx(1.0)
    res = tick(new_symbol_sensor, wh, instance, res.cursor)
    assert res.run_requests == [] and "every symbol" in res.skip_message


def test_symbol_sensor_waits_for_its_run_and_never_requests_twice(wh, instance, tmp_path):
    cursor = tick(new_symbol_sensor, wh, instance).cursor
    load_ledger(wh, tmp_path / "ledger", [position("P-NEW", "ZNEWCO", 100, 50.0, D)])
    res = tick(new_symbol_sensor, wh, instance, cursor)
    [request] = res.run_requests
    # The short warehouse starts 40 sessions back: the range never starts before its first partition.
    assert request.tags[RANGE_START] == iso(calendar.sessions_back(D, 40)[0])
    run = in_flight(instance, request)
    res = tick(new_symbol_sensor, wh, instance, res.cursor)
    assert res.run_requests == [] and "waiting" in res.skip_message
    # The run failed (or was cancelled): portfolios are refreshed anyway; the symbol is not retried
    # on this partition (the failure is in run_failures; the next nightly run includes it).
    finish(instance, run)
    res = tick(new_symbol_sensor, wh, instance, res.cursor)
    [refresh] = res.run_requests
    assert refresh.asset_selection == PORTFOLIO_ASSETS
    res = tick(new_symbol_sensor, wh, instance, res.cursor)
    assert res.run_requests == []


def test_symbol_being_onboarded_by_the_ledger_sensor_is_left_to_it(wh, instance, tmp_path):
    load_ledger(wh, tmp_path / "ledger", [position("P-NEW", "ZNEWCO", 100, 50.0, D)])
    ledger_request = automation.symbol_run_request(["ZNEWCO"], pd.Timestamp(D).date(), pd.Timestamp(D).date(),
                                                   "portfolio_ledger_sensor", "ledger-symbols-x")
    run = in_flight(instance, ledger_request)
    res = tick(new_symbol_sensor, wh, instance)
    assert res.run_requests == []
    assert "already being onboarded" in res.skip_message and "ZNEWCO" in res.skip_message
    finish(instance, run)


def test_private_and_future_symbols(wh, instance, tmp_path):
    # A private asset is never fetched; a position entering beyond the 253-session look-ahead is not
    # needed on D yet; one entering next month is (its history must be there before entry).
    soon = iso(calendar.sessions(D, "2026-03-31")[20])
    load_ledger(wh, tmp_path / "ledger", [
        position("P-NEW", "PRIV_FUND_X", 1, 1.0, D, investment_class="PRIVATE", manual_value=1000.0),
        position("P-NEW", "ZFAR", 10, 10.0, "2027-06-01"),
        position("P-NEW", "ZSOON", 10, 10.0, soon),
    ])
    [request] = tick(new_symbol_sensor, wh, instance).run_requests
    assert symbols_of(request) == ["ZSOON"]


# -- portfolio ledger --------------------------------------------------------------------------------
def test_new_portfolio_with_known_symbols_is_backfilled_from_its_first_entry(wh, instance, tmp_path):
    cursor = tick(portfolio_ledger_sensor, wh, instance).cursor
    entry = sessions_before(D, 20)
    load_ledger(wh, tmp_path / "ledger", [position("P-NEW", "AAPL", 10, 200.0, entry),
                                          position("P-NEW", "MSFT", 10, 300.0, sessions_before(D, 5))],
                [{"portfolio_id": "P-NEW", "date": entry, "amount": 10000.0}])
    res = tick(portfolio_ledger_sensor, wh, instance, cursor)
    [request] = res.run_requests
    assert request.asset_selection == PORTFOLIO_ASSETS
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (entry, D)
    assert "sigmasight/onboarding" not in request.tags
    assert json.loads(res.cursor)["fingerprints"]["P-NEW"]
    execute(request, wh, instance)
    snaps = wh.read("portfolio_snapshots", entry, D, keys=["P-NEW"], key_column="portfolio_id")
    assert len(snaps) == 21 and snaps["equity"].notna().all()
    res = tick(portfolio_ledger_sensor, wh, instance, res.cursor)
    assert res.run_requests == [] and "no new or changed" in res.skip_message


def test_changed_ledger_is_recomputed_from_its_first_entry_and_reload_is_no_change(wh, instance, tmp_path,
                                                                                   monkeypatch):
    monkeypatch.setattr(automation, "PARTITIONS_PER_RUN", 21)  # 40 sessions: two runs
    cursor = tick(portfolio_ledger_sensor, wh, instance).cursor
    from sigmasight_assets.ledger import parse_ledger

    # Reloading the same files (new loaded_at) changes nothing.
    store_ledger(wh, parse_ledger(SAMPLE_POSITIONS, SAMPLE_FLOWS))
    res = tick(portfolio_ledger_sensor, wh, instance, cursor)
    assert res.run_requests == []
    # One quantity of P-LONG changes: P-LONG alone is refreshed, from its first entry (2025-01-02)
    # — inside the warehouse's history it would be; here the history starts later, so from there.
    text = SAMPLE_POSITIONS.read_text().splitlines()
    changed = [text[0]] + [ln for ln in text[1:] if ln.startswith("P-LONG,")]
    changed[1] = changed[1].replace(",400,", ",401,")
    path = tmp_path / "p_long.csv"
    path.write_text("\n".join(changed) + "\n")
    store_ledger(wh, parse_ledger(path, None, already_loaded={"P-LS", "P-OPT", "P-PRIV"}))
    res = tick(portfolio_ledger_sensor, wh, instance, res.cursor)
    # P-LONG alone, from the first stored partition to D, in runs of at most PARTITIONS_PER_RUN days.
    first_stored = iso(calendar.sessions_back(D, 40)[0])
    covered = []
    for request in res.run_requests:
        assert request.run_config["ops"]["portfolio_analytics"]["config"]["portfolio_ids"] == ["P-LONG"]
        days = calendar.sessions(request.tags[RANGE_START], request.tags[RANGE_END])
        assert len(days) <= 21
        covered += [iso(d) for d in days]
    assert covered == [iso(d) for d in calendar.sessions(max("2025-01-02", first_stored), D)]
    assert len(res.run_requests) == 2
    before = json.loads(cursor)["fingerprints"]
    after = json.loads(res.cursor)["fingerprints"]
    assert {p for p in after if after[p] != before[p]} == {"P-LONG"}


def test_new_portfolio_with_a_new_symbol_waits_for_its_onboarding(wh, instance, tmp_path):
    cursor = tick(portfolio_ledger_sensor, wh, instance).cursor
    entry = sessions_before(D, 10)
    load_ledger(wh, tmp_path / "ledger", [position("P-NEW", "ZNEWTWO", 100, 20.0, entry),
                                          position("P-NEW", "AAPL", 10, 200.0, entry)])
    res = tick(portfolio_ledger_sensor, wh, instance, cursor)
    [symbols_request] = res.run_requests
    assert symbols_request.asset_selection == SYMBOL_ASSETS
    assert symbols_of(symbols_request) == ["ZNEWTWO"]
    # Its history (look-ahead) starts before the warehouse does: from the first stored partition.
    assert symbols_request.tags[RANGE_START] == iso(calendar.sessions_back(D, 40)[0])
    assert symbols_request.tags[RANGE_END] == D
    assert "P-NEW" not in json.loads(res.cursor)["fingerprints"]  # not refreshed yet

    # While its run is unfinished: wait (no duplicate symbol run, no premature portfolio run), and the
    # other sensor leaves the symbol alone too.
    run = in_flight(instance, symbols_request)
    res = tick(portfolio_ledger_sensor, wh, instance, res.cursor)
    assert res.run_requests == [] and "waiting" in res.skip_message
    other = tick(new_symbol_sensor, wh, instance)
    assert other.run_requests == [] and "already being onboarded" in other.skip_message
    finish(instance, run)

    # The onboarding run completes → the portfolio history from its first entry.
    execute(symbols_request, wh, instance)
    assert len(wh.read("symbol_betas", entry, D, keys=["ZNEWTWO"])) > 0
    res = tick(portfolio_ledger_sensor, wh, instance, res.cursor)
    [portfolio_request] = res.run_requests
    assert portfolio_request.asset_selection == PORTFOLIO_ASSETS
    assert (portfolio_request.tags[RANGE_START], portfolio_request.tags[RANGE_END]) == (entry, D)
    execute(portfolio_request, wh, instance)
    expo = wh.read("aggregated_exposures", entry, D, keys=["P-NEW"], key_column="portfolio_id")
    market = expo[expo["factor"] == "market"].set_index("date")
    assert len(market) == 11  # every day from its entry
    # On D both positions have a beta (earlier days of this short test history lack AAPL's betas,
    # which were only computed for the last two sessions, and ZNEWTWO's first 30-return window).
    assert market.loc[pd.Timestamp(D), "positions_missing_beta"] == 0
    res = tick(portfolio_ledger_sensor, wh, instance, res.cursor)
    assert res.run_requests == []


def test_ledger_sensor_waits_while_the_symbol_sensor_onboards(wh, instance, tmp_path):
    cursor = tick(portfolio_ledger_sensor, wh, instance).cursor
    load_ledger(wh, tmp_path / "ledger", [position("P-NEW", "ZNEWCO", 100, 50.0, D)])
    [symbols_request] = tick(new_symbol_sensor, wh, instance).run_requests
    run = in_flight(instance, symbols_request)
    res = tick(portfolio_ledger_sensor, wh, instance, cursor)
    assert res.run_requests == [] and "being onboarded by another run" in res.skip_message
    assert "P-NEW" not in json.loads(res.cursor)["fingerprints"]
    # That run failed: the symbol is still missing and the ledger sensor has not tried it itself,
    # so it onboards it now (before the portfolio history).
    finish(instance, run)
    [retry] = tick(portfolio_ledger_sensor, wh, instance, res.cursor).run_requests
    assert retry.asset_selection == SYMBOL_ASSETS and symbols_of(retry) == ["ZNEWCO"]


def test_failed_onboarding_does_not_loop(wh, instance, tmp_path):
    cursor = tick(portfolio_ledger_sensor, wh, instance).cursor
    load_ledger(wh, tmp_path / "ledger", [position("P-NEW", "ZNEWTWO", 100, 20.0, sessions_before(D, 3))])
    res = tick(portfolio_ledger_sensor, wh, instance, cursor)
    [symbols_request] = res.run_requests
    finish(instance, in_flight(instance, symbols_request))  # it failed: the symbol is still missing
    res = tick(portfolio_ledger_sensor, wh, instance, res.cursor)
    [portfolio_request] = res.run_requests  # refresh anyway, with a warning; no second symbol run
    assert portfolio_request.asset_selection == PORTFOLIO_ASSETS
    res = tick(portfolio_ledger_sensor, wh, instance, res.cursor)
    assert res.run_requests == []


# -- fingerprints ------------------------------------------------------------------------------------
def test_fingerprints_are_per_portfolio_order_free_and_dtype_stable(wh):
    books, pos, flows = read_ledger(wh)
    fps = ledger_fingerprints(books, pos, flows)
    assert set(fps) == {"P-LONG", "P-LS", "P-OPT", "P-PRIV"}
    shuffled = ledger_fingerprints(books, pos.sample(frac=1, random_state=1), flows.sample(frac=1, random_state=2))
    assert shuffled == fps
    # Another portfolio's change, even one that changes a column's dtype, leaves P-LONG alone.
    pos2 = pos.copy()
    pos2["quantity"] = pos2["quantity"].astype(object)
    pos2.loc[pos2["portfolio_id"] == "P-LS", "exit_price"] = 1.5
    fps2 = ledger_fingerprints(books, pos2, flows)
    assert fps2["P-LONG"] == fps["P-LONG"] and fps2["P-LS"] != fps["P-LS"]
    # A capital flow is part of the ledger.
    flows2 = flows.copy()
    flows2.loc[flows2.index[0], "amount"] += 1
    changed = flows2.loc[flows2.index[0], "portfolio_id"]
    assert ledger_fingerprints(books, pos, flows2)[changed] != fps[changed]
