"""Trailing returns and realised volatility, hand-checked."""

import math

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.calc.metrics import METRIC_COLUMNS, symbol_returns_metrics as metrics_of_returns
from sigmasight_assets.calc.returns import simple_returns


def symbol_returns_metrics(prices, days):
    """The metrics of the daily returns of a price path (what symbol_returns stores for it)."""
    return metrics_of_returns(simple_returns(prices), days)

IDX = pd.bdate_range("2023-01-02", "2024-06-28")
D = pd.Timestamp("2024-03-15")
G = 1.001  # GROW compounds 0.1 % a session


ALT_RETURNS = np.where(np.arange(len(IDX)) % 2 == 0, 0.01, -0.01)
ALT_RETURNS[0] = 0.0


def price_path(returns):
    return 100.0 * np.cumprod(1.0 + np.asarray(returns))


@pytest.fixture(scope="module")
def prices():
    n = len(IDX)
    alt = ALT_RETURNS
    frame = pd.DataFrame(
        {
            "GROW": 100.0 * G ** np.arange(n),
            "ALT": price_path(alt),
            "GAPPY": 100.0 * G ** np.arange(n),
            "HOLEY": price_path(alt),
            "FLAT": np.full(n, 42.0),
        },
        index=IDX,
    )
    pos = IDX.get_loc(D)
    frame.loc[pd.Timestamp("2024-02-29"), "GAPPY"] = np.nan  # previous month's last close
    frame.iloc[[pos - 3, pos - 10], frame.columns.get_loc("ALT")] = np.nan  # 4 returns lost
    frame.iloc[[pos - 3, pos - 10, pos - 15], frame.columns.get_loc("HOLEY")] = np.nan  # 6 lost
    return frame


@pytest.fixture(scope="module")
def metrics(prices):
    days = pd.DatetimeIndex([IDX[1], pd.Timestamp("2024-01-02"), D])
    out = symbol_returns_metrics(prices, days)
    return out.set_index(["date", "symbol"])


def test_shape_and_columns(prices, metrics):
    assert list(metrics.reset_index().columns) == METRIC_COLUMNS
    assert len(metrics) == 3 * prices.shape[1]  # every (day, symbol), even all-NaN ones


def test_lookback_returns_of_a_compounding_price(metrics):
    row = metrics.loc[(D, "GROW")]
    assert row.return_1d == pytest.approx(G - 1, abs=1e-14)
    assert row.return_1m == pytest.approx(G**21 - 1, abs=1e-13)
    assert row.return_3m == pytest.approx(G**63 - 1, abs=1e-13)
    assert row.return_1y == pytest.approx(G**252 - 1, abs=1e-13)
    assert row.volatility_21d == pytest.approx(0.0, abs=1e-12)


def test_mtd_and_ytd_use_previous_period_last_close(prices, metrics):
    row = metrics.loc[(D, "GROW")]
    p = prices["GROW"]
    # 2024-02-29 is the last session of February, 2023-12-29 the last of 2023
    assert row.return_mtd == pytest.approx(p[D] / p[pd.Timestamp("2024-02-29")] - 1, abs=1e-14)
    assert row.return_ytd == pytest.approx(p[D] / p[pd.Timestamp("2023-12-29")] - 1, abs=1e-14)
    sessions_mtd = IDX.get_loc(D) - IDX.get_loc(pd.Timestamp("2024-02-29"))
    assert row.return_mtd == pytest.approx(G**sessions_mtd - 1, abs=1e-13)
    # 2024-01-02: both bases are 2023-12-29, two rows back (this synthetic business-day
    # calendar keeps 2024-01-01 as a session)
    jan2 = metrics.loc[(pd.Timestamp("2024-01-02"), "GROW")]
    assert jan2.return_mtd == jan2.return_ytd == pytest.approx(G**2 - 1, abs=1e-14)


def test_missing_base_price_is_nan_not_searched(metrics):
    row = metrics.loc[(D, "GAPPY")]
    assert math.isnan(row.return_mtd)  # 02-29 missing; 02-28 is NOT used instead
    # The missing close also breaks the year's compounding: a total return across a gap is unknown
    # (a dividend or split inside the gap cannot be known), never bridged.
    assert math.isnan(row.return_ytd)
    assert row.return_1d == pytest.approx(G - 1, abs=1e-14)  # a span after the gap is known


def test_history_before_the_frame_is_nan(metrics):
    row = metrics.loc[(IDX[1], "GROW")]
    assert row.return_1d == pytest.approx(G - 1, abs=1e-14)
    for col in ("return_ytd", "return_1m", "return_3m", "return_1y", "volatility_21d"):
        assert math.isnan(row[col]), col
    # MTD: the frame starts on 2023-01-02, there is no December 2022 close
    assert math.isnan(row.return_mtd)
    jan2 = metrics.loc[(pd.Timestamp("2024-01-02"), "GROW")]
    assert not math.isnan(jan2.return_1y)  # 2024-01-02 is more than 252 sessions in


def test_volatility_hand_check(metrics):
    # ALT's returns alternate +-1 %; two missing prices in the last 21 rows kill 4 returns
    pos = IDX.get_loc(D)
    window = ALT_RETURNS[pos - 20: pos + 1]
    keep = np.ones(21, dtype=bool)
    for gap in (pos - 3, pos - 10):  # a missing price kills its own and the next return
        keep[[gap - (pos - 20), gap + 1 - (pos - 20)]] = False
    sample = window[keep]
    assert len(sample) == 17  # exactly the 80 % minimum
    expected = sample.std(ddof=1) * math.sqrt(252)
    assert metrics.loc[(D, "ALT")].volatility_21d == pytest.approx(expected, rel=1e-12)
    # 17 alternating returns, 9 of one sign and 8 of the other, a = 1 %:
    # mean = +-a/17, sum of squared deviations = 17 a^2 - a^2/17, ddof 1
    a = 0.01
    literal = math.sqrt((17 * a * a - a * a / 17) / 16) * math.sqrt(252)
    assert metrics.loc[(D, "ALT")].volatility_21d == pytest.approx(literal, rel=1e-9)
    # HOLEY lost 6 of 21 returns: 15 < 17 -> NaN; its 63-day vol still has 57 of 63 (>= 51)
    assert math.isnan(metrics.loc[(D, "HOLEY")].volatility_21d)
    assert not math.isnan(metrics.loc[(D, "HOLEY")].volatility_63d)


def test_constant_price(metrics):
    row = metrics.loc[(D, "FLAT")]
    assert row.return_1d == 0.0 and row.return_1y == 0.0 and row.return_ytd == 0.0
    assert row.volatility_21d == 0.0 and row.volatility_63d == 0.0


def test_volatility_63d_against_pandas(prices):
    out = symbol_returns_metrics(prices, [D]).set_index("symbol")
    rets = prices.pct_change(fill_method=None)
    pos = IDX.get_loc(D)
    expected = rets.iloc[pos - 62: pos + 1].std(ddof=1) * math.sqrt(252)
    np.testing.assert_allclose(out["volatility_63d"], expected[out.index], rtol=1e-12, atol=1e-15)
