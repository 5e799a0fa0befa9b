"""Ex-ante risk against a dense per-portfolio numpy oracle (DESIGN §5 Ex-ante risk).

Oracle per portfolio-day: the dense N×N return covariance of its covered positions
``C = L Σ_f Lᵀ + diag(D)`` (Σ_f = A Σ_ETF Aᵀ), σ = √(wᵀ C w), beta and tracking error from the
covariances of the P&L with ``r_SPY = f_market``, Euler contributions from the gradient ``C w / σ``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.calc.factor_model import FACTOR_NAMES, basis_matrix
from sigmasight_assets.calc.factors import FACTOR_ETFS
from sigmasight_assets.calc.risk import (
    CONTRIBUTION_COLUMNS,
    RISK_COLUMNS,
    covered_book,
    ex_ante_risk,
)

DAYS = [pd.Timestamp("2024-05-01"), pd.Timestamp("2024-05-02")]
TOL = 1e-10


def random_etf_cov(rng) -> np.ndarray:
    vol = rng.uniform(0.006, 0.015, 8)
    z = rng.normal(size=(8, 12))
    c = z @ z.T + np.diag(rng.uniform(0.5, 1.5, 8))
    d = np.sqrt(np.diag(c))
    corr = c / np.outer(d, d)
    return corr * np.outer(vol, vol)


def cov_long(covs: dict) -> pd.DataFrame:
    rows = []
    for day, c in covs.items():
        for i, a in enumerate(FACTOR_ETFS):
            for j, b in enumerate(FACTOR_ETFS):
                rows.append((day, a, b, c[i, j]))
    return pd.DataFrame(rows, columns=["date", "factor_1", "factor_2", "covariance"])


def make_book(seed=1, n_port=12, n_sym=30):
    rng = np.random.default_rng(seed)
    symbols = [f"S{i:02d}" for i in range(n_sym)]
    model_rows = []
    for day in DAYS:
        for s in symbols[:-3]:  # the last three symbols have no model
            load = rng.normal(0, 0.5, 8)
            load[0] += 1.0
            spec = rng.uniform(1e-5, 4e-4)
            model_rows += [(day, s, f, b, spec, 0.4, 90) for f, b in zip(FACTOR_NAMES, load)]
    model = pd.DataFrame(model_rows, columns=["date", "symbol", "factor", "beta", "specific_variance", "r_squared",
                                              "observations"])
    pv_rows = []
    for day in DAYS:
        for p in range(n_port):
            k = rng.integers(1, 12)
            for j, s in enumerate(rng.choice(symbols, k, replace=False)):
                mv = float(rng.normal(0, 20_000))
                pv_rows.append((day, f"P{p:02d}", f"P{p:02d}-{j}", s, "PUBLIC", mv, True))
            if p % 3 == 0:
                pv_rows.append((day, f"P{p:02d}", f"P{p:02d}-opt", "S00240621C00010000", "OPTIONS", 900.0, True))
            if p % 4 == 0:
                pv_rows.append((day, f"P{p:02d}", f"P{p:02d}-prv", "PRIV_FUND", "PRIVATE", 30_000.0, True))
            if p % 5 == 0:
                pv_rows.append((day, f"P{p:02d}", f"P{p:02d}-unp", "S01", "PUBLIC", np.nan, False))
    pv = pd.DataFrame(pv_rows, columns=["date", "portfolio_id", "position_id", "symbol", "investment_class",
                                        "market_value", "is_priced"])
    snaps = pv.groupby(["date", "portfolio_id"], as_index=False)["market_value"].sum().rename(
        columns={"market_value": "equity"})
    snaps["equity"] = snaps["equity"].abs() + 50_000.0
    snaps = pd.concat([snaps, pd.DataFrame({"date": [DAYS[0]], "portfolio_id": ["EMPTY"], "equity": [1_000.0]})])
    covs = {d: random_etf_cov(rng) for d in DAYS}
    return pv, model, snaps.reset_index(drop=True), covs


def oracle(pv, model, snaps, covs):
    """Dense per-portfolio computation; returns {(date, pid): dict}."""
    a = basis_matrix()
    wide = model.pivot_table(index=["date", "symbol"], columns="factor", values="beta")[list(FACTOR_NAMES)]
    spec = model.groupby(["date", "symbol"])["specific_variance"].first()
    out = {}
    for (day, pid), grp in pv.groupby(["date", "portfolio_id"]):
        sig = a @ covs[day] @ a.T
        rows = grp[(grp.investment_class == "PUBLIC") & grp.is_priced & grp.symbol.map(lambda s: (day, s) in wide.index)]
        w = rows.market_value.to_numpy()
        L = np.array([wide.loc[(day, s)].to_numpy() for s in rows.symbol])
        d = np.array([spec.loc[(day, s)] for s in rows.symbol])
        c = L @ sig @ L.T + np.diag(d)
        sigma = math.sqrt(w @ c @ w)
        eq = snaps.set_index(["date", "portfolio_id"]).loc[(day, pid), "equity"]
        cov_spy = w @ L @ sig[:, 0]  # cov(P&L, f_market)
        te_var = w @ c @ w - 2 * eq * cov_spy + eq ** 2 * sig[0, 0]
        x = L.T @ w
        out[(day, pid)] = dict(
            vol=sigma, factor_var=w @ L @ sig @ L.T @ w, spec_var=w @ np.diag(d) @ w,
            beta=cov_spy / sig[0, 0] / eq, te=math.sqrt(te_var),
            pos_contrib=dict(zip(rows.position_id, w * (c @ w) / sigma)),
            factor_contrib=x * (sig @ x) / sigma, n=len(w),
        )
    return out


def test_ex_ante_risk_equals_the_dense_oracle():
    pv, model, snaps, covs = make_book()
    book = covered_book(pv, model, snaps)
    risk, contrib = ex_ante_risk(book, cov_long(covs), top_k=100)
    assert list(risk.columns) == RISK_COLUMNS and list(contrib.columns) == CONTRIBUTION_COLUMNS
    want = oracle(pv, model, snaps, covs)
    r = risk.set_index(["date", "portfolio_id"])
    worst = {"vol": 0.0, "factor_var_rel": 0.0, "spec_var_rel": 0.0, "beta": 0.0, "te": 0.0, "contrib": 0.0}
    checked = 0
    for key, o in want.items():
        got = r.loc[key]
        if o["n"] == 0:
            assert math.isnan(got.volatility_daily)
            continue
        worst["vol"] = max(worst["vol"], abs(got.volatility_daily - o["vol"]))
        worst["factor_var_rel"] = max(worst["factor_var_rel"], abs(got.factor_volatility_daily ** 2 / o["factor_var"] - 1))
        worst["spec_var_rel"] = max(worst["spec_var_rel"], abs(got.specific_volatility_daily ** 2 / o["spec_var"] - 1))
        worst["beta"] = max(worst["beta"], abs(got.beta_spy - o["beta"]))
        worst["te"] = max(worst["te"], abs(got.tracking_error_daily - o["te"]))
        assert got.volatility_annual == pytest.approx(o["vol"] * math.sqrt(252), rel=1e-14)
        assert got.volatility_daily_pct_equity == pytest.approx(o["vol"] / got.equity, rel=1e-14)
        assert got.factor_share == pytest.approx(o["factor_var"] / o["vol"] ** 2, rel=1e-12)
        c = contrib[(contrib.date == key[0]) & (contrib.portfolio_id == key[1])]
        pos = c[c.component_type == "position"].set_index("component")["contribution"]
        assert len(pos) == o["n"]
        for pid_, v in o["pos_contrib"].items():
            worst["contrib"] = max(worst["contrib"], abs(pos[pid_] - v))
        fac = c[c.component_type == "factor"].set_index("component")["contribution"]
        worst["contrib"] = max(worst["contrib"], np.abs(fac[list(FACTOR_NAMES)].to_numpy() - o["factor_contrib"]).max())
        checked += 1
    print("max |Δ| vs dense oracle:", worst, "portfolio-days:", checked)
    assert checked >= 20
    assert worst["vol"] < TOL and worst["te"] < TOL and worst["contrib"] < TOL and worst["beta"] < 1e-12
    assert worst["factor_var_rel"] < 1e-12 and worst["spec_var_rel"] < 1e-12


def test_every_set_of_euler_contributions_sums_to_sigma():
    pv, model, snaps, covs = make_book(seed=2)
    risk, contrib = ex_ante_risk(covered_book(pv, model, snaps), cov_long(covs), top_k=100)
    vol = risk.set_index(["date", "portfolio_id"])["volatility_daily"]
    sums = contrib.groupby(["date", "portfolio_id", contrib.component_type.replace("specific", "factor")])["contribution"].sum()
    worst = 0.0
    for (day, pid, kind), total in sums.items():
        worst = max(worst, abs(total - vol.loc[(day, pid)]))
    print("max |Σ contributions − σ|:", worst)
    assert worst < TOL
    shares = contrib.groupby(["date", "portfolio_id", contrib.component_type.replace("specific", "factor")])["share"].sum()
    assert np.abs(shares.to_numpy() - 1.0).max() < 1e-12


def test_position_rows_are_the_top_k_by_absolute_contribution():
    pv, model, snaps, covs = make_book(seed=3)
    book = covered_book(pv, model, snaps)
    _, full = ex_ante_risk(book, cov_long(covs), top_k=100)
    _, top = ex_ante_risk(book, cov_long(covs), top_k=3)
    for (day, pid), grp in full[full.component_type == "position"].groupby(["date", "portfolio_id"]):
        expect = grp.reindex(grp.contribution.abs().sort_values(ascending=False, kind="stable").index).head(3)
        got = top[(top.date == day) & (top.portfolio_id == pid) & (top.component_type == "position")]
        assert got.component.tolist() == expect.component.tolist()
        assert np.allclose(got.contribution, expect.contribution, rtol=0, atol=1e-12)
    # factor and specific rows are always all there
    assert (top[top.component_type != "position"].groupby(["date", "portfolio_id"]).size() == 9).all()


def test_exclusions_are_counted_and_coverage_reported():
    day = DAYS[0]
    model = pd.DataFrame([(day, "AAA", f, 1.0 if f == "market" else 0.0, 1e-4) for f in FACTOR_NAMES],
                         columns=["date", "symbol", "factor", "beta", "specific_variance"])
    pv = pd.DataFrame([
        (day, "P1", "a", "AAA", "PUBLIC", 6_000.0, True),
        (day, "P1", "b", "BBB", "PUBLIC", -2_000.0, True),  # no loadings
        (day, "P1", "c", "AAA240621C00010000", "OPTIONS", 2_000.0, True),
        (day, "P1", "d", "PRIV_X", "PRIVATE", 9_000.0, True),
        (day, "P1", "e", "AAA", "PUBLIC", np.nan, False),  # unpriced
        (day, "P2", "f", "BBB", "PUBLIC", 1_000.0, True),  # nothing covered
        (day, "P2", "g", "AAA240621P00010000", "OPTIONS", np.nan, False),  # unpriced option: an option
    ], columns=["date", "portfolio_id", "position_id", "symbol", "investment_class", "market_value", "is_priced"])
    snaps = pd.DataFrame({"date": day, "portfolio_id": ["P1", "P2", "P3"], "equity": [np.nan, 1_000.0, 5.0]})
    cov = np.diag(np.full(8, 1e-4))
    risk, contrib = ex_ante_risk(covered_book(pv, model, snaps), cov_long({day: cov}))
    r = risk.set_index("portfolio_id")
    assert r.loc["P1", ["positions_covered", "positions_options", "positions_private", "positions_unpriced",
                        "positions_no_loadings"]].tolist() == [1, 1, 1, 1, 1]
    assert r.loc["P1", "coverage"] == pytest.approx(6_000 / 10_000)
    # σ in USD is measured; equity is NaN (an unpriced position), so every ratio is NaN
    assert r.loc["P1", "volatility_daily"] == pytest.approx(6_000 * math.sqrt(1e-4 + 1e-4))
    assert all(math.isnan(r.loc["P1", c]) for c in ("volatility_daily_pct_equity", "beta_spy",
                                                      "tracking_error_daily", "volatility_annual_pct_equity"))
    for p in ("P2", "P3"):
        assert all(math.isnan(r.loc[p, c]) for c in ("volatility_daily", "factor_volatility_daily",
                                                      "specific_volatility_daily", "beta_spy",
                                                      "tracking_error_daily", "factor_share"))
    assert r.loc["P2", "coverage"] == 0.0 and r.loc["P2", "positions_options"] == 1
    assert math.isnan(r.loc["P3", "coverage"])
    assert set(contrib.portfolio_id) == {"P1"}


def test_beta_and_tracking_error_of_a_pure_spy_book():
    """A book of V dollars with L = e_market and no specific risk is SPY: β = 1, TE = 0."""
    day = DAYS[0]
    model = pd.DataFrame([(day, "SPY", f, 1.0 if f == "market" else 0.0, 0.0) for f in FACTOR_NAMES],
                         columns=["date", "symbol", "factor", "beta", "specific_variance"])
    pv = pd.DataFrame([(day, "P", "s", "SPY", "PUBLIC", 250_000.0, True)],
                      columns=["date", "portfolio_id", "position_id", "symbol", "investment_class", "market_value",
                               "is_priced"])
    rng = np.random.default_rng(4)
    cov = random_etf_cov(rng)
    for equity, beta in ((250_000.0, 1.0), (500_000.0, 0.5)):
        snaps = pd.DataFrame({"date": [day], "portfolio_id": ["P"], "equity": [equity]})
        r = ex_ante_risk(covered_book(pv, model, snaps), cov_long({day: cov}))[0].iloc[0]
        assert r.beta_spy == pytest.approx(beta, rel=1e-12)
        assert r.volatility_daily == pytest.approx(250_000 * math.sqrt(cov[0, 0]), rel=1e-12)
        assert r.factor_share == pytest.approx(1.0)
        # half the equity in SPY, the rest cash: the active position is −V/2 of SPY
        assert r.tracking_error_daily == pytest.approx(abs(equity - 250_000) * math.sqrt(cov[0, 0]), abs=1e-8)


def test_a_day_without_covariance_reports_specific_risk_only():
    pv, model, snaps, covs = make_book(seed=5)
    risk, contrib = ex_ante_risk(covered_book(pv, model, snaps), cov_long({DAYS[0]: covs[DAYS[0]]}))
    day2 = risk[(risk.date == DAYS[1]) & (risk.positions_covered > 0)]
    assert len(day2) and day2.volatility_daily.isna().all() and day2.beta_spy.isna().all()
    assert day2.specific_volatility_daily.notna().all()
    assert (contrib.date == DAYS[0]).all()


def test_no_positions_at_all_gives_nan_rows_not_zero():
    pv, model, snaps, covs = make_book(seed=6)
    risk, contrib = ex_ante_risk(covered_book(pv.iloc[:0], model, snaps), cov_long(covs))
    assert len(risk) == len(snaps) and risk.volatility_daily.isna().all() and risk.beta_spy.isna().all()
    assert risk.coverage.isna().all() and (risk.positions_covered == 0).all() and contrib.empty
