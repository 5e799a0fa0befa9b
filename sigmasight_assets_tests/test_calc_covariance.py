"""EWMA factor covariance: hand-computed values, an independent reference, clipping and PSD."""

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.calc.covariance import (
    COVARIANCE_COLUMNS,
    covariance_matrix,
    ewma_factor_covariance,
)
from sigmasight_assets.calc.factors import FACTOR_ETFS
from sigmasight_assets.calc.psd import repair_psd

ETFS = list(FACTOR_ETFS)


def reference_ewma(returns: pd.DataFrame, day, window=252, lam=0.94):
    """Straightforward per-day implementation: loops over rows, ages counted from ``day``."""
    pos = returns.index.get_loc(day)
    rows, weights = [], []
    for t in range(max(0, pos - window + 1), pos + 1):
        r = returns.iloc[t][ETFS].to_numpy()
        if np.isfinite(r).all():
            rows.append(r)
            weights.append(lam ** (pos - t))
    r = np.array(rows)
    w = np.array(weights) / sum(weights)
    mu = (w[:, None] * r).sum(axis=0)
    cov = np.zeros((8, 8))
    for wt, row in zip(w, r):
        cov += wt * np.outer(row - mu, row - mu)
    sd = np.sqrt(np.diag(cov))
    return cov, cov / np.outer(sd, sd), len(rows)


def tiny_frame(vtv_equals_spy=False):
    idx = pd.bdate_range("2024-03-04", periods=4)
    data = {etf: [np.nan, 0.0, 0.0, 0.0] for etf in ETFS}  # constant returns: zero variance
    data["SPY"] = [0.05, 0.01, -0.01, 0.02]
    data["TLT"] = [np.nan, 0.03, 0.00, 0.01]  # row 0 incomplete -> dropped
    if vtv_equals_spy:
        data["VTV"] = data["SPY"]
    return pd.DataFrame(data, index=idx)


def test_hand_computed_tiny_example():
    frame = tiny_frame()
    out = ewma_factor_covariance(frame, frame.index[-1:], window=4, lam=0.5, min_obs=3)
    assert list(out.columns) == COVARIANCE_COLUMNS
    assert len(out) == 64 and (out.observations == 3).all()
    cov = covariance_matrix(out, frame.index[-1])
    corr = covariance_matrix(out, frame.index[-1], value="correlation")
    # ages 2, 1, 0 -> weights 1/7, 2/7, 4/7; EWMA means SPY 0.01, TLT 0.01
    # SPY deviations 0, -0.02, 0.01; TLT deviations 0.02, -0.01, 0
    assert cov.loc["SPY", "SPY"] == pytest.approx(0.0012 / 7, abs=1e-18)
    assert cov.loc["TLT", "TLT"] == pytest.approx(0.0006 / 7, abs=1e-18)
    assert cov.loc["SPY", "TLT"] == pytest.approx(0.0004 / 7, abs=1e-18)
    assert cov.loc["TLT", "SPY"] == cov.loc["SPY", "TLT"]
    assert corr.loc["SPY", "TLT"] == pytest.approx(np.sqrt(2) / 3, abs=1e-14)
    # zero-variance ETFs: covariance 0, correlation 0 off the diagonal, 1 on it
    assert cov.loc["VTV", "VTV"] == 0.0 and cov.loc["VTV", "SPY"] == 0.0
    assert corr.loc["VTV", "SPY"] == 0.0 and corr.loc["VTV", "VTV"] == 1.0
    assert list(cov.index) == ETFS and list(cov.columns) == ETFS


def test_hand_computed_clipping_keeps_covariance_consistent():
    frame = tiny_frame(vtv_equals_spy=True)
    out = ewma_factor_covariance(frame, frame.index[-1:], window=4, lam=0.5, min_obs=3)
    cov = covariance_matrix(out, frame.index[-1])
    corr = covariance_matrix(out, frame.index[-1], value="correlation")
    assert corr.loc["SPY", "VTV"] == 0.95  # was exactly 1
    assert cov.loc["SPY", "VTV"] == pytest.approx(0.95 * 0.0012 / 7, abs=1e-18)
    assert cov.loc["VTV", "VTV"] == pytest.approx(0.0012 / 7, abs=1e-18)  # variance untouched
    assert corr.loc["SPY", "TLT"] == pytest.approx(np.sqrt(2) / 3, abs=1e-14)


def test_min_obs_and_window_threshold():
    frame = tiny_frame()
    day = frame.index[-1:]
    assert ewma_factor_covariance(frame, day, window=4, lam=0.5, min_obs=4).empty
    # window=2 sees only two complete rows
    assert ewma_factor_covariance(frame, day, window=2, lam=0.5, min_obs=3).empty
    assert len(ewma_factor_covariance(frame, day, window=3, lam=0.5, min_obs=3)) == 64


@pytest.fixture(scope="module")
def random_returns():
    rng = np.random.default_rng(17)
    n = 320
    idx = pd.bdate_range("2023-01-02", periods=n)
    common = rng.normal(0, 0.008, n)
    data = rng.normal(0.0002, 0.01, (n, 8)) + np.outer(common, rng.uniform(0, 1, 8))
    frame = pd.DataFrame(data, index=idx, columns=ETFS)
    frame = frame.mask(rng.random(frame.shape) < 0.03)
    frame["EXTRA"] = 1.0  # ignored
    frame.iloc[0] = np.nan
    return frame


def test_matches_reference_implementation(random_returns):
    days = random_returns.index[[40, 200, 260, -1]]
    out = ewma_factor_covariance(random_returns, days)
    assert out.date.nunique() == 4 and len(out) == 4 * 64
    for day in days:
        cov_ref, corr_ref, n = reference_ewma(random_returns, day)
        assert np.abs(corr_ref - np.eye(8)).max() < 0.95  # no clipping in this data
        cov = covariance_matrix(out, day).to_numpy()
        corr = covariance_matrix(out, day, value="correlation").to_numpy()
        np.testing.assert_allclose(cov, cov_ref, rtol=1e-12, atol=1e-18)
        np.testing.assert_allclose(corr, corr_ref, rtol=0, atol=1e-12)
        assert (out[out.date == day].observations == n).all()
        assert n <= 252


def test_no_look_ahead(random_returns):
    day = random_returns.index[150]
    full = ewma_factor_covariance(random_returns, [day])
    cut = ewma_factor_covariance(random_returns.loc[:day], [day])
    pd.testing.assert_frame_equal(full, cut)


def test_few_observations_give_no_rows(random_returns):
    early = random_returns.index[:40]
    out = ewma_factor_covariance(random_returns, early)
    counts = [np.isfinite(random_returns.loc[:d, ETFS].to_numpy()).all(axis=1).sum() for d in early]
    expected_days = [d for d, c in zip(early, counts) if c >= 30]
    assert sorted(set(out.date)) == expected_days
    assert 0 < len(expected_days) < len(early)


def high_rank2_returns(seed):
    """Two-factor returns with correlations near +-1: clipping at 0.95 breaks PSD."""
    rng = np.random.default_rng(seed)
    n = 120
    loadings = rng.normal(size=(8, 2))
    loadings /= np.linalg.norm(loadings, axis=1, keepdims=True)
    data = rng.normal(0, 0.01, (n, 2)) @ loadings.T + rng.normal(0, 1e-5, (n, 8))
    return pd.DataFrame(data, index=pd.bdate_range("2024-01-01", periods=n), columns=ETFS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psd_symmetry_and_clip_after_repair(seed):
    frame = high_rank2_returns(seed)
    day = frame.index[-1]
    _, corr_ref, _ = reference_ewma(frame, day)
    naive = np.clip(corr_ref, -0.95, 0.95)
    np.fill_diagonal(naive, 1.0)
    assert np.linalg.eigvalsh(naive).min() < -1e-3  # the repair path is really exercised

    out = ewma_factor_covariance(frame, [day])
    cov = covariance_matrix(out, day).to_numpy()
    corr = covariance_matrix(out, day, value="correlation").to_numpy()
    assert np.array_equal(cov, cov.T) and np.array_equal(corr, corr.T)
    assert np.all(np.diag(corr) == 1.0)
    off = corr[~np.eye(8, dtype=bool)]
    assert np.abs(off).max() <= 0.95 + 1e-15
    assert np.linalg.eigvalsh(corr).min() >= -1e-12
    sd = np.sqrt(np.diag(cov))
    assert np.linalg.eigvalsh(cov / np.outer(sd, sd)).min() >= -1e-12
    np.testing.assert_allclose(cov, corr * np.outer(sd, sd), rtol=1e-14, atol=0)
    cov_ref, _, _ = reference_ewma(frame, day)
    np.testing.assert_allclose(np.diag(cov), np.diag(cov_ref), rtol=1e-12)  # variances kept


def test_repair_with_a_bound_keeps_correlations_clipped():
    bad = np.array([[1.0, 0.95, -0.95], [0.95, 1.0, 0.95], [-0.95, 0.95, 1.0]])
    assert np.linalg.eigvalsh(bad).min() < 0
    fixed, min_eig, repaired = repair_psd(bad, psd_tol=1e-12, clip=0.95)
    assert repaired and min_eig < 0
    assert np.linalg.eigvalsh(fixed).min() >= -1e-12
    assert np.allclose(np.diag(fixed), 1.0)
    assert np.abs(fixed - np.eye(3)).max() <= 0.95 + 1e-15
    assert np.allclose(fixed, fixed.T)


def test_covariance_matrix_unknown_day(random_returns):
    out = ewma_factor_covariance(random_returns, random_returns.index[-1:])
    with pytest.raises(KeyError):
        covariance_matrix(out, random_returns.index[5])


def test_missing_factor_column_raises(random_returns):
    with pytest.raises(KeyError, match="USMV"):
        ewma_factor_covariance(random_returns.drop(columns="USMV"), random_returns.index[-1:])
