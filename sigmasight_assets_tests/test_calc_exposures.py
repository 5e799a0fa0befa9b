"""Hand-computed tests of aggregated factor exposures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.calc.exposures import EXPOSURE_COLUMNS, FACTORS, aggregate_exposures

D = pd.Timestamp("2024-03-01")


def pv_rows(rows):
    return pd.DataFrame(
        [
            dict(date=d, portfolio_id=p, position_id=f"{p}-{s}", symbol=s, investment_class=c, quantity=1.0,
                 price=abs(mv), price_date=d, multiplier=1.0, market_value=mv, is_stale=False,
                 is_priced=not math.isnan(mv))
            for d, p, s, c, mv in rows
        ]
    )


POSITIONS = pv_rows(
    [
        (D, "P1", "AAA", "PUBLIC", 10_000.0),
        (D, "P1", "BBB", "PUBLIC", -5_000.0),
        (D, "P1", "CCC", "PUBLIC", 2_000.0),  # no betas at all
        (D, "P1", "AAA240621C00100000", "OPTIONS", 1_000.0),  # excluded by design, counted
        (D, "P1", "PRIV_FUND", "PRIVATE", 50_000.0),  # out of scope
        (D, "P1", "DDD", "PUBLIC", float("nan")),  # unpriced: out of scope
        (D, "P2", "PRIV_FUND", "PRIVATE", 80_000.0),
        (D, "P3", "CCC", "PUBLIC", 4_000.0),
    ]
)
BETAS = pd.DataFrame(
    [
        ("AAA", "market", 1.2), ("AAA", "ir", -0.1), ("AAA", "value", 0.3),
        ("BBB", "market", 0.8), ("BBB", "ir", 0.2), ("BBB", "value", np.nan),
        ("AAA", "momentum_spread", 0.5),
    ],
    columns=["symbol", "factor", "beta"],
)
SNAPSHOTS = pd.DataFrame(
    {"date": D, "portfolio_id": ["P1", "P2", "P3", "P4"], "equity": [100_000.0, 80_000.0, 4_000.0, 0.0]}
)


def result():
    out = aggregate_exposures(POSITIONS, BETAS, SNAPSHOTS)
    return out.set_index(["portfolio_id", "factor"])


def test_shape_every_portfolio_every_factor():
    out = aggregate_exposures(POSITIONS, BETAS, SNAPSHOTS)
    assert list(out.columns) == EXPOSURE_COLUMNS
    assert len(out) == 4 * len(FACTORS)
    assert set(out.factor) == set(FACTORS)


def test_dollar_and_value_exposure_by_hand():
    r = result()
    m = r.loc[("P1", "market")]
    assert m.exposure_dollar == pytest.approx(10_000 * 1.2 + (-5_000) * 0.8)  # 8,000
    assert m.exposure_value == pytest.approx(0.08)
    # in scope: AAA, BBB, CCC and the option; with beta: AAA, BBB
    assert m.coverage == pytest.approx(15_000 / 18_000)
    assert (m.positions_with_beta, m.positions_missing_beta) == (2, 2)
    ir = r.loc[("P1", "ir")]
    assert ir.exposure_dollar == pytest.approx(10_000 * -0.1 + -5_000 * 0.2)


def test_missing_beta_is_excluded_and_counted_not_zero():
    v = result().loc[("P1", "value")]  # BBB's value beta is NaN
    assert v.exposure_dollar == pytest.approx(3_000)
    assert v.coverage == pytest.approx(10_000 / 18_000)
    assert (v.positions_with_beta, v.positions_missing_beta) == (1, 3)


def test_factor_without_any_beta_is_nan_with_zero_coverage():
    g = result().loc[("P1", "growth")]
    assert math.isnan(g.exposure_dollar) and math.isnan(g.exposure_value)
    assert g.coverage == 0 and g.positions_with_beta == 0 and g.positions_missing_beta == 4


def test_no_public_positions_and_empty_portfolio():
    r = result()
    for p in ["P2", "P4"]:  # private only; nothing at all (equity 0)
        m = r.loc[(p, "market")]
        assert math.isnan(m.exposure_dollar) and math.isnan(m.exposure_value) and math.isnan(m.coverage)
        assert m.positions_with_beta == 0 and m.positions_missing_beta == 0


def test_all_symbols_missing_betas():
    m = result().loc[("P3", "market")]
    assert math.isnan(m.exposure_dollar) and m.coverage == 0
    assert (m.positions_with_beta, m.positions_missing_beta) == (0, 1)


def test_non_positive_equity_gives_nan_value():
    pv = pv_rows([(D, "P9", "AAA", "PUBLIC", 1_000.0)])
    snaps = pd.DataFrame({"date": [D], "portfolio_id": ["P9"], "equity": [-5.0]})
    m = aggregate_exposures(pv, BETAS, snaps).set_index("factor").loc["market"]
    assert m.exposure_dollar == pytest.approx(1_200) and math.isnan(m.exposure_value)


def test_dated_betas_match_by_day():
    d2 = pd.Timestamp("2024-03-04")
    pv = pv_rows([(D, "P1", "AAA", "PUBLIC", 1_000.0), (d2, "P1", "AAA", "PUBLIC", 1_000.0)])
    betas = pd.DataFrame(
        {"date": [D, d2], "symbol": "AAA", "factor": "market", "beta": [1.0, 2.0]}
    )
    snaps = pd.DataFrame({"date": [D, d2], "portfolio_id": "P1", "equity": 10_000.0})
    out = aggregate_exposures(pv, betas, snaps)
    m = out[out.factor == "market"].set_index("date")["exposure_dollar"]
    assert m[D] == pytest.approx(1_000) and m[d2] == pytest.approx(2_000)


def test_duplicate_betas_are_an_error():
    dup = pd.concat([BETAS, BETAS.iloc[:1]])
    with pytest.raises(ValueError, match="duplicate beta"):
        aggregate_exposures(POSITIONS, dup, SNAPSHOTS)
