"""Value at risk, expected shortfall and the VaR backtest of many portfolios at once.

All VaR and ES numbers are 1-day, in USD, **positive for a loss** (VaR = 1,000 means a loss of
$1,000 is exceeded with probability ``1 − α``), for ``α`` ∈ {0.95, 0.99}; ``*_pct_equity`` columns
divide by the day's equity (decimal; NaN when equity is NaN or ≤ 0). They cover the same
positions as the ex-ante risk (:class:`~.risk.CoveredBook`: priced PUBLIC positions with a factor
model); what is excluded is counted there.

Parametric (normal, zero mean, the ex-ante σ)
---------------------------------------------
``VaR_α = z_α σ`` and ``ES_α = σ φ(z_α) / (1 − α)`` with ``z_α = Φ⁻¹(α)`` (:func:`parametric_var_es`).

Historical simulation
---------------------
Today's holdings ``w`` revalued with each of the last ``window`` (250) sessions' total returns,
ending at and including the day ``D``: ``P&L_t = Σ_i w_i r_i,t``. A symbol lacking ``r_i,t`` uses
its factor proxy ``L_i · f_t`` (its loadings of ``D`` times that session's factor returns) and the
(position, session) is counted in ``hist_proxied_returns``; when the factor returns of ``t`` are
missing too, ``P&L_t`` is missing for every portfolio holding that symbol (never 0) and the day
is left out of the sample (``hist_observations`` counts the days used). With fewer than
``min_obs`` (200, 80 % of the window) days the historical VaR/ES are NaN.

Quantile rule (:func:`empirical_var_es`): ``VaR_α = −Q_{1−α}(P&L)`` with ``Q`` numpy's default
``"linear"`` quantile (order statistics interpolated at position ``(n − 1)(1 − α)``), i.e.
``-np.quantile(pnl, 1 - α)``; ``ES_α = −mean(P&L_t : P&L_t ≤ −VaR_α)``, the mean loss of the days
whose loss is **at least** the VaR (≥; never empty, so ``ES ≥ VaR``).

Backtest
--------
An exception on day ``D``: the hypothetical P&L of ``D−1``'s covered holdings on ``D`` (no
trading, no flows; :func:`hypothetical_pnl`) is a loss larger than ``D−1``'s 99 % VaR,
``P&L_D < −VaR_{D−1}`` (strict). A day with either number missing is not an observation. Over the
trailing ``window`` (250) sessions ending ``D`` (:func:`backtest_statistics`), with ``N``
observations, ``x`` exceptions and ``p = 0.01``:

* Kupiec proportion of failures:
  ``LR_pof = −2 [ (N−x) ln(1−p) + x ln p − (N−x) ln(1−x/N) − x ln(x/N) ]``, p-value
  ``P(χ²₁ > LR_pof)``;
* Christoffersen independence on the consecutive pairs of observed sessions with transition
  counts ``n_ij`` (i = yesterday, j = today): ``π₀ = n01/(n00+n01)``, ``π₁ = n11/(n10+n11)``,
  ``π = (n01+n11)/Σn``, ``LR_ind = −2 [ (n00+n10) ln(1−π) + (n01+n11) ln π − n00 ln(1−π₀) −
  n01 ln π₀ − n10 ln(1−π₁) − n11 ln π₁ ]``, p-value ``P(χ²₁ > LR_ind)``;
* ``0 · ln 0 = 0`` throughout, so no exceptions (``x = 0``) and all exceptions (``x = N``) give
  finite statistics (``LR_ind = 0`` then). With ``N = 0`` (nothing observed) the Kupiec
  statistics are NaN; with no observed consecutive pair the Christoffersen ones are NaN.
* Basel traffic light on the count: green 0–4, yellow 5–9, red ≥ 10 exceptions, defined for a
  full window (``N = window``). With fewer observations the light is ``"red"`` when the count
  already reaches 10 (no further day can lower it) and ``None`` otherwise (not enough history).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse, stats

from .factor_model import FACTOR_NAMES
from .returns import check_wide_frame, day_positions
from .risk import CoveredBook

__all__ = [
    "VAR_CONFIDENCES",
    "HIST_WINDOW",
    "HIST_MIN_OBSERVATIONS",
    "BACKTEST_WINDOW",
    "BACKTEST_CONFIDENCE",
    "VAR_COLUMNS",
    "HYPOTHETICAL_PNL_COLUMNS",
    "BACKTEST_COLUMNS",
    "parametric_var_es",
    "empirical_var_es",
    "historical_pnl",
    "value_at_risk",
    "hypothetical_pnl",
    "exception_flags",
    "backtest_statistics",
    "traffic_light",
    "var_backtest",
    "backtest_frame",
]

VAR_CONFIDENCES: tuple[float, ...] = (0.95, 0.99)
HIST_WINDOW = 250
#: 80 % of the window, the share of days every realised-volatility number of the project needs
HIST_MIN_OBSERVATIONS = 200
BACKTEST_WINDOW = 250
BACKTEST_CONFIDENCE = 0.99
#: Basel zones for 250 observations at 99 %: yellow from 5 exceptions, red from 10
YELLOW_FROM, RED_FROM = 5, 10


def _label(confidence: float) -> str:
    return f"{round(confidence * 100):d}"


VAR_COLUMNS = [
    "date", "portfolio_id",
    *[f"{m}_{_label(c)}_{kind}" for kind in ("parametric", "historical") for c in VAR_CONFIDENCES for m in ("var", "es")],
    *[f"{m}_{_label(c)}_{kind}_pct_equity" for kind in ("parametric", "historical") for c in VAR_CONFIDENCES
      for m in ("var", "es")],
    "hist_observations", "hist_proxied_returns",
]
HYPOTHETICAL_PNL_COLUMNS = ["date", "portfolio_id", "holdings_date", "hypothetical_pnl", "positions_missing_return",
                            "positions_proxied_return"]
BACKTEST_COLUMNS = [
    "date", "portfolio_id", "var_99_previous", "hypothetical_pnl", "exception", "observations", "exceptions",
    "kupiec_lr", "kupiec_p_value", "christoffersen_lr", "christoffersen_p_value", "traffic_light",
]


def _check_confidence(confidence: float) -> None:
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence!r}")


# ---------------------------------------------------------------------------------------------
# VaR and ES


def parametric_var_es(sigma, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Normal 1-day VaR and ES: ``VaR = z σ``, ``ES = σ φ(z) / (1 − α)``, ``z = Φ⁻¹(α)``.

    Parameters
    ----------
    sigma : array-like
        Daily ex-ante volatility (USD, or any unit; the result has the same). NaN stays NaN.
    confidence : float
        ``α``, e.g. 0.99.

    Returns
    -------
    var, es : numpy.ndarray
        Same shape as ``sigma``, positive for a loss.
    """
    _check_confidence(confidence)
    sigma = np.asarray(sigma, dtype=float)
    z = stats.norm.ppf(confidence)
    return z * sigma, sigma * stats.norm.pdf(z) / (1.0 - confidence)


def empirical_var_es(pnl: np.ndarray, confidence: float, min_obs: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Historical VaR and ES of each row of a P&L matrix (see the module docstring's rule).

    Parameters
    ----------
    pnl : numpy.ndarray
        ``(rows, days)`` P&L scenarios (USD); NaN = a day without a P&L, left out of that row.
    confidence : float
        ``α``.
    min_obs : int, default 1
        Rows with fewer finite days get NaN.

    Returns
    -------
    var, es : numpy.ndarray
        ``(rows,)``: ``VaR = −Q_{1−α}`` (numpy ``"linear"`` quantile of the row's finite values),
        ``ES = −mean(P&L ≤ −VaR)``.
    observations : numpy.ndarray
        ``(rows,)`` int64 finite days per row.
    """
    _check_confidence(confidence)
    pnl = np.atleast_2d(np.asarray(pnl, dtype=float))
    s = np.sort(pnl, axis=1)  # NaN sorts last
    n = np.isfinite(s).sum(axis=1)
    rows = np.arange(s.shape[0])
    h = (np.maximum(n, 1) - 1) * (1.0 - confidence)
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    with np.errstate(invalid="ignore"):
        q = s[rows, lo] + (h - lo) * (s[rows, hi] - s[rows, lo])
        tail = s <= q[:, None]
        es = -np.sum(s, axis=1, where=tail) / tail.sum(axis=1)
    ok = n >= max(int(min_obs), 1)
    return np.where(ok, -q, np.nan), np.where(ok, es, np.nan), n.astype(np.int64)


def historical_pnl(
    book: CoveredBook,
    returns_wide: pd.DataFrame,
    factors_wide: pd.DataFrame,
    day,
    window: int = HIST_WINDOW,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """Historical-simulation P&L of one day's covered holdings over the trailing window.

    Parameters
    ----------
    book : CoveredBook
        Covered positions (those dated ``day`` are used).
    returns_wide : pandas.DataFrame
        Wide simple daily total returns (sessions × symbols), holding ``day`` and (ideally) the
        ``window − 1`` sessions before it; a symbol absent from the columns has no own returns.
    factors_wide : pandas.DataFrame
        Factor returns (columns ``FACTOR_NAMES``) on the same sessions (reindexed by date).
    day : date-like
        The holdings day ``D``; must be a row of ``returns_wide``.
    window : int, default 250

    Returns
    -------
    pnl : numpy.ndarray
        ``(groups of day, sessions)`` USD; NaN on a session where a held symbol has neither its
        return nor a factor proxy.
    groups : numpy.ndarray
        Group codes (rows of ``book.keys``) of the rows of ``pnl``.
    proxied : numpy.ndarray
        ``(groups of day,)`` int64 number of (position, session) pairs priced with the proxy.
    sessions : pandas.DatetimeIndex
        The window's sessions.
    """
    check_wide_frame(returns_wide, "returns_wide")
    if set(factors_wide.columns) != set(FACTOR_NAMES):
        raise ValueError(f"factors_wide must have exactly the columns {list(FACTOR_NAMES)}")
    (day,), (pos,) = day_positions(returns_wide.index, [day])
    sessions = returns_wide.index[max(0, pos - window + 1): pos + 1]
    key_dates = book.keys["date"].to_numpy()
    groups = np.flatnonzero(key_dates == day.to_datetime64())
    prow = np.flatnonzero(book.positions["date"].to_numpy() == day.to_datetime64())
    n_days = len(sessions)
    if prow.size == 0:
        return np.full((groups.size, n_days), np.nan), groups, np.zeros(groups.size, np.int64), sessions
    symbols, first, sym_idx = np.unique(book.positions["symbol"].to_numpy(dtype=object)[prow].astype(str),
                                        return_index=True, return_inverse=True)
    own = returns_wide.reindex(index=sessions, columns=symbols).to_numpy(dtype=float, na_value=np.nan)
    f = factors_wide.reindex(index=sessions, columns=list(FACTOR_NAMES)).to_numpy(dtype=float, na_value=np.nan)
    load = book.loadings[prow][first]  # a symbol's loadings are the same on every position of the day
    proxy = f @ load.T  # (sessions, symbols): L_i · f_t
    missing = ~np.isfinite(own)
    filled = np.where(missing, proxy, own)
    used_proxy = missing & np.isfinite(proxy)

    local = np.searchsorted(groups, book.group[prow])
    w = sparse.csr_matrix((book.w[prow], (local, sym_idx)), shape=(groups.size, symbols.size))
    w.sum_duplicates()
    w.eliminate_zeros()  # a zero holding must not turn a missing return into a missing P&L
    pnl = np.asarray(w @ filled.T)
    pnl[np.bincount(local, minlength=groups.size) == 0] = np.nan  # nothing held: no P&L, not 0
    held = sparse.csr_matrix((np.ones(prow.size), (local, sym_idx)), shape=(groups.size, symbols.size))
    proxied = np.asarray(held @ used_proxy.sum(axis=0)).ravel().astype(np.int64)
    return pnl, groups, proxied, sessions


def value_at_risk(
    book: CoveredBook,
    volatility_daily,
    returns_wide: pd.DataFrame,
    factors_wide: pd.DataFrame,
    window: int = HIST_WINDOW,
    min_obs: int = HIST_MIN_OBSERVATIONS,
) -> pd.DataFrame:
    """Parametric and historical VaR/ES of every portfolio-day of ``book``.

    Parameters
    ----------
    book : CoveredBook
        From ``risk.covered_book``.
    volatility_daily : array-like
        ``(len(book.keys),)`` ex-ante daily σ in USD (``ex_ante_risk``'s ``volatility_daily``,
        same row order).
    returns_wide, factors_wide : pandas.DataFrame
        As in :func:`historical_pnl`, covering every day of the book and its window.
    window : int, default 250
    min_obs : int, default 200

    Returns
    -------
    pandas.DataFrame
        :data:`VAR_COLUMNS`, one row per portfolio-day in ``book.keys`` order.
    """
    keys = book.keys
    n_g = len(keys)
    sigma = np.asarray(volatility_daily, dtype=float)
    if sigma.shape != (n_g,):
        raise ValueError(f"volatility_daily must have one value per portfolio-day ({n_g}), got {sigma.shape}")
    equity = keys["equity"].to_numpy(dtype=float)
    v = np.where(equity > 0, equity, np.nan)
    out: dict[str, np.ndarray] = {"date": keys["date"].to_numpy(), "portfolio_id": keys["portfolio_id"].to_numpy(dtype=object)}
    for c in VAR_CONFIDENCES:
        out[f"var_{_label(c)}_parametric"], out[f"es_{_label(c)}_parametric"] = parametric_var_es(sigma, c)
        out[f"var_{_label(c)}_historical"] = np.full(n_g, np.nan)
        out[f"es_{_label(c)}_historical"] = np.full(n_g, np.nan)
    n_obs = np.zeros(n_g, dtype=np.int64)
    proxied = np.zeros(n_g, dtype=np.int64)
    for day in pd.unique(keys["date"].to_numpy()):
        pnl, groups, prox, _ = historical_pnl(book, returns_wide, factors_wide, day, window)
        proxied[groups] = prox
        for c in VAR_CONFIDENCES:
            var, es, n = empirical_var_es(pnl, c, min_obs)
            out[f"var_{_label(c)}_historical"][groups] = var
            out[f"es_{_label(c)}_historical"][groups] = es
            n_obs[groups] = n
    with np.errstate(invalid="ignore", divide="ignore"):
        for kind in ("parametric", "historical"):
            for c in VAR_CONFIDENCES:
                for m in ("var", "es"):
                    out[f"{m}_{_label(c)}_{kind}_pct_equity"] = out[f"{m}_{_label(c)}_{kind}"] / v
    out["hist_observations"] = n_obs
    out["hist_proxied_returns"] = proxied
    return pd.DataFrame(out)[VAR_COLUMNS]


# ---------------------------------------------------------------------------------------------
# Backtest


def hypothetical_pnl(book: CoveredBook, returns_wide: pd.DataFrame,
                     factors_wide: pd.DataFrame | None = None) -> pd.DataFrame:
    """P&L of each portfolio-day's covered holdings over the next session, with no trading.

    ``P&L_D = Σ_i MV_i,D−1 · r_i,D`` for the holdings of ``D−1`` (the book's dates), ``D`` the next
    row of ``returns_wide``. With ``factors_wide``, a position lacking ``r_i,D`` uses its factor
    proxy ``L_i · f_D`` (its loadings of ``D−1``, as in the historical simulation) and is counted in
    ``positions_proxied_return``. A position with neither makes the P&L NaN (a partial sum is not
    the book's P&L) and is counted in ``positions_missing_return``; a portfolio-day with no covered
    position has NaN.

    Parameters
    ----------
    book : CoveredBook
        Holdings of ``D−1`` (the same covered set whose VaR is backtested).
    returns_wide : pandas.DataFrame
        Wide simple daily total returns holding each book date and the session after it.
    factors_wide : pandas.DataFrame, optional
        Factor returns (columns ``FACTOR_NAMES``) by session; without it nothing is proxied.

    Returns
    -------
    pandas.DataFrame
        :data:`HYPOTHETICAL_PNL_COLUMNS`: ``date`` = ``D`` (the P&L day), ``holdings_date`` =
        ``D−1``, P&L in USD, missing- and proxied-return counts; in ``book.keys`` order.

    Raises
    ------
    ValueError
        A book date that is not a row of ``returns_wide`` or is its last row.
    """
    check_wide_frame(returns_wide, "returns_wide")
    keys = book.keys
    n_g = len(keys)
    idx = returns_wide.index
    _, pos = day_positions(idx, pd.unique(keys["date"].to_numpy()))
    if (pos + 1 >= len(idx)).any():
        last = idx[pos[pos + 1 >= len(idx)][0]].date()
        raise ValueError(f"returns_wide has no session after {last}: the hypothetical P&L needs the next day")
    next_row = idx.get_indexer(pd.DatetimeIndex(book.positions["date"])) + 1
    col = returns_wide.columns.get_indexer(book.positions["symbol"].astype(str))
    values = returns_wide.to_numpy(dtype=float, na_value=np.nan)
    r = np.full(len(book.w), np.nan)
    known = col >= 0
    r[known] = values[next_row[known], col[known]]
    proxied = np.zeros(len(r), dtype=bool)
    if factors_wide is not None and len(r):
        f = factors_wide.reindex(index=idx, columns=list(FACTOR_NAMES)).to_numpy(dtype=float, na_value=np.nan)
        proxy = np.einsum("ik,ik->i", book.loadings, f[next_row])
        proxied = ~np.isfinite(r) & np.isfinite(proxy)
        r = np.where(proxied, proxy, r)
    have = np.isfinite(r)
    g = book.group
    pnl = np.bincount(g[have], weights=book.w[have] * r[have], minlength=n_g)
    n_missing = np.bincount(g[~have], minlength=n_g).astype(np.int64)
    n_cov = np.bincount(g, minlength=n_g)
    pnl = np.where((n_missing == 0) & (n_cov > 0), pnl, np.nan)
    key_rows = idx.get_indexer(pd.DatetimeIndex(keys["date"])) + 1
    return pd.DataFrame({
        "date": idx[key_rows].to_numpy(),
        "portfolio_id": keys["portfolio_id"].to_numpy(dtype=object),
        "holdings_date": keys["date"].to_numpy(),
        "hypothetical_pnl": pnl,
        "positions_missing_return": n_missing,
        "positions_proxied_return": np.bincount(g[proxied], minlength=n_g).astype(np.int64),
    })[HYPOTHETICAL_PNL_COLUMNS]


def exception_flags(var_previous: np.ndarray, pnl: np.ndarray) -> np.ndarray:
    """1.0 where the loss exceeds the previous day's VaR (``pnl < −var``), 0.0 where not, NaN
    where either is missing (not an observation)."""
    var_previous = np.asarray(var_previous, dtype=float)
    pnl = np.asarray(pnl, dtype=float)
    known = np.isfinite(var_previous) & np.isfinite(pnl)
    with np.errstate(invalid="ignore"):
        return np.where(known, (pnl < -var_previous).astype(float), np.nan)


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x ln y`` with ``0 ln 0 = 0`` (x = 0 wherever y = 0 below)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 0, 0.0, x * np.log(np.where(x == 0, 1.0, y)))


def _window_sum(a: np.ndarray, window: int) -> np.ndarray:
    """Trailing sums over the last ``window`` columns ending at each column."""
    c = np.cumsum(a, axis=1, dtype=float)
    out = c.copy()
    out[:, window:] -= c[:, :-window]
    return out


def traffic_light(exceptions: np.ndarray, observations: np.ndarray, window: int = BACKTEST_WINDOW) -> np.ndarray:
    """Basel zone per entry: ``"green"`` / ``"yellow"`` / ``"red"``, or ``None`` (see module docstring).

    The zone boundaries (5 and 10) are Basel's for 250 observations at 99 %.
    """
    x = np.asarray(exceptions)
    n = np.asarray(observations)
    zone = np.where(x >= RED_FROM, "red", np.where(x >= YELLOW_FROM, "yellow", "green")).astype(object)
    return np.where((n >= window) | (x >= RED_FROM), zone, None)


def backtest_statistics(exceptions: np.ndarray, window: int = BACKTEST_WINDOW,
                        confidence: float = BACKTEST_CONFIDENCE, columns=None) -> dict[str, np.ndarray]:
    """Trailing-window backtest statistics for every (portfolio, session) at once.

    Parameters
    ----------
    exceptions : numpy.ndarray
        ``(portfolios, sessions)`` from :func:`exception_flags` (1.0, 0.0 or NaN), columns
        consecutive sessions in date order.
    window : int, default 250
        Sessions in the trailing window ending at each column (fewer at the start).
    confidence : float, default 0.99
        The VaR level; the expected exception rate is ``p = 1 − confidence``.

    Returns
    -------
    dict of numpy.ndarray, each ``(portfolios, sessions)``
        ``observations`` and ``exceptions`` (int64), ``kupiec_lr``, ``kupiec_p_value``,
        ``christoffersen_lr``, ``christoffersen_p_value`` (float) and ``traffic_light`` (object),
        with the formulas and edge cases of the module docstring.
    columns : array-like of int, optional
        Only these sessions (columns) are returned, each still over its full trailing window: the
        window sums are cumulative over every column, the likelihood ratios and p-values are
        evaluated for the requested columns only (a day's backtest need not pay for the year).
    """
    _check_confidence(confidence)
    e = np.atleast_2d(np.asarray(exceptions, dtype=float))
    p = 1.0 - confidence
    obs = np.isfinite(e)
    hit = obs & (e > 0.5)
    n = _window_sum(obs, window)
    x = _window_sum(hit, window)
    # consecutive observed pairs (t−1, t); a pair belongs to the window ending at t when t−1 is
    # inside it, i.e. within the last window − 1 pairs
    pair = obs[:, 1:] & obs[:, :-1]
    prev, cur = hit[:, :-1], hit[:, 1:]
    trans = {}
    for name, m in (("n00", pair & ~prev & ~cur), ("n01", pair & ~prev & cur),
                    ("n10", pair & prev & ~cur), ("n11", pair & prev & cur)):
        s = np.zeros_like(n)
        s[:, 1:] = _window_sum(m, window - 1) if window > 1 else 0.0
        trans[name] = s

    if columns is not None:
        cols = np.asarray(columns, dtype=np.int64)
        n, x = n[:, cols], x[:, cols]
        trans = {k: v[:, cols] for k, v in trans.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(n > 0, x / np.where(n > 0, n, 1.0), np.nan)
        lr_pof = -2.0 * (_xlogy(n - x, np.full_like(n, 1.0 - p)) + _xlogy(x, np.full_like(n, p))
                         - _xlogy(n - x, 1.0 - rate) - _xlogy(x, rate))
        lr_pof = np.where(n > 0, np.maximum(lr_pof, 0.0), np.nan)
        n00, n01, n10, n11 = (trans[k] for k in ("n00", "n01", "n10", "n11"))
        total = n00 + n01 + n10 + n11
        pi0 = n01 / np.where(n00 + n01 > 0, n00 + n01, 1.0)
        pi1 = n11 / np.where(n10 + n11 > 0, n10 + n11, 1.0)
        pi = (n01 + n11) / np.where(total > 0, total, 1.0)
        lr_ind = -2.0 * (_xlogy(n00 + n10, 1.0 - pi) + _xlogy(n01 + n11, pi)
                         - _xlogy(n00, 1.0 - pi0) - _xlogy(n01, pi0) - _xlogy(n10, 1.0 - pi1) - _xlogy(n11, pi1))
        lr_ind = np.where(total > 0, np.maximum(lr_ind, 0.0), np.nan)
    n_int, x_int = n.astype(np.int64), x.astype(np.int64)
    return {
        "observations": n_int,
        "exceptions": x_int,
        "kupiec_lr": lr_pof,
        "kupiec_p_value": stats.chi2.sf(lr_pof, 1),
        "christoffersen_lr": lr_ind,
        "christoffersen_p_value": stats.chi2.sf(lr_ind, 1),
        "traffic_light": traffic_light(x_int, n_int, window),
    }


def var_backtest(
    observations: pd.DataFrame,
    sessions,
    days,
    window: int = BACKTEST_WINDOW,
) -> pd.DataFrame:
    """The ``var_backtest`` rows of ``days`` from the daily (VaR of D−1, P&L of D) pairs.

    Parameters
    ----------
    observations : pandas.DataFrame
        ``[date, portfolio_id, var_99_previous, hypothetical_pnl]``: for each P&L day ``D``, the
        99 % VaR of ``D−1`` (USD, positive) and the hypothetical P&L of ``D−1``'s holdings on ``D``
        (from :func:`hypothetical_pnl`). A missing row or value is not an observation.
    sessions : DatetimeIndex or iterable of dates
        Every trading session from ``window − 1`` sessions before the first of ``days`` to the
        last of ``days`` (the calendar; the columns of the exception matrix).
    days : DatetimeIndex or iterable of dates
        The days to report; each must be in ``sessions``.
    window : int, default 250

    Returns
    -------
    pandas.DataFrame
        :data:`BACKTEST_COLUMNS`, one row per (day, portfolio present in ``observations``),
        ordered by date then portfolio id; ``exception`` is a nullable boolean (NA when the day
        is not an observation).
    """
    sessions = pd.DatetimeIndex(pd.to_datetime(pd.Index(sessions))).normalize().unique().sort_values()
    days = pd.DatetimeIndex(pd.to_datetime(pd.Index(days))).normalize().unique().sort_values()
    obs = observations.copy()
    obs["date"] = pd.to_datetime(obs["date"]).dt.normalize()
    obs["portfolio_id"] = obs["portfolio_id"].astype(str)
    if obs.duplicated(["date", "portfolio_id"]).any():
        raise ValueError("observations: duplicate (date, portfolio_id) rows")
    pids = np.array(sorted(obs["portfolio_id"].unique()), dtype=object)
    prow = pd.Index(pids).get_indexer(obs["portfolio_id"])
    scol = sessions.get_indexer(obs["date"])
    inside = scol >= 0
    var_m = np.full((pids.size, sessions.size), np.nan)
    pnl_m = np.full((pids.size, sessions.size), np.nan)
    var_m[prow[inside], scol[inside]] = obs["var_99_previous"].to_numpy(dtype=float)[inside]
    pnl_m[prow[inside], scol[inside]] = obs["hypothetical_pnl"].to_numpy(dtype=float)[inside]
    return backtest_frame(var_m, pnl_m, pids, sessions, days, window)


def backtest_frame(var_previous: np.ndarray, pnl: np.ndarray, portfolio_ids, sessions, days,
                   window: int = BACKTEST_WINDOW) -> pd.DataFrame:
    """:func:`var_backtest` on matrices: the ``var_backtest`` rows of ``days`` for every row.

    Parameters
    ----------
    var_previous, pnl : numpy.ndarray
        ``(portfolios, sessions)``: for each P&L session, the previous session's 99 % VaR (USD,
        positive) and the hypothetical P&L; NaN = not an observation.
    portfolio_ids : array-like
        ``(portfolios,)`` row labels.
    sessions : DatetimeIndex
        The columns: consecutive trading sessions, at least ``window − 1`` before the first day.
    days : DatetimeIndex
        The days to report (sorted, each in ``sessions``).
    window : int, default 250

    Returns
    -------
    pandas.DataFrame
        :data:`BACKTEST_COLUMNS`, ordered by date then row; the statistics of only the reported
        columns are evaluated.
    """
    sessions = pd.DatetimeIndex(sessions)
    days = pd.DatetimeIndex(days)
    col_of_day = sessions.get_indexer(days)
    if (col_of_day < 0).any():
        raise ValueError(f"days not in sessions: {[d.date().isoformat() for d in days[col_of_day < 0][:5]]}")
    pids = np.asarray(portfolio_ids, dtype=object)
    var_m = np.asarray(var_previous, dtype=float)
    pnl_m = np.asarray(pnl, dtype=float)
    exc = exception_flags(var_m, pnl_m)
    st = backtest_statistics(exc, window, columns=col_of_day)
    n_p, n_d = pids.size, days.size

    def pick(a):  # (portfolios, days) → date-major flat order
        return a[:, col_of_day].T.ravel()

    def picked(a):  # statistics already restricted to the days' columns
        return a.T.ravel()

    flag = pick(exc)
    exception = pd.array(np.where(np.isnan(flag), None, flag > 0.5), dtype="boolean")
    return pd.DataFrame({
        "date": np.repeat(days.to_numpy(), n_p),
        "portfolio_id": np.tile(pids, n_d),
        "var_99_previous": pick(var_m),
        "hypothetical_pnl": pick(pnl_m),
        "exception": exception,
        "observations": picked(st["observations"]),
        "exceptions": picked(st["exceptions"]),
        "kupiec_lr": picked(st["kupiec_lr"]),
        "kupiec_p_value": picked(st["kupiec_p_value"]),
        "christoffersen_lr": picked(st["christoffersen_lr"]),
        "christoffersen_p_value": picked(st["christoffersen_p_value"]),
        "traffic_light": picked(st["traffic_light"]),
    })[BACKTEST_COLUMNS]

