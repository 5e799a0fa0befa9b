"""Beta recovery through the assets: on the synthetic market, the stored ``symbol_betas`` of ~40 stocks
track the betas planted in the model (``market_data.synthetic.planted_exposures``).

Model (see ``market_data/synthetic.py``): ``r_i = β_m·m + β_q·q + Σ_k β_k·s_k + σ_i·e_i`` with
``m`` (sd 0.0095), ``q`` (sd 0.0090), six styles ``s_k`` (sd 0.0040) and the noise independent;
``SPY = m + 0.0005·e``, ``TLT = 0.0001 − 0.25·0.0090·z_m + q``.

* OLS on SPY estimates ``b_m = β_m·var(m)/var(SPY) = 0.9972·β_m``; its residual variance is
  ``v_i = β_q²·0.009² + Σ β_k²·0.004² + σ_i² + β_m²·var(m)·(1 − 0.9972)`` and its standard error over
  n returns ``se_i = √v_i / (σ_SPY·√n)`` — for a typical stock (σ_i ≈ 0.02) about
  0.02 / (0.0095·√90) ≈ 0.22.
* OLS on TLT estimates ``b_ir = cov(r_i, TLT)/var(TLT) = (β_q·0.009² − β_m·0.0095·0.00225) / var(TLT)``
  with ``var(TLT) = 0.00225² + 0.009²``; residual variance ``var(r_i) − b_ir²·var(TLT)``.

Tolerances: each estimate within 3 se_i of its planted value for ≥ 95 % of the stocks (the normal
rate is 99.7 %; the slack absorbs the errors' mild dependence through the shared factor paths), and
the mean error within 3 standard errors of the mean (√Σse_i² / N) of 0 — for the IR betas plus the
error all stocks share through the market's correlation with TLT (see that test).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets import calendar
from sigmasight_assets.market_data.synthetic import planted_exposures

from .helpers_graph import load_ledger, metadata, module_env, new_warehouse, run_range

STOCKS = [f"RCV{i:03d}" for i in range(40)]
DAY = pd.Timestamp("2026-06-30")
SESSIONS = calendar.sessions_back(DAY, 91)  # 90 returns end on DAY
SD_M, SD_Q, SD_S, SD_SPY_NOISE = 0.0095, 0.0090, 0.0040, 0.0005
STYLES = ["value", "growth", "momentum", "quality", "size", "low_volatility"]


@pytest.fixture(scope="module")
def recovered(tmp_path_factory):
    base = tmp_path_factory.mktemp("recovery")
    with module_env(base):
        url, wh = new_warehouse(base, "recovery")
        load_ledger(wh, base / "ledger", [
            dict(portfolio_id="P-40", symbol=s, quantity=100, entry_price=50, entry_date="2025-01-02") for s in STOCKS
        ])
        result = run_range(url, SESSIONS[0], SESSIONS[-1], ["symbol_universe", "prices", "symbol_returns", "symbol_betas"])
        assert result.success
        betas = wh.read("symbol_betas", DAY, DAY, keys=STOCKS).pivot(index="symbol", columns="factor")
        planted = planted_exposures(STOCKS, 7)
        yield {"result": result, "betas": betas, "planted": planted}


def model_terms(p: pd.DataFrame) -> dict[str, pd.Series]:
    var_m, var_q, var_s = SD_M**2, SD_Q**2, SD_S**2
    var_spy = var_m + SD_SPY_NOISE**2
    var_tlt = (0.25 * SD_Q) ** 2 + var_q
    style_var = (p[STYLES] ** 2).sum(axis=1) * var_s
    var_r = p["market"] ** 2 * var_m + p["rates"] ** 2 * var_q + style_var + p["idio_vol"] ** 2
    b_m = p["market"] * var_m / var_spy
    res_m = var_r - b_m**2 * var_spy
    b_ir = (p["rates"] * var_q - p["market"] * SD_M * 0.25 * SD_Q) / var_tlt
    res_ir = var_r - b_ir**2 * var_tlt
    return {"b_m": b_m, "res_m": res_m, "sd_spy": np.sqrt(var_spy), "b_ir": b_ir, "res_ir": res_ir,
            "sd_tlt": np.sqrt(var_tlt)}


def test_the_run_estimates_every_stock_on_a_full_window(recovered):
    b = recovered["betas"]
    assert sorted(b.index) == STOCKS
    obs = b[("observations", "market")]
    assert (obs >= 87).all() and (obs <= 90).all()  # the synthetic market drops ~0.2 % of stock-days
    md = metadata(recovered["result"], "symbol_betas")
    assert md["window"] == 90 and md["min_observations"] == 30


def test_market_betas_track_the_planted_exposures(recovered):
    b, p = recovered["betas"], recovered["planted"]
    t = model_terms(p)
    assert (0.9972 * p["market"] - t["b_m"]).abs().max() < 1e-4  # the docstring's 0.9972 factor
    n = b[("observations", "market")].astype(float)
    se = np.sqrt(t["res_m"]) / (t["sd_spy"] * np.sqrt(n))
    assert se.median() == pytest.approx(0.2, abs=0.08)  # ≈ 0.02 / (0.0095·√90) ≈ 0.22 for σ_i ≈ 0.02
    err = b[("raw_beta", "market")] - t["b_m"]
    within = (err.abs() <= 3 * se).mean()
    assert within >= 0.95, err[(err.abs() > 3 * se)]
    assert abs(err.mean()) <= 3 * np.sqrt((se**2).sum()) / len(se)
    # The estimates are informative: they rank the planted betas (a coin flip would give ~0).
    assert np.corrcoef(b[("raw_beta", "market")], p["market"])[0, 1] > 0.7
    # The stored standard errors measure the same uncertainty as the model's (sampling noise ±30 %).
    ratio = b[("std_error", "market")] / se
    assert ratio.between(0.7, 1.4).mean() >= 0.95


def test_ir_betas_track_the_planted_rate_exposures(recovered):
    b, p = recovered["betas"], recovered["planted"]
    t = model_terms(p)
    n = b[("observations", "ir")].astype(float)
    se = np.sqrt(t["res_ir"]) / (t["sd_tlt"] * np.sqrt(n))
    err = b[("raw_beta", "ir")] - t["b_ir"]
    assert (err.abs() <= 3 * se).mean() >= 0.95, err[(err.abs() > 3 * se)]
    # TLT carries −0.25·z_m, so every stock's IR estimate shares the window's sampling error of the
    # market's slope on TLT, se_c = σ(m | TLT) / (σ_TLT·√n) ≈ 0.105, scaled by its market beta: the
    # errors are not independent and the mean's tolerance adds that common term.
    var_tlt = t["sd_tlt"] ** 2
    sd_m_given_tlt = np.sqrt(SD_M**2 - (SD_M * 0.25 * SD_Q) ** 2 / var_tlt)
    se_common = p["market"].mean() * sd_m_given_tlt / (t["sd_tlt"] * np.sqrt(n.mean()))
    assert abs(err.mean()) <= 3 * np.sqrt((se**2).sum() / len(se) ** 2 + se_common**2)
    assert np.corrcoef(b[("raw_beta", "ir")], t["b_ir"])[0, 1] > 0.5
