"""Prices (and optionally valuations) from a directory of the user's CSV files.

File layout
-----------
Every ``*.csv`` file directly in the directory (hidden files and sub-directories are ignored) is a
price file, except ``valuations.csv``:

* a file whose header has a ``symbol`` column is a *long* file holding any number of symbols;
* any other file holds one symbol, named by the file: ``SPY.csv`` → ``SPY`` (the stem, upper-cased,
  must be a valid public symbol, e.g. ``BRK.B.csv`` → ``BRK.B``).

Columns (header names are case-insensitive, surrounding spaces ignored, ``Adj Close``/``adjclose``
read as ``adj_close``; other columns are ignored)::

    date        required  YYYY-MM-DD (a trailing midnight time such as "2024-01-02 00:00:00-05:00"
                          is accepted); must be an NYSE session
    close       required  USD, > 0, every row
    adj_close   optional  USD, > 0; when the column is absent it is the close (no adjustment known)
    open, high, low       optional USD, > 0; blank cells stay missing (NaN)
    volume      optional  shares, ≥ 0; blank stays missing

Blank cells and the usual NA spellings (``NA``, ``NaN``, ``null``, ``N/A``) are missing values.
Blank lines are skipped.

Validation
----------
Everything is validated before anything is served; the first problem raises
:class:`CSVValidationError` naming the file, the 1-based line number in that file (the header is
line 1) and the field: a missing required column, an unparseable or non-session date (weekend or
holiday), a non-numeric or non-positive price, a negative volume, ``high < low``, a duplicate
(symbol, date) within or across files, a bad file name or symbol. Nothing is half-loaded: after an
error the provider keeps serving nothing new (the previous good state, if any, is not replaced).

Gaps (a session missing between a symbol's first and last date) are not errors: the prices stay
missing (never filled) and the count of missing sessions per symbol is reported in :attr:`gaps`
and, per request, by :meth:`gaps_in`.

``valuations.csv`` (optional): columns ``date, symbol`` plus any of ``pe, forward_pe,
provider_beta, week52_high, week52_low, market_cap, dividend_yield`` (USD; the dividend yield as a
decimal fraction, 0.0123 = 1.23 %), validated the same way (dates must be sessions, values numeric,
no duplicate (symbol, date)).

Parsed files are cached by (modification time, size): repeated fetches do not re-read unchanged
files, and an edited file is re-read and the directory re-validated on the next fetch.
"""

from __future__ import annotations

import csv
import os
import re
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import calendar
from .base import PRICE_COLUMNS, VALUATION_COLUMNS, FetchResult, empty_frame
from .symbols import is_private_symbol, is_valid_public_symbol

SOURCE = "csv"
VALUATIONS_FILE = "valuations.csv"

_ALIASES = {"adj close": "adj_close", "adjclose": "adj_close", "adjusted_close": "adj_close"}
_PRICE_FIELDS = ["open", "high", "low", "close", "adj_close"]
_VALUE_FIELDS = [c for c in VALUATION_COLUMNS if c not in ("date", "symbol", "source")]
_DATE_RE = r"^\d{4}-\d{2}-\d{2}(?:[ T]00:00(?::00(?:\.0+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"


class CSVValidationError(ValueError):
    """A user CSV file failed validation.

    Attributes
    ----------
    file : str
        Path of the offending file.
    row : int or None
        1-based line number in the file (the header is line 1); ``None`` for a file-level problem.
    field : str or None
        The offending column, or ``None`` when the problem is not about one column.
    problem : str
        What is wrong.
    """

    def __init__(self, file: str | os.PathLike, row: int | None, field: str | None, problem: str):
        self.file = str(file)
        self.row = row
        self.field = field
        self.problem = problem
        where = self.file
        if row is not None:
            where += f", row {row}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {problem}")


def _norm_header(name: str) -> str:
    key = " ".join(str(name).strip().lower().split())
    return _ALIASES.get(key, key.replace(" ", "_"))


def _fail_first(path: Path, mask: pd.Series, lines: pd.Series, field: str | None, problem: str,
                values: pd.Series | None = None) -> None:
    """Raise for the first row flagged in ``mask`` (mentioning how many more rows are flagged)."""
    if not mask.any():
        return
    idx = mask.to_numpy().nonzero()[0]
    first = idx[0]
    text = problem
    if values is not None:
        text = f"{problem} (value {values.iloc[first]!r})"
    if len(idx) > 1:
        text += f"; {len(idx) - 1} more row(s) with the same problem"
    raise CSVValidationError(path, int(lines.iloc[first]), field, text)


def _read_table(path: Path, required: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """Read a CSV as strings with normalised headers and a ``_line`` column (1-based file line)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError as exc:
        raise CSVValidationError(path, None, None, f"not a UTF-8 text file ({exc.reason})") from exc
    if not header or not any(h.strip() for h in header):
        raise CSVValidationError(path, 1, None, "empty file: expected a header line")
    columns = [_norm_header(h) for h in header]
    seen: set[str] = set()
    for col in columns:
        if col in seen:
            raise CSVValidationError(path, 1, col, "column appears twice in the header")
        seen.add(col)
    for col in required:
        if col not in columns:
            raise CSVValidationError(
                path, 1, col, f"missing required column {col!r} (header has: {', '.join(header)})"
            )
    try:
        table = pd.read_csv(
            path, dtype=str, header=0, names=columns, skip_blank_lines=False, encoding="utf-8-sig",
            skipinitialspace=True,
        )
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise CSVValidationError(path, int(m.group(1)) if m else None, None, f"malformed CSV: {exc}") from exc
    table["_line"] = np.arange(2, len(table) + 2)
    data_cols = [c for c in columns]
    stripped = table[data_cols].apply(lambda s: s.str.strip())
    table[data_cols] = stripped.mask(stripped == "")
    table = table[table[data_cols].notna().any(axis=1)].reset_index(drop=True)
    return table, columns


def _parse_dates(path: Path, table: pd.DataFrame) -> pd.Series:
    raw = table["date"]
    lines = table["_line"]
    _fail_first(path, raw.isna(), lines, "date", "missing date")
    ok = raw.str.match(_DATE_RE)
    parsed = pd.to_datetime(raw.str.slice(0, 10).where(ok), format="%Y-%m-%d", errors="coerce")
    _fail_first(path, parsed.isna(), lines, "date", "unparseable date, expected YYYY-MM-DD", raw)
    if len(parsed):
        sessions = calendar.sessions(parsed.min(), parsed.max())
        _fail_first(path, ~parsed.isin(sessions), lines, "date",
                    "not an NYSE session (weekend or exchange holiday)", raw)
    return parsed.astype("datetime64[ns]")


def _parse_numbers(path: Path, table: pd.DataFrame, fields: Sequence[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=table.index)
    for col in fields:
        if col not in table:
            out[col] = np.nan
            continue
        raw = table[col]
        num = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = raw.notna() & ~np.isfinite(num)
        _fail_first(path, bad, table["_line"], col, "not a number", raw)
        out[col] = num
    return out


def _parse_symbols(path: Path, table: pd.DataFrame) -> pd.Series:
    raw = table["symbol"]
    lines = table["_line"]
    _fail_first(path, raw.isna(), lines, "symbol", "missing symbol")
    symbols = raw.str.upper()
    # classify each distinct symbol once (not once per row)
    ok = {s: is_valid_public_symbol(s) and not is_private_symbol(s) for s in symbols.dropna().unique()}
    valid = symbols.map(ok).fillna(False).astype(bool)
    _fail_first(path, ~valid, lines, "symbol", "not a valid public market symbol", raw)
    return symbols


def _check_duplicates(path: Path, frame: pd.DataFrame, lines: pd.Series) -> None:
    dup = frame.duplicated(["symbol", "date"], keep="first")
    if dup.any():
        i = int(dup.to_numpy().nonzero()[0][0])
        sym, day = frame["symbol"].iloc[i], frame["date"].iloc[i]
        first = frame.index[(frame["symbol"] == sym) & (frame["date"] == day)][0]
        raise CSVValidationError(
            path, int(lines.iloc[i]), "date",
            f"duplicate row for {sym} on {day.date()} (first at row {int(lines.loc[first])})",
        )


def parse_price_file(path: str | os.PathLike) -> pd.DataFrame:
    """Parse and validate one price file.

    Parameters
    ----------
    path : path-like
        A ``SYMBOL.csv`` file or a long file with a ``symbol`` column.

    Returns
    -------
    DataFrame
        ``date, symbol, open, high, low, close, adj_close, volume`` plus ``_file`` and ``_line``
        (the 1-based line number), one row per data line. Prices USD, volume shares, NaN = missing.

    Raises
    ------
    CSVValidationError
        For the first problem found (file, line, field).
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        header = next(csv.reader(fh), None) or []
    long = "symbol" in {_norm_header(h) for h in header}
    table, columns = _read_table(path, ["date", "symbol", "close"] if long else ["date", "close"])
    lines = table["_line"]
    if long:
        symbols = _parse_symbols(path, table)
    else:
        symbol = path.stem.strip().upper()
        if not is_valid_public_symbol(symbol) or is_private_symbol(symbol):
            raise CSVValidationError(
                path, None, None,
                f"file name must be <SYMBOL>.csv with a public market symbol, or the file needs a "
                f"'symbol' column; {path.name!r} is neither",
            )
        symbols = pd.Series(symbol, index=table.index, dtype=object)
    dates = _parse_dates(path, table)
    numbers = _parse_numbers(path, table, _PRICE_FIELDS + ["volume"])
    _fail_first(path, numbers["close"].isna(), lines, "close", "missing close (required on every row)")
    for col in _PRICE_FIELDS:
        _fail_first(path, numbers[col] <= 0, lines, col, "price must be positive", table.get(col))
    _fail_first(path, numbers["volume"] < 0, lines, "volume", "volume must not be negative", table.get("volume"))
    _fail_first(path, numbers["high"] < numbers["low"], lines, "high", "high is below low",
                table["high"] + " < " + table["low"] if "high" in table and "low" in table else None)
    if "adj_close" not in columns:
        numbers["adj_close"] = numbers["close"]
    frame = pd.concat([pd.DataFrame({"date": dates, "symbol": symbols}), numbers], axis=1)
    _check_duplicates(path, frame, lines)
    frame["_file"] = str(path)
    frame["_line"] = lines.to_numpy()
    return frame


def parse_valuations_file(path: str | os.PathLike) -> pd.DataFrame:
    """Parse and validate ``valuations.csv``.

    Returns
    -------
    DataFrame
        ``date, symbol`` and every valuation field (NaN when the column is absent or the cell blank),
        plus ``_file``/``_line``.

    Raises
    ------
    CSVValidationError
        For the first problem found, or when no valuation column is present.
    """
    path = Path(path)
    table, columns = _read_table(path, ["date", "symbol"])
    if not set(columns) & set(_VALUE_FIELDS):
        raise CSVValidationError(
            path, 1, None, f"no valuation column; expected any of {', '.join(_VALUE_FIELDS)}"
        )
    symbols = _parse_symbols(path, table)
    dates = _parse_dates(path, table)
    numbers = _parse_numbers(path, table, _VALUE_FIELDS)
    frame = pd.concat([pd.DataFrame({"date": dates, "symbol": symbols}), numbers], axis=1)
    _check_duplicates(path, frame, table["_line"])
    frame["_file"] = str(path)
    frame["_line"] = table["_line"].to_numpy()
    return frame


@dataclass
class _State:
    signature: tuple
    prices: pd.DataFrame
    valuations: pd.DataFrame | None
    gap_report: pd.DataFrame


class CSVDirectoryProvider:
    """Serve a directory of user CSV files through the provider protocol (``source='csv'``).

    Parameters
    ----------
    directory : path-like
        The directory holding ``SYMBOL.csv`` / long files and optionally ``valuations.csv``.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        When ``directory`` does not exist or is not a directory.

    Notes
    -----
    Files are read lazily on the first fetch (or :meth:`load`) and cached by modification time.
    ``reads`` counts file parses (for tests and diagnostics).
    """

    name = SOURCE

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory).expanduser()
        if not self.directory.exists():
            raise FileNotFoundError(f"CSV price directory {str(self.directory)!r} does not exist")
        if not self.directory.is_dir():
            raise NotADirectoryError(f"CSV price directory {str(self.directory)!r} is not a directory")
        self._lock = threading.Lock()
        self._file_cache: dict[Path, tuple[int, int, pd.DataFrame]] = {}
        self._state: _State | None = None
        self.reads = 0

    def __repr__(self) -> str:
        return f"CSVDirectoryProvider({str(self.directory)!r})"

    # ------------------------------------------------------------------ loading

    def _files(self) -> list[tuple[Path, int, int]]:
        out = []
        for entry in sorted(os.scandir(self.directory), key=lambda e: e.name):
            if entry.name.startswith(".") or not entry.name.lower().endswith(".csv") or not entry.is_file():
                continue
            st = entry.stat()
            out.append((Path(entry.path), st.st_mtime_ns, st.st_size))
        return out

    def _parse_cached(self, path: Path, mtime: int, size: int, parser) -> pd.DataFrame:
        hit = self._file_cache.get(path)
        if hit is not None and hit[0] == mtime and hit[1] == size:
            return hit[2]
        frame = parser(path)
        self.reads += 1
        self._file_cache[path] = (mtime, size, frame)
        return frame

    def load(self) -> None:
        """Read and validate the directory (a no-op when no file changed since the last load).

        Raises
        ------
        CSVValidationError
            For the first problem found; the previously loaded state (if any) is kept.
        """
        with self._lock:
            files = self._files()
            signature = tuple((p.name, m, s) for p, m, s in files)
            if self._state is not None and self._state.signature == signature:
                return
            price_frames, valuations = [], None
            for path, mtime, size in files:
                if path.name.lower() == VALUATIONS_FILE:
                    valuations = self._parse_cached(path, mtime, size, parse_valuations_file)
                else:
                    price_frames.append(self._parse_cached(path, mtime, size, parse_price_file))
            live = {p for p, _, _ in files}
            self._file_cache = {p: v for p, v in self._file_cache.items() if p in live}
            prices = (
                pd.concat(price_frames, ignore_index=True) if price_frames
                else empty_frame(PRICE_COLUMNS).assign(_file="", _line=0)
            )
            dup = prices.duplicated(["symbol", "date"], keep="first")
            if dup.any():
                i = int(dup.to_numpy().nonzero()[0][0])
                row = prices.iloc[i]
                first = prices[(prices["symbol"] == row["symbol"]) & (prices["date"] == row["date"])].iloc[0]
                raise CSVValidationError(
                    row["_file"], int(row["_line"]), "date",
                    f"duplicate row for {row['symbol']} on {row['date'].date()} "
                    f"(already in {first['_file']}, row {int(first['_line'])})",
                )
            prices = prices.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
            self._state = _State(signature, prices, valuations, _gap_report(prices))

    def _loaded(self) -> _State:
        self.load()
        assert self._state is not None
        return self._state

    # ------------------------------------------------------------------ reports

    @property
    def gaps(self) -> dict[str, int]:
        """Missing sessions between each symbol's first and last date, for symbols with any."""
        report = self._loaded().gap_report
        report = report[report["missing_sessions"] > 0]
        return dict(zip(report["symbol"], report["missing_sessions"].astype(int)))

    def gap_report(self) -> pd.DataFrame:
        """Per symbol: ``symbol, first_date, last_date, rows, missing_sessions``."""
        return self._loaded().gap_report.copy()

    def symbols(self) -> list[str]:
        """Symbols with at least one price row."""
        return sorted(self._loaded().prices["symbol"].unique())

    def gaps_in(self, symbols: Sequence[str], start: date, end: date) -> dict[str, int]:
        """Missing sessions inside ``[start, end]`` ∩ each symbol's history, for symbols with any."""
        prices = self._loaded().prices
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        sub = prices[prices["symbol"].isin(list(symbols)) & (prices["date"] >= lo) & (prices["date"] <= hi)]
        return _gap_counts(sub)

    # ------------------------------------------------------------------ protocol

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        """Rows of the requested symbols within ``[start, end]`` (``source='csv'``).

        Returns
        -------
        FetchResult
            ``PRICE_COLUMNS`` rows; failures ``"no file"`` for a symbol no file provides and
            ``"no rows in START..END (file covers A..B)"`` for one whose history misses the range.

        Raises
        ------
        CSVValidationError
            When any file in the directory is invalid (nothing is served from a bad directory).
        """
        prices = self._loaded().prices
        wanted = list(dict.fromkeys(symbols))
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        mine = prices[prices["symbol"].isin(wanted)]
        sub = mine[(mine["date"] >= lo) & (mine["date"] <= hi)]
        frame = sub.assign(source=SOURCE)[PRICE_COLUMNS].sort_values(["date", "symbol"]).reset_index(drop=True)
        delivered = set(frame["symbol"])
        spans = mine.groupby("symbol")["date"].agg(["min", "max"])
        failures = {}
        for sym in wanted:
            if sym in delivered:
                continue
            if sym in spans.index:
                a, b = spans.loc[sym]
                failures[sym] = f"no rows in {lo.date()}..{hi.date()} (file covers {a.date()}..{b.date()})"
            else:
                failures[sym] = "no file"
        return FetchResult(frame, failures)

    def fetch_valuations(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        """Rows of ``valuations.csv`` for the requested symbols within ``[start, end]``.

        Returns
        -------
        FetchResult
            ``VALUATION_COLUMNS`` rows (``source='csv'``); failures ``"no valuations file"`` when the
            directory has none, ``"no valuations in START..END"`` for a symbol without rows there.
        """
        state = self._loaded()
        wanted = list(dict.fromkeys(symbols))
        if state.valuations is None:
            return FetchResult(empty_frame(VALUATION_COLUMNS), {s: "no valuations file" for s in wanted})
        vals = state.valuations
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        sub = vals[vals["symbol"].isin(wanted) & (vals["date"] >= lo) & (vals["date"] <= hi)]
        frame = sub.assign(source=SOURCE)[VALUATION_COLUMNS].sort_values(["date", "symbol"]).reset_index(drop=True)
        delivered = set(frame["symbol"])
        failures = {s: f"no valuations in {lo.date()}..{hi.date()}" for s in wanted if s not in delivered}
        return FetchResult(frame, failures)


def _gap_counts(prices: pd.DataFrame) -> dict[str, int]:
    report = _gap_report(prices)
    report = report[report["missing_sessions"] > 0]
    return dict(zip(report["symbol"], report["missing_sessions"].astype(int)))


def _gap_report(prices: pd.DataFrame) -> pd.DataFrame:
    """Per symbol: first/last date, rows, and sessions missing in between (vectorised)."""
    cols = ["symbol", "first_date", "last_date", "rows", "missing_sessions"]
    if prices.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            cols, ["object", "datetime64[ns]", "datetime64[ns]", "int64", "int64"])})
    sessions = calendar.sessions(prices["date"].min(), prices["date"].max())
    pos = pd.Series(sessions.get_indexer(prices["date"]), index=prices.index)
    g = pd.DataFrame({"symbol": prices["symbol"], "date": prices["date"], "pos": pos}).groupby("symbol")
    report = g.agg(first_date=("date", "min"), last_date=("date", "max"), rows=("date", "size"),
                   lo=("pos", "min"), hi=("pos", "max")).reset_index()
    report["missing_sessions"] = (report["hi"] - report["lo"] + 1 - report["rows"]).astype("int64")
    return report[cols]
