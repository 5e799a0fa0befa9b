"""Repair of correlation matrices to positive semi-definite (the one implementation).

Used by the portfolio correlation matrices (pairwise deletion can make them indefinite) and by the
factor covariance (clipping correlations to ±0.95 can).
"""

from __future__ import annotations

import numpy as np

__all__ = ["repair_psd"]


def repair_psd(corr: np.ndarray, psd_tol: float = 1e-10, clip: float | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest-by-eigenvalue-clipping correlation matrix for one matrix or a stack of them.

    Method, per matrix ``C`` (symmetrised, NaN entries treated as 0 = uncorrelated, unit diagonal):
    when its smallest eigenvalue is below ``−psd_tol``, ``C ← V diag(max(λ, 0)) Vᵀ`` and then
    ``C ← D^{-1/2} C D^{-1/2}`` (unit diagonal again, still PSD). With ``clip``, a repaired matrix
    whose largest ``|off-diagonal|`` went past ``clip`` is shrunk towards the identity,
    ``(1 − s) C + s I`` with the smallest ``s`` that restores the bound (a convex combination of
    PSD unit-diagonal matrices is PSD with unit diagonal). A matrix that needs no repair is
    returned as given (after the NaN → 0 and symmetrisation).

    Parameters
    ----------
    corr : ndarray, shape (..., n, n)
        Symmetric matrices with unit diagonal; NaN entries are treated as 0.
    psd_tol : float
        Repair only when the smallest eigenvalue is below ``−psd_tol`` (rounding noise of a valid
        matrix is not a defect).
    clip : float, optional
        Bound in ``(0, 1]`` on ``|off-diagonal|`` kept by a repair.

    Returns
    -------
    repaired : ndarray, shape (..., n, n)
    min_eigenvalue : ndarray, shape (...)
        Smallest eigenvalue before repair.
    was_repaired : ndarray of bool, shape (...)
    """
    a = np.where(np.isnan(corr), 0.0, np.asarray(corr, dtype=float))
    n = a.shape[-1]
    a = 0.5 * (a + np.swapaxes(a, -1, -2))
    idx = np.arange(n)
    a[..., idx, idx] = 1.0
    # Eigenvalues alone for every matrix (the usual case needs no repair), vectors only for those
    # that do: ~2.5× less work than a full decomposition of the whole stack.
    lam = np.linalg.eigvalsh(a)
    min_eig = lam[..., 0]
    need = min_eig < -psd_tol
    out = a.copy()
    if need.any():
        lam_n, v = np.linalg.eigh(a[need])
        lam_c = np.clip(lam_n, 0.0, None)
        rec = (v * lam_c[..., None, :]) @ np.swapaxes(v, -1, -2)
        d = np.sqrt(np.clip(np.diagonal(rec, axis1=-2, axis2=-1), np.finfo(float).tiny, None))
        rec = rec / d[..., :, None] / d[..., None, :]
        rec = 0.5 * (rec + np.swapaxes(rec, -1, -2))
        rec[..., idx, idx] = 1.0
        if clip is not None:
            off = np.abs(rec - np.eye(n)).max(axis=(-2, -1), initial=0.0)
            s = np.where(off > clip, 1.0 - clip / np.where(off > 0, off, 1.0), 0.0)
            rec = (1.0 - s)[..., None, None] * rec + s[..., None, None] * np.eye(n)
            rec[..., idx, idx] = 1.0
        out[need] = rec
    return out, min_eig, need
