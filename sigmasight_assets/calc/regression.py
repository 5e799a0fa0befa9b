"""Rolling OLS and ridge regressions of symbol returns, solved for all symbols at once.

Conventions shared by every function here (see ``returns.py`` for the wide-frame contract):

* A window of ``window`` rows of the returns frame ends at and includes the partition day.
* Each symbol uses its own *complete cases*: the rows of the window where its return and every
  regressor are present. Nothing is filled. A symbol's result therefore depends only on its own
  column and the regressors, never on which other symbols are in the frame.
* Every (day, symbol) of the input produces either a result or a row in ``skipped`` with a reason
  ``"<code>: <detail>"``, so coverage can be counted; nothing is silently zero or dropped.

Days are looped over; symbols never are. Per day the symbol side costs a few element-wise passes
over the ``window x symbols`` block (each symbol's returns centred on its own complete-case mean,
two-pass), the regressor side a few matrix products of the 0/1 mask with the (common) regressors,
and the ridge one batched ``k x k`` solve -- milliseconds per day at 5,000 symbols. Results agree
with per-symbol statsmodels / scikit-learn fits to ~1e-13; the rare cases where the fast sums lose
digits (a regressor nearly constant over a symbol's rows, a near-perfect fit) are detected and
recomputed exactly. Batch independence holds to the last bits of BLAS summation (< 1e-12).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import stdtr

from .factors import BETA_CAP, BETA_MIN_OBS, BETA_WINDOW, RIDGE_ALPHA, STYLE_ETFS
from .frames import (
    aligned_regressors,
    aligned_returns,
    cap_values,
    concat_columns,
    trailing_rows,
    validate_window_params,
)
from .returns import day_positions

__all__ = [
    "RIDGE_FACTORS",
    "OLS_RESULT_COLUMNS",
    "RIDGE_RESULT_COLUMNS",
    "SKIPPED_COLUMNS",
    "OLSBlock",
    "RidgeBlock",
    "ols_block",
    "ridge_block",
    "insufficient_reason",
    "rolling_ols",
    "rolling_ridge",
]

#: the ridge style factors, in the order of ``factors.STYLE_ETFS`` (name the ETF columns with them)
RIDGE_FACTORS = tuple(STYLE_ETFS)

OLS_RESULT_COLUMNS = [
    "date", "symbol", "beta", "raw_beta", "capped", "intercept",
    "r_squared", "std_error", "p_value", "observations",
]
RIDGE_RESULT_COLUMNS = [
    "date", "symbol", "factor", "beta", "raw_beta", "capped", "r_squared", "observations", "ridge_penalty",
]
SKIPPED_COLUMNS = ["date", "symbol", "reason"]

# Status codes of a block solve.
OK = 0
INSUFFICIENT_HISTORY = 1
CONSTANT_REGRESSOR = 2

# A series counts as constant when its population std over the complete cases is below this
# fraction of its largest absolute value. Exact constants only leave float noise of order 1e-16
# after two-pass centring; real daily returns never move by less than 1e-10 of their size.
_CONSTANT_RTOL = 1e-10


def _is_constant(ss: np.ndarray, n: np.ndarray, maxabs: np.ndarray) -> np.ndarray:
    # ss is a centred sum of squares; compare the population variance with (rtol * scale)^2.
    return ss <= n * (_CONSTANT_RTOL * maxabs) ** 2


def insufficient_reason(n: int, min_obs: int) -> str:
    return f"insufficient_history: {n} < {min_obs} observations"


# ----------------------------------------------------------------------------------------------
# Univariate OLS core
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OLSBlock:
    """Per-symbol univariate OLS results for one window.

    Arrays have shape ``(n_symbols,)``, or ``(n_symbols, k)`` when ``k`` regressors were given.

    Entries whose ``status`` is not ``OK`` hold ``NaN`` statistics.
    """

    observations: np.ndarray
    raw_beta: np.ndarray
    alpha: np.ndarray
    r_squared: np.ndarray
    std_error: np.ndarray
    p_value: np.ndarray
    status: np.ndarray


def ols_block(y: np.ndarray, x: np.ndarray, min_obs: int = BETA_MIN_OBS,
              inference: bool = True) -> OLSBlock:
    """Univariate OLS with intercept of every column of ``y`` on ``x`` over complete cases.

    Model per column ``j``: ``y_tj = alpha_j + beta_j * x_t + e_tj`` fitted on the rows where
    both ``y_tj`` and ``x_t`` are finite (``n_j`` rows).

    * ``beta = Sxy / Sxx`` and ``alpha = mean(y) - beta * mean(x)`` with sums of centred
      products over the complete cases;
    * ``r_squared = 1 - SSR / Syy``;
    * ``std_error = sqrt(SSR / (n - 2) / Sxx)`` and ``p_value`` is the two-sided Student-t
      probability of ``beta / std_error`` with ``n - 2`` degrees of freedom -- exactly what
      ``statsmodels.OLS(y, add_constant(x)).fit()`` reports for the slope.

    Parameters
    ----------
    y : numpy.ndarray
        ``(window, n_symbols)`` returns, ``NaN`` = missing.
    x : numpy.ndarray
        ``(window,)`` regressor returns, or ``(window, k)`` for ``k`` separate univariate
        regressions on the same ``y`` (the symbol-side work is shared between regressors that are
        missing on the same rows).
    min_obs : int
        Minimum number of complete cases (at least 3: two parameters plus one residual dof).
    inference : bool, default True
        Compute ``std_error`` and ``p_value``; when False they are left ``NaN`` (saves the
        Student-t evaluation for callers that do not store them).

    Returns
    -------
    OLSBlock
        Arrays of shape ``(n_symbols,)`` (or ``(n_symbols, k)``) and status codes:

        * ``INSUFFICIENT_HISTORY`` when ``n < min_obs``;
        * ``CONSTANT_REGRESSOR`` when ``x`` has zero variance over the symbol's complete cases
          (the slope is not identified);
        * ``OK`` otherwise. A *constant symbol return* (e.g. a price that never moved) is a
          defined result, not a skip: the fitted slope is exactly ``0`` with no residual, so
          ``beta = 0``, ``alpha = mean(y)``, ``r_squared = 0`` (nothing to explain),
          ``std_error = 0`` and, by convention, ``p_value = 1`` (``t = 0/0`` read as "no
          evidence of a slope"). statsmodels would report ``NaN`` for r² and p there.
    """
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    single = x.ndim == 1
    xs = x[:, None] if single else x
    if y.ndim != 2 or xs.ndim != 2 or xs.shape[0] != y.shape[0]:
        raise ValueError(f"shape mismatch: y {y.shape}, x {x.shape}")
    n_sym, k = y.shape[1], xs.shape[1]

    fields = ("raw_beta", "alpha", "r_squared", "std_error", "p_value")
    out = {f: np.full((k, n_sym), np.nan) for f in fields}
    nobs = np.zeros((k, n_sym), dtype=np.int64)
    status = np.full((k, n_sym), OK, dtype=np.int8)

    finite_x = np.isfinite(xs)
    y_finite = np.isfinite(y)
    groups: dict[bytes, list[int]] = {}
    for j in range(k):
        groups.setdefault(finite_x[:, j].tobytes(), []).append(j)
    for cols in groups.values():
        rows = finite_x[:, cols[0]]
        if rows.all():
            part = _ols_group(y, y_finite, xs[:, cols], min_obs, inference)
        else:
            part = _ols_group(y[rows], y_finite[rows], xs[rows][:, cols], min_obs, inference)
        for f in fields:
            out[f][cols] = part[f]
        nobs[cols] = part["observations"]
        status[cols] = part["status"]

    def shape(a):
        return a[0] if single else a.T
    return OLSBlock(shape(nobs), *(shape(out[f]) for f in fields), shape(status))


def _constant_returns(y0: np.ndarray, syy: np.ndarray, n: np.ndarray, y_mean: np.ndarray) -> np.ndarray:
    """Flag columns whose masked values are all equal (``y0`` is zero outside the mask)."""
    # Only columns whose spread is already tiny relative to their mean can be constant; the exact
    # scale (max |y|) is then computed for those few columns alone.
    flat = np.zeros(syy.shape, dtype=bool)
    cand = np.flatnonzero(syy <= n * (1e-6 * np.abs(y_mean)) ** 2)
    if cand.size:
        scale = np.abs(y0[:, cand]).max(axis=0, initial=0.0)
        flat[cand] = _is_constant(syy[cand], n[cand], scale)
    return flat


def _ols_group(y: np.ndarray, y_finite: np.ndarray, x: np.ndarray, min_obs: int,
               inference: bool = True) -> dict:
    """OLS of every column of ``y`` on each column of a fully finite ``x`` (``(k, n_sym)`` out)."""
    w, k = x.shape
    mask = y_finite.astype(float)
    n_int = y_finite.sum(axis=0)
    n = n_int.astype(float)
    denom = np.maximum(n, 1.0)

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        y0 = np.where(y_finite, y, 0.0)
        y_mean = y0.sum(axis=0) / denom
        # Two-pass centring of y per symbol keeps Syy and Sxy free of cancellation error.
        yc = (y0 - y_mean) * mask
        syy = (yc * yc).sum(axis=0)
        y_flat = _constant_returns(y0, syy, n, y_mean)

        # x is common to all symbols: centre it once on its window mean, then the per-symbol
        # offset d (from the symbol's missing rows) is small and Sxx = S(u^2) - n d^2 keeps its
        # digits. These three sums are matrix-vector products over the mask.
        centre = x.mean(axis=0) if w else np.zeros(k)
        u = x - centre
        d = (u.T @ mask) / denom
        sxx = (u * u).T @ mask - n * d * d
        sxy = u.T @ yc
        x_mean = centre[:, None] + d
        x_scale = np.abs(x).max(axis=0, initial=0.0)[:, None]

        # Near-constant regressor over a symbol's rows: the subtraction above is only accurate
        # to ~1e-8 of the scale there, so redo those (rare) entries with an exact two-pass sum.
        for g, idx in _candidates(sxx <= n * (1e-6 * x_scale) ** 2):
            xc = (x[:, g:g + 1] - x_mean[g, idx]) * mask[:, idx]
            sxx[g, idx] = (xc * xc).sum(axis=0)
            sxy[g, idx] = (xc * yc[:, idx]).sum(axis=0)
        x_flat = _is_constant(sxx, n, x_scale)

        status = np.full((k, y.shape[1]), OK, dtype=np.int8)
        status[x_flat] = CONSTANT_REGRESSOR
        status[:, n_int < min_obs] = INSUFFICIENT_HISTORY
        ok = status == OK
        flat = ok & y_flat[None, :]

        beta = np.where(ok, sxy / np.where(ok, sxx, 1.0), np.nan)
        beta[flat] = 0.0
        ssr = np.maximum(syy - beta * sxy, 0.0)
        # SSR by difference loses relative accuracy as r^2 -> 1 (an ETF against SPY); recompute
        # those few from explicit residuals.
        for g, idx in _candidates(ok & ~flat & (ssr < 1e-3 * syy)):
            xc = (x[:, g:g + 1] - x_mean[g, idx]) * mask[:, idx]
            e = yc[:, idx] - beta[g, idx] * xc
            ssr[g, idx] = (e * e).sum(axis=0)

        dof = np.where(n_int > 2, n_int - 2, np.nan)
        alpha = y_mean - beta * x_mean
        r_squared = 1.0 - ssr / syy
        if inference:
            std_error = np.sqrt(ssr / dof / sxx)
            p_value = 2.0 * stdtr(dof, -np.abs(beta / std_error))  # two-sided: 2 · P(T_dof > |t|)
            std_error[flat] = 0.0
            p_value[flat] = 1.0
        else:
            std_error = np.full_like(beta, np.nan)
            p_value = np.full_like(beta, np.nan)

    r_squared[flat] = 0.0
    for arr in (alpha, r_squared, std_error, p_value):
        arr[~ok] = np.nan
    return {
        "observations": np.broadcast_to(n_int, (k, y.shape[1])),
        "raw_beta": beta,
        "alpha": alpha,
        "r_squared": r_squared,
        "std_error": std_error,
        "p_value": p_value,
        "status": status,
    }


def _candidates(flags: np.ndarray):
    """Yield ``(row, column indices)`` of the True entries of a 2-D flag array, row by row."""
    for g in np.flatnonzero(flags.any(axis=1)):
        yield g, np.flatnonzero(flags[g])


def ols_skip_reasons(status: np.ndarray, observations: np.ndarray, idx: np.ndarray, min_obs: int) -> np.ndarray:
    """Reason strings for the skipped entries ``idx`` of flat status/observation arrays."""
    reasons = [
        insufficient_reason(int(observations[i]), min_obs)
        if status[i] == INSUFFICIENT_HISTORY
        else f"constant_regressor: regressor has zero variance over {int(observations[i])} observations"
        for i in idx
    ]
    return np.asarray(reasons, dtype=object)


def rolling_ols(
    returns_wide: pd.DataFrame,
    regressor: pd.Series,
    days,
    window: int = BETA_WINDOW,
    min_obs: int = BETA_MIN_OBS,
    cap: float = BETA_CAP,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rolling univariate OLS beta of every symbol on one regressor (market or IR beta).

    For each day ``D`` in ``days`` and each symbol: OLS with intercept of ``r_symbol`` on
    ``r_regressor`` over the symbol's complete cases among the last ``window`` rows of
    ``returns_wide`` ending at and including ``D`` (see :func:`ols_block` for the formulas).

    Parameters
    ----------
    returns_wide : pandas.DataFrame
        Wide simple daily returns (sessions x symbols), decimal units, ``NaN`` = missing.
    regressor : pandas.Series
        Regressor returns (e.g. SPY for market beta, TLT for IR beta), aligned on
        ``returns_wide.index`` by date; sessions it lacks are missing.
    days : DatetimeIndex or iterable of dates
        Partition days; each must be a row of ``returns_wide``.
    window : int, default 90
        Window length in sessions (rows).
    min_obs : int, default 30
        Minimum complete cases; fewer is skipped as ``insufficient_history``.
    cap : float, default 5.0
        ``beta`` is ``raw_beta`` clipped to ``[-cap, cap]``; ``capped`` flags clipping. intercept,
        r_squared, std_error and p_value describe the unconstrained fit.

    Returns
    -------
    results : pandas.DataFrame
        Columns ``[date, symbol, beta, raw_beta, capped, intercept, r_squared, std_error, p_value,
        observations]``; one row per computed (day, symbol), ordered by date then column order.
        ``intercept`` is the fitted daily intercept α of ``r = α + β x`` (decimal return per day).
    skipped : pandas.DataFrame
        Columns ``[date, symbol, reason]``; reasons ``"insufficient_history: n < min
        observations"`` and ``"constant_regressor: ..."``. A constant symbol return is a defined
        result (beta 0), see :func:`ols_block`.
    """
    validate_window_params(window, min_obs, cap, least=3)
    values = aligned_returns(returns_wide)
    x = aligned_regressors(regressor, returns_wide.index, "regressor")
    if x.ndim != 1:
        raise ValueError("regressor must be a single series")
    days, positions = day_positions(returns_wide.index, days)
    symbols = np.asarray(returns_wide.columns, dtype=object)

    res_parts: list[dict[str, np.ndarray]] = []
    skip_parts: list[dict] = []
    for day, pos in zip(days, positions):
        block = ols_block(trailing_rows(values, pos, window), trailing_rows(x, pos, window), min_obs)
        ok = block.status == OK
        beta, capped = cap_values(block.raw_beta[ok], cap)
        res_parts.append({
            "date": np.full(ok.sum(), day.to_datetime64()),
            "symbol": symbols[ok],
            "beta": beta,
            "raw_beta": block.raw_beta[ok],
            "capped": capped,
            "intercept": block.alpha[ok],
            "r_squared": block.r_squared[ok],
            "std_error": block.std_error[ok],
            "p_value": block.p_value[ok],
            "observations": block.observations[ok],
        })
        bad = np.flatnonzero(~ok)
        if bad.size:
            skip_parts.append({
                "date": np.full(bad.size, day.to_datetime64()),
                "symbol": symbols[bad],
                "reason": ols_skip_reasons(block.status, block.observations, bad, min_obs),
            })
    return concat_columns(res_parts, OLS_RESULT_COLUMNS), concat_columns(skip_parts, SKIPPED_COLUMNS)


# ----------------------------------------------------------------------------------------------
# Ridge core
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RidgeBlock:
    """Per-symbol ridge results for one window.

    ``raw_beta`` has shape ``(n_symbols, n_factors)``; the other arrays ``(n_symbols,)``.
    ``constant_factor`` flags (symbol, factor) pairs whose regressor had zero variance over the
    symbol's complete cases (their beta is 0 by the StandardScaler convention). ``ssr`` is the
    residual sum of squares ``Σ (yc − Xc β)²`` of the fitted model (intercept included), in
    squared return units; ``constant_returns`` flags symbols whose return did not vary over
    their complete cases.
    """

    observations: np.ndarray
    raw_beta: np.ndarray
    r_squared: np.ndarray
    constant_factor: np.ndarray
    status: np.ndarray
    ssr: np.ndarray
    constant_returns: np.ndarray


def ridge_block(y: np.ndarray, x: np.ndarray, alpha: float = RIDGE_ALPHA,
                min_obs: int = BETA_MIN_OBS) -> RidgeBlock:
    """Ridge regression of every column of ``y`` on the columns of ``x``, standardised scale.

    Per symbol, on its complete cases (rows where its return and *all* regressors are finite):

    ``beta = (Xc' Xc + alpha * diag(sigma^2))^-1 Xc' yc``

    with ``Xc``, ``yc`` centred on the complete-case means and ``sigma^2`` the population
    (ddof = 0) variance of each regressor over the same cases. This is ``StandardScaler()`` +
    ``Ridge(alpha)`` (intercept fitted, not penalised, penalty on the standardised scale) with
    the coefficients mapped back to the original scale (``beta = w / sigma``).
    ``r_squared = 1 - SSR / SST`` of that model on the original scale.

    Parameters
    ----------
    y : numpy.ndarray
        ``(window, n_symbols)`` returns.
    x : numpy.ndarray
        ``(window, n_factors)`` regressor returns.
    alpha : float
        Ridge penalty on the standardised scale (> 0).
    min_obs : int
        Minimum complete cases.

    Returns
    -------
    RidgeBlock

    Notes
    -----
    All symbols are solved at once: the masked cross-product sums are matrix products over the
    window, then one batched ``k x k`` solve.

    Defined edge cases (never an error or a NaN in a computed result):

    * Perfectly collinear regressors: the penalty keeps the system positive definite; the shared
      exposure is split between the collinear factors exactly as sklearn does.
    * A regressor with zero variance over the symbol's cases: like ``StandardScaler`` (scale 1),
      its standardised column is 0 and its coefficient is ``0``; the other betas are those of the
      ridge without that factor. Flagged in ``constant_factor``.
    * A constant symbol return: all betas ``0`` and ``r_squared = 0`` (same convention as OLS).
    """
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    if y.ndim != 2 or x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"shape mismatch: y {y.shape}, x {x.shape}")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha!r}")
    n_sym, k = y.shape[1], x.shape[1]

    # Rows where any regressor is missing are unusable for every symbol; dropping them up front
    # leaves each symbol's mask down to its own missing returns.
    rows = np.isfinite(x).all(axis=1)
    if not rows.all():
        y, x = y[rows], x[rows]
    w = x.shape[0]
    y_finite = np.isfinite(y)
    mask = y_finite.astype(float)
    n_int = y_finite.sum(axis=0)
    n = n_int.astype(float)
    denom = np.maximum(n, 1.0)

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        y0 = np.where(y_finite, y, 0.0)
        y_mean = y0.sum(axis=0) / denom
        yc = (y0 - y_mean) * mask
        syy = (yc * yc).sum(axis=0)
        y_flat = _constant_returns(y0, syy, n, y_mean)

        # Centre the (common) regressors once on their window mean; the per-symbol offset d then
        # only reflects the symbol's own missing rows and is small, so the centred Gram matrix
        # G = S(u u') - n d d' keeps its digits.
        centre = x.mean(axis=0) if w else np.zeros(k)
        u = x - centre
        # Products are written (small x window) @ (window x symbols): that orientation is the
        # fast BLAS path; the transposed one was several times slower under thread contention.
        d = (u.T @ mask).T / denom[:, None]
        outer = (u[:, :, None] * u[:, None, :]).reshape(w, k * k)
        gram = (outer.T @ mask).T.reshape(n_sym, k, k) - n[:, None, None] * d[:, :, None] * d[:, None, :]
        gram = (gram + gram.transpose(0, 2, 1)) / 2.0
        cross = (u.T @ yc).T
        x_mean = centre[None, :] + d
        x_scale = np.abs(x).max(axis=0, initial=0.0)

        # A (near-)constant regressor over a symbol's rows: recompute its Gram row and cross
        # product exactly (two-pass) so the constancy test below sees exact zeros, not noise.
        for j, idx in _candidates((np.diagonal(gram, axis1=1, axis2=2) <= n[:, None] * (1e-6 * x_scale) ** 2).T):
            cols = _centred_columns(x, x_mean[idx], mask[:, idx])
            row = np.stack([(cols[j] * cols[b]).sum(axis=0) for b in range(k)], axis=1)
            gram[idx, j, :] = row
            gram[idx, :, j] = row
            cross[idx, j] = (cols[j] * yc[:, idx]).sum(axis=0)
        diag = np.diagonal(gram, axis1=1, axis2=2)
        const_factor = _is_constant(diag, n[:, None], x_scale[None, :])
        variance = diag / denom[:, None]

    status = np.where(n_int < min_obs, INSUFFICIENT_HISTORY, OK).astype(np.int8)
    ok = status == OK

    # Zero-variance regressors: drop their noise rows/columns and use a unit penalty weight, the
    # StandardScaler convention (scale_ = 1), so their coefficient is exactly 0.
    keep = (~const_factor).astype(float)
    gram = gram * keep[:, :, None] * keep[:, None, :]
    cross = cross * keep
    penalty = np.where(const_factor, 1.0, variance)
    system = gram + alpha * (penalty[:, :, None] * np.eye(k)[None, :, :])
    system[~ok] = np.eye(k)
    rhs = np.where(ok[:, None], cross, 0.0)
    beta = np.linalg.solve(system, rhs[:, :, None])[:, :, 0]
    beta[y_flat & ok] = 0.0

    with np.errstate(invalid="ignore", divide="ignore"):
        ssr = syy - 2.0 * (beta * cross).sum(axis=1) + np.einsum("ni,nij,nj->n", beta, gram, beta)
        ssr = np.maximum(ssr, 0.0)
        # The difference form loses relative accuracy for a near-perfect fit; redo those exactly.
        refit = np.flatnonzero(ok & ~y_flat & (ssr < 1e-3 * syy))
        if refit.size:
            cols = _centred_columns(x, x_mean[refit], mask[:, refit])
            e = yc[:, refit] - sum(cols[b] * beta[refit, b] for b in range(k))
            ssr[refit] = (e * e).sum(axis=0)
        r_squared = 1.0 - ssr / syy
    r_squared[y_flat] = 0.0
    ssr[y_flat] = 0.0
    beta[~ok] = np.nan
    r_squared[~ok] = np.nan
    ssr[~ok] = np.nan
    return RidgeBlock(n_int.astype(np.int64), beta, r_squared, const_factor & ok[:, None], status,
                      ssr=ssr, constant_returns=y_flat & ok)


def _centred_columns(x: np.ndarray, x_mean: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """Exact two-pass centred regressor columns ``(x_b - mean_b) * mask`` for some symbols."""
    return [(x[:, b:b + 1] - x_mean[:, b]) * mask for b in range(x.shape[1])]


def rolling_ridge(
    returns_wide: pd.DataFrame,
    regressors_wide: pd.DataFrame,
    days,
    window: int = BETA_WINDOW,
    min_obs: int = BETA_MIN_OBS,
    alpha: float = RIDGE_ALPHA,
    cap: float = BETA_CAP,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rolling ridge style-factor betas of every symbol (``ridge_factors``).

    For each day ``D`` and symbol: the ridge of :func:`ridge_block` over the symbol's complete
    cases (its return and all regressors present) among the last ``window`` rows ending at ``D``.

    Parameters
    ----------
    returns_wide : pandas.DataFrame
        Wide simple daily returns (sessions x symbols).
    regressors_wide : pandas.DataFrame
        Factor returns, one column per factor, named by factor (``value, growth, momentum,
        quality, size, low_volatility`` -- see ``factors.STYLE_ETFS``); aligned by date.
    days : DatetimeIndex or iterable of dates
        Partition days; each must be a row of ``returns_wide``.
    window : int, default 90
    min_obs : int, default 30
    alpha : float, default 1.0
        Ridge penalty on the standardised scale; reported in the ``ridge_penalty`` column.
    cap : float, default 5.0
        ``beta`` is ``raw_beta`` clipped to ``[-cap, cap]``.

    Returns
    -------
    results : pandas.DataFrame
        Columns ``[date, symbol, factor, beta, raw_beta, capped, r_squared, observations,
        ridge_penalty]``; one row per (day, symbol, factor), ordered date, symbol, factor.
        ``r_squared`` is the model r² (same on each factor row of a symbol); ``ridge_penalty`` is
        the penalty ``alpha`` the fit used.
    skipped : pandas.DataFrame
        Columns ``[date, symbol, reason]``: ``"insufficient_history: n < min observations"``.
        Zero-variance regressors and constant symbol returns are defined results (beta 0),
        see :func:`ridge_block`.
    """
    validate_window_params(window, min_obs, cap, least=2)
    values = aligned_returns(returns_wide)
    if not isinstance(regressors_wide, pd.DataFrame) or regressors_wide.shape[1] == 0:
        raise ValueError("regressors_wide must be a DataFrame with at least one factor column")
    x = aligned_regressors(regressors_wide, returns_wide.index, "regressors_wide")
    factors = np.asarray([str(c) for c in regressors_wide.columns], dtype=object)
    days, positions = day_positions(returns_wide.index, days)
    symbols = np.asarray(returns_wide.columns, dtype=object)
    k = len(factors)

    res_parts: list[dict] = []
    skip_parts: list[dict] = []
    for day, pos in zip(days, positions):
        block = ridge_block(trailing_rows(values, pos, window), trailing_rows(x, pos, window), alpha, min_obs)
        ok = np.flatnonzero(block.status == OK)
        raw = block.raw_beta[ok].ravel()
        beta, capped = cap_values(raw, cap)
        m = ok.size
        res_parts.append({
            "date": np.full(m * k, day.to_datetime64()),
            "symbol": np.repeat(symbols[ok], k),
            "factor": np.tile(factors, m),
            "beta": beta,
            "raw_beta": raw,
            "capped": capped,
            "r_squared": np.repeat(block.r_squared[ok], k),
            "observations": np.repeat(block.observations[ok], k),
            "ridge_penalty": np.full(m * k, float(alpha)),
        })
        bad = np.flatnonzero(block.status != OK)
        if bad.size:
            skip_parts.append({
                "date": np.full(bad.size, day.to_datetime64()),
                "symbol": symbols[bad],
                "reason": np.asarray(
                    [insufficient_reason(int(block.observations[i]), min_obs) for i in bad],
                    dtype=object,
                ),
            })
    return concat_columns(res_parts, RIDGE_RESULT_COLUMNS), concat_columns(skip_parts, SKIPPED_COLUMNS)
