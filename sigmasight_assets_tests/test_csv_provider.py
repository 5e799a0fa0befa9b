"""CSVDirectoryProvider: the fixture directory, quarantine of bad files and rows (file, row, field),
corporate-action columns, gaps, cache."""

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


def test_no_valuations_file_is_a_skip_not_an_error(tmp_path):
    shutil.copy(GOOD / "SPY.csv", tmp_path / "SPY.csv")
    result = CSVDirectoryProvider(tmp_path).fetch_valuations(["SPY"], *ALL)
    assert result.frame.empty and list(result.frame.columns) == VALUATION_COLUMNS
    assert result.failures == {}
    assert result.skipped == {"SPY": "no valuations (no valuations.csv in the directory)"}


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
# Quarantine: a bad file or row is named (file, row, field) and dropped; everything else is served
# ------------------------------------------------------------------------------------------------


def fetch_all(directory: Path, symbols=("SPY", "TLT", "VTV", "IWM")):
    return CSVDirectoryProvider(directory).fetch_prices(list(symbols), *ALL)


def reason_names(reason: str, path: Path, row, field) -> bool:
    where = str(path) + (f", row {row}" if row is not None else "") + (f", field {field!r}" if field else "")
    return reason.startswith(where + ": ")


@pytest.mark.parametrize(
    "case, file, row, field, words, delivered",
    [
        ("bad_date", "SPY.csv", 4, "date", "unparseable date", {"SPY": 2}),
        ("weekend", "SPY.csv", 3, "date", "not an NYSE session", {"SPY": 1}),
        ("duplicate", "prices.csv", 5, "date", "2 different rows for SPY on 2024-01-02 (another at prices.csv, row 2)",
         {"SPY": 1, "TLT": 1}),
        ("negative_price", "TLT.csv", 3, "close", "must be positive (-1.0)", {"TLT": 1}),
        ("non_numeric", "TLT.csv", 3, "volume", "not a number ('lots')", {"TLT": 1}),
        ("high_below_low", "IWM.csv", 3, "high", "below low (198.0 vs 199.5)", {"IWM": 1}),
    ],
)
def test_bad_rows_are_rejected_and_named_the_rest_is_served(case, file, row, field, words, delivered):
    result = fetch_all(BAD / case)  # never raises
    assert result.frame.groupby("symbol").size().to_dict() == delivered
    path = BAD / case / file
    mine = result.rejected[result.rejected["reason"].map(lambda r: reason_names(r, path, row, field))]
    assert len(mine) == 1, result.rejected["reason"].tolist()
    assert words in mine["reason"].iloc[0]
    assert "\n" not in mine["reason"].iloc[0]


def test_a_bad_file_fails_only_its_symbol():
    result = fetch_all(BAD / "missing_column")
    assert result.frame.empty
    assert result.failures["VTV"] == (
        f"{BAD / 'missing_column' / 'VTV.csv'}, row 1, field 'close': missing required column 'close' "
        "(header has: date, open, high, low)"
    )
    assert result.failures["SPY"] == "no file"


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
        ("SPY.csv", "date,close,adj_close\n2024-01-02,470,\n", 2, "adj_close", "missing"),
        ("SPY.csv", "date,close,volume\n2024-01-02,470,-5\n", 2, "volume", "must not be negative"),
        ("SPY.csv", "date,close,dividend\n2024-01-02,470,-0.5\n", 2, "dividend", "must not be negative"),
        ("SPY.csv", "date,close,split_ratio\n2024-01-02,470,0\n", 2, "split_ratio", "must be positive"),
        ("SPY.csv", "date,close,Close\n2024-01-02,470,471\n", 1, "close", "twice"),
        ("SPY.csv", "date,close\n2024-01-02,470\n\n\n2024-01-03,x\n", 5, "close", "not a number"),
        ("SPY.csv", "date,adj_close,dividend\n2024-01-02,470,0\n", 1, "dividend", "no 'close' column"),
        ("SPY.csv", b"date,close\n2024-01-02,47\xe90\n", None, None, "not a UTF-8 text file"),
        ("SPY.csv", 'date,close\n2024-01-02,"470\n', None, None, "malformed CSV"),
        ("long.csv", "date,symbol,close\n2024-01-02,SPY,470\n2024-01-02,,98\n", 3, "symbol", "missing symbol"),
        ("long.csv", "date,symbol,close\n2024-01-02,EQ12345678AB,470\n", 2, "symbol", "public"),
        ("long.csv", "date,symbol,open\n2024-01-02,SPY,470\n", 1, "close", "missing required column"),
        ("my_prices.csv", "date,close\n2024-01-02,470\n", None, None, "file name must be <SYMBOL>.csv"),
        ("valuations.csv", "date,symbol,pe\n2024-01-02,SPY,abc\n", 2, "pe", "not a number"),
        ("valuations.csv", "date,symbol,dividend_yield\n2024-01-02,SPY,1.5\n", 2, "dividend_yield", "outside [0, 1]"),
        ("valuations.csv", "date,symbol,week52_low\n2024-01-02,SPY,0\n", 2, "week52_low", "must be positive"),
        ("valuations.csv", "date,symbol,foo\n2024-01-02,SPY,1\n", 1, None, "no valuation column"),
        ("valuations.csv", "date,symbol,pe\n2024-01-02,SPY,1\n2024-01-02,SPY,2\n", 3, "date", "different rows"),
    ],
)
def test_every_problem_is_named_by_file_row_and_field(tmp_path, name, text, row, field, words):
    path = tmp_path / name
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    p = CSVDirectoryProvider(tmp_path)
    p.fetch_prices(["SPY"], *ALL)  # never raises
    p.fetch_valuations(["SPY"], *ALL)
    problems = [
        {k: (None if pd.isna(v) else v) for k, v in rec.items()} for rec in p.problems().to_dict("records")
    ]
    match = [q for q in problems if (q["file"], q["row"], q["field"]) == (str(path), row, field)]
    assert len(match) == 1, problems
    assert words in match[0]["reason"]
    assert reason_names(match[0]["reason"], path, row, field)


def test_every_bad_row_of_a_file_is_named(tmp_path):
    path = write(tmp_path, "SPY.csv", "date,close\n2024-01-02,a\n2024-01-03,b\n2024-01-04,c\n2024-01-05,470\n")
    result = CSVDirectoryProvider(tmp_path).fetch_prices(["SPY"], *ALL)
    assert list(result.frame["close"]) == [470.0]
    assert [r.split(": ", 1)[0] for r in result.rejected["reason"]] == [
        f"{path}, row {n}, field 'close'" for n in (2, 3, 4)]
    assert list(result.rejected["date"]) == list(pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"]))
    only_bad = CSVDirectoryProvider(tmp_path).fetch_prices(["SPY"], date(2024, 1, 2), date(2024, 1, 4))
    assert only_bad.frame.empty
    assert only_bad.failures["SPY"].startswith("every row in 2024-01-02..2024-01-04 was rejected (3); e.g. ")


def test_duplicates_across_files(tmp_path):
    write(tmp_path, "SPY.csv", "date,close\n2024-01-02,470\n2024-01-03,471\n")
    write(tmp_path, "stocks.csv", "date,symbol,close\n2024-01-02,AAPL,185\n2024-01-03,SPY,471\n")
    same = CSVDirectoryProvider(tmp_path).fetch_prices(["SPY", "AAPL"], *ALL)
    # the same row in two files is read once
    assert same.frame.groupby("symbol").size().to_dict() == {"AAPL": 1, "SPY": 2} and same.rejected.empty
    write(tmp_path, "stocks.csv", "date,symbol,close\n2024-01-02,AAPL,185\n2024-01-03,SPY,472\n")
    differ = CSVDirectoryProvider(tmp_path).fetch_prices(["SPY", "AAPL"], *ALL)
    assert list(differ.frame.loc[differ.frame["symbol"] == "SPY", "close"]) == [470.0]
    reasons = sorted(differ.rejected["reason"])
    assert reasons == [
        f"{tmp_path / 'SPY.csv'}, row 3, field 'date': 2 different rows for SPY on 2024-01-03 (another at stocks.csv, row 3)",
        f"{tmp_path / 'stocks.csv'}, row 3, field 'date': 2 different rows for SPY on 2024-01-03 (another at SPY.csv, row 3)",
    ]


def test_one_bad_file_of_each_kind_among_good_ones(tmp_path):
    """Issue 13, finding 1: a directory of good files plus one bad file of each kind. The fetch never
    fails, every good symbol is delivered in full, and every bad file is named with file/row/field."""
    for path in GOOD.iterdir():
        shutil.copy(path, tmp_path / path.name)
    bad = {
        "BADC": ("date,close\n2024-01-02,10\n2024-01-03,ten\n", 3, "close", "not a number ('ten')"),
        "NEGC": ("date,close\n2024-01-02,10\n2024-01-03,-10\n", 3, "close", "must be positive (-10.0)"),
        "REPT": ("date,close\n2024-01-02,10\n2024-01-03,11\n2024-01-03,12\n", (3, 4), "date", "2 different rows for REPT"),
    }
    for sym, (text, *_rest) in bad.items():
        write(tmp_path, f"{sym}.csv", text)
    write(tmp_path, "ZERO.csv", "")
    (tmp_path / "LAT1.csv").write_bytes("date,close\n2024-01-02,caf\xe9\n".encode("latin-1"))
    good_symbols = [*FACTOR_ETFS, "AAPL", "MSFT", "JNJ"]
    wanted = [*good_symbols, *bad, "ZERO", "LAT1"]
    provider = CSVDirectoryProvider(tmp_path)
    result = provider.fetch_prices(wanted, *ALL)
    reference = CSVDirectoryProvider(GOOD).fetch_prices(good_symbols, *ALL).frame
    got = result.frame[result.frame["symbol"].isin(good_symbols)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, reference)
    for sym, (_, rows, field, words) in bad.items():
        mine = list(result.rejected.loc[result.rejected["symbol"] == sym, "reason"])
        rows = rows if isinstance(rows, tuple) else (rows,)
        assert len(mine) == len(rows)
        for reason, row in zip(mine, rows):
            assert reason_names(reason, tmp_path / f"{sym}.csv", row, field) and words in reason, reason
    assert set(result.frame["symbol"]) == {*good_symbols, "BADC", "NEGC", "REPT"}  # their good rows too
    assert result.failures == {
        "ZERO": f"{tmp_path / 'ZERO.csv'}, row 1: empty file: expected a header line",
        "LAT1": f"{tmp_path / 'LAT1.csv'}: not a UTF-8 text file (invalid continuation byte)",
    }
    named = set(provider.problems()["file"])
    assert named == {str(tmp_path / f"{s}.csv") for s in [*bad, "ZERO", "LAT1"]}
    assert [Path(e.file).name for e in provider.file_errors] == ["LAT1.csv", "ZERO.csv"]
    # valuations are unaffected by the bad price files
    assert len(provider.fetch_valuations(["AAPL"], *ALL).frame) == 7  # month ends Jan..Jul


def test_an_unreadable_long_file_is_named_for_symbols_without_a_file(tmp_path):
    write(tmp_path, "SPY.csv", "date,close\n2024-01-02,470\n")
    write(tmp_path, "stocks.csv", "date,symbol,open\n2024-01-02,AAPL,185\n")  # no close column
    result = CSVDirectoryProvider(tmp_path).fetch_prices(["SPY", "AAPL"], *ALL)
    assert set(result.frame["symbol"]) == {"SPY"}
    assert result.failures == {"AAPL": "no file (1 unreadable file(s) might hold it: stocks.csv)"}


def test_directory_that_vanished_is_the_only_global_error(tmp_path):
    d = tmp_path / "prices"
    d.mkdir()
    p = CSVDirectoryProvider(d)
    d.rmdir()
    with pytest.raises(CSVValidationError, match="cannot list the CSV price directory"):
        p.fetch_prices(["SPY"], *ALL)


# ------------------------------------------------------------------------------------------------
# Corporate actions and adjusted-only files
# ------------------------------------------------------------------------------------------------


def test_dividend_and_split_columns(tmp_path):
    write(tmp_path, "AAPL.csv",
          "date,open,high,low,close,volume,dividend,split_ratio\n"
          "2020-08-27,502.1,509.9,497.0,500.04,38888100,0,1\n"
          "2020-08-28,504.0,505.8,498.3,499.23,46907500,,\n"
          "2020-08-31,127.6,131.0,126.0,129.04,225702700,0,4\n"
          "2020-11-06,118.3,119.2,116.1,118.69,114457900,0.205,1\n")
    write(tmp_path, "long.csv", "date,symbol,close\n2020-08-31,MSFT,225.53\n")  # no action columns
    f = CSVDirectoryProvider(tmp_path).fetch_prices(["AAPL", "MSFT"], date(2020, 8, 1), date(2020, 12, 31)).frame
    aapl = f[f["symbol"] == "AAPL"].set_index("date")
    assert list(aapl["split_ratio"]) == [1.0, 1.0, 4.0, 1.0]  # a blank cell is no split
    assert list(aapl["dividend"]) == [0.0, 0.0, 0.0, 0.205]  # a blank cell is no dividend
    np.testing.assert_array_equal(aapl["adj_close"], aapl["close"])
    msft = f[f["symbol"] == "MSFT"].iloc[0]
    assert (msft["dividend"], msft["split_ratio"]) == (0.0, 1.0)


def test_adj_close_only_file_is_on_the_adjusted_basis(tmp_path):
    write(tmp_path, "QQQ.csv", "date,Adj Close,volume\n2024-01-02,402.5,100\n2024-01-03,398.2,200\n")
    f = CSVDirectoryProvider(tmp_path).fetch_prices(["QQQ"], *ALL).frame
    assert list(f["close"]) == [402.5, 398.2] and list(f["adj_close"]) == [402.5, 398.2]
    assert f["dividend"].isna().all() and f["split_ratio"].isna().all()
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


def test_a_bad_file_never_blocks_a_good_one(tmp_path):
    write(tmp_path, "SPY.csv", "date,close\n2024-01-02,470\n")
    write(tmp_path, "TLT.csv", "date,close\n2024-01-02,98\n2024-01-03,-98\n")
    p = CSVDirectoryProvider(tmp_path)
    result = p.fetch_prices(["SPY", "TLT"], *ALL)
    assert result.frame.groupby("symbol").size().to_dict() == {"SPY": 1, "TLT": 1}
    assert list(result.rejected["reason"].str.contains("TLT.csv, row 3, field 'close'")) == [True]
    path = write(tmp_path, "TLT.csv", "date,close\n2024-01-02,98\n2024-01-03,98.5\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    fixed = p.fetch_prices(["SPY", "TLT"], *ALL)
    assert len(fixed.frame) == 3 and fixed.rejected.empty


def test_an_edit_that_breaks_a_row_is_caught_on_the_next_fetch(tmp_path):
    path = write(tmp_path, "SPY.csv", "date,close\n2024-01-02,470\n")
    p = CSVDirectoryProvider(tmp_path)
    assert len(p.fetch_prices(["SPY"], *ALL).frame) == 1
    path.write_text("date,close\n2024-01-02,470\n2024-01-06,471\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    result = p.fetch_prices(["SPY"], *ALL)
    assert len(result.frame) == 1
    assert result.rejected["reason"].str.contains("row 3, field 'date'").all() and len(result.rejected) == 1


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
