"""Yahoo Finance prices and valuations through :mod:`yfinance` (the production provider).

Prices
------
Symbols are split into batches of ``batch_size`` and every batch is one ``yfinance.download`` call
(``auto_adjust=False, actions=True``: the unadjusted ``Close`` with ``Adj Close`` beside it, and the
``Dividends`` and ``Stock Splits`` of every bar; ``threads=False`` because the concurrency is ours:
at most ``max_workers`` batches run at once in a thread pool).

Prices as traded. Yahoo's ``Close`` (and Open/High/Low) is *not* what traded: it is split-adjusted
to the day of the fetch, its ``Volume`` is multiplied by the later splits and its ``Dividends`` are
per current share (AAPL's close before its 4:1 split of 2020-08-31 comes back as about 124.81, not
the 499.23 it traded at). :func:`normalise_download` turns every row back into prices as traded:
with ``F_D`` the product of the split ratios strictly after day ``D`` up to the fetch, it multiplies
the day's open, high, low, close and dividend by ``F_D`` and divides its volume by ``F_D``. A nightly
fetch of day ``D`` has ``F_D = 1``; a history fetch made later undoes the splits since, so both store
the same row for ``D``. To know the splits after the end of a history range, the request is
*extended to the fetch date*: the download asks for ``[start, max(end, today)]`` and the bars after
``end`` are used only for their ``Stock Splits``, then dropped. Only splits on or before the ticker's
last priced bar count (Yahoo lists an announced split before it applies it to the history). Prices are
then rounded to the US tick (a cent at or above $1, 1/100 of a cent below: SEC Rule 612), dividends
to 1e-6 and volumes to whole shares. Yahoo sends float32 values (about 7 significant digits), so
without rounding the same day fetched before and after a split would differ in the last digits:
``float32(1824.30 / 4) × 4`` is 1824.2999 or 1824.3001, but it is 1824.30 to the cent. ``Adj Close``
is kept as Yahoo sent it (the convenience ``adj_close``, adjusted as of the fetch). ``dividend`` is
the cash per share going ex that day (0 when none), ``split_ratio`` the new shares per old
(yfinance's ``Stock Splits``, 0 there meaning none, becomes 1).

``yfinance.download`` (1.7) does not raise for a failing ticker: it catches the error, logs it on the
``yfinance`` logger as ``"['AAA', 'BBB']: YFRateLimitError('Too Many Requests. ...')"`` and returns
all-NaN columns for the ticker. The provider therefore listens to that logger while its own thread
runs the call (records are matched by thread id, so concurrent batches do not mix) and reads the
per-ticker reasons from it. A ticker with no usable row is a failure with that reason, or
``"no data returned"`` when yfinance logged nothing. (If an application silences the ``yfinance``
logger above ERROR, the reasons are lost: failures then read "no data returned", are not retried,
and an outage is not recognised as one.)

Transient errors are retried with exponential backoff and jitter (``tenacity``): a rate limit
(``YFRateLimitError``, HTTP 429, or a message saying "Too Many Requests"/"Rate limited") or a
connection-type error (DNS, refused/reset connection, timeouts, TLS, proxy, HTTP 5xx). A retry asks
again only for the tickers that failed transiently. When every requested symbol ends in a transient
failure and no row at all was delivered, Yahoo is unreachable: one
:class:`~sigmasight_assets.market_data.base.ProviderUnavailableError` is raised instead of a failure
per symbol.

Normalisation of the layouts yfinance returns (all vectorised):

* columns ``(Price, Ticker)`` (``group_by='column'``) or ``(Ticker, Price)`` (``group_by='ticker'``),
  or flat columns for a single ticker (``multi_level_index=False``); the level holding the field
  names is detected, so either order works;
* actions unknown: when the response lacks ``Dividends``/``Stock Splits`` (a caller-supplied
  downloader without ``actions``) or ``Adj Close`` (one with ``auto_adjust=True``, whose ``Close`` is
  already adjusted), the close cannot be turned back into prices as traded. The row then follows the
  "actions unknown" convention of :mod:`.base`: ``dividend`` and ``split_ratio`` are NaN and
  ``close`` is the adjusted close (``Adj Close`` when present, with open/high/low scaled by the same
  ratio as Yahoo's own auto-adjustment does), so returns are on the adjusted basis;
* a tz-aware index → its wall-clock date (daily bars are stamped at midnight exchange time; dropping
  the tz keeps the session label, whereas converting to another zone could shift it by a day);
* a price ≤ 0 is bad data and becomes NaN (never a zero price); rows with no price at all (a ticker
  absent on a date another ticker traded, or an event-only row) are dropped after their split has
  been counted; duplicate dates per ticker (Yahoo sometimes repeats the live bar) collapse to one row
  keeping the last non-missing value per column (and the largest dividend and split of the copies);
  a missing event cell on a priced bar is no event (yfinance writes 0 on every bar it has; NaN only
  appears where download aligned a ticker onto another ticker's dates);
* ``volume`` is in shares (float so it can be NaN).

Valuations
----------
``yfinance.Ticker(symbol).info`` is a *current snapshot*: Yahoo offers no history of PE, beta or
market cap through it. The provider therefore serves one row per symbol dated at the latest session
``≤ min(end, today)`` and only when that date lies in ``[start, end]`` and is no more than
``snapshot_max_age_sessions`` sessions before the latest session of today; otherwise (a historical
backfill) every symbol is *skipped* (``FetchResult.skipped``, not an error) with a reason saying
so. History is never faked from today's snapshot.

Field mapping: ``pe ← trailingPE``, ``forward_pe ← forwardPE``, ``provider_beta ← beta`` (ETFs have
``beta3Year`` instead), ``week52_high/low ← fiftyTwoWeekHigh/Low`` (USD), ``market_cap ← marketCap``
(USD), ``dividend_yield`` ← see :func:`normalise_dividend_yield` (a decimal fraction, 0.0123 = 1.23 %).
Absent or non-numeric fields are NaN, never 0.
"""

from __future__ import annotations

import ast
import logging
import math
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from .. import calendar
from .base import (
    PRICE_COLUMNS,
    VALUATION_COLUMNS,
    FetchResult,
    ProviderUnavailableError,
    empty_frame,
)

SOURCE = "yfinance"
RATE_LIMIT = "rate_limit"
CONNECTION = "connection"

_FIELD_NAMES = {
    "dividends": "dividends",
    "stock splits": "stock_splits",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "adj close": "adj_close",
    "adj_close": "adj_close",
    "adjclose": "adj_close",
    "volume": "volume",
}
# Other per-ticker fields yfinance may return; recognised (to detect the field level), then dropped.
_OTHER_FIELDS = {"capital gains", "repaired?"}
_PRICE_FIELDS = ["open", "high", "low", "close", "adj_close"]
_TRADED_FIELDS = ["open", "high", "low", "close"]  # turned back into prices as traded
DIVIDEND_DECIMALS = 6


def round_to_tick(prices: pd.DataFrame | pd.Series):
    """US equity prices to their tick: whole cents at or above $1, 1/100 of a cent below (NaN kept)."""
    return prices.round(2).where(prices >= 1.0, prices.round(4))

_CONNECTION_TYPES = {
    "ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "TimeoutError", "DNSError",
    "ProxyError", "SSLError", "ChunkedEncodingError", "RemoteDisconnected", "ConnectionResetError",
    "ConnectionRefusedError", "ConnectionAbortedError", "BrokenPipeError", "gaierror",
    "IncompleteRead", "ProtocolError", "NewConnectionError", "MaxRetryError",
}
_CONNECTION_TEXT = re.compile(
    r"could not resolve host|failed to perform, curl|connection (refused|reset|aborted|error)|"
    r"timed out|timeout|network is unreachable|name or service not known|"
    r"temporary failure in name resolution|max retries exceeded|remote end closed|"
    r"service unavailable|bad gateway|gateway time-?out|^(" + "|".join(sorted(_CONNECTION_TYPES)) + r")\(",
    re.IGNORECASE,
)
_RATE_LIMIT_TEXT = re.compile(r"too many requests|rate[ -]?limit", re.IGNORECASE)
_LOG_LINE = re.compile(r"^\s*(\[[^\]]*\])\s*:\s*(.*)$", re.DOTALL)
_LOG_TICKER = re.compile(r"^Failed to get ticker '([^']+)' reason:\s*(.*)$", re.DOTALL)


# --------------------------------------------------------------------------------------------
# Error classification
# --------------------------------------------------------------------------------------------


def classify_error(error: BaseException | str) -> str | None:
    """Classify an exception (or a logged error message) as transient.

    Parameters
    ----------
    error : BaseException or str
        An exception raised by yfinance / its HTTP client, or the text yfinance logged for a ticker.

    Returns
    -------
    str or None
        ``"rate_limit"`` (``YFRateLimitError``, HTTP 429, "Too Many Requests", "Rate limited"),
        ``"connection"`` (DNS, connect/read timeouts, refused/reset connections, TLS, proxy, HTTP 5xx)
        or ``None`` for a permanent error (unknown symbol, bad response, programming error).
    """
    if isinstance(error, BaseException):
        names = {cls.__name__ for cls in type(error).__mro__}
        text = f"{type(error).__name__}: {error}"
        status = _http_status(error)
        if "YFRateLimitError" in names or status == 429 or _RATE_LIMIT_TEXT.search(text):
            return RATE_LIMIT
        if status is not None:
            return CONNECTION if status >= 500 else None
        if names & _CONNECTION_TYPES or isinstance(error, (ConnectionError, TimeoutError)):
            return CONNECTION
        return CONNECTION if _CONNECTION_TEXT.search(str(error)) else None
    text = str(error)
    if _RATE_LIMIT_TEXT.search(text):
        return RATE_LIMIT
    if _CONNECTION_TEXT.search(text):
        return CONNECTION
    return None


def _http_status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status
    return None


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------
# Frame normalisation
# --------------------------------------------------------------------------------------------


def _field_key(name: Any) -> str:
    return str(name).strip().lower()


def _is_field(name: Any) -> bool:
    key = _field_key(name)
    return key in _FIELD_NAMES or key in _OTHER_FIELDS


def _field_level(columns: pd.MultiIndex, requested: set[str]) -> int:
    """Which of two column levels holds the field names (Open, Close, ...).

    yfinance names the levels ``Price`` and ``Ticker``; without names, the level made only of field
    names wins, and when both qualify (tickers such as ``LOW`` or ``OPEN`` are also field names) the
    level that is not made only of requested symbols.
    """
    names = [str(n).lower() if n is not None else None for n in columns.names]
    if "price" in names and "ticker" in names:
        return names.index("price")
    values = [[_field_key(v) for v in columns.get_level_values(i)] for i in (0, 1)]
    candidates = [i for i in (0, 1) if all(_is_field(v) for v in values[i])]
    if len(candidates) == 2:
        not_tickers = [i for i in (0, 1) if not {v.upper() for v in values[i]} <= requested]
        candidates = not_tickers or [0]
    if not candidates:
        raise ValueError("cannot tell the field level from the ticker level in yfinance columns")
    return candidates[0]


def normalise_download(raw: pd.DataFrame | None, symbols: Sequence[str]) -> pd.DataFrame:
    """Turn a ``yfinance.download`` frame into the long price contract, as traded.

    Parameters
    ----------
    raw : DataFrame or None
        What ``yfinance.download`` returned: date index, columns ``(Price, Ticker)`` or
        ``(Ticker, Price)`` MultiIndex, or flat field columns when exactly one symbol was requested.
        Every bar the response holds counts for the split factor, so it should run up to the fetch
        date (see the module docstring); the caller filters the result to its range.
    symbols : sequence of str
        The symbols requested in that call; output symbols are spelled as requested (yfinance
        upper-cases tickers). Columns for tickers not requested are ignored.

    Returns
    -------
    DataFrame
        ``PRICE_COLUMNS`` with ``source='yfinance'``, one row per (date, symbol) that has at least
        one price, sorted by symbol then date. Open/high/low/close and ``dividend`` as traded that
        day (USD, times the product ``F_D`` of the later split ratios in the response), ``volume``
        in shares traded (divided by ``F_D``), ``split_ratio`` new shares per old (1 when none),
        ``adj_close`` as Yahoo sent it. Actions unknown (no event columns or no ``Adj Close``):
        ``dividend``/``split_ratio`` NaN and ``close`` the adjusted close. Missing stays NaN, a price
        ≤ 0 becomes NaN.

    Raises
    ------
    ValueError
        When the column layout is not one yfinance produces (e.g. flat columns for several symbols).
    """
    if raw is None or raw.shape[0] == 0 or raw.shape[1] == 0:
        return empty_frame(PRICE_COLUMNS)
    by_upper = {str(s).upper(): s for s in symbols}
    frame = raw.copy()
    if isinstance(frame.columns, pd.MultiIndex):
        if frame.columns.nlevels != 2:
            raise ValueError(f"unexpected {frame.columns.nlevels}-level columns from yfinance")
        field_level = _field_level(frame.columns, set(by_upper))
        fields = frame.columns.get_level_values(field_level)
        tickers = frame.columns.get_level_values(1 - field_level)
        frame.columns = pd.MultiIndex.from_arrays(
            [[_field_key(f) for f in fields], [str(t).upper() for t in tickers]], names=["field", "ticker"]
        )
        long = frame.stack(level="ticker", future_stack=True)
        long.index = long.index.set_names(["date", "ticker"])
        long = long.reset_index()
    else:
        if len(by_upper) != 1 or not all(_is_field(c) for c in frame.columns):
            raise ValueError("flat yfinance columns are only unambiguous for a single symbol")
        frame.columns = [_field_key(c) for c in frame.columns]
        frame.index = frame.index.set_names("date")
        long = frame.reset_index()
        long["ticker"] = next(iter(by_upper))
    long = long.rename(columns={k: v for k, v in _FIELD_NAMES.items() if k in long.columns})
    long = long.loc[:, ~long.columns.duplicated()]
    if "close" not in long.columns:
        raise ValueError("yfinance response has no Close column")
    actions_known = {"dividends", "stock_splits", "adj_close"} <= set(long.columns)
    had_adj_close = "adj_close" in long.columns
    for col in _PRICE_FIELDS + ["volume", "dividends", "stock_splits"]:
        long[col] = pd.to_numeric(long[col], errors="coerce").astype("float64") if col in long else np.nan
    if not had_adj_close:
        long["adj_close"] = long["close"]  # auto-adjusted: Close is already the adjusted close
    prices = long[_PRICE_FIELDS]
    long[_PRICE_FIELDS] = prices.where(prices > 0)
    long["volume"] = long["volume"].where(long["volume"] >= 0)

    dates = pd.DatetimeIndex(pd.to_datetime(long["date"]))
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    long["date"] = dates.normalize().astype("datetime64[ns]")
    long = long[long["ticker"].isin(list(by_upper))]
    if long.empty:
        return empty_frame(PRICE_COLUMNS)
    # Duplicate dates: keep the last non-missing value per column (groupby.last skips NaN); an event
    # on any copy counts.
    grouped = long.groupby(["ticker", "date"], sort=True)
    long = grouped[_PRICE_FIELDS + ["volume"]].last().join(
        grouped[["dividends", "stock_splits"]].max()).reset_index()
    priced = long[_PRICE_FIELDS].notna().any(axis=1)
    if actions_known:
        long = _as_traded(long, priced)
    else:
        if had_adj_close:  # scale the bar to the adjusted close, as Yahoo's auto-adjustment does
            ratio = long["adj_close"] / long["close"]
            for col in ("open", "high", "low"):
                long[col] = long[col] * ratio
            long["close"] = long["adj_close"]
        long["dividend"] = np.nan
        long["split_ratio"] = np.nan
    long = long[priced.to_numpy()]
    if long.empty:
        return empty_frame(PRICE_COLUMNS)
    if actions_known:  # adjusted values (adj_close, or every price when actions are unknown) stay as sent
        long[_TRADED_FIELDS] = round_to_tick(long[_TRADED_FIELDS])
        long["dividend"] = long["dividend"].round(DIVIDEND_DECIMALS)
    long["volume"] = long["volume"].round()
    long["symbol"] = long["ticker"].map(by_upper)
    long["source"] = SOURCE
    return long[PRICE_COLUMNS].reset_index(drop=True).rename_axis(columns=None)


def _as_traded(long: pd.DataFrame, priced: pd.Series) -> pd.DataFrame:
    """Undo Yahoo's split adjustment (rows sorted by ticker, date; see :func:`normalise_download`).

    ``F_D`` = product of the split ratios strictly after ``D`` among the ticker's rows dated on or
    before its last priced bar.
    """
    ratio = long["stock_splits"].where(long["stock_splits"] > 0, 1.0)
    last_bar = long["date"].where(priced).groupby(long["ticker"]).transform("max")
    ratio = ratio.where(long["date"] <= last_bar, 1.0)
    # Later splits: a cumulative product from the end of each ticker's rows, excluding the row itself.
    backwards = ratio[::-1].groupby(long["ticker"][::-1]).cumprod()[::-1]
    later = backwards / ratio
    out = long.copy()
    for col in _TRADED_FIELDS:
        out[col] = long[col] * later
    out["volume"] = long["volume"] / later
    out["dividend"] = long["dividends"].fillna(0.0) * later  # NaN only on rows download aligned (no bar)
    out["split_ratio"] = ratio
    return out


# --------------------------------------------------------------------------------------------
# Capturing what yfinance logs for the tickers it failed
# --------------------------------------------------------------------------------------------


class _ThreadLogCapture(logging.Handler):
    """Collects ``yfinance`` log records emitted by one thread while attached."""

    def __init__(self, thread_id: int):
        super().__init__(level=logging.WARNING)
        self.thread_id = thread_id
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread_id:
            try:
                self.messages.append(record.getMessage())
            except Exception:
                self.messages.append(str(record.msg))


def parse_logged_errors(messages: Sequence[str]) -> dict[str, str]:
    """Per-ticker error text from yfinance's download log lines.

    Parameters
    ----------
    messages : sequence of str
        Messages yfinance logged during one ``download`` call, e.g.
        ``"['MSFT', 'AAPL']: DNSError('Failed to perform, curl: (6) Could not resolve host ...')"``
        or ``"Failed to get ticker 'MSFT' reason: ..."``.

    Returns
    -------
    dict
        Upper-case ticker → error text. The summary lines win over the per-ticker lines.
    """
    out: dict[str, str] = {}
    summary: dict[str, str] = {}
    for msg in messages:
        m = _LOG_LINE.match(msg)
        if m:
            try:
                tickers = ast.literal_eval(m.group(1))
            except (ValueError, SyntaxError):
                continue
            for t in tickers:
                summary[str(t).upper()] = m.group(2).strip()
            continue
        m = _LOG_TICKER.match(msg)
        if m:
            out[m.group(1).upper()] = m.group(2).strip()
    out.update(summary)
    return out


# --------------------------------------------------------------------------------------------
# Dividend yield units
# --------------------------------------------------------------------------------------------


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def normalise_dividend_yield(info: Mapping[str, Any]) -> float:
    """The dividend yield of an ``info`` dict as a decimal fraction (0.0123 = 1.23 %).

    Yahoo's ``dividendYield`` changed units in early 2025 (yfinance ≈ 0.2.54 onward, including 1.7):
    it used to be a fraction (``0.0044``) and is now in percent points (``0.44``), and yfinance passes
    it through unchanged. Neither a version check nor a threshold is reliable (a 0.35 % yield is
    ``0.35`` in the new unit, which a "> 1 means percent" rule would read as 35 %). So the value is
    cross-checked against a reference fraction from the same snapshot, ``dividendRate / price``
    (price = ``currentPrice``, ``regularMarketPrice`` or ``previousClose``) or else
    ``trailingAnnualDividendYield``, and the scale (×1 or ×1/100) closer to it in ratio wins. Without a
    reference the current unit (percent points) is assumed. When ``dividendYield`` is absent, the
    fund field ``yield`` (a fraction) is used. No dividend information gives NaN, not 0.

    Parameters
    ----------
    info : mapping
        A ``yfinance.Ticker(symbol).info`` dict.

    Returns
    -------
    float
        Dividend yield as a fraction, or NaN.
    """
    raw = _num(info.get("dividendYield"))
    if math.isnan(raw):
        return _num(info.get("yield"))
    if raw <= 0:
        return 0.0 if raw == 0 else math.nan
    price = next(
        (p for p in (_num(info.get(k)) for k in ("currentPrice", "regularMarketPrice", "previousClose"))
         if p > 0),
        math.nan,
    )
    rate = _num(info.get("dividendRate"))
    reference = rate / price if rate > 0 and price > 0 else _num(info.get("trailingAnnualDividendYield"))
    if reference > 0:
        as_fraction, as_percent = raw, raw / 100.0
        if abs(math.log(as_fraction / reference)) < abs(math.log(as_percent / reference)):
            return as_fraction
        return as_percent
    return raw / 100.0


_INFO_FIELDS = {
    "pe": ("trailingPE",),
    "forward_pe": ("forwardPE",),
    "provider_beta": ("beta", "beta3Year"),
    "week52_high": ("fiftyTwoWeekHigh",),
    "week52_low": ("fiftyTwoWeekLow",),
    "market_cap": ("marketCap",),
}


def info_to_row(info: Mapping[str, Any]) -> dict[str, float]:
    """Map a yfinance ``info`` dict to the valuation fields (NaN when absent or non-numeric).

    Parameters
    ----------
    info : mapping
        A ``yfinance.Ticker(symbol).info`` dict.

    Returns
    -------
    dict
        ``pe``, ``forward_pe``, ``provider_beta`` (dimensionless), ``week52_high``, ``week52_low``
        (USD per share), ``market_cap`` (USD), ``dividend_yield`` (fraction).
    """
    row: dict[str, float] = {}
    for name, keys in _INFO_FIELDS.items():
        row[name] = next((v for v in (_num(info.get(k)) for k in keys) if not math.isnan(v)), math.nan)
    row["dividend_yield"] = normalise_dividend_yield(info)
    return row


# --------------------------------------------------------------------------------------------
# Retry machinery
# --------------------------------------------------------------------------------------------


class _TransientFailure(Exception):
    """Raised inside a retry attempt when some symbols failed transiently (internal)."""

    def __init__(self, failures: dict[str, tuple[str, str]]):
        super().__init__(f"{len(failures)} symbol(s) failed transiently")
        self.failures = failures  # symbol -> (kind, reason)

    @property
    def rate_limited(self) -> bool:
        return any(kind == RATE_LIMIT for kind, _ in self.failures.values())


@dataclass
class _BatchOutcome:
    frame: pd.DataFrame
    failures: dict[str, str] = field(default_factory=dict)
    transient: dict[str, str] = field(default_factory=dict)  # symbol -> kind, for final failures
    attempts: int = 1
    pending: list[str] = field(default_factory=list)  # symbols the next attempt asks for


class YFinanceProvider:
    """Daily prices and current valuations from Yahoo Finance via yfinance.

    Parameters
    ----------
    batch_size : int, default 100
        Symbols per ``yfinance.download`` call.
    max_workers : int, default 4
        Batches (and ``Ticker.info`` look-ups) running at once.
    max_retries : int, default 4
        Retries after the first attempt for transient errors (so at most ``max_retries + 1`` calls).
    backoff_base : float, default 1.0
        Seconds; the wait before retry ``n`` (1-based) is ``backoff_base · 2**(n-1)`` capped at
        ``max_backoff``, doubled for a rate limit, plus uniform jitter in ``[0, that wait]``.
    downloader : callable, optional
        Stand-in for ``yfinance.download`` (tests inject recorded responses).
    ticker_factory : callable, optional
        Stand-in for ``yfinance.Ticker``; ``ticker_factory(symbol).info`` must return a dict.
    sleep : callable, default time.sleep
        Used for backoff waits (tests pass a recorder so nothing sleeps).
    group_by : {'column', 'ticker'}, default 'column'
        Passed to ``yfinance.download``; both layouts are normalised.
    max_backoff : float, default 60.0
        Cap in seconds of the exponential part of a wait.
    snapshot_max_age_sessions : int, default 1
        How many sessions before today's latest session a valuation request may end and still be
        served today's ``info`` snapshot (1 lets the run for yesterday's partition early in the
        morning get one).
    today : callable, default datetime.date.today
        The fetch date: price requests run up to it (for the splits since) and the valuation
        snapshot rule uses it.
    rng : random.Random, optional
        Jitter source.

    Notes
    -----
    Never fills a missing value: absent prices stay absent (no row), absent fields are NaN.
    """

    name = SOURCE

    def __init__(
        self,
        batch_size: int = 100,
        max_workers: int = 4,
        max_retries: int = 4,
        backoff_base: float = 1.0,
        downloader: Callable[..., pd.DataFrame] | None = None,
        ticker_factory: Callable[[str], Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        *,
        group_by: str = "column",
        max_backoff: float = 60.0,
        snapshot_max_age_sessions: int = 1,
        today: Callable[[], date] = date.today,
        rng: random.Random | None = None,
    ):
        if batch_size < 1 or max_workers < 1 or max_retries < 0 or backoff_base < 0:
            raise ValueError("batch_size and max_workers must be ≥ 1, max_retries and backoff_base ≥ 0")
        if group_by not in ("column", "ticker"):
            raise ValueError("group_by must be 'column' or 'ticker'")
        if downloader is None or ticker_factory is None:
            import yfinance  # deferred: importing yfinance is slow and only production needs it

            downloader = downloader or yfinance.download
            ticker_factory = ticker_factory or yfinance.Ticker
        self.batch_size = batch_size
        self.max_workers = max_workers
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.max_backoff = max_backoff
        self.downloader = downloader
        self.ticker_factory = ticker_factory
        self.sleep = sleep
        self.group_by = group_by
        self.snapshot_max_age_sessions = snapshot_max_age_sessions
        self.today = today
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()

    # ---------------------------------------------------------------- retry policy

    def _wait(self, retry_state: RetryCallState) -> float:
        n = retry_state.attempt_number
        base = min(self.backoff_base * 2 ** (n - 1), self.max_backoff)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, _TransientFailure) and exc.rate_limited:
            base *= 2
        with self._rng_lock:
            jitter = self._rng.uniform(0, base)
        return base + jitter

    def _retrying(self) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(_TransientFailure),
            sleep=self.sleep,
            reraise=True,
        )

    # ---------------------------------------------------------------- prices

    def _download(self, tickers: list[str], start: date, end: date) -> tuple[pd.DataFrame | None, list[str]]:
        handler = _ThreadLogCapture(threading.get_ident())
        logger = logging.getLogger("yfinance")
        logger.addHandler(handler)
        try:
            # Up to the fetch date, whatever the range: the splits after the range end are needed to
            # turn the range's bars back into prices as traded.
            last = max(end, self.today())
            raw = self.downloader(
                tickers=tickers,
                start=start.isoformat(),
                end=(last + timedelta(days=1)).isoformat(),  # yfinance's end is exclusive
                auto_adjust=False,
                actions=True,
                group_by=self.group_by,
                threads=False,
                progress=False,
            )
        finally:
            logger.removeHandler(handler)
        return raw, handler.messages

    def _attempt_batch(self, start: date, end: date, out: _BatchOutcome) -> None:
        """One download for ``out.pending``; records results in ``out``; raises for transient failures.

        After the call ``out.pending`` holds the symbols that failed transiently (the next attempt's
        request), or is empty.
        """
        pending, out.pending = out.pending, []
        try:
            raw, messages = self._download(pending, start, end)
        except Exception as exc:  # the downloader itself failed: every pending symbol shares the cause
            kind = classify_error(exc)
            reason = _short(f"{type(exc).__name__}: {exc}")
            if kind is None:
                for sym in pending:
                    out.failures[sym] = f"download failed: {reason}"
                return
            out.pending = list(pending)
            raise _TransientFailure({sym: (kind, reason) for sym in pending}) from exc
        try:
            frame = normalise_download(raw, pending)
        except ValueError as exc:
            for sym in pending:
                out.failures[sym] = f"unrecognised yfinance response: {exc}"
            return
        frame = frame[(frame["date"] >= pd.Timestamp(start)) & (frame["date"] <= pd.Timestamp(end))]
        if len(frame):
            out.frame = pd.concat([out.frame, frame], ignore_index=True) if len(out.frame) else frame
        delivered = set(frame["symbol"].unique())
        logged = parse_logged_errors(messages)
        transient: dict[str, tuple[str, str]] = {}
        for sym in pending:
            if sym in delivered:
                continue
            reason = logged.get(sym.upper())
            kind = classify_error(reason) if reason else None
            if kind is not None:
                transient[sym] = (kind, _short(reason))
            else:
                out.failures[sym] = f"no data returned ({_short(reason)})" if reason else "no data returned"
        if transient:
            out.pending = list(transient)
            raise _TransientFailure(transient)

    def _fetch_batch(self, batch: list[str], start: date, end: date) -> _BatchOutcome:
        out = _BatchOutcome(frame=empty_frame(PRICE_COLUMNS), pending=list(batch))
        try:
            for attempt in self._retrying():
                with attempt:
                    out.attempts = attempt.retry_state.attempt_number
                    self._attempt_batch(start, end, out)
        except _TransientFailure as exc:
            for sym, (kind, reason) in exc.failures.items():
                label = "rate limited" if kind == RATE_LIMIT else "connection error"
                out.failures[sym] = f"{label} after {out.attempts} attempt(s): {reason}"
                out.transient[sym] = kind
        except Exception as exc:  # defensive: never let one batch sink the others
            for sym in batch:
                if sym not in set(out.frame["symbol"]):
                    out.failures.setdefault(sym, f"download failed: {_short(repr(exc))}")
        return out

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        """Daily OHLCV for ``symbols`` over the sessions in ``[start, end]``.

        Parameters
        ----------
        symbols : sequence of str
            Public Yahoo symbols (duplicates are ignored).
        start, end : datetime.date
            Inclusive date range.

        Returns
        -------
        FetchResult
            ``PRICE_COLUMNS`` rows (``source='yfinance'``): prices, dividend and volume as traded
            each day, the day's split ratio, NaN where Yahoo had no value; and a reason per symbol
            that delivered no row.

        Raises
        ------
        ProviderUnavailableError
            When every symbol failed with a rate-limit or connection error after the retries.
        """
        start, end = pd.Timestamp(start).date(), pd.Timestamp(end).date()
        wanted = list(dict.fromkeys(symbols))
        if not wanted or end < start:
            return FetchResult(empty_frame(PRICE_COLUMNS), {})
        batches = [wanted[i : i + self.batch_size] for i in range(0, len(wanted), self.batch_size)]
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(batches))) as pool:
            outcomes = list(pool.map(lambda b: self._fetch_batch(b, start, end), batches))
        frames = [o.frame for o in outcomes if len(o.frame)]
        failures: dict[str, str] = {}
        transient: dict[str, str] = {}
        for o in outcomes:
            failures.update(o.failures)
            transient.update(o.transient)
        frame = (
            pd.concat(frames, ignore_index=True).sort_values(["date", "symbol"], kind="stable")
            if frames else empty_frame(PRICE_COLUMNS)
        )
        frame = frame[PRICE_COLUMNS].reset_index(drop=True)
        delivered = set(frame["symbol"])
        failures = {s: r for s, r in failures.items() if s not in delivered}
        if frame.empty and failures and set(transient) >= set(wanted):
            raise ProviderUnavailableError(SOURCE, _unavailable_reason(failures, transient, len(batches)))
        return FetchResult(frame, failures)

    # ---------------------------------------------------------------- valuations

    def snapshot_date(self, start: date, end: date) -> pd.Timestamp | None:
        """The date a current ``info`` snapshot may be stored under for a request, or ``None``.

        The snapshot belongs to the latest session ``≤ today``. It is served under the latest session
        ``≤ min(end, today)`` when that lies in ``[start, end]`` and is at most
        ``snapshot_max_age_sessions`` sessions older than today's latest session.
        """
        today = pd.Timestamp(self.today())
        latest = calendar.sessions_back(today, 1)[-1]
        target = calendar.sessions_back(min(pd.Timestamp(end), today), 1)[-1]
        oldest_ok = calendar.sessions_back(latest, self.snapshot_max_age_sessions + 1)[0]
        if target < pd.Timestamp(start) or target < oldest_ok:
            return None
        return target

    def _info_for(self, symbol: str) -> tuple[dict | None, str | None, str | None]:
        """(info, failure reason, transient kind) for one symbol, with retries."""
        state: dict[str, Any] = {"attempts": 0}
        try:
            for attempt in self._retrying():
                with attempt:
                    state["attempts"] = attempt.retry_state.attempt_number
                    try:
                        info = self.ticker_factory(symbol).info
                    except Exception as exc:
                        kind = classify_error(exc)
                        if kind is None:
                            return None, f"info failed: {_short(f'{type(exc).__name__}: {exc}')}", None
                        raise _TransientFailure({symbol: (kind, _short(f"{type(exc).__name__}: {exc}"))}) from exc
                    return dict(info or {}), None, None
        except _TransientFailure as exc:
            kind, reason = exc.failures[symbol]
            label = "rate limited" if kind == RATE_LIMIT else "connection error"
            return None, f"{label} after {state['attempts']} attempt(s): {reason}", kind
        return None, "info failed", None  # pragma: no cover - the loop always returns or raises

    def fetch_valuations(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        """Today's valuation snapshot per symbol, or a failure per symbol for a historical request.

        Parameters
        ----------
        symbols : sequence of str
            Public Yahoo symbols.
        start, end : datetime.date
            Inclusive date range; see :meth:`snapshot_date` for when a snapshot can be served.

        Returns
        -------
        FetchResult
            At most one ``VALUATION_COLUMNS`` row per symbol (``source='yfinance'``).

        Raises
        ------
        ProviderUnavailableError
            When every symbol failed with a rate-limit or connection error after the retries.
        """
        start, end = pd.Timestamp(start).date(), pd.Timestamp(end).date()
        wanted = list(dict.fromkeys(symbols))
        if not wanted or end < start:
            return FetchResult(empty_frame(VALUATION_COLUMNS), {})
        day = self.snapshot_date(start, end)
        if day is None:  # not an error: Yahoo publishes no valuation history (a skip)
            reason = (
                f"yfinance only publishes a current valuation snapshot (as of {self.today()}); "
                f"no valuation history for {start}..{end}"
            )
            return FetchResult(empty_frame(VALUATION_COLUMNS), {}, {s: reason for s in wanted})
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(wanted))) as pool:
            results = list(pool.map(self._info_for, wanted))
        rows, failures, transient = [], {}, {}
        for sym, (info, reason, kind) in zip(wanted, results):
            if info is None:
                failures[sym] = reason or "info failed"
                if kind:
                    transient[sym] = kind
                continue
            row = info_to_row(info)
            if all(math.isnan(v) for v in row.values()):
                failures[sym] = "no valuation data returned"
                continue
            rows.append({"date": day, "symbol": sym, **row, "source": SOURCE})
        if not rows and failures and set(transient) >= set(wanted):
            raise ProviderUnavailableError(SOURCE, _unavailable_reason(failures, transient, None))
        if not rows:
            return FetchResult(empty_frame(VALUATION_COLUMNS), failures)
        frame = pd.DataFrame(rows)
        frame["date"] = frame["date"].astype("datetime64[ns]")
        return FetchResult(frame[VALUATION_COLUMNS].sort_values("symbol").reset_index(drop=True), failures)


def _unavailable_reason(failures: dict[str, str], transient: dict[str, str], n_batches: int | None) -> str:
    kinds = set(transient.values())
    what = "rate limited" if kinds == {RATE_LIMIT} else "unreachable"
    scope = f"all {len(failures)} symbol(s)" + (f" in {n_batches} batch(es)" if n_batches else "")
    example = next(iter(failures.values()))
    return f"Yahoo Finance {what}: {scope} failed; e.g. {example}"
