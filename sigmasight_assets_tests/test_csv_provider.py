"""CSVDirectoryProvider: the fixture directory, validation errors (file, row, field), gaps, cache."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets import calendar
from sigmasight_assets.calc.factors import FACTOR_ETFS
from sigmasight_assets.market_data.base import PRICE_COLUMNS, VALUATION_COLUMNS, MarketDataProvider
from sigmasight_assets.market_data.csv_provider import CSVDirectoryProvider, CSVValidationError
from sigmasight_assets_tests.fixtures import make_csv_fixture

FIX = Path(__file__).parent / "fixtures"
GOOD = FIX / "csv_prices"
BAD = FIX / "csv_bad"
ALL = (date(2024, 1, 1), date(2024, 12, 31))


@pytest.fixture
def good():
    return CSVDirectoryProvider(GOOD)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def load_error(directory: Path) -> CSVValidationError:
    with pytest.raises(CSVValidationError) as info:
        CSVDirectoryProvider(directory).load()
    return info.value


# ------------------------------------------------------------------------------------------------
# The committed fixture directory
# ------------------------------------------------------------------------------------------------


def test_fixture_directory_is_what_the_generator_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(make_csv_fixture, "GOOD", tmp_path / "good")
    monkeypatch.setattr(make_csv_fixture, "BAD", tmp_path / "bad")
    make_csv_fixture.main()
    for path in sorted(GOOD.iterdir()):
        assert (tmp_path / "good" / path.name).read_text() == path.read_text(), path.name
    for case in make_csv_fixture.BAD_FILES:
        assert sorted(p.name for p in (BAD / case).iterdir()) == sorted(
            p.name for p in (tmp_path / "bad" / case).iterdir()
        )


def test_factor_etfs_cover_130_sessions(good):
    result = good.fetch_prices(list(FACTOR_ETFS), *ALL)
    f = result.frame
    assert result.failures == {}
    assert list(f.columns) == PRICE_COLUMNS and (f["source"] == "csv").all()
    assert f["date"].dtype == "datetime64[ns]"
    counts = f.groupby("symbol").size()
    assert set(counts.index) == set(FACTOR_ETFS) and (counts == 130).all()
    expected = calendar.sessions("2024-01-02", "2024-07-09")
    assert len(expected) == 130
    assert (f[f["symbol"] == "SPY"]["date"].to_numpy() == expected.to_numpy()).all()
    assert f[["open", "high", "low", "close", "adj_close", "volume"]].notna().all().all()
    assert (f["high"] >= f["low"]).all()


def test_long_file_defaults_and_blanks(good):
    f = good.fetch_prices(["AAPL", "MSFT", "JNJ"], *ALL).frame
    # no adj_close column in stocks.csv → adj_close is the close
    np.testing.assert_array_equal(f["adj_close"], f["close"])
    msft = f[f["symbol"] == "MSFT"].reset_index(drop=True)
    assert msft.loc[[5, 40], ["open", "high", "low"]].isna().all().all()  # blanks stay NaN
    assert msft["close"].notna().all()


def test_gaps_are_reported_not_filled(good):
    assert good.gaps == {"JNJ": 2}
    jnj = good.fetch_prices(["JNJ"], *ALL).frame
    assert len(jnj) == 128
    assert not jnj["date"].isin(pd.to_datetime(make_csv_fixture.JNJ_GAPS)).any()
    report = good.gap_report().set_index("symbol")
    assert report.loc["JNJ", "missing_sessions"] == 2 and report.loc["SPY", "missing_sessions"] == 0
    assert good.gaps_in(["JNJ", "SPY"], date(2024, 3, 1), date(2024, 3, 31)) == {"JNJ": 1}
    assert good.gaps_in(["JNJ"], date(2024, 6, 1), date(2024, 6, 30)) == {}


def test_failures_name_the_reason(good):
    result = good.fetch_prices(["SPY", "NOPE"], date(2024, 1, 2), date(2024, 1, 5))
    assert set(result.frame["symbol"]) == {"SPY"} and len(result.frame) == 4
    assert result.failures == {"NOPE": "no file"}
    later = good.fetch_prices(["SPY"], date(2025, 1, 2), date(2025, 1, 31))
    assert later.failures["SPY"] == "no rows in 2025-01-02..2025-01-31 (file covers 2024-01-02..2024-07-09)"


def test_valuations_file(good):
    result = good.fetch_valuations(["AAPL", "MSFT", "SPY"], date(2024, 1, 1), date(2024, 2, 29))
    f = result.frame
    assert list(f.columns) == VALUATION_COLUMNS and (f["source"] == "csv").all()
    assert len(f) == 4 and set(f["symbol"]) == {"AAPL", "MSFT"}
    assert f["forward_pe"].isna().all()  # column absent → NaN
    assert result.failures == {"SPY": "no valuations in 2024-01-01..2024-02-29"}


def test_no_valuations_file(tmp_path):
    shutil.copy(GOOD / "SPY.csv", tmp_path / "SPY.csv")
    result = CSVDirectoryProvider(tmp_path).fetch_valuations(["SPY"], *ALL)
    assert result.frame.empty and list(result.frame.columns) == VALUATION_COLUMNS
    assert result.failures == {"SPY": "no valuations file"}


def test_protocol_and_missing_directory(tmp_path):
    assert isinstance(CSVDirectoryProvider(tmp_path), MarketDataProvider)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CSVDirectoryProvider(tmp_path / "missing")
    (tmp_path / "f.csv").write_text("")
    with pytest.raises(NotADirectoryError):
        CSVDirectoryProvider(tmp_path / "f.csv")


def test_empty_directory_serves_nothing(tmp_path):
    result = CSVDirectoryProvider(tmp_path).fetch_prices(["SPY"], *ALL)
    assert result.frame.empty and list(result.frame.columns) == PRICE_COLUMNS
    assert result.failures == {"SPY": "no file"}


# ------------------------------------------------------------------------------------------------
# Validation: file, row (1-based line incl. header), field
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case, file, row, field, words",
    [
        ("bad_date", "SPY.csv", 4, "date", "unparseable date"),
        ("weekend", "SPY.csv", 3, "date", "not an NYSE session"),
        ("duplicate", "prices.csv", 5, "date", "duplicate row for SPY on 2024-01-02 (first at row 2)"),
        ("negative_price", "TLT.csv", 3, "close", "price must be positive"),
        ("non_numeric", "TLT.csv", 3, "volume", "not a number"),
        ("missing_column", "VTV.csv", 1, "close", "missing required column 'close'"),
        ("high_below_low", "IWM.csv", 3, "high", "high is below low"),
    ],
)
def test_bad_fixture_files(case, file, row, field, words):
    err = load_error(BAD / case)
    assert isinstance(err, ValueError)
    assert Path(err.file) == BAD / case / file
    assert (err.row, err.field) == (row, field)
    assert words in err.problem
    assert file in str(err) and f"row {row}" in str(err) and repr(field) in str(err)


@pytest.mark.parametrize(
    "name, text, row, field, words",
    [
        ("SPY.csv", "", 1, None, "empty file"),
        ("SPY.csv", "date,close\n2024-01-15,470\n", 2, "date", "not an NYSE session"),  # MLK day
        ("SPY.csv", "date,close\n2024-01-02,470\nJan 3 2024,471\n", 3, "date", "unparseable"),
        ("SPY.csv", "date,close\n2024-01-02,470\n,471\n", 3, "date", "missing date"),
        ("SPY.csv", "date,close\n2024-01-02,470\n2024-01-03,\n", 3, "close", "missing close"),
        ("SPY.csv", "date,close\n2024-01-02,0\n", 2, "close", "must be positive"),
        ("SPY.csv", "date,open,close\n2024-01-02,-3,470\n", 2, "open", "must be positive"),
        ("SPY.csv", "date,close\n2024-01-02,inf\n", 2, "close", "not a number"),
        ("SPY.csv", "date,close,adj_close\n2024-01-02,470,abc\n", 2, "adj_close", "not a number"),
        ("SPY.csv", "date,close,volume\n2024-01-02,470,-5\n", 2, "volume", "must not be negative"),
        ("SPY.csv", "date,close,Close\n2024-01-02,470,471\n", 1, "close", "twice"),
        ("SPY.csv", "date,close\n2024-01-02,470\n\n\n2024-01-03,x\n", 5, "close", "not a number"),
        ("long.csv", "date,symbol,close\n2024-01-02,SPY,470\n2024-01-02,,98\n", 3, "symbol", "missing symbol"),
        ("long.csv", "date,symbol,close\n2024-01-02,EQ12345678AB,470\n", 2, "symbol", "public"),
        ("long.csv", "date,symbol,open\n2024-01-02,SPY,470\n", 1, "close", "missing required column"),
        ("my_prices.csv", "date,close\n2024-01-02,470\n", None, None, "file name must be <SYMBOL>.csv"),
        ("valuations.csv", "date,symbol,pe\n2024-01-02,SPY,abc\n", 2, "pe", "not a number"),
        ("valuations.csv", "date,symbol,foo\n2024-01-02,SPY,1\n", 1, None, "no valuation column"),
        ("valuations.csv", "date,symbol,pe\n2024-01-02,SPY,1\n2024-01-02,SPY,2\n", 3, "date", "duplicate"),
    ],
)
def test_validation_errors(tmp_path, name, text, row, field, words):
    write(tmp_path, name, text)
    err = load_error(tmp_path)
    assert Path(err.file).name == name
    assert (err.row, err.field) == (row, field), str(err)
    assert words in err.problem, str(err)


def test_error_counts_further_bad_rows(tmp_path):
    write(tmp_path, "SPY.csv", "date,close\n2024-01-02,a\n2024-01-03,b\n2024-01-04,c\n")
    err = load_error(tmp_path)
    assert err.row == 2 and "2 more row(s)" in err.problem and "'a'" in err.problem


def test_duplicate_across_files_names_both(tmp_path):
    write(tmp_path, "SPY.csv", "date,close\n2024-01-02,470\n2024-01-03,471\n")
    write(tmp_path, "stocks.csv", "date,symbol,close\n2024-01-02,AAPL,185\n2024-01-03,SPY,471\n")
    err = load_error(tmp_path)
    assert Path(err.file).name == "stocks.csv" and err.row == 3 and err.field == "date"
    assert "SPY.csv, row 3" in err.problem


def test_yahoo_style_header_and_midnight_timestamps(tmp_path):
    write(
        tmp_path, "brk.b.csv",
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2024-01-02 00:00:00-05:00,360,363,358,362,362,100\n"
        "2024-01-03,362,365,360,364,364.5,200\n",
    )
    result = CSVDirectoryProvider(tmp_path).fetch_prices(["BRK.B"], *ALL)
    f = result.frame
    assert list(f["date"]) == list(pd.to_datetime(["2024-01-02", "2024-01-03"]))
    assert list(f["adj_close"]) == [362.0, 364.5] and list(f["volume"]) == [100.0, 200.0]


def test_nothing_half_loaded(tmp_path):
    write(tmp_path, "SPY.csv", "date,close\n2024-01-02,470\n")
    write(tmp_path, "TLT.csv", "date,close\n2024-01-02,98\n2024-01-03,-98\n")
    p = CSVDirectoryProvider(tmp_path)
    with pytest.raises(CSVValidationError, match="TLT.csv, row 3"):
        p.fetch_prices(["SPY"], *ALL)  # SPY is fine, but the directory is not served half-valid
    write(tmp_path, "TLT.csv", "date,close\n2024-01-02,98\n2024-01-03,98.5\n")
    assert len(p.fetch_prices(["SPY", "TLT"], *ALL).frame) == 3


def test_an_edit_that_breaks_a_file_is_caught_on_the_next_fetch(tmp_path):
    path = write(tmp_path, "SPY.csv", "date,close\n2024-01-02,470\n")
    p = CSVDirectoryProvider(tmp_path)
    assert len(p.fetch_prices(["SPY"], *ALL).frame) == 1
    path.write_text("date,close\n2024-01-02,470\n2024-01-06,471\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(CSVValidationError, match="row 3"):
        p.fetch_prices(["SPY"], *ALL)


def test_parsed_files_are_cached_and_mtime_aware(tmp_path):
    for sym in ("SPY", "TLT"):
        shutil.copy(GOOD / f"{sym}.csv", tmp_path / f"{sym}.csv")
    p = CSVDirectoryProvider(tmp_path)
    first = p.fetch_prices(["SPY", "TLT"], *ALL).frame
    assert p.reads == 2
    p.fetch_prices(["SPY"], *ALL)
    p.fetch_valuations(["SPY"], *ALL)
    assert p.reads == 2  # nothing re-read
    path = tmp_path / "SPY.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # drop the last session
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    again = p.fetch_prices(["SPY", "TLT"], *ALL).frame
    assert p.reads == 3  # only the changed file
    assert len(again) == len(first) - 1
    (tmp_path / "TLT.csv").unlink()
    assert p.fetch_prices(["TLT"], *ALL).failures == {"TLT": "no file"}
    assert p.reads == 3


def test_non_csv_and_hidden_files_are_ignored(tmp_path):
    write(tmp_path, "SPY.csv", "date,close\n2024-01-02,470\n")
    write(tmp_path, "notes.txt", "hello")
    write(tmp_path, ".~lock.SPY.csv#", "x")
    write(tmp_path, ".hidden.csv", "garbage")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "TLT.csv", "garbage")
    assert CSVDirectoryProvider(tmp_path).symbols() == ["SPY"]
