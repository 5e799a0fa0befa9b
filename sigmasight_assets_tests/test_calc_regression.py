"""Vectorised rolling OLS / ridge against the slow per-symbol oracle (statsmodels, sklearn).

The oracle functions below are the reference implementation of DESIGN section 5: one symbol,
one day, complete cases, a library fit. The fast code must match them to 1e-10.
"""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sigmasight_assets.calc.regression import (
    OLS_RESULT_COLUMNS,
    RIDGE_FACTORS,
    RIDGE_RESULT_COLUMNS,
    SKIPPED_COLUMNS,
    ols_block,
    ridge_block,
    rolling_ols,
    rolling_ridge,
)

ATOL = 1e-10


# ----------------------------------------------------------------------------------------------
# Oracle
# ----------------------------------------------------------------------------------------------


def oracle_window(frame, day, window):
    pos = frame.index.get_loc(day)
    return frame.iloc[max(0, pos - window + 1): pos + 1]


def oracle_ols(y: pd.Series, x: pd.Series, day, window=90, min_obs=30):
    """statsmodels OLS of one symbol on one regressor; None when below min_obs."""
    data = pd.concat([oracle_window(y, day, window), oracle_window(x, day, window)], axis=1).dropna()
    if len(data) < min_obs:
        return None
    fit = sm.OLS(data.iloc[:, 0].to_numpy(), sm.add_constant(data.iloc[:, 1].to_numpy())).fit()
    return {
        "raw_beta": fit.params[1],
        "intercept": fit.params[0],
        "r_squared": fit.rsquared,
        "std_error": fit.bse[1],
        "p_value": fit.pvalues[1],
        "observations": int(fit.nobs),
    }


def oracle_ridge(y: pd.Series, x: pd.DataFrame, day, window=90, min_obs=30, alpha=1.0):
    """sklearn StandardScaler + Ridge, coefficients mapped back to the original scale."""
    data = pd.concat([oracle_window(y, day, window), oracle_window(x, day, window)], axis=1).dropna()
    if len(data) < min_obs:
        return None
    yv, xv = data.iloc[:, 0].to_numpy(), data.iloc[:, 1:].to_numpy()
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(xv, yv)
    scaler, ridge = pipe.named_steps["standardscaler"], pipe.named_steps["ridge"]
    return {
        "raw_beta": ridge.coef_ / scaler.scale_,
        "r_squared": pipe.score(xv, yv),
        "observations": len(data),
    }


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

T = 140
DAYS_BACK = 3


def make_data(seed=7, n_random=8):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2024-01-02", periods=T)
    spy = rng.normal(0.0005, 0.01, T)
    tlt = rng.normal(0.0, 0.008, T)
    spy[[5, 60, 120, T - 10]] = np.nan
    cols = {}
    for i in range(n_random):
        beta = rng.uniform(-1.5, 2.5)
        r = 0.0003 + beta * np.nan_to_num(spy) + rng.normal(0, 0.015, T)
        r[rng.random(T) < 0.1] = np.nan  # scattered gaps
        cols[f"S{i}"] = r
    cols["S0"][0] = np.nan
    # Returns on the last 33 rows only; SPY has gaps at T-20 and T-10, so the last three days
    # see 29, 30 and 31 complete cases: below, at and just above the minimum of 30.
    short = np.full(T, np.nan)
    short[T - 33:] = rng.normal(0, 0.02, 33)
    cols["SHORT"] = short
    cols["FLAT"] = np.where(np.arange(T) == 0, np.nan, 0.0)  # constant price
    cols["EMPTY"] = np.full(T, np.nan)
    cols["BIG"] = 8.0 * np.nan_to_num(spy) + rng.normal(0, 0.002, T)
    cols["NEG"] = -7.0 * np.nan_to_num(spy) + rng.normal(0, 0.002, T)
    cols["SPY"] = spy
    returns = pd.DataFrame(cols, index=idx)
    returns.iloc[0] = np.nan  # first row of a returns frame
    return returns, pd.Series(spy, index=idx, name="SPY"), pd.Series(tlt, index=idx, name="TLT")


@pytest.fixture(scope="module")
def data():
    return make_data()


def last_days(index, k=DAYS_BACK):
    return index[-k:]


# ----------------------------------------------------------------------------------------------
# OLS
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["SPY", "TLT"])
def test_rolling_ols_matches_statsmodels(data, which):
    returns, spy, tlt = data
    x = spy if which == "SPY" else tlt
    days = last_days(returns.index)
    res, skipped = rolling_ols(returns, x, days)
    assert list(res.columns) == OLS_RESULT_COLUMNS
    assert list(skipped.columns) == SKIPPED_COLUMNS
    assert res["observations"].dtype == np.int64 and res["capped"].dtype == bool

    checked = 0
    for day in days:
        for sym in returns.columns:
            if sym == "FLAT":
                continue  # statsmodels reports NaN r2/p for a constant y; tested separately
            expected = oracle_ols(returns[sym], x, day)
            got = res[(res.date == day) & (res.symbol == sym)]
            skip = skipped[(skipped.date == day) & (skipped.symbol == sym)]
            if expected is None:
                assert got.empty and len(skip) == 1
                assert skip.reason.iloc[0].startswith("insufficient_history")
                continue
            assert len(got) == 1 and skip.empty, (day, sym)
            row = got.iloc[0]
            for key in ("raw_beta", "intercept", "r_squared", "std_error", "p_value"):
                assert row[key] == pytest.approx(expected[key], abs=ATOL, rel=1e-9), (day, sym, key)
            assert row.observations == expected["observations"]
            assert row.beta == pytest.approx(np.clip(expected["raw_beta"], -5, 5), abs=ATOL)
            assert row.capped == (abs(expected["raw_beta"]) > 5)
            checked += 1
    assert checked >= 3 * 10


def test_short_history_below_at_and_above_minimum(data):
    returns, spy, _ = data
    days = last_days(returns.index)
    res, skipped = rolling_ols(returns, spy, days)
    n_obs = [oracle_window(pd.concat([returns["SHORT"], spy], axis=1), d, 90).dropna().shape[0] for d in days]
    assert n_obs == [29, 30, 31]
    skip = skipped[skipped.symbol == "SHORT"]
    assert skip.date.tolist() == [days[0]]
    assert skip.reason.iloc[0] == "insufficient_history: 29 < 30 observations"
    got = res[res.symbol == "SHORT"].set_index("date")
    assert got.index.tolist() == list(days[1:])
    assert got.observations.tolist() == [30, 31]
    for day in days[1:]:
        exp = oracle_ols(returns["SHORT"], spy, day)
        assert got.loc[day, "raw_beta"] == pytest.approx(exp["raw_beta"], abs=ATOL)
        assert got.loc[day, "p_value"] == pytest.approx(exp["p_value"], abs=ATOL)


def test_empty_symbol_is_skipped_with_zero_observations(data):
    returns, spy, _ = data
    day = returns.index[-1:]
    _, skipped = rolling_ols(returns, spy, day)
    reason = skipped.loc[skipped.symbol == "EMPTY", "reason"].tolist()
    assert reason == ["insufficient_history: 0 < 30 observations"]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_constant_price_is_a_defined_zero_beta(data):
    returns, spy, _ = data
    res, skipped = rolling_ols(returns, spy, returns.index[-1:])
    assert "FLAT" not in skipped.symbol.tolist()
    row = res[res.symbol == "FLAT"].iloc[0]
    assert row.beta == 0.0 and row.raw_beta == 0.0 and not row.capped
    assert row.intercept == 0.0 and row.r_squared == 0.0
    assert row.std_error == 0.0 and row.p_value == 1.0
    assert row.observations == 87  # 90 rows minus the three SPY gaps inside the window
    # statsmodels agrees on the slope and intercept
    exp = oracle_ols(returns["FLAT"], spy, returns.index[-1])
    assert exp["raw_beta"] == pytest.approx(0.0, abs=1e-12)
    assert exp["observations"] == row.observations


def test_cap_flags_and_clips(data):
    returns, spy, _ = data
    res, _ = rolling_ols(returns, spy, returns.index[-1:])
    big = res[res.symbol == "BIG"].iloc[0]
    neg = res[res.symbol == "NEG"].iloc[0]
    assert big.raw_beta == pytest.approx(8.0, abs=0.1) and big.beta == 5.0 and big.capped
    assert neg.raw_beta == pytest.approx(-7.0, abs=0.1) and neg.beta == -5.0 and neg.capped
    own = res[res.symbol == "SPY"].iloc[0]
    assert own.raw_beta == pytest.approx(1.0, abs=1e-12) and own.r_squared == pytest.approx(1.0, abs=1e-12)


def test_constant_regressor_is_skipped(data):
    returns, spy, _ = data
    flat_x = pd.Series(0.001, index=returns.index)
    res, skipped = rolling_ols(returns, flat_x, returns.index[-1:])
    assert res.empty
    assert len(skipped) == returns.shape[1]
    reasons = skipped.set_index("symbol").reason
    assert reasons["S1"].startswith("constant_regressor")
    assert reasons["EMPTY"].startswith("insufficient_history")


def test_regressor_gap_is_missing_not_zero(data):
    returns, spy, _ = data
    day = returns.index[-1]
    res, _ = rolling_ols(returns, spy, [day])
    # SPY is NaN on three rows of the window: every full-history symbol loses those rows.
    assert res.set_index("symbol").loc["BIG", "observations"] == 87


def test_regressor_is_aligned_by_date(data):
    returns, spy, _ = data
    day = returns.index[-1]
    a, _ = rolling_ols(returns, spy, [day])
    thinned = spy.drop(returns.index[-30:-20])
    b, _ = rolling_ols(returns, thinned.sample(frac=1.0, random_state=0), [day])  # shuffled
    assert b.set_index("symbol").loc["S1", "observations"] < a.set_index("symbol").loc["S1", "observations"]
    exp = oracle_ols(returns["S1"], thinned.reindex(returns.index), day)
    assert b.set_index("symbol").loc["S1", "raw_beta"] == pytest.approx(exp["raw_beta"], abs=ATOL)


def test_window_and_min_obs_parameters(data):
    returns, spy, _ = data
    day = returns.index[-1]
    res, skipped = rolling_ols(returns, spy, [day], window=40, min_obs=35)
    for sym in ["S1", "S2", "BIG"]:
        exp = oracle_ols(returns[sym], spy, day, window=40, min_obs=35)
        got = res[res.symbol == sym]
        if exp is None:
            assert sym in skipped.symbol.tolist()
        else:
            assert got.raw_beta.iloc[0] == pytest.approx(exp["raw_beta"], abs=ATOL)
            assert got.observations.iloc[0] == exp["observations"] <= 40


def test_ols_block_rejects_bad_shapes():
    with pytest.raises(ValueError):
        ols_block(np.zeros((5, 2)), np.zeros(4), 3)
    with pytest.raises(ValueError):
        rolling_ols(pd.DataFrame(), pd.Series(dtype=float), [], min_obs=2)


# ----------------------------------------------------------------------------------------------
# Ridge
# ----------------------------------------------------------------------------------------------


def make_factors(index, seed=11, collinear=False, constant=False):
    rng = np.random.default_rng(seed)
    f = pd.DataFrame(rng.normal(0.0003, 0.01, (len(index), 6)), index=index, columns=list(RIDGE_FACTORS))
    f.iloc[[3, 77, len(index) - 5], [1, 4, 2]] = np.nan
    if collinear:
        f["growth"] = f["value"]  # perfectly collinear pair
        f["quality"] = 2.0 * f["momentum"] - f["size"]  # exact linear combination
    if constant:
        f["size"] = 0.0004
    return f


def check_ridge(returns, factors, days, skip_syms=("FLAT",)):
    res, skipped = rolling_ridge(returns, factors, days)
    assert list(res.columns) == RIDGE_RESULT_COLUMNS
    assert list(skipped.columns) == SKIPPED_COLUMNS
    assert np.isfinite(res[["beta", "raw_beta", "r_squared"]].to_numpy()).all()
    checked = 0
    for day in days:
        for sym in returns.columns:
            if sym in skip_syms:
                continue
            exp = oracle_ridge(returns[sym], factors, day)
            got = res[(res.date == day) & (res.symbol == sym)]
            if exp is None:
                assert got.empty
                assert skipped[(skipped.date == day) & (skipped.symbol == sym)].reason.iloc[0].startswith(
                    "insufficient_history"
                )
                continue
            assert got.factor.tolist() == list(factors.columns)
            np.testing.assert_allclose(got.raw_beta, exp["raw_beta"], rtol=0, atol=ATOL)
            np.testing.assert_allclose(got.beta, np.clip(exp["raw_beta"], -5, 5), rtol=0, atol=ATOL)
            assert (got.capped == (np.abs(exp["raw_beta"]) > 5)).all()
            np.testing.assert_allclose(got.r_squared, exp["r_squared"], rtol=0, atol=ATOL)
            assert (got.observations == exp["observations"]).all()
            assert (got.ridge_penalty == 1.0).all()
            checked += 1
    return res, skipped, checked


def test_rolling_ridge_matches_sklearn(data):
    returns, _, _ = data
    factors = make_factors(returns.index)
    _, _, checked = check_ridge(returns, factors, last_days(returns.index))
    assert checked >= 30


def test_ridge_perfectly_collinear_regressors_are_defined(data):
    returns, _, _ = data
    factors = make_factors(returns.index, collinear=True)
    res, _, checked = check_ridge(returns, factors, returns.index[-1:])
    assert checked >= 10
    # identical columns share the exposure equally
    row = res[res.symbol == "BIG"].set_index("factor").raw_beta
    assert row["value"] == pytest.approx(row["growth"], abs=1e-12)


def test_ridge_zero_variance_regressor_gives_zero_beta(data):
    returns, _, _ = data
    factors = make_factors(returns.index, constant=True)
    res, _, checked = check_ridge(returns, factors, returns.index[-1:])
    assert checked >= 10
    assert (res.loc[res.factor == "size", "raw_beta"] == 0.0).all()
    # the other factors equal the ridge fitted without that column
    without = factors.drop(columns="size")
    exp = oracle_ridge(returns["S2"], without, returns.index[-1])
    got = res[(res.symbol == "S2") & (res.factor != "size")].raw_beta.to_numpy()
    np.testing.assert_allclose(got, exp["raw_beta"], rtol=0, atol=ATOL)


def test_ridge_constant_price_and_short_history(data):
    returns, _, _ = data
    factors = make_factors(returns.index)
    days = last_days(returns.index)
    res, skipped = rolling_ridge(returns, factors, days)
    flat = res[(res.symbol == "FLAT") & (res.date == days[-1])]
    assert len(flat) == 6 and (flat.beta == 0.0).all() and (flat.r_squared == 0.0).all()
    short = res[res.symbol == "SHORT"]
    n = [
        oracle_window(pd.concat([returns["SHORT"], factors], axis=1), d, 90).dropna().shape[0]
        for d in days
    ]
    # factor gaps do not fall in the last rows except T-5, so counts straddle the minimum
    expected_ok = [d for d, k in zip(days, n) if k >= 30]
    assert sorted(set(short.date)) == expected_ok
    for d, k in zip(days, n):
        if k < 30:
            reason = skipped[(skipped.symbol == "SHORT") & (skipped.date == d)].reason.iloc[0]
            assert reason == f"insufficient_history: {k} < 30 observations"


def test_ridge_block_direct_closed_form():
    """beta = (Xc'Xc + alpha diag(sigma^2))^-1 Xc'yc on a tiny exact example."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 2))
    y = x @ np.array([0.5, -1.0]) + rng.normal(0, 0.1, 12)
    xc, yc = x - x.mean(0), y - y.mean()
    sigma2 = xc.var(axis=0)
    expected = np.linalg.solve(xc.T @ xc + 2.0 * np.diag(sigma2), xc.T @ yc)
    block = ridge_block(y[:, None], x, alpha=2.0, min_obs=5)
    np.testing.assert_allclose(block.raw_beta[0], expected, rtol=0, atol=1e-13)


# ----------------------------------------------------------------------------------------------
# Batch independence
# ----------------------------------------------------------------------------------------------


def test_results_do_not_depend_on_other_symbols(data):
    returns, spy, _ = data
    rng = np.random.default_rng(99)
    others = pd.DataFrame(
        rng.normal(0, 0.02, (T, 400)), index=returns.index, columns=[f"X{i}" for i in range(400)]
    )
    others = others.mask(rng.random(others.shape) < 0.3)
    big = pd.concat([others.iloc[:, :200], returns, others.iloc[:, 200:]], axis=1)
    factors = make_factors(returns.index)
    days = last_days(returns.index)
    for sym in ["S1", "S3", "SHORT", "FLAT"]:
        alone_ols, _ = rolling_ols(returns[[sym]], spy, days)
        inside_ols, _ = rolling_ols(big, spy, days)
        inside_ols = inside_ols[inside_ols.symbol == sym].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone_ols, inside_ols, check_exact=False, rtol=1e-12, atol=1e-12)

        alone_r, _ = rolling_ridge(returns[[sym]], factors, days)
        inside_r, _ = rolling_ridge(big, factors, days)
        inside_r = inside_r[inside_r.symbol == sym].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone_r, inside_r, check_exact=False, rtol=1e-12, atol=1e-12)


def test_regressor_constant_only_on_a_symbols_rows(data):
    """SHORT only has returns on the last 33 rows; make the regressor flat exactly there."""
    returns, spy, _ = data
    x = spy.copy()
    # 0.0013 is chosen so that the fast S(u^2) - n d^2 form leaves noise above the constancy
    # threshold: only the exact two-pass recomputation classifies it correctly.
    x.iloc[-40:] = 0.0013
    day = returns.index[-1]
    res, skipped = rolling_ols(returns, x, [day])
    assert skipped.set_index("symbol").reason["SHORT"].startswith("constant_regressor: ")
    assert "S1" in res.symbol.tolist()  # full-history symbols still see variance
    exp = oracle_ols(returns["S1"], x, day)
    got = res.set_index("symbol").loc["S1"]
    assert got.raw_beta == pytest.approx(exp["raw_beta"], abs=ATOL)
    assert got.std_error == pytest.approx(exp["std_error"], abs=ATOL)

    factors = make_factors(returns.index)
    factors.iloc[-40:, 4] = 0.0013  # "size" flat on SHORT's rows only
    res_r, _ = rolling_ridge(returns, factors, [day])
    short = res_r[res_r.symbol == "SHORT"].set_index("factor")
    assert short.loc["size", "raw_beta"] == 0.0
    exp_r = oracle_ridge(returns["SHORT"], factors, day)
    np.testing.assert_allclose(short.raw_beta, exp_r["raw_beta"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(short.r_squared, exp_r["r_squared"], rtol=0, atol=ATOL)
    s1 = res_r[res_r.symbol == "S1"].raw_beta.to_numpy()
    np.testing.assert_allclose(s1, oracle_ridge(returns["S1"], factors, day)["raw_beta"], rtol=0, atol=ATOL)


def test_near_perfect_fit_keeps_std_error_accuracy(data):
    """An index fund against SPY: r^2 ~ 0.9999, where SSR by difference would lose digits."""
    returns, spy, _ = data
    rng = np.random.default_rng(5)
    twin = pd.DataFrame({"TWIN": 1.02 * spy + rng.normal(0, 1e-7, T)}, index=returns.index)
    day = returns.index[-1]
    res, _ = rolling_ols(twin, spy, [day])
    exp = oracle_ols(twin["TWIN"], spy, day)
    row = res.iloc[0]
    assert row.r_squared > 1 - 1e-9
    assert row.std_error == pytest.approx(exp["std_error"], rel=1e-9, abs=0)
    assert row.r_squared == pytest.approx(exp["r_squared"], abs=1e-12)


def test_constant_nonzero_return_is_zero_beta():
    """A series accruing exactly the same return every day: beta 0, r^2 0 (not float noise)."""
    rng = np.random.default_rng(8)
    idx = pd.bdate_range("2024-01-02", periods=T)
    returns = pd.DataFrame({"ACCRUE": np.full(T, 1e-4 / 3)}, index=idx)
    spy = pd.Series(rng.normal(0, 0.01, T), index=idx)
    res, skipped = rolling_ols(returns, spy, idx[-1:], window=50)
    assert skipped.empty
    row = res.iloc[0]
    assert (row.raw_beta, row.r_squared, row.std_error, row.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert row.intercept == pytest.approx(1e-4 / 3, abs=1e-18)
    factors = make_factors(idx)
    res_r, _ = rolling_ridge(returns, factors, idx[-1:], window=50)
    assert (res_r.raw_beta == 0.0).all() and (res_r.r_squared == 0.0).all()


def test_ols_block_without_inference_and_with_several_regressors(data):
    returns, spy, tlt = data
    y = returns.to_numpy()[-90:]
    x = np.column_stack([spy.to_numpy()[-90:], tlt.to_numpy()[-90:]])
    both = ols_block(y, x, 30)
    lean = ols_block(y, x, 30, inference=False)
    single = ols_block(y, x[:, 1], 30)
    assert both.raw_beta.shape == (returns.shape[1], 2)
    np.testing.assert_array_equal(lean.raw_beta, both.raw_beta)
    np.testing.assert_array_equal(lean.r_squared, both.r_squared)
    assert np.isnan(lean.p_value).all() and np.isnan(lean.std_error).all()
    # SPY and TLT have different gaps, so they are solved as two groups; TLT alone must agree
    np.testing.assert_allclose(both.raw_beta[:, 1], single.raw_beta, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(both.observations[:, 1], single.observations)
