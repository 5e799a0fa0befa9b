"""The joint factor model (``factor_model``): one ridge regression per symbol and day on 8 factors.

The basis
---------
Eight factors, each a linear combination of the eight factor ETF returns (``FACTOR_ETFS`` order
``SPY, TLT, VTV, VUG, MTUM, QUAL, IWM, USMV``)::

    f = A · r_ETF
    f = (SPY, TLT, VTV−SPY, VUG−SPY, MTUM−SPY, QUAL−SPY, IWM−SPY, USMV−SPY)
      = (market, rates, value_excess, growth_excess, momentum_excess, quality_excess,
         size_excess, low_volatility_excess)                           (:data:`FACTOR_NAMES`)

``A`` (:func:`basis_matrix`) is invertible, so a move of the ETFs and a move of the factors carry
the same information; the style factors are the ETFs' returns *in excess of the market*, so the
market move enters a symbol's return through its ``market`` loading only and is counted once. The
factor covariance in this basis is ``Σ_f = A Σ_ETF Aᵀ`` (:func:`factor_covariance_in_basis`), and
SPY's return is exactly ``f_market``.

The regression
--------------
For each symbol and day ``D``: ``r_t = c + Σ_k L_k f_k,t + e_t`` over the symbol's complete cases
(its return and all eight factors present) among the last ``window`` (90) returns ending at and
including ``D``; at least ``min_obs`` (60) cases. Ridge with the house convention of
:func:`~sigmasight_assets.calc.regression.ridge_block` (regressors standardised with the
population sd over the complete cases, intercept fitted and not penalised, ``alpha`` = 1 on the
standardised scale, loadings mapped back): ``L = (XcᵀXc + α·diag(σ²))⁻¹ Xcᵀ yc``. All symbols of a
day are solved at once; a symbol's result depends only on its own column and the factors.

Stored per symbol-day: the 8 loadings (decimal return per unit factor return, **not capped**:
DESIGN sets no cap for these and the ridge penalty already bounds them; a cap would make the
stress and risk numbers disagree with the fitted model), ``specific_variance = SSR / (n − 9)``
(daily squared decimal return; 9 = 8 loadings + intercept; SSR of the fitted ridge model, its
intercept included), ``r_squared = 1 − SSR / SST`` (SST the centred total sum of squares) and
``observations = n``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sigmasight_assets.calc.exposures import beta_matrix
from sigmasight_assets.calc.factors import FACTOR_ETFS, MARKET_ETF, RATES_ETF
from sigmasight_assets.calc.frames import aligned_regressors, aligned_returns, concat_columns, trailing_rows, validate_window_params
from sigmasight_assets.calc.regression import (
    OK,
    RIDGE_ALPHA,
    SKIPPED_COLUMNS,
    insufficient_reason,
    ridge_block,
)
from sigmasight_assets.calc.returns import check_wide_frame, day_positions

__all__ = [
    "FACTOR_NAMES",
    "FACTOR_MODEL_WINDOW",
    "FACTOR_MODEL_MIN_OBSERVATIONS",
    "FACTOR_MODEL_COLUMNS",
    "FACTOR_MODEL_STAT_COLUMNS",
    "SKIPPED_COLUMNS",
    "basis_matrix",
    "factor_returns",
    "factor_covariance_in_basis",
    "rolling_factor_model",
    "factor_model_wide",
    "position_loadings",
]

FACTOR_NAMES: tuple[str, ...] = (
    "market", "rates", "value_excess", "growth_excess", "momentum_excess", "quality_excess",
    "size_excess", "low_volatility_excess",
)
FACTOR_MODEL_WINDOW = 90
FACTOR_MODEL_MIN_OBSERVATIONS = 60
#: Per symbol-day statistics, repeated on each of its factor rows in the long frame.
FACTOR_MODEL_STAT_COLUMNS = ["specific_variance", "r_squared", "observations"]
FACTOR_MODEL_COLUMNS = ["date", "symbol", "factor", "beta", *FACTOR_MODEL_STAT_COLUMNS]

# Loadings plus the intercept: the residual degrees of freedom are n − _PARAMETERS.
_PARAMETERS = len(FACTOR_NAMES) + 1


def basis_matrix() -> np.ndarray:
    """The map ``A`` from ETF returns to factor returns, ``f = A · r_ETF``.

    Returns
    -------
    numpy.ndarray
        ``(8, 8)``; rows in :data:`FACTOR_NAMES` order, columns in ``FACTOR_ETFS`` order. Row
        ``market`` picks SPY, row ``rates`` picks TLT, each style row is ``+1`` on its ETF and
        ``−1`` on SPY. A fresh array on every call (callers may modify it).
    """
    k = len(FACTOR_ETFS)
    a = np.eye(k)
    spy = FACTOR_ETFS.index(MARKET_ETF)
    rates = FACTOR_ETFS.index(RATES_ETF)
    for j in range(k):
        if j not in (spy, rates):
            a[j, spy] = -1.0
    return a


def factor_returns(etf_returns_wide: pd.DataFrame) -> pd.DataFrame:
    """Daily factor returns in the model's basis, ``f_t = A · r_ETF,t``.

    Parameters
    ----------
    etf_returns_wide : pandas.DataFrame
        Wide simple daily returns (sessions × tickers, decimal) with at least the
        ``FACTOR_ETFS`` columns (others ignored).

    Returns
    -------
    pandas.DataFrame
        Same index, columns :data:`FACTOR_NAMES`. NaN policy: a factor is missing on a session
        when an ETF it uses is missing (``value_excess`` needs VTV and SPY; ``rates`` only TLT);
        nothing is filled.
    """
    check_wide_frame(etf_returns_wide, "etf_returns_wide")
    missing = [t for t in FACTOR_ETFS if t not in etf_returns_wide.columns]
    if missing:
        raise KeyError(f"etf_returns_wide lacks the factor ETF columns {missing}")
    r = etf_returns_wide.loc[:, list(FACTOR_ETFS)].to_numpy(dtype=float, na_value=np.nan)
    a = basis_matrix()
    out = np.empty_like(r)
    for j in range(a.shape[0]):
        used = np.flatnonzero(a[j])  # only the ETFs a factor uses may make it missing
        out[:, j] = r[:, used] @ a[j, used]
    return pd.DataFrame(out, index=etf_returns_wide.index, columns=list(FACTOR_NAMES))


def factor_covariance_in_basis(cov_etf):
    """Factor covariance in the model's basis, ``Σ_f = A Σ_ETF Aᵀ``.

    Parameters
    ----------
    cov_etf : pandas.DataFrame or numpy.ndarray
        The day's ETF covariance of daily decimal returns: a labelled frame (as returned by
        ``covariance.covariance_matrix`` or ``covariance.covariance_by_date``; reordered to
        ``FACTOR_ETFS``) or an array of shape ``(..., 8, 8)`` already in ``FACTOR_ETFS`` order.

    Returns
    -------
    pandas.DataFrame or numpy.ndarray
        A frame labelled :data:`FACTOR_NAMES` for a frame input, an array of the input's shape
        otherwise. NaN entries of ``Σ_ETF`` propagate to every factor entry that uses them.
    """
    a = basis_matrix()
    if isinstance(cov_etf, pd.DataFrame):
        missing = [t for t in FACTOR_ETFS if t not in cov_etf.index or t not in cov_etf.columns]
        if missing:
            raise KeyError(f"cov_etf lacks the factor ETFs {missing}")
        s = cov_etf.loc[list(FACTOR_ETFS), list(FACTOR_ETFS)].to_numpy(dtype=float)
        return pd.DataFrame(a @ s @ a.T, index=list(FACTOR_NAMES), columns=list(FACTOR_NAMES))
    s = np.asarray(cov_etf, dtype=float)
    if s.shape[-2:] != (len(FACTOR_ETFS), len(FACTOR_ETFS)):
        raise ValueError(f"cov_etf must be (..., 8, 8) in FACTOR_ETFS order, got shape {s.shape}")
    return a @ s @ a.T


def rolling_factor_model(
    returns_wide: pd.DataFrame,
    factors_wide: pd.DataFrame,
    days,
    window: int = FACTOR_MODEL_WINDOW,
    min_obs: int = FACTOR_MODEL_MIN_OBSERVATIONS,
    alpha: float = RIDGE_ALPHA,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Joint ridge loadings of every symbol on the 8 factors, as of each day.

    For each day ``D`` in ``days`` and each column of ``returns_wide``: the ridge of the module
    docstring over the symbol's complete cases among the last ``window`` rows ending at ``D``
    (the ridge and its edge cases are :func:`~sigmasight_assets.calc.regression.ridge_block`).

    Parameters
    ----------
    returns_wide : pandas.DataFrame
        Wide simple daily total returns (sessions × symbols, decimal), ``NaN`` = missing.
    factors_wide : pandas.DataFrame
        Factor returns with columns :data:`FACTOR_NAMES` (from :func:`factor_returns`), aligned
        on ``returns_wide.index`` by date; a session it lacks is missing.
    days : DatetimeIndex or iterable of dates
        Partition days; each must be a row of ``returns_wide``.
    window : int, default 90
        Window length in sessions (rows of ``returns_wide``).
    min_obs : int, default 60
        Minimum complete cases; at least 10 (9 parameters plus one residual degree of freedom).
    alpha : float, default 1.0
        Ridge penalty on the standardised scale.

    Returns
    -------
    results : pandas.DataFrame
        Long, :data:`FACTOR_MODEL_COLUMNS` = ``[date, symbol, factor, beta, specific_variance,
        r_squared, observations]``: one row per computed (day, symbol, factor), ordered by date,
        symbol (column order), factor (:data:`FACTOR_NAMES` order); ``specific_variance``,
        ``r_squared`` and ``observations`` are per symbol-day and repeated on its 8 rows (the
        ``factor_model`` table; :func:`factor_model_wide` gives one row per symbol-day).
    skipped : pandas.DataFrame
        ``[date, symbol, reason]`` for every (day, symbol) without a result:

        * ``"insufficient_history: n < min_obs observations"`` (a symbol absent that day counts
          as 0 observations);
        * ``"constant_returns: ..."`` -- the return did not vary over its complete cases (a
          stale or halted price). The ridge would give all loadings 0 and specific variance 0,
          which risk would read as a riskless position; that is not a measurement, so it is
          skipped and the position is reported as lacking loadings.

        A factor with zero variance over the window is not a skip: its loading is 0 by the
        StandardScaler convention and the others are the ridge without it.
    """
    validate_window_params(window, min_obs, np.inf, least=_PARAMETERS + 1)
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha!r}")
    values = aligned_returns(returns_wide)
    if not isinstance(factors_wide, pd.DataFrame) or set(factors_wide.columns) != set(FACTOR_NAMES):
        got = list(getattr(factors_wide, "columns", []))
        raise ValueError(f"factors_wide must have exactly the columns {list(FACTOR_NAMES)}, got {got}")
    x = aligned_regressors(factors_wide.loc[:, list(FACTOR_NAMES)], returns_wide.index, "factors_wide")
    days, positions = day_positions(returns_wide.index, days)
    symbols = np.asarray(returns_wide.columns, dtype=object)
    k = len(FACTOR_NAMES)
    factors = np.asarray(FACTOR_NAMES, dtype=object)

    res_parts: list[dict] = []
    skip_parts: list[dict] = []
    for day, pos in zip(days, positions):
        block = ridge_block(trailing_rows(values, pos, window), trailing_rows(x, pos, window), alpha, min_obs)
        good = (block.status == OK) & ~block.constant_returns
        ok = np.flatnonzero(good)
        m = ok.size
        n = block.observations[ok]
        res_parts.append({
            "date": np.full(m * k, day.to_datetime64()),
            "symbol": np.repeat(symbols[ok], k),
            "factor": np.tile(factors, m),
            "beta": block.raw_beta[ok].ravel(),
            "specific_variance": np.repeat(block.ssr[ok] / (n - _PARAMETERS), k),
            "r_squared": np.repeat(block.r_squared[ok], k),
            "observations": np.repeat(n, k),
        })
        bad = np.flatnonzero(~good)
        if bad.size:
            reasons = np.asarray([
                insufficient_reason(int(block.observations[i]), min_obs) if block.status[i] != OK
                else f"constant_returns: return did not vary over {int(block.observations[i])} observations"
                for i in bad
            ], dtype=object)
            skip_parts.append({
                "date": np.full(bad.size, day.to_datetime64()),
                "symbol": symbols[bad],
                "reason": reasons,
            })
    return concat_columns(res_parts, FACTOR_MODEL_COLUMNS), concat_columns(skip_parts, SKIPPED_COLUMNS)


def factor_model_wide(factor_model: pd.DataFrame) -> pd.DataFrame:
    """One row per symbol-day: the 8 loadings and the per-symbol statistics.

    Parameters
    ----------
    factor_model : pandas.DataFrame
        Long rows ``[date?, symbol, factor, beta, specific_variance, ...]`` (the output of
        :func:`rolling_factor_model` or the ``factor_model`` table; without ``date`` the rows are
        one day's). Factors outside :data:`FACTOR_NAMES` are ignored.

    Returns
    -------
    pandas.DataFrame
        Index ``[date, symbol]`` (or ``symbol``), columns :data:`FACTOR_NAMES` then
        ``specific_variance`` (and ``r_squared``, ``observations`` when present). A loading
        absent from the long frame or not finite is NaN: that symbol-day has no usable model.

    Raises
    ------
    ValueError
        Duplicate (date, symbol, factor) rows (never silently averaged).
    """
    keys = ["date", "symbol"] if "date" in factor_model.columns else ["symbol"]
    stats_cols = [c for c in FACTOR_MODEL_STAT_COLUMNS if c in factor_model.columns]
    if "specific_variance" not in stats_cols:
        raise KeyError("factor_model lacks the specific_variance column")
    wide = beta_matrix(factor_model, FACTOR_NAMES)  # NaN for non-finite, duplicates raise
    wide.columns.name = None
    fm = factor_model.loc[factor_model["factor"].isin(list(FACTOR_NAMES)), keys + stats_cols].copy()
    if "date" in keys:
        fm["date"] = pd.to_datetime(fm["date"]).dt.normalize()
    stats = fm.groupby(keys, sort=False)[stats_cols].first()
    return wide.join(stats)


def position_loadings(position_values: pd.DataFrame, factor_model: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Loadings and specific variance of each position's symbol on the position's date.

    Parameters
    ----------
    position_values : pandas.DataFrame
        Rows with ``symbol`` (and ``date`` when ``factor_model`` has dates).
    factor_model : pandas.DataFrame
        Long factor-model rows (see :func:`factor_model_wide`).

    Returns
    -------
    loadings : numpy.ndarray
        ``(n, 8)`` in :data:`FACTOR_NAMES` order.
    specific_variance : numpy.ndarray
        ``(n,)`` daily squared decimal return.

    A symbol-day without a model (or with any non-finite loading or specific variance) gets a
    whole row of NaN: the model is used complete or not at all, never partly filled.
    """
    n = len(position_values)
    if n == 0:
        return np.empty((0, len(FACTOR_NAMES))), np.empty(0)
    wide = factor_model_wide(factor_model)
    if wide.index.nlevels == 2:
        key = pd.MultiIndex.from_arrays([pd.to_datetime(position_values["date"]).dt.normalize(),
                                         position_values["symbol"].astype(str)])
    else:
        key = pd.Index(position_values["symbol"].astype(str))
    loc = wide.index.get_indexer(key)
    vals = wide.loc[:, [*FACTOR_NAMES, "specific_variance"]].to_numpy(dtype=float)
    vals = np.vstack([vals, np.full((1, vals.shape[1]), np.nan)])[np.where(loc >= 0, loc, len(wide))]
    vals[~np.isfinite(vals).all(axis=1)] = np.nan
    return vals[:, :-1], vals[:, -1]
