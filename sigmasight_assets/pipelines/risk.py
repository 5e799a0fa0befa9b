"""Ex-ante risk without Dagster: ``portfolio_risk``, ``risk_contributions`` and ``var_backtest`` over a
range of days, for the whole book or a scope of portfolios.

What is read
------------
Per chunk of days (the portfolio pipeline's :func:`~.portfolio.plan`: chunks of days, batches of
portfolios bounded by the portfolio-day budget), shared by its batches: the closes that value the
positions on each day and its previous session, the simple total returns of the held public symbols
and the 8 factor ETFs over the 250 sessions of the historical simulation
(:meth:`~.windows.WindowReader.returns`), the stored ``factor_model`` rows of the days and their
previous sessions, and the days' ``factor_covariance``. Nothing dated after a day enters its rows.

What is computed (``calc.risk``, ``calc.var``)
----------------------------------------------
* ``portfolio_risk`` — per portfolio-day: the ex-ante volatility split, beta and tracking error
  (``ex_ante_risk``), parametric and historical VaR / ES (``value_at_risk``), the exclusion counts
  and coverage, and ``hypothetical_pnl``: what the *previous* session's covered holdings earned on
  the day with no trading (``hypothetical_pnl``), the realised number the backtest compares with the
  previous session's VaR. It is stored here, with the day it is known on, so that the backtest of
  any day reads finished ``portfolio_risk`` rows only and never an earlier backtest row.
* ``risk_contributions`` — the 8 factor and the specific Euler contributions (rows), plus one row
  ``component = top_positions`` whose ``positions`` JSON lists the 10 largest position
  contributions (:data:`TOP_POSITIONS`): 10 rows per portfolio-day.
* ``var_backtest`` — per portfolio-day ``D``: the parametric 99 % VaR of ``D−1`` against
  ``hypothetical_pnl`` of ``D`` and the trailing-250-session statistics (``calc.var.var_backtest``).
  The window's earlier pairs come from the stored ``portfolio_risk`` (read once per run) and, for
  the days of the run, from the rows just computed.

Atomic, scoped writes
---------------------
Each chunk's days are replaced in all the selected tables in ONE transaction (delete the
partitions — or only the scoped portfolios' rows — then insert). With ``portfolio_ids`` only those
books are read and replaced; an id no longer in the ledger has its rows of the range deleted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from .. import calendar
from ..calc.factor_model import factor_returns
from ..calc.factors import FACTOR_ETFS
from ..calc.risk import CoveredBook, covered_book, ex_ante_risk
from ..calc.stress import position_json_prefixes
from ..calc.snapshots import compute_snapshots
from ..calc.var import (BACKTEST_COLUMNS, BACKTEST_WINDOW, HIST_WINDOW, backtest_frame, hypothetical_pnl,
                        value_at_risk)
from ..warehouse import Replacement
from .portfolio import BATCH_PORTFOLIO_DAYS, STALE_SESSIONS, BookIndex, plan, read_actions, read_book, read_book_index
from .clock import PhaseClock
from .daystats import DayStats
from .windows import WindowReader

RISK, CONTRIB, BACKTEST = "portfolio_risk", "risk_contributions", "var_backtest"
TABLES = (RISK, CONTRIB, BACKTEST)
TOP_POSITIONS = 10
TOP_COMPONENT = "top_positions"
POSITION_FIELDS = ("position_id", "symbol", "contribution", "share")  # one JSON list per position
PREVIEW_ROWS = 10
DAY_OFFENDERS = 10  # offenders kept per day for that day's check metadata
WORST_COLUMNS = ["portfolio_id", "exceptions", "observations", "traffic_light", "kupiec_p_value", "christoffersen_lr"]
#: the VaR the backtest judges: the model's (parametric, ex-ante σ) 99 % VaR
BACKTEST_VAR = "var_99_parametric"
CONTRIBUTION_TABLE_COLUMNS = ["date", "portfolio_id", "component_type", "component", "contribution", "share",
                              "positions"]


# -- the market inputs of one chunk ---------------------------------------------------------------------
@dataclass
class RiskMarket:
    close: pd.DataFrame  # sessions × market symbols (valuation of the days and their previous sessions)
    returns: pd.DataFrame  # sessions × public symbols and ETFs: the simulation window and the chunk's days
    factors: pd.DataFrame  # sessions × FACTOR_NAMES
    factor_model: pd.DataFrame  # long rows of the days and their previous sessions
    covariance: pd.DataFrame  # factor_covariance rows of the chunk's days
    actions: pd.DataFrame | None = None  # dividends and splits of the held symbols up to the chunk's end


def read_market(wh, reader: WindowReader, book: BookIndex, chunk: pd.DatetimeIndex, scoped: bool) -> RiskMarket:
    prev = calendar.previous_session(chunk[0])
    first_close = calendar.sessions_back(calendar.previous_session(prev), STALE_SESSIONS + 1)[0]
    close = reader.prices(book.market_symbols, first_close, chunk[-1], "close")
    symbols = list(dict.fromkeys([*book.public_symbols, *FACTOR_ETFS]))
    first_return = calendar.sessions_back(prev, HIST_WINDOW)[0]
    returns = reader.returns(symbols, first_return, chunk[-1])
    factors = factor_returns(returns.loc[:, list(FACTOR_ETFS)])
    keys = book.public_symbols if scoped else None
    fm = wh.read("factor_model", prev, chunk[-1], keys=keys,
                 columns=["date", "symbol", "factor", "beta", "specific_variance"])
    if not scoped and len(fm):
        fm = fm[fm["symbol"].isin(set(book.public_symbols))]
    cov = wh.read("factor_covariance", chunk[0], chunk[-1])
    actions = read_actions(wh, book.market_symbols, chunk[-1])
    return RiskMarket(close, returns, factors, fm.reset_index(drop=True), cov, actions)


# -- one batch -------------------------------------------------------------------------------------------
def compute_batch(books, market: RiskMarket, chunk: pd.DatetimeIndex) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``portfolio_risk`` and ``risk_contributions`` rows of one batch of portfolios over the chunk."""
    prev = calendar.previous_session(chunk[0])
    ext = pd.DatetimeIndex([prev]).append(chunk)
    # valued as the snapshots value them: quantities follow the splits since entry, private marks by date
    snaps, pv = compute_snapshots(books.books, books.positions, books.flows, market.close, ext, STALE_SESSIONS,
                                  actions=market.actions, marks=books.marks)
    every = covered_book(pv, market.factor_model, snaps)  # once for the days and their previous sessions
    book = book_on(every, chunk)
    risk, contributions = ex_ante_risk(book, market.covariance, top_k=TOP_POSITIONS)
    var = value_at_risk(book, risk["volatility_daily"].to_numpy(), market.returns, market.factors)
    # the previous session's covered holdings on each day, no trading: the backtest's realised P&L
    hyp = hypothetical_pnl(book_on(every, ext[:-1]), market.returns, market.factors)
    out = risk.merge(var, on=["date", "portfolio_id"], how="left", validate="one_to_one")
    out = out.merge(hyp[["date", "portfolio_id", "hypothetical_pnl", "positions_missing_return",
                         "positions_proxied_return"]], on=["date", "portfolio_id"], how="left", validate="one_to_one")
    for c in ("positions_missing_return", "positions_proxied_return"):
        out[c] = out[c].fillna(0).astype(np.int64)
    return out, compact_contributions(contributions)


def book_on(book: CoveredBook, days) -> CoveredBook:
    """The portfolio-days of ``book`` dated in ``days`` (order kept; what ``covered_book`` returns for
    those days' snapshots)."""
    keep = book.keys["date"].isin(pd.DatetimeIndex(days)).to_numpy()
    code = np.cumsum(keep) - 1
    rows = keep[book.group]
    return CoveredBook(book.keys[keep].reset_index(drop=True), code[book.group[rows]],
                       book.positions[rows].reset_index(drop=True), book.w[rows], book.loadings[rows],
                       book.specific_variance[rows], book.exclusions[keep].reset_index(drop=True))


def compact_contributions(contributions: pd.DataFrame) -> pd.DataFrame:
    """The long ``ex_ante_risk`` contributions with the position rows of each portfolio-day folded
    into one ``top_positions`` row: its contribution and share are the sums over the listed
    positions, ``positions`` the JSON list of ``[position_id, symbol, contribution, share]`` lists
    (:data:`POSITION_FIELDS`; USD to the cent, share to 1e-6), largest |contribution| first. Lists,
    not objects: the field names would be 40 % of the table's bytes."""
    is_pos = (contributions["component_type"] == "position").to_numpy()
    rows = contributions.loc[~is_pos, CONTRIBUTION_TABLE_COLUMNS[:-1]].copy()
    rows["positions"] = None
    pos = contributions.loc[is_pos]
    if pos.empty:
        return rows.reset_index(drop=True)[CONTRIBUTION_TABLE_COLUMNS]
    # ex_ante_risk keeps one portfolio-day's positions together, ranked: each entry's text is built
    # with whole-array operations, then every portfolio-day's list by one join and one split on a
    # marker that starts each list (no per-group Python work)
    pos = pos.reset_index(drop=True)
    grouped = pos.groupby(["date", "portfolio_id"], sort=False)
    g = grouped.ngroup().to_numpy()  # numbered in order of appearance, as ``sums`` below
    first = np.r_[True, g[1:] != g[:-1]]
    if first.sum() != g.max() + 1:
        raise ValueError("risk contributions: a portfolio-day's position rows are not contiguous")
    # numpy's float text is the shortest round-trip repr, as Python's
    numbers = (pos["contribution"].to_numpy(dtype=float).round(2).astype(str).astype(object) + ","
               + pos["share"].to_numpy(dtype=float).round(6).astype(str).astype(object) + "]")
    sep = np.full(len(pos), ",", dtype=object)
    sep[first] = "\x00"  # an object array: a numpy str array would strip the NUL
    entries = sep + position_json_prefixes(pos["component"].to_numpy(dtype=object),
                                           pos["symbol"].to_numpy(dtype=object)) + numbers
    bodies = "".join(entries.tolist()).split("\x00")[1:]
    sums = grouped[["contribution", "share"]].sum()
    lists = pd.Series(["[" + b + "]" for b in bodies], index=sums.index)
    top = sums.assign(positions=lists).reset_index()
    top["component_type"] = "position"
    top["component"] = TOP_COMPONENT
    out = pd.concat([rows, top[CONTRIBUTION_TABLE_COLUMNS]], ignore_index=True)
    return out.sort_values(["date", "portfolio_id"], kind="stable").reset_index(drop=True)


# -- the backtest ----------------------------------------------------------------------------------------
class BacktestHistory:
    """Each portfolio's 99 % VaR and hypothetical P&L over the trailing ``window + 1`` sessions, as
    dense ``(portfolios × sessions)`` matrices: read once from the stored ``portfolio_risk`` before
    the run's first day, then extended with each chunk's rows and trimmed (10,000 books: 40 MB)."""

    def __init__(self, wh, first_day: pd.Timestamp, scope: list[str] | None):
        end = calendar.previous_session(first_day)
        self.sessions = calendar.sessions_back(end, BACKTEST_WINDOW + 1)
        self.pids = pd.Index([], dtype=object)
        self.var = np.empty((0, len(self.sessions)))
        self.pnl = np.empty((0, len(self.sessions)))
        self.extend(wh.read(RISK, self.sessions[0], end, keys=scope,
                            columns=["date", "portfolio_id", BACKTEST_VAR, "hypothetical_pnl"]))

    def extend(self, risk_rows: pd.DataFrame) -> None:
        """Set the rows' values (a day already held is overwritten, as the warehouse rows will be)."""
        if risk_rows is None or not len(risk_rows):
            return
        dates = pd.DatetimeIndex(pd.to_datetime(risk_rows["date"])).normalize()
        ids = risk_rows["portfolio_id"].astype(str)
        new_ids = pd.Index(ids.unique()).difference(self.pids)
        if len(new_ids):
            self.pids = self.pids.append(new_ids)
            pad = np.full((len(new_ids), len(self.sessions)), np.nan)
            self.var, self.pnl = np.vstack([self.var, pad]), np.vstack([self.pnl, pad])
        if dates.max() > self.sessions[-1]:
            more = calendar.sessions(self.sessions[-1] + pd.Timedelta(days=1), dates.max())
            pad = np.full((len(self.pids), len(more)), np.nan)
            self.var, self.pnl = np.hstack([self.var, pad]), np.hstack([self.pnl, pad])
            self.sessions = self.sessions.append(more)
        col = self.sessions.get_indexer(dates)
        row = self.pids.get_indexer(ids)
        ok = col >= 0  # rows older than the window are not needed
        self.var[row[ok], col[ok]] = risk_rows[BACKTEST_VAR].to_numpy(dtype=float)[ok]
        self.pnl[row[ok], col[ok]] = risk_rows["hypothetical_pnl"].to_numpy(dtype=float)[ok]

    def trim(self, last_day: pd.Timestamp) -> None:
        keep = self.sessions >= calendar.sessions_back(last_day, BACKTEST_WINDOW + 1)[0]
        self.sessions, self.var, self.pnl = self.sessions[keep], self.var[:, keep], self.pnl[:, keep]

    def backtest(self, chunk: pd.DatetimeIndex, today: pd.DataFrame) -> pd.DataFrame:
        """``var_backtest`` rows of the portfolio-days in ``today`` (``[date, portfolio_id]``): each
        session's P&L against the previous session's VaR, over the trailing window."""
        if today is None or not len(today):
            return pd.DataFrame(columns=BACKTEST_COLUMNS)
        ids = pd.Index(sorted(set(today["portfolio_id"].astype(str))))
        rows = self.pids.get_indexer(ids)
        have = rows >= 0
        var_prev = np.full((len(ids), len(self.sessions) - 1), np.nan)
        pnl = np.full_like(var_prev, np.nan)
        var_prev[have] = self.var[rows[have], :-1]
        pnl[have] = self.pnl[rows[have], 1:]
        out = backtest_frame(var_prev, pnl, ids.to_numpy(dtype=object), self.sessions[1:], chunk, BACKTEST_WINDOW)
        want = pd.MultiIndex.from_arrays([pd.to_datetime(today["date"]).dt.normalize(),
                                          today["portfolio_id"].astype(str)])
        mine = pd.MultiIndex.from_frame(out[["date", "portfolio_id"]]).isin(want)
        return out[mine].reset_index(drop=True)


# -- statistics merged over batches and chunks ---------------------------------------------------------
@dataclass
class RiskTotals:
    """Merged statistics and bounded previews of the range's last day (never the rows themselves)."""

    rows: dict[str, int] = field(default_factory=lambda: {t: 0 for t in TABLES})
    ids: dict[str, set] = field(default_factory=lambda: {t: set() for t in TABLES})
    counts: dict[str, int] = field(default_factory=dict)
    arrays: dict[str, list] = field(default_factory=dict)
    preview: dict[str, pd.DataFrame] = field(default_factory=dict)
    lights: dict[str, str] = field(default_factory=dict)  # portfolio → light of the range's last day
    worst: pd.DataFrame | None = None  # the last day's backtest rows, most exceptions first (bounded)
    chunks: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "compute": 0.0, "write": 0.0})
    by_day: DayStats = field(default_factory=DayStats)  # the checks' counters and offenders per day

    def count(self, key: str, n) -> None:
        self.counts[key] = self.counts.get(key, 0) + int(n)

    def array(self, key: str) -> np.ndarray:
        parts = self.arrays.get(key, [])
        return np.concatenate(parts) if parts else np.empty(0)

    def dated(self, key: str) -> pd.Series:
        """``array(key)`` indexed by its portfolio-days' dates (``<key>_date``, kept beside it)."""
        parts = self.arrays.get(f"{key}_date", [])
        dates = pd.DatetimeIndex(np.concatenate(parts) if parts else np.empty(0, dtype="datetime64[ns]"))
        return pd.Series(self.array(key), index=dates)

    def keep(self, table: str, frame: pd.DataFrame, order: str, ascending: bool = False) -> None:
        kept = pd.concat([self.preview[table], frame], ignore_index=True) if table in self.preview else frame
        self.preview[table] = kept.sort_values(order, ascending=ascending, na_position="last").head(PREVIEW_ROWS)


def collect(totals: RiskTotals, frames: dict[str, pd.DataFrame], last_day) -> None:
    if RISK in frames:
        r = frames[RISK]
        totals.ids[RISK].update(r["portfolio_id"])
        totals.arrays.setdefault("volatility_annual_pct_equity", []).append(
            r["volatility_annual_pct_equity"].dropna().to_numpy(dtype=float))
        totals.arrays.setdefault("coverage", []).append(r["coverage"].dropna().to_numpy(dtype=float))
        covered = r.dropna(subset=["coverage"])
        totals.arrays.setdefault("coverage_date", []).append(covered["date"].to_numpy(dtype="datetime64[ns]"))
        totals.by_day.keep("lowest_coverage", covered[["date", "portfolio_id", "coverage"]], "coverage",
                           limit=DAY_OFFENDERS)
        totals.count("portfolio_days", len(r))
        totals.count("no_volatility", r["volatility_daily"].isna().sum())
        totals.count("no_historical_var", r["var_99_historical"].isna().sum())
        for c in ("positions_options", "positions_private", "positions_unpriced", "positions_no_loadings",
                  "hist_proxied_returns"):
            totals.count(c, r[c].sum())
        if last_day is not None:
            r = r[r["date"] == last_day]
            totals.keep(RISK, r[["portfolio_id", "equity", "volatility_annual_pct_equity", "factor_share", "beta_spy",
                                 "var_99_parametric", "var_99_historical", "es_99_historical", "coverage"]],
                        "volatility_annual_pct_equity")
    if CONTRIB in frames:
        c = frames[CONTRIB]
        totals.ids[CONTRIB].update(c["portfolio_id"])
        fs = c[c["component_type"] != "position"]
        # each portfolio-day's factor and specific contributions must sum to its σ (share sums to 1)
        dev = (fs.groupby(["date", "portfolio_id"])["share"].sum() - 1.0).abs()
        totals.count("euler_sum_off", (dev > 1e-8).sum())
        off = dev[dev > 1e-8].rename("deviation").reset_index()
        totals.by_day.add((dev > 1e-8).groupby(level="date").sum(), "euler_sum_off")
        totals.by_day.keep("euler_off", off, "deviation", ascending=False, limit=DAY_OFFENDERS)
        if last_day is not None:
            fac = c[(c["date"] == last_day) & (c["component_type"] == "factor")]
            biggest = fac.loc[fac.groupby("portfolio_id")["contribution"].idxmax().dropna()]
            totals.keep(CONTRIB, biggest[["portfolio_id", "component", "contribution", "share"]], "contribution")
    if BACKTEST in frames:
        b = frames[BACKTEST]
        totals.ids[BACKTEST].update(b["portfolio_id"])
        totals.count("backtest_observations", b["exception"].notna().sum())
        totals.count("backtest_exceptions", b["exception"].fillna(False).astype(bool).sum())
        light = b["traffic_light"].astype(object)
        totals.by_day.count(b["date"], red=(light == "red").to_numpy(), yellow=(light == "yellow").to_numpy())
        for colour in ("red", "yellow"):  # the day's portfolios of that light, by id (bounded)
            totals.by_day.keep(colour, b.loc[light == colour, ["date", "portfolio_id"]], "portfolio_id", limit=20)
        totals.by_day.keep("worst", b[["date", *WORST_COLUMNS]], ["exceptions", "kupiec_p_value"],
                           ascending=[False, True], limit=PREVIEW_ROWS)
        if last_day is not None:
            b = b[b["date"] == last_day]
            totals.lights.update(zip(b["portfolio_id"], b["traffic_light"]))
            worst = b.sort_values(["exceptions", "kupiec_p_value"], ascending=[False, True]).head(PREVIEW_ROWS)
            cols = ["portfolio_id", "exceptions", "observations", "traffic_light", "kupiec_p_value", "christoffersen_lr"]
            kept = pd.concat([totals.worst, worst[cols]], ignore_index=True) if totals.worst is not None else worst[cols]
            totals.worst = kept.sort_values(["exceptions", "kupiec_p_value"], ascending=[False, True]).head(PREVIEW_ROWS)


@dataclass
class ChunkReport:
    start: pd.Timestamp
    end: pd.Timestamp
    batches: int
    rows: dict[str, int]
    seconds: dict[str, float]


def empty_frame(wh, name: str) -> pd.DataFrame:
    return pd.DataFrame(columns=[c.name for c in wh.table(name).columns])


# -- the range -------------------------------------------------------------------------------------------
def run(wh, reader: WindowReader, days: pd.DatetimeIndex, selected, portfolio_ids: list[str] | None = None,
        batch_portfolio_days: int = BATCH_PORTFOLIO_DAYS, on_chunk: Callable[[ChunkReport], None] | None = None
        ) -> tuple[BookIndex, RiskTotals]:
    """Compute and store the ``selected`` risk tables over ``days`` (see the module docstring).

    Returns the book's index and the merged statistics and previews.
    """
    from ..warehouse import schemas  # pandera: imported by the first run, not by the definitions load

    selected = set(selected) & set(TABLES)
    scope = sorted(set(portfolio_ids)) if portfolio_ids is not None else None
    book = read_book_index(wh, scope)
    chunks, per_batch = plan(days, len(book.portfolio_ids), batch_portfolio_days)
    batches = book.batches(per_batch)
    need_compute = bool(selected & {RISK, CONTRIB})
    whole = read_book(wh, None, batches[0]) if need_compute and len(batches) == 1 else None
    totals = RiskTotals()
    last_day = days[-1] if len(days) else None
    started = time.perf_counter()
    history = BacktestHistory(wh, days[0], scope) if BACKTEST in selected and len(days) else None
    totals.seconds["read"] += time.perf_counter() - started  # the backtest's trailing window, once per run
    for chunk in chunks:
        clock = PhaseClock()
        lap = clock.lap

        market = read_market(wh, reader, book, chunk, scope is not None) if need_compute else None
        stored_risk = None
        if not need_compute and BACKTEST in selected:  # the backtest alone reads the stored risk rows
            stored_risk = wh.read(RISK, chunk[0], chunk[-1], keys=scope,
                                  columns=["date", "portfolio_id", BACKTEST_VAR, "hypothetical_pnl"])
            stored_risk["date"] = pd.to_datetime(stored_risk["date"]).dt.normalize()
        lap("read")
        in_chunk = last_day if last_day is not None and chunk[0] <= last_day <= chunk[-1] else None
        parts: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES if name in selected}
        risk_parts: list[pd.DataFrame] = []
        for ids in batches:
            frames: dict[str, pd.DataFrame] = {}
            if need_compute and ids:
                batch = whole if whole is not None else read_book(wh, None, ids)
                risk, contrib = compute_batch(batch, market, chunk)
                del batch
                risk_parts.append(risk)
                if RISK in selected:
                    frames[RISK] = risk
                if CONTRIB in selected:
                    frames[CONTRIB] = contrib
            for name, frame in frames.items():
                frames[name] = schemas.validate(name, frame)  # a bad frame fails before anything is deleted
                parts[name].append(frames[name])
            collect(totals, frames, in_chunk)
            lap("compute")
        if history is not None:
            today = pd.concat(risk_parts, ignore_index=True) if risk_parts else stored_risk
            if today is None:  # an empty book
                today = pd.DataFrame(columns=["date", "portfolio_id", BACKTEST_VAR, "hypothetical_pnl"])
            history.extend(today)
            bt = history.backtest(chunk, today)
            bt = schemas.validate(BACKTEST, bt) if len(bt) else bt
            history.trim(chunk[-1])
            parts[BACKTEST].append(bt)
            collect(totals, {BACKTEST: bt}, in_chunk)
            lap("compute")
        del market, risk_parts
        rows = {name: sum(len(f) for f in fs) for name, fs in parts.items()}
        wh.replace_many([Replacement(name, pd.concat(fs, ignore_index=True) if fs else empty_frame(wh, name),
                                     chunk[0], chunk[-1], keys=scope, key_column="portfolio_id")
                         for name, fs in parts.items()])
        lap("write")
        for name, n in rows.items():
            totals.rows[name] += n
        totals.chunks += 1
        for k, v in clock.seconds.items():
            totals.seconds[k] += v
        if on_chunk is not None:
            on_chunk(ChunkReport(chunk[0], chunk[-1], len(batches), rows, clock.rounded()))
    return book, totals

