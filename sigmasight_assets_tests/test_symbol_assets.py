"""The symbol analytics through Dagster (issue 3): ``symbol_betas``, ``ridge_factors``,
``spread_factors``, ``factor_model`` (issue 16), ``factor_covariance``, ``symbol_metrics`` on top of the market-data assets.

Set-up (module scope, shared by every test here): the sample book, a history run of the market-data
assets over the 91 sessions before the range (so the 90-return windows of the range are full), a
byte-identical copy of that warehouse, then

* warehouse ``single``: ONE run of all the symbol assets over the 5-session range (the backfill);
* warehouse ``nightly``: the same range one partition per run, in order.

The range 2026-04-09..2026-04-15 is where NEWCO (listed 2026-03-02) crosses the 30-return minimum,
so "too little history" and "just enough" both occur. Oracles: statsmodels OLS and scikit-learn
ridge on the returns of the *stored* prices, computed independently in the test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, BackfillPolicy, DagsterInstance, TimeWindowPartitionMapping

from sigmasight_assets import calendar
from sigmasight_assets.defs.common import PARTITIONS_PER_RUN
from sigmasight_assets.ledger import parse_ledger
from sigmasight_assets.warehouse.ledger import store_ledger

from .conftest import SAMPLE_FLOWS, SAMPLE_POSITIONS
from .helpers_graph import (
    FACTOR_ETFS,
    MARKET_ASSETS,
    STYLE_ETFS,
    SYMBOL_ANALYTICS,
    SYMBOL_ASSETS,
    SYMBOL_TABLES,
    assert_tables_equal,
    check_outcomes,
    clear_ledger,
    copy_warehouse,
    iso,
    load_ledger,
    materializations,
    metadata,
    module_env,
    new_warehouse,
    ols_oracle,
    ridge_oracle,
    run_each_day,
    run_range,
    stored_returns,
    table,
)

RANGE = calendar.sessions("2026-04-09", "2026-04-15")
HISTORY = calendar.sessions_back(calendar.previous_session(RANGE[0]), 91)
TOL = 1e-10


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    base = tmp_path_factory.mktemp("symbol_graph")
    with module_env(base):
        url, wh = new_warehouse(base, "single")
        store_ledger(wh, parse_ledger(SAMPLE_POSITIONS, SAMPLE_FLOWS))
        history = run_range(url, HISTORY[0], HISTORY[-1], MARKET_ASSETS)
        assert history.success
        nightly_url, nightly_wh = copy_warehouse(wh, base, "nightly")
        with DagsterInstance.ephemeral() as instance:
            single = run_range(url, RANGE[0], RANGE[-1], SYMBOL_ASSETS, instance=instance)
            runs = instance.get_runs()
        nightly = run_each_day(nightly_url, RANGE, SYMBOL_ASSETS)
        yield {"base": base, "url": url, "wh": wh, "single": single, "runs": runs,
               "nightly_wh": nightly_wh, "nightly": nightly}


def public_pairs(wh) -> pd.DataFrame:
    uni = wh.read("symbol_universe", RANGE[0], RANGE[-1])
    return uni[uni["fetch"] & (uni["asset_class"] == "PUBLIC")][["date", "symbol"]].reset_index(drop=True)


# -- the backfill ------------------------------------------------------------------------------------
def test_single_run_backfill_materialises_every_partition_of_every_symbol_asset(graph):
    single = graph["single"]
    assert single.success
    assert len(graph["runs"]) == 1
    tags = graph["runs"][0].tags
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == \
        (iso(RANGE[0]), iso(RANGE[-1]))
    keys = [iso(d) for d in RANGE]
    for name in SYMBOL_ASSETS:
        assert sorted(m.partition for m in materializations(single, name)) == keys, name
    wh = graph["wh"]
    for name in SYMBOL_ANALYTICS:
        stored = wh.read(name, RANGE[0], RANGE[-1])
        assert sorted(stored["date"].unique()) == list(RANGE), name
        assert metadata(single, name)["rows"] == len(stored), name
        assert metadata(single, name)["partition_range"] == f"{iso(RANGE[0])}..{iso(RANGE[-1])}"


# -- oracles -----------------------------------------------------------------------------------------
def test_market_and_ir_betas_equal_statsmodels_on_stored_prices(graph):
    wh = graph["wh"]
    betas = wh.read("symbol_betas", RANGE[0], RANGE[-1]).set_index(["date", "symbol", "factor"]).sort_index()
    pairs = public_pairs(wh)
    compared = 0
    for day, syms in pairs.groupby("date")["symbol"]:
        rets = stored_returns(wh, sorted(set(syms) | set(FACTOR_ETFS)), day, 90)
        assert len(rets) == 90
        for sym in syms:
            for factor, etf in (("market", "SPY"), ("ir", "TLT")):
                want = ols_oracle(rets[sym], rets[etf])
                key = (day, sym, factor)
                if want is None:
                    assert key not in betas.index, key
                    continue
                got = betas.loc[key]
                assert got["observations"] == want["observations"], key
                assert got["raw_beta"] == pytest.approx(want["beta"], abs=TOL), key
                assert got["beta"] == pytest.approx(np.clip(want["beta"], -5, 5), abs=TOL), key
                assert bool(got["capped"]) == (abs(want["beta"]) > 5), key
                for col in ("intercept", "r_squared", "std_error", "p_value"):
                    assert got[col] == pytest.approx(want[col], abs=TOL), (key, col)
                compared += 1
    # ~24 symbols × 5 days × 2 factors, less NEWCO's short history.
    assert compared >= 220


def test_ridge_factors_equal_sklearn_standardscaler_ridge_mapped_back(graph):
    wh = graph["wh"]
    ridge = wh.read("ridge_factors", RANGE[0], RANGE[-1]).set_index(["date", "symbol", "factor"]).sort_index()
    pairs = public_pairs(wh)
    compared = 0
    for day, syms in pairs.groupby("date")["symbol"]:
        rets = stored_returns(wh, sorted(set(syms) | set(FACTOR_ETFS)), day, 90)
        x = rets[list(STYLE_ETFS.values())].set_axis(list(STYLE_ETFS), axis=1)
        for sym in syms:
            want = ridge_oracle(rets[sym], x, alpha=1.0)
            if want is None:
                assert not ridge.index.isin([(day, sym, f) for f in STYLE_ETFS]).any(), (day, sym)
                continue
            for factor, beta in want["betas"].items():
                got = ridge.loc[(day, sym, factor)]
                assert got["raw_beta"] == pytest.approx(beta, abs=TOL), (day, sym, factor)
                assert got["beta"] == pytest.approx(np.clip(beta, -5, 5), abs=TOL)
                assert got["r_squared"] == pytest.approx(want["r_squared"], abs=TOL), (day, sym)
                assert got["observations"] == want["observations"]
                assert got["ridge_penalty"] == 1.0  # the penalty the fit used
                compared += 1
    assert compared >= 6 * 110


FACTOR_MODEL_NAMES = ["market", "rates", "value_excess", "growth_excess", "momentum_excess", "quality_excess",
                      "size_excess", "low_volatility_excess"]


def test_factor_model_equals_sklearn_ridge_on_the_factor_basis(graph):
    """The joint model on stored prices: the basis built here by hand (SPY, TLT, each style ETF minus
    SPY), StandardScaler + Ridge(1) per symbol with min 60 complete cases; specific variance is
    SSR/(n − 9) of that fit. NEWCO (about 30 returns) has no row and a counted reason."""
    wh = graph["wh"]
    fm = wh.read("factor_model", RANGE[0], RANGE[-1]).set_index(["date", "symbol", "factor"]).sort_index()
    assert set(fm.index.get_level_values("factor")) == set(FACTOR_MODEL_NAMES)
    pairs = public_pairs(wh)
    compared = 0
    for day, syms in pairs.groupby("date")["symbol"]:
        rets = stored_returns(wh, sorted(set(syms) | set(FACTOR_ETFS)), day, 90)
        f = pd.DataFrame({"market": rets["SPY"], "rates": rets["TLT"]})
        for name, etf in zip(FACTOR_MODEL_NAMES[2:], ("VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV")):
            f[name] = rets[etf] - rets["SPY"]
        for sym in syms:
            want = ridge_oracle(rets[sym], f, alpha=1.0, min_obs=60)
            if want is None:
                assert not fm.index.isin([(day, sym, k) for k in FACTOR_MODEL_NAMES]).any(), (day, sym)
                continue
            ok = rets[sym].notna() & f.notna().all(axis=1)
            y, x = rets[sym][ok], f[ok]
            beta = np.array([want["betas"][k] for k in FACTOR_MODEL_NAMES])
            c = y.mean() - x.mean().to_numpy() @ beta
            ssr = float(((y - c - x.to_numpy() @ beta) ** 2).sum())
            for k, b in zip(FACTOR_MODEL_NAMES, beta):
                got = fm.loc[(day, sym, k)]
                assert got["beta"] == pytest.approx(b, abs=TOL), (day, sym, k)
                assert got["r_squared"] == pytest.approx(want["r_squared"], abs=TOL), (day, sym)
                assert got["specific_variance"] == pytest.approx(ssr / (want["observations"] - 9), rel=1e-9)
                assert got["observations"] == want["observations"]
            compared += 1
    assert compared >= 110
    status = wh.read("symbol_status", RANGE[0], RANGE[-1]).query("asset == 'factor_model'")
    newco = status[status["symbol"] == "NEWCO"]
    assert len(newco) == len(RANGE) and newco["reason"].str.startswith("insufficient_history").all()
    md = metadata(graph["single"], "factor_model")
    assert md["symbol_days_skipped"] == len(status) and md["symbol_days_computed"] == compared


def test_spread_betas_equal_statsmodels_on_spread_returns(graph):
    """Spread betas over 180 returns (min 60): the history here is 91 sessions + the range, so the
    window is partial (96 returns at most) and complete cases decide, exactly as the oracle does."""
    wh = graph["wh"]
    spreads = wh.read("spread_factors", RANGE[0], RANGE[-1]).set_index(["date", "symbol", "factor"]).sort_index()
    legs = {"growth_value": ("VUG", "VTV"), "momentum_spread": ("MTUM", "SPY"), "size_spread": ("IWM", "SPY"),
            "quality_spread": ("QUAL", "SPY")}
    compared = 0
    day = RANGE[-1]
    syms = public_pairs(wh).query("date == @day")["symbol"]
    rets = stored_returns(wh, sorted(set(syms) | set(FACTOR_ETFS)), day, 180)
    for sym in syms:
        for factor, (long_, short) in legs.items():
            want = ols_oracle(rets[sym], rets[long_] - rets[short], min_obs=60)
            if want is None:
                assert (day, sym, factor) not in spreads.index
                continue
            got = spreads.loc[(day, sym, factor)]
            assert got["raw_beta"] == pytest.approx(want["beta"], abs=TOL), (sym, factor)
            assert got["r_squared"] == pytest.approx(want["r_squared"], abs=TOL), (sym, factor)
            assert got["observations"] == want["observations"]
            compared += 1
    assert compared >= 4 * 22


# -- lineage -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("asset,window", [("symbol_betas", 90), ("ridge_factors", 90), ("spread_factors", 180),
                                          ("factor_model", 90), ("factor_covariance", 252), ("symbol_metrics", 252)])
def test_window_lineage_is_declared_on_the_asset_graph(asset, window):
    from sigmasight_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    # Every return-based asset reads the point-in-time returns, one per partition of symbol_returns.
    mapping = graph.get_partition_mapping(AssetKey(asset), AssetKey("symbol_returns"))
    assert mapping == TimeWindowPartitionMapping(start_offset=-(window - 1), end_offset=0)
    node = graph.get(AssetKey(asset))
    assert AssetKey("symbol_returns") in node.parent_keys
    # Prices only where a price itself is read (symbol_metrics shows the day's close).
    assert (AssetKey("prices") in node.parent_keys) == (asset == "symbol_metrics")
    assert node.backfill_policy == BackfillPolicy.multi_run(PARTITIONS_PER_RUN)
    # The offset counts trading partitions: day D reads the returns of the window NYSE sessions ending
    # at D (Good Friday 2026-04-03 and the winter holidays are skipped).
    day = "2026-04-14"
    sub = node.partitions_def.empty_subset().with_partition_keys([day])
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
        sub, node.partitions_def, graph.get(AssetKey("symbol_returns")).partitions_def)
    keys = sorted(upstream.partitions_subset.get_partition_keys())
    assert keys == [iso(d) for d in calendar.sessions_back(day, window)]
    # symbol_returns of D reads prices of the previous session and D.
    prices_map = graph.get_partition_mapping(AssetKey("symbol_returns"), AssetKey("prices"))
    assert prices_map == TimeWindowPartitionMapping(start_offset=-1, end_offset=0)


# -- scoped runs and batch independence ----------------------------------------------------------------
def test_scoped_run_replaces_only_the_named_symbols_rows(graph, tmp_path):
    url, wh = copy_warehouse(graph["wh"], tmp_path, "scoped")
    # Mark every stored row: what the scoped run rewrites loses the mark, what it must not touch keeps it.
    with wh.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE symbol_betas SET beta = beta + 1000")
        conn.exec_driver_sql("UPDATE symbol_status SET reason = reason || ' [old]'")
    result = run_range(url, RANGE[0], RANGE[-1], ["symbol_betas"],
                       run_config={"ops": {"symbol_betas": {"config": {"symbols": ["AAPL"]}}}})
    assert result.success
    assert metadata(result, "symbol_betas")["scope"] == "AAPL"
    before, after = table(graph["wh"], "symbol_betas"), table(wh, "symbol_betas")
    assert len(after) == len(before)
    aapl = after["symbol"] == "AAPL"
    assert aapl.sum() == 3 * len(RANGE)  # market, ir, provider on every day
    pd.testing.assert_frame_equal(after[aapl], before[aapl], check_exact=True)
    others_after, others_before = after[~aapl], before[~aapl]
    np.testing.assert_array_equal(others_after["beta"].to_numpy(), others_before["beta"].to_numpy() + 1000)
    pd.testing.assert_frame_equal(others_after.drop(columns="beta"), others_before.drop(columns="beta"))
    status = wh.read("symbol_status")
    assert status["reason"].str.endswith(" [old]").all()  # NEWCO's rows (and prices') untouched


def test_batch_independence_one_symbol_ledger_gives_the_same_betas(graph, tmp_path):
    """AAPL's betas computed when the ledger holds only AAPL equal those computed beside ~24 symbols."""
    url, wh = copy_warehouse(graph["wh"], tmp_path, "alone")
    clear_ledger(wh)
    load_ledger(wh, tmp_path / "ledger", [
        {"portfolio_id": "P-ONE", "symbol": "AAPL", "quantity": 10, "entry_price": 100, "entry_date": "2025-01-02"},
    ])
    assets = ["symbol_universe", "symbol_betas", "ridge_factors", "spread_factors", "factor_model"]
    assert run_range(url, RANGE[0], RANGE[-1], assets).success
    for name in assets[1:]:
        alone = table(wh, name, RANGE[0], RANGE[-1])
        assert set(alone["symbol"]) == {"AAPL", *FACTOR_ETFS}, name  # the run really was narrow
        many = table(graph["wh"], name, RANGE[0], RANGE[-1])
        assert many["symbol"].nunique() > 20
        for sym in ("AAPL", "SPY", "TLT", "IWM"):
            a = alone[alone["symbol"] == sym].reset_index(drop=True)
            m = many[many["symbol"] == sym].reset_index(drop=True)
            assert len(a) > 0
            # Documented bound: batch independence holds to the last bits of BLAS summation (< 1e-12).
            pd.testing.assert_frame_equal(a, m, check_exact=False, rtol=0, atol=1e-12, obj=f"{name} {sym}")


# -- short history -----------------------------------------------------------------------------------
def test_too_little_history_is_no_row_and_a_counted_reason_never_a_zero_beta(graph):
    wh, single = graph["wh"], graph["single"]
    betas = wh.read("symbol_betas", RANGE[0], RANGE[-1])
    status = wh.read("symbol_status", RANGE[0], RANGE[-1]).query("asset == 'symbol_betas'")
    seen = set()
    for day in RANGE:
        rets = stored_returns(wh, ["NEWCO", "SPY"], day, 90)
        n = int((rets["NEWCO"].notna() & rets["SPY"].notna()).sum())
        rows = betas[(betas["date"] == day) & (betas["symbol"] == "NEWCO")].set_index("factor")
        st = status[(status["date"] == day) & (status["symbol"] == "NEWCO")]
        if n < 30:
            assert not {"market", "ir"} & set(rows.index), (day, n)
            assert list(st["status"]) == ["skipped"]
            assert list(st["reason"]) == [f"market insufficient_history: {n} < 30 observations"]
        else:
            assert rows.loc["market", "observations"] == n and rows.loc["ir", "observations"] == n
            assert st.empty
        seen.add(n >= 30)
    assert seen == {True, False}, "the range must straddle NEWCO's 30th return"
    # Counted: the metadata's reasons and the status table agree.
    md = metadata(single, "symbol_betas")
    assert md["symbol_days_skipped"] == len(status) > 0
    assert md["skipped_reasons"] == {"market insufficient_history": len(status)}
    # A window without enough history yet is expected: reported apart, not a failure (the check passes).
    [check] = [e for e in single.get_asset_check_evaluations()
               if e.asset_key.to_user_string() == "symbol_betas" and e.check_name == "failure_rate" and e.partition is None]
    assert check.passed and check.metadata["not_enough_history_yet"].value == len(status)
    assert check.metadata["failure_rate_pct"].value == 0.0
    assert f"{len(status)} symbol-day(s) without enough history yet (expected, not counted)" in check.description
    # Each day's recorded evaluation is judged on that day's own symbol-days (issue 17, health by day).
    by_day = {e.partition: e for e in single.get_asset_check_evaluations()
              if e.asset_key.to_user_string() == "symbol_betas" and e.check_name == "failure_rate" and e.partition}
    assert sorted(by_day) == [iso(d) for d in RANGE]
    pairs = public_pairs(wh)
    for day in RANGE:
        ev, short = by_day[iso(day)], int((status["date"] == day).sum())
        assert ev.passed and ev.metadata["not_enough_history_yet"].value == short, day
        assert ev.description.startswith(f"0.0% of {int((pairs['date'] == day).sum()):,} universe symbol-days failed")
        assert "judged over" not in ev.description
    # Never a silent zero: every regression row rests on ≥ 30 observations, no beta is exactly 0.
    reg = betas[betas["factor"].isin(["market", "ir"])]
    assert (reg["observations"] >= 30).all()
    assert (reg["beta"] != 0).all()
    # NEWCO's provider beta (from daily_valuations) is still there: a different source, not a fill.
    assert (betas.query("symbol == 'NEWCO' and factor == 'provider'")["beta"].notna()).sum() == len(RANGE)


def test_symbol_betas_metadata_counts_each_symbol_day_once(graph):
    md = metadata(graph["single"], "symbol_betas")
    n_pairs = len(public_pairs(graph["wh"]))
    assert md["symbol_days_computed"] + md["symbol_days_skipped"] == n_pairs
    assert md["universe_share_pct"] == pytest.approx(100 * md["symbol_days_computed"] / n_pairs, abs=0.005)
    assert md["universe_share_pct"] < 100


# -- checks ------------------------------------------------------------------------------------------
def test_asset_checks_pass_and_hold_on_the_stored_tables(graph):
    wh, single = graph["wh"], graph["single"]
    outcomes = check_outcomes(single)
    required = {(a, c) for a in ("symbol_betas", "ridge_factors", "spread_factors")
                for c in ("beta_within_cap", "r_squared_in_unit_interval", "failure_rate")}
    required |= {("factor_model", c) for c in ("loadings_finite", "r_squared_in_unit_interval", "failure_rate")}
    required |= {("factor_covariance", c) for c in ("symmetric_psd", "correlation_clipped", "every_day_present")}
    required |= {("symbol_metrics", c) for c in ("one_row_per_symbol_day", "volatility_non_negative")}
    assert required <= set(outcomes)
    assert [k for k, ok in outcomes.items() if not ok] == []
    # The same properties, verified on the stored rows.
    for name in ("symbol_betas", "ridge_factors", "spread_factors"):
        t = wh.read(name, RANGE[0], RANGE[-1])
        assert (t["beta"].abs() <= 5).all(), name
        r2 = t["r_squared"].dropna()
        assert len(r2) and ((r2 >= 0) & (r2 <= 1)).all(), name
    cov = wh.read("factor_covariance", RANGE[0], RANGE[-1])
    assert len(cov) == 64 * len(RANGE)
    for day, rows in cov.groupby("date"):
        m = rows.pivot(index="factor_1", columns="factor_2", values="covariance").loc[list(FACTOR_ETFS), list(FACTOR_ETFS)]
        a = m.to_numpy()
        np.testing.assert_array_equal(a, a.T)
        eig = np.linalg.eigvalsh(a)
        assert eig.min() >= -1e-12 * eig.max(), day
        c = rows.pivot(index="factor_1", columns="factor_2", values="correlation").to_numpy()
        assert np.allclose(np.diag(c), 1.0) and (np.abs(c[~np.eye(8, dtype=bool)]) <= 0.95 + 1e-12).all()
        assert (rows["observations"] >= 30).all()


# -- symbol_metrics ----------------------------------------------------------------------------------
def test_symbol_metrics_one_row_per_public_symbol_day_with_the_betas_side_by_side(graph):
    wh = graph["wh"]
    metrics = table(wh, "symbol_metrics", RANGE[0], RANGE[-1])
    pairs = public_pairs(wh).sort_values(["date", "symbol"], ignore_index=True)
    pd.testing.assert_frame_equal(metrics[["date", "symbol"]], pairs)
    long = pd.concat([wh.read(t, RANGE[0], RANGE[-1], columns=["date", "symbol", "factor", "beta"])
                      for t in ("symbol_betas", "ridge_factors", "spread_factors")])
    wide = long.pivot(index=["date", "symbol"], columns="factor", values="beta")
    factors = ["market", "ir", "provider", *STYLE_ETFS, "growth_value", "momentum_spread", "size_spread",
               "quality_spread"]
    assert set(wide.columns) == set(factors)
    m = metrics.set_index(["date", "symbol"])
    for f in factors:
        expect = wide[f].reindex(m.index)
        np.testing.assert_array_equal(m[f"beta_{f}"].to_numpy(), expect.to_numpy(), err_msg=f)
    # NEWCO before its 30th return: beta_market missing (NaN), not 0.
    newco = m.xs("NEWCO", level="symbol")
    assert newco["beta_market"].isna().any() and newco["beta_market"].notna().any()
    assert (m["close"] == wh.read("prices", RANGE[0], RANGE[-1]).set_index(["date", "symbol"])["close"]
            .reindex(m.index)).all()


# -- nightly vs backfill -------------------------------------------------------------------------------
def test_day_by_day_runs_equal_the_single_run_backfill_exactly(graph):
    assert all(r.success for r in graph["nightly"]) and len(graph["nightly"]) == len(RANGE)
    assert_tables_equal(graph["wh"], graph["nightly_wh"], SYMBOL_TABLES)


def test_symbol_assets_in_two_day_chunks_equal_the_single_pass_and_report_the_whole_range(graph, monkeypatch):
    """A range's regression assets are computed and stored chunk by chunk (bounded memory for a
    year): 2-session chunks store exactly the single pass's rows, and the metadata and checks still
    describe the whole range."""
    from sigmasight_assets.pipelines import symbols

    monkeypatch.setattr(symbols, "SYMBOL_CHUNK_DAYS", 2)
    monkeypatch.setattr(symbols, "METRICS_CHUNK_DAYS", 2)
    url, wh = copy_warehouse(graph["wh"], graph["base"], "chunked")
    regressions = ["symbol_betas", "ridge_factors", "spread_factors", "factor_model"]
    with wh.engine.begin() as conn:
        for t in [*regressions, "symbol_metrics"]:
            conn.exec_driver_sql(f"DELETE FROM {t}")
        conn.exec_driver_sql(f"DELETE FROM symbol_status WHERE asset IN ({', '.join(repr(t) for t in regressions)})")
    result = run_range(url, RANGE[0], RANGE[-1], [*regressions, "symbol_metrics"])
    assert result.success
    assert_tables_equal(graph["wh"], wh, [*regressions, "symbol_metrics", "symbol_status"])
    assert {k: metadata(result, "symbol_metrics")[k] for k in ("rows", "symbols", "field_coverage")} == {
        k: metadata(graph["single"], "symbol_metrics")[k] for k in ("rows", "symbols", "field_coverage")}
    for asset in regressions:
        chunked, single = metadata(result, asset), metadata(graph["single"], asset)
        for key in ("rows", "symbols_computed", "symbol_days_computed", "symbol_days_skipped", "partitions",
                    "universe_share_pct", "skipped_reasons", "median_beta"):
            assert chunked[key] == single[key], (asset, key)
    single_checks = {k: v for k, v in check_outcomes(graph["single"]).items()
                     if k[0] in [*regressions, "symbol_metrics"]}
    assert check_outcomes(result) == single_checks


def test_a_day_whose_regressions_failed_is_judged_on_its_own_symbol_days(warehouse):
    """Issue 17, health by day: 30 symbols over 3 sessions, 5 of which have no beta on the middle day
    for a reason other than a short history, and 2 that are too new on the first. The range's failure
    rate (5 / 90) passes; the middle day's (5 / 30) warns and names its symbols, the other days pass
    (the new symbols are expected, not counted)."""
    from sigmasight_assets.defs.symbol_regressions import failure_check
    from sigmasight_assets.pipelines import symbols as pipeline

    days = calendar.sessions("2026-04-13", "2026-04-15")
    names = [f"S{i:02d}" for i in range(30)]
    pairs = pd.DataFrame([(d, s) for d in days for s in names], columns=["date", "symbol"])
    lost = pairs[(pairs["date"] == days[1]) & pairs["symbol"].isin(names[:5])]
    young = pairs[(pairs["date"] == days[0]) & pairs["symbol"].isin(names[-2:])]
    done = pairs.drop(lost.index.union(young.index))
    results = done.assign(factor="market", beta=1.0, r_squared=0.5, observations=60)
    skipped = pd.concat([lost.assign(reason="market ols_failed: singular window"),
                         young.assign(reason="market insufficient_history: 12 < 30 observations")])
    inputs = pipeline.SymbolInputs(days, pairs, pd.DataFrame())
    totals = pipeline.RegressionTotals()
    pipeline.store_regression(warehouse, "symbol_betas", inputs, results, skipped, None, totals)

    whole = failure_check(totals)
    assert whole.passed and whole.metadata["failure_rate_pct"].value == pytest.approx(100 * 5 / 90, abs=0.01)
    first, middle, last = (failure_check(totals.on(d)) for d in days)
    assert first.passed and last.passed
    assert first.metadata["not_enough_history_yet"].value == 2 and last.metadata["not_enough_history_yet"].value == 0
    assert not middle.passed and middle.metadata["failure_rate_pct"].value == pytest.approx(100 * 5 / 30, abs=0.01)
    assert middle.description == "16.7% of 30 universe symbol-days failed (market ols_failed: 5)"
    assert middle.metadata["failed_reasons"].value == {"market ols_failed": 5}
    assert middle.metadata["worst_symbols"].value == "\n".join(f"- `{s}`: 1 day(s)" for s in names[:5])
    assert last.description == "0.0% of 30 universe symbol-days failed"
