"""Portfolio analytics without Dagster: ``portfolio_snapshots``, ``correlations``,
``aggregated_exposures`` and ``stress_results`` over a range of days, for the whole book or a scope
of portfolios.

Bounded work
------------
A range is cut into *chunks* of days and a chunk's book into *batches* of portfolios, so that a
batch holds at most ``batch_portfolio_days`` portfolio-days (position values, 13 exposure and 24
stress rows per portfolio-day, their validation copies): a small book gets chunks of up to
``MAX_CHUNK_DAYS`` sessions in one batch; a large one gets one-session chunks split into batches
of ``batch_portfolio_days`` portfolios. Memory follows the batch, never the book or the range: of
the whole book a run holds only its portfolio ids and held symbols (:class:`BookIndex`); a book of
one batch is read once for the range, a larger one batch by batch.
Market inputs — the price and return window, the betas, the factor covariance, and for a book of
several batches the day's correlation matrix of every held symbol — are read or computed once per
chunk and shared by its batches (a pair's correlation depends only on the two return series, so
slicing one matrix gives each portfolio the numbers of its own).

Atomic writes
-------------
Each chunk's days are replaced in all the selected tables in ONE transaction (delete the
partitions — or, for a scoped run, only the scoped portfolios' rows — then insert): a failed run
leaves every (table, day) either as it was or complete. A chunk of one batch is written from
memory; the batches of a larger chunk are validated as they are computed, staged on local disk
and inserted one after another inside that transaction, so a day of 100,000 portfolios is never
in memory at once and never half-written.

Scoped runs
-----------
With ``portfolio_ids``, only those books are read and only their rows are replaced; an id no
longer in the ledger has its rows of the range deleted (its book is empty). Without it, the whole
partition is replaced, which also drops rows of portfolios removed from the ledger.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from .. import calendar
from ..calc.correlation import CORR_MIN_OVERLAP, CORR_WINDOW, SquareBuffer, portfolio_correlations, union_correlation
from ..calc.exposures import aggregate_exposures
from ..calc.snapshots import compute_snapshots
from ..calc.stress import compute_joint_stress
from ..warehouse import Replacement, StagedReplacement
from . import replays
from .clock import PhaseClock
from .daystats import DayStats
from .windows import WindowReader

SNAP, CORR, EXPO, STRESS = "portfolio_snapshots", "correlations", "aggregated_exposures", "stress_results"
TABLES = (SNAP, CORR, EXPO, STRESS)

STALE_SESSIONS = 5  # a close up to 5 sessions old values a position (flagged stale)
VOL_WINDOW = 63  # the longest realised-volatility window of the snapshots
#: default portfolio-days per batch: 2 sessions of 10,000 portfolios × 25 positions. Measured for 20,000
#: one-session books: ~0.9 GB for the computation (stress ~0.45 GB, correlations ~0.25 GB) on top of
#: the batch's ledger and the price window; two runs side by side then stay within 4 GB.
BATCH_PORTFOLIO_DAYS = 20_000
#: most sessions per chunk (a small book's price window read is amortised over many days)
MAX_CHUNK_DAYS = 21
# Largest contributors kept per (portfolio, day, scenario): the JSON is most of a stress row's bytes.
STRESS_TOP_CONTRIBUTORS = 3
PREVIEW_ROWS = 10
DAY_OFFENDERS = 10  # offenders kept per day for that day's check metadata


# -- the book -------------------------------------------------------------------------------------------
@dataclass
class Book:
    """One batch's ledger (or the whole book when it fits in one batch) and the scenarios."""

    books: pd.DataFrame
    positions: pd.DataFrame  # not deleted
    flows: pd.DataFrame
    scenarios: object  # scenarios.ScenarioSet
    marks: pd.DataFrame | None = None  # private_marks

    @property
    def portfolio_ids(self) -> list[str]:
        return sorted(self.books["portfolio_id"].astype(str))


@dataclass
class BookIndex:
    """What a run needs of the whole book at once — its portfolio ids and the symbols it holds, never
    its positions (at 100,000 portfolios those are read one batch at a time)."""

    portfolio_ids: list[str]
    market_symbols: list[str]  # valued from market prices: PUBLIC and OPTIONS
    public_symbols: list[str]

    def batches(self, size: int) -> list[list[str]]:
        """The portfolio ids cut into consecutive batches of at most ``size`` (by id)."""
        ids = self.portfolio_ids
        return [ids[i : i + size] for i in range(0, len(ids), size)] or [[]]


# The ledger columns the snapshots read (the option's underlying, type and strike are not needed).
POSITION_COLUMNS = ["portfolio_id", "position_id", "symbol", "investment_class", "quantity", "entry_price",
                    "entry_date", "exit_date", "exit_price", "expiration", "manual_value", "deleted"]


def read_book(wh, scenarios, portfolio_ids: list[str] | None = None) -> Book:
    """The current ledger (only ``portfolio_ids`` when given), without deleted positions."""
    books = wh.read("portfolios", keys=portfolio_ids, key_column="portfolio_id", columns=["portfolio_id", "name"])
    positions = wh.read("positions", keys=portfolio_ids, key_column="portfolio_id", columns=POSITION_COLUMNS)
    flows = wh.read("capital_flows", keys=portfolio_ids, key_column="portfolio_id",
                    columns=["portfolio_id", "date", "amount"])
    marks = wh.read("private_marks", keys=portfolio_ids, key_column="portfolio_id",
                    columns=["portfolio_id", "position_id", "date", "value"])
    if len(positions):
        positions = positions[~positions["deleted"].astype(bool)].reset_index(drop=True)
    return Book(books, positions, flows, scenarios, marks)


def read_book_index(wh, portfolio_ids: list[str] | None = None) -> BookIndex:
    """The book's portfolio ids (only those of ``portfolio_ids`` still in the ledger) and the symbols
    of its live positions, by a DISTINCT query rather than the positions themselves."""
    from sqlalchemy import select

    books = wh.read("portfolios", keys=portfolio_ids, key_column="portfolio_id", columns=["portfolio_id"])
    t = wh.table("positions")
    stmt = select(t.c.symbol, t.c.investment_class).distinct().where(t.c.deleted.is_(False))
    if portfolio_ids is not None:
        stmt = stmt.where(t.c.portfolio_id.in_(list(portfolio_ids)))
    with wh.engine.connect() as conn:
        held = pd.DataFrame(conn.execute(stmt).fetchall(), columns=["symbol", "investment_class"])
    return BookIndex(
        portfolio_ids=sorted(books["portfolio_id"].astype(str)),
        market_symbols=sorted(set(held.loc[held["investment_class"] != "PRIVATE", "symbol"])),
        public_symbols=sorted(set(held.loc[held["investment_class"] == "PUBLIC", "symbol"])),
    )


def plan(days: pd.DatetimeIndex, n_portfolios: int, batch_portfolio_days: int = BATCH_PORTFOLIO_DAYS
         ) -> tuple[list[pd.DatetimeIndex], int]:
    """(chunks of days, portfolios per batch) for a book of ``n_portfolios``: each batch holds at
    most ``batch_portfolio_days`` portfolio-days, chunks are 1 to ``MAX_CHUNK_DAYS`` sessions."""
    n = max(n_portfolios, 1)
    chunk_days = max(1, min(MAX_CHUNK_DAYS, batch_portfolio_days // n))
    return calendar.chunks(days, chunk_days), max(1, batch_portfolio_days // chunk_days)


# -- statistics merged over batches and chunks -------------------------------------------------------
@dataclass
class Totals:
    """Statistics of everything stored so far (counts summed, id sets united, arrays joined) and
    bounded previews of the range's last day, so the caller never holds the rows themselves."""

    rows: dict[str, int] = field(default_factory=lambda: {t: 0 for t in TABLES})
    ids: dict[str, set] = field(default_factory=lambda: {t: set() for t in TABLES})
    counts: dict[str, int] = field(default_factory=dict)
    arrays: dict[str, list] = field(default_factory=dict)
    preview: dict[str, pd.DataFrame] = field(default_factory=dict)
    last_day: dict[str, float] = field(default_factory=dict)  # sums over the last day
    not_replayable: dict[str, str] = field(default_factory=dict)  # active replay scenario id → reason
    chunks: int = 0
    batches: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "compute": 0.0, "write": 0.0})
    by_day: DayStats = field(default_factory=DayStats)  # the checks' counters and offenders per day

    def count(self, key: str, n) -> None:
        self.counts[key] = self.counts.get(key, 0) + int(n)

    def array(self, key: str) -> np.ndarray:
        parts = self.arrays.get(key, [])
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)

    def dated(self, key: str) -> pd.Series:
        """``array(key)`` indexed by its portfolio-days' dates (``<key>_date``, kept beside it)."""
        parts = self.arrays.get(f"{key}_date", [])
        dates = pd.DatetimeIndex(np.concatenate(parts) if parts else np.empty(0, dtype="datetime64[ns]"))
        return pd.Series(self.array(key), index=dates)

    def keep_preview(self, table: str, frame: pd.DataFrame, order: str | None, ascending: bool = True) -> None:
        """Keep the ``PREVIEW_ROWS`` first rows of ``frame`` ∪ what is kept (by ``order``, else by id)."""
        kept = pd.concat([self.preview.get(table), frame], ignore_index=True) if table in self.preview else frame
        key = order or "portfolio_id"
        self.preview[table] = kept.sort_values(key, ascending=ascending, na_position="last").head(PREVIEW_ROWS)


def _collect(totals: Totals, frames: dict[str, pd.DataFrame], last_day, active_ids: list[str]) -> None:
    if SNAP in frames:
        s = frames[SNAP]
        totals.ids[SNAP].update(s["portfolio_id"].astype(str))
        eq = s["equity"].to_numpy(dtype=float)
        partial = s["is_partial"].astype(bool).to_numpy()
        # NaN equity is the rule for a partial portfolio-day; anything else non-finite is a defect.
        totals.count("non_finite_equity", (np.isfinite(eq) == partial).sum())
        totals.count("dividend_portfolio_days", (s["dividends"].fillna(0.0) != 0).sum())
        totals.count("gross_lt_abs_net", (~(s["gross_exposure"] + 1e-6 >= s["net_exposure"].abs())).sum())
        totals.count("partial_portfolio_days", s["is_partial"].astype(bool).sum())
        totals.by_day.count(s["date"], non_finite_equity=np.isfinite(eq) == partial,
                            gross_lt_abs_net=~(s["gross_exposure"] + 1e-6 >= s["net_exposure"].abs()).to_numpy())
    if CORR in frames:
        c = frames[CORR]
        totals.ids[CORR].update(c["portfolio_id"].astype(str))
        eig = c["min_eigenvalue"].dropna()
        avg = c["avg_correlation"].dropna()
        totals.count("not_psd", (eig < -1e-8).sum())
        totals.count("avg_out_of_range", ((avg < -1 - 1e-12) | (avg > 1 + 1e-12)).sum())
        totals.count("psd_repaired_rows", c["psd_repaired"].astype(bool).sum())
        totals.count("insufficient_pairs", c["n_pairs_insufficient"].sum())
        totals.arrays.setdefault("avg_correlation", []).append(avg.to_numpy(dtype=np.float32))
        eig_all, avg_all = c["min_eigenvalue"].to_numpy(dtype=float), c["avg_correlation"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):  # NaN compares False: as the dropna above
            totals.by_day.count(c["date"], not_psd=eig_all < -1e-8,
                                avg_out_of_range=(avg_all < -1 - 1e-12) | (avg_all > 1 + 1e-12))
    if EXPO in frames:
        e = frames[EXPO]
        totals.ids[EXPO].update(e["portfolio_id"].astype(str))
        market = e[e["factor"] == "market"]
        totals.arrays.setdefault("market_coverage", []).append(market["coverage"].dropna().to_numpy(dtype=np.float32))
        covered = market.dropna(subset=["coverage"])
        totals.arrays.setdefault("market_coverage_date", []).append(covered["date"].to_numpy(dtype="datetime64[ns]"))
        totals.by_day.keep("lowest_market_coverage", covered[["date", "portfolio_id", "coverage"]], "coverage",
                           limit=DAY_OFFENDERS)
    if STRESS in frames:
        st = frames[STRESS]
        totals.ids[STRESS].update(st["portfolio_id"].astype(str))
        per_book = st[st["scenario_id"].isin(active_ids)].groupby(["date", "portfolio_id"]).size()
        totals.count("stress_groups", len(per_book))
        totals.count("stress_complete_groups", (per_book == len(active_ids)).sum())
        complete = per_book == len(active_ids)
        totals.by_day.add(pd.DataFrame({"stress_groups": per_book.groupby(level="date").size(),
                                        "stress_complete_groups": complete.groupby(level="date").sum()}))
        totals.by_day.keep("stress_incomplete", per_book[~complete].rename("scenarios").reset_index(),
                           "portfolio_id", limit=DAY_OFFENDERS)
        # coverage repeats on every scenario row of a portfolio-day: one value per portfolio-day
        cov = st.drop_duplicates(["date", "portfolio_id"])["coverage"].dropna()
        totals.arrays.setdefault("stress_coverage", []).append(cov.to_numpy(dtype=np.float32))
    if last_day is None:
        return
    if SNAP in frames:
        s = frames[SNAP]
        s = s[s["date"] == last_day]
        totals.last_day["unpriced_positions"] = totals.last_day.get("unpriced_positions", 0) + float(s["unpriced_count"].sum())
        totals.last_day["total_equity"] = totals.last_day.get("total_equity", 0.0) + float(s["equity"].sum())
        totals.last_day["dividends"] = totals.last_day.get("dividends", 0.0) + float(s["dividends"].sum())
        totals.keep_preview(SNAP, s[["portfolio_id", "equity", "gross_exposure", "net_exposure", "daily_pnl",
                                     "daily_return", "dividends", "position_count", "unpriced_count", "volatility_63d"]],
                            "equity", ascending=False)
    if CORR in frames:
        c = frames[CORR]
        totals.keep_preview(CORR, c.loc[c["date"] == last_day, ["portfolio_id", "n_symbols", "avg_correlation",
                                                                 "effective_positions_corr", "psd_repaired"]], None)
    if EXPO in frames:
        e = frames[EXPO]
        e = e[(e["date"] == last_day) & (e["factor"] == "market")]
        totals.keep_preview(EXPO, e[["portfolio_id", "exposure_dollar", "exposure_value", "coverage",
                                     "positions_missing_beta"]], None)
    if STRESS in frames:
        st = frames[STRESS]
        st = st[st["date"] == last_day]
        worst = (st.sort_values("correlated_pct_equity").groupby("portfolio_id").head(1)
                 [["portfolio_id", "scenario_id", "direct_pnl", "correlated_pnl", "correlated_pct_equity"]])
        totals.keep_preview(STRESS, worst, "correlated_pct_equity")


# -- one chunk ---------------------------------------------------------------------------------------------
@dataclass
class Market:
    """A chunk's market inputs, shared by its batches."""

    close: pd.DataFrame  # sessions × market symbols
    returns: pd.DataFrame  # point-in-time total returns (symbol_returns), sessions of the windows × market symbols
    log_returns: pd.DataFrame
    betas: pd.DataFrame | None  # the displayed betas, for aggregated_exposures
    covariance: pd.DataFrame | None
    actions: pd.DataFrame | None = None  # every dividend and split of the held symbols up to the chunk's end
    factor_model: pd.DataFrame | None = None  # joint loadings, for stress
    replays: replays.ReplayWindows | None = None  # the stored replay windows (read once per run)
    union: dict | None = None  # day → (symbols, correlation matrix) for several batches
    buffer: SquareBuffer | None = None  # the run's work area for a one-batch book's daily union matrix


def read_actions(wh, symbols, end) -> pd.DataFrame:
    """Every stored dividend and split (``date, symbol, dividend, split_ratio``) of ``symbols`` dated
    ≤ ``end``: the snapshots apply them over each position's whole holding period. The rows are
    sparse and served by the partial index ``ix_prices_actions``."""
    from sqlalchemy import select, text

    from ..warehouse.schema import ACTIONS_WHERE

    t = wh.table("prices")
    stmt = (select(t.c.date, t.c.symbol, t.c.dividend, t.c.split_ratio)
            .where(t.c.date <= pd.Timestamp(end).date()).where(text(f"({ACTIONS_WHERE})")))
    with wh.engine.connect() as conn:
        rows = pd.DataFrame(conn.execute(stmt).fetchall(), columns=["date", "symbol", "dividend", "split_ratio"])
    rows = rows[rows["symbol"].isin(set(symbols))]
    rows["date"] = pd.to_datetime(rows["date"])
    return rows.astype({"dividend": float, "split_ratio": float}).reset_index(drop=True)


def read_market(wh, reader: WindowReader, book: BookIndex, chunk: pd.DatetimeIndex, selected: set[str],
                scoped: bool) -> Market:
    need_returns = CORR_WINDOW if CORR in selected else VOL_WINDOW
    # Prices only value positions (the day, the previous session and the stale look-back); every
    # return-based number reads the point-in-time returns of symbol_returns.
    first_price = calendar.sessions_back(calendar.previous_session(chunk[0]), STALE_SESSIONS + 1)[0]
    first_return = calendar.sessions_back(chunk[0], need_returns)[0]
    symbols = book.market_symbols
    close = reader.prices(symbols, first_price, chunk[-1], "close")
    returns = reader.returns(symbols, first_return, chunk[-1])
    actions = read_actions(wh, symbols, chunk[-1])
    betas = cov = model = None
    keys = symbols if scoped else None  # a scoped book needs few symbols' betas
    if EXPO in selected:
        parts = [wh.read(t, chunk[0], chunk[-1], keys=keys, columns=["date", "symbol", "factor", "beta"])
                 for t in ("symbol_betas", "ridge_factors", "spread_factors")]
        betas = pd.concat(parts, ignore_index=True).dropna(subset=["beta"])
    if STRESS in selected:
        cov = wh.read("factor_covariance", chunk[0], chunk[-1])
        model = wh.read("factor_model", chunk[0], chunk[-1], keys=keys,
                        columns=["date", "symbol", "factor", "beta", "specific_variance"])
    return Market(close, returns, np.log1p(returns), betas, cov, actions, model)


def compute_batch(book: Book, market: Market, chunk: pd.DatetimeIndex, selected: set[str]) -> dict[str, pd.DataFrame]:
    """The selected tables' rows of one batch of portfolios over the chunk's days."""
    snaps, pv = compute_snapshots(book.books, book.positions, book.flows, market.close, chunk, STALE_SESSIONS,
                                  returns_wide=market.returns, actions=market.actions, marks=book.marks)
    frames: dict[str, pd.DataFrame] = {}
    if SNAP in selected:
        frames[SNAP] = snaps
    if CORR in selected:
        frames[CORR] = portfolio_correlations(pv, market.log_returns, chunk, portfolio_ids=book.books["portfolio_id"],
                                              union=market.union, buffer=market.buffer)
    if EXPO in selected:
        frames[EXPO] = aggregate_exposures(pv, market.betas, snaps)
    if STRESS in selected:
        scn = book.scenarios
        frames[STRESS], _ = compute_joint_stress(pv, market.factor_model, snaps, market.covariance, scn.scenarios,
                                                 duration=scn.rate_duration, top_n=STRESS_TOP_CONTRIBUTORS,
                                                 return_contributors=False)
        frames[STRESS]["replayed_share"] = np.nan  # shock scenarios replay nothing
        if market.replays is not None and market.replays.scenarios:
            rows = replays.replay_rows(pv, market.factor_model, snaps, market.replays, STRESS_TOP_CONTRIBUTORS)
            frames[STRESS] = pd.concat([frames[STRESS], rows], ignore_index=True)
    return frames


@dataclass
class ChunkReport:
    start: pd.Timestamp
    end: pd.Timestamp
    batches: int
    rows: dict[str, int]
    seconds: dict[str, float]


def run(wh, reader: WindowReader, days: pd.DatetimeIndex, selected, scenarios, portfolio_ids: list[str] | None = None,
        batch_portfolio_days: int = BATCH_PORTFOLIO_DAYS, on_chunk: Callable[[ChunkReport], None] | None = None,
        stage_dir: str | None = None) -> tuple[BookIndex, Totals]:
    """Compute and store the ``selected`` tables over ``days`` (see the module docstring).

    Parameters
    ----------
    reader : the run's window reader (shared with the symbol steps of an in-process run).
    selected : table names to compute and replace.
    portfolio_ids : scope; ``None`` replaces whole partitions.
    batch_portfolio_days : the memory knob (portfolio-days per batch).
    on_chunk : called after each chunk is stored (progress logging).
    stage_dir : where batches of a multi-batch chunk are staged (default: the system temp dir).

    Returns
    -------
    (book, totals) : the book's index and the merged statistics and previews.
    """
    from ..warehouse import schemas  # pandera: imported by the first run, not by the definitions load

    selected = set(selected)
    scope = sorted(set(portfolio_ids)) if portfolio_ids is not None else None
    book = read_book_index(wh, scope)
    chunks, per_batch = plan(days, len(book.portfolio_ids), batch_portfolio_days)
    batches = book.batches(per_batch)
    # A book of one batch is read once for the whole range; a larger one a batch at a time. Both are
    # read by id (slices of ids, never one fetch of every position: that transient costs ~3× the frame).
    whole = read_book(wh, scenarios, batches[0]) if len(batches) == 1 else None
    active_ids = [s.id for s in scenarios.active]
    totals = Totals()
    windows = replays.read_windows(wh, scenarios, book.public_symbols) if STRESS in selected else None
    if windows is not None:
        totals.not_replayable = replays.not_replayable(windows)
    last_day = days[-1] if len(days) else None
    buffer = SquareBuffer()
    for chunk in chunks:
        clock = PhaseClock()
        lap = clock.lap

        market = read_market(wh, reader, book, chunk, selected, scope is not None)
        market.replays = windows
        market.buffer = buffer
        if CORR in selected and len(batches) > 1:
            market.union = {day: union_correlation(market.log_returns, day, book.public_symbols, CORR_WINDOW,
                                                   CORR_MIN_OVERLAP) for day in chunk}
        lap("read")
        in_chunk = last_day if last_day is not None and chunk[0] <= last_day <= chunk[-1] else None
        staged: dict[str, list] = {name: [] for name in TABLES if name in selected}
        rows = {name: 0 for name in staged}
        tmp = tempfile.mkdtemp(prefix="sigmasight-portfolio-", dir=stage_dir) if len(batches) > 1 else None
        try:
            for b, ids in enumerate(batches):
                batch = whole if whole is not None else read_book(wh, scenarios, ids)
                frames = compute_batch(batch, market, chunk, selected)
                del batch
                for name, frame in frames.items():
                    frames[name] = schemas.validate(name, frame)  # a bad frame fails before anything is deleted
                    rows[name] += len(frame)
                _collect(totals, frames, in_chunk, active_ids)
                lap("compute")
                for name, frame in frames.items():
                    if tmp is None:
                        staged[name].append(frame)
                    else:
                        path = os.path.join(tmp, f"{name}-{b}.pkl")
                        with open(path, "wb") as fh:
                            pickle.dump(frame, fh, protocol=pickle.HIGHEST_PROTOCOL)
                        staged[name].append(path)
                del frames
                lap("write")
            market = None
            if tmp is None:
                wh.replace_many([Replacement(name, parts[0], chunk[0], chunk[-1], keys=scope, key_column="portfolio_id")
                                 for name, parts in staged.items()])
            else:
                wh.replace_staged([StagedReplacement(name, [_loader(p) for p in parts], chunk[0], chunk[-1], keys=scope,
                                                     key_column="portfolio_id")
                                   for name, parts in staged.items()])
            lap("write")
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        for name, n in rows.items():
            totals.rows[name] += n
        totals.chunks += 1
        totals.batches += len(batches)
        for k, v in clock.seconds.items():
            totals.seconds[k] += v
        if on_chunk is not None:
            on_chunk(ChunkReport(chunk[0], chunk[-1], len(batches), rows, clock.rounded()))
    return book, totals


def _loader(path: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        with open(path, "rb") as fh:
            return pickle.load(fh)

    return load


# -- removed portfolios ----------------------------------------------------------------------------------
def delete_portfolio_rows(wh, portfolio_ids, tables=TABLES) -> dict[str, int]:
    """Delete every row (all days) of ``portfolio_ids`` from ``tables`` (default: this pipeline's), in one
    transaction; returns the rows deleted per table."""
    return wh.delete_keys(tables, sorted(set(portfolio_ids)), key_column="portfolio_id")


def portfolios_with_rows(wh) -> set[str]:
    """Portfolios with at least one snapshot row (the analytics the warehouse holds)."""
    from sqlalchemy import select

    t = wh.table(SNAP)
    with wh.engine.connect() as conn:
        return {r[0] for r in conn.execute(select(t.c.portfolio_id).distinct())}


# -- ledger changes (the ledger sensor) ------------------------------------------------------------------
def _canonical(frame: pd.DataFrame, sort_by: list[str]) -> pd.DataFrame:
    frame = frame.sort_values(sort_by, kind="mergesort").reset_index(drop=True)
    frame = frame.reindex(columns=sorted(frame.columns))
    return frame.astype(object).where(frame.notna(), "").astype(str)


def ledger_fingerprints(books: pd.DataFrame, positions: pd.DataFrame, flows: pd.DataFrame,
                        marks: pd.DataFrame | None = None) -> dict[str, str]:
    """Per portfolio: a hash of its positions, capital-flow and private-mark rows (canonical text,
    order-free). A portfolio without marks hashes as it did before marks existed.

    Values are compared as text so a dtype change caused by another portfolio's rows (e.g. a column
    gaining a NULL) never changes this portfolio's fingerprint.
    """
    digests: dict[str, hashlib._Hash] = {pid: hashlib.sha256() for pid in books["portfolio_id"]}
    for frame, key in ((positions, "position_id"), (flows, "flow_id")):
        if frame.empty:
            for d in digests.values():
                d.update(b"|")
            continue
        canon = _canonical(frame, ["portfolio_id", key])
        row_hash = pd.util.hash_pandas_object(canon, index=False).to_numpy()
        pids = canon["portfolio_id"].to_numpy()
        order = np.argsort(pids, kind="stable")
        pids, row_hash = pids[order], row_hash[order]
        bounds = np.flatnonzero(np.r_[True, pids[1:] != pids[:-1], True])
        for a, b in zip(bounds[:-1], bounds[1:]):
            digests.setdefault(pids[a], hashlib.sha256()).update(np.sort(row_hash[a:b]).tobytes())
        for d in digests.values():
            d.update(b"|")
    if marks is not None and len(marks):
        canon = _canonical(marks[["portfolio_id", "position_id", "date", "value"]], ["portfolio_id", "position_id", "date"])
        row_hash = pd.util.hash_pandas_object(canon, index=False).to_numpy()
        for pid, idx in canon.groupby("portfolio_id").indices.items():
            digests.setdefault(pid, hashlib.sha256()).update(b"marks" + np.sort(row_hash[idx]).tobytes())
    return {pid: d.hexdigest()[:16] for pid, d in digests.items()}


def portfolio_first_dates(positions: pd.DataFrame, flows: pd.DataFrame, pids) -> dict[str, pd.Timestamp]:
    """First ledger date (entry or capital flow) of each portfolio."""
    out: dict[str, pd.Timestamp] = {}
    live = positions[~positions["deleted"].astype(bool)] if len(positions) else positions
    for frame, col in ((live, "entry_date"), (flows, "date")):
        if len(frame):
            firsts = frame[frame["portfolio_id"].isin(set(pids))].groupby("portfolio_id")[col].min()
            for pid, d in firsts.items():
                out[pid] = min(out.get(pid, pd.Timestamp(d)), pd.Timestamp(d))
    return out
