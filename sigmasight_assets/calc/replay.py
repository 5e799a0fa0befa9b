"""Historical replays: a dated window of a real crisis applied to the day's holdings (pure, vectorised).

Window convention
-----------------
A replay window ``[start, end]`` is the move from the close of ``start`` to the close of ``end``:
``start`` is the base day and the window's returns are those of the sessions in ``(start, end]``
(strictly after ``start``, up to and including ``end``). The compounded total return of a symbol
over the window is ``R = Π_{t ∈ (start, end]} (1 + r_t) − 1`` (:func:`compound_window_returns`),
NaN when the symbol lacks a return on any session of the window (listed later, a gap, delisted):
a partial window is not the window's move.

Pricing
-------
For each (day D, portfolio, replay scenario), over the priced ``PUBLIC`` positions of D:

* *replayed from its own history*: a symbol with a window return ``R_i`` has
  ``pnl_i = MV_i · R_i``;
* *proxied*: a symbol without one but with a complete factor model on D has
  ``pnl_i = MV_i · (L_i · f_W)``, with ``f_W = A · R_ETF`` the window's compounded ETF returns
  mapped to the factor basis (``factor_model.basis_matrix``: SPY, TLT and each style ETF's
  compounded return minus SPY's), i.e. "loadings × the compounded factor moves";
* *missing*: ``OPTIONS`` (no delta) and ``PUBLIC`` symbols with neither; excluded and counted.

A long position loses at most its value (``pnl_i ≥ −MV_i``; an own return is ≥ −100 % anyway, a
proxy may not be); shorts uncapped. Portfolio P&L = Σ replayed + proxied positions, NaN when
there are none (never 0). ``PRIVATE`` positions are not replayed; unpriced ones have no value.

A scenario whose window lacks any ETF's compounded return (prices of the window not in the
warehouse) is **not replayable**: every P&L of it is NaN with ``replayable = False`` and a reason,
even for positions with their own history, so a half-loaded window is never reported as a result.

Units: P&L in USD, ``pct_equity`` a decimal fraction of D's equity (NaN if equity ≤ 0 or NaN),
shares decimal fractions of the in-scope gross value ``Σ |MV|`` of priced PUBLIC and OPTIONS
positions (NaN when that is 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import sparse

from .exposures import market_scope
from .frames import portfolio_day_keys
from .factor_model import basis_matrix, position_loadings
from .factors import FACTOR_ETFS
from .returns import check_wide_frame
from .stress import REPLAY_KIND, TOP_CONTRIBUTORS, contributor_json, long_loss_cap

__all__ = [
    "REPLAY_RESULT_COLUMNS",
    "compound_window_returns",
    "compound_windows",
    "window_factor_moves",
    "compute_replays",
]

REPLAY_RESULT_COLUMNS = [
    "date", "portfolio_id", "scenario_id", "scenario_name", "category", "severity", "pnl", "pct_equity",
    "replayed_share", "proxied_share", "coverage", "positions_replayed", "positions_proxied",
    "positions_missing", "replayable", "reason", "top_contributors",
]


def compound_window_returns(returns_wide: pd.DataFrame, start, end) -> pd.Series:
    """Compounded total return of every column over the sessions in ``(start, end]``.

    Formula: ``R = Π_{t ∈ (start, end]} (1 + r_t) − 1`` (the move from the close of ``start`` to the
    close of ``end``).

    Parameters
    ----------
    returns_wide : pandas.DataFrame
        Wide simple daily total returns (sessions × symbols, decimal). Every session between
        ``start`` and ``end`` must be a row (the wide-frame contract of ``returns.py``).
    start, end : date-like
        The window's base day and last day, ``start < end``.

    Returns
    -------
    pandas.Series
        Indexed by the columns of ``returns_wide``. NaN when a column lacks the return of any
        session in the window, and for every column when ``start`` or ``end`` is not a row of
        the frame (the window is not covered: nothing to compound, never 0).

    Raises
    ------
    ValueError
        ``start`` not before ``end``.
    """
    check_wide_frame(returns_wide, "returns_wide")
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if not start < end:
        raise ValueError(f"replay window start {start.date()} must be before end {end.date()}")
    idx = returns_wide.index
    if start not in idx or end not in idx:
        return pd.Series(np.nan, index=returns_wide.columns, dtype=float)
    lo, hi = idx.get_loc(start) + 1, idx.get_loc(end) + 1
    block = returns_wide.iloc[lo:hi].to_numpy(dtype=float, na_value=np.nan)
    # a NaN anywhere in a column makes its product NaN: no partial window
    return pd.Series(np.prod(1.0 + block, axis=0) - 1.0, index=returns_wide.columns)


def compound_windows(returns_wide: pd.DataFrame, windows: Mapping[str, tuple]) -> pd.DataFrame:
    """:func:`compound_window_returns` for several windows at once.

    Parameters
    ----------
    returns_wide : pandas.DataFrame
        As in :func:`compound_window_returns`.
    windows : mapping scenario id → (start, end)

    Returns
    -------
    pandas.DataFrame
        Index the columns of ``returns_wide`` (symbols), one column per scenario id. Transpose it
        for the ``etf_window_returns`` argument of :func:`compute_replays`.
    """
    out = {}
    for sid, (start, end) in windows.items():
        try:
            out[sid] = compound_window_returns(returns_wide, start, end)
        except ValueError as exc:
            raise ValueError(f"replay scenario {sid!r}: {exc}") from None
    return pd.DataFrame(out, index=returns_wide.columns, columns=list(windows))


def window_factor_moves(etf_window_returns: pd.DataFrame, scenario_ids: list[str]) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Compounded factor moves ``f_W = A · R_ETF`` of each window, and whether it is replayable.

    Parameters
    ----------
    etf_window_returns : pandas.DataFrame
        Index scenario ids, columns at least ``FACTOR_ETFS``: the compounded ETF returns.
    scenario_ids : list of str
        Scenarios to return, in order; an id absent from the frame is not replayable.

    Returns
    -------
    moves : numpy.ndarray
        ``(8, S)`` in ``factor_model.FACTOR_NAMES`` order; a column of NaN when not replayable.
    replayable : numpy.ndarray
        ``(S,)`` bool: every ETF has a compounded return for the window.
    reasons : list of str or None
        Why a scenario is not replayable (``None`` when it is).
    """
    missing_cols = [t for t in FACTOR_ETFS if t not in etf_window_returns.columns]
    if missing_cols:
        raise KeyError(f"etf_window_returns lacks the factor ETF columns {missing_cols}")
    r = etf_window_returns.reindex(index=scenario_ids, columns=list(FACTOR_ETFS)).to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(r).all(axis=1)
    reasons: list[str | None] = []
    for sid, row, good in zip(scenario_ids, r, ok):
        if good:
            reasons.append(None)
        elif sid not in etf_window_returns.index:
            reasons.append("not_replayable: no ETF returns for the window")
        else:
            lacking = [t for t, v in zip(FACTOR_ETFS, row) if not np.isfinite(v)]
            reasons.append(f"not_replayable: {', '.join(lacking)} lack a return on some session of the window")
    moves = basis_matrix() @ np.where(ok[:, None], r, np.nan).T
    return moves, ok, reasons


def _scenario_meta(scenarios: Iterable) -> list[dict]:
    out = []
    for s in scenarios:
        get = (lambda k, d=None: s.get(k, d)) if isinstance(s, Mapping) else (lambda k, d=None: getattr(s, k, d))
        kind = get("kind")
        if kind is not None and kind != REPLAY_KIND:
            continue
        out.append({"id": str(get("id")), "name": str(get("name", get("id"))),
                    "category": str(get("category", "historical")), "severity": str(get("severity", ""))})
    return out


def compute_replays(
    position_values: pd.DataFrame,
    factor_model: pd.DataFrame,
    snapshots: pd.DataFrame,
    scenarios: Iterable,
    symbol_window_returns: pd.DataFrame,
    etf_window_returns: pd.DataFrame,
    top_n: int = TOP_CONTRIBUTORS,
) -> pd.DataFrame:
    """Replay P&L per (date, portfolio, replay scenario); see the module docstring.

    No loop over portfolios, dates or scenarios: one ``(positions × 8) @ (8 × S)`` product for the
    proxies, a select against the own-return matrix, one sparse sum per portfolio-day.

    Parameters
    ----------
    position_values : DataFrame
        From ``compute_snapshots`` (``date, portfolio_id, position_id, symbol, investment_class,
        market_value, is_priced``).
    factor_model : DataFrame
        Long ``factor_model`` rows (``[date?, symbol, factor, beta, specific_variance, ...]``) of
        the position dates, for the proxies.
    snapshots : DataFrame
        ``[date, portfolio_id, equity]``: which (date, portfolio) rows to emit and the equity.
    scenarios : iterable of mappings or objects
        ``id, name, category, severity`` (and ``kind``; those of another kind are skipped).
    symbol_window_returns : DataFrame
        Index symbol, one column per scenario id: each symbol's compounded return over the window
        (:func:`compound_windows`); NaN or absent ⇒ no own history for that window.
    etf_window_returns : DataFrame
        Index scenario id, columns ``FACTOR_ETFS``: the windows' compounded ETF returns.
    top_n : int, default 5
        Largest contributors (by ``|pnl|``) kept per row, as JSON.

    Returns
    -------
    DataFrame
        :data:`REPLAY_RESULT_COLUMNS`, one row per (date, portfolio in ``snapshots``, scenario):
        ``pnl`` USD; ``pct_equity``, ``replayed_share`` (own history), ``proxied_share`` and
        ``coverage`` (their sum) decimal; the three position counts; ``replayable`` and
        ``reason`` (None when replayable); ``top_contributors`` a JSON list of
        ``[position_id, symbol, pnl]`` (``"[]"`` when nothing was priced).
    """
    meta = _scenario_meta(scenarios)
    ids = [m["id"] for m in meta]
    keys = portfolio_day_keys(snapshots)
    n_g, n_s = len(keys), len(meta)
    moves, replayable, reasons = window_factor_moves(etf_window_returns, ids)

    pv, g, cls = market_scope(position_values, keys)
    mv = pv["market_value"].to_numpy(dtype=float)
    absmv = np.abs(mv)
    public = cls == "PUBLIC"

    own = symbol_window_returns.reindex(index=pv["symbol"].astype(str), columns=ids).to_numpy(dtype=float, na_value=np.nan)
    load = position_loadings(pv, factor_model)[0] if len(pv) else np.empty((0, len(FACTOR_ETFS)))
    has_own = public[:, None] & np.isfinite(own)
    has_model = (public & np.isfinite(load).all(axis=1))[:, None]
    proxied = ~has_own & has_model
    replayed = has_own | proxied
    proxy_pnl = np.full((len(pv), n_s), np.nan)
    rows = has_model[:, 0]
    proxy_pnl[rows] = mv[rows, None] * (load[rows] @ moves)
    pnl = long_loss_cap(np.where(has_own, mv[:, None] * own, np.where(proxied, proxy_pnl, np.nan)), mv)
    pnl[:, ~replayable] = np.nan

    agg = sparse.csr_matrix((np.ones(len(pv)), (g, np.arange(len(pv)))), shape=(n_g, len(pv)))
    count = lambda m: np.asarray(agg @ m.astype(float)).astype(np.int64)  # noqa: E731
    gross = lambda m: np.asarray(agg @ (m * absmv[:, None]))  # noqa: E731
    n_own, n_proxy, n_rep = count(has_own), count(proxied), count(replayed)
    n_scope = np.bincount(g, minlength=n_g)[:, None]
    g_scope = np.bincount(g, weights=absmv, minlength=n_g)[:, None]
    g_own, g_proxy = gross(has_own), gross(proxied)
    total = np.asarray(agg @ np.where(replayed, pnl, 0.0))
    total = np.where((n_rep > 0) & replayable[None, :], total, np.nan)
    equity = keys["equity"].to_numpy(dtype=float)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(equity > 0, total / equity, np.nan)
        safe = np.where(g_scope > 0, g_scope, 1.0)
        share_own = np.where(g_scope > 0, g_own / safe, np.nan)
        share_proxy = np.where(g_scope > 0, g_proxy / safe, np.nan)

    top_json = np.full((n_g, n_s), "[]", dtype=object)
    use = replayed.any(axis=1)
    if use.any() and n_s:
        # a position not replayed for a scenario has a NaN there and is left out of its list
        groups, texts = contributor_json(g[use], pnl[use], pv["position_id"].to_numpy(dtype=object)[use],
                                         pv["symbol"].to_numpy(dtype=object)[use], top_n)
        top_json[groups] = texts

    rep = lambda a: np.repeat(np.asarray(a), n_s)  # noqa: E731
    til = lambda a: np.tile(np.asarray(a, dtype=object), n_g)  # noqa: E731
    return pd.DataFrame(
        {
            "date": rep(keys["date"]),
            "portfolio_id": rep(keys["portfolio_id"]),
            "scenario_id": til(ids),
            "scenario_name": til([m["name"] for m in meta]),
            "category": til([m["category"] for m in meta]),
            "severity": til([m["severity"] for m in meta]),
            "pnl": total.ravel(),
            "pct_equity": pct.ravel(),
            "replayed_share": np.broadcast_to(share_own, (n_g, n_s)).ravel(),
            "proxied_share": np.broadcast_to(share_proxy, (n_g, n_s)).ravel(),
            "coverage": np.broadcast_to(share_own + share_proxy, (n_g, n_s)).ravel(),
            "positions_replayed": np.broadcast_to(n_own, (n_g, n_s)).ravel(),
            "positions_proxied": np.broadcast_to(n_proxy, (n_g, n_s)).ravel(),
            "positions_missing": np.broadcast_to(n_scope - n_rep, (n_g, n_s)).ravel(),
            "replayable": np.tile(replayable, n_g),
            "reason": til(reasons),
            "top_contributors": top_json.ravel(),
        }
    )[REPLAY_RESULT_COLUMNS]
