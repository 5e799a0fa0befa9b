"""Factor stress tests on the joint factor model: direct and correlated P&L per portfolio.

Scenario shocks and ETF moves
-----------------------------
A scenario names shocks on ``Market, Interest_Rate, Value, Growth, Momentum, Quality, Size,
Low_Volatility``. Each is a move of one factor ETF (:data:`SHOCK_FACTOR_TO_ETF`), as a decimal
return, except ``Interest_Rate``, a yield change ``Δy`` (+0.01 = +100bp) turned into the return of
the long-bond ETF ``ΔTLT = −duration · Δy`` (duration default 17): rates up ⇒ TLT down.

A scenario is then a vector of the eight ETF moves ``Δ`` (``FACTOR_ETFS`` order):

* *Direct* (:func:`direct_etf_moves`): only the named ETFs move. An unnamed style ETF moves with
  SPY (``Δ_k = ΔSPY``, so its excess move is 0), an unnamed SPY or TLT does not move.
* *Correlated* (:func:`conditional_factor_moves`): every unnamed ETF takes its conditional
  expectation given the named ones under the day's ETF covariance Σ (zero-mean multivariate
  normal): ``Δ_u = Σ_us Σ_ss⁻¹ Δ_s``.

Pricing (each factor move counted once)
---------------------------------------
The ETF moves are mapped into the factor model's basis, ``f = A · Δ`` (``factor_model.basis_matrix``:
market, rates and the six style moves in excess of SPY), and priced with each symbol's joint
loadings from one regression on that basis: ``pnl_i = MV_i · (L_i · f)``. Because the loadings were
estimated jointly, a symbol's exposure to the market sits in its ``market`` loading only; a rate
shock moves SPY by its conditional expectation and that move reaches the position once, through
``L_market``, plus the rate move itself through ``L_rates``.

Scope, caps and NaN policy
--------------------------
* In scope: priced ``PUBLIC`` and ``OPTIONS`` positions of the (date, portfolio) rows of
  ``snapshots``. Covered: the ``PUBLIC`` ones whose symbol has a complete factor model that day.
  ``positions_missing_beta`` counts the in-scope positions not covered: ``PUBLIC`` without loadings
  **plus** ``OPTIONS`` (no delta ⇒ no honest factor exposure; same rule as ``aggregated_exposures``).
  ``coverage = Σ |MV| covered / Σ |MV| in scope``. ``PRIVATE`` positions have no loadings by design
  and are not stressed; unpriced positions have no value (snapshots count them).
* A long position cannot lose more than its value: ``pnl_i ≥ −MV_i`` for ``MV_i > 0``
  (:func:`long_loss_cap`). Shorts are uncapped. The cap is per position, never on net.
* Portfolio P&L = Σ over covered positions. No covered position ⇒ P&L NaN (nothing was measured; a
  cash-only or private-only portfolio has NaN, not 0). No usable covariance for the day (absent,
  incomplete or non-finite 8×8) ⇒ correlated P&L and correlation effect NaN, direct still computed.
* ``*_pct_equity`` are decimal fractions of the day's equity (−0.12 = −12 %), NaN if equity ≤ 0 or
  NaN.

Scenarios whose ``kind`` is ``"replay"`` (dated historical windows) are not shocks; they are
priced by :mod:`sigmasight_assets.calc.replay` and skipped here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from .concentration import top_k_per_group
from .covariance import covariance_by_date, usable_covariance
from .exposures import market_scope
from .frames import portfolio_day_keys
from .factor_model import basis_matrix, position_loadings
from .factors import FACTOR_ETFS, MARKET_ETF, RATES_ETF, STYLE_ETFS

__all__ = [
    "SHOCK_FACTOR_TO_ETF",
    "RATE_FACTOR",
    "DEFAULT_RATE_DURATION",
    "TOP_CONTRIBUTORS",
    "STRESS_RESULT_COLUMNS",
    "CONTRIBUTOR_COLUMNS",
    "shocks_to_etf_returns",
    "conditional_factor_moves",
    "direct_etf_moves",
    "scenario_factor_moves",
    "long_loss_cap",
    "position_json_prefixes",
    "contributor_json",
    "compute_joint_stress",
]

SHOCK_FACTOR_TO_ETF: dict[str, str] = {
    "Market": MARKET_ETF,
    "Interest_Rate": RATES_ETF,
    "Value": STYLE_ETFS["value"],
    "Growth": STYLE_ETFS["growth"],
    "Momentum": STYLE_ETFS["momentum"],
    "Quality": STYLE_ETFS["quality"],
    "Size": STYLE_ETFS["size"],
    "Low_Volatility": STYLE_ETFS["low_volatility"],
}
RATE_FACTOR = "Interest_Rate"
DEFAULT_RATE_DURATION = 17.0
TOP_CONTRIBUTORS = 5
REPLAY_KIND = "replay"

#: :func:`compute_joint_stress` output columns.
STRESS_RESULT_COLUMNS = [
    "date", "portfolio_id", "scenario_id", "scenario_name", "category", "severity", "direct_pnl",
    "correlated_pnl", "correlation_effect", "direct_pct_equity", "correlated_pct_equity",
    "positions_covered", "positions_missing_beta", "top_contributors", "coverage",
]
CONTRIBUTOR_COLUMNS = [
    "date", "portfolio_id", "scenario_id", "rank", "position_id", "symbol", "market_value",
    "direct_pnl", "correlated_pnl",
]


@dataclass(frozen=True)
class _Scn:
    id: str
    name: str
    category: str
    severity: str
    shocks: dict[str, float]  # ETF -> return
    active: bool


def shocks_to_etf_returns(shocks: Mapping[str, float], duration: float = DEFAULT_RATE_DURATION) -> dict[str, float]:
    """Map named shocks to ETF returns; ``Interest_Rate`` Δy becomes ``ΔTLT = −duration · Δy``.

    Raises ``ValueError`` on an unknown factor name.
    """
    out: dict[str, float] = {}
    for name, value in shocks.items():
        if name not in SHOCK_FACTOR_TO_ETF:
            raise ValueError(f"unknown shock factor {name!r}; expected one of {sorted(SHOCK_FACTOR_TO_ETF)}")
        v = float(value)
        out[SHOCK_FACTOR_TO_ETF[name]] = -duration * v if name == RATE_FACTOR else v
    return out


def _cov_frame(cov) -> pd.DataFrame:
    if isinstance(cov, pd.DataFrame):
        return cov.astype(float)
    arr = np.asarray(cov, dtype=float)
    if arr.shape != (len(FACTOR_ETFS), len(FACTOR_ETFS)):
        raise ValueError("an unlabelled covariance must be 8×8 in FACTOR_ETFS order")
    return pd.DataFrame(arr, index=list(FACTOR_ETFS), columns=list(FACTOR_ETFS))


def conditional_factor_moves(shocks: Mapping[str, float], cov) -> dict[str, float]:
    """Fill unshocked factors with their conditional mean given the shocked ones.

    Zero-mean multivariate normal factor returns: ``E[Δ_u | Δ_s] = Σ_us Σ_ss⁻¹ Δ_s``.

    Parameters
    ----------
    shocks : mapping ETF → return
        The shocked ETFs (keys must be labels of ``cov``) and their decimal returns.
    cov : DataFrame (labelled) or (8, 8) array in ``FACTOR_ETFS`` order
        Daily factor return covariance. Must be finite on the rows/columns used.

    Returns
    -------
    dict ETF → return
        Every ETF of ``cov``: shocked ones as given, the others filled. No shock → all 0.
        ``Σ_ss`` is solved with ``lstsq`` (minimum-norm solution if singular, e.g. two shocked
        ETFs with correlation clipped at the bound — never an exception for a bad matrix).
    """
    c = _cov_frame(cov)
    labels = list(c.index)
    unknown = [k for k in shocks if k not in labels]
    if unknown:
        raise ValueError(f"shocked factors not in covariance: {unknown}")
    s = [k for k in labels if k in shocks]
    u = [k for k in labels if k not in shocks]
    out = {k: float(shocks[k]) for k in s}
    if not s:
        return {k: 0.0 for k in labels}
    sigma_ss = c.loc[s, s].to_numpy()
    sigma_us = c.loc[u, s].to_numpy()
    if not (np.isfinite(sigma_ss).all() and np.isfinite(sigma_us).all()):
        raise ValueError("covariance has non-finite entries")
    d_s = np.array([out[k] for k in s])
    x = np.linalg.lstsq(sigma_ss, d_s, rcond=None)[0]
    for k, v in zip(u, sigma_us @ x):
        out[k] = float(v)
    return {k: out[k] for k in labels}


def direct_etf_moves(etf_shocks: Mapping[str, float]) -> dict[str, float]:
    """The direct-mode move of every ETF: the named ones as given, the others as DESIGN says.

    An unnamed style ETF moves with SPY (``Δ_k = ΔSPY``, excess 0; ``ΔSPY = 0`` when SPY is not
    named either); an unnamed SPY or TLT moves 0.

    Parameters
    ----------
    etf_shocks : mapping ETF → decimal return
        The named moves (output of :func:`shocks_to_etf_returns`).

    Returns
    -------
    dict ETF → return
        All eight ``FACTOR_ETFS``, in that order.
    """
    unknown = [k for k in etf_shocks if k not in FACTOR_ETFS]
    if unknown:
        raise ValueError(f"unknown factor ETFs {unknown}; expected {list(FACTOR_ETFS)}")
    spy = float(etf_shocks.get(MARKET_ETF, 0.0))
    out = {}
    for etf in FACTOR_ETFS:
        if etf in etf_shocks:
            out[etf] = float(etf_shocks[etf])
        else:
            out[etf] = 0.0 if etf in (MARKET_ETF, RATES_ETF) else spy
    return out


def _normalise_scenarios(scenarios: Iterable, duration: float, include_inactive: bool) -> list[_Scn]:
    out = []
    for s in scenarios:
        get = (lambda k, d=None: s.get(k, d)) if isinstance(s, Mapping) else (lambda k, d=None: getattr(s, k, d))
        if get("kind") == REPLAY_KIND:
            continue
        active = bool(get("active", True))
        if not active and not include_inactive:
            continue
        out.append(
            _Scn(
                id=str(get("id")),
                name=str(get("name", get("id"))),
                category=str(get("category", "")),
                severity=str(get("severity", "")),
                shocks=shocks_to_etf_returns(dict(get("shocks") or {}), duration),
                active=active,
            )
        )
    return out


def scenario_factor_moves(etf_shocks: list[Mapping[str, float]], cov) -> tuple[np.ndarray, np.ndarray]:
    """Factor moves ``f = A · Δ`` of each scenario, direct and correlated.

    Parameters
    ----------
    etf_shocks : list of mappings ETF → decimal return
        One per scenario (the named ETF moves).
    cov : labelled 8×8 DataFrame, (8, 8) array or None
        The day's ETF covariance of daily returns.

    Returns
    -------
    direct, correlated : numpy.ndarray
        ``(8, S)`` factor moves in ``factor_model.FACTOR_NAMES`` order. ``correlated`` is all NaN
        when ``cov`` is None or not entirely finite (no usable covariance for the day).
    """
    a = basis_matrix()
    n_s = len(etf_shocks)
    direct = np.empty((len(FACTOR_ETFS), n_s))
    corr = np.full((len(FACTOR_ETFS), n_s), np.nan)
    cov_frame = None if cov is None else _cov_frame(cov)
    usable = cov_frame is not None and usable_covariance(cov_frame)
    for j, shocks in enumerate(etf_shocks):
        d = direct_etf_moves(shocks)
        direct[:, j] = a @ np.array([d[e] for e in FACTOR_ETFS])
        if usable:
            c = conditional_factor_moves(shocks, cov_frame)
            corr[:, j] = a @ np.array([c[e] for e in FACTOR_ETFS])
    return direct, corr


def long_loss_cap(pnl: np.ndarray, mv: np.ndarray) -> np.ndarray:
    """Floor each long position's P&L at minus its value; shorts uncapped, NaN stays NaN.

    Parameters
    ----------
    pnl : numpy.ndarray
        ``(n, S)`` position P&L in USD, one column per scenario.
    mv : numpy.ndarray
        ``(n,)`` signed market values in USD.

    Returns
    -------
    numpy.ndarray
        ``max(pnl, −MV)`` for ``MV > 0``; ``pnl`` unchanged otherwise.
    """
    floor = np.where(mv > 0, -mv, -np.inf)[:, None]
    return np.where(np.isnan(pnl), np.nan, np.maximum(pnl, floor))


def _stress(
    position_values: pd.DataFrame,
    loadings_of: Callable[[pd.DataFrame], np.ndarray],
    snapshots: pd.DataFrame,
    covariance_long: pd.DataFrame | None,
    scenarios: Iterable,
    duration: float,
    include_inactive: bool,
    top_n: int,
    return_contributors: bool,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The shared engine: ``loadings_of(pv)`` gives the ``(n, 8)`` loadings of in-scope rows."""
    scns = _normalise_scenarios(scenarios, duration, include_inactive)
    keys = portfolio_day_keys(snapshots)
    n_g, n_s = len(keys), len(scns)
    covs = covariance_by_date(covariance_long)

    pv, g, cls = market_scope(position_values, keys)
    load = loadings_of(pv) if len(pv) else np.empty((0, len(FACTOR_ETFS)))
    covered = (cls == "PUBLIC") & np.isfinite(load).all(axis=1)
    absmv = np.abs(pv["market_value"].to_numpy(dtype=float))
    n_cov = np.bincount(g[covered], minlength=n_g)
    n_missing = np.bincount(g[~covered], minlength=n_g)
    gross_scope = np.bincount(g, weights=absmv, minlength=n_g)
    gross_cov = np.bincount(g[covered], weights=absmv[covered], minlength=n_g)

    pv, g, load = pv.loc[covered].reset_index(drop=True), g[covered], load[covered]
    mv = pv["market_value"].to_numpy(dtype=float)
    pdates = pd.to_datetime(pv["date"]).dt.normalize().to_numpy()
    key_dates = keys["date"].to_numpy()

    pos_ids = pv["position_id"].to_numpy(dtype=object)
    symbols = pv["symbol"].to_numpy(dtype=object)
    direct_g = np.full((n_g, n_s), np.nan)
    corr_g = np.full((n_g, n_s), np.nan)
    contrib_parts = []
    top_json = np.full((n_g, n_s), "[]", dtype=object)
    for d in pd.unique(key_dates):
        cov = covs.get(pd.Timestamp(d), covs.get(None))
        m_direct, m_corr = scenario_factor_moves([s.shocks for s in scns], cov)
        gsel = np.flatnonzero(key_dates == d)
        psel = np.flatnonzero(pdates == d)
        pnl_d = long_loss_cap(mv[psel, None] * (load[psel] @ m_direct), mv[psel])
        pnl_c = long_loss_cap(mv[psel, None] * (load[psel] @ m_corr), mv[psel])
        agg = sparse.csr_matrix((np.ones(psel.size), (g[psel], np.arange(psel.size))), shape=(n_g, psel.size))
        direct_g[gsel] = np.asarray(agg @ pnl_d)[gsel]
        # Without a usable covariance every correlated entry is NaN and the sum stays NaN.
        corr_g[gsel] = np.asarray(agg @ pnl_c)[gsel]
        if psel.size and n_s:
            rank_key = np.where(np.isnan(pnl_c), pnl_d, pnl_c)
            groups, idx = top_k_per_group(g[psel], np.abs(rank_key), top_n)
            top_json[groups] = _json_texts(idx, rank_key, pos_ids[psel], symbols[psel])
            if return_contributors:
                contrib_parts.append(_contributor_frame(pv.iloc[psel], idx, mv[psel], pnl_d, pnl_c, scns))

    no_cov = n_cov == 0
    direct_g[no_cov] = np.nan
    corr_g[no_cov] = np.nan
    equity = keys["equity"].to_numpy(dtype=float)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        d_pct = np.where(equity > 0, direct_g / equity, np.nan)
        c_pct = np.where(equity > 0, corr_g / equity, np.nan)
        coverage = np.where(gross_scope > 0, gross_cov / np.where(gross_scope > 0, gross_scope, 1.0), np.nan)

    rep = lambda a: np.repeat(np.asarray(a), n_s)  # noqa: E731
    til = lambda a: np.tile(np.asarray(a, dtype=object), n_g)  # noqa: E731
    results = pd.DataFrame(
        {
            "date": rep(keys["date"]),
            "portfolio_id": rep(keys["portfolio_id"]),
            "scenario_id": til([s.id for s in scns]),
            "scenario_name": til([s.name for s in scns]),
            "category": til([s.category for s in scns]),
            "severity": til([s.severity for s in scns]),
            "direct_pnl": direct_g.ravel(),
            "correlated_pnl": corr_g.ravel(),
            "correlation_effect": (corr_g - direct_g).ravel(),
            "direct_pct_equity": d_pct.ravel(),
            "correlated_pct_equity": c_pct.ravel(),
            "positions_covered": rep(n_cov).astype(np.int64),
            "positions_missing_beta": rep(n_missing).astype(np.int64),
            "top_contributors": top_json.ravel(),
            "coverage": rep(coverage),
        }
    )[STRESS_RESULT_COLUMNS]
    if not return_contributors:
        return results, None
    contributors = (
        pd.concat(contrib_parts, ignore_index=True) if contrib_parts else pd.DataFrame(columns=CONTRIBUTOR_COLUMNS)
    )
    return results, contributors[CONTRIBUTOR_COLUMNS]


def compute_joint_stress(
    position_values: pd.DataFrame,
    factor_model: pd.DataFrame,
    snapshots: pd.DataFrame,
    covariance_long: pd.DataFrame | None,
    scenarios: Iterable,
    duration: float = DEFAULT_RATE_DURATION,
    include_inactive: bool = False,
    top_n: int = TOP_CONTRIBUTORS,
    return_contributors: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Direct and correlated stress P&L per (date, portfolio, scenario) on the joint loadings.

    Formulas, scope and NaN policy are in the module docstring. The work is one
    ``(positions × 8) @ (8 × scenarios)`` product per date; the only loops are over dates and (for
    the 8×8 conditional fill) scenarios.

    Parameters
    ----------
    position_values : DataFrame
        From ``compute_snapshots`` (``date, portfolio_id, position_id, symbol, investment_class,
        market_value, is_priced``).
    factor_model : DataFrame
        Long ``[date?, symbol, factor, beta, specific_variance, ...]`` rows of the ``factor_model``
        table (factors ``factor_model.FACTOR_NAMES``), matched on (date, symbol); without a
        ``date`` column the rows apply to every date. A symbol-day lacking any of the 8 loadings
        is not covered.
    snapshots : DataFrame
        ``[date, portfolio_id, equity]``: which (date, portfolio) rows to emit and the equity.
    covariance_long : DataFrame or None
        ``[date?, factor_1, factor_2, covariance, ...]`` over the 8 ETFs (the
        ``factor_covariance`` table: daily returns, ETF labels).
    scenarios : iterable of mappings or objects
        Each with ``id, name, category, severity, shocks`` (factor name → decimal shock) and
        optional ``active`` (default true) and ``kind`` (``"replay"`` ones are skipped); e.g.
        :class:`sigmasight_assets.scenarios.Scenario`.
    duration : float, default 17
        TLT duration for ``Interest_Rate`` shocks.
    include_inactive : bool, default False
        Also run scenarios with ``active`` false.
    top_n : int, default 5
        Contributors kept per (date, portfolio, scenario).
    return_contributors : bool, default True
        Also build the long contributor frame; ``False`` returns ``None`` in its place.

    Returns
    -------
    results : DataFrame
        :data:`STRESS_RESULT_COLUMNS`, one row per (date, portfolio in ``snapshots``, shock
        scenario): P&L in USD, ``*_pct_equity`` decimal, ``coverage`` decimal share of in-scope
        gross value. ``top_contributors`` is a JSON list of up to ``top_n`` objects
        ``[position_id, symbol, pnl]`` ordered by ``|correlated P&L|`` (``|direct P&L|`` when
        correlated is NaN), P&L rounded to cents.
    contributors : DataFrame or None
        :data:`CONTRIBUTOR_COLUMNS`; the same top positions in long form (rank 1 = largest),
        ordered by date, scenario, portfolio and rank.
    """
    return _stress(position_values, lambda pv: position_loadings(pv, factor_model)[0], snapshots,
                   covariance_long, scenarios, duration, include_inactive, top_n, return_contributors)


# ---------------------------------------------------------------------------------------------
# Top contributors


_SAFE_JSON_TEXT = re.compile(r"^[A-Za-z0-9 _.:/^=+#@&()-]*$")


def _json_strings(values) -> np.ndarray:
    """Each value as a JSON string literal; ``json.dumps`` for the few with characters to escape
    (plain text gets the identical result by quoting), once per distinct value."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object).astype(str), use_na_sentinel=False)
    text = pd.Series(np.asarray(uniques, dtype=object))
    out = ('"' + text + '"').to_numpy(dtype=object)
    unsafe = ~text.str.fullmatch(_SAFE_JSON_TEXT.pattern).to_numpy(dtype=bool)
    out[unsafe] = [json.dumps(t) for t in text[unsafe]]
    return out[codes]


def position_json_prefixes(position_id, symbol) -> np.ndarray:
    """``[position_id,symbol,`` for each (position id, symbol), JSON-escaped: the start of one
    contributor entry ``[position_id, symbol, pnl]`` (an array, not an object: the key names would
    repeat on every one of millions of stored rows; ``stress_results_view`` presents objects)."""
    return '[' + _json_strings(position_id) + ',' + _json_strings(symbol) + ','


def contributor_json(group: np.ndarray, pnl: np.ndarray, position_id: np.ndarray, symbol: np.ndarray,
                     top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """JSON lists of the ``top_n`` positions by ``|pnl|`` per group, for every column at once.

    Parameters
    ----------
    group : numpy.ndarray
        ``(n,)`` integer group code (portfolio-day) of each position.
    pnl : numpy.ndarray
        ``(n, S)`` USD P&L per position and scenario; a NaN entry is not a contribution and is
        left out of the list.
    position_id, symbol : numpy.ndarray
        ``(n,)`` identifiers written into the entries.
    top_n : int
        Entries per list.

    Returns
    -------
    groups : numpy.ndarray
        ``(G,)`` distinct group codes, ascending.
    texts : numpy.ndarray
        ``(G, S)`` JSON texts ``[[position_id, symbol, pnl], …]``, largest
        ``|pnl|`` first, P&L rounded to cents; ``"[]"`` for a cell without a finite P&L.

    Notes
    -----
    All columns are ranked at once by :func:`~.concentration.top_k_per_group`; the JSON is
    assembled with whole-array string operations (one ``str.join`` with a marker before every
    non-empty (group, column), then one ``split``) — no per-portfolio or per-scenario Python
    loop. Identifiers are escaped only for the positions that made a list.
    """
    groups, idx = top_k_per_group(group, np.abs(pnl), top_n)  # (groups, S, kk): the JSON order
    return groups, _json_texts(idx, pnl, position_id, symbol)


def _json_texts(idx: np.ndarray, pnl: np.ndarray, position_id: np.ndarray, symbol: np.ndarray) -> np.ndarray:
    """``(G, S)`` JSON lists from a :func:`~.concentration.top_k_per_group` index table.

    Entries whose P&L is NaN are left out (a cell with none is ``"[]"``).
    """
    n_gl, n_s = idx.shape[:2]
    texts = np.full(n_gl * n_s, "[]", dtype=object)
    gi, sj, _ = np.nonzero(idx >= 0)  # C order: by group, column, rank
    pos = idx[idx >= 0]
    keep = np.isfinite(pnl[pos, sj])
    gi, sj, pos = gi[keep], sj[keep], pos[keep]
    if pos.size == 0:
        return texts.reshape(n_gl, n_s)
    used, slot = np.unique(pos, return_inverse=True)
    prefixes = position_json_prefixes(np.asarray(position_id, dtype=object)[used],
                                      np.asarray(symbol, dtype=object)[used])[slot]
    cell = gi * n_s + sj
    first = np.r_[True, cell[1:] != cell[:-1]]
    # pandas' C JSON encoder formats the numbers (cents) in one call.
    num_text = pd.Series(np.round(pnl[pos, sj], 2)).to_json(orient="values", double_precision=2)
    num = np.array(num_text[1:-1].split(","), dtype=object)
    # Interleave the four pieces of every entry and join once (no per-entry concatenation); a
    # marker starts every cell, so one split gives each cell's entries.
    pieces = np.empty(4 * pos.size, dtype=object)
    sep = np.full(pos.size, ",", dtype=object)
    sep[first] = "\x00"  # an object array: a numpy str array would strip the trailing NUL
    pieces[0::4] = sep
    pieces[1::4] = prefixes
    pieces[2::4] = num
    pieces[3::4] = "]"
    bodies = np.array("".join(pieces.tolist()).split("\x00")[1:], dtype=object)
    texts[cell[first]] = "[" + bodies + "]"
    return texts.reshape(n_gl, n_s)


def _contributor_frame(pv, idx, mv, pnl_d, pnl_c, scns) -> pd.DataFrame:
    """The long contributor rows of a :func:`~.concentration.top_k_per_group` index table."""
    valid = idx >= 0
    gi, sj, rk = np.nonzero(valid)
    pos = idx[valid]
    dates = pd.to_datetime(pv["date"]).dt.normalize().to_numpy()
    pid = pv["portfolio_id"].astype(str).to_numpy(dtype=object)
    pos_id = pv["position_id"].astype(str).to_numpy(dtype=object)
    sym = pv["symbol"].astype(str).to_numpy(dtype=object)
    scn_ids = np.array([s.id for s in scns], dtype=object)
    # Ordered by scenario, then portfolio, then rank.
    o = np.lexsort((rk, gi, sj))
    p_o, s_o = pos[o], sj[o]
    return pd.DataFrame(
        {
            "date": dates[p_o],
            "portfolio_id": pid[p_o],
            "scenario_id": scn_ids[s_o],
            "rank": rk[o] + 1,
            "position_id": pos_id[p_o],
            "symbol": sym[p_o],
            "market_value": mv[p_o],
            "direct_pnl": pnl_d[p_o, s_o],
            "correlated_pnl": pnl_c[p_o, s_o],
        }
    )
