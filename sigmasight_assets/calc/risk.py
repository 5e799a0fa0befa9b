"""Ex-ante factor risk of many portfolios at once: volatility, beta, tracking error, Euler contributions.

The model
---------
For a portfolio-day with dollar positions ``w`` (USD market values of its *covered* positions),
joint loadings ``L`` (positions × 8, ``factor_model``), the day's factor covariance in the model's
basis ``Σ_f = A Σ_ETF Aᵀ`` (8 × 8, daily decimal returns) and specific variances ``D_i``
(``factor_model.specific_variance``, daily):

* factor exposures ``x = Lᵀ w`` (USD per unit factor return);
* factor variance ``xᵀ Σ_f x``, specific variance ``Σ_i w_i² D_i``, total variance their sum
  (USD² per day); ``σ = √total`` is the daily ex-ante volatility in USD;
* annualised volatility ``σ · √252``; both also as a fraction of the day's equity;
* ``factor_share = factor variance / total variance``;
* ex-ante beta to SPY: SPY's return is exactly ``f_market``, so
  ``β = cov(r_p, r_SPY) / var(r_SPY) = (Σ_f x)_market / Σ_f[market, market] / V`` with ``V`` the
  day's **equity** (the portfolio's return is its P&L over its equity, as everywhere else);
* tracking error against SPY: active exposure ``a = x − V · e_market`` (a portfolio holding ``V``
  of SPY has ``x = V e_market`` and no specific risk), ``TE² = aᵀ Σ_f a + Σ_i w_i² D_i``; reported
  daily in USD and annualised as a fraction of equity.

Euler contributions (each set sums to ``σ`` exactly, up to float rounding):

* factor ``k``: ``x_k (Σ_f x)_k / σ``, plus specific risk ``Σ_i w_i² D_i / σ``;
* position ``i``: ``w_i ((L Σ_f x)_i + w_i D_i) / σ``.

Coverage and NaN policy
-----------------------
Covered positions are priced ``PUBLIC`` positions whose symbol has a complete factor model that
day; the others are excluded and counted by reason, never valued as zero risk:
``positions_options`` (no delta), ``positions_private`` (no market model), ``positions_unpriced``
(``PUBLIC`` without a price), ``positions_no_loadings`` (priced ``PUBLIC`` without a model).
``coverage = Σ |w| covered / Σ |MV|`` over priced ``PUBLIC`` and ``OPTIONS`` positions (the same
scope as exposures and stress; NaN when that is 0). A portfolio-day with no covered position has
NaN risk; a day without a usable ETF covariance has NaN factor and total risk (specific risk is
still reported); every ``*_pct_equity``, beta and tracking error is NaN when equity is NaN or ≤ 0.

Vectorisation: portfolios are integer group codes; exposures are one sparse
``(portfolio-days × positions) @ (positions × 8)`` product, the quadratic forms are row-wise on
``(portfolio-days × 8)`` arrays, sums over positions are ``bincount``. The only loop is over dates
(one ``Σ_f`` per date).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from .concentration import top_k_per_group
from .covariance import covariance_by_date, usable_covariance
from .exposures import classify_positions, market_scope
from .frames import portfolio_day_keys
from .factor_model import FACTOR_NAMES, factor_covariance_in_basis, position_loadings
from .factors import FACTOR_ETFS
from .frames import concat_columns
from .snapshots import TRADING_DAYS_PER_YEAR

__all__ = [
    "TOP_RISK_POSITIONS",
    "RISK_COLUMNS",
    "CONTRIBUTION_COLUMNS",
    "EXCLUSION_COLUMNS",
    "CoveredBook",
    "covered_book",
    "factor_covariances",
    "ex_ante_risk",
]

TOP_RISK_POSITIONS = 10
MARKET = FACTOR_NAMES.index("market")

EXCLUSION_COLUMNS = [
    "positions_covered", "positions_options", "positions_private", "positions_unpriced",
    "positions_no_loadings", "coverage",
]
RISK_COLUMNS = [
    "date", "portfolio_id", "equity", "volatility_daily", "factor_volatility_daily",
    "specific_volatility_daily", "volatility_annual", "volatility_daily_pct_equity",
    "volatility_annual_pct_equity", "factor_share", "beta_spy", "tracking_error_daily",
    "tracking_error_annual_pct_equity", *EXCLUSION_COLUMNS,
]
CONTRIBUTION_COLUMNS = ["date", "portfolio_id", "component_type", "component", "symbol", "contribution", "share"]


@dataclass(frozen=True)
class CoveredBook:
    """The covered positions of many portfolio-days, with their model inputs.

    Attributes
    ----------
    keys : pandas.DataFrame
        ``[date, portfolio_id, equity]``; row ``g`` is group code ``g``.
    group : numpy.ndarray
        ``(n,)`` group code of each covered position.
    positions : pandas.DataFrame
        ``[date, portfolio_id, position_id, symbol]`` of the covered positions.
    w : numpy.ndarray
        ``(n,)`` signed market value, USD.
    loadings : numpy.ndarray
        ``(n, 8)`` joint loadings (``FACTOR_NAMES`` order) of the position's symbol that day.
    specific_variance : numpy.ndarray
        ``(n,)`` daily specific variance of the symbol that day.
    exclusions : pandas.DataFrame
        :data:`EXCLUSION_COLUMNS` per group (counts int64, coverage decimal).
    """

    keys: pd.DataFrame
    group: np.ndarray
    positions: pd.DataFrame
    w: np.ndarray
    loadings: np.ndarray
    specific_variance: np.ndarray
    exclusions: pd.DataFrame

    @property
    def n_groups(self) -> int:
        return len(self.keys)


def covered_book(position_values: pd.DataFrame, factor_model: pd.DataFrame, snapshots: pd.DataFrame) -> CoveredBook:
    """Select the covered positions and count the excluded ones (see the module docstring).

    Parameters
    ----------
    position_values : pandas.DataFrame
        From ``compute_snapshots`` (``date, portfolio_id, position_id, symbol,
        investment_class, market_value, is_priced``).
    factor_model : pandas.DataFrame
        Long ``factor_model`` rows ``[date?, symbol, factor, beta, specific_variance, ...]``.
    snapshots : pandas.DataFrame
        ``[date, portfolio_id, equity]``: the portfolio-days to measure.

    Returns
    -------
    CoveredBook
    """
    keys = portfolio_day_keys(snapshots)
    n_g = len(keys)
    classified = classify_positions(position_values, keys)
    g_all, cls_all, priced_all = classified
    mine = g_all >= 0

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(g_all[mask & mine], minlength=n_g).astype(np.int64)

    pv, g, cls = market_scope(position_values, keys, classified)
    mv = pv["market_value"].to_numpy(dtype=float)
    load, spec = position_loadings(pv, factor_model) if len(pv) else (np.empty((0, 8)), np.empty(0))
    covered = (cls == "PUBLIC") & np.isfinite(load).all(axis=1) & np.isfinite(spec)
    gross_scope = np.bincount(g, weights=np.abs(mv), minlength=n_g)
    gross_cov = np.bincount(g[covered], weights=np.abs(mv[covered]), minlength=n_g)
    with np.errstate(divide="ignore", invalid="ignore"):
        coverage = np.where(gross_scope > 0, gross_cov / np.where(gross_scope > 0, gross_scope, 1.0), np.nan)
    exclusions = pd.DataFrame({
        "positions_covered": np.bincount(g[covered], minlength=n_g).astype(np.int64),
        "positions_options": count(cls_all == "OPTIONS"),
        "positions_private": count(cls_all == "PRIVATE"),
        "positions_unpriced": count((cls_all == "PUBLIC") & ~priced_all),
        "positions_no_loadings": np.bincount(g[(cls == "PUBLIC") & ~covered], minlength=n_g).astype(np.int64),
        "coverage": coverage,
    })
    rows = pv.loc[covered, ["date", "portfolio_id", "position_id", "symbol"]].reset_index(drop=True)
    rows["date"] = pd.to_datetime(rows["date"]).dt.normalize()
    return CoveredBook(keys, g[covered], rows, mv[covered], load[covered], spec[covered], exclusions)


def factor_covariances(covariance_long: pd.DataFrame | None, dates) -> dict[pd.Timestamp, np.ndarray | None]:
    """``Σ_f = A Σ_ETF Aᵀ`` per date from the long ``factor_covariance`` rows.

    Returns ``None`` for a date whose ETF matrix is absent, incomplete or not finite. Rows without
    a ``date`` column apply to every date.
    """
    covs = covariance_by_date(covariance_long)
    out: dict[pd.Timestamp, np.ndarray | None] = {}
    for d in pd.DatetimeIndex(pd.to_datetime(pd.Index(dates))).unique():
        cov = covs.get(d, covs.get(None))
        out[d] = factor_covariance_in_basis(cov.loc[list(FACTOR_ETFS), list(FACTOR_ETFS)].to_numpy()) \
            if usable_covariance(cov) else None
    return out


def ex_ante_risk(
    book: CoveredBook,
    covariance_long: pd.DataFrame | None,
    top_k: int = TOP_RISK_POSITIONS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ex-ante risk and Euler contributions of every portfolio-day of ``book``.

    Parameters
    ----------
    book : CoveredBook
        From :func:`covered_book`.
    covariance_long : pandas.DataFrame or None
        The ``factor_covariance`` rows (``[date?, factor_1, factor_2, covariance, ...]``, ETF
        labels, daily decimal returns) of the book's dates.
    top_k : int, default 10
        Position contributions kept per portfolio-day, the largest ``|contribution|`` first.

    Returns
    -------
    risk : pandas.DataFrame
        :data:`RISK_COLUMNS`, one row per portfolio-day of ``book.keys``: USD volatilities
        (daily; ``volatility_annual`` = daily × √252), ``*_pct_equity`` decimal fractions of
        equity, ``factor_share`` decimal, ``beta_spy`` unitless, tracking error daily USD and
        annualised decimal; then the exclusion counts and coverage.
    contributions : pandas.DataFrame
        :data:`CONTRIBUTION_COLUMNS`, long: per portfolio-day with a finite ``σ > 0``, 8 rows
        ``component_type = "factor"`` (component = factor name), 1 row ``"specific"``
        (component ``"specific"``) and up to ``top_k`` rows ``"position"`` (component =
        position_id, ``symbol`` set; ranked by ``|contribution|``). ``contribution`` in USD of
        daily σ, ``share = contribution / σ``. The factor and specific rows sum to ``σ``, and so
        do *all* position contributions (only the top ``top_k`` are stored).
    """
    keys, g, w = book.keys, book.group, book.w
    n_g, n = book.n_groups, len(w)
    k = len(FACTOR_NAMES)
    agg = sparse.csr_matrix((np.ones(n), (g, np.arange(n))), shape=(n_g, n))
    x = np.asarray(agg @ (w[:, None] * book.loadings), dtype=float).reshape(n_g, k)
    spec_var = np.bincount(g, weights=w * w * book.specific_variance, minlength=n_g).astype(float)
    # a portfolio-day without a covered position has no measured exposure: NaN, not 0
    none = np.bincount(g, minlength=n_g) == 0
    x[none] = np.nan
    spec_var[none] = np.nan

    sigma_x = np.full((n_g, k), np.nan)
    var_mm = np.full(n_g, np.nan)
    sigmas = factor_covariances(covariance_long, keys["date"])
    key_dates = keys["date"].to_numpy()
    for d, sig in sigmas.items():
        if sig is None:
            continue
        sel = key_dates == d.to_datetime64()
        sigma_x[sel] = x[sel] @ sig
        var_mm[sel] = sig[MARKET, MARKET]
    factor_var = np.einsum("gk,gk->g", x, sigma_x)
    total_var = factor_var + spec_var
    vol = np.sqrt(total_var)

    equity = keys["equity"].to_numpy(dtype=float)
    v = np.where(equity > 0, equity, np.nan)
    active = x.copy()
    active[:, MARKET] -= v
    sigma_a = sigma_x - v[:, None] * _market_column(sigmas, keys)  # Σ_f a = Σ_f x − V Σ_f e_market
    te_var = np.einsum("gk,gk->g", active, sigma_a) + spec_var
    te = np.sqrt(te_var)
    annual = math.sqrt(TRADING_DAYS_PER_YEAR)
    with np.errstate(divide="ignore", invalid="ignore"):
        risk = pd.DataFrame({
            "date": keys["date"].to_numpy(),
            "portfolio_id": keys["portfolio_id"].to_numpy(dtype=object),
            "equity": equity,
            "volatility_daily": vol,
            "factor_volatility_daily": np.sqrt(factor_var),
            "specific_volatility_daily": np.sqrt(spec_var),
            "volatility_annual": vol * annual,
            "volatility_daily_pct_equity": vol / v,
            "volatility_annual_pct_equity": vol * annual / v,
            "factor_share": factor_var / total_var,
            "beta_spy": sigma_x[:, MARKET] / var_mm / v,
            "tracking_error_daily": te,
            "tracking_error_annual_pct_equity": te * annual / v,
        })
    for col in EXCLUSION_COLUMNS:
        risk[col] = book.exclusions[col].to_numpy()
    risk = risk[RISK_COLUMNS]

    contributions = _contributions(book, x, sigma_x, spec_var, vol, top_k)
    return risk, contributions


def _market_column(sigmas: dict, keys: pd.DataFrame) -> np.ndarray:
    """``Σ_f[:, market]`` of each portfolio-day's date (NaN rows without a covariance)."""
    out = np.full((len(keys), len(FACTOR_NAMES)), np.nan)
    key_dates = keys["date"].to_numpy()
    for d, sig in sigmas.items():
        if sig is not None:
            out[key_dates == d.to_datetime64()] = sig[:, MARKET]
    return out


def _contributions(book: CoveredBook, x, sigma_x, spec_var, vol, top_k: int) -> pd.DataFrame:
    keys, g, w = book.keys, book.group, book.w
    k = len(FACTOR_NAMES)
    ok = np.isfinite(vol) & (vol > 0)
    gi = np.flatnonzero(ok)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor_c = x[gi] * sigma_x[gi] / vol[gi, None]
        spec_c = spec_var[gi] / vol[gi]
        # position i: w_i ((L Σ_f x)_i + w_i D_i) / σ, with (L Σ_f x)_i = L_i · (Σ_f x)_g(i)
        pos_c = w * (np.einsum("ik,ik->i", book.loadings, sigma_x[g]) + w * book.specific_variance) / vol[g]
    dates = keys["date"].to_numpy()
    pids = keys["portfolio_id"].to_numpy(dtype=object)
    m = gi.size
    parts = [{
        "date": np.repeat(dates[gi], k + 1),
        "portfolio_id": np.repeat(pids[gi], k + 1),
        "component_type": np.tile(np.array(["factor"] * k + ["specific"], dtype=object), m),
        "component": np.tile(np.array([*FACTOR_NAMES, "specific"], dtype=object), m),
        "symbol": np.full(m * (k + 1), None, dtype=object),
        "contribution": np.column_stack([factor_c, spec_c]).ravel(),
        "share": (np.column_stack([factor_c, spec_c]) / vol[gi, None]).ravel(),
    }]
    use = ok[g]
    if use.any():
        groups, idx = top_k_per_group(g[use], np.abs(pos_c[use])[:, None], top_k)
        rows = np.flatnonzero(use)[idx[:, 0, :][idx[:, 0, :] >= 0]]
        parts.append({
            "date": dates[g[rows]],
            "portfolio_id": pids[g[rows]],
            "component_type": np.full(rows.size, "position", dtype=object),
            "component": book.positions["position_id"].astype(str).to_numpy(dtype=object)[rows],
            "symbol": book.positions["symbol"].astype(str).to_numpy(dtype=object)[rows],
            "contribution": pos_c[rows],
            "share": pos_c[rows] / vol[g[rows]],
        })
    out = concat_columns(parts, CONTRIBUTION_COLUMNS)
    # one portfolio-day's rows together (in book.keys order): factors, specific, then its
    # positions by rank
    grp = np.concatenate([np.repeat(gi, k + 1), g[rows]]) if use.any() else np.repeat(gi, k + 1)
    order = np.lexsort((np.arange(len(out)), grp))
    return out.iloc[order].reset_index(drop=True)
