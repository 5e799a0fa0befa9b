"""Spread returns and rolling spread betas against the per-symbol statsmodels oracle."""

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.calc.spreads import (
    SPREAD_RESULT_COLUMNS,
    SPREAD_SKIPPED_COLUMNS,
    rolling_spread_betas,
    spread_returns,
)
from sigmasight_assets_tests.test_calc_regression import oracle_ols, oracle_window

ATOL = 1e-10
T = 200
ETFS = ["SPY", "TLT", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(21)
    idx = pd.bdate_range("2023-06-01", periods=T)
    etf = pd.DataFrame(rng.normal(0.0003, 0.01, (T, len(ETFS))), index=idx, columns=ETFS)
    etf.iloc[0] = np.nan
    etf.loc[idx[50], "SPY"] = np.nan  # hits three spreads
    etf.loc[idx[[70, 150, 190]], "MTUM"] = np.nan  # only momentum: a different gap pattern
    spreads = spread_returns(etf)
    cols = {}
    for i in range(6):
        load = rng.uniform(-2, 2, 4)
        r = np.nan_to_num(spreads.to_numpy()) @ load + rng.normal(0, 0.01, T)
        r[rng.random(T) < 0.08] = np.nan
        cols[f"S{i}"] = r
    short = np.full(T, np.nan)
    short[T - 61:] = rng.normal(0, 0.02, 61)  # 59, 60, 61 growth_value cases on the last 3 days
    cols["SHORT"] = short
    cols["HUGE"] = 9.0 * np.nan_to_num(spreads["size_spread"].to_numpy()) + rng.normal(0, 1e-3, T)
    returns = pd.DataFrame(cols, index=idx)
    returns.iloc[0] = np.nan
    return returns, etf, spreads


def test_spread_returns_definitions(data):
    _, etf, spreads = data
    assert list(spreads.columns) == ["growth_value", "momentum_spread", "size_spread", "quality_spread"]
    day = etf.index[10]
    assert spreads.loc[day, "growth_value"] == etf.loc[day, "VUG"] - etf.loc[day, "VTV"]
    assert spreads.loc[day, "momentum_spread"] == etf.loc[day, "MTUM"] - etf.loc[day, "SPY"]
    assert spreads.loc[day, "size_spread"] == etf.loc[day, "IWM"] - etf.loc[day, "SPY"]
    assert spreads.loc[day, "quality_spread"] == etf.loc[day, "QUAL"] - etf.loc[day, "SPY"]
    gap = etf.index[50]  # SPY missing
    assert spreads.loc[gap].isna().tolist() == [False, True, True, True]


def test_spread_returns_requires_all_legs(data):
    _, etf, _ = data
    with pytest.raises(KeyError, match="MTUM"):
        spread_returns(etf.drop(columns="MTUM"))


def test_rolling_spread_betas_match_statsmodels(data):
    returns, _, spreads = data
    days = returns.index[-3:]
    res, skipped = rolling_spread_betas(returns, spreads, days)
    assert list(res.columns) == SPREAD_RESULT_COLUMNS
    assert list(skipped.columns) == SPREAD_SKIPPED_COLUMNS
    checked = 0
    for day in days:
        for sym in returns.columns:
            got_sym = res[(res.date == day) & (res.symbol == sym)]
            for factor in spreads.columns:
                exp = oracle_ols(returns[sym], spreads[factor], day, window=180, min_obs=60)
                got = got_sym[got_sym.factor == factor]
                if exp is None:
                    assert got.empty
                    reason = skipped[
                        (skipped.date == day) & (skipped.symbol == sym) & (skipped.factor == factor)
                    ].reason
                    assert reason.iloc[0].startswith("insufficient_history")
                    continue
                row = got.iloc[0]
                for key in ("raw_beta", "intercept", "r_squared"):
                    assert row[key] == pytest.approx(exp[key], abs=ATOL, rel=1e-9), (day, sym, factor, key)
                assert row.observations == exp["observations"]
                assert row.beta == pytest.approx(np.clip(exp["raw_beta"], -5, 5), abs=ATOL)
                assert row.capped == (abs(exp["raw_beta"]) > 5)
                checked += 1
    assert checked >= 3 * 6 * 4
    # rows come out date, symbol, factor
    first = res[res.date == days[-1]].head(4)
    assert first.symbol.nunique() == 1 and first.factor.tolist() == list(spreads.columns)


def test_each_spread_has_its_own_observations_and_r2(data):
    returns, _, spreads = data
    day = returns.index[-1]
    res, _ = rolling_spread_betas(returns, spreads, [day])
    s1 = res[res.symbol == "S1"].set_index("factor")
    # MTUM has three extra gaps inside the 180-row window
    assert s1.loc["momentum_spread", "observations"] < s1.loc["size_spread", "observations"]
    assert s1.r_squared.nunique() == 4
    huge = res[res.symbol == "HUGE"].set_index("factor").loc["size_spread"]
    assert huge.raw_beta == pytest.approx(9.0, abs=0.05) and huge.beta == 5.0 and huge.capped


def test_spread_short_history_around_minimum(data):
    returns, _, spreads = data
    days = returns.index[-3:]
    res, skipped = rolling_spread_betas(returns, spreads, days)
    n = [
        oracle_window(pd.concat([returns["SHORT"], spreads["growth_value"]], axis=1), d, 180).dropna().shape[0]
        for d in days
    ]
    assert n == [59, 60, 61]
    got = res[(res.symbol == "SHORT") & (res.factor == "growth_value")]
    assert got.date.tolist() == list(days[1:])
    skip = skipped[(skipped.symbol == "SHORT") & (skipped.factor == "growth_value")]
    assert skip.reason.tolist() == ["insufficient_history: 59 < 60 observations"]


def test_constant_spread_is_skipped_for_that_factor_only(data):
    returns, _, spreads = data
    flat = spreads.copy()
    flat["quality_spread"] = 0.0
    res, skipped = rolling_spread_betas(returns, flat, returns.index[-1:])
    assert "quality_spread" not in set(res.factor)
    q = skipped[skipped.factor == "quality_spread"]
    assert len(q) == returns.shape[1]
    assert q.reason.str.startswith(("constant_regressor", "insufficient_history")).all()
    assert (res.factor == "growth_value").sum() == returns.shape[1]


def test_spread_betas_do_not_depend_on_other_symbols(data):
    returns, _, spreads = data
    rng = np.random.default_rng(4)
    noise = pd.DataFrame(
        rng.normal(0, 0.02, (T, 300)), index=returns.index, columns=[f"N{i}" for i in range(300)]
    ).mask(rng.random((T, 300)) < 0.25)
    big = pd.concat([noise, returns], axis=1)
    days = returns.index[-2:]
    inside, _ = rolling_spread_betas(big, spreads, days)
    for sym in ["S0", "SHORT"]:
        alone, _ = rolling_spread_betas(returns[[sym]], spreads, days)
        part = inside[inside.symbol == sym].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone, part, check_exact=False, rtol=1e-12, atol=1e-12)
