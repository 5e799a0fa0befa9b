"""The joint factor model against a per-symbol scikit-learn oracle (DESIGN §5 Factor model).

Oracle: one symbol, one day, its complete cases with all 8 factors, ``StandardScaler`` +
``Ridge(alpha=1)`` with the coefficients mapped back (``coef_ / scale_``); residuals from the
fitted pipeline (intercept included); specific variance ``Σ e² / (n − 9)``; r² from ``score``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sigmasight_assets.calc.covariance import covariance_matrix, ewma_factor_covariance
from sigmasight_assets.calc.factor_model import (
    FACTOR_MODEL_COLUMNS,
    FACTOR_NAMES,
    basis_matrix,
    factor_covariance_in_basis,
    factor_model_wide,
    factor_returns,
    position_loadings,
    rolling_factor_model,
)
from sigmasight_assets.calc.factors import FACTOR_ETFS

ATOL = 1e-10
T = 150
WINDOW, MIN_OBS = 90, 60


def etf_cov() -> np.ndarray:
    vol = np.array([0.011, 0.009, 0.010, 0.012, 0.012, 0.010, 0.013, 0.008])
    corr = np.full((8, 8), 0.8)
    corr[1, :] = corr[:, 1] = -0.4
    np.fill_diagonal(corr, 1.0)
    return corr * np.outer(vol, vol)


def make_data(seed=3, collinear=False):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2024-01-02", periods=T)
    etf = pd.DataFrame(rng.multivariate_normal(np.zeros(8), etf_cov(), size=T), index=idx, columns=list(FACTOR_ETFS))
    if collinear:
        etf["VUG"] = etf["VTV"]  # value_excess == growth_excess: perfectly collinear factors
    etf.iloc[17, 4] = np.nan  # an ETF hole: a session no symbol can use
    f = factor_returns(etf)
    cols = {}
    for j in range(8):
        load = rng.normal(0, 0.6, 8)
        load[0] += 1.0
        cols[f"S{j}"] = f.to_numpy() @ load + rng.normal(0, 0.01, T)
    r = pd.DataFrame(cols, index=idx)
    r.iloc[rng.choice(T, 25, replace=False), 1] = np.nan  # holes
    r.iloc[: T - 70, 2] = np.nan  # listed late: 70 returns, fewer than 60 in early windows
    r.iloc[:, 3] = 0.0015  # constant returns
    r.iloc[40:100, 4] = np.nan  # absent for a stretch
    r["SPY"] = etf["SPY"]
    r["AAA_PRIVATE"] = np.nan  # never priced
    return r, f, etf


def oracle(y: pd.Series, f: pd.DataFrame, day, window=WINDOW, min_obs=MIN_OBS, alpha=1.0):
    pos = y.index.get_loc(day)
    data = pd.concat([y.iloc[max(0, pos - window + 1): pos + 1], f.iloc[max(0, pos - window + 1): pos + 1]], axis=1).dropna()
    if len(data) < min_obs:
        return None
    yv, xv = data.iloc[:, 0].to_numpy(), data.iloc[:, 1:].to_numpy()
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(xv, yv)
    scaler, ridge = pipe.named_steps["standardscaler"], pipe.named_steps["ridge"]
    e = yv - pipe.predict(xv)
    return {
        "beta": ridge.coef_ / scaler.scale_,
        "specific_variance": float(e @ e) / (len(yv) - 9),
        "r_squared": pipe.score(xv, yv),
        "observations": len(yv),
    }


def days_of(r):
    return r.index[[60, 75, 100, 120, T - 1]]


# ---------------------------------------------------------------------------------------------
# basis


def test_basis_matrix_maps_etfs_to_market_rates_and_excess_returns():
    a = basis_matrix()
    r = np.array([0.01, -0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08])
    assert (a @ r).tolist() == pytest.approx([0.01, -0.02, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07])
    assert abs(np.linalg.det(a)) == pytest.approx(1.0)  # invertible: same information as the ETFs
    a[0, 0] = 5.0
    assert basis_matrix()[0, 0] == 1.0  # a fresh array each call


def test_factor_returns_propagate_only_the_missing_inputs():
    idx = pd.bdate_range("2024-01-02", periods=3)
    etf = pd.DataFrame(np.arange(24, dtype=float).reshape(3, 8) / 100, index=idx, columns=list(FACTOR_ETFS))
    etf["XYZ"] = 1.0  # extra columns ignored
    etf.loc[idx[1], "VTV"] = np.nan
    etf.loc[idx[2], "SPY"] = np.nan
    f = factor_returns(etf)
    assert list(f.columns) == list(FACTOR_NAMES)
    assert f.loc[idx[0]].tolist() == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07])
    assert np.isnan(f.loc[idx[1], "value_excess"]) and f.loc[idx[1]].drop("value_excess").notna().all()
    # SPY missing: market and every excess factor missing, rates still known
    assert f.loc[idx[2]].isna().sum() == 7 and f.loc[idx[2], "rates"] == pytest.approx(0.17)
    with pytest.raises(KeyError, match="USMV"):
        factor_returns(etf.drop(columns="USMV"))


def test_factor_covariance_in_basis_is_the_covariance_of_the_factor_returns():
    r, f, etf = make_data()
    etf = etf.dropna()
    direct = np.cov(factor_returns(etf).to_numpy(), rowvar=False)
    mapped = factor_covariance_in_basis(np.cov(etf.to_numpy(), rowvar=False))
    assert np.abs(direct - mapped).max() < 1e-15
    # a labelled (shuffled) frame, e.g. from covariance_matrix, is reordered and relabelled
    long = ewma_factor_covariance(etf, [etf.index[-1]])
    cov = covariance_matrix(long, etf.index[-1])
    shuffled = cov.loc[list(reversed(FACTOR_ETFS)), list(FACTOR_ETFS)[::-1]]
    out = factor_covariance_in_basis(shuffled)
    assert list(out.index) == list(FACTOR_NAMES) and list(out.columns) == list(FACTOR_NAMES)
    a = basis_matrix()
    assert np.abs(out.to_numpy() - a @ cov.to_numpy() @ a.T).max() < 1e-18
    # SPY's variance is the market factor's, and cov(market, rates) = cov(SPY, TLT)
    assert out.loc["market", "market"] == cov.loc["SPY", "SPY"]
    assert out.loc["market", "rates"] == cov.loc["SPY", "TLT"]
    stacked = factor_covariance_in_basis(np.stack([cov.to_numpy()] * 3))
    assert stacked.shape == (3, 8, 8) and np.abs(stacked[2] - out.to_numpy()).max() < 1e-18
    with pytest.raises(KeyError):
        factor_covariance_in_basis(cov.drop(index="IWM", columns="IWM"))


# ---------------------------------------------------------------------------------------------
# rolling model vs oracle


def check_against_oracle(r, f, days, **kw):
    res, skipped = rolling_factor_model(r, f, days, **kw)
    assert list(res.columns) == FACTOR_MODEL_COLUMNS
    wide = factor_model_wide(res)
    skip = {(d, s): why for d, s, why in skipped.itertuples(index=False)}
    diffs = {"beta": 0.0, "specific_variance_rel": 0.0, "r_squared": 0.0}
    computed = 0
    for day in days:
        for sym in r.columns:
            want = oracle(r[sym], f, day, **{k: v for k, v in kw.items() if k in ("window", "min_obs", "alpha")})
            if want is None or sym == "S3":
                assert (day, sym) in skip and (day, sym) not in wide.index
                continue
            assert (day, sym) not in skip
            got = wide.loc[(day, sym)]
            diffs["beta"] = max(diffs["beta"], np.abs(got[list(FACTOR_NAMES)].to_numpy(dtype=float) - want["beta"]).max())
            diffs["specific_variance_rel"] = max(
                diffs["specific_variance_rel"], abs(got.specific_variance / want["specific_variance"] - 1)
            )
            diffs["r_squared"] = max(diffs["r_squared"], abs(got.r_squared - want["r_squared"]))
            assert got.observations == want["observations"]
            computed += 1
    return diffs, computed, res, skipped


@pytest.mark.parametrize("collinear", [False, True])
def test_rolling_factor_model_equals_sklearn_oracle(collinear):
    r, f, _ = make_data(collinear=collinear)
    diffs, computed, res, skipped = check_against_oracle(r, f, days_of(r))
    print(f"collinear={collinear}: max |Δ| {diffs} over {computed} symbol-days")
    assert computed >= 25
    assert diffs["beta"] < ATOL and diffs["r_squared"] < ATOL and diffs["specific_variance_rel"] < ATOL
    if collinear:
        # the penalty splits the shared exposure equally between the identical factors
        w = factor_model_wide(res)
        assert np.allclose(w["value_excess"], w["growth_excess"], atol=1e-12)


def test_window_and_penalty_parameters_follow_the_oracle():
    r, f, _ = make_data(seed=5)
    diffs, computed, _, _ = check_against_oracle(r, f, r.index[[130, T - 1]], window=120, min_obs=40, alpha=3.0)
    assert computed >= 10 and max(diffs.values()) < ATOL


def test_skip_reasons_and_counts():
    r, f, _ = make_data()
    day = r.index[75]
    res, skipped = rolling_factor_model(r, f, [day])
    why = dict(zip(skipped["symbol"], skipped["reason"]))
    assert why["S2"].startswith("insufficient_history: ") and "< 60" in why["S2"]  # listed late
    assert why["S3"] == "constant_returns: return did not vary over 75 observations"  # 76 sessions, one ETF hole
    assert why["AAA_PRIVATE"] == "insufficient_history: 0 < 60 observations"
    assert why["S4"].startswith("insufficient_history: ")  # absent for a stretch
    # every (day, symbol) is either a result (8 rows) or a skip
    n_result = res["symbol"].nunique()
    assert n_result + len(skipped) == r.shape[1]
    assert (res.groupby("symbol").size() == 8).all()
    assert list(res["factor"].iloc[:8]) == list(FACTOR_NAMES)


def test_a_symbols_result_does_not_depend_on_the_other_symbols():
    r, f, _ = make_data()
    days = days_of(r)
    full, _ = rolling_factor_model(r, f, days)
    alone, _ = rolling_factor_model(r[["S1"]], f, days)
    part = full[full["symbol"] == "S1"].reset_index(drop=True)
    num = ["beta", "specific_variance", "r_squared"]
    assert np.abs(part[num].to_numpy() - alone[num].to_numpy()).max() < 1e-12
    assert part["observations"].tolist() == alone["observations"].tolist()


def test_spy_on_its_own_basis_has_unit_market_loading_up_to_the_ridge_shrinkage():
    r, f, _ = make_data()
    day = r.index[-1]
    res, _ = rolling_factor_model(r[["SPY"]], f, [day])
    w = factor_model_wide(res).loc[(day, "SPY")]
    load = w[list(FACTOR_NAMES)].to_numpy(dtype=float)
    # SPY is exactly f_market, so OLS would give (1, 0, …, 0) and no residual. The penalty
    # α·σ² against XcᵀXc = n·σ² shrinks by about α/n (1/89 here), and the shrunk part is
    # partly picked up by the correlated excess factors: allow 3/n on every loading.
    n = w.observations
    tol = 3.0 / n
    print("SPY loadings", np.round(load, 5), "specific variance", w.specific_variance)
    assert abs(load[0] - 1.0) < tol and np.abs(load[1:]).max() < tol
    assert load[0] < 1.0  # ridge shrinks, it does not inflate
    # the residual is the shrunk part, of order (α/n)² of SPY's variance
    assert w.specific_variance < (tol ** 2) * r["SPY"].iloc[-90:].var()
    assert w.r_squared > 0.999


def test_parameter_validation():
    r, f, _ = make_data()
    with pytest.raises(ValueError, match="min_obs"):
        rolling_factor_model(r, f, [r.index[-1]], min_obs=9)
    with pytest.raises(ValueError, match="factors_wide"):
        rolling_factor_model(r, f.drop(columns="rates"), [r.index[-1]])
    with pytest.raises(ValueError, match="alpha"):
        rolling_factor_model(r, f, [r.index[-1]], alpha=0.0)
    with pytest.raises(ValueError, match="not present"):
        rolling_factor_model(r, f, [pd.Timestamp("2030-01-01")])


def test_position_loadings_attach_by_date_and_symbol_and_never_partly():
    r, f, _ = make_data()
    days = r.index[[100, 120]]
    res, _ = rolling_factor_model(r, f, days)
    res = res[~((res["symbol"] == "S5") & (res["factor"] == "rates"))]  # S5 incomplete: unusable
    pv = pd.DataFrame({"date": [days[0], days[1], days[1], days[1], days[1]],
                       "symbol": ["S0", "S0", "S3", "S5", "ZZZ"]})
    load, spec = position_loadings(pv, res)
    wide = factor_model_wide(res)
    assert load[0].tolist() == wide.loc[(days[0], "S0"), list(FACTOR_NAMES)].tolist()
    assert load[1].tolist() == wide.loc[(days[1], "S0"), list(FACTOR_NAMES)].tolist()
    assert spec[1] == wide.loc[(days[1], "S0"), "specific_variance"]
    assert np.isnan(load[2:]).all() and np.isnan(spec[2:]).all()  # skipped, incomplete, unknown
    one_day = res[res["date"] == days[1]].drop(columns="date")
    load1, _ = position_loadings(pv.drop(columns="date"), one_day)
    assert load1[0].tolist() == load[1].tolist()
    with pytest.raises(ValueError, match="duplicate"):
        factor_model_wide(pd.concat([res, res.iloc[:1]]))
