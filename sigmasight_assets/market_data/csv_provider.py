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

    date         required  YYYY-MM-DD (a trailing midnight time such as "2024-01-02 00:00:00-05:00"
                           is accepted); must be an NYSE session
    close        required unless adj_close is there: USD as traded that day, > 0, every row
    adj_close    optional  USD, > 0; when the column is absent it is the close (a blank cell in a
                           present column rejects the row: the warehouse needs a value)
    open, high, low        optional USD as traded, > 0; blank cells stay missing (NaN)
    volume       optional  shares, ≥ 0; blank stays missing
    dividend     optional  cash per share going ex that day (USD, per post-split share on a split
                           day), ≥ 0; 0 when the column is absent or the cell blank
    split_ratio  optional  new shares per old share of a split effective that day (4 for 4:1), > 0;
                           1 when the column is absent or the cell blank

A file with ``adj_close`` but no ``close`` column is a file of adjusted prices: its close is the
adjusted close, and ``dividend``/``split_ratio`` are NaN ("actions unknown", see :mod:`.base`), so
returns from it are on the adjusted basis. Such a file must not have ``dividend``/``split_ratio``
columns (actions need the close as traded).

Blank cells and the usual NA spellings (``NA``, ``NaN``, ``null``, ``N/A``) are missing values.
Blank lines are skipped.

Quarantine
----------
One bad file or row never stops the others (DESIGN §7). Every problem is described by a
:class:`CSVValidationError` naming the file, the 1-based line number in that file (the header is
line 1) and the field, and its one-line text is the reason reported:

* a *bad file* (unreadable, not UTF-8, zero bytes or no header, malformed CSV, a header without a
  required column or with a column twice, a file name that is no symbol) delivers nothing. A
  single-symbol file's symbol is a failure in :attr:`FetchResult.failures` with that reason; a
  symbol no readable file provides is reported as ``"no file"`` plus the names of the unreadable
  files whose symbols are unknown (a long file, or one whose header could not be read);
* a *bad row* (an unparseable, missing or non-session date, a missing or invalid symbol, a value
  that is not a number, a row breaking a rule of :mod:`.quality`: a non-positive price, a negative
  volume or dividend, a split ratio ≤ 0, ``high < low``) is dropped and reported in
  :attr:`FetchResult.rejected` (``date`` NaT when the date itself is unreadable); the symbol's
  other rows are delivered. A symbol whose every row in the requested range was rejected is also
  a failure;
* a (symbol, date) given by several rows, within a file or across files: identical copies are read
  once; copies that disagree are all rejected, each naming where another copy is.

:meth:`CSVDirectoryProvider.problems` lists every bad file and row of the directory, requested or
not. Only a directory that cannot be listed at all raises :class:`CSVValidationError`.

Gaps (a session missing between a symbol's first and last date) are not errors: the prices stay
missing (never filled) and the count of missing sessions per symbol is reported in :attr:`gaps`
and, per request, by :meth:`gaps_in`.

``valuations.csv`` (optional): columns ``date, symbol`` plus any of ``pe, forward_pe,
provider_beta, week52_high, week52_low, market_cap, dividend_yield`` (USD; the dividend yield as a
decimal fraction, 0.0123 = 1.23 %), quarantined the same way (rules of
:func:`.quality.screen_valuations`). A directory without it serves "no valuations" as a skip
(:attr:`FetchResult.skipped`), not an error.

Parsed files are cached by (modification time, size): repeated fetches do not re-read unchanged
files, and an edited file is re-read on the next fetch.
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
from .base import PRICE_COLUMNS, REJECTED_COLUMNS, VALUATION_COLUMNS, FetchResult, empty_frame, empty_rejected
from .quality import RowVerdicts, duplicates, row_problems
from .symbols import is_private_symbol, is_valid_public_symbol

SOURCE = "csv"
VALUATIONS_FILE = "valuations.csv"
NO_VALUATIONS = f"no valuations (no {VALUATIONS_FILE} in the directory)"

_ALIASES = {"adj close": "adj_close", "adjclose": "adj_close", "adjusted_close": "adj_close"}
_PRICE_FIELDS = ["open", "high", "low", "close", "adj_close"]
_NUMBER_FIELDS = _PRICE_FIELDS + ["volume", "dividend", "split_ratio"]
_ACTION_FIELDS = ["dividend", "split_ratio"]
_VALUE_FIELDS = [c for c in VALUATION_COLUMNS if c not in ("date", "symbol", "source")]
_DATE_RE = r"^\d{4}-\d{2}-\d{2}(?:[ T]00:00(?::00(?:\.0+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
_ROW_COLUMNS = ["_file", "_line", "_field"]


class CSVValidationError(ValueError):
    """A problem with a user CSV file, or with the directory itself.

    Raised only when the directory cannot be listed; for a bad file or row it describes the
    problem, and ``str(error)`` is the one-line reason reported per symbol or row.

    Attributes
    ----------
    file : str
        Path of the offending file (or directory).
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


@dataclass
class ParsedFile:
    """One file's content after quarantine.

    Attributes
    ----------
    path : Path
        The file.
    frame : DataFrame
        The good rows: ``date, symbol`` and the file's fields (prices: ``open … split_ratio``;
        valuations: the valuation fields), plus ``_file`` and ``_line``.
    rejected : DataFrame
        The dropped rows: ``date`` (NaT when unreadable), ``symbol`` (None when unreadable),
        ``reason`` (one line: file, row, field, problem), plus ``_file``, ``_line``, ``_field``.
    error : CSVValidationError or None
        A file-level problem; then ``frame`` and ``rejected`` are empty.
    long : bool or None
        Whether the file has a ``symbol`` column (None when its header could not be read).
    """

    path: Path
    frame: pd.DataFrame
    rejected: pd.DataFrame
    error: CSVValidationError | None = None
    long: bool | None = None

    @property
    def stem_symbol(self) -> str | None:
        """The symbol a single-symbol file's name gives, when it is a valid public symbol."""
        return _stem_symbol(self.path)


def _stem_symbol(path: Path) -> str | None:
    stem = path.stem.strip().upper()
    return stem if is_valid_public_symbol(stem) and not is_private_symbol(stem) else None


def _empty_rows(fields: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in fields})
    frame.insert(0, "symbol", pd.Series(dtype="object"))
    frame.insert(0, "date", pd.Series(dtype="datetime64[ns]"))
    frame["_file"] = pd.Series(dtype="object")
    frame["_line"] = pd.Series(dtype="int64")
    return frame


def _empty_rejected_rows() -> pd.DataFrame:
    out = empty_rejected()
    out["_file"] = pd.Series(dtype="object")
    out["_line"] = pd.Series(dtype="int64")
    out["_field"] = pd.Series(dtype="object")
    return out


def _failed(path: Path, error: CSVValidationError, fields: Sequence[str], long: bool | None) -> ParsedFile:
    return ParsedFile(path, _empty_rows(fields), _empty_rejected_rows(), error, long)


def _norm_header(name: str) -> str:
    key = " ".join(str(name).strip().lower().split())
    return _ALIASES.get(key, key.replace(" ", "_"))


def _read_header(path: Path) -> list[str]:
    """The normalised header; raises :class:`CSVValidationError` for a file-level problem."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError as exc:
        raise CSVValidationError(path, None, None, f"not a UTF-8 text file ({exc.reason})") from exc
    except (OSError, csv.Error) as exc:
        raise CSVValidationError(path, None, None, f"unreadable ({exc})") from exc
    if not header or not any(h.strip() for h in header):
        raise CSVValidationError(path, 1, None, "empty file: expected a header line")
    return header


def _read_table(path: Path, header: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The file as strings with normalised headers and a ``_line`` column (1-based file line)."""
    columns = [_norm_header(h) for h in header]
    seen: set[str] = set()
    for col in columns:
        if col in seen:
            raise CSVValidationError(path, 1, col, "column appears twice in the header")
        seen.add(col)
    try:
        table = pd.read_csv(
            path, dtype=str, header=0, names=columns, skip_blank_lines=False, encoding="utf-8-sig",
            skipinitialspace=True,
        )
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise CSVValidationError(path, int(m.group(1)) if m else None, None, f"malformed CSV: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CSVValidationError(path, None, None, f"unreadable ({exc})") from exc
    table["_line"] = np.arange(2, len(table) + 2)
    stripped = table[columns].apply(lambda s: s.str.strip())
    table[columns] = stripped.mask(stripped == "")
    table = table[table[columns].notna().any(axis=1)].reset_index(drop=True)
    return table, columns


def _require(path: Path, header: list[str], columns: list[str], required: Sequence[str]) -> None:
    for col in required:
        if col not in columns:
            raise CSVValidationError(
                path, 1, col, f"missing required column {col!r} (header has: {', '.join(header)})"
            )


def _parse_dates(table: pd.DataFrame, verdicts: RowVerdicts) -> pd.Series:
    raw = table["date"]
    verdicts.flag(raw.isna(), "date", "missing date")
    ok = raw.str.match(_DATE_RE, na=False)
    parsed = pd.to_datetime(raw.str.slice(0, 10).where(ok), format="%Y-%m-%d", errors="coerce")
    verdicts.flag(raw.notna() & parsed.isna(), "date", "unparseable date, expected YYYY-MM-DD", raw)
    if parsed.notna().any():
        sessions = calendar.sessions(parsed.min(), parsed.max())
        verdicts.flag(parsed.notna() & ~parsed.isin(sessions), "date",
                      "not an NYSE session (weekend or exchange holiday)", raw)
    return parsed.astype("datetime64[ns]")


def _parse_symbols(table: pd.DataFrame, verdicts: RowVerdicts) -> pd.Series:
    raw = table["symbol"]
    verdicts.flag(raw.isna(), "symbol", "missing symbol")
    symbols = raw.str.upper()
    # classify each distinct symbol once (not once per row)
    ok = {s: is_valid_public_symbol(s) and not is_private_symbol(s) for s in symbols.dropna().unique()}
    valid = symbols.map(ok).eq(True)
    verdicts.flag(raw.notna() & ~valid, "symbol", "not a valid public market symbol", raw)
    return symbols.where(valid)


def _parse_numbers(table: pd.DataFrame, fields: Sequence[str], verdicts: RowVerdicts) -> pd.DataFrame:
    out = pd.DataFrame(index=table.index)
    for col in fields:
        if col not in table:
            out[col] = np.nan
            continue
        raw = table[col]
        num = pd.to_numeric(raw, errors="coerce").astype("float64")
        verdicts.flag(raw.notna() & ~np.isfinite(num), col, "not a number", raw)
        out[col] = num
    return out


def _split_rows(path: Path, table: pd.DataFrame, frame: pd.DataFrame, verdicts: RowVerdicts,
                fields: Sequence[str]) -> ParsedFile:
    """Good rows and rejected rows (with their one-line reasons) of one parsed file."""
    lines = table["_line"].to_numpy()
    frame = frame.assign(_file=str(path), _line=lines)
    bad = verdicts.bad.to_numpy()
    good = frame.loc[~bad, ["date", "symbol", *fields, "_file", "_line"]].reset_index(drop=True)
    if not bad.any():
        return ParsedFile(path, good, _empty_rejected_rows())
    fld, problem = verdicts.field[bad], verdicts.problem[bad]
    reasons = [str(CSVValidationError(path, int(line), f, p)) for line, f, p in zip(lines[bad], fld, problem)]
    rejected = pd.DataFrame({
        "date": frame.loc[bad, "date"].to_numpy(),
        "symbol": frame.loc[bad, "symbol"].astype(object).to_numpy(),
        "reason": reasons,
        "_file": str(path),
        "_line": lines[bad],
        "_field": fld.to_numpy(),
    })
    rejected["date"] = rejected["date"].astype("datetime64[ns]")
    return ParsedFile(path, good, rejected)


def parse_price_file(path: str | os.PathLike) -> ParsedFile:
    """Parse one price file, quarantining bad rows (never raises for bad data).

    Parameters
    ----------
    path : path-like
        A ``SYMBOL.csv`` file or a long file with a ``symbol`` column.

    Returns
    -------
    ParsedFile
        ``frame``: ``date, symbol, open, high, low, close, adj_close, volume, dividend,
        split_ratio`` plus ``_file``/``_line`` (prices USD as traded, volume shares, NaN = missing;
        actions 0/1 when not given, NaN for an adjusted-only file); ``rejected``: the dropped rows
        with file/row/field reasons; or ``error`` for a file-level problem (see the module
        docstring). Duplicates across rows are judged by the directory (:meth:`CSVDirectoryProvider.load`).
    """
    path = Path(path)
    try:
        header = _read_header(path)
    except CSVValidationError as err:
        return _failed(path, err, _NUMBER_FIELDS, None)
    columns = [_norm_header(h) for h in header]
    long = "symbol" in columns
    try:
        price_col = "close" if "close" in columns or "adj_close" not in columns else "adj_close"
        _require(path, header, columns, ["date", "symbol", price_col] if long else ["date", price_col])
        if price_col == "adj_close":
            given = [c for c in _ACTION_FIELDS if c in columns]
            if given:
                raise CSVValidationError(
                    path, 1, given[0], "has corporate actions but no 'close' column: actions need the close "
                    "as traded (adj_close alone means adjusted prices, without dividend/split_ratio)",
                )
        if not long and _stem_symbol(path) is None:
            raise CSVValidationError(
                path, None, None,
                f"file name must be <SYMBOL>.csv with a public market symbol, or the file needs a "
                f"'symbol' column; {path.name!r} is neither",
            )
        table, columns = _read_table(path, header)
    except CSVValidationError as err:
        return _failed(path, err, _NUMBER_FIELDS, long)
    verdicts = RowVerdicts(table.index)
    dates = _parse_dates(table, verdicts)
    if long:
        symbols = _parse_symbols(table, verdicts)
    else:
        symbols = pd.Series(_stem_symbol(path), index=table.index, dtype=object)
    numbers = _parse_numbers(table, _NUMBER_FIELDS, verdicts)
    verdicts.flag(numbers[price_col].isna() & table[price_col].isna(), price_col,
                  f"missing {price_col} (required on every row)")
    if price_col == "adj_close":  # adjusted prices only: actions unknown
        numbers["close"] = numbers["adj_close"]
    else:
        if "adj_close" not in columns:
            numbers["adj_close"] = numbers["close"]
        # An absent column or a blank cell means no action that day (the usual export); a cell that
        # is not a number was rejected above and stays NaN.
        for col, none in (("dividend", 0.0), ("split_ratio", 1.0)):
            blank = table[col].isna() if col in table else pd.Series(True, index=table.index)
            numbers[col] = numbers[col].mask(blank, none)
    frame = pd.concat([pd.DataFrame({"date": dates, "symbol": symbols}), numbers[_NUMBER_FIELDS]], axis=1)
    clean = ~verdicts.bad
    if clean.any():
        verdicts.absorb(row_problems(frame[clean].assign(source=SOURCE), "prices"))
    return _split_rows(path, table, frame, verdicts, _NUMBER_FIELDS)


def parse_valuations_file(path: str | os.PathLike) -> ParsedFile:
    """Parse ``valuations.csv``, quarantining bad rows (never raises for bad data).

    Returns
    -------
    ParsedFile
        ``frame``: ``date, symbol`` and every valuation field (NaN when the column is absent or the
        cell blank) plus ``_file``/``_line``; ``rejected`` rows (a bad date or symbol, a value that is
        not a number, a rule of :func:`.quality.screen_valuations` broken); or ``error`` for a
        file-level problem, including a file without any valuation column.
    """
    path = Path(path)
    try:
        header = _read_header(path)
        columns = [_norm_header(h) for h in header]
        _require(path, header, columns, ["date", "symbol"])
        if not set(columns) & set(_VALUE_FIELDS):
            raise CSVValidationError(
                path, 1, None, f"no valuation column; expected any of {', '.join(_VALUE_FIELDS)}"
            )
        table, columns = _read_table(path, header)
    except CSVValidationError as err:
        return _failed(path, err, _VALUE_FIELDS, True)
    verdicts = RowVerdicts(table.index)
    dates = _parse_dates(table, verdicts)
    symbols = _parse_symbols(table, verdicts)
    numbers = _parse_numbers(table, _VALUE_FIELDS, verdicts)
    frame = pd.concat([pd.DataFrame({"date": dates, "symbol": symbols}), numbers], axis=1)
    clean = ~verdicts.bad
    if clean.any():
        verdicts.absorb(row_problems(frame[clean].assign(source=SOURCE), "daily_valuations"))
    return _split_rows(path, table, frame, verdicts, _VALUE_FIELDS)


def _drop_conflicting_duplicates(frame: pd.DataFrame, fields: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows kept, rejected copies) of good rows gathered from several files: identical copies of a
    (date, symbol) are read once, disagreeing copies are all rejected, each naming another copy (the
    first copy names the second, every later copy the first)."""
    if frame.empty:
        return frame, _empty_rejected_rows()
    dups = duplicates(frame[["date", "symbol", *fields]])
    conflict = dups["conflict"].to_numpy()
    keep = ~conflict & ~dups["repeat"].to_numpy()
    if not conflict.any():
        return frame[keep].reset_index(drop=True), _empty_rejected_rows()
    bad = frame[conflict]
    group = bad.groupby(["date", "symbol"], sort=False)
    is_first = (group.cumcount() == 0).to_numpy()
    other_file = np.where(is_first, group["_file"].shift(-1), group["_file"].transform("first"))
    other_line = np.where(is_first, group["_line"].shift(-1), group["_line"].transform("first"))
    reasons = [
        str(CSVValidationError(f, int(line), "date", f"{n} different rows for {sym} on {day.date()} (another at "
                                                     f"{Path(of).name}, row {int(ol)})"))
        for f, line, sym, day, n, of, ol in zip(bad["_file"], bad["_line"], bad["symbol"], bad["date"],
                                                dups.loc[conflict, "copies"], other_file, other_line)
    ]
    rejected = pd.DataFrame({
        "date": bad["date"].to_numpy(), "symbol": bad["symbol"].to_numpy(), "reason": reasons,
        "_file": bad["_file"].to_numpy(), "_line": bad["_line"].to_numpy(), "_field": "date",
    })
    return frame[keep].reset_index(drop=True), rejected


@dataclass
class _State:
    signature: tuple
    prices: pd.DataFrame
    rejected: pd.DataFrame
    file_errors: list[CSVValidationError]
    symbol_errors: dict[str, str]  # symbol -> reason, for a failed file that names its symbol
    unattributed: list[str]  # failed files whose symbols are unknown
    valuations: pd.DataFrame | None
    valuations_rejected: pd.DataFrame
    valuations_error: CSVValidationError | None
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
        self._file_cache: dict[Path, tuple[int, int, ParsedFile]] = {}
        self._state: _State | None = None
        self.reads = 0

    def __repr__(self) -> str:
        return f"CSVDirectoryProvider({str(self.directory)!r})"

    # ------------------------------------------------------------------ loading

    def _files(self) -> list[tuple[Path, int, int]]:
        try:
            entries = sorted(os.scandir(self.directory), key=lambda e: e.name)
        except OSError as exc:
            raise CSVValidationError(self.directory, None, None, f"cannot list the CSV price directory ({exc})") from exc
        out = []
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.lower().endswith(".csv") or not entry.is_file():
                continue
            st = entry.stat()
            out.append((Path(entry.path), st.st_mtime_ns, st.st_size))
        return out

    def _parse_cached(self, path: Path, mtime: int, size: int, parser) -> ParsedFile:
        hit = self._file_cache.get(path)
        if hit is not None and hit[0] == mtime and hit[1] == size:
            return hit[2]
        parsed = parser(path)
        self.reads += 1
        self._file_cache[path] = (mtime, size, parsed)
        return parsed

    def load(self) -> None:
        """Read the directory (a no-op when no file changed since the last load).

        Bad files and rows are quarantined (see the module docstring), never raised.

        Raises
        ------
        CSVValidationError
            Only when the directory itself cannot be listed.
        """
        with self._lock:
            files = self._files()
            signature = tuple((p.name, m, s) for p, m, s in files)
            if self._state is not None and self._state.signature == signature:
                return
            parsed_prices: list[ParsedFile] = []
            valuations: ParsedFile | None = None
            for path, mtime, size in files:
                if path.name.lower() == VALUATIONS_FILE:
                    valuations = self._parse_cached(path, mtime, size, parse_valuations_file)
                else:
                    parsed_prices.append(self._parse_cached(path, mtime, size, parse_price_file))
            live = {p for p, _, _ in files}
            self._file_cache = {p: v for p, v in self._file_cache.items() if p in live}
            self._state = _build_state(signature, parsed_prices, valuations)

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
        """Symbols with at least one good price row."""
        return sorted(self._loaded().prices["symbol"].unique())

    def gaps_in(self, symbols: Sequence[str], start: date, end: date) -> dict[str, int]:
        """Missing sessions inside ``[start, end]`` ∩ each symbol's history, for symbols with any."""
        prices = self._loaded().prices
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        sub = prices[prices["symbol"].isin(list(symbols)) & (prices["date"] >= lo) & (prices["date"] <= hi)]
        return _gap_counts(sub)

    @property
    def file_errors(self) -> list[CSVValidationError]:
        """Every file of the directory that could not be used at all (prices and valuations)."""
        state = self._loaded()
        return state.file_errors + ([state.valuations_error] if state.valuations_error else [])

    def problems(self) -> pd.DataFrame:
        """Every bad file and rejected row of the directory, whatever was requested.

        Returns
        -------
        DataFrame
            ``file, row, field, symbol, date, reason`` (``row``/``field``/``symbol``/``date`` missing
            for a file-level problem), ordered by file and row; ``reason`` is the one-line text.
        """
        state = self._loaded()
        files = pd.DataFrame({
            "file": [e.file for e in self.file_errors],
            "row": pd.array([e.row for e in self.file_errors], dtype="Int64"),
            "field": [e.field for e in self.file_errors],
            "symbol": None, "date": pd.NaT, "reason": [str(e) for e in self.file_errors],
        })
        rows = pd.concat([state.rejected, state.valuations_rejected], ignore_index=True)
        rows = pd.DataFrame({"file": rows["_file"], "row": rows["_line"].astype("Int64"), "field": rows["_field"],
                             "symbol": rows["symbol"], "date": rows["date"], "reason": rows["reason"]})
        out = pd.concat([files, rows], ignore_index=True) if len(files) else rows
        return out.sort_values(["file", "row"], kind="stable", na_position="first").reset_index(drop=True)

    # ------------------------------------------------------------------ protocol

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        """Rows of the requested symbols within ``[start, end]`` (``source='csv'``).

        Returns
        -------
        FetchResult
            ``PRICE_COLUMNS`` rows; ``rejected`` rows of the requested symbols in the range (and
            those whose date is unreadable); ``failures``: the file's problem for a symbol whose
            file could not be read, ``"every row in START..END was rejected (N); e.g. …"``,
            ``"no rows in START..END (file covers A..B)"``, or ``"no file"`` (naming the unreadable
            files that might have held it).
        """
        state = self._loaded()
        wanted = list(dict.fromkeys(symbols))
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        prices = state.prices
        mine = prices[prices["symbol"].isin(wanted)]
        sub = mine[(mine["date"] >= lo) & (mine["date"] <= hi)]
        frame = sub.assign(source=SOURCE)[PRICE_COLUMNS].sort_values(["date", "symbol"]).reset_index(drop=True)
        rejected = _rejected_in(state.rejected, wanted, lo, hi)
        delivered = set(frame["symbol"])
        spans = mine.groupby("symbol")["date"].agg(["min", "max"])
        failures = {}
        for sym in wanted:
            if sym in delivered:
                continue
            bad = rejected[rejected["symbol"] == sym]
            if sym in state.symbol_errors:
                failures[sym] = state.symbol_errors[sym]
            elif len(bad):
                failures[sym] = (f"every row in {lo.date()}..{hi.date()} was rejected ({len(bad)}); "
                                 f"e.g. {bad['reason'].iloc[0]}")
            elif sym in spans.index:
                a, b = spans.loc[sym]
                failures[sym] = f"no rows in {lo.date()}..{hi.date()} (file covers {a.date()}..{b.date()})"
            elif state.unattributed:
                failures[sym] = (f"no file ({len(state.unattributed)} unreadable file(s) might hold it: "
                                 f"{', '.join(state.unattributed)})")
            else:
                failures[sym] = "no file"
        return FetchResult(frame, failures, {}, rejected)

    def fetch_valuations(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        """Rows of ``valuations.csv`` for the requested symbols within ``[start, end]``.

        Returns
        -------
        FetchResult
            ``VALUATION_COLUMNS`` rows (``source='csv'``) and ``rejected`` rows; every symbol
            ``skipped`` with "no valuations (no valuations.csv in the directory)" when the directory
            has none; every symbol a failure naming the file's problem when it cannot be read; a
            failure ``"no valuations in START..END"`` (or "every row … was rejected") for a symbol
            without rows there.
        """
        state = self._loaded()
        wanted = list(dict.fromkeys(symbols))
        if state.valuations_error is not None:
            return FetchResult(empty_frame(VALUATION_COLUMNS), {s: str(state.valuations_error) for s in wanted})
        if state.valuations is None:
            return FetchResult(empty_frame(VALUATION_COLUMNS), {}, {s: NO_VALUATIONS for s in wanted})
        vals = state.valuations
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        sub = vals[vals["symbol"].isin(wanted) & (vals["date"] >= lo) & (vals["date"] <= hi)]
        frame = sub.assign(source=SOURCE)[VALUATION_COLUMNS].sort_values(["date", "symbol"]).reset_index(drop=True)
        rejected = _rejected_in(state.valuations_rejected, wanted, lo, hi)
        delivered = set(frame["symbol"])
        failures = {}
        for sym in wanted:
            if sym in delivered:
                continue
            bad = rejected[rejected["symbol"] == sym]
            failures[sym] = (f"every row in {lo.date()}..{hi.date()} was rejected ({len(bad)}); e.g. "
                             f"{bad['reason'].iloc[0]}" if len(bad) else f"no valuations in {lo.date()}..{hi.date()}")
        return FetchResult(frame, failures, {}, rejected)


def _rejected_in(rejected: pd.DataFrame, symbols: Sequence[str], lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
    """Rejected rows of ``symbols`` dated in [lo, hi] or with an unreadable date."""
    if rejected.empty:
        return empty_rejected()
    dates = rejected["date"]
    keep = rejected["symbol"].isin(list(symbols)) & (dates.isna() | ((dates >= lo) & (dates <= hi)))
    return rejected.loc[keep, REJECTED_COLUMNS].sort_values(["date", "symbol"], na_position="first").reset_index(drop=True)


def _build_state(signature: tuple, parsed: list[ParsedFile], valuations: ParsedFile | None) -> _State:
    file_errors = [p.error for p in parsed if p.error is not None]
    symbol_errors: dict[str, str] = {}
    unattributed: list[str] = []
    for p in parsed:
        if p.error is None:
            continue
        if p.long is None:  # header unreadable: the name suggests a symbol, but it may be a long file
            unattributed.append(p.path.name)
            if p.stem_symbol:
                symbol_errors.setdefault(p.stem_symbol, str(p.error))
        elif p.long:
            unattributed.append(p.path.name)
        elif p.stem_symbol:
            symbol_errors.setdefault(p.stem_symbol, str(p.error))
    good = [p.frame for p in parsed if p.error is None and len(p.frame)]
    prices = pd.concat(good, ignore_index=True) if good else _empty_rows(_NUMBER_FIELDS)
    prices, dup_rejected = _drop_conflicting_duplicates(prices, _NUMBER_FIELDS)
    rejected = pd.concat([*(p.rejected for p in parsed if len(p.rejected)), dup_rejected], ignore_index=True) \
        if any(len(p.rejected) for p in parsed) or len(dup_rejected) else _empty_rejected_rows()
    prices = prices.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    vals, vals_rejected, vals_error = None, _empty_rejected_rows(), None
    if valuations is not None:
        if valuations.error is not None:
            vals_error = valuations.error
        else:
            vals, dup = _drop_conflicting_duplicates(valuations.frame, _VALUE_FIELDS)
            vals_rejected = pd.concat([valuations.rejected, dup], ignore_index=True)
    return _State(signature, prices, rejected, file_errors, symbol_errors, unattributed, vals, vals_rejected,
                  vals_error, _gap_report(prices))


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
