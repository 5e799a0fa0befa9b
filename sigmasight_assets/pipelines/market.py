"""Market data without Dagster: the symbol universe, provider fetches, ``prices`` and
``daily_valuations``, and the universe queries the onboarding sensors ask.

A provider-wide outage surfaces as ``ProviderUnavailableError`` (the Dagster layer retries the step);
one symbol's failure never fails the range: a bad file, a bad row or a row that would break a rule
of the table's pandera schema drops only that symbol's day(s) (:func:`quarantine`), and every
missing symbol-day is recorded in ``symbol_status`` with its reason (:func:`status_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from .. import calendar
from ..calc.factors import FACTOR_ETFS
from ..calc.universe import LOOKAHEAD_SESSIONS, build_universe
from ..calc.week52 import WEEK52_SESSIONS, week52_from_extremes, week52_range
from ..market_data.base import PRICE_COLUMNS, REJECTED_COLUMNS, VALUATION_COLUMNS, empty_frame, empty_rejected
from ..market_data.quality import screen_prices, screen_valuations
from ..warehouse.ledger import read_ledger
from .io import write_partitions

VALUATION_NUMBERS = ("pe", "forward_pe", "provider_beta", "week52_high", "week52_low", "market_cap", "dividend_yield")


def lookahead_horizon(days: pd.DatetimeIndex, ahead: int = LOOKAHEAD_SESSIONS) -> pd.DatetimeIndex:
    """For each day, the session ``ahead`` − 1 sessions later (the end of its look-ahead)."""
    future = calendar.sessions(days[0], days[-1] + pd.Timedelta(days=ahead * 2))
    idx = np.minimum(future.searchsorted(days) + ahead - 1, len(future) - 1)
    return future[idx]


# -- symbol_universe ---------------------------------------------------------------------------------
@dataclass
class UniverseResult:
    frame: pd.DataFrame
    written: int
    positions_in_ledger: int


def store_universe(wh, days: pd.DatetimeIndex, scope: list[str] | None) -> UniverseResult:
    """The universe of ``days`` from the current ledger (``calc.universe``), stored; with ``scope``
    only those symbols' rows are replaced."""
    _, pos, _ = read_ledger(wh)
    frame = build_universe(pos, days, lookahead_horizon(days), FACTOR_ETFS)
    if scope is not None:
        frame = frame[frame["symbol"].isin(scope)].reset_index(drop=True)
    written = write_partitions(wh, "symbol_universe", frame, days[0], days[-1], keys=scope)
    return UniverseResult(frame, written, len(pos))


def fetch_scope(wh, days: pd.DatetimeIndex, scope: list[str] | None, *, valuations: bool = False) -> pd.DataFrame:
    """(date, symbol) pairs of the stored universe to request from the provider."""
    uni = wh.read("symbol_universe", days[0], days[-1], keys=scope, columns=["date", "symbol", "asset_class", "fetch"])
    uni = uni[uni["fetch"].astype(bool)]
    if valuations:
        uni = uni[uni["asset_class"] == "PUBLIC"]
    return uni[["date", "symbol"]].reset_index(drop=True)


@dataclass
class Fetched:
    """A provider's answer for the expected (date, symbol) pairs of a range."""

    frame: pd.DataFrame  # delivered rows of the expected (date, symbol) pairs, not yet screened
    failures: dict[str, str]  # symbol -> the provider's reason (delivered nothing)
    skipped: dict[str, str]  # symbol -> why the provider does not serve it (not an error)
    rejected: pd.DataFrame  # REJECTED_COLUMNS: rows the provider dropped as bad input
    symbols: list[str]  # requested


def fetch(provider, kind: str, days: pd.DatetimeIndex, expected: pd.DataFrame) -> Fetched:
    """Ask ``provider`` for the expected symbols over the range (``kind``: prices or valuations);
    keep only expected pairs, and the provider's rejected rows of the requested symbols (dated in
    the range, or NaT when the row's date was unreadable). ``ProviderUnavailableError`` propagates."""
    symbols = sorted(expected["symbol"].unique())
    if not symbols:
        return Fetched(empty_frame(PRICE_COLUMNS if kind == "prices" else VALUATION_COLUMNS), {}, {},
                       empty_rejected(), symbols)
    call = provider.fetch_prices if kind == "prices" else provider.fetch_valuations
    result = call(symbols, days[0].date(), days[-1].date())
    frame = result.frame.merge(expected, on=["date", "symbol"], how="inner")
    rejected = result.rejected if result.rejected is not None else empty_rejected()
    if len(rejected):
        dates = pd.to_datetime(rejected["date"], errors="coerce")
        in_range = dates.isna() | ((dates >= days[0]) & (dates <= days[-1]))
        rejected = rejected[rejected["symbol"].isin(symbols) & in_range.to_numpy()][REJECTED_COLUMNS]
    return Fetched(frame, dict(result.failures), dict(result.skipped), rejected.reset_index(drop=True), symbols)


def quarantine(got: Fetched, kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Screen the delivered rows with :mod:`market_data.quality` (the rules of the table's pandera
    schema, so validation afterwards only guards against our own bugs): (clean rows, every rejected
    row of the fetch — the provider's own and the screened-out ones — as ``date, symbol, reason``)."""
    screen = screen_prices if kind == "prices" else screen_valuations
    clean, screened = screen(got.frame)
    parts = [r for r in (got.rejected, screened) if len(r)]
    rejected = pd.concat(parts, ignore_index=True) if parts else empty_rejected()
    rejected["date"] = pd.to_datetime(rejected["date"], errors="coerce").astype("datetime64[ns]")
    return clean.reset_index(drop=True), rejected


def symbol_reasons(symbols: list[str], got: Fetched, rejected: pd.DataFrame) -> dict[str, str]:
    """Per symbol, why it may lack a row: the provider's failure, else its rows with an unreadable
    date, else its skip reason."""
    reasons = {**got.skipped, **got.failures}
    undated = rejected[rejected["date"].isna()]
    for sym, rows in undated.groupby("symbol")["reason"]:
        if sym not in got.failures:
            more = f" (and {len(rows) - 1} more row(s))" if len(rows) > 1 else ""
            reasons[sym] = f"row(s) without a readable date: {rows.iloc[0]}{more}"
    return {s: r for s, r in reasons.items() if s in set(symbols)}


def failed_symbols(symbols: list[str], frame: pd.DataFrame, failures: dict[str, str],
                   skipped: dict[str, str] | None = None) -> dict[str, str]:
    """Requested symbols that delivered no row at all, with the reason (skipped ones excluded:
    a deliberate "not served" is not a failure)."""
    with_data = set(frame["symbol"])
    skipped = skipped or {}
    return {s: failures.get(s, "no data in range") for s in symbols if s not in with_data and s not in skipped}


def status_rows(asset_name: str, expected: pd.DataFrame, delivered: pd.DataFrame, failures: dict[str, str],
                default_reason: str, rejected: pd.DataFrame | None = None,
                skipped: dict[str, str] | None = None) -> pd.DataFrame:
    """symbol_status rows for every expected (date, symbol) without a delivered row.

    The reason of a missing symbol-day is, in order: the rejected row(s) of that day (file, row and
    field for a CSV file, the broken rule and value otherwise), the symbol's reason in ``failures``,
    ``default_reason``. Status ``skipped`` for a symbol the provider does not serve by design
    (``skipped``, e.g. "no valuations"), ``failed`` otherwise.
    """
    skipped = skipped or {}
    merged = expected.merge(delivered[["date", "symbol"]].assign(_ok=True), on=["date", "symbol"], how="left")
    missing = merged[merged["_ok"].isna()][["date", "symbol"]].copy()
    missing["asset"] = asset_name
    is_skipped = missing["symbol"].isin(list(skipped))
    missing["status"] = np.where(is_skipped, "skipped", "failed").astype(object)
    reason = missing["symbol"].map({**skipped, **failures}).fillna(default_reason).astype(object)
    if rejected is not None and len(rejected):
        dated = rejected[rejected["date"].notna()]
        per_day = dated.groupby(["date", "symbol"])["reason"].agg(lambda r: "; ".join(dict.fromkeys(r)))
        keys = pd.MultiIndex.from_frame(missing[["date", "symbol"]])
        day_reason = pd.Series(per_day.reindex(keys).to_numpy(), index=missing.index)
        reason = day_reason.where(day_reason.notna(), reason)
        missing.loc[day_reason.notna(), "status"] = "failed"
    missing["reason"] = reason.astype(object)
    return missing.reset_index(drop=True)


def worst_offenders(rejected: pd.DataFrame, limit: int = 10) -> pd.DataFrame:
    """The symbols with the most rejected rows: ``symbol, rows, first_reason`` (most rows first)."""
    if rejected.empty:
        return pd.DataFrame(columns=["symbol", "rows", "first_reason"])
    grouped = rejected.groupby("symbol", sort=False)["reason"]
    out = pd.DataFrame({"rows": grouped.size(), "first_reason": grouped.first()}).rename_axis("symbol").reset_index()
    return out.sort_values(["rows", "symbol"], ascending=[False, True], kind="stable").head(limit).reset_index(drop=True)


def provider_problems(provider) -> pd.DataFrame:
    """Every bad file and row a provider knows of, requested or not (a CSV directory's
    ``problems()``; in a chain, each such provider's, named): ``provider, file, row, field, reason``.
    Empty for providers without such a list."""
    cols = ["provider", "file", "row", "field", "reason"]
    parts = []
    for p in getattr(provider, "providers", [provider]):
        problems = getattr(p, "problems", None)
        if callable(problems):
            found = problems()
            if len(found):
                parts.append(found.assign(provider=p.name)[cols])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


@dataclass
class MarketResult:
    """What a market-data asset stored and what it could not get."""

    frame: pd.DataFrame
    written: int
    expected: int  # fetchable universe symbol-days
    symbols: list[str]  # requested
    failed: dict[str, str]  # symbols without any row, with reason (skipped symbols excluded)
    status: pd.DataFrame  # symbol_status rows written
    bad_rows: int = 0  # rows quarantined (rejected by the provider or by the quality screen)
    rejected: pd.DataFrame = field(default_factory=empty_rejected)
    skipped: dict[str, str] = field(default_factory=dict)  # symbols the provider does not serve by design
    extra: dict = field(default_factory=dict)


def store_prices(wh, provider, days: pd.DatetimeIndex, scope: list[str] | None) -> MarketResult:
    """Fetch, quarantine bad rows (:func:`quarantine`: a rejected row drops only that symbol-day),
    store ``prices`` and every missing symbol-day with its reason in ``symbol_status``."""
    expected = fetch_scope(wh, days, scope)
    got = fetch(provider, "prices", days, expected)
    frame, rejected = quarantine(got, "prices")
    reasons = symbol_reasons(got.symbols, got, rejected)
    for col in ("volume", "dividend", "split_ratio"):
        if col in frame:
            frame[col] = frame[col].astype(float)
    status = status_rows("prices", expected, frame, reasons, "no price for this session", rejected, got.skipped)
    written = write_partitions(wh, "prices", frame, days[0], days[-1], keys=scope)
    write_partitions(wh, "symbol_status", status, days[0], days[-1], keys=scope, extra_filter={"asset": "prices"})
    return MarketResult(frame, written, len(expected), got.symbols,
                        failed_symbols(got.symbols, frame, reasons, got.skipped), status, len(rejected), rejected,
                        got.skipped)


def store_valuations(wh, provider, days: pd.DatetimeIndex, scope: list[str] | None) -> MarketResult:
    """Fetch valuations of the public universe, quarantine bad rows, fill the 52-week range from
    stored prices where the provider has none (``calc.week52``), store ``daily_valuations`` and the
    missing symbol-days (``skipped`` when the provider serves no valuations, e.g. a CSV directory
    without ``valuations.csv``)."""
    expected = fetch_scope(wh, days, scope, valuations=True)
    got = fetch(provider, "daily_valuations", days, expected)
    frame, rejected = quarantine(got, "daily_valuations")
    reasons = symbol_reasons(got.symbols, got, rejected)
    window = calendar.sessions(calendar.sessions_back(days[0], WEEK52_SESSIONS)[0], days[-1])
    if len(days) == 1:  # the nightly case: one aggregate query instead of the window's rows
        rng = week52_from_extremes(wh.price_extremes(window[0], window[-1]), days[0], got.symbols)
    else:
        stored = wh.read("prices", window[0], window[-1], keys=got.symbols,
                         columns=["date", "symbol", "high", "low", "close"])
        rng = week52_range(stored, days, window)
    frame = frame.merge(rng, on=["date", "symbol"], how="left", suffixes=("", "_stored"))
    for col in ("week52_high", "week52_low"):
        frame[col] = frame[col].astype(float).fillna(frame[f"{col}_stored"])
    frame = frame.drop(columns=["week52_high_stored", "week52_low_stored"])
    for col in VALUATION_NUMBERS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    frame = frame.reset_index(drop=True)
    status = status_rows("daily_valuations", expected, frame, reasons, "no valuation for this session", rejected,
                         got.skipped)
    written = write_partitions(wh, "daily_valuations", frame, days[0], days[-1], keys=scope)
    write_partitions(wh, "symbol_status", status, days[0], days[-1], keys=scope,
                     extra_filter={"asset": "daily_valuations"})
    return MarketResult(frame, written, len(expected), got.symbols,
                        failed_symbols(got.symbols, frame, reasons, got.skipped), status, len(rejected), rejected,
                        got.skipped)


# -- what the warehouse has and what the ledger needs (the onboarding sensors) ---------------------------
def universe_bounds(wh) -> tuple[date | None, date | None]:
    """(first, latest) date of the stored ``symbol_universe``; (None, None) when empty."""
    t = wh.table("symbol_universe")
    with wh.engine.connect() as conn:
        lo, hi = conn.execute(select(func.min(t.c.date), func.max(t.c.date))).one()
    return (None if lo is None else pd.Timestamp(lo).date()), (None if hi is None else pd.Timestamp(hi).date())


def stored_universe_days(wh, start, end) -> pd.DatetimeIndex:
    """Days in [start, end] whose ``symbol_universe`` partition has been written."""
    t = wh.table("symbol_universe")
    stmt = select(t.c.date).distinct().where(t.c.date >= pd.Timestamp(start).date(),
                                             t.c.date <= pd.Timestamp(end).date())
    with wh.engine.connect() as conn:
        values = [r[0] for r in conn.execute(stmt)]
    return pd.DatetimeIndex(sorted(pd.Timestamp(v) for v in values))


def missing_universe_rows(wh, positions: pd.DataFrame, start, end, symbols=None) -> pd.DataFrame:
    """(date, symbol) pairs the current ledger puts in the fetchable universe but the warehouse lacks.

    Only days whose universe partition exists are compared (a day never written is a gap for the
    backfill, not an onboarding). ``symbols`` restricts the comparison (the universe of a symbol
    depends only on the positions holding it, so the restriction is exact).
    """
    days = stored_universe_days(wh, start, end)
    empty = pd.DataFrame(columns=["date", "symbol"])
    if len(days) == 0 or positions is None or positions.empty:
        return empty
    pos = positions if symbols is None else positions[positions["symbol"].isin(set(symbols))]
    if pos.empty:
        return empty
    expected = build_universe(pos, days, lookahead_horizon(days), FACTOR_ETFS)
    expected = expected[expected["fetch"].astype(bool) & ~expected["symbol"].isin(FACTOR_ETFS)][["date", "symbol"]]
    wanted = sorted(expected["symbol"].unique())
    if not wanted:
        return empty
    stored = wh.read("symbol_universe", days[0], days[-1], keys=wanted, columns=["date", "symbol"])
    merged = expected.merge(stored.assign(_stored=True), on=["date", "symbol"], how="left")
    return merged[merged["_stored"].isna()][["date", "symbol"]].reset_index(drop=True)


def history_start(positions: pd.DataFrame, symbols, latest: date, first_stored: date) -> date:
    """First partition a symbol-onboarding run must cover: the look-ahead (253 sessions, a year of
    returns) before the earliest entry of a live position holding one of ``symbols`` (or before
    ``latest`` when that is earlier), never before the warehouse's first universe partition."""
    pos = positions[positions["symbol"].isin(set(symbols)) & ~positions["deleted"].astype(bool)]
    first_entry = pd.Timestamp(pos["entry_date"].min()) if len(pos) else pd.Timestamp(latest)
    anchor = min(first_entry, pd.Timestamp(latest))
    start = calendar.sessions_back(anchor, LOOKAHEAD_SESSIONS)[0].date()
    return max(start, first_stored)


def first_session_on_or_after(day, latest: date) -> date:
    sess = calendar.sessions(day, latest)
    return sess[0].date() if len(sess) else latest
