"""Tests of per-portfolio correlations against pandas and hand-computed metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.calc.correlation import (
    CORRELATION_COLUMNS,
    decode_matrix,
    pairwise_correlation,
    portfolio_correlations,
)
from sigmasight_assets.calc.psd import repair_psd


def effective_positions(weights: np.ndarray, corr: np.ndarray) -> float:
    """Reference: ``(Σ w)² / (wᵀ R w)`` for one portfolio, insufficient pairs (NaN) at 0."""
    w = np.abs(np.asarray(weights, dtype=float))
    q = float(w @ np.where(np.isnan(corr), 0.0, corr) @ w)
    return math.nan if q <= 0 else float(w.sum() ** 2 / q)


def test_pairwise_matches_pandas_min_periods():
    rng = np.random.default_rng(5)
    t, k = 90, 12
    base = rng.normal(size=(t, 1))
    x = 0.6 * base + rng.normal(size=(t, k))
    x[rng.random((t, k)) < 0.15] = np.nan
    x[:70, 3] = np.nan  # 20 observations: every pair with column 3 insufficient
    x[:, 4] = 0.01  # constant column: no correlation
    x[45:, 5] = np.nan  # 45 rows …
    x[:50, 6] = np.nan  # … and 40 rows: overlap ≤ 0 → insufficient pair (5, 6)
    got = pairwise_correlation(x, min_overlap=30)
    expect = pd.DataFrame(x).corr(min_periods=30).to_numpy()
    off = ~np.eye(k, dtype=bool)
    np.testing.assert_array_equal(np.isnan(got[off]), np.isnan(expect[off]))
    np.testing.assert_allclose(got[off], expect[off], rtol=0, atol=1e-10, equal_nan=True)
    assert np.isnan(got[3, [0, 1, 2]]).all() and np.isnan(got[4, :]).all() and np.isnan(got[5, 6])


def test_pairwise_complete_fast_path_matches_pandas():
    x = np.random.default_rng(1).normal(size=(90, 6)) + np.arange(6) * 5.0  # offsets: centring matters
    np.testing.assert_allclose(pairwise_correlation(x, 30), pd.DataFrame(x).corr().to_numpy(), atol=1e-12)


def test_pairwise_blocks_give_the_same_matrix(monkeypatch):
    """Blocked products (complete rows of Zᵀ Z and partial-column rows alike) equal one block and pandas."""
    from sigmasight_assets.calc import correlation

    rng = np.random.default_rng(11)
    x = 0.5 * rng.normal(size=(90, 1)) + rng.normal(size=(90, 40))
    x[rng.random((90, 40)) < 0.03] = np.nan  # about 2/3 of the columns partial
    x[:, 7] = 0.2  # a constant complete column
    whole = pairwise_correlation(x, 30)
    monkeypatch.setattr(correlation, "_BLOCK_CELLS", 3 * 40)  # blocks of 3 rows
    blocked = pairwise_correlation(x, 30)
    np.testing.assert_allclose(blocked, whole, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(np.isnan(blocked), np.isnan(whole))
    expect = pd.DataFrame(x).corr(min_periods=30).to_numpy()
    np.testing.assert_allclose(blocked, expect, rtol=0, atol=1e-10)
    assert (np.isfinite(x).all(axis=0)).sum() >= 6 and np.isnan(blocked[7]).all()


def test_psd_repair_of_an_indefinite_matrix():
    bad = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    assert np.linalg.eigvalsh(bad)[0] < 0
    fixed, min_eig, repaired = repair_psd(bad)
    assert repaired and min_eig == pytest.approx(np.linalg.eigvalsh(bad)[0])
    np.testing.assert_allclose(np.diag(fixed), 1.0)
    np.testing.assert_allclose(fixed, fixed.T, atol=1e-15)
    assert np.linalg.eigvalsh(fixed)[0] > -1e-12
    assert np.abs(fixed).max() <= 1 + 1e-12
    ok, min_ok, rep_ok = repair_psd(np.array([[1.0, 0.5], [0.5, 1.0]]))
    assert not rep_ok and min_ok == pytest.approx(0.5)
    np.testing.assert_array_equal(ok, [[1.0, 0.5], [0.5, 1.0]])
    # NaN pairs are treated as 0 for the repair
    with_nan, _, rep_nan = repair_psd(np.array([[1.0, np.nan], [np.nan, 1.0]]))
    assert not rep_nan and with_nan[0, 1] == 0.0


# ---------------------------------------------------------------------------------------------
# portfolio level


SESSIONS = pd.bdate_range("2023-09-01", periods=100)
DAY = SESSIONS[-1]


def returns_frame() -> pd.DataFrame:
    rng = np.random.default_rng(9)
    common = rng.normal(size=(100, 1))
    x = 0.7 * common + rng.normal(size=(100, 5))
    x[:, 4] = -x[:, 0] + 0.3 * rng.normal(size=100)  # strongly anti-correlated with AAA
    df = pd.DataFrame(x * 0.01, index=SESSIONS, columns=["AAA", "BBB", "CCC", "DDD", "EEE"])
    df.loc[SESSIONS[:75], "DDD"] = np.nan  # DDD: only 25 returns in the window
    return df


def pv(rows):
    return pd.DataFrame(
        [
            dict(date=DAY, portfolio_id=p, position_id=f"{p}{i}", symbol=s, investment_class=c,
                 market_value=mv, is_priced=not math.isnan(mv))
            for i, (p, s, c, mv) in enumerate(rows)
        ]
    )


POS = pv(
    [
        ("P1", "AAA", "PUBLIC", 40_000.0),
        ("P1", "BBB", "PUBLIC", -30_000.0),  # shorts count with |MV|
        ("P1", "CCC", "PUBLIC", 10_000.0),
        ("P1", "CCC", "PUBLIC", 5_000.0),  # second lot: netted to 15,000
        ("P1", "DDD", "PUBLIC", 20_000.0),  # insufficient history
        ("P1", "EEE", "PUBLIC", 9_000.0),  # < 10,000 → excluded
        ("P1", "PRIV_X", "PRIVATE", 500_000.0),  # not public, but in gross
        ("P1", "ZZZ", "PUBLIC", float("nan")),  # unpriced
        ("P2", "AAA", "PUBLIC", 5_000_000.0),
        ("P2", "EEE", "PUBLIC", 40_000.0),  # < 1 % of 5.04M → excluded
        ("P3", "AAA", "PUBLIC", 50_000.0),
        ("P3", "EEE", "PUBLIC", 50_000.0),
    ]
)


def run(**kw):
    out = portfolio_correlations(POS, returns_frame(), [DAY], **kw)
    return out.set_index("portfolio_id")


def test_rows_and_filters():
    raw = portfolio_correlations(POS, returns_frame(), [DAY], portfolio_ids=["P4", "P3", "P2", "P1"])
    assert list(raw.columns) == CORRELATION_COLUMNS
    assert list(raw.portfolio_id) == ["P1", "P2", "P3", "P4"] and (raw.date == DAY).all()
    out = raw.set_index("portfolio_id")
    assert json.loads(out.loc["P1", "symbols"]) == ["AAA", "BBB", "CCC", "DDD"]
    assert json.loads(out.loc["P2", "symbols"]) == ["AAA"]
    p4 = out.loc["P4"]  # empty portfolio
    assert p4.n_symbols == 0 and p4.n_pairs == 0 and p4.matrix == "[]"
    assert math.isnan(p4.avg_correlation) and math.isnan(p4.effective_positions_corr)
    p2 = out.loc["P2"]
    assert p2.n_symbols == 1 and p2.effective_positions_corr == 1.0 and math.isnan(p2.avg_correlation)


def test_matrix_matches_pandas_and_insufficient_pairs_are_null():
    out = run()
    p1 = out.loc["P1"]
    window = returns_frame().iloc[-90:]
    expect = window[["AAA", "BBB", "CCC", "DDD"]].corr(min_periods=30)
    got = decode_matrix(p1.symbols, p1.matrix)
    assert not p1.psd_repaired
    off = ~np.eye(4, dtype=bool)  # the stored diagonal is 1 by definition; pandas gives NaN for DDD
    np.testing.assert_allclose(got.to_numpy()[off], expect.to_numpy()[off], atol=1e-6, equal_nan=True)
    assert p1.n_pairs == 6 and p1.n_pairs_insufficient == 3  # every pair with DDD
    assert json.loads(p1.matrix)[2] is None  # (AAA, DDD)


def test_summary_metrics_by_hand():
    out = run()
    p1 = out.loc["P1"]
    window = returns_frame().iloc[-90:]
    r = window[["AAA", "BBB", "CCC"]].corr().round(6).to_numpy()
    w = {"AAA": 40_000, "BBB": 30_000, "CCC": 15_000, "DDD": 20_000}
    pairs = [(0, 1, "AAA", "BBB"), (0, 2, "AAA", "CCC"), (1, 2, "BBB", "CCC")]
    num = sum(w[a] * w[b] * r[i, j] for i, j, a, b in pairs)
    den = sum(w[a] * w[b] for _, _, a, b in pairs)
    assert p1.avg_correlation == pytest.approx(num / den, abs=1e-6)
    full = np.eye(4)
    full[:3, :3] = window[["AAA", "BBB", "CCC"]].corr().to_numpy()  # DDD pairs → 0
    wv = np.array([40_000, 30_000, 15_000, 20_000], dtype=float)
    assert p1.effective_positions_corr == pytest.approx(wv.sum() ** 2 / (wv @ full @ wv), rel=1e-9)
    assert p1.effective_positions_corr == pytest.approx(effective_positions(wv, full), rel=1e-12)
    assert p1.min_eigenvalue == pytest.approx(np.linalg.eigvalsh(full)[0], rel=1e-9)
    p3 = out.loc["P3"]  # AAA and EEE strongly anti-correlated, equal weights
    rho = window[["AAA", "EEE"]].corr().iloc[0, 1]
    assert rho < -0.9
    assert p3.avg_correlation == pytest.approx(rho, abs=1e-6)
    assert p3.effective_positions_corr == pytest.approx(4 / (2 + 2 * rho), rel=1e-9)


def test_union_matrix_does_not_depend_on_other_portfolios():
    alone = portfolio_correlations(POS[POS.portfolio_id == "P3"], returns_frame(), [DAY])
    together = run().loc[["P3"]].reset_index()
    pd.testing.assert_frame_equal(alone.reset_index(drop=True), together[CORRELATION_COLUMNS])


def test_psd_repair_is_recorded_for_pairwise_deletion():
    # Three series whose pairwise-complete correlations cannot all hold at once.
    n = 120
    idx = pd.bdate_range("2023-01-02", periods=n)
    rng = np.random.default_rng(2)
    a = rng.normal(size=n)
    x = np.full((n, 3), np.nan)
    x[:, 0] = a
    x[:60, 1] = a[:60] + 0.1 * rng.normal(size=60)  # B only in the first half, ≈ A
    x[60:, 2] = -a[60:] + 0.1 * rng.normal(size=60)  # C only in the second half, ≈ −A
    lr = pd.DataFrame(x, index=idx, columns=["A", "B", "C"])
    # A–B ≈ +1 (first half), A–C ≈ −1 (second half), B–C: no overlap → 0 in the repair: indefinite
    positions = pd.DataFrame(
        dict(date=idx[-1], portfolio_id="P", position_id=["1", "2", "3"], symbol=["A", "B", "C"],
             investment_class="PUBLIC", market_value=50_000.0, is_priced=True)
    )
    out = portfolio_correlations(positions, lr, [idx[-1]], window=120).iloc[0]
    assert out.psd_repaired and out.min_eigenvalue < 0 and out.n_pairs_insufficient == 1
    m = decode_matrix(out.symbols, out.matrix)
    assert math.isnan(m.loc["B", "C"])  # the repair's invented value is not stored
    raw = lr.corr(min_periods=30)
    assert m.loc["A", "B"] < raw.loc["A", "B"] - 0.05  # repaired values shrunk towards 0
    assert m.loc["A", "C"] > raw.loc["A", "C"] + 0.05
    fixed = m.fillna(0.0).to_numpy()
    fixed_full, _, _ = repair_psd(raw.to_numpy())
    np.testing.assert_allclose(fixed[0], fixed_full[0].round(6), atol=1e-12)


def test_days_must_be_in_the_returns_index():
    with pytest.raises(ValueError, match="not in the log_returns_wide index"):
        portfolio_correlations(POS, returns_frame(), [pd.Timestamp("2030-01-02")])


def test_a_reused_buffer_gives_every_day_the_matrix_of_a_fresh_one():
    """One work area serves a run's days (a larger union after a smaller one, and back): each day's
    rows equal those computed without it, and the union's complete columns, written as one slice
    block, equal pandas on the same window."""
    from sigmasight_assets.calc.correlation import SquareBuffer, union_correlation

    rng = np.random.default_rng(3)
    sessions = pd.bdate_range("2025-01-02", periods=130)
    syms = [f"S{i:02d}" for i in range(30)]
    lr = pd.DataFrame(0.01 * rng.normal(size=(130, 30)) + 0.004 * rng.normal(size=(130, 1)), index=sessions, columns=syms)
    lr.iloc[rng.random((130, 30)) < 0.02] = np.nan  # some columns incomplete: the non-slice path too
    days = sessions[-3:]
    rows = []
    for d, n_syms in zip(days, (12, 30, 5)):  # a small, a large and a small union
        for p in range(8):
            for s in rng.choice(syms[:n_syms], size=4, replace=False):
                rows.append(dict(date=d, portfolio_id=f"P{p}", position_id=f"{d.date()}-{p}-{s}", symbol=s,
                                 investment_class="PUBLIC", market_value=float(rng.uniform(2e4, 9e4)), is_priced=True))
    positions = pd.DataFrame(rows)
    fresh = portfolio_correlations(positions, lr, days)
    reused = portfolio_correlations(positions, lr, days, buffer=SquareBuffer())
    pd.testing.assert_frame_equal(reused, fresh)
    union, m = union_correlation(lr, days[1], syms, buffer=SquareBuffer())
    want = lr.loc[:days[1]].tail(90).corr(min_periods=30).reindex(index=union, columns=union).to_numpy()
    np.testing.assert_allclose(m, want, rtol=0, atol=1e-10)
    assert list(union[: int(lr.loc[:days[1]].tail(90).notna().all().sum())]) == sorted(
        lr.columns[lr.loc[:days[1]].tail(90).notna().all()])  # complete columns first, sorted
