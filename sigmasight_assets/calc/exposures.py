"""Portfolio factor exposures: Σ market value × symbol beta, with coverage (pure, vectorised).

Formula (per date, portfolio and factor ``f``)::

    exposure_dollar_f = Σ_{i ∈ B_f} MV_i · β_i,f                 (USD per unit factor return)
    exposure_value_f  = exposure_dollar_f / equity                (NaN if equity ≤ 0 or NaN)
    coverage_f        = Σ_{i ∈ B_f} |MV_i| / Σ_{i ∈ S} |MV_i|     (NaN if Σ_S |MV| = 0)

* ``S`` (in scope): the portfolio's *priced* ``PUBLIC`` and ``OPTIONS`` positions that day.
* ``B_f ⊆ S``: the ``PUBLIC`` positions of ``S`` whose symbol has a finite ``β_f`` that day.

Choices, stated once:

* **Options are excluded and counted as missing.** Without a delta, ``MV·β_underlying`` gets the
  sign of a put wrong and ignores the leverage of a call, so it would be a confident wrong number.
  An option therefore never contributes to ``exposure_dollar``; it is in scope, adds its ``|MV|``
  to the coverage denominator and 1 to ``positions_missing_beta``, so a book with options shows
  ``coverage < 1``.
* **A missing beta is excluded and counted, never 0**: the position is in ``S`` but not in ``B_f``.
* ``PRIVATE`` positions have no betas by design and are out of scope (neither counted nor valued
  here); unpriced positions have no MV and are out of scope too (``portfolio_snapshots`` counts
  them as ``unpriced_count``).
* **Defined rows for every (date, portfolio in ``snapshots``, factor)**:

  - no position in scope (cash only, private only, empty): ``exposure_dollar`` and
    ``exposure_value`` NaN, ``coverage`` NaN, both counts 0 — nothing was measured;
  - positions in scope but none with ``β_f`` (all betas missing, or options only):
    ``exposure_dollar``/``exposure_value`` NaN, ``coverage = 0``, ``positions_missing_beta`` > 0;
  - otherwise the sums over ``B_f`` (partial coverage visible in ``coverage`` and the counts).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .factors import SPREAD_DEFINITIONS, STYLE_ETFS
from .frames import portfolio_day_codes, portfolio_day_keys, upper_values

#: exposure factors: market and rates betas, the provider's beta, the ridge styles, the spreads
FACTORS: tuple[str, ...] = ("market", "ir", "provider", *STYLE_ETFS, *SPREAD_DEFINITIONS)
EXPOSURE_COLUMNS = [
    "date", "portfolio_id", "factor", "exposure_dollar", "exposure_value", "coverage",
    "positions_with_beta", "positions_missing_beta",
]
IN_SCOPE_CLASSES = ("PUBLIC", "OPTIONS")


def beta_matrix(betas: pd.DataFrame, factors: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Pivot long betas ``[date?, symbol, factor, beta]`` to wide (index ``[date?,] symbol``).

    Non-finite betas become NaN (missing). Duplicate (date, symbol, factor) rows are an input
    error and raise ``ValueError`` rather than being silently averaged.
    """
    keys = ["date", "symbol"] if "date" in betas.columns else ["symbol"]
    b = betas.loc[betas["factor"].isin(list(factors)), keys + ["factor", "beta"]].copy()
    if "date" in keys:
        b["date"] = pd.to_datetime(b["date"]).dt.normalize()
    dup = b.duplicated(keys + ["factor"])
    if dup.any():
        first = b.loc[dup].iloc[0]
        raise ValueError(f"duplicate beta rows, e.g. {first[keys + ['factor']].to_dict()}")
    b["beta"] = pd.to_numeric(b["beta"], errors="coerce").where(lambda x: np.isfinite(x))
    wide = b.pivot(index=keys, columns="factor", values="beta")
    return wide.reindex(columns=list(factors))


def attach_betas(pv: pd.DataFrame, betas: pd.DataFrame, factors) -> np.ndarray:
    """Betas of each row of ``pv`` as an (n × len(factors)) array, NaN where missing."""
    wide = beta_matrix(betas, factors)
    if wide.index.nlevels == 2:
        key = pd.MultiIndex.from_arrays([pd.to_datetime(pv["date"]).dt.normalize(), pv["symbol"]])
    else:
        key = pd.Index(pv["symbol"])
    loc = wide.index.get_indexer(key)
    vals = np.vstack([wide.to_numpy(dtype=float), np.full((1, len(factors)), np.nan)])
    return vals[np.where(loc >= 0, loc, len(wide))]


def classify_positions(position_values: pd.DataFrame, keys: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``position_values``: its group code in ``keys`` (−1 when absent, see
    :func:`~sigmasight_assets.calc.frames.portfolio_day_codes`), its upper-cased
    ``investment_class`` and whether it is priced (``is_priced`` and a finite market value)."""
    pv = position_values
    priced = pv["is_priced"].astype("boolean").fillna(False).to_numpy(dtype=bool) & np.isfinite(
        pv["market_value"].to_numpy(dtype=float))
    return portfolio_day_codes(keys, pv), upper_values(pv["investment_class"]), priced


def market_scope(position_values: pd.DataFrame, keys: pd.DataFrame,
                 classified: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                 ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The in-scope positions of factor analytics: priced ``PUBLIC`` and ``OPTIONS`` rows of the
    (date, portfolio) rows of ``keys`` — the one selection shared by exposures, stress, replays
    and risk.

    Parameters
    ----------
    position_values : pandas.DataFrame
        From ``compute_snapshots`` (needs ``date, portfolio_id, investment_class, market_value,
        is_priced``).
    keys : pandas.DataFrame
        From :func:`~sigmasight_assets.calc.frames.portfolio_day_keys`.
    classified : tuple, optional
        :func:`classify_positions` of the same arguments, when the caller already has it.

    Returns
    -------
    rows : pandas.DataFrame
        The in-scope rows, index reset; priced means ``is_priced`` and a finite market value.
    group : numpy.ndarray
        ``(n,)`` row of ``keys`` of each in-scope row.
    investment_class : numpy.ndarray
        ``(n,)`` upper-cased class (``PUBLIC`` or ``OPTIONS``).
    """
    g, cls, priced = classified if classified is not None else classify_positions(position_values, keys)
    scope = priced & np.isin(cls, IN_SCOPE_CLASSES) & (g >= 0)
    return position_values.loc[scope].reset_index(drop=True), g[scope], cls[scope]


def aggregate_exposures(
    position_values: pd.DataFrame,
    symbol_betas: pd.DataFrame,
    snapshots: pd.DataFrame,
    factors: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """Dollar and equity-relative factor exposures per (date, portfolio, factor).

    See the module docstring for the formula, scope, option treatment and edge cases.

    Parameters
    ----------
    position_values : DataFrame
        Output of :func:`~sigmasight_assets.calc.snapshots.compute_snapshots` (needs ``date,
        portfolio_id, symbol, investment_class, market_value, is_priced``).
    symbol_betas : DataFrame
        Long ``[symbol, factor, beta]`` for one day (applied to every date) or
        ``[date, symbol, factor, beta]`` for several days (matched on date and symbol).
    snapshots : DataFrame
        ``[date, portfolio_id, equity]``: which (date, portfolio) rows to emit and the equity.
    factors : tuple of str, optional
        Factors to emit; default :data:`FACTORS` (all 13, so rows exist even with no betas).

    Returns
    -------
    DataFrame
        ``EXPOSURE_COLUMNS``; one row per (date, portfolio_id in ``snapshots``, factor).
    """
    factors = tuple(factors or FACTORS)
    keys = portfolio_day_keys(snapshots)
    n_g, n_f = len(keys), len(factors)

    pv, g, cls = market_scope(position_values, keys)
    mv = pv["market_value"].to_numpy(dtype=float)
    absmv = np.abs(mv)
    beta = attach_betas(pv, symbol_betas, factors) if len(pv) else np.empty((0, n_f))
    # Options are in scope but never use a beta (see module docstring).
    is_public = cls == "PUBLIC"
    has = np.isfinite(beta) & is_public[:, None]

    n_scope = np.bincount(g, minlength=n_g)
    gross_scope = np.bincount(g, weights=absmv, minlength=n_g)
    exp = np.empty((n_g, n_f))
    n_with = np.empty((n_g, n_f), dtype=np.int64)
    gross_with = np.empty((n_g, n_f))
    for j in range(n_f):  # loop over the 13 factors only; each is one bincount over all rows
        h = has[:, j]
        exp[:, j] = np.bincount(g, weights=np.where(h, mv * np.where(h, beta[:, j], 0.0), 0.0), minlength=n_g)
        n_with[:, j] = np.bincount(g, weights=h.astype(float), minlength=n_g).astype(np.int64)
        gross_with[:, j] = np.bincount(g, weights=np.where(h, absmv, 0.0), minlength=n_g)

    exp = np.where(n_with > 0, exp, np.nan)
    equity = keys["equity"].to_numpy(dtype=float)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(equity > 0, exp / equity, np.nan)
        coverage = np.where(gross_scope[:, None] > 0, gross_with / gross_scope[:, None], np.nan)
    return pd.DataFrame(
        {
            "date": np.repeat(keys["date"].to_numpy(), n_f),
            "portfolio_id": np.repeat(keys["portfolio_id"].to_numpy(), n_f),
            "factor": np.tile(np.array(factors, dtype=object), n_g),
            "exposure_dollar": exp.ravel(),
            "exposure_value": value.ravel(),
            "coverage": coverage.ravel(),
            "positions_with_beta": n_with.ravel(),
            "positions_missing_beta": (n_scope[:, None] - n_with).ravel(),
        }
    )[EXPOSURE_COLUMNS]
