"""Returns: formula, NaN policy (no fill, no spanning of a gap), invalid prices."""

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.calc.returns import day_positions, log_returns, simple_returns


@pytest.fixture
def prices():
    idx = pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"])
    return pd.DataFrame(
        {
            "AAA": [100.0, 110.0, 99.0, 99.0, 108.9],
            "BBB": [50.0, np.nan, 55.0, 60.5, 60.5],
            "CCC": [10.0, 0.0, 10.0, -1.0, 12.0],
        },
        index=idx,
    )


def test_simple_returns_values(prices):
    r = simple_returns(prices)
    assert list(r.columns) == ["AAA", "BBB", "CCC"]
    assert r.index.equals(prices.index)
    assert r["AAA"].isna().iloc[0]
    np.testing.assert_allclose(r["AAA"].iloc[1:], [0.10, -0.10, 0.0, 0.10], rtol=0, atol=1e-15)


def test_missing_price_makes_both_adjacent_returns_missing(prices):
    r = simple_returns(prices)["BBB"]
    # 01-03 missing: the 01-03 and 01-04 returns are missing; 01-04 is NOT the two-day move.
    assert r.isna().tolist() == [True, True, True, False, False]
    assert r.iloc[3] == pytest.approx(0.10, abs=1e-15)
    assert r.iloc[4] == 0.0


def test_non_positive_prices_are_missing_not_infinite(prices):
    r = simple_returns(prices)["CCC"]
    assert np.isfinite(r).sum() == 0  # every return touches a 0 or negative price
    assert not np.isinf(r).any()


def test_log_returns(prices):
    lr = log_returns(prices)
    np.testing.assert_allclose(
        lr["AAA"].iloc[1:], np.log([1.1, 0.9, 1.0, 1.1]), rtol=0, atol=1e-15
    )
    assert lr["BBB"].isna().tolist() == [True, True, True, False, False]
    assert lr["BBB"].iloc[3] == pytest.approx(np.log(1.1), abs=1e-15)


def test_unsorted_index_rejected(prices):
    with pytest.raises(ValueError):
        simple_returns(prices.iloc[::-1])


def test_day_positions_rejects_unknown_day(prices):
    days, pos = day_positions(prices.index, ["2024-01-08", "2024-01-03"])
    assert list(pos) == [1, 4]  # sorted
    assert days[0] == pd.Timestamp("2024-01-03")
    with pytest.raises(ValueError, match="2024-01-06"):
        day_positions(prices.index, ["2024-01-06"])
