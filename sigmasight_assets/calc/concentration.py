"""Concentration metrics of many portfolios at once (pure numpy, no per-portfolio loop).

All functions take flat arrays of positions with an integer group code per position (the
portfolio, or the portfolio × day) and return one value per group, computed with ``np.bincount``
and one ``np.lexsort`` so that 10,000 portfolios cost about as much as one.
"""

from __future__ import annotations

import numpy as np


def group_rank_desc(group: np.ndarray, value: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Rank positions within their group by ``value`` descending (0 = largest).

    Parameters
    ----------
    group : ndarray of int, shape (n,)
        Group code in ``[0, n_groups)`` of each position.
    value : ndarray of float, shape (n,)
        Ranking key; NaN sorts last within its group.
    n_groups : int
        Number of groups.

    Returns
    -------
    order : ndarray of int, shape (n,)
        Permutation sorting the positions by (group, value descending); ties keep input order
        (``lexsort`` is stable), so the ranking is deterministic.
    rank : ndarray of int, shape (n,)
        Rank of ``order[k]`` within its group.
    """
    group = np.asarray(group, dtype=np.int64)
    key = np.where(np.isnan(value), np.inf, -np.asarray(value, dtype=float))
    order = np.lexsort((key, group))
    counts = np.bincount(group, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    rank = np.arange(group.size) - starts[group[order]]
    return order, rank


def concentration_metrics(
    group: np.ndarray, abs_value: np.ndarray, n_groups: int, top: tuple[int, ...] = (3, 10)
) -> dict[str, np.ndarray]:
    """Herfindahl index, effective number of positions and top-k weights per group.

    Weights are gross weights ``w_i = |MV_i| / Σ_{j in group} |MV_j|`` (dimensionless, sum to 1
    within a group). Then

    * ``hhi = Σ_i w_i²`` (1 for a single position, 1/N for N equal positions),
    * ``effective_positions_hhi = 1 / hhi`` (the effective number of positions by weight),
    * ``top{k}_weight`` = sum of the k largest weights (all of them when the group has fewer).

    Parameters
    ----------
    group : ndarray of int, shape (n,)
        Group code of each position.
    abs_value : ndarray of float, shape (n,)
        ``|MV|`` of each (priced) position in USD. Pass only priced positions: a NaN here would
        poison its whole group, which is the intended NaN policy (unknown in → unknown out).
    n_groups : int
        Number of groups; groups with no position get NaN.
    top : tuple of int
        The k values for ``top{k}_weight``.

    Returns
    -------
    dict of ndarray, shape (n_groups,)
        Keys ``hhi``, ``effective_positions_hhi`` and ``top{k}_weight``. NaN for a group with no
        positions or zero gross value (weights are undefined, not zero).
    """
    group = np.asarray(group, dtype=np.int64)
    abs_value = np.asarray(abs_value, dtype=float)
    gross = np.bincount(group, weights=abs_value, minlength=n_groups)
    defined = gross > 0
    safe_gross = np.where(defined, gross, 1.0)
    w = abs_value / safe_gross[group]
    hhi = np.bincount(group, weights=w * w, minlength=n_groups)
    out: dict[str, np.ndarray] = {}
    out["hhi"] = np.where(defined, hhi, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["effective_positions_hhi"] = np.where(defined, 1.0 / out["hhi"], np.nan)
    order, rank = group_rank_desc(group, w, n_groups)
    g_sorted, w_sorted = group[order], w[order]
    for k in top:
        tk = np.bincount(g_sorted, weights=np.where(rank < k, w_sorted, 0.0), minlength=n_groups)
        out[f"top{k}_weight"] = np.where(defined, tk, np.nan)
    return out


def top_k_per_group(group: np.ndarray, score: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` highest-scoring positions of every group, for every column of ``score`` at once.

    Parameters
    ----------
    group : ndarray of int, shape (n,)
        Group code of each position (any integers; only the groups present are ranked).
    score : ndarray of float, shape (n, S)
        One ranking key per column (e.g. |P&L| per scenario); NaN ranks after every finite score.
    k : int

    Returns
    -------
    groups : ndarray of int, shape (G,)
        The distinct group codes, ascending.
    index : ndarray of int, shape (G, S, kk)
        ``index[g, j, r]`` is the position of rank ``r`` (0 = highest) in group ``groups[g]`` for
        column ``j``; −1 where the group has fewer than ``kk = min(k, largest group)`` positions.
        Ties keep the input order (stable sorts).

    Notes
    -----
    Positions are laid out in a dense (groups × largest group × columns) table and sorted once
    along the group axis. When group sizes are very skewed (the table would be much larger than
    the data) it falls back to one ``lexsort`` per column.
    """
    group = np.asarray(group, dtype=np.int64)
    score = np.asarray(score, dtype=float)
    n, n_cols = score.shape
    groups, g = np.unique(group, return_inverse=True)
    counts = np.bincount(g, minlength=groups.size)
    kmax = int(counts.max()) if n else 0
    kk = min(k, kmax)
    index = np.full((groups.size, n_cols, kk), -1, dtype=np.int64)
    if n == 0 or kk == 0:
        return groups, index
    starts = np.cumsum(counts) - counts
    key = np.where(np.isnan(score), np.finfo(float).max, -score)  # descending, NaN after finite
    if groups.size * kmax > 4 * n + 1024:
        for j in range(n_cols):
            order = np.lexsort((key[:, j], g))
            rank = np.arange(n) - starts[g[order]]
            sel = rank < kk
            index[g[order][sel], j, rank[sel]] = order[sel]
        return groups, index
    order0 = np.argsort(g, kind="stable")
    table = np.full((groups.size, kmax), -1, dtype=np.int64)
    table[g[order0], np.arange(n) - starts[g[order0]]] = order0  # a group's positions in input order
    filled = table >= 0
    key3 = key[np.where(filled, table, 0)]  # (groups, kmax, columns)
    key3[~filled] = np.inf  # padding after every real position
    best = np.argsort(key3, axis=1, kind="stable")[:, :kk, :]
    ranked = np.take_along_axis(np.broadcast_to(table[:, :, None], key3.shape), best, axis=1)
    index[:] = np.transpose(ranked, (0, 2, 1))
    return groups, index
