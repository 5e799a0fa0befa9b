"""Returns: formula, NaN policy (no fill, no spanning of a gap), invalid prices; total returns from
as-traded closes with splits and dividends, computed by hand."""

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.calc.returns import day_positions, log_returns, simple_returns, total_returns


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


# -- total returns from as-traded closes and corporate actions --------------------------------------
DAYS = pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09"])


def wide(**cols):
    return pd.DataFrame(cols, index=DAYS[: len(next(iter(cols.values())))], dtype=float)


def test_four_for_one_split_is_not_a_loss():
    # 499.23 the day before the split; 4:1 on day 2; 129.04 as traded after it.
    close = wide(AAPL=[499.23, 129.04, 131.40])
    r, basis = total_returns(close, wide(AAPL=[0.0, 0.0, 0.0]), wide(AAPL=[1.0, 4.0, 1.0]))
    assert np.isnan(r["AAPL"].iloc[0]) and basis["AAPL"].iloc[0] is None
    assert r["AAPL"].iloc[1] == pytest.approx(4 * 129.04 / 499.23 - 1, abs=1e-15)  # +3.39 %, not −74 %
    assert r["AAPL"].iloc[1] == pytest.approx(0.033912224, abs=1e-9)
    assert r["AAPL"].iloc[2] == pytest.approx(131.40 / 129.04 - 1, abs=1e-15)
    assert list(basis["AAPL"].iloc[1:]) == ["total", "total"]


def test_two_for_one_split_with_a_dividend_the_same_day():
    """The dividend on a split day is per post-split share: one old share (100.00) became two new
    ones, each closing at 49.00 and paying 0.50: wealth 2 × 49.50 = 99.00, a −1 % day."""
    r, _ = total_returns(wide(X=[100.0, 49.0]), wide(X=[0.0, 0.5]), wide(X=[1.0, 2.0]))
    assert r["X"].iloc[1] == pytest.approx(-0.01, abs=1e-15)
    # (per pre-split share the same cash would be 0.25 per new share: a different, wrong number)
    assert r["X"].iloc[1] != pytest.approx(2 * (49.0 + 0.25) / 100.0 - 1)


def test_quarterly_dividends_enter_on_the_ex_date_only():
    close = wide(DIV=[50.00, 50.50, 49.90, 50.10, 50.10, 49.60])
    div = wide(DIV=[0.0, 0.0, 0.75, 0.0, 0.0, 0.75])
    r, basis = total_returns(close, div, wide(DIV=[1.0] * 6))
    expected = [np.nan, 50.50 / 50.00 - 1, (49.90 + 0.75) / 50.50 - 1, 50.10 / 49.90 - 1, 0.0,
                (49.60 + 0.75) / 50.10 - 1]
    np.testing.assert_allclose(r["DIV"], expected, rtol=0, atol=1e-15)
    assert r["DIV"].iloc[2] == pytest.approx(0.002970297, abs=1e-9)  # +0.30 %, where the price fell
    assert r["DIV"].iloc[4] == 0.0  # an unchanged close is a true zero, not a fill
    assert list(basis["DIV"].iloc[1:]) == ["total"] * 5


def test_a_gap_is_never_spanned_and_never_zero():
    close = wide(G=[10.0, np.nan, 10.5, 10.4, 0.0, 10.6])
    r, basis = total_returns(close, wide(G=[0.0] * 6), wide(G=[1.0] * 6))
    assert r["G"].isna().tolist() == [True, True, True, False, True, True]
    assert r["G"].iloc[3] == pytest.approx(10.4 / 10.5 - 1, abs=1e-15)
    assert basis["G"].tolist() == [None, None, None, "total", None, None]


def test_adjusted_only_basis():
    """A file with only an adjusted close: dividend and split are NaN, close is the adjusted series and
    the return is its ratio, with basis 'adjusted'. Mixing a raw and an adjusted close is refused."""
    close = wide(ADJ=[20.0, 20.4, 20.2], RAW=[20.0, 20.4, 20.2])
    div = wide(ADJ=[np.nan] * 3, RAW=[np.nan, 0.0, 0.1])
    split = wide(ADJ=[np.nan] * 3, RAW=[np.nan, 1.0, 1.0])
    r, basis = total_returns(close, div, split)
    np.testing.assert_allclose(r["ADJ"].iloc[1:], [20.4 / 20.0 - 1, 20.2 / 20.4 - 1], rtol=0, atol=1e-15)
    assert basis["ADJ"].tolist() == [None, "adjusted", "adjusted"]
    # RAW: day 1 follows an adjusted-only row (a different scale): NaN; day 2 is a total return
    assert np.isnan(r["RAW"].iloc[1]) and basis["RAW"].iloc[1] is None
    assert r["RAW"].iloc[2] == pytest.approx((20.2 + 0.1) / 20.4 - 1, abs=1e-15)
    assert basis["RAW"].iloc[2] == "total"


def test_bad_actions_give_nan_not_a_guess():
    close = wide(A=[10.0, 10.0], B=[10.0, 10.0], C=[10.0, 10.0], D=[10.0, 10.0])
    div = wide(A=[0.0, -0.1], B=[0.0, 0.0], C=[0.0, np.inf], D=[0.0, 0.0])
    split = wide(A=[1.0, 1.0], B=[1.0, 0.0], C=[1.0, 1.0], D=[1.0, -2.0])
    r, basis = total_returns(close, div, split)
    assert r.iloc[1].isna().all() and basis.iloc[1].isna().all()


def test_total_returns_vectorised_equals_a_plain_loop():
    """The vectorised frame equals a per-symbol, per-day Python loop of the formula (the oracle)."""
    rng = np.random.default_rng(3)
    n, k = 60, 25
    idx = pd.bdate_range("2024-01-02", periods=n)
    close = pd.DataFrame(np.exp(rng.normal(0, 0.02, (n, k)).cumsum(axis=0)) * 50, index=idx)
    close[close < 45] = np.nan  # holes
    split = pd.DataFrame(np.where(rng.random((n, k)) < 0.02, rng.choice([2.0, 3.0, 0.5], (n, k)), 1.0), index=idx)
    div = pd.DataFrame(np.where(rng.random((n, k)) < 0.05, rng.uniform(0.1, 1.0, (n, k)), 0.0), index=idx)
    unknown = rng.random((n, k)) < 0.05
    div[unknown], split[unknown] = np.nan, np.nan
    r, basis = total_returns(close, div, split)
    for j in range(k):
        for t in range(n):
            c0 = close.iat[t - 1, j] if t else np.nan
            c1, d, s = close.iat[t, j], div.iat[t, j], split.iat[t, j]
            known0 = t > 0 and not (np.isnan(div.iat[t - 1, j]) or np.isnan(split.iat[t - 1, j]))
            known1 = not (np.isnan(d) or np.isnan(s))
            if t == 0 or np.isnan(c0) or np.isnan(c1) or c0 <= 0 or c1 <= 0 or known0 != known1:
                want, kind = np.nan, None
            elif known1:
                want, kind = s * (c1 + d) / c0 - 1, "total"
            else:
                want, kind = c1 / c0 - 1, "adjusted"
            got = r.iat[t, j]
            assert (np.isnan(want) and np.isnan(got)) or abs(got - want) <= 1e-12, (t, j, got, want)
            assert basis.iat[t, j] == kind


def test_total_returns_rejects_misaligned_frames():
    close = wide(A=[1.0, 2.0])
    with pytest.raises(ValueError, match="dividend_wide"):
        total_returns(close, wide(B=[0.0, 0.0]), wide(A=[1.0, 1.0]))
