"""The market-data assets through Dagster: one single run over a partition range, idempotent
re-runs, scoped runs, asset checks and metadata, bad providers; and the definitions-load test.

Runs select the market-data assets (``symbol_universe``, ``prices``, ``daily_valuations``) so these
tests pin the foundation layer; the whole graph is exercised by ``test_cli_demo.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dagster import (
    AssetCheckSeverity,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    TimeWindowPartitionMapping,
)

from sigmasight_assets import calendar
from sigmasight_assets.calc import week52
from sigmasight_assets.calc.factors import FACTOR_ETFS
from sigmasight_assets.defs import market_assets
from sigmasight_assets.local_runs import materialize_range
from sigmasight_assets.defs.partitions import trading_days
from sigmasight_assets.defs.resources import MarketDataResource, WarehouseResource
from sigmasight_assets.ledger import parse_ledger
from sigmasight_assets.market_data.base import ProviderUnavailableError
from sigmasight_assets.market_data.synthetic import SyntheticProvider
from sigmasight_assets.warehouse import Warehouse
from sigmasight_assets.warehouse.ledger import store_ledger

from .conftest import SAMPLE_FLOWS, SAMPLE_POSITIONS

MARKET = ["symbol_universe", "prices", "symbol_returns", "daily_valuations"]
SESS = calendar.sessions_back("2026-06-30", 30)  # NEWCO listed, GONE exits 06-30, an option expires 06-18
START, END = SESS[0].date().isoformat(), SESS[-1].date().isoformat()
KEYS = [d.date().isoformat() for d in SESS]
TABLE_KEYS = {
    "symbol_universe": ["date", "symbol"],
    "prices": ["date", "symbol"],
    "daily_valuations": ["date", "symbol"],
    "symbol_status": ["date", "symbol", "asset"],
}


def resources(url: str, market_data=None) -> dict:
    return {"warehouse": WarehouseResource(url=url),
            "market_data": market_data or MarketDataResource(spec="synthetic", seed=7)}


def run(url, instance=None, start=START, end=END, selection=MARKET, market_data=None, run_config=None,
        raise_on_error=True):
    return materialize_range(start, end, instance=instance or DagsterInstance.ephemeral(), selection=selection,
                             resources=resources(url, market_data), run_config=run_config,
                             raise_on_error=raise_on_error)


def snapshot(wh: Warehouse) -> dict[str, pd.DataFrame]:
    return {t: wh.read(t).sort_values(k, ignore_index=True) for t, k in TABLE_KEYS.items()}


def load_sample(wh: Warehouse) -> None:
    store_ledger(wh, parse_ledger(SAMPLE_POSITIONS, SAMPLE_FLOWS))


@pytest.fixture(scope="module")
def market_run(tmp_path_factory):
    """The sample book and one run of the market-data assets over 30 sessions."""
    url = f"sqlite:///{tmp_path_factory.mktemp('market') / 'warehouse.sqlite'}"
    wh = Warehouse(url)
    wh.create_all()
    load_sample(wh)
    with DagsterInstance.ephemeral() as instance:
        result = run(url, instance)
        yield {"wh": wh, "result": result, "instance": instance, "url": url}


# -- one run over the range ------------------------------------------------------------------------
def test_every_day_of_the_range_has_its_check_evaluations_none_left_planned(market_run):
    """Dagster plans each check per partition of a ranged run; every day gets an evaluation (its own
    verdict, or the range's saying so where a day has none), so no day's check reads as skipped in the UI."""
    from dagster import AssetCheckKey, AssetKey

    storage = market_run["instance"].event_log_storage
    for asset, check in (("prices", "universe_coverage"), ("symbol_universe", "factor_etfs_present"),
                         ("daily_valuations", "week52_consistent")):
        history = storage.get_asset_check_execution_history(AssetCheckKey(AssetKey(asset), check), limit=200)
        by_day = {r.partition: r.status.value for r in history if r.partition is not None}
        assert sorted(by_day) == KEYS, (asset, check)
        assert set(by_day.values()) == {"SUCCEEDED"}, (asset, check, by_day)
    ev = market_run["result"].get_asset_check_evaluations()
    [day] = [e for e in ev if e.partition == KEYS[0] and e.check_name == "universe_coverage"]
    assert day.description.startswith("100.0% of ") and day.description.endswith(" symbol-days have a price")
    assert "judged_over" not in day.metadata
    # A symbol's mixed bases are a property of the run's days together: no day has a verdict of its own.
    [day] = [e for e in ev if e.partition == KEYS[0] and e.check_name == "one_basis_per_symbol"]
    assert day.description.startswith(f"judged over the run's range {START}..{END}")
    assert day.metadata["judged_over"].value == f"{START}..{END}"


def test_range_is_one_successful_run(market_run):
    result, instance = market_run["result"], market_run["instance"]
    assert result.success
    runs = instance.get_runs()
    assert len(runs) == 1
    assert runs[0].tags["dagster/asset_partition_range_start"] == START
    assert runs[0].tags["dagster/asset_partition_range_end"] == END
    for name in MARKET:
        mats = result.asset_materializations_for_node(name)
        assert sorted(m.partition for m in mats) == KEYS, name


def test_prices_one_row_per_fetchable_symbol_day_except_missing(market_run):
    wh = market_run["wh"]
    uni = wh.read("symbol_universe")
    fetchable = uni[uni["fetch"]][["date", "symbol"]]
    prices = wh.read("prices")
    status = wh.read("symbol_status")
    failed = status[(status["asset"] == "prices") & (status["status"] == "failed")]
    assert not prices.duplicated(["date", "symbol"]).any()
    as_set = lambda f: set(zip(f["date"], f["symbol"]))  # noqa: E731
    assert as_set(prices).isdisjoint(as_set(failed))
    assert as_set(prices) | as_set(failed) == as_set(fetchable)
    assert len(prices) + len(failed) == len(fetchable)
    # The only holes are the synthetic market's random missing days (a handful of stock-days).
    assert 0 < len(failed) <= 5
    assert set(failed["reason"]) == {"no price for this session"}
    assert not set(failed["symbol"]) & {"SPY", "TLT", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV"}
    # Never fetched: private symbols and the option after its 2026-06-18 expiry.
    assert not prices["symbol"].isin(["PRIVATE_FUND_A", "EQ1A2B3C4D5E"]).any()
    expired = prices[prices["symbol"] == "SPY260618C01400000"]
    assert expired["date"].max() == pd.Timestamp("2026-06-18")
    # Scripted life cycles: GONE exits on 06-30 (exit day excluded from the universe).
    assert prices.loc[prices["symbol"] == "GONE", "date"].max() == pd.Timestamp("2026-06-29")
    assert len(prices[prices["symbol"] == "NEWCO"]) == len(SESS) - len(failed[failed["symbol"] == "NEWCO"])


def test_stored_prices_are_the_provider_numbers(market_run):
    wh = market_run["wh"]
    stored = wh.read("prices").sort_values(["date", "symbol"], ignore_index=True)
    direct = SyntheticProvider(7).fetch_prices(sorted(stored["symbol"].unique()), SESS[0].date(), SESS[-1].date()).frame
    keys = stored[["date", "symbol"]]
    direct = keys.merge(direct, on=["date", "symbol"], how="left")
    pd.testing.assert_frame_equal(stored, direct[stored.columns], check_exact=True)


def test_universe_matches_the_ledger(market_run):
    uni = market_run["wh"].read("symbol_universe")
    last = uni[uni["date"] == SESS[-1]].set_index("symbol")
    assert last.loc["SPY260618C01400000", "status"] == "expired_option"
    assert last.loc["PRIVATE_FUND_A", "status"] == "private" and not last.loc["PRIVATE_FUND_A", "fetch"]
    assert last.loc["MTUM", "status"] == "factor"
    assert last.loc["SPY", "status"] == "active" and last.loc["SPY", "is_factor_etf"]
    assert "GONE" not in last.index and "XOM" not in last.index  # exited 06-30 and 05-01
    assert (uni.groupby("date")["is_factor_etf"].sum() == 8).all()


def test_valuations_cover_public_symbols(market_run):
    wh = market_run["wh"]
    val = wh.read("daily_valuations")
    uni = wh.read("symbol_universe")
    public = uni[uni["fetch"] & (uni["asset_class"] == "PUBLIC")]
    status = wh.read("symbol_status")
    failed = status[status["asset"] == "daily_valuations"]
    assert len(val) + len(failed) == len(public)
    assert not val["symbol"].str.contains("SPY2").any()  # no options
    # 30 sessions of history: far fewer than the 200 a 52-week range needs → missing, not truncated.
    assert val["week52_high"].isna().all() and val["week52_low"].isna().all()
    spy = val[val["symbol"] == "SPY"]
    assert (spy["provider_beta"] == 1.0).all() and spy["pe"].isna().all()


def test_asset_checks_all_pass(market_run):
    evals = market_run["result"].get_asset_check_evaluations()
    failed = [(e.asset_key.to_user_string(), e.check_name) for e in evals if not e.passed]
    assert failed == []
    got = {(e.asset_key.to_user_string(), e.check_name) for e in evals}
    assert got >= {
        ("symbol_universe", "factor_etfs_present"), ("symbol_universe", "one_row_per_symbol_day"),
        ("symbol_universe", "private_never_fetched"),
        ("prices", "provider_rows_valid"), ("prices", "one_row_per_symbol_day"),
        ("prices", "universe_coverage"), ("prices", "failure_rate"),
        ("daily_valuations", "one_row_per_symbol_day"), ("daily_valuations", "week52_consistent"),
        ("daily_valuations", "failure_rate"),
    }
    # The checks are also recorded on the instance, against the run's materialisation.
    instance = market_run["instance"]
    from dagster import AssetCheckKey

    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    records = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey("prices"), "universe_coverage"), limit=100)
    assert {r.run_id for r in records} == {market_run["result"].run_id}
    # One evaluation for the range and one on each of its days (Dagster plans one per partition; none is
    # left planned, which the UI would show as skipped).
    assert {r.status for r in records} == {AssetCheckExecutionRecordStatus.SUCCEEDED}
    assert sorted(r.partition for r in records if r.partition) == KEYS
    assert len(records) == len(KEYS) + 1


def test_materialisation_metadata(market_run):
    wh, result = market_run["wh"], market_run["result"]
    mats = result.asset_materializations_for_node("prices")
    md = {k: v.value for k, v in mats[-1].metadata.items()}
    n_prices = wh.count("prices")
    failed = wh.read("symbol_status").query("asset == 'prices'")
    assert md["rows"] == n_prices
    assert md["coverage_pct"] == pytest.approx(100 * n_prices / (n_prices + len(failed)), abs=0.005)
    assert 99 < md["coverage_pct"] < 100
    assert md["missing_symbol_days"] == len(failed)
    assert md["partitions"] == 30 and md["partition_range"] == f"{START}..{END}"
    assert md["provider"] == "synthetic"
    assert md["bad_rows_dropped"] == 0 and md["failed_symbols"] == 0
    assert md["symbols"] == wh.read("prices")["symbol"].nunique()
    assert "| date | symbol |" in md["preview"]
    uni_md = {k: v.value for k, v in result.asset_materializations_for_node("symbol_universe")[-1].metadata.items()}
    assert uni_md["rows"] == wh.count("symbol_universe")
    assert uni_md["status_counts"]["private"] == 2 * 30
    val_md = {k: v.value for k, v in result.asset_materializations_for_node("daily_valuations")[-1].metadata.items()}
    assert val_md["rows"] == wh.count("daily_valuations")
    assert val_md["week52_missing_rows"] == val_md["rows"]


# -- re-runs ---------------------------------------------------------------------------------------
def test_rerun_changes_nothing_and_scoped_run_replaces_only_its_symbol(tmp_warehouse_url, warehouse):
    load_sample(warehouse)
    run(tmp_warehouse_url)
    first = snapshot(warehouse)
    assert len(first["prices"]) > 700

    run(tmp_warehouse_url)
    second = snapshot(warehouse)
    for table in TABLE_KEYS:
        pd.testing.assert_frame_equal(first[table], second[table], check_exact=True, obj=table)

    # Corrupt two symbols, then recompute only AAPL's prices.
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE prices SET close = 1.0, adj_close = 1.0 WHERE symbol IN ('AAPL', 'MSFT')")
    result = run(tmp_warehouse_url, selection=["prices"],
                 run_config={"ops": {"prices": {"config": {"symbols": ["AAPL"]}}}})
    assert result.success
    md = {k: v.value for k, v in result.asset_materializations_for_node("prices")[-1].metadata.items()}
    assert md["scope"] == "AAPL"
    assert md["symbols_requested"] == 1
    after = snapshot(warehouse)
    p0, p1 = first["prices"], after["prices"]
    assert len(p1) == len(p0)
    aapl0, aapl1 = p0[p0["symbol"] == "AAPL"], p1[p1["symbol"] == "AAPL"]
    pd.testing.assert_frame_equal(aapl0, aapl1, check_exact=True)  # restored
    assert (p1.loc[p1["symbol"] == "MSFT", "close"] == 1.0).all()  # untouched by the scoped run
    others0 = p0[~p0["symbol"].isin(["AAPL", "MSFT"])]
    others1 = p1[~p1["symbol"].isin(["AAPL", "MSFT"])]
    pd.testing.assert_frame_equal(others0, others1, check_exact=True)
    for table in ("symbol_universe", "daily_valuations", "symbol_status"):
        pd.testing.assert_frame_equal(first[table], after[table], check_exact=True, obj=table)


@pytest.fixture(scope="module")
def split_run(tmp_path_factory):
    """The same 30 sessions materialised as two separate runs (second half first)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('split') / 'warehouse.sqlite'}"
    wh = Warehouse(url)
    wh.create_all()
    load_sample(wh)
    run(url, start=KEYS[15], end=KEYS[-1], selection=["symbol_universe", "prices"])
    run(url, start=KEYS[0], end=KEYS[14], selection=["symbol_universe", "prices"])
    return wh


def test_partitions_in_any_order_give_the_same_closes(market_run, split_run):
    whole = market_run["wh"].read("prices").sort_values(["date", "symbol"], ignore_index=True)
    split = split_run.read("prices").sort_values(["date", "symbol"], ignore_index=True)
    cols = ["date", "symbol", "close", "adj_close", "volume", "source"]
    pd.testing.assert_frame_equal(whole[cols], split[cols], check_exact=True)
    pd.testing.assert_frame_equal(
        market_run["wh"].read("symbol_universe").sort_values(["date", "symbol"], ignore_index=True),
        split_run.read("symbol_universe").sort_values(["date", "symbol"], ignore_index=True),
        check_exact=True,
    )


def test_partitions_in_any_order_give_identical_rows(market_run, split_run):
    whole = market_run["wh"].read("prices").sort_values(["date", "symbol"], ignore_index=True)
    split = split_run.read("prices").sort_values(["date", "symbol"], ignore_index=True)
    pd.testing.assert_frame_equal(whole, split, check_exact=True)


# -- bad providers ---------------------------------------------------------------------------------
class GlitchyProvider(SyntheticProvider):
    """Zero close for MSFT every day, a negative open for AAPL on one day, and junk rows the asset
    must ignore (a symbol nobody asked for and a day outside the run)."""

    name = "glitchy"

    def fetch_prices(self, symbols, start, end, chunk=400):
        res = super().fetch_prices(symbols, start, end, chunk)
        f = res.frame.copy()
        f.loc[f["symbol"] == "MSFT", ["close", "adj_close"]] = 0.0
        f.loc[(f["symbol"] == "AAPL") & (f["date"] == pd.Timestamp(KEYS[10])), "open"] = -1.0
        junk = f.iloc[:2].copy()
        junk["symbol"] = ["EXTRA", "EXTRA"]
        late = f.iloc[:1].copy()
        late["date"] = pd.Timestamp("2026-07-01")
        res.frame = pd.concat([f, junk, late], ignore_index=True)
        return res


class GlitchyResource(MarketDataResource):
    def get(self):
        return GlitchyProvider(7)


class DownProvider(SyntheticProvider):
    name = "fakefeed"

    def fetch_prices(self, symbols, start, end, chunk=400):
        raise ProviderUnavailableError("fakefeed", "connection refused")

    def fetch_valuations(self, symbols, start, end):
        raise ProviderUnavailableError("fakefeed", "connection refused")


class DownResource(MarketDataResource):
    def get(self):
        return DownProvider(7)


def test_zero_prices_are_dropped_and_counted_without_failing(tmp_warehouse_url, warehouse):
    load_sample(warehouse)
    result = run(tmp_warehouse_url, selection=["symbol_universe", "prices"], market_data=GlitchyResource())
    assert result.success
    prices = warehouse.read("prices")
    assert "MSFT" not in set(prices["symbol"])
    assert "EXTRA" not in set(prices["symbol"])
    assert prices["date"].max() == SESS[-1]
    aapl = prices[prices["symbol"] == "AAPL"]
    assert pd.Timestamp(KEYS[10]) not in set(aapl["date"])
    assert len(aapl) >= len(SESS) - 2
    status = warehouse.read("symbol_status").query("asset == 'prices'")
    msft = status[status["symbol"] == "MSFT"]
    assert len(msft) == len(SESS)
    # The quality screen names the field, the rule and the value (issue 13, finding 2).
    assert msft["reason"].str.fullmatch(r"close: must be positive \(0\.0\)").all()
    assert (msft["status"] == "failed").all()
    aapl_status = status[status["symbol"] == "AAPL"].set_index("date")
    assert aapl_status.loc[pd.Timestamp(KEYS[10]), "reason"] == "open: must be positive (-1.0)"

    md = {k: v.value for k, v in result.asset_materializations_for_node("prices")[-1].metadata.items()}
    msft_offered = len(SyntheticProvider(7).fetch_prices(["MSFT"], SESS[0].date(), SESS[-1].date()).frame)
    assert msft_offered == len(SESS)  # MSFT has no synthetic missing day in this range
    assert md["bad_rows_dropped"] == msft_offered + 1
    assert md["quarantined_symbols"] == 2 and "MSFT" in md["worst_offenders"]
    assert md["failed_symbols"] == 1  # MSFT delivered nothing usable; AAPL lost one day
    assert "MSFT" in md["failures"]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key == AssetKey("prices")}
    assert not checks["provider_rows_valid"].passed
    assert checks["provider_rows_valid"].severity == AssetCheckSeverity.WARN
    assert checks["one_row_per_symbol_day"].passed


def test_unavailable_provider_fails_the_step_naming_it(tmp_warehouse_url, warehouse, monkeypatch):
    load_sample(warehouse)
    run(tmp_warehouse_url, start=KEYS[-5], end=KEYS[-1], selection=["symbol_universe", "prices"])
    before = warehouse.read("prices").sort_values(["date", "symbol"], ignore_index=True)
    assert len(before) > 100

    monkeypatch.setattr(market_assets, "PROVIDER_STEP_BACKOFF_S", 0.001)  # keep the step retries fast
    result = run(tmp_warehouse_url, start=KEYS[-5], end=KEYS[-1], selection=["symbol_universe", "prices"],
                 market_data=DownResource(), raise_on_error=False)
    assert not result.success
    retries = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(retries) == market_assets.PROVIDER_STEP_RETRIES
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert [e.step_key for e in failures] == ["prices"]
    err = failures[0].step_failure_data
    assert "market data provider 'fakefeed' is unavailable: connection refused" in err.error.message
    assert err.user_failure_data.metadata["provider"].value == "fakefeed"
    # The previous good data is intact.
    after = warehouse.read("prices").sort_values(["date", "symbol"], ignore_index=True)
    pd.testing.assert_frame_equal(before, after, check_exact=True)


# -- the code location -----------------------------------------------------------------------------
def test_definitions_load():
    from sigmasight_assets.definitions import defs

    Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"portfolios", *MARKET} <= keys
    assert set(defs.resources) >= {"warehouse", "market_data"}
    assert "daily_risk_graph" in {j.name for j in repo.get_all_jobs()}
    assert defs.get_job_def("daily_risk_graph").partitions_def == trading_days


def test_every_partitioned_asset_uses_trading_days_and_the_same_multi_run_policy():
    """One policy for every asset (runs of a backfill group assets only when their policies are
    equal): at most PARTITIONS_PER_RUN partitions per run."""
    from sigmasight_assets.defs.common import PARTITIONS_PER_RUN
    from sigmasight_assets.definitions import defs

    policy = BackfillPolicy.multi_run(PARTITIONS_PER_RUN)

    graph = defs.get_repository_def().asset_graph
    materializable = [graph.get(k) for k in graph.get_all_asset_keys() if graph.get(k).is_materializable]
    assert len(materializable) >= 3
    for node in materializable:
        name = node.key.to_user_string()
        assert node.partitions_def == trading_days, name
        assert node.backfill_policy == policy, name
    # Everything except the ledger source is materialisable and partitioned.
    others = [k for k in graph.get_all_asset_keys() if not graph.get(k).is_materializable]
    assert [k.to_user_string() for k in others] == ["portfolios"]
    for a in defs.assets:
        if isinstance(a, AssetsDefinition) and a.is_executable and not a.is_observable:
            assert a.backfill_policy == policy


def test_valuations_declare_the_52_week_window_as_lineage():
    from sigmasight_assets.definitions import defs

    graph = defs.get_repository_def().asset_graph
    mapping = graph.get_partition_mapping(AssetKey("daily_valuations"), AssetKey("prices"))
    assert isinstance(mapping, TimeWindowPartitionMapping)
    assert mapping.start_offset == -(week52.WEEK52_SESSIONS - 1) == -251
    assert mapping.end_offset == 0


# -- the nightly 52-week range: one GROUP BY instead of the window's rows ---------------------------
def week52_prices(day) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    """Prices over 260 sessions ending at ``day``: gaps, missing high/low (close stands in), and
    histories with 150, 199, 200 and 252 observations inside the 252-session window."""
    import numpy as np

    sess = calendar.sessions_back(day, 260)
    rng = np.random.default_rng(3)
    rows = []
    for sym, n_obs in (("FULL", 260), ("HOLES", 260), ("S150", 150), ("S199", 199), ("S200", 200)):
        keep = sess[-n_obs:]
        if sym == "HOLES":
            keep = keep[rng.random(len(keep)) > 0.1]
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, len(keep))))
        high, low = close * 1.01, close * 0.99
        if sym in ("HOLES", "FULL"):
            high[rng.random(len(keep)) < 0.2] = np.nan
            low[rng.random(len(keep)) < 0.2] = np.nan
        rows.append(pd.DataFrame({"date": keep, "symbol": sym, "open": close, "high": high, "low": low,
                                  "close": close, "adj_close": close, "volume": 1000.0, "source": "test"}))
    return pd.concat(rows, ignore_index=True), sess


def assert_week52_sql_equals_pandas(wh: Warehouse, day) -> None:
    frame, sess = week52_prices(day)
    wh.replace_partitions("prices", frame, sess[0], sess[-1])
    window = calendar.sessions(calendar.sessions_back(day, week52.WEEK52_SESSIONS)[0], day)
    symbols = ["FULL", "HOLES", "S150", "S199", "S200", "NOPRICES"]
    stored = wh.read("prices", window[0], window[-1], keys=symbols, columns=["date", "symbol", "high", "low", "close"])
    expected = week52.week52_range(stored, pd.DatetimeIndex([pd.Timestamp(day)]), window)
    got = week52.week52_from_extremes(wh.price_extremes(window[0], window[-1]), day, symbols)
    key = ["symbol"]
    g = got.set_index(key).sort_index()[["week52_high", "week52_low"]]
    # The rolling version drops the NaN cells; the daily_valuations merge makes them NaN anyway.
    e = expected.set_index(key)[["week52_high", "week52_low"]].reindex(g.index)
    assert list(g.index) == ["FULL", "HOLES", "S150", "S199", "S200"]
    pd.testing.assert_frame_equal(g, e, check_exact=True)
    assert g.loc["S199"].isna().all() and g.loc["S150"].isna().all()  # < 200 observations
    assert g.loc["S200"].notna().all() and g.loc["FULL"].notna().all()
    assert (got["date"] == pd.Timestamp(day)).all()


def test_nightly_52_week_range_from_sql_equals_the_rolling_window(warehouse):
    assert_week52_sql_equals_pandas(warehouse, pd.Timestamp("2026-06-30"))


def test_one_window_reader_per_run_serves_every_window_and_equals_fresh_reads(market_run, monkeypatch):
    """The steps of one run share one reader: overlapping windows of prices and of returns are served
    from what it read (one warehouse pass per table here), new symbols or earlier sessions are read
    again, and every window equals a fresh read of the warehouse. Returns are the stored
    point-in-time ``symbol_returns``, never recomputed from prices."""
    from sigmasight_assets.pipelines.windows import WideCache, window_reader

    wh = market_run["wh"]
    real = wh.read
    calls = []
    # One warehouse pass of a cache (it queries in slices of sessions) counts as one read of its table.
    real_pass = WideCache._read
    monkeypatch.setattr(WideCache, "_read", lambda self, *a: calls.append(self.table) or real_pass(self, *a))
    last = SESS[-1]
    syms = ["AAPL", "MSFT", "SPY"]

    def fresh(column, start, symbols=syms, table="prices"):
        px = real(table, start, last, keys=symbols, columns=["date", "symbol", column])
        sess = calendar.sessions(start, last)
        return px.pivot(index="date", columns="symbol", values=column).reindex(index=sess, columns=symbols)

    reader = window_reader(wh, "run-1")
    assert window_reader(wh, "run-1") is reader
    for start, column in ((SESS[0], "adj_close"), (SESS[5], "close"), (SESS[20], "adj_close")):
        got = reader.prices(syms, start, last, column)
        pd.testing.assert_frame_equal(got, fresh(column, start), check_names=False, check_freq=False)
    for start in (SESS[6], SESS[1], SESS[12]):
        got = reader.returns(syms, start, last)
        want = fresh("total_return", start, table="symbol_returns")
        pd.testing.assert_frame_equal(got, want, check_names=False, check_freq=False)
    assert got.notna().all().all()
    assert calls.count("prices") == 1 and calls.count("symbol_returns") == 1
    got = reader.prices(["NVDA"], SESS[5], last, "close")  # a new symbol: read again
    pd.testing.assert_frame_equal(got, fresh("close", SESS[5], ["NVDA"]), check_names=False, check_freq=False)
    assert calls.count("prices") == 2
    assert window_reader(wh, "run-2") is not reader  # another run starts empty


def test_later_chunks_of_a_run_read_only_their_new_sessions(market_run, monkeypatch):
    """A chunked range (regressions, metrics, portfolio chunks) asks for windows ending later and
    later: the cached window is extended by the sessions after it, and every window equals a fresh
    read."""
    from sigmasight_assets.pipelines.windows import WindowReader, WideCache

    wh = market_run["wh"]
    real = wh.read
    reads = []
    # One warehouse pass of the reader (it queries in slices of sessions): its first and last session.
    real_pass = WideCache._read
    monkeypatch.setattr(WideCache, "_read",
                        lambda self, symbols, sessions: reads.append((sessions[0], sessions[-1]))
                        or real_pass(self, symbols, sessions))
    syms = ["AAPL", "MSFT", "SPY"]
    days = pd.DatetimeIndex(SESS[-9:])
    reader = WindowReader(wh)
    for chunk in calendar.chunks(days, 3):
        start = calendar.sessions_back(chunk[0], 6)[0]
        got = reader.prices(syms, start, chunk[-1], "adj_close")
        px = real("prices", start, chunk[-1], keys=syms, columns=["date", "symbol", "adj_close"])
        want = px.pivot(index="date", columns="symbol", values="adj_close").reindex(
            index=calendar.sessions(start, chunk[-1]), columns=syms)
        pd.testing.assert_frame_equal(got, want, check_names=False, check_freq=False)
    assert len(reads) == 3  # the first window, then each later chunk's three new sessions
    assert [pd.Timestamp(a).normalize() for a, _ in reads[1:]] == [days[3], days[6]]


def test_a_new_symbol_or_an_earlier_session_reads_only_what_is_lacking(market_run, monkeypatch):
    """The risk step asks for the held symbols plus the 8 ETFs, and a longer window, than the step
    before it: the reader reads the new columns over the sessions it holds and the held columns over
    the earlier sessions, never the whole window again; every window equals a fresh read."""
    from sigmasight_assets.pipelines.windows import WideCache

    wh = market_run["wh"]
    reads = []
    real_pass = WideCache._read
    monkeypatch.setattr(WideCache, "_read",
                        lambda self, symbols, sessions: reads.append((list(symbols), sessions[0], sessions[-1]))
                        or real_pass(self, symbols, sessions))
    last = SESS[-1]
    # a short look-back, so an earlier window is a real extension
    cache = WideCache(wh, "symbol_returns", ("total_return",), 2)
    cache.get("total_return", pd.Index(["AAPL", "MSFT"]), calendar.sessions(SESS[-5], last))
    held = cache.sessions
    got = cache.get("total_return", pd.Index(["AAPL", "MSFT", "SPY", "TLT"]), calendar.sessions(SESS[-12], last))
    assert reads[1][0] == ["AAPL", "MSFT"] and reads[1][2] < held[0]  # earlier sessions, held symbols only
    assert reads[2][0] == ["SPY", "TLT"] and pd.Timestamp(reads[2][1]) <= SESS[-12]  # new symbols, every session
    assert len(reads) == 3
    want = wh.read("symbol_returns", SESS[-12], last, keys=["AAPL", "MSFT", "SPY", "TLT"],
                   columns=["date", "symbol", "total_return"])
    want = want.pivot(index="date", columns="symbol", values="total_return").reindex(
        index=calendar.sessions(SESS[-12], last), columns=["AAPL", "MSFT", "SPY", "TLT"])
    pd.testing.assert_frame_equal(got, want, check_names=False, check_freq=False)
    assert got.notna().all().all()


def test_a_short_window_reads_back_from_its_last_session_not_its_first(market_run, monkeypatch):
    """A step asking for a 5-session window reads the cache's look-back counted from the window's
    LAST session (the widest window of any later step of the run ends there too), not look-back
    sessions before its first; a later, wider window is then served from the cache."""
    from sigmasight_assets.pipelines.windows import WideCache

    wh = market_run["wh"]
    reads = []
    real_pass = WideCache._read
    monkeypatch.setattr(WideCache, "_read",
                        lambda self, symbols, sessions: reads.append(len(sessions)) or real_pass(self, symbols, sessions))
    last = SESS[-1]
    cache = WideCache(wh, "symbol_returns", ("total_return",), 10)
    cache.get("total_return", pd.Index(["AAPL"]), calendar.sessions(SESS[-5], last))
    assert reads == [10] and cache.sessions[0] == SESS[-10]
    got = cache.get("total_return", pd.Index(["AAPL"]), calendar.sessions(SESS[-10], last))
    assert reads == [10]  # no second read
    want = wh.read("symbol_returns", SESS[-10], last, keys=["AAPL"], columns=["date", "symbol", "total_return"])
    np.testing.assert_array_equal(got["AAPL"].to_numpy(), want.set_index("date")["total_return"].reindex(
        calendar.sessions(SESS[-10], last)).to_numpy())


def test_per_day_check_verdicts_can_be_turned_off(tmp_warehouse_url, warehouse, monkeypatch):
    from sigmasight_assets.defs import common

    load_sample(warehouse)
    monkeypatch.setattr(common, "CHECKS_BY_DAY", False)
    result = run(tmp_warehouse_url, start=KEYS[0], end=KEYS[2], selection=["symbol_universe"])
    assert result.success
    assert [e.partition for e in result.get_asset_check_evaluations()] == [None, None, None]


def test_a_one_day_run_records_the_check_on_its_day(tmp_warehouse_url, warehouse):
    """A nightly (one-partition) run: the day's planned check evaluations are resolved with its verdict."""
    from dagster import AssetCheckKey, AssetKey

    load_sample(warehouse)
    instance = DagsterInstance.ephemeral()
    assert run(tmp_warehouse_url, instance=instance, start=KEYS[-1], end=KEYS[-1], selection=["symbol_universe"]).success
    history = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey("symbol_universe"), "factor_etfs_present"), limit=10)
    assert {(r.partition, r.status.value) for r in history} == {(None, "SUCCEEDED"), (KEYS[-1], "SUCCEEDED")}


class HoleProvider(SyntheticProvider):
    """The synthetic market with one bad day: on ``KEYS[10]`` only the factor ETFs are delivered."""

    name = "holey"

    def fetch_prices(self, symbols, start, end, chunk=400):
        res = super().fetch_prices(symbols, start, end, chunk)
        f = res.frame
        res.frame = f[(f["date"] != pd.Timestamp(KEYS[10])) | f["symbol"].isin(FACTOR_ETFS)].reset_index(drop=True)
        return res


class HoleResource(MarketDataResource):
    def get(self):
        return HoleProvider(7)


def test_a_bad_day_in_a_passing_range_fails_on_its_own_day_naming_its_symbols(tmp_warehouse_url, warehouse):
    """Issue 17, health by day: in a 30-day run one day lost every stock's price. Over the range the
    coverage (~97 %) and the failure rate (no symbol delivered nothing at all) pass, but that day's
    recorded evaluations warn with its own numbers and name its symbols; every other day passes."""
    load_sample(warehouse)
    result = run(tmp_warehouse_url, selection=["symbol_universe", "prices"], market_data=HoleResource())
    assert result.success
    evals = [e for e in result.get_asset_check_evaluations() if e.asset_key == AssetKey("prices")]
    whole = {e.check_name: e for e in evals if e.partition is None}
    assert whole["universe_coverage"].passed and whole["failure_rate"].passed  # the range hides the day
    bad = KEYS[10]
    for name in ("universe_coverage", "failure_rate"):
        by_day = {e.partition: e for e in evals if e.check_name == name and e.partition is not None}
        assert sorted(by_day) == KEYS
        assert [d for d, e in by_day.items() if not e.passed] == [bad], name
        assert by_day[bad].severity == AssetCheckSeverity.WARN
        assert "judged over" not in (by_day[bad].description or "")
    by_day = {e.partition: e for e in evals if e.partition is not None and e.check_name == "universe_coverage"}
    expected = len(warehouse.read("symbol_universe", bad, bad).query("fetch"))
    assert by_day[bad].description == f"{8 / expected:.1%} of {expected:,} fetchable universe symbol-days have a price"
    assert by_day[bad].metadata["coverage_pct"].value == pytest.approx(100 * 8 / expected, abs=0.01)
    [fail] = [e for e in evals if e.partition == bad and e.check_name == "failure_rate"]
    assert fail.description == f"{expected - 8} of {expected} requested symbol(s) delivered nothing on {bad}"
    assert fail.metadata["failed"].value == expected - 8
    assert "`AAPL`: no price for this session" in fail.metadata["failures"].value  # the offenders, with reasons
    # row rules hold on every day (the day's own verdict, not the range's)
    rows = [e for e in evals if e.partition is not None and e.check_name == "one_row_per_symbol_day"]
    assert len(rows) == len(KEYS) and all(e.passed and "judged over" not in (e.description or "") for e in rows)



def test_a_failing_per_day_report_keeps_the_step_and_records_the_range_verdict(tmp_warehouse_url, warehouse,
                                                                                monkeypatch):
    """The rows are stored before the checks: a bug in a day's statistics warns and falls back to the
    range's verdict on every day (saying so) instead of failing the step."""
    load_sample(warehouse)
    real = market_assets._universe_checks

    def day_breaks(frame, scope):
        if frame["date"].nunique() == 1:  # one day's rows (the run spans three)
            raise RuntimeError("per-day statistics broke")
        return real(frame, scope)

    monkeypatch.setattr(market_assets, "_universe_checks", day_breaks)
    with DagsterInstance.ephemeral() as instance:
        result = run(tmp_warehouse_url, instance=instance, start=KEYS[0], end=KEYS[2], selection=["symbol_universe"])
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert result.success
    days = [e for e in result.get_asset_check_evaluations() if e.partition]
    assert len(days) == 3 * 3
    assert all(e.passed and e.description.startswith(f"judged over the run's range {KEYS[0]}..{KEYS[2]}") for e in days)
    assert any("per-day check verdicts could not be computed" in m and "per-day statistics broke" in m for m in logs)
