"""Factor stress tests: direct and correlated scenario P&L per portfolio (pure, vectorised).

Scenario shocks and factor moves
--------------------------------
A scenario names shocks on ``Market, Interest_Rate, Value, Growth, Momentum, Quality, Size,
Low_Volatility``. Each is a move of one factor ETF (:data:`SHOCK_FACTOR_TO_ETF`), as a decimal
return, except ``Interest_Rate``, a yield change ``Δy`` (+0.01 = +100bp) turned into the return of
the long-bond ETF ``ΔTLT = −duration · Δy`` (duration default 17): rates up ⇒ TLT down.

*Direct* moves are the named shocks only. *Correlated* moves first fill every unshocked ETF with
its conditional expectation given the shocked ones under the day's factor covariance Σ
(multivariate normal, zero mean): ``Δ_u = Σ_us Σ_ss⁻¹ Δ_s`` (:func:`conditional_factor_moves`).

Exposure mapping (each factor move counted once)
------------------------------------------------
The warehouse has three beta sets per symbol: univariate ``market`` (vs SPY) and ``ir`` (vs TLT)
betas, and ridge ``style`` betas from one joint regression on the six style ETFs. The style ETFs
all carry most of the market, so applying market beta to ΔSPY *and* style betas to the raw style
ETF moves would count the market move twice. The mapping used is::

    return_i = β_i,market · ΔSPY
             + β_i,ir     · ΔTLT
             + Σ_k β_i,k  · (Δ_k − ΔSPY)        k ∈ {VTV, VUG, MTUM, QUAL, IWM, USMV}

with ``β_i,k`` the ridge betas (factors ``value, growth, momentum, quality, size,
low_volatility``). Rewriting the ridge model ``Σ_k β_k Δ_k = Σ_k β_k (Δ_k − ΔSPY) + (Σ_k β_k) ΔSPY``
shows why: its implied market loading ``Σ_k β_k`` is dropped and replaced by the dedicated market
beta, so the market move enters exactly once; the style betas only price each style ETF's move
*relative to the market*. In *direct* mode an unshocked style ETF has no move of its own, i.e. it
moves with the market (excess 0) — so a pure market scenario is exactly ``β_market · ΔSPY`` and a
named style shock with a market shock is priced on its excess (e.g. Quality +12 % with Market −5 %
is a +17 % quality excess). An unshocked TLT moves 0 in direct mode. Known limitation: market and
ir betas are univariate, so in a correlated scenario moving both SPY and TLT their (small) shared
component is not orthogonalised.

Scope and caps
--------------
* Covered positions: priced ``PUBLIC`` positions with *all eight* betas (market, ir and the six
  ridge style betas; they come from the same 90-day window, so a symbol normally has all or none).
  Direct and correlated P&L use the same covered set, so the correlation effect is comparable.
* ``positions_missing_beta``: priced PUBLIC positions lacking any of the eight betas **plus**
  OPTIONS (no delta ⇒ no honest factor exposure; same rule as ``aggregated_exposures``). PRIVATE
  positions have no betas by design and are not stressed; unpriced positions have no value.
* Position P&L ``pnl_i = MV_i · return_i``; a long position cannot lose more than its value:
  ``pnl_i ≥ −MV_i`` for ``MV_i > 0``. Shorts are uncapped. The cap is per position, never on net.
* Portfolio P&L = Σ covered positions. No covered position ⇒ P&L NaN (nothing was measured; a
  cash-only or private-only portfolio has NaN, not 0). No usable covariance for the day (absent,
  incomplete or non-finite 8×8) ⇒ correlated P&L and correlation effect NaN, direct still computed.
* ``*_pct_equity`` are decimal fractions of the day's equity (−0.12 = −12 %), NaN if equity ≤ 0.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from .concentration import top_k_per_group
from .covariance import covariance_by_date, usable_covariance
from .factors import FACTOR_ETFS

from .exposures import group_codes, portfolio_keys, attach_betas
from .snapshots import upper_values

SHOCK_FACTOR_TO_ETF: dict[str, str] = {
    "Market": "SPY",
    "Interest_Rate": "TLT",
    "Value": "VTV",
    "Growth": "VUG",
    "Momentum": "MTUM",
    "Quality": "QUAL",
    "Size": "IWM",
    "Low_Volatility": "USMV",
}
# Beta applied to each ETF's (mapped) move, aligned with FACTOR_ETFS.
EXPOSURE_BETAS: tuple[str, ...] = (
    "market", "ir", "value", "growth", "momentum", "quality", "size", "low_volatility",
)
RATE_FACTOR = "Interest_Rate"
DEFAULT_RATE_DURATION = 17.0
TOP_CONTRIBUTORS = 5

RESULT_COLUMNS = [
    "date", "portfolio_id", "scenario_id", "scenario_name", "category", "severity", "direct_pnl",
    "correlated_pnl", "correlation_effect", "direct_pct_equity", "correlated_pct_equity",
    "positions_covered", "positions_missing_beta", "top_contributors",
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
    cov : DataFrame (labelled) or (8, 8) array in :data:`FACTOR_ETFS` order
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


def exposure_moves(etf_moves: Mapping[str, float], direct: bool = False) -> np.ndarray:
    """Moves that multiply :data:`EXPOSURE_BETAS`: ``[ΔSPY, ΔTLT, Δ_k − ΔSPY …]``.

    With ``direct=True``, ``etf_moves`` holds only the named shocks: an absent SPY/TLT moves 0 and
    an absent style ETF has excess move 0 (it moves with the market).
    """
    spy = float(etf_moves.get("SPY", 0.0))
    out = np.empty(len(FACTOR_ETFS))
    out[0] = spy
    out[1] = float(etf_moves.get("TLT", 0.0))
    for j, etf in enumerate(FACTOR_ETFS[2:], start=2):
        if etf in etf_moves:
            out[j] = float(etf_moves[etf]) - spy
        else:
            out[j] = 0.0 if direct else np.nan
    if not direct and np.isnan(out).any():
        raise ValueError("correlated moves need every factor ETF")
    return out


def _normalise_scenarios(scenarios: Iterable, duration: float, include_inactive: bool) -> list[_Scn]:
    out = []
    for s in scenarios:
        get = (lambda k, d=None: s.get(k, d)) if isinstance(s, Mapping) else (lambda k, d=None: getattr(s, k, d))
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


def scenario_move_matrices(scns: list[_Scn], cov: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """(8 × S) direct and correlated exposure-move matrices; correlated NaN without covariance."""
    direct = np.column_stack([exposure_moves(s.shocks, direct=True) for s in scns]) if scns else np.empty((8, 0))
    corr = np.full_like(direct, np.nan)
    if usable_covariance(cov):
        for j, s in enumerate(scns):
            corr[:, j] = exposure_moves(conditional_factor_moves(s.shocks, cov))
    return direct, corr


def _cap(pnl: np.ndarray, mv: np.ndarray) -> np.ndarray:
    """A long position loses at most its value; shorts uncapped."""
    floor = np.where(mv > 0, -mv, -np.inf)[:, None]
    return np.where(np.isnan(pnl), np.nan, np.maximum(pnl, floor))


def compute_stress(
    position_values: pd.DataFrame,
    position_betas: pd.DataFrame,
    snapshots: pd.DataFrame,
    covariance_long: pd.DataFrame | None,
    scenarios: Iterable,
    duration: float = DEFAULT_RATE_DURATION,
    include_inactive: bool = False,
    top_n: int = TOP_CONTRIBUTORS,
    return_contributors: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Direct and correlated stress P&L per (date, portfolio, scenario).

    Formulas, exposure mapping, scope and NaN policy are in the module docstring. The work is one
    (positions × 8) @ (8 × scenarios) product per date; the only loops are over dates and (for the
    8×8 conditional fill and top-k ranking) scenarios.

    Parameters
    ----------
    position_values : DataFrame
        From ``compute_snapshots`` (``date, portfolio_id, position_id, symbol, investment_class,
        market_value, is_priced``).
    position_betas : DataFrame
        Long ``[date?, symbol, factor, beta]`` holding factors ``market, ir`` and the six ridge
        style factors (other factors are ignored).
    snapshots : DataFrame
        ``[date, portfolio_id, equity]``: which (date, portfolio) rows to emit and the equity.
    covariance_long : DataFrame or None
        ``[date?, factor_1, factor_2, covariance, ...]`` over the 8 ETFs (daily returns).
    scenarios : iterable of mappings or objects
        Each with ``id, name, category, severity, shocks`` (factor name → decimal shock) and
        optional ``active`` (default true); e.g. :class:`sigmasight_assets.scenarios.Scenario`.
    duration : float, default 17
        TLT duration for ``Interest_Rate`` shocks.
    include_inactive : bool, default False
        Also run scenarios with ``active`` false (the historical replays).
    top_n : int, default 5
        Contributors kept per (date, portfolio, scenario).
    return_contributors : bool, default True
        Also build the long contributor frame; ``False`` returns ``None`` in its place (the
        asset stores only the JSON, and the long frame costs as much as the ranking).

    Returns
    -------
    results : DataFrame
        ``RESULT_COLUMNS``; ``top_contributors`` is a JSON list of up to ``top_n`` objects
        ``{"position_id", "symbol", "pnl"}`` ordered by ``|correlated P&L|`` (``|direct P&L|`` when
        correlated is NaN), P&L rounded to cents.
    contributors : DataFrame or None
        ``CONTRIBUTOR_COLUMNS``; the same top positions in long form (rank 1 = largest), ordered
        by date, scenario, portfolio and rank.
    """
    scns = _normalise_scenarios(scenarios, duration, include_inactive)
    keys = portfolio_keys(snapshots)
    n_g, n_s = len(keys), len(scns)
    covs = covariance_by_date(covariance_long)

    pv = position_values
    cls = upper_values(pv["investment_class"])
    priced = pv["is_priced"].astype("boolean").fillna(False).to_numpy(dtype=bool) & np.isfinite(
        pv["market_value"].to_numpy(dtype=float)
    )
    g_all = group_codes(keys, pv)
    in_scope = priced & np.isin(cls, ("PUBLIC", "OPTIONS")) & (g_all >= 0)
    pv, g, cls = pv.loc[in_scope].reset_index(drop=True), g_all[in_scope], cls[in_scope]
    beta = attach_betas(pv, position_betas, EXPOSURE_BETAS) if len(pv) else np.empty((0, 8))
    covered = (cls == "PUBLIC") & np.isfinite(beta).all(axis=1)
    n_cov = np.bincount(g[covered], minlength=n_g)
    n_missing = np.bincount(g[~covered], minlength=n_g)

    pv, g, beta = pv.loc[covered].reset_index(drop=True), g[covered], beta[covered]
    mv = pv["market_value"].to_numpy(dtype=float)
    pdates = pd.to_datetime(pv["date"]).dt.normalize().to_numpy()
    key_dates = keys["date"].to_numpy()

    frag = _json_prefixes(pv) if len(pv) and n_s else np.empty(0, dtype=object)
    direct_g = np.full((n_g, n_s), np.nan)
    corr_g = np.full((n_g, n_s), np.nan)
    contrib_parts = []
    top_json = np.full((n_g, n_s), "[]", dtype=object)
    for d in pd.unique(key_dates):
        cov = covs.get(pd.Timestamp(d), covs.get(None))
        m_direct, m_corr = scenario_move_matrices(scns, cov)
        gsel = np.flatnonzero(key_dates == d)
        psel = np.flatnonzero(pdates == d)
        pnl_d = _cap(mv[psel, None] * (beta[psel] @ m_direct), mv[psel])
        pnl_c = _cap(mv[psel, None] * (beta[psel] @ m_corr), mv[psel])
        agg = sparse.csr_matrix((np.ones(psel.size), (g[psel], np.arange(psel.size))), shape=(n_g, psel.size))
        direct_g[gsel] = np.asarray(agg @ pnl_d)[gsel]
        corr_g[gsel] = np.asarray(agg @ np.nan_to_num(pnl_c))[gsel] if usable_covariance(cov) else np.nan
        if psel.size and n_s:
            part, (gsel_top, texts) = _top_contributors(pv.iloc[psel], g[psel], mv[psel], pnl_d, pnl_c, scns,
                                                        top_n, return_contributors, frag[psel])
            if part is not None:
                contrib_parts.append(part)
            top_json[gsel_top] = texts

    no_cov = n_cov == 0
    direct_g[no_cov] = np.nan
    corr_g[no_cov] = np.nan
    equity = keys["equity"].to_numpy(dtype=float)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        d_pct = np.where(equity > 0, direct_g / equity, np.nan)
        c_pct = np.where(equity > 0, corr_g / equity, np.nan)

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
        }
    )[RESULT_COLUMNS]
    if not return_contributors:
        return results, None
    contributors = (
        pd.concat(contrib_parts, ignore_index=True) if contrib_parts else pd.DataFrame(columns=CONTRIBUTOR_COLUMNS)
    )
    return results, contributors[CONTRIBUTOR_COLUMNS]


_SAFE_JSON_TEXT = re.compile(r"^[A-Za-z0-9 _.:/^=+#@&()-]*$")


def _json_str(text: str) -> str:
    # json.dumps is the reference; the plain-character fast path gives the identical result.
    return f'"{text}"' if _SAFE_JSON_TEXT.match(text) else json.dumps(text)


def _json_prefixes(pv: pd.DataFrame) -> np.ndarray:
    """``{"position_id": …, "symbol": …, "pnl": `` per row, JSON-escaped, built once per distinct
    (position, symbol): a position repeats on every day of the range."""
    pos_id = pv["position_id"].astype(str).to_numpy(dtype=object)
    sym = pv["symbol"].astype(str).to_numpy(dtype=object)
    codes, _ = pd.factorize(pos_id + "\x00" + sym)
    _, first = np.unique(codes, return_index=True)
    text = np.array([f'{{"position_id": {_json_str(pos_id[i])}, "symbol": {_json_str(sym[i])}, "pnl": '
                     for i in first], dtype=object)
    return text[codes]


def _top_contributors(pv, g, mv, pnl_d, pnl_c, scns, top_n, want_long: bool, frag: np.ndarray):
    """Top ``top_n`` positions per (portfolio, scenario) by |correlated| (else |direct|) P&L.

    Returns the long contributor frame (``None`` unless ``want_long``) and (group codes, JSON
    texts in (group, scenario) order). All scenarios are ranked at once by
    :func:`~.concentration.top_k_per_group`; the JSON is assembled with whole-array string
    operations (one ``str.join`` with a marker before every (group, scenario), then one
    ``split``) — no per-portfolio or per-scenario Python loop.
    """
    n_s = len(scns)
    key_all = np.where(np.isnan(pnl_c), pnl_d, pnl_c)  # (n, S)
    groups, idx = top_k_per_group(g, np.abs(key_all), top_n)  # (groups, S, kk): the JSON order
    n_gl = groups.size
    valid = idx >= 0
    gi, sj, rk = np.nonzero(valid)
    pos = idx[valid]

    pos_id = pv["position_id"].astype(str).to_numpy(dtype=object)
    sym = pv["symbol"].astype(str).to_numpy(dtype=object)
    # pandas' C JSON encoder formats the numbers (cents, NaN → null) in one call.
    num_text = pd.Series(np.round(key_all[pos, sj], 2)).to_json(orient="values", double_precision=2)
    num = np.array(num_text[1:-1].split(","), dtype=object)
    first = rk == 0
    last = np.r_[rk[1:] == 0, True]
    # Interleave the four pieces of every entry and join once (no per-entry concatenation).
    pieces = np.empty(4 * pos.size, dtype=object)
    pieces[0::4] = np.where(first, "\x00[", ", ")
    pieces[1::4] = frag[pos]
    pieces[2::4] = num
    pieces[3::4] = np.where(last, "}]", "}")
    texts = np.array("".join(pieces.tolist()).split("\x00")[1:], dtype=object).reshape(n_gl, n_s)

    long = None
    if want_long:
        dates = pd.to_datetime(pv["date"]).dt.normalize().to_numpy()
        pid = pv["portfolio_id"].astype(str).to_numpy(dtype=object)
        scn_ids = np.array([s.id for s in scns], dtype=object)
        # The long frame is ordered by scenario, then portfolio, then rank.
        o = np.lexsort((rk, gi, sj))
        p_o, s_o = pos[o], sj[o]
        long = pd.DataFrame(
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
    return long, (groups, texts)
