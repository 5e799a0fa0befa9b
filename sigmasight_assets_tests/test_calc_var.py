"""VaR / ES and the VaR backtest against direct numpy / scipy computations (DESIGN §5)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from sigmasight_assets.calc.factor_model import FACTOR_NAMES
from sigmasight_assets.calc.risk import covered_book, ex_ante_risk
from sigmasight_assets.calc.var import (
    BACKTEST_COLUMNS,
    HYPOTHETICAL_PNL_COLUMNS,
    VAR_COLUMNS,
    backtest_statistics,
    empirical_var_es,
    exception_flags,
    historical_pnl,
    hypothetical_pnl,
    parametric_var_es,
    traffic_light,
    value_at_risk,
    var_backtest,
)

SESSIONS = pd.bdate_range("2023-01-02", periods=300)


# ---------------------------------------------------------------------------------------------
# parametric and empirical VaR / ES


@pytest.mark.parametrize("alpha", [0.95, 0.99])
def test_parametric_var_es_equal_the_normal_quantile_and_tail_integral(alpha):
    sigma = np.array([1_000.0, 0.0, np.nan, 37.5])
    var, es = parametric_var_es(sigma, alpha)
    z = stats.norm.ppf(alpha)
    # ES = E[loss | loss ≥ VaR] by numerical integration of the normal tail
    tail = integrate.quad(lambda u: u * stats.norm.pdf(u), z, np.inf)[0] / (1 - alpha)
    assert var[0] == pytest.approx(z * 1_000, rel=1e-14) and es[0] == pytest.approx(tail * 1_000, rel=1e-9)
    assert var[1] == 0.0 and np.isnan(var[2]) and np.isnan(es[2])
    assert es[3] > var[3]
    with pytest.raises(ValueError, match="confidence"):
        parametric_var_es(sigma, 99)


def oracle_var_es(row, alpha, min_obs=1):
    v = row[np.isfinite(row)]
    if len(v) < min_obs or len(v) == 0:
        return np.nan, np.nan, len(v)
    q = np.quantile(v, 1 - alpha)
    return -q, -v[v <= q].mean(), len(v)


@pytest.mark.parametrize("alpha", [0.95, 0.99])
def test_empirical_var_es_equal_numpy_quantile_and_tail_mean(alpha):
    rng = np.random.default_rng(0)
    pnl = rng.standard_t(4, size=(40, 250)) * 1_000
    pnl[5, rng.choice(250, 60, replace=False)] = np.nan  # holes
    pnl[6] = np.round(pnl[6] / 500) * 500  # many ties
    pnl[7, 1:] = np.nan  # a single day
    pnl[8] = np.nan  # nothing
    pnl[9, :3] = -5_000.0  # equal worst days
    var, es, n = empirical_var_es(pnl, alpha)
    worst = 0.0
    for i, row in enumerate(pnl):
        v, e, k = oracle_var_es(row, alpha)
        assert n[i] == k
        if k == 0:
            assert np.isnan(var[i]) and np.isnan(es[i])
            continue
        worst = max(worst, abs(var[i] - v), abs(es[i] - e))
        assert es[i] >= var[i] - 1e-9
    print(f"alpha={alpha}: max |Δ| vs numpy quantile / tail mean {worst:.2e}")
    assert worst < 1e-10
    var_m, _, _ = empirical_var_es(pnl, alpha, min_obs=200)
    assert np.isnan(var_m[5]) and np.isfinite(var_m[0])  # 190 days < 200


# ---------------------------------------------------------------------------------------------
# historical simulation


def book_and_market(seed=1, n_port=15):
    rng = np.random.default_rng(seed)
    day = SESSIONS[-2]
    symbols = [f"S{i}" for i in range(12)]
    rets = pd.DataFrame(rng.normal(0, 0.015, (len(SESSIONS), len(symbols))), index=SESSIONS, columns=symbols)
    rets.iloc[:200, 3] = np.nan  # listed late: proxied before
    rets.iloc[rng.choice(len(SESSIONS), 30, replace=False), 4] = np.nan  # holes
    rets = rets.drop(columns="S5")  # no return column at all: proxied every day
    f = pd.DataFrame(rng.normal(0, 0.01, (len(SESSIONS), 8)), index=SESSIONS, columns=list(FACTOR_NAMES))
    f.iloc[100, 2] = np.nan  # a factor gap: a day S3/S5 holders cannot price
    model = pd.DataFrame([(day, s, fac, rng.normal(0.3, 0.5), 1e-4) for s in symbols for fac in FACTOR_NAMES],
                         columns=["date", "symbol", "factor", "beta", "specific_variance"])
    rows = []
    for p in range(n_port):
        for j, s in enumerate(rng.choice(symbols, rng.integers(1, 6), replace=False)):
            rows.append((day, f"P{p}", f"P{p}-{j}", s, "PUBLIC", float(rng.normal(0, 50_000)), True))
    rows.append((day, "P0", "P0-dup", rows[0][3], "PUBLIC", 7_000.0, True))  # two lots of one symbol
    pv = pd.DataFrame(rows, columns=["date", "portfolio_id", "position_id", "symbol", "investment_class",
                                     "market_value", "is_priced"])
    snaps = pd.DataFrame({"date": day, "portfolio_id": [f"P{p}" for p in range(n_port)] + ["CASH"],
                          "equity": 1_000_000.0})
    return covered_book(pv, model, snaps), rets, f, day, model


def test_historical_pnl_equals_a_per_position_loop():
    book, rets, f, day, model = book_and_market()
    pnl, groups, proxied, sessions = historical_pnl(book, rets, f, day, window=250)
    assert len(sessions) == 250 and sessions[-1] == day
    wide = model.pivot(index="symbol", columns="factor", values="beta")[list(FACTOR_NAMES)]
    worst = 0.0
    for gi, g in enumerate(groups):
        rows = np.flatnonzero(book.group == g)
        want = np.zeros(250)
        n_proxy = 0
        for i in rows:
            s, w = book.positions.symbol[i], book.w[i]
            for t, d in enumerate(sessions):
                r = rets.at[d, s] if s in rets.columns else np.nan
                if not np.isfinite(r):
                    r = float(wide.loc[s].to_numpy() @ f.loc[d].to_numpy())
                    n_proxy += int(np.isfinite(r))
                want[t] += w * r
        if rows.size == 0:
            assert np.isnan(pnl[gi]).all()  # CASH: nothing held
            continue
        both = np.isfinite(want)
        assert (np.isfinite(pnl[gi]) == both).all()
        worst = max(worst, np.abs(pnl[gi][both] - want[both]).max())
        assert proxied[gi] == n_proxy
    print("historical P&L max |Δ| vs loop:", worst)
    assert worst < 1e-9  # USD, positions of ~50,000


def test_value_at_risk_frame_and_quantile_rule():
    book, rets, f, day, model = book_and_market(seed=2)
    cov = pd.DataFrame([(day, a, b, 1e-4 if a == b else 0.0) for a in ("SPY", "TLT", "VTV", "VUG", "MTUM", "QUAL",
                                                                    "IWM", "USMV")
                        for b in ("SPY", "TLT", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV")],
                       columns=["date", "factor_1", "factor_2", "covariance"])
    risk, _ = ex_ante_risk(book, cov)
    out = value_at_risk(book, risk["volatility_daily"], rets, f)
    assert list(out.columns) == VAR_COLUMNS and len(out) == len(book.keys)
    pnl, groups, proxied, _ = historical_pnl(book, rets, f, day)
    r = out.set_index("portfolio_id")
    for gi, g in enumerate(groups):
        pid = book.keys.portfolio_id[g]
        v = pnl[gi][np.isfinite(pnl[gi])]
        if len(v) == 0:
            assert np.isnan(r.loc[pid, "var_99_historical"]) and np.isnan(r.loc[pid, "var_99_parametric"])
            continue
        q = np.quantile(v, 0.01)
        assert r.loc[pid, "var_99_historical"] == pytest.approx(-q, abs=1e-9)
        assert r.loc[pid, "es_99_historical"] == pytest.approx(-v[v <= q].mean(), abs=1e-9)
        assert r.loc[pid, "var_95_historical"] == pytest.approx(-np.quantile(v, 0.05), abs=1e-9)
        assert r.loc[pid, "hist_observations"] == len(v) and r.loc[pid, "hist_proxied_returns"] == proxied[gi]
        sigma = risk.set_index("portfolio_id").loc[pid, "volatility_daily"]
        assert r.loc[pid, "var_99_parametric"] == pytest.approx(stats.norm.ppf(0.99) * sigma, rel=1e-14)
        assert r.loc[pid, "var_99_parametric_pct_equity"] == pytest.approx(r.loc[pid, "var_99_parametric"] / 1e6)
    # fewer than 200 days in the window: no historical VaR
    short = value_at_risk(book, risk["volatility_daily"], rets.iloc[-150:], f)
    assert short["var_99_historical"].isna().all() and short["var_99_parametric"].notna().sum() > 0
    with pytest.raises(ValueError, match="one value per portfolio-day"):
        value_at_risk(book, risk["volatility_daily"].iloc[:-1], rets, f)


# ---------------------------------------------------------------------------------------------
# hypothetical P&L


def test_hypothetical_pnl_is_yesterdays_holdings_times_todays_returns():
    d0, d1 = SESSIONS[10], SESSIONS[11]
    model = pd.DataFrame([(d0, s, fac, 1.0, 1e-4) for s in ("AAA", "BBB", "CCC") for fac in FACTOR_NAMES],
                         columns=["date", "symbol", "factor", "beta", "specific_variance"])
    pv = pd.DataFrame([
        (d0, "P1", "a", "AAA", "PUBLIC", 10_000.0, True),
        (d0, "P1", "b", "BBB", "PUBLIC", -4_000.0, True),
        (d0, "P2", "c", "CCC", "PUBLIC", 5_000.0, True),  # no return on d1
        (d0, "P2", "a", "AAA", "PUBLIC", 1_000.0, True),
    ], columns=["date", "portfolio_id", "position_id", "symbol", "investment_class", "market_value", "is_priced"])
    snaps = pd.DataFrame({"date": d0, "portfolio_id": ["P1", "P2", "P3"], "equity": 1.0})
    rets = pd.DataFrame({"AAA": 0.0, "BBB": 0.0, "CCC": 0.0}, index=SESSIONS[:15])
    rets.loc[d1, ["AAA", "BBB", "CCC"]] = [0.02, -0.05, np.nan]
    rets.loc[d0, "AAA"] = 0.5  # D−1's own return is not part of D's P&L
    out = hypothetical_pnl(covered_book(pv, model, snaps), rets)
    assert list(out.columns) == HYPOTHETICAL_PNL_COLUMNS
    o = out.set_index("portfolio_id")
    assert (o["date"] == d1).all() and (o["holdings_date"] == d0).all()
    assert o.loc["P1", "hypothetical_pnl"] == pytest.approx(10_000 * 0.02 + -4_000 * -0.05)
    assert math.isnan(o.loc["P2", "hypothetical_pnl"]) and o.loc["P2", "positions_missing_return"] == 1
    assert math.isnan(o.loc["P3", "hypothetical_pnl"]) and o.loc["P3", "positions_missing_return"] == 0
    with pytest.raises(ValueError, match="no session after"):
        hypothetical_pnl(covered_book(pv, model, snaps), rets.loc[:d0])
    # with the factor returns, CCC's missing return is its proxy L · f_D1 (loadings all 1) and counted
    f = pd.DataFrame(0.001, index=SESSIONS[:15], columns=list(FACTOR_NAMES))
    f.loc[d1] = np.arange(1, 9) * 1e-3
    o = hypothetical_pnl(covered_book(pv, model, snaps), rets, f).set_index("portfolio_id")
    assert o.loc["P2", "hypothetical_pnl"] == pytest.approx(5_000 * 0.036 + 1_000 * 0.02, rel=1e-12)
    assert o.loc["P2", "positions_proxied_return"] == 1 and o.loc["P2", "positions_missing_return"] == 0
    assert o.loc["P1", "positions_proxied_return"] == 0
    f.loc[d1, "market"] = np.nan  # no factor return either: still missing, never 0
    o = hypothetical_pnl(covered_book(pv, model, snaps), rets, f).set_index("portfolio_id")
    assert math.isnan(o.loc["P2", "hypothetical_pnl"]) and o.loc["P2", "positions_missing_return"] == 1


# ---------------------------------------------------------------------------------------------
# backtest statistics


def oracle_kupiec(seq, p=0.01):
    v = np.array([s for s in seq if s is not None], dtype=float)
    n, x = len(v), int(v.sum())
    if n == 0:
        return np.nan, np.nan
    # LR = −2 ln [L(p) / L(x/n)]; the binomial coefficient cancels
    lr = -2 * (stats.binom.logpmf(x, n, p) - stats.binom.logpmf(x, n, x / n))
    return lr, stats.chi2.sf(lr, 1)


def oracle_christoffersen(seq):
    counts = {(0, 0): 0, (0, 1): 0, (1, 0): 0, (1, 1): 0}
    for a, b in zip(seq[:-1], seq[1:]):
        if a is not None and b is not None:
            counts[(int(a), int(b))] += 1
    n00, n01, n10, n11 = counts[(0, 0)], counts[(0, 1)], counts[(1, 0)], counts[(1, 1)]
    total = n00 + n01 + n10 + n11
    if total == 0:
        return np.nan, np.nan

    def ll(k0, k1, prob):  # Bernoulli log-likelihood of k0 zeros and k1 ones, 0 ln 0 = 0
        return (k0 * math.log(1 - prob) if k0 else 0.0) + (k1 * math.log(prob) if k1 else 0.0)

    pi = (n01 + n11) / total
    pi0 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi1 = n11 / (n10 + n11) if n10 + n11 else 0.0
    lr = -2 * (ll(n00 + n10, n01 + n11, pi) - ll(n00, n01, pi0) - ll(n10, n11, pi1))
    return lr, stats.chi2.sf(lr, 1)


def seq_cases():
    rng = np.random.default_rng(3)
    scattered = [0] * 250
    for i in (20, 90, 160):
        scattered[i] = 1
    clustered = [0] * 250
    for i in (100, 101, 102, 103, 150, 151):
        clustered[i] = 1
    gappy = [None if i % 17 == 0 else int(rng.random() < 0.03) for i in range(250)]
    return {
        "none": [0] * 250,
        "all": [1] * 250,
        "scattered": scattered,
        "clustered": clustered,
        "gappy": gappy,
        "short": [0, 1, 0, 0, 1, 1, 0] + [None] * 243,
        "nothing": [None] * 250,
        "one_obs": [None] * 249 + [1],
    }


def test_kupiec_and_christoffersen_equal_direct_scipy_computations():
    cases = seq_cases()
    names = list(cases)
    mat = np.array([[np.nan if v is None else v for v in cases[k]] for k in names], dtype=float)
    st = backtest_statistics(mat, window=250)
    worst = 0.0
    for i, k in enumerate(names):
        seq = cases[k]
        lr, pv = oracle_kupiec(seq)
        lri, pvi = oracle_christoffersen(seq)
        got = [st["kupiec_lr"][i, -1], st["kupiec_p_value"][i, -1], st["christoffersen_lr"][i, -1],
               st["christoffersen_p_value"][i, -1]]
        for g, w in zip(got, [lr, pv, lri, pvi]):
            if np.isnan(w):
                assert np.isnan(g), k
            else:
                worst = max(worst, abs(g - w))
        assert st["observations"][i, -1] == sum(v is not None for v in seq)
        assert st["exceptions"][i, -1] == sum(v == 1 for v in seq)
    print("max |Δ| vs scipy:", worst)
    assert worst < 1e-10
    by = dict(zip(names, range(len(names))))
    # edge cases are finite, never NaN surprises
    assert st["kupiec_lr"][by["none"], -1] == pytest.approx(-2 * 250 * math.log(0.99))
    assert st["christoffersen_lr"][by["none"], -1] == 0.0 and st["christoffersen_lr"][by["all"], -1] == 0.0
    assert st["kupiec_lr"][by["all"], -1] == pytest.approx(-2 * 250 * math.log(0.01))
    assert np.isnan(st["kupiec_lr"][by["nothing"], -1]) and np.isnan(st["christoffersen_lr"][by["one_obs"], -1])
    assert st["christoffersen_lr"][by["clustered"], -1] > 10  # clustering is detected


def test_trailing_window_statistics_at_every_column_equal_a_recomputation():
    rng = np.random.default_rng(4)
    e = (rng.random((3, 400)) < 0.03).astype(float)
    e[1, rng.choice(400, 80, replace=False)] = np.nan
    st = backtest_statistics(e, window=250)
    for i in range(3):
        for t in (0, 1, 120, 249, 250, 333, 399):
            seq = [None if np.isnan(v) else int(v) for v in e[i, max(0, t - 249): t + 1]]
            lr, _ = oracle_kupiec(seq)
            lri, _ = oracle_christoffersen(seq)
            assert st["kupiec_lr"][i, t] == pytest.approx(lr, abs=1e-10, nan_ok=True)
            assert st["christoffersen_lr"][i, t] == pytest.approx(lri, abs=1e-10, nan_ok=True)
            assert st["exceptions"][i, t] == sum(v == 1 for v in seq)


def test_traffic_light_boundaries():
    x = np.array([0, 4, 5, 9, 10, 30, 3, 10])
    n = np.array([250, 250, 250, 250, 250, 250, 120, 120])
    assert traffic_light(x, n).tolist() == ["green", "green", "yellow", "yellow", "red", "red", None, "red"]


def test_exception_is_a_loss_strictly_beyond_the_previous_var():
    var = np.array([100.0, 100.0, 100.0, np.nan, 100.0])
    pnl = np.array([-100.0, -100.01, 50.0, -500.0, np.nan])
    assert exception_flags(var, pnl)[:3].tolist() == [0.0, 1.0, 0.0]
    assert np.isnan(exception_flags(var, pnl)[3:]).all()


def test_simulated_backtest_correct_model_is_green_and_under_scaled_sigma_turns_red():
    """Normal P&L with a known σ: VaR 99 = z σ gives ~1 % exceptions; half the σ gives ~12 %."""
    rng = np.random.default_rng(5)
    n_port, n_days = 200, 251
    sigma = rng.uniform(1_000, 50_000, n_port)
    pnl = rng.normal(0, 1, (n_port, n_days)) * sigma[:, None]
    var_ok = parametric_var_es(sigma, 0.99)[0][:, None] * np.ones((1, n_days))
    good = backtest_statistics(exception_flags(var_ok[:, :-1], pnl[:, 1:]))
    bad = backtest_statistics(exception_flags(0.5 * var_ok[:, :-1], pnl[:, 1:]))
    rate = good["exceptions"][:, -1].sum() / good["observations"][:, -1].sum()
    lights = pd.Series(good["traffic_light"][:, -1]).value_counts()
    print(f"correct model: exception rate {rate:.4f}, lights {lights.to_dict()}; "
          f"σ×0.5: rate {bad['exceptions'][:, -1].sum() / (n_port * 250):.4f}, "
          f"lights {pd.Series(bad['traffic_light'][:, -1]).value_counts().to_dict()}")
    assert (good["observations"][:, -1] == 250).all()
    assert 0.006 < rate < 0.014
    assert lights.get("green", 0) >= 0.85 * n_port and lights.get("red", 0) == 0
    assert (bad["traffic_light"][:, -1] == "red").all()
    # a correct model is rarely rejected by Kupiec at 5 %; the under-scaled one always is
    assert (good["kupiec_p_value"][:, -1] < 0.05).mean() < 0.15
    assert (bad["kupiec_p_value"][:, -1] < 1e-6).all()


def test_var_backtest_frame():
    sessions = SESSIONS[:260]
    rows = []
    rng = np.random.default_rng(6)
    for d in sessions[1:]:
        rows.append((d, "A", 1_000.0, float(rng.normal(0, 400))))
        if d != sessions[100]:  # B has no observation that day
            rows.append((d, "B", 500.0, -600.0 if d in sessions[200:212] else 0.0))
    obs = pd.DataFrame(rows, columns=["date", "portfolio_id", "var_99_previous", "hypothetical_pnl"])
    days = sessions[[150, 259]]
    out = var_backtest(obs, sessions, days)
    assert list(out.columns) == BACKTEST_COLUMNS and len(out) == 4
    o = out.set_index(["date", "portfolio_id"])
    b_last = o.loc[(sessions[259], "B")]
    assert b_last.exceptions == 12 and b_last.observations == 249 and b_last.traffic_light == "red"
    assert o.loc[(sessions[150], "B"), "observations"] == 149 and o.loc[(sessions[150], "B"), "traffic_light"] is None
    assert o.loc[(sessions[150], "B"), "exceptions"] == 0 and not o.loc[(sessions[150], "B"), "exception"]
    a_last = o.loc[(sessions[259], "A")]
    assert a_last.observations == 250 and a_last.traffic_light in ("green", "yellow", "red")
    with pytest.raises(ValueError, match="not in sessions"):
        var_backtest(obs, sessions, [pd.Timestamp("2030-01-01")])
    gap = var_backtest(obs, sessions, [sessions[100]])
    assert pd.isna(gap.set_index("portfolio_id").loc["B", "exception"])


def test_backtest_statistics_of_selected_columns_equal_the_full_computation():
    rng = np.random.default_rng(8)
    e = (rng.random((5, 300)) < 0.03).astype(float)
    e[rng.random((5, 300)) < 0.05] = np.nan
    full = backtest_statistics(e, 250)
    cols = np.array([0, 1, 120, 249, 250, 299])
    part = backtest_statistics(e, 250, columns=cols)
    for k, v in full.items():
        np.testing.assert_array_equal(part[k], v[:, cols], err_msg=k)
