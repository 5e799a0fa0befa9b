"""The synthetic market: determinism, stability under subsetting, scripted behaviours, realistic stats.

The provider is the embedded default for the demo and every asset test, so these tests pin what the
module docstring promises. Statistical tolerances are derived from the model (see each test); the
data are deterministic, so the tests are not flaky, but the bounds are set so they would also hold
for other seeds.
"""

from __future__ import annotations

import string
from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from sigmasight_assets import calendar
from sigmasight_assets.calc.factors import FACTOR_ETFS
from sigmasight_assets.market_data.base import PRICE_COLUMNS, VALUATION_COLUMNS
from sigmasight_assets.market_data.symbols import parse_occ
from sigmasight_assets.market_data.synthetic import (
    _M_SD,
    _Q_SD,
    _S_SD,
    MISSING_RATE,
    SCRIPTED_ACTIONS,
    SPLIT_RATE,
    SPLIT_RATIOS,
    STYLE_NAMES,
    SyntheticProvider,
    planted_exposures,
)

SEED = 7
STATS_END = pd.Timestamp("2026-06-30")
N_RETURNS = 500


def realistic_tickers(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct 3–4 letter tickers (random letters, like real symbols; none is a factor ETF)."""
    rng = np.random.default_rng(seed)
    out: set[str] = set()
    while len(out) < n:
        s = "".join(rng.choice(list(string.ascii_uppercase), size=int(rng.integers(3, 5))))
        if s not in FACTOR_ETFS and s not in ("NEWCO", "GONE"):
            out.add(s)
    return sorted(out)


STOCKS = realistic_tickers(200)


@pytest.fixture(scope="module")
def provider() -> SyntheticProvider:
    return SyntheticProvider(SEED)


@pytest.fixture(scope="module")
def history(provider):
    """~2 years (501 sessions → 500 returns) of the 8 factor ETFs and 200 stocks, wide adj_close."""
    sess = calendar.sessions_back(STATS_END, N_RETURNS + 1)
    res = provider.fetch_prices(list(FACTOR_ETFS) + STOCKS, sess[0].date(), sess[-1].date())
    assert res.failures == {}
    wide = res.frame.pivot(index="date", columns="symbol", values="adj_close").reindex(sess)
    return sess, res.frame, wide


# -- contract and determinism ----------------------------------------------------------------------
def test_frame_contract(provider):
    res = provider.fetch_prices(["SPY", "AAPL"], date(2025, 1, 2), date(2025, 1, 31))
    f = res.frame
    assert list(f.columns) == PRICE_COLUMNS
    assert f["date"].dtype == "datetime64[ns]"
    assert set(f["source"]) == {"synthetic"}
    assert not f.duplicated(["date", "symbol"]).any()
    # Dates are exactly sessions, sorted by (date, symbol).
    assert set(f["date"]) <= set(calendar.sessions("2025-01-02", "2025-01-31"))
    assert f.equals(f.sort_values(["date", "symbol"], ignore_index=True))
    # OHLC is consistent and strictly positive.
    assert (f["high"] >= f[["open", "close"]].max(axis=1)).all()
    assert (f["low"] <= f[["open", "close"]].min(axis=1)).all()
    assert (f[["open", "high", "low", "close", "adj_close", "volume"]] > 0).all().all()


def test_same_seed_gives_identical_frames():
    syms = ["SPY", "TLT", "AAPL", "MSFT", "SPY261218P01400000"]
    a = SyntheticProvider(SEED).fetch_prices(syms, date(2025, 6, 2), date(2025, 8, 29))
    b = SyntheticProvider(SEED).fetch_prices(syms, date(2025, 6, 2), date(2025, 8, 29))
    pd.testing.assert_frame_equal(a.frame, b.frame, check_exact=True)
    va = SyntheticProvider(SEED).fetch_valuations(syms, date(2025, 6, 2), date(2025, 8, 29))
    vb = SyntheticProvider(SEED).fetch_valuations(syms, date(2025, 6, 2), date(2025, 8, 29))
    pd.testing.assert_frame_equal(va.frame, vb.frame, check_exact=True)
    assert va.failures == vb.failures


def test_different_seed_gives_different_numbers():
    a = SyntheticProvider(7).fetch_prices(["SPY", "AAPL"], date(2025, 6, 2), date(2025, 6, 30)).frame
    b = SyntheticProvider(8).fetch_prices(["SPY", "AAPL"], date(2025, 6, 2), date(2025, 6, 30)).frame
    merged = a.merge(b, on=["date", "symbol"], suffixes=("_a", "_b"))
    assert len(merged) > 30
    # Not a single close agrees: the whole path is redrawn.
    assert (merged["close_a"] != merged["close_b"]).all()


def test_subset_stability_alone_equals_inside_a_large_request(provider):
    """A symbol's numbers do not depend on which other symbols are requested (nor on chunking)."""
    others = realistic_tickers(460, seed=1)  # > one 400-symbol chunk
    targets = ["AAPL", "SPY", "TLT", "SPY261218P01400000"]
    big_request = others[:150] + ["AAPL"] + others[150:] + ["SPY", "SPY261218P01400000", "TLT"]
    start, end = date(2026, 1, 2), date(2026, 3, 31)
    big = provider.fetch_prices(big_request, start, end).frame
    for sym in targets:
        alone = provider.fetch_prices([sym], start, end).frame
        inside = big[big["symbol"] == sym].reset_index(drop=True)
        assert len(alone) > 50
        pd.testing.assert_frame_equal(alone, inside, check_exact=True)
    # Valuations too.
    v_alone = provider.fetch_valuations(["AAPL"], start, end).frame
    v_big = provider.fetch_valuations(others[:50] + ["AAPL"], start, end).frame
    pd.testing.assert_frame_equal(v_alone, v_big[v_big["symbol"] == "AAPL"].reset_index(drop=True), check_exact=True)


def _range_pair(provider, syms, columns=None):
    long = provider.fetch_prices(syms, date(2025, 9, 2), date(2026, 3, 31)).frame
    short = provider.fetch_prices(syms, date(2025, 11, 3), date(2025, 12, 31)).frame
    sl = long[(long["date"] >= "2025-11-03") & (long["date"] <= "2025-12-31")].reset_index(drop=True)
    assert len(short) > 100
    cols = columns or list(short.columns)
    return short[cols], sl[cols]


RANGE_SYMBOLS = ["SPY", "VTV", "AAPL", "JPM", "SPY261218P01400000"]


def test_range_stability_closes_and_volumes(provider):
    """A sub-range's close, adj_close and volume equal the slice of a longer request."""
    short, sl = _range_pair(provider, RANGE_SYMBOLS, ["date", "symbol", "close", "adj_close", "volume", "source"])
    pd.testing.assert_frame_equal(short, sl, check_exact=True)
    vlong = provider.fetch_valuations(["AAPL", "SPY"], date(2025, 9, 2), date(2026, 3, 31)).frame
    vshort = provider.fetch_valuations(["AAPL", "SPY"], date(2025, 11, 3), date(2025, 12, 31)).frame
    vsl = vlong[(vlong["date"] >= "2025-11-03") & (vlong["date"] <= "2025-12-31")].reset_index(drop=True)
    pd.testing.assert_frame_equal(vshort, vsl, check_exact=True)


def test_range_stability_all_columns(provider):
    """Open, high and low of a sub-range's first day equal those in a longer request (the open gaps
    from the previous session's close on the full path, not from the first requested close)."""
    short, sl = _range_pair(provider, RANGE_SYMBOLS)
    pd.testing.assert_frame_equal(short, sl, check_exact=True)


def test_open_is_previous_close_times_a_small_gap(provider):
    """Open = previous session's close × exp(gap), gap ~ N(0, 0.4 %), inside a request (the first
    day of a request is covered by test_range_stability_all_columns)."""
    f = provider.fetch_prices(["SPY"], date(2025, 11, 3), date(2025, 12, 31)).frame.set_index("date")
    ratio = (f["open"] / f["close"].shift(1)).iloc[1:]
    assert (np.abs(np.log(ratio)) < 0.004 * 6).all()  # gap sd 0.4 %


# -- scripted behaviours ---------------------------------------------------------------------------
def test_factor_etfs_have_every_session(history):
    sess, _, wide = history
    assert wide[list(FACTOR_ETFS)].notna().all().all()


def test_stocks_miss_about_0_2_percent_of_sessions(history):
    """200 stocks × 501 sessions ≈ 100k symbol-days; at rate 0.002 about 200 are missing.

    Binomial sd ≈ 14 (0.014 %): the bounds 0.12 %–0.28 % are more than 5 sd away.
    """
    sess, _, wide = history
    present = wide[STOCKS].notna().to_numpy()
    rate = 1 - present.mean()
    assert MISSING_RATE == 0.002
    assert 0.0012 <= rate <= 0.0028, rate
    # Missing days are scattered, not whole sessions or whole symbols.
    assert present.any(axis=1).all()
    assert (~present).sum(axis=0).max() <= 8  # Poisson(1) per symbol: P(>8) < 1e-5


def test_newco_lists_on_2026_03_02(provider):
    res = provider.fetch_prices(["NEWCO"], date(2026, 2, 2), date(2026, 3, 31))
    d = res.frame["date"]
    assert d.min() == pd.Timestamp("2026-03-02")
    assert not (d < "2026-03-02").any()
    before = provider.fetch_prices(["NEWCO"], date(2026, 1, 2), date(2026, 2, 27))
    assert before.frame.empty
    assert "not listed until 2026-03-02" in before.failures["NEWCO"]


def test_gone_stops_after_2026_06_30(provider):
    res = provider.fetch_prices(["GONE"], date(2026, 6, 1), date(2026, 7, 31))
    d = res.frame["date"]
    assert d.max() == pd.Timestamp("2026-06-30")
    assert not (d > "2026-06-30").any()
    after = provider.fetch_prices(["GONE"], date(2026, 7, 1), date(2026, 7, 31))
    assert after.frame.empty
    assert "stopped trading after 2026-06-30" in after.failures["GONE"]


def test_zerovol_trades_at_a_constant_price(provider):
    f = provider.fetch_prices(["ZEROVOL"], date(2025, 1, 2), date(2025, 12, 31)).frame
    assert len(f) > 240
    assert f["close"].nunique() == 1
    assert (f["open"] == f["close"]).all() and (f["high"] == f["close"]).all() and (f["low"] == f["close"]).all()
    assert f["close"].iloc[0] > 0


def test_private_symbols_are_never_served(provider):
    syms = ["PRIVATE_FUND_A", "EQ1A2B3C4D5E", "AAPL"]
    res = provider.fetch_prices(syms, date(2025, 1, 2), date(2025, 1, 31))
    assert set(res.frame["symbol"]) == {"AAPL"}
    assert set(res.failures) == {"PRIVATE_FUND_A", "EQ1A2B3C4D5E"}
    assert all("private" in r for r in res.failures.values())
    val = provider.fetch_valuations(syms, date(2025, 1, 2), date(2025, 1, 31))
    assert set(val.frame["symbol"]) == {"AAPL"}
    assert {"PRIVATE_FUND_A", "EQ1A2B3C4D5E"} <= set(val.failures)


def _bs(s, k, t, r, vol, cp):
    d1 = (np.log(s / k) + (r + 0.5 * vol**2) * t) / (vol * np.sqrt(t))
    d2 = d1 - vol * np.sqrt(t)
    if cp == "C":
        return s * norm.cdf(d1) - k * np.exp(-r * t) * norm.cdf(d2)
    return k * np.exp(-r * t) * norm.cdf(-d2) - s * norm.cdf(-d1)


@pytest.mark.parametrize("symbol", ["SPY260618C01400000", "SPY260618P01400000"])
def test_options_priced_by_black_scholes_until_expiry_then_absent(provider, symbol):
    occ = parse_occ(symbol)
    expiry = pd.Timestamp(occ.expiry)
    res = provider.fetch_prices([symbol, "SPY"], date(2026, 5, 1), date(2026, 7, 31))
    f = res.frame
    opt = f[f["symbol"] == symbol].set_index("date")
    spy = f[f["symbol"] == "SPY"].set_index("date")
    # Every SPY session up to and including expiry, nothing after.
    expected_days = calendar.sessions("2026-05-01", expiry)
    assert list(opt.index) == list(expected_days)
    assert opt.index.max() == expiry
    # Priced by Black-Scholes on the synthetic underlying (SPY vol 0.16, r = 4 %), cents, floor 0.01.
    s = spy.loc[opt.index, "close"].to_numpy()
    t = np.maximum((expiry - opt.index).days.to_numpy() / 365.0, 1 / 365)
    model = np.maximum(np.round(_bs(s, occ.strike, t, 0.04, 0.16, occ.option_type), 2), 0.01)
    np.testing.assert_allclose(opt["close"].to_numpy(), model, atol=0.011)
    assert (opt["close"] == opt["adj_close"]).all()
    # A range entirely after expiry: nothing, with the reason.
    late = provider.fetch_prices([symbol], date(2026, 7, 1), date(2026, 7, 31))
    assert late.frame.empty
    assert "expired" in late.failures[symbol]


# -- realistic statistics --------------------------------------------------------------------------
def test_spy_annualised_volatility(history):
    _, _, wide = history
    r = wide.pct_change(fill_method=None).iloc[1:]
    vol = r["SPY"].std() * np.sqrt(252)
    assert 0.12 <= vol <= 0.20, vol  # model: 0.0095·√252 ≈ 0.151


def test_factor_correlations(history):
    _, _, wide = history
    r = wide.pct_change(fill_method=None).iloc[1:]
    assert r["SPY"].corr(r["TLT"]) < 0.1  # model ≈ −0.24
    assert r["SPY"].corr(r["VTV"]) > 0.8  # model ≈ 0.9
    assert r["SPY"].corr(r["IWM"]) > 0.8
    assert r["SPY"].corr(r["USMV"]) > 0.8


def test_planted_market_beta_is_recovered_by_ols_on_spy(history):
    """OLS of each stock on SPY over 500 returns estimates 0.9972 × the planted market beta.

    Tolerance from the model: the regression error of stock i is its rate, style and idiosyncratic
    return, sd ``σ_e,i = sqrt((β_q·0.009)² + Σ(β_k·0.004)² + σ_i²)``, so
    ``SE_i = σ_e,i / (sd(r_SPY)·√n)`` (≈ 0.06–0.12). We require ≥ 90 % of |error| < 2·SE_i
    (95.4 % expected; 90 % is > 3 binomial sd below), every |error| < 4.5·SE_i, and the
    cross-sectional mean error (style shocks are shared, idio averages out) within 0.03.
    """
    _, _, wide = history
    r = wide.pct_change(fill_method=None).iloc[1:]
    x = r["SPY"]
    est = {}
    nobs = {}
    for s in STOCKS:
        m = r[s].notna() & x.notna()
        xc, yc = x[m] - x[m].mean(), r[s][m] - r[s][m].mean()
        est[s] = float((xc * yc).sum() / (xc * xc).sum())
        nobs[s] = int(m.sum())
    est = pd.Series(est)
    exp = planted_exposures(STOCKS, SEED)
    err = est - 0.9972 * exp["market"]
    resid_sd = np.sqrt(
        (exp["rates"] * _Q_SD) ** 2 + (exp[list(STYLE_NAMES)] ** 2).sum(axis=1) * _S_SD**2 + exp["idio_vol"] ** 2
    )
    se = resid_sd / (x.std(ddof=0) * np.sqrt(pd.Series(nobs)))
    z = (err / se).abs()
    assert min(nobs.values()) >= N_RETURNS - 10
    assert (z < 2).mean() >= 0.90, z.describe()
    assert z.max() < 4.5, z.idxmax()
    assert abs(err.mean()) < 0.03
    assert np.corrcoef(est, exp["market"])[0, 1] > 0.9


def test_planted_exposures_follow_their_documented_ranges():
    exp = planted_exposures(STOCKS, SEED)
    assert exp["market"].between(0.4, 1.8).all()
    assert exp["rates"].between(-0.3, 0.3).all()
    assert exp["idio_vol"].between(0.012, 0.025).all()
    # Uniform on [0.4, 1.8]: sd 1.4/√12 ≈ 0.404; sample of 200 within ±0.06.
    assert abs(exp["market"].std() - 1.4 / np.sqrt(12)) < 0.06
    for name in STYLE_NAMES:
        assert abs(exp[name].std() - 0.5) < 0.1, name


def test_planted_exposures_spread_for_sequential_symbol_names():
    """Benchmarks and users name symbols S0001…S5000; their exposures must still span the ranges."""
    syms = [f"SYM{i:05d}" for i in range(200)]
    exp = planted_exposures(syms, SEED)
    assert exp["market"].max() - exp["market"].min() > 1.0
    assert abs(exp["market"].std() - 1.4 / np.sqrt(12)) < 0.06
    assert exp["idio_vol"].max() - exp["idio_vol"].min() > 0.008


# -- valuations ------------------------------------------------------------------------------------
def share_basis(provider, frame: pd.DataFrame) -> pd.Series:
    """Per row of ``frame`` (date, symbol): shares per share held on 2026-01-02 (the planted basis),
    from the published corporate actions: ×s for each split after that day up to the date, ÷s for
    each split after the date up to that day."""
    base = pd.Timestamp("2026-01-02")
    acts = provider.corporate_actions(sorted(frame["symbol"].unique()), date(2000, 1, 3),
                                      max(frame["date"].max(), base).date())
    splits = acts[acts["split_ratio"] != 1.0]
    basis = pd.Series(1.0, index=frame.index)
    for _, a in splits.iterrows():
        mine = frame["symbol"] == a["symbol"]
        basis[mine & (frame["date"] >= a["date"]) & (a["date"] > base)] *= a["split_ratio"]
        basis[mine & (frame["date"] < a["date"]) & (a["date"] <= base)] /= a["split_ratio"]
    return basis


@pytest.mark.parametrize("syms, start, end", [
    (realistic_tickers(80, seed=3), date(2025, 12, 1), date(2026, 2, 27)),
    # the scripted splits (NVDA 4:1 on 08-17, TSLA 3:1 on 09-14, JNJ 2:1 with a dividend on 10-15)
    (["NVDA", "TSLA", "JNJ", "MSFT"], date(2026, 8, 3), date(2026, 10, 30)),
])
def test_valuations_pe_eps_and_market_cap(provider, syms, start, end):
    """EPS = eps_yield × first close of the calendar year, per share as of the day (constant within a
    year on one share basis); PE = close/EPS where EPS > 0 and NaN otherwise; forward PE =
    close/(EPS·(1+g)); market cap = close × shares on the day's share basis, continuous across a
    split."""
    val = provider.fetch_valuations(syms, start, end)
    px = provider.fetch_prices(syms, start, end).frame
    assert val.failures == {}
    v = val.frame
    assert list(v.columns) == VALUATION_COLUMNS
    m = v.merge(px[["date", "symbol", "close"]], on=["date", "symbol"], how="inner")
    assert len(m) == len(v) == len(px)  # a valuation row exactly where there is a price
    exp = planted_exposures(syms, SEED)
    e = exp.reindex(m["symbol"]).reset_index(drop=True)
    losers = e["eps_yield"] < 0
    assert (~losers).any() and (losers.any() or len(syms) < 10)  # about 8 % of stocks lose money
    assert m.loc[losers.to_numpy(), "pe"].isna().all()
    assert m.loc[losers.to_numpy(), "forward_pe"].isna().all()
    winners = m[~losers.to_numpy()].copy()
    assert (winners["pe"] > 0).all()
    basis = share_basis(provider, m)
    # Implied EPS on the reference share basis is constant within each (symbol, year) and equals
    # eps_yield × year-open close on that basis.
    winners["eps"] = winners["close"] / winners["pe"] * basis[winners.index]
    winners["year"] = winners["date"].dt.year
    rel_spread = winners.groupby(["symbol", "year"])["eps"].agg(lambda s: (s.max() - s.min()) / s.mean())
    assert rel_spread.max() < 1e-4
    first_2026 = calendar.sessions("2026-01-01", "2026-01-31")[0]
    px26 = provider.fetch_prices(syms, first_2026.date(), first_2026.date()).frame
    opens = (px26["close"] * share_basis(provider, px26)).set_axis(px26["symbol"])
    w26 = winners[winners["year"] == 2026]
    implied = w26.groupby("symbol")["eps"].mean()
    common = implied.index.intersection(opens.index)
    assert len(common) >= min(50, len(syms) - 1)
    # (closes are rounded to 1/10,000 of a dollar, hence the tolerance on penny stocks)
    np.testing.assert_allclose(implied[common], exp.loc[common, "eps_yield"] * opens[common], rtol=1e-3)
    # Forward PE = PE / (1 + g).
    g = exp.reindex(winners["symbol"])["eps_growth"].to_numpy()
    np.testing.assert_allclose(winners["forward_pe"], winners["pe"] / (1 + g), rtol=1e-3)
    # Market cap = close × shares on the day's basis; provider beta and dividend yield are the planted
    # ones.
    np.testing.assert_allclose(m["market_cap"], m["close"] * e["shares"] * basis, rtol=1e-9, atol=0.5)
    np.testing.assert_allclose(m["provider_beta"], e["provider_beta"])
    np.testing.assert_allclose(m["dividend_yield"], e["dividend_yield"])


def test_valuations_for_etfs_and_options(provider):
    res = provider.fetch_valuations(["SPY", "TLT", "SPY261218P01400000"], date(2026, 1, 2), date(2026, 1, 30))
    v = res.frame
    assert set(v["symbol"]) == {"SPY", "TLT"}
    assert v["pe"].isna().all() and v["market_cap"].isna().all()
    assert (v.loc[v["symbol"] == "SPY", "provider_beta"] == 1.0).all()
    assert (v.loc[v["symbol"] == "TLT", "provider_beta"] == -0.25).all()
    assert (v["dividend_yield"] == 0.018).all()
    assert res.failures == {}
    assert "options" in res.skipped["SPY261218P01400000"]  # not served by design: a skip, not an error


# -- corporate actions -----------------------------------------------------------------------------
ACTION_WINDOW = (date(2026, 8, 3), date(2026, 10, 30))  # the scripted NVDA, TSLA and JNJ events


def test_scripted_corporate_actions_are_the_same_for_every_seed():
    expected = {
        ("AAPL", pd.Timestamp("2020-08-31")): 4.0,
        ("NVDA", pd.Timestamp("2026-08-17")): 4.0,
        ("TSLA", pd.Timestamp("2026-09-14")): 3.0,
        ("JNJ", pd.Timestamp("2026-10-15")): 2.0,
    }
    assert {(s, pd.Timestamp(d)): r for s, acts in SCRIPTED_ACTIONS.items() for d, r, _ in acts} == expected
    for seed in (7, 8):
        p = SyntheticProvider(seed)
        acts = p.corporate_actions(list(SCRIPTED_ACTIONS), date(2000, 1, 3), date(2026, 12, 31))
        splits = acts[acts["split_ratio"] != 1.0]
        # the scripted symbols split only where the script says
        assert {(r.symbol, r.date): r.split_ratio for r in splits.itertuples()} == expected, seed
        jnj = acts[(acts["symbol"] == "JNJ") & (acts["date"] == "2026-10-15")].iloc[0]
        # a split and a dividend on the same day: 0.6 % of the previous close, per post-split share
        prev = p.fetch_prices(["JNJ"], date(2026, 10, 14), date(2026, 10, 14)).frame.iloc[0]
        assert jnj["dividend"] == pytest.approx(0.006 * prev["close"] / 2, abs=1e-4)
        assert jnj["dividend"] > 0


def test_stored_rows_give_the_model_total_return(provider):
    """r_D = s_D·(c_D + d_D)/c_{D−1} − 1 from the stored rows equals the model's total return, up to the
    rounding of the stored prices to 1/10,000 of a dollar (each of c_D, d_D, c_{D−1} is off by at most
    5e-5, so |Δr| ≤ 5e-5·(2·s_D + 1 + r_D)/c_{D−1}); on every day, splits and dividends included."""
    from sigmasight_assets.calc.returns import total_returns

    syms = list(SCRIPTED_ACTIONS) + list(FACTOR_ETFS) + STOCKS[:60]
    f = provider.fetch_prices(syms, *ACTION_WINDOW).frame
    sess = calendar.sessions(*ACTION_WINDOW)
    wide = {c: f.pivot(index="date", columns="symbol", values=c).reindex(index=sess, columns=syms)
            for c in ("close", "dividend", "split_ratio")}
    r, basis = total_returns(wide["close"], wide["dividend"], wide["split_ratio"])
    model = provider.model_returns(syms, *ACTION_WINDOW).reindex(index=sess, columns=syms)
    ok = r.notna()
    # NaN exactly where the day or the one before has no row (a missing day), never elsewhere
    pd.testing.assert_frame_equal(~ok, wide["close"].isna() | wide["close"].shift(1).isna())
    assert (basis.to_numpy()[ok.to_numpy()] == "total").all()
    bound = 5e-5 * (2 * wide["split_ratio"] + 1 + model) / wide["close"].shift(1) + 1e-12
    assert ((r - model).abs().to_numpy()[ok.to_numpy()] <= bound.to_numpy()[ok.to_numpy()]).all()
    # the split days themselves are among the rows checked, and look nothing like a −75 % day
    for sym, day in (("NVDA", "2026-08-17"), ("TSLA", "2026-09-14"), ("JNJ", "2026-10-15")):
        assert ok.loc[day, sym] and abs(r.loc[day, sym]) < 0.15, (sym, day, r.loc[day, sym])
        assert wide["split_ratio"].loc[day, sym] > 1


def test_adj_close_is_the_back_adjusted_total_return_series(provider):
    """adj_D/adj_{D−1} − 1 is the model total return (to rounding), and adj meets close on 2026-12-31."""
    syms = ["NVDA", "JNJ", "SPY", "TLT"]
    f = provider.fetch_prices(syms, date(2026, 8, 3), date(2026, 12, 31)).frame
    adj = f.pivot(index="date", columns="symbol", values="adj_close")
    model = provider.model_returns(syms, date(2026, 8, 3), date(2026, 12, 31)).reindex(adj.index)[adj.columns]
    ratio = adj / adj.shift(1) - 1
    bound = 5e-5 * (2 + model) / adj.shift(1) + 1e-12
    assert ((ratio - model).abs().iloc[1:] <= bound.iloc[1:]).all().all()
    last = f[f["date"] == "2026-12-31"]
    np.testing.assert_array_equal(last["adj_close"], last["close"])


@pytest.mark.parametrize("day", ["2026-08-17", "2026-09-14", "2026-10-15", "2026-09-18"])
def test_nightly_fetch_equals_history_fetch_on_action_days(provider, day):
    """A symbol-day does not depend on the requested range: the nightly fetch of an action day equals
    that day inside a fetch of years (and inside a fetch that starts on it), bit for bit."""
    syms = list(SCRIPTED_ACTIONS) + ["SPY", "TLT", "MSFT"]
    nightly = provider.fetch_prices(syms, pd.Timestamp(day).date(), pd.Timestamp(day).date()).frame
    history = provider.fetch_prices(syms, date(2024, 1, 2), date(2026, 11, 30)).frame
    starting = provider.fetch_prices(syms, pd.Timestamp(day).date(), date(2026, 12, 31)).frame
    for other in (history, starting):
        same_day = other[other["date"] == day].reset_index(drop=True)
        pd.testing.assert_frame_equal(nightly, same_day, check_exact=True)
    assert ((nightly["dividend"] > 0) | (nightly["split_ratio"] != 1)).any()


def test_open_gaps_from_the_previous_close_net_of_dividend_and_split(provider):
    """Open = previous close × (1 − y)/s × exp(gap), y = dividend/(previous close/s): the open of a split
    day is about a quarter of the previous close for a 4:1 split."""
    f = provider.fetch_prices(["NVDA", "JNJ", "TSLA", "SPY"], *ACTION_WINDOW).frame
    for sym, g in f.groupby("symbol"):
        g = g.set_index("date")
        reference = (g["close"].shift(1) / g["split_ratio"] - g["dividend"]).iloc[1:]
        assert (np.abs(np.log(g["open"].iloc[1:] / reference)) < 0.004 * 6).all(), sym
    nvda = f[f["symbol"] == "NVDA"].set_index("date")
    assert nvda.loc["2026-08-17", "open"] < 0.3 * nvda.loc["2026-08-14", "close"]


def test_dividend_schedule(provider):
    """Every planted dividend payer (ZEROVOL included) goes ex four times a year at about yield/4 of the
    previous close (no ex-date is ever a missing day); non-payers never; the ETFs on the first session
    on or after the 18th of Mar/Jun/Sep/Dec at 0.018/4."""
    syms = STOCKS + list(FACTOR_ETFS) + ["ZEROVOL"]
    start, end = date(2015, 1, 2), date(2025, 12, 31)
    acts = provider.corporate_actions(syms, start, end)
    divs = acts[acts["dividend"] > 0].copy()
    exp = planted_exposures(STOCKS + ["ZEROVOL"], SEED)
    payers = set(exp.index[exp["dividend_yield"] > 0])
    assert "ZEROVOL" in payers  # (seed 7: its planted yield is 0.37 %)
    assert 0.6 * len(STOCKS) < len(payers) - 1 < 0.8 * len(STOCKS)  # about 70 % pay
    assert set(divs["symbol"]) == payers | set(FACTOR_ETFS)
    per_year = divs.groupby(["symbol", divs["date"].dt.year]).size()
    assert (per_year == 4).all(), per_year[per_year != 4]
    # quarterly: three months apart (a day-of-month target on a weekend moves to the next session)
    gaps = divs.sort_values("date").groupby("symbol")["date"].diff().dropna().dt.days
    assert gaps.between(85, 97).all(), gaps.describe()
    etf = divs[divs["symbol"].isin(FACTOR_ETFS)]
    assert set(etf["date"].dt.month) == {3, 6, 9, 12}
    for d in etf["date"].unique():
        d = pd.Timestamp(d)
        assert d.day >= 18 and calendar.sessions(d.replace(day=18), d)[0] == d
    # the amount is y·(previous close)/s with y = yield/4: check it against the previous stored close
    px = provider.fetch_prices(sorted(payers)[:40] + ["SPY"], start, end).frame.set_index(["symbol", "date"]).sort_index()
    prev_close = px.groupby(level="symbol")["close"].shift(1)
    sample = divs[divs["symbol"].isin(sorted(payers)[:40] + ["SPY"])].set_index(["symbol", "date"])
    yields = exp["dividend_yield"].reindex(sample.index.get_level_values("symbol")).fillna(0.018).to_numpy()
    implied = sample["dividend"] * sample["split_ratio"] / prev_close.reindex(sample.index)
    ok = implied.notna()
    np.testing.assert_allclose(implied[ok], (yields / 4)[ok.to_numpy()], rtol=0.02, atol=2e-4)


def test_splits_are_rare_never_on_etfs_and_keep_the_share_basis(provider):
    """Hashed splits: probability 0.002 per stock and year, ratios 2, 3 or 4; none for the ETFs or ZEROVOL.
    200 stocks × 27 years ≈ 10.8 expected (Poisson sd 3.3): between 2 and 25."""
    syms = STOCKS + list(FACTOR_ETFS) + ["ZEROVOL"]
    acts = provider.corporate_actions(syms, date(2000, 1, 3), date(2026, 12, 31))
    splits = acts[acts["split_ratio"] != 1.0]
    assert 2 <= len(splits) <= 25, len(splits)
    assert set(splits["split_ratio"]) <= set(SPLIT_RATIOS)
    assert not splits["symbol"].isin([*FACTOR_ETFS, "ZEROVOL"]).any()
    assert SPLIT_RATE == 0.002
    # a split day is never missing and the stock trades about s times lower after it
    for r in splits.itertuples():
        around = provider.fetch_prices([r.symbol], (r.date - pd.Timedelta(days=10)).date(), r.date.date()).frame
        before = around[around["date"] < r.date]["close"].iloc[-1]
        assert 0.8 < r.close * r.split_ratio / before < 1.25, r


def test_zerovol_total_return_is_its_dividend_and_options_carry_no_actions(provider):
    """ZEROVOL's close never moves: its total return is its dividend on the ex-dates, 0 otherwise."""
    from sigmasight_assets.calc.returns import total_returns

    zero = provider.fetch_prices(["ZEROVOL"], date(2025, 1, 2), date(2025, 12, 31)).frame.set_index("date")
    assert zero["close"].nunique() == 1 and (zero["split_ratio"] == 1).all()
    assert (zero["dividend"] > 0).sum() == 4
    r, _ = total_returns(*(zero[[c]].set_axis(["ZEROVOL"], axis=1) for c in ("close", "dividend", "split_ratio")))
    r = r["ZEROVOL"].iloc[1:]
    np.testing.assert_allclose(r, (zero["dividend"] / zero["close"]).iloc[1:], rtol=0, atol=1e-12)
    assert (r > 0).sum() == 4 and (r == 0).sum() == len(r) - 4
    opt = provider.fetch_prices(["SPY261218P01400000"], date(2025, 1, 2), date(2025, 12, 31)).frame
    assert (opt["dividend"] == 0).all() and (opt["split_ratio"] == 1).all()
