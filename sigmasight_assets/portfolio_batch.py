"""One chunk of portfolio-analytics days: compute, validate and store (no Dagster).

``portfolio_analytics`` splits its partition range into chunks of a few sessions (``chunk_days``). Each
chunk is independent — snapshots are a pure function of the ledger and prices, correlations,
exposures and stress read only prices, betas and covariances of their own window — so chunks can
run in any order and in several processes at once. This module holds the per-chunk work so the
same code runs inline (one chunk, e.g. the nightly partition) or in worker processes (a backfill):
a worker imports numpy, pandas and the warehouse, never Dagster.

Per chunk the write is the warehouse's delete-then-insert of the chunk's partitions of every selected
table in one transaction: a chunk that fails leaves its days as they were in all of them, chunks
already stored stay.
Only mergeable statistics travel back (counts, the few per-portfolio-day values whose median the
metadata reports, as float32) plus, from the chunk holding the range's last day, that day's rows for
the previews: a year at 10,000 portfolios never accumulates rows in the calling process.
"""

from __future__ import annotations

import os
import sys
import time
import types
import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import calendar, config, schemas
from .calc.correlation import portfolio_correlations
from .calc.exposures import aggregate_exposures
from .calc.returns import log_returns
from .calc.snapshots import compute_snapshots
from .calc.stress import compute_stress
from .warehouse import Replacement, Warehouse

SNAP, CORR, EXPO, STRESS = "portfolio_snapshots", "correlations", "aggregated_exposures", "stress_results"
TABLES = (SNAP, CORR, EXPO, STRESS)

STALE_SESSIONS = 5
VOL_WINDOW = 63
CORR_WINDOW, CORR_MIN_OVERLAP, CORR_MIN_VALUE, CORR_MIN_WEIGHT = 90, 30, 10_000.0, 0.01
# Chunk size: a chunk's working set grows with its portfolio-days (position values, 13 exposure and
# 19 stress rows per portfolio-day, their validation and insert copies), so a chunk holds at most
# CHUNK_PORTFOLIO_DAYS of them — 3 sessions at 10,000 portfolios × 25 positions, measured at about
# 0.9 GB of RSS per worker — and never more than MAX_CHUNK_DAYS sessions (small books: the per-chunk
# read of the 90-session price window is then amortised over many days).
CHUNK_PORTFOLIO_DAYS = 30_000
MAX_CHUNK_DAYS = 21
# Largest contributors kept per (portfolio, day, scenario): the JSON is most of a stress row's bytes,
# and at 10,000 portfolios × 19 scenarios a year is 48M rows.
STRESS_TOP_CONTRIBUTORS = 3

PREVIEW_DROP = {SNAP: [], CORR: ["symbols", "matrix"], EXPO: [], STRESS: ["top_contributors"]}


def worker_count(n_chunks: int) -> int:
    """Processes for ``n_chunks`` chunks: ``SIGMASIGHT_WORKERS`` (default: the cores), never
    more than the chunks. 1 means inline, in the calling process."""
    return max(1, min(config.workers(), n_chunks))


def chunk_days(n_portfolios: int) -> int:
    """Sessions per chunk for a book of ``n_portfolios``: ``CHUNK_PORTFOLIO_DAYS`` (or
    ``SIGMASIGHT_CHUNK_PORTFOLIO_DAYS``) portfolio-days, between 1 and ``MAX_CHUNK_DAYS`` sessions."""
    budget = config.chunk_portfolio_days(CHUNK_PORTFOLIO_DAYS)
    return max(1, min(MAX_CHUNK_DAYS, budget // max(n_portfolios, 1)))


@dataclass
class Inputs:
    """What every chunk needs besides market data: the ledger snapshot and the scenario set, read
    once by the run (so all chunks see the same ledger) and shipped to the workers."""

    url: str
    selected: frozenset[str]
    books: pd.DataFrame
    positions: pd.DataFrame
    flows: pd.DataFrame
    scenarios: object  # scenarios.ScenarioSet
    market_symbols: list[str]
    last_day: pd.Timestamp | None = None  # the range's last day: its chunk returns preview rows
    token: str = field(default_factory=lambda: uuid.uuid4().hex)  # this run's: keys the price window


@dataclass
class ChunkResult:
    start: pd.Timestamp
    end: pd.Timestamp
    rows: dict[str, int] = field(default_factory=dict)
    stats: dict[str, dict] = field(default_factory=dict)  # per table: counts, ids, float32 arrays
    preview: dict[str, pd.DataFrame] = field(default_factory=dict)  # the range's last day only
    seconds: dict[str, float] = field(default_factory=dict)
    pid: int = 0


def _snap_stats(snaps: pd.DataFrame) -> dict:
    eq = snaps["equity"].to_numpy(dtype=float)
    return {
        "portfolio_ids": set(snaps["portfolio_id"].astype(str)),
        "non_finite_equity": int((~np.isfinite(eq)).sum()),
        "gross_lt_abs_net": int((~(snaps["gross_exposure"] + 1e-6 >= snaps["net_exposure"].abs())).sum()),
        "partial_portfolio_days": int(snaps["is_partial"].astype(bool).sum()),
    }


def _corr_stats(corr: pd.DataFrame) -> dict:
    eig = corr["min_eigenvalue"].dropna()
    avg = corr["avg_correlation"].dropna()
    return {
        "portfolio_ids": set(corr["portfolio_id"].astype(str)),
        "not_psd": int((eig < -1e-8).sum()),
        "avg_out_of_range": int(((avg < -1 - 1e-12) | (avg > 1 + 1e-12)).sum()),
        "psd_repaired_rows": int(corr["psd_repaired"].astype(bool).sum()),
        "insufficient_pairs": int(corr["n_pairs_insufficient"].sum()),
        "avg_correlation": avg.to_numpy(dtype=np.float32),
    }


def _expo_stats(expo: pd.DataFrame) -> dict:
    market = expo[expo["factor"] == "market"]
    return {"portfolio_ids": set(expo["portfolio_id"].astype(str)),
            "market_coverage": market["coverage"].dropna().to_numpy(dtype=np.float32)}


def _stress_stats(stress: pd.DataFrame, active_ids: list[str]) -> dict:
    per_book = stress[stress["scenario_id"].isin(active_ids)].groupby(["date", "portfolio_id"]).size()
    return {"portfolio_ids": set(stress["portfolio_id"].astype(str)),
            "complete_groups": int((per_book == len(active_ids)).sum()), "groups": len(per_book)}


class Totals:
    """Statistics of the chunks done so far, merged as each chunk arrives (counts summed, id sets
    united, arrays joined), so the caller holds one set of totals, never every chunk's result."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {t: 0 for t in TABLES}
        self._stats: dict[str, dict] = {t: {} for t in TABLES}
        self.preview: dict[str, pd.DataFrame] = {}

    def add(self, res: ChunkResult) -> None:
        for t, n in res.rows.items():
            self.rows[t] += n
        for t, stats in res.stats.items():
            acc = self._stats[t]
            for k, v in stats.items():
                if isinstance(v, set):
                    acc.setdefault(k, set()).update(v)
                elif isinstance(v, np.ndarray):
                    acc.setdefault(k, []).append(v)
                else:
                    acc[k] = acc.get(k, 0) + v
        self.preview.update(res.preview)

    def stats(self, table: str) -> dict:
        return {k: (np.concatenate(v) if isinstance(v, list) else v) for k, v in self._stats[table].items()}


# The last price window read by this process, per run: (token, url) → (close, adj_close) wide
# frames. A process takes its chunks in date order, so the next chunk's window (90+ sessions) shares
# all but its own few sessions with the last one: only those are read.
_PRICE_WINDOW: dict[tuple[str, str], tuple[pd.DataFrame, pd.DataFrame]] = {}


def _pivot_prices(wh: Warehouse, symbols: list[str], sess: pd.DatetimeIndex) -> tuple[pd.DataFrame, pd.DataFrame]:
    px = wh.read("prices", sess[0], sess[-1], keys=symbols, columns=["date", "symbol", "close", "adj_close"])
    close = px.pivot(index="date", columns="symbol", values="close").reindex(index=sess, columns=symbols)
    adj = px.pivot(index="date", columns="symbol", values="adj_close").reindex(index=sess, columns=symbols)
    return close, adj


def _read_prices(wh: Warehouse, symbols: list[str], start, end, token: str | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """close and adj_close, sessions [start, end] × ``symbols`` (NaN where missing).

    With a run ``token``, sessions already read by this process for the same run and symbols are
    taken from the last window; a window that starts before it is read in full. Within a run,
    ``prices`` is stored before the portfolio step starts, so the reuse equals a fresh read.
    """
    sess = calendar.sessions(start, end)
    key = (token, wh.url)
    last = _PRICE_WINDOW.get(key) if token else None
    _PRICE_WINDOW.clear()
    if last is None or not len(sess) or list(last[0].columns) != list(symbols) or not (
            last[0].index[0] <= sess[0] <= last[0].index[-1]):
        close, adj = _pivot_prices(wh, symbols, sess)
    else:
        new = sess[sess > last[0].index[-1]]
        parts = [last, _pivot_prices(wh, symbols, new)] if len(new) else [last]
        close, adj = (pd.concat([p[i] for p in parts]).reindex(index=sess) for i in (0, 1))
    if token:
        _PRICE_WINDOW[key] = (close, adj)
    return close, adj


def _betas(wh: Warehouse, start, end) -> pd.DataFrame:
    parts = [wh.read(t, start, end, columns=["date", "symbol", "factor", "beta"])
             for t in ("symbol_betas", "ridge_factors", "spread_factors")]
    return pd.concat(parts, ignore_index=True).dropna(subset=["beta"])


def run_chunk(inputs: Inputs, chunk: pd.DatetimeIndex) -> ChunkResult:
    """Compute and store the selected tables for the sessions of ``chunk``."""
    wh = Warehouse(inputs.url)
    sel = inputs.selected
    res = ChunkResult(start=chunk[0], end=chunk[-1], pid=os.getpid())
    clock = {"read": 0.0, "compute": 0.0, "write": 0.0}
    t = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal t
        now = time.perf_counter()
        clock[phase] += now - t
        t = now

    scn = inputs.scenarios
    need_returns = CORR_WINDOW if CORR in sel else VOL_WINDOW
    first = min(calendar.window_start(chunk[0], need_returns),
                calendar.sessions_back(calendar.previous_session(chunk[0]), STALE_SESSIONS + 1)[0])
    close, adj = _read_prices(wh, inputs.market_symbols, first, chunk[-1], inputs.token)
    lap("read")
    snaps, pv = compute_snapshots(inputs.books, inputs.positions, inputs.flows, close, chunk, STALE_SESSIONS,
                                  adj_close_wide=adj)
    last = inputs.last_day if inputs.last_day is not None and chunk[0] <= inputs.last_day <= chunk[-1] else None
    frames: dict[str, pd.DataFrame] = {}

    def done(table: str, frame: pd.DataFrame, stats: dict, preview: pd.DataFrame | None = None) -> None:
        frames[table] = frame
        res.stats[table] = stats
        if last is not None:
            p = frame if preview is None else preview
            res.preview[table] = p.loc[p["date"] == last].drop(columns=PREVIEW_DROP[table])

    if SNAP in sel:
        done(SNAP, snaps, _snap_stats(snaps))
    if CORR in sel:
        corr = portfolio_correlations(pv, log_returns(adj), chunk, CORR_WINDOW, CORR_MIN_OVERLAP, CORR_MIN_VALUE,
                                      CORR_MIN_WEIGHT, portfolio_ids=inputs.books["portfolio_id"])
        done(CORR, corr, _corr_stats(corr))
    lap("compute")
    if EXPO in sel or STRESS in sel:
        betas = _betas(wh, chunk[0], chunk[-1])
        cov = wh.read("factor_covariance", chunk[0], chunk[-1]) if STRESS in sel else None
        lap("read")
    if EXPO in sel:
        expo = aggregate_exposures(pv, betas, snaps)
        done(EXPO, expo, _expo_stats(expo), expo[expo["factor"] == "market"])
    if STRESS in sel:
        stress, _ = compute_stress(pv, betas, snaps, cov, scn.scenarios, duration=scn.rate_duration,
                                   top_n=STRESS_TOP_CONTRIBUTORS, return_contributors=False)
        done(STRESS, stress, _stress_stats(stress, [s.id for s in scn.active]))
    lap("compute")
    # One transaction for the chunk's tables: its days are stored in all of them or in none, and
    # parallel workers hand SQLite's single write lock over once per chunk, not once per table.
    written = schemas.write_validated_many(
        wh, [Replacement(table, frame, chunk[0], chunk[-1]) for table, frame in frames.items()])
    res.rows = dict(zip(frames, written))
    lap("write")
    res.seconds = {k: round(v, 3) for k, v in clock.items()}
    return res


# -- worker processes ---------------------------------------------------------------------------------
_INPUTS: Inputs | None = None


def _init_worker(inputs: Inputs) -> None:
    global _INPUTS
    _INPUTS = inputs
    Warehouse(inputs.url).defer_checkpoints()  # run_chunks checkpoints between chunks instead
    # One BLAS thread per worker: the workers already use every core.
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # threadpoolctl is optional (it comes with scikit-learn)
        pass


def _run_in_worker(chunk: pd.DatetimeIndex) -> ChunkResult:
    assert _INPUTS is not None, "worker not initialised"
    return run_chunk(_INPUTS, chunk)


def run_chunks(inputs: Inputs, chunks: list[pd.DatetimeIndex], workers: int, on_done) -> None:
    """Run every chunk, inline (``workers == 1``) or in ``workers`` spawned processes.

    ``on_done(result, n_done)`` is called in this process as each chunk finishes (merge it into a
    :class:`Totals`, log progress); results are not kept here. The first failing chunk's exception
    is raised after the chunks not yet started are cancelled (chunks already stored stay stored).
    """
    if workers <= 1:
        for i, chunk in enumerate(chunks):
            on_done(run_chunk(inputs, chunk), i + 1)
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn, not fork: the caller (a Dagster step) has threads and open connections.
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                             initializer=_init_worker, initargs=(inputs,)) as pool:
        # A spawned child first re-imports the parent's __main__ (the Dagster CLI, a script): that
        # costs seconds and ~200 MB per worker and re-runs an unguarded script. The workers need
        # nothing from it, so they are started while __main__ is a bare module.
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            pending = {pool.submit(_run_in_worker, c) for c in chunks}
        finally:
            sys.modules["__main__"] = main
        done_count = 0
        coordinator = Warehouse(inputs.url)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    exc = fut.exception()
                    if exc is not None:
                        for p in pending:
                            p.cancel()
                        raise exc
                    done_count += 1
                    on_done(fut.result(), done_count)
                # The workers' commits leave their pages in the WAL (Warehouse.defer_checkpoints):
                # copy them into the database file here, while the workers go on.
                coordinator.checkpoint()
        finally:
            coordinator.checkpoint()


__all__ = ["chunk_days", "Inputs", "ChunkResult", "run_chunk", "run_chunks", "worker_count",
           "Totals"]
