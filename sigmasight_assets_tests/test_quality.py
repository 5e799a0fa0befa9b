"""Quarantine screens against the pandera schemas they protect (issue 13, finding 2).

Every row a screen keeps passes the table's schema; every row the schema refuses is screened out
with a one-line reason naming the field, the problem and the value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandera.errors import SchemaError, SchemaErrors

from sigmasight_assets.warehouse import schemas
from sigmasight_assets.market_data.base import PRICE_COLUMNS, REJECTED_COLUMNS, VALUATION_COLUMNS
from sigmasight_assets.market_data.quality import duplicates, row_problems, screen_prices, screen_valuations

DAY = pd.Timestamp("2024-01-02")


def price_row(symbol="AAA", day=DAY, **values):
    row = {"date": day, "symbol": symbol, "open": 10.0, "high": 10.5, "low": 9.5, "close": 10.2,
           "adj_close": 10.1, "volume": 1000.0, "dividend": 0.0, "split_ratio": 1.0, "source": "test"}
    row.update(values)
    return row


def valuation_row(symbol="AAA", day=DAY, **values):
    row = {"date": day, "symbol": symbol, "pe": 20.0, "forward_pe": 18.0, "provider_beta": 1.1,
           "week52_high": 12.0, "week52_low": 8.0, "market_cap": 1e9, "dividend_yield": 0.02, "source": "test"}
    row.update(values)
    return row


def frame_of(rows, columns):
    f = pd.DataFrame(rows)[columns]
    f["date"] = pd.to_datetime(f["date"]).astype("datetime64[ns]")
    return f


def schema_accepts(schema, frame) -> bool:
    try:
        schema.validate(frame, lazy=True)
        return True
    except (SchemaError, SchemaErrors):
        return False


def refused_rows(schema, frame) -> set:
    """Index labels of the rows the schema refuses (one lazy validation of the whole frame)."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        assert cases["index"].notna().all(), cases  # every failure is pinned to rows
        return set(cases["index"].astype(int))
    return set()


PRICE_CASES = [
    ({"close": -1.0}, "close: must be positive (-1.0)"),
    ({"close": 0.0}, "close: must be positive (0.0)"),
    ({"close": np.nan}, "close: missing"),
    ({"close": np.inf}, "close: not a finite number (inf)"),
    ({"adj_close": np.nan}, "adj_close: missing"),
    ({"open": -2.0}, "open: must be positive (-2.0)"),
    ({"high": 9.0, "low": 9.5}, "high: below low (9.0 vs 9.5)"),
    ({"volume": -5.0}, "volume: must not be negative (-5.0)"),
    ({"dividend": -0.1}, "dividend: must not be negative (-0.1)"),
    ({"split_ratio": 0.0}, "split_ratio: must be positive (0.0)"),
    ({"split_ratio": -4.0}, "split_ratio: must be positive (-4.0)"),
    ({"dividend": np.nan}, "dividend: missing while split_ratio is known (both or neither) (1.0)"),
    ({"split_ratio": np.nan}, "split_ratio: missing while dividend is known (both or neither) (0.0)"),
    ({"symbol": ""}, "symbol: missing ('')"),
    ({"symbol": "X" * 65}, "symbol: longer than 64 characters"),
    ({"date": pd.NaT}, "date: missing"),
    ({"source": None}, "source: missing"),
]


def test_every_bad_price_row_is_screened_with_its_reason_and_the_rest_passes_the_schema():
    good = [price_row("GOOD"), price_row("NOACT", dividend=np.nan, split_ratio=np.nan),  # actions unknown
            price_row("BLANKS", open=np.nan, high=np.nan, low=np.nan, volume=np.nan),
            price_row("SPLIT", split_ratio=4.0, dividend=0.25)]
    bad = [{**price_row(f"B{i:02d}"), **values} for i, (values, _) in enumerate(PRICE_CASES)]
    frame = frame_of(good + bad, PRICE_COLUMNS)
    assert not schema_accepts(schemas.prices, frame)
    clean, rejected = screen_prices(frame)
    assert list(rejected.columns) == REJECTED_COLUMNS
    assert list(clean["symbol"]) == ["GOOD", "NOACT", "BLANKS", "SPLIT"]
    schemas.prices.validate(clean)  # what is kept is storable
    assert len(rejected) == len(PRICE_CASES)
    for (values, reason), got in zip(PRICE_CASES, rejected["reason"]):
        assert got.startswith(reason), (values, got)
    for row in bad:  # each bad row on its own is one the schema would refuse (except ±inf, see below)
        alone = frame_of([row], PRICE_COLUMNS)
        if not np.isinf(alone.select_dtypes("number").to_numpy(dtype=float)).any():
            assert not schema_accepts(schemas.prices, alone), row


def test_the_screen_is_at_least_as_strict_as_the_schema_on_random_rows():
    """Fuzz: random mixes of good and bad values; every row the schema refuses is screened, and the
    screened frame always passes."""
    rng = np.random.default_rng(0)
    choices = {
        "open": [10.0, np.nan, -1.0, 0.0, np.inf], "high": [10.5, 9.0, np.nan, -np.inf],
        "low": [9.5, 11.0, np.nan, 0.0], "close": [10.2, np.nan, 0.0, -3.0, np.inf],
        "adj_close": [10.1, np.nan, -1.0], "volume": [1000.0, 0.0, np.nan, -1.0],
        "dividend": [0.0, 0.5, np.nan, -0.5], "split_ratio": [1.0, 2.0, np.nan, 0.0],
    }
    rows = [price_row(f"S{i:03d}", **{c: v[rng.integers(len(v))] for c, v in choices.items()})
            for i in range(2000)]
    frame = frame_of(rows, PRICE_COLUMNS)
    clean, rejected = screen_prices(frame)
    schemas.prices.validate(clean)
    assert len(clean) + len(rejected) == len(frame) and 0 < len(clean) < len(frame)
    refused = refused_rows(schemas.prices, frame)
    assert len(refused) > 1000
    assert set(frame["symbol"].iloc[sorted(refused)]) <= set(rejected["symbol"])


def test_non_numeric_values_are_screened_not_a_crash():
    frame = frame_of([price_row("A"), price_row("B", close="abc"), price_row("C", volume="lots")], PRICE_COLUMNS)
    clean, rejected = screen_prices(frame)
    assert list(clean["symbol"]) == ["A"] and clean["close"].dtype == "float64"
    assert list(rejected["reason"]) == ["close: not a number ('abc')", "volume: not a number ('lots')"]
    schemas.prices.validate(clean)


def test_duplicates_identical_copies_read_once_conflicting_copies_all_rejected():
    rows = [price_row("A"), price_row("A"), price_row("B"), price_row("B", close=10.3), price_row("C"),
            price_row("C", close=-1.0)]
    frame = frame_of(rows, PRICE_COLUMNS)
    clean, rejected = screen_prices(frame)
    assert list(clean["symbol"]) == ["A", "C"]  # C: the bad copy is screened, the good one stays
    assert rejected["symbol"].tolist() == ["B", "B", "C"]
    assert rejected["reason"].tolist()[:2] == ["date: 2 rows for this symbol and day with different values"] * 2
    schemas.prices.validate(clean)
    d = duplicates(frame)
    assert d["copies"].tolist() == [2, 2, 2, 2, 2, 2]
    assert d["repeat"].tolist() == [False, True, False, False, False, False]
    assert d["conflict"].tolist() == [False, False, True, True, True, True]


VALUATION_CASES = [
    ({"week52_low": 0.0}, "week52_low: must be positive (0.0)"),
    ({"week52_high": -1.0}, "week52_high: must be positive (-1.0)"),
    ({"market_cap": -5.0}, "market_cap: must not be negative (-5.0)"),
    ({"dividend_yield": 1.5}, "dividend_yield: outside [0, 1] (1.5)"),
    ({"dividend_yield": -0.01}, "dividend_yield: outside [0, 1] (-0.01)"),
    ({"pe": np.inf}, "pe: not a finite number (inf)"),
    ({"week52_low": 13.0}, "week52_low: above week52_high (13.0 vs 12.0)"),
]


def test_every_bad_valuation_row_is_screened_and_the_rest_passes_the_schema():
    good = [valuation_row("GOOD"), valuation_row("EMPTY", pe=np.nan, forward_pe=np.nan, provider_beta=np.nan,
                                                 week52_high=np.nan, week52_low=np.nan, market_cap=np.nan,
                                                 dividend_yield=np.nan),
            valuation_row("LOSS", pe=-4.0, dividend_yield=0.0, market_cap=0.0)]
    bad = [valuation_row(f"V{i}", **values) for i, (values, _) in enumerate(VALUATION_CASES)]
    frame = frame_of(good + bad, VALUATION_COLUMNS)
    clean, rejected = screen_valuations(frame)
    assert list(clean["symbol"]) == ["GOOD", "EMPTY", "LOSS"]
    schemas.daily_valuations.validate(clean)
    assert rejected["reason"].tolist() == [r for _, r in VALUATION_CASES]
    for row in bad[:5]:  # the schema's own rules (inf and an inverted range are the screen's extras)
        assert not schema_accepts(schemas.daily_valuations, frame_of([row], VALUATION_COLUMNS)), row


def test_row_problems_keeps_the_index_and_rejects_unknown_tables():
    frame = frame_of([price_row("A"), price_row("B", close=-1.0)], PRICE_COLUMNS).set_axis([10, 20])
    problems = row_problems(frame, "prices")
    assert list(problems.index) == [10, 20]
    assert problems.loc[10].isna().all() and tuple(problems.loc[20]) == ("close", "must be positive (-1.0)")
    with pytest.raises(ValueError, match="no quality rules"):
        row_problems(frame, "nope")
    with pytest.raises(ValueError, match="lacks column"):
        row_problems(frame.drop(columns=["dividend"]), "prices")


def test_empty_frames():
    clean, rejected = screen_prices(frame_of([price_row()], PRICE_COLUMNS).iloc[:0])
    assert clean.empty and rejected.empty and list(rejected.columns) == REJECTED_COLUMNS
