"""Per-portfolio correlation matrices of holdings with summary metrics (pure, vectorised).

Method (per day ``D``)
----------------------
1. **Holdings.** Priced ``PUBLIC`` positions of the portfolio, netted per symbol (lots of one symbol
   are one row of the matrix), kept when ``|MV| ≥ min_value`` (USD 10,000) and
   ``|MV| / gross ≥ min_weight`` (1 %), ``gross`` being the portfolio's gross exposure over all its
   priced positions (the snapshot's ``gross_exposure``). Symbols are ordered alphabetically.
2. **Window.** The last ``window`` (90) rows of ``log_returns_wide`` ending at ``D`` inclusive (no
   look-ahead; fewer rows when the frame starts later — the overlap rule then decides).
3. **Pairwise Pearson** on pairwise complete cases: each pair uses only the days on which both
   returns exist; fewer than ``min_overlap`` (30) such days, or a constant series on them, gives
   NaN for that pair (counted in ``n_pairs_insufficient``). This equals
   ``DataFrame.corr(min_periods=30)``. The matrix of the *union* of all portfolios' symbols is
   computed once per day with masked matrix products (:func:`pairwise_correlation`) and sliced per
   portfolio, so a symbol pair shared by many portfolios is computed once.
4. **PSD repair.** Pairwise deletion (and NaN pairs) can make the matrix indefinite. For the
   eigen-analysis insufficient pairs are set to 0 (treated as uncorrelated). If the smallest
   eigenvalue is below ``−psd_tol`` the matrix is repaired: negative eigenvalues clipped to 0,
   reconstructed, rescaled to unit diagonal ``R ← D^{-1/2} R D^{-1/2}`` (``psd_repaired`` true).
   ``min_eigenvalue`` is the smallest eigenvalue *before* repair.
5. **Stored matrix** (``matrix``): JSON list of the strict upper triangle in row-major order
   (``(0,1), (0,2), …, (1,2), …``), rounded to 6 dp, the repaired values where a repair happened,
   ``null`` for insufficient pairs (a value invented by the repair is not shown as an estimate).
   :func:`decode_matrix` rebuilds the square matrix. 25 symbols → 300 numbers, ~3 KB per row: one
   row per portfolio and day keeps storage bounded.

Summary metrics, with ``w_i = |MV_i|`` (direction ignored: they describe how alike the holdings
move, not whether the book is hedged) and ``R`` the (repaired) matrix:

* ``avg_correlation = Σ_{i<j} w_i w_j ρ_ij / Σ_{i<j} w_i w_j`` over sufficient pairs only; NaN
  when there is none.
* ``effective_positions_corr = (Σ_i w_i)² / (wᵀ R w)`` with insufficient pairs at 0 — the number of
  independent equal bets with the same diversification (= 1/HHI when R = I, = 1 when all ρ = 1).
  It is an upper bound when some pairs are insufficient, NaN when every pair is insufficient,
  1 for a single symbol, NaN for none.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from .frames import upper_values
from .psd import repair_psd

CORRELATION_COLUMNS = [
    "date", "portfolio_id", "symbols", "matrix", "n_symbols", "n_pairs", "n_pairs_insufficient",
    "avg_correlation", "effective_positions_corr", "psd_repaired", "min_eigenvalue",
]
CORR_WINDOW = 90  # log returns ending at and including the day
CORR_MIN_OVERLAP = 30  # pairwise complete days a pair needs
CORR_MIN_VALUE = 10_000.0  # USD: smallest |MV| of a holding in the matrix
CORR_MIN_WEIGHT = 0.01  # smallest |MV| / gross of a holding in the matrix
_BLOCK_CELLS = 1_000_000  # block × K cells per temporary in pairwise_correlation (~8 MB each)


class SquareBuffer:
    """A reusable ``K × K`` float work area for the union matrix: a 5,000-symbol matrix is 200 MB,
    and mapping fresh pages for it every day cost more than the product that fills it. The matrix
    handed out is valid until the next :meth:`take`."""

    def __init__(self):
        self._flat = np.empty(0)

    def take(self, k: int) -> np.ndarray:
        if self._flat.size < k * k:
            self._flat = np.empty(k * k)
        return self._flat[: k * k].reshape(k, k)


def pairwise_correlation(x: np.ndarray, min_overlap: int = CORR_MIN_OVERLAP,
                         buffer: SquareBuffer | None = None) -> np.ndarray:
    """Pearson correlation of every column pair on pairwise complete rows.

    For columns ``i, j`` and ``T_ij`` = rows where both are finite, with ``n = |T_ij|``::

        ρ_ij = (Σ x_i x_j − Σ x_i Σ x_j / n) / sqrt((Σ x_i² − (Σ x_i)²/n)(Σ x_j² − (Σ x_j)²/n))

    all sums over ``T_ij``. Columns are first centred on their own mean (ρ is unchanged; it avoids
    cancellation). Pairs of two *complete* columns (no missing row — the usual case) come from one
    product ``Zᵀ Z`` of standardised data; pairs involving an incomplete column use the masked
    sums ``Xᵀ M``, ``(X²)ᵀ M``, ``Xᵀ X``, ``Mᵀ M`` of the zero-filled data ``X`` and 0/1 presence
    mask ``M``, in column blocks so temporaries stay bounded for thousands of columns.

    Parameters
    ----------
    x : ndarray, shape (T, K)
        Observations (rows) × variables (columns); NaN/inf missing.
    min_overlap : int
        Minimum number of common rows; fewer → NaN.
    buffer : SquareBuffer, optional
        Where to build the result (it then lives until the buffer's next use).

    Returns
    -------
    ndarray, shape (K, K)
        Correlations clipped to [−1, 1]; NaN for insufficient overlap or (near-)zero variance on
        the overlap (diagonal included: 1 when the column has enough observations and variance).
    """
    x = np.asarray(x, dtype=float)
    t, k = x.shape
    m = np.isfinite(x)
    mf = m.astype(float)
    cnt = mf.sum(axis=0)
    mu = np.divide(np.where(m, x, 0.0).sum(axis=0), cnt, out=np.zeros(k), where=cnt > 0)
    xc = np.where(m, x - mu, 0.0)
    xc2 = xc * xc
    out = np.full((k, k), np.nan) if buffer is None else buffer.take(k)
    if buffer is not None:
        out.fill(np.nan)
    min_n = max(min_overlap, 2)

    complete = np.flatnonzero(cnt == t)
    if complete.size and t >= min_n:
        ss = xc2[:, complete].sum(axis=0)
        ok = ss > 1e-28 * t  # a constant column has no correlation
        c_ok = complete[ok]
        z = xc[:, c_ok] / np.sqrt(ss[ok])
        # Row blocks of Zᵀ Z: the whole product would be a second K × K matrix next to ``out``.
        rows = max(1, _BLOCK_CELLS // max(c_ok.size, 1))
        # Columns in one run (union_correlation puts the complete ones first) take slice assignment,
        # several times faster than the fancy-indexed one at thousands of columns.
        run = c_ok.size and c_ok[-1] - c_ok[0] + 1 == c_ok.size
        for a in range(0, c_ok.size, rows):
            zz = z[:, a : a + rows].T @ z
            np.clip(zz, -1.0, 1.0, out=zz)
            if run:
                lo = c_ok[0]
                out[lo + a : lo + a + zz.shape[0], lo : lo + c_ok.size] = zz
            else:
                out[np.ix_(c_ok[a : a + rows], c_ok)] = zz

    partial = np.flatnonzero((cnt < t) & (cnt >= min_n))
    if partial.size:
        block = max(1, _BLOCK_CELLS // max(k, 1))
        for a in range(0, partial.size, block):
            cols = partial[a : a + block]
            mb, xb = mf[:, cols], xc[:, cols]
            n = mb.T @ mf
            sx = xb.T @ mf  # Σ x_i over common rows (x_i is 0 where missing)
            sy = mb.T @ xc  # Σ x_j over common rows
            sxx = xc2[:, cols].T @ mf
            syy = mb.T @ xc2
            cov = xb.T @ xc  # Σ x_i x_j, then centred in place: the blocks are large, temporaries are not free
            with np.errstate(divide="ignore", invalid="ignore"):
                inv_n = np.divide(1.0, n)
                tmp = np.multiply(sx, sy)
                tmp *= inv_n
                cov -= tmp
                vx = np.multiply(sx, sx, out=sx)
                vx *= inv_n
                np.subtract(sxx, vx, out=vx)
                vy = np.multiply(sy, sy, out=sy)
                vy *= inv_n
                np.subtract(syy, vy, out=vy)
                # Relative tolerance: a constant series leaves only rounding noise in its variance
                # (sums of squares are ≥ 0, so this also rejects a non-positive variance).
                sxx *= 1e-14
                syy *= 1e-14
                bad = (vx <= sxx) | (vy <= syy) | (n < min_n)
                np.multiply(vx, vy, out=tmp)
                np.sqrt(tmp, out=tmp)
                r = np.divide(cov, tmp, out=cov)
            bad |= ~np.isfinite(r)
            np.clip(r, -1.0, 1.0, out=r)
            r[bad] = np.nan
            out[cols, :] = r
            out[:, cols] = r.T
    return out


def decode_matrix(symbols_json: str, matrix_json: str) -> pd.DataFrame:
    """Square correlation DataFrame (unit diagonal, NaN for insufficient pairs) from stored JSON."""
    symbols = json.loads(symbols_json)
    vals = np.array([np.nan if v is None else v for v in json.loads(matrix_json)], dtype=float)
    n = len(symbols)
    m = np.eye(n)
    iu = np.triu_indices(n, 1)
    m[iu] = vals
    m[(iu[1], iu[0])] = vals
    return pd.DataFrame(m, index=symbols, columns=symbols)


def _holdings(pv_day: pd.DataFrame, min_value: float, min_weight: float) -> pd.DataFrame:
    """Net |MV| per (portfolio, PUBLIC symbol) passing the filters, sorted by portfolio, symbol."""
    priced = pv_day["is_priced"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    mv = pv_day["market_value"].to_numpy(dtype=float)
    priced &= np.isfinite(mv)
    p = pv_day.loc[priced, ["portfolio_id", "symbol", "investment_class", "market_value"]].copy()
    p["portfolio_id"] = p["portfolio_id"].astype(str)
    gross = p["market_value"].abs().groupby(p["portfolio_id"]).sum()
    pub = p.loc[upper_values(p["investment_class"]) == "PUBLIC"]
    h = pub.groupby(["portfolio_id", "symbol"], sort=True)["market_value"].sum().abs().rename("w").reset_index()
    h["gross"] = gross.reindex(h["portfolio_id"]).to_numpy()
    keep = (h["w"] >= min_value) & (h["w"] >= min_weight * h["gross"])
    return h.loc[keep].reset_index(drop=True)


def _fmt_rows(vals: np.ndarray) -> list[str]:
    """JSON arrays of the rows of ``vals`` rounded to 6 dp, ``null`` for NaN (one string per row).

    pandas' C JSON encoder formats the whole block at once (~10× faster than ``json.dumps`` per
    row); numbers never contain brackets, so splitting on ``],[`` recovers the rows.
    """
    if vals.shape[0] == 0:
        return []
    if vals.shape[1] == 0:
        return ["[]"] * vals.shape[0]
    text = pd.DataFrame(np.round(vals, 6)).to_json(orient="values", double_precision=6)
    return ["[" + row + "]" for row in text[2:-2].split("],[")]


def union_correlation(log_returns_wide: pd.DataFrame, day, symbols, window: int = CORR_WINDOW,
                      min_overlap: int = CORR_MIN_OVERLAP, buffer: SquareBuffer | None = None
                      ) -> tuple[pd.Index, np.ndarray]:
    """Pairwise correlation matrix of ``symbols`` (sorted) on the ``window`` rows ending at ``day``.

    One matrix per day for every holding of many portfolios: a pair's correlation depends only on
    the two return series (pairwise complete cases), so slicing this matrix per portfolio gives the
    same numbers as computing each portfolio's matrix alone. A symbol without a return column is
    all-NaN (every pair insufficient).

    Returns
    -------
    (index, matrix) : the symbols — those with a return on every row of the window first, each
    group sorted — and their ``(K, K)`` matrix (:func:`pairwise_correlation`). Callers look symbols
    up in the index; the order only lets the complete columns' block be written as one slice.
    """
    sessions = pd.DatetimeIndex(log_returns_wide.index).normalize()
    row = sessions.get_loc(pd.Timestamp(day).normalize())
    union = pd.Index(pd.unique(pd.Index(list(symbols), dtype=object))).sort_values()
    lo = max(0, row - window + 1)
    cols = log_returns_wide.columns.get_indexer(union)
    values = log_returns_wide.to_numpy(dtype=float)
    x = np.full((row + 1 - lo, len(union)), np.nan)
    x[:, cols >= 0] = values[lo: row + 1][:, cols[cols >= 0]]
    order = np.argsort(~np.isfinite(x).all(axis=0), kind="stable")
    return union[order], pairwise_correlation(x[:, order], min_overlap, buffer)


def portfolio_correlations(
    position_values: pd.DataFrame,
    log_returns_wide: pd.DataFrame,
    days,
    window: int = CORR_WINDOW,
    min_overlap: int = CORR_MIN_OVERLAP,
    min_value: float = CORR_MIN_VALUE,
    min_weight: float = CORR_MIN_WEIGHT,
    portfolio_ids=None,
    psd_tol: float = 1e-10,
    union: dict | None = None,
    buffer: SquareBuffer | None = None,
) -> pd.DataFrame:
    """One correlation row per (date, portfolio): matrix, PSD repair and summary metrics.

    See the module docstring for the method, storage format and NaN policy.

    Parameters
    ----------
    position_values : DataFrame
        From ``compute_snapshots`` (``date, portfolio_id, symbol, investment_class,
        market_value, is_priced``).
    log_returns_wide : DataFrame
        Log returns by session (index, ascending) × symbol; NaN missing. Must contain each day.
    days : DatetimeIndex-like
        Days to compute.
    window, min_overlap, min_value, min_weight : see module docstring.
    portfolio_ids : iterable of str, optional
        Portfolios to emit each day (e.g. every snapshot's portfolio, so an empty portfolio gets
        a row with ``n_symbols = 0``). Default: portfolios with a position that day.
    psd_tol : float
        Eigenvalue tolerance for the repair.
    union : dict, optional
        ``day → (symbols, matrix)`` from :func:`union_correlation` over a superset of the day's
        holdings (computed once for a book processed in several batches of portfolios, with the
        same ``window`` and ``min_overlap``). Days absent from it, or whose holdings it lacks, get
        the matrix of their own holdings.
    buffer : SquareBuffer, optional
        Work area for those matrices, reused day after day (one per run).

    Returns
    -------
    DataFrame
        ``CORRELATION_COLUMNS``: ``symbols`` (JSON list), ``matrix`` (JSON upper triangle),
        ``n_symbols``, ``n_pairs = n(n−1)/2``, ``n_pairs_insufficient``, ``avg_correlation``,
        ``effective_positions_corr``, ``psd_repaired``, ``min_eigenvalue`` (NaN for no symbol, 1
        for one symbol).
    """
    days = pd.DatetimeIndex(pd.to_datetime(pd.Index(days))).normalize().unique().sort_values()
    sessions = pd.DatetimeIndex(log_returns_wide.index).normalize()
    if not sessions.is_monotonic_increasing or not sessions.is_unique:
        raise ValueError("log_returns_wide: index must be unique sessions in ascending order")
    rows = sessions.get_indexer(days)
    if (rows < 0).any():
        missing = [d.date().isoformat() for d in days[rows < 0]]
        raise ValueError(f"days not in the log_returns_wide index: {missing[:5]}")
    pv_dates = pd.to_datetime(position_values["date"]).dt.normalize()
    out = []
    for day in days:
        pv_day = position_values.loc[(pv_dates == day).to_numpy()]
        h = _holdings(pv_day, min_value, min_weight)
        if portfolio_ids is not None:
            ports = pd.Index(pd.Series(list(portfolio_ids), dtype=object).astype(str).unique()).sort_values()
        else:
            ports = pd.Index(pv_day["portfolio_id"].astype(str).unique()).sort_values()
        h = h.loc[h["portfolio_id"].isin(ports)]
        given = (union or {}).get(day)
        if given is not None and given[0].get_indexer(pd.unique(h["symbol"])).min(initial=0) >= 0:
            symbols, corr_u = given
        else:
            symbols, corr_u = union_correlation(log_returns_wide, day, h["symbol"], window, min_overlap, buffer)
        out.append(_per_portfolio(day, ports, h, symbols, corr_u, psd_tol))
        del corr_u  # K × K (200 MB at 5,000 symbols): without a buffer, freed before the next day's is built
    if not out:
        return pd.DataFrame(columns=CORRELATION_COLUMNS)
    return pd.concat(out, ignore_index=True)[CORRELATION_COLUMNS]


def _per_portfolio(day, ports: pd.Index, h: pd.DataFrame, union: pd.Index, corr_u: np.ndarray, psd_tol: float):
    """Slice the union matrix per portfolio, batched by matrix size (stacked eigh, no pandas)."""
    n_p = len(ports)
    pcode = ports.get_indexer(h["portfolio_id"])
    scode = union.get_indexer(h["symbol"])
    w_all = h["w"].to_numpy(dtype=float)
    sym_all = h["symbol"].to_numpy(dtype=object)
    sizes = np.bincount(pcode, minlength=n_p)
    starts = np.cumsum(sizes) - sizes  # h is sorted by portfolio then symbol

    res = {
        "symbols": np.full(n_p, "[]", dtype=object),
        "matrix": np.full(n_p, "[]", dtype=object),
        "n_symbols": sizes.astype(np.int64),
        "n_pairs": (sizes * (sizes - 1) // 2).astype(np.int64),
        "n_pairs_insufficient": np.zeros(n_p, dtype=np.int64),
        "avg_correlation": np.full(n_p, np.nan),
        "effective_positions_corr": np.where(sizes == 1, 1.0, np.nan),
        "psd_repaired": np.zeros(n_p, dtype=bool),
        "min_eigenvalue": np.where(sizes == 1, 1.0, np.nan),
    }
    for i in np.flatnonzero(sizes > 0):
        res["symbols"][i] = json.dumps(sym_all[starts[i] : starts[i] + sizes[i]].tolist())
    for n in np.unique(sizes[sizes >= 2]):
        pidx = np.flatnonzero(sizes == n)
        take = starts[pidx][:, None] + np.arange(n)[None, :]  # (P_n, n) rows of h
        sidx, w = scode[take], w_all[take]
        raw = corr_u[sidx[:, :, None], sidx[:, None, :]]  # (P_n, n, n)
        iu = np.triu_indices(n, 1)
        raw_u = raw[:, iu[0], iu[1]]
        insuff = np.isnan(raw_u)
        repaired, min_eig, need = repair_psd(raw, psd_tol)
        final_u = np.where(insuff, np.nan, repaired[:, iu[0], iu[1]])
        ww = w[:, iu[0]] * w[:, iu[1]]
        den = np.where(insuff, 0.0, ww).sum(axis=1)
        num = np.where(insuff, 0.0, ww * final_u).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            avg = np.where(den > 0, num / den, np.nan)
            quad = np.einsum("pi,pij,pj->p", w, repaired, w)
            neff = w.sum(axis=1) ** 2 / quad
        all_insuff = insuff.all(axis=1)
        res["n_pairs_insufficient"][pidx] = insuff.sum(axis=1)
        res["avg_correlation"][pidx] = avg
        res["effective_positions_corr"][pidx] = np.where(all_insuff | ~(quad > 0), np.nan, neff)
        res["psd_repaired"][pidx] = need
        res["min_eigenvalue"][pidx] = min_eig
        res["matrix"][pidx] = np.array(_fmt_rows(final_u), dtype=object)
    frame = pd.DataFrame({"date": day, "portfolio_id": ports.to_numpy(dtype=object), **res})
    return frame
