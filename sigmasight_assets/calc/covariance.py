"""EWMA covariance and correlation of the factor ETF returns (``factor_covariance``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .factors import COV_CLIP, COV_LAMBDA, COV_MIN_OBS, COV_WINDOW, FACTOR_ETFS
from .frames import concat_columns
from .psd import repair_psd
from .returns import check_wide_frame, day_positions

__all__ = [
    "COVARIANCE_COLUMNS",
    "ewma_factor_covariance",
    "covariance_matrix",
    "covariance_by_date",
    "usable_covariance",
]

COVARIANCE_COLUMNS = ["date", "factor_1", "factor_2", "covariance", "correlation", "observations"]

# Tolerance below which a negative eigenvalue is float noise rather than a broken matrix.
_PSD_TOL = 1e-12


def _ewma_day(block: np.ndarray, ages: np.ndarray, lam: float, clip: float):
    weights = lam ** ages
    weights = weights / weights.sum()
    mean = weights @ block
    centred = block - mean
    cov = (centred * weights[:, None]).T @ centred
    cov = (cov + cov.T) / 2.0
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    outer = np.outer(sd, sd)
    k = len(sd)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(outer > 0, cov / outer, 0.0)
    # A factor that did not move has no defined correlation; 0 keeps the matrix PSD and makes
    # cov = corr * sd_i * sd_j = 0, which is its true covariance.
    np.fill_diagonal(corr, 1.0)
    eye = np.eye(k, dtype=bool)
    clipped = np.where(eye, 1.0, np.clip(corr, -clip, clip))
    if np.any(clipped != corr) and np.linalg.eigvalsh(clipped).min() < -_PSD_TOL:
        clipped = repair_psd(clipped, psd_tol=_PSD_TOL, clip=clip)[0]
    return clipped * outer, clipped


def ewma_factor_covariance(
    etf_returns_wide: pd.DataFrame,
    days,
    window: int = COV_WINDOW,
    lam: float = COV_LAMBDA,
    min_obs: int = COV_MIN_OBS,
    clip: float = COV_CLIP,
) -> pd.DataFrame:
    """EWMA covariance and correlation of the eight factor ETFs as of each day.

    For day ``D``: take the last ``window`` rows of returns ending at and including ``D``, keep
    the rows where *all* eight ETFs have a return (a common sample keeps the matrix a true
    covariance, hence PSD), and weight row ``t`` by ``lam ** age_t`` with ``age_t`` the number of
    sessions between ``t`` and ``D`` (0 for ``D``; a dropped row leaves its age unused rather
    than promoting older rows), normalised to sum to 1:

    * ``mu = sum_t w_t r_t`` (EWMA mean; returns are demeaned with it -- with 252 sessions and
      ``lam = 0.94`` the effective sample is short, so a non-zero drift would otherwise leak into
      the variance);
    * ``Sigma = sum_t w_t (r_t - mu)(r_t - mu)'`` (no small-sample bias correction);
    * ``rho_ij = Sigma_ij / (sigma_i sigma_j)``, off-diagonals clipped to ``[-clip, clip]``; the
      covariance is rebuilt as ``rho_ij sigma_i sigma_j`` so both agree, and if clipping broke
      positive semi-definiteness the correlation is repaired with :func:`.psd.repair_psd`
      (eigenvalue clipping, then a shrink towards the identity if that pushed a correlation past
      ``clip``).
      Variances (the diagonal) are never altered. A zero-variance ETF gets correlation 0 with
      the others.

    Units: covariance of daily decimal returns (not annualised); correlation unitless.

    Parameters
    ----------
    etf_returns_wide : pandas.DataFrame
        Wide simple daily returns with at least the columns of ``FACTOR_ETFS`` (others ignored).
    days : DatetimeIndex or iterable of dates
        Partition days; each must be a row of ``etf_returns_wide``.
    window : int, default 252
    lam : float, default 0.94
        Decay per session, in ``(0, 1]``.
    min_obs : int, default 30
        Days with fewer complete rows in the window produce no rows at all.
    clip : float, default 0.95

    Returns
    -------
    pandas.DataFrame
        Columns ``[date, factor_1, factor_2, covariance, correlation, observations]``: the full
        matrix in both orders, 64 rows per computed day, ``factor_*`` being ETF tickers in
        ``FACTOR_ETFS`` order.
    """
    check_wide_frame(etf_returns_wide, "etf_returns_wide")
    missing = [t for t in FACTOR_ETFS if t not in etf_returns_wide.columns]
    if missing:
        raise KeyError(f"etf_returns_wide lacks the factor ETF columns {missing}")
    if not (0.0 < lam <= 1.0):
        raise ValueError(f"lam must be in (0, 1], got {lam!r}")
    if not (0.0 < clip <= 1.0):
        raise ValueError(f"clip must be in (0, 1], got {clip!r}")
    if window < 1 or min_obs < 2:
        raise ValueError("window must be >= 1 and min_obs >= 2")

    values = etf_returns_wide.loc[:, list(FACTOR_ETFS)].to_numpy(dtype=float, na_value=np.nan)
    days, positions = day_positions(etf_returns_wide.index, days)
    k = len(FACTOR_ETFS)
    f1 = np.repeat(np.asarray(FACTOR_ETFS, dtype=object), k)
    f2 = np.tile(np.asarray(FACTOR_ETFS, dtype=object), k)

    parts = []
    for day, pos in zip(days, positions):
        lo = max(0, pos - window + 1)
        block = values[lo: pos + 1]
        complete = np.isfinite(block).all(axis=1)
        n = int(complete.sum())
        if n < min_obs:
            continue
        ages = (pos - np.arange(lo, pos + 1))[complete].astype(float)
        cov, corr = _ewma_day(block[complete], ages, lam, clip)
        parts.append({
            "date": np.full(k * k, day.to_datetime64()),
            "factor_1": f1,
            "factor_2": f2,
            "covariance": cov.ravel(),
            "correlation": corr.ravel(),
            "observations": np.full(k * k, n, dtype=np.int64),
        })
    return concat_columns(parts, COVARIANCE_COLUMNS)


def covariance_matrix(long_frame: pd.DataFrame, day, value: str = "covariance") -> pd.DataFrame:
    """Pivot one day of :func:`ewma_factor_covariance` output to a square matrix.

    Parameters
    ----------
    long_frame : pandas.DataFrame
        Long covariance rows (``date, factor_1, factor_2, covariance, correlation, ...``).
    day : date-like
        The day to extract.
    value : {"covariance", "correlation"}
        Which value to pivot.

    Returns
    -------
    pandas.DataFrame
        ``(k, k)`` matrix, index ``factor_1``, columns ``factor_2``, ordered as ``FACTOR_ETFS``
        (factors outside that list follow alphabetically).

    Raises
    ------
    KeyError
        If the frame has no rows for ``day`` (e.g. fewer than ``min_obs`` observations).
    """
    if value not in ("covariance", "correlation"):
        raise ValueError("value must be 'covariance' or 'correlation'")
    day = pd.Timestamp(day)
    rows = long_frame[pd.to_datetime(long_frame["date"]) == day]
    if rows.empty:
        raise KeyError(f"no factor covariance rows for {day.date().isoformat()}")
    matrix = rows.pivot(index="factor_1", columns="factor_2", values=value)
    present = set(matrix.index) | set(matrix.columns)
    order = [f for f in FACTOR_ETFS if f in present] + sorted(present - set(FACTOR_ETFS))
    matrix = matrix.reindex(index=order, columns=order)
    matrix.index.name = None
    matrix.columns.name = None
    return matrix


def covariance_by_date(covariance_long: pd.DataFrame) -> dict[pd.Timestamp | None, pd.DataFrame]:
    """Pivot long ``[date?, factor_1, factor_2, covariance]`` to one labelled 8×8 per date.

    Without a ``date`` column the single matrix is keyed ``None`` (applies to every date).
    A matrix missing an ETF or with non-finite values is kept as is; callers check with
    :func:`usable_covariance`.
    """
    if covariance_long is None or len(covariance_long) == 0:
        return {}
    cl = covariance_long.copy()
    out: dict = {}
    if "date" in cl.columns:
        cl["date"] = pd.to_datetime(cl["date"]).dt.normalize()
        groups = cl.groupby("date", sort=True)
    else:
        groups = [(None, cl)]
    for d, grp in groups:
        m = grp.pivot_table(index="factor_1", columns="factor_2", values="covariance", aggfunc="first")
        out[d] = m.reindex(index=list(FACTOR_ETFS), columns=list(FACTOR_ETFS)).astype(float)
    return out


def usable_covariance(cov: pd.DataFrame | None) -> bool:
    """True when ``cov`` is a matrix with every entry finite (a day's complete 8×8)."""
    return cov is not None and bool(np.isfinite(cov.to_numpy()).all())
