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
    * ``effective_positions = 1 / hhi``,
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
        Keys ``hhi``, ``effective_positions`` and ``top{k}_weight``. NaN for a group with no
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
        out["effective_positions"] = np.where(defined, 1.0 / out["hhi"], np.nan)
    order, rank = group_rank_desc(group, w, n_groups)
    g_sorted, w_sorted = group[order], w[order]
    for k in top:
        tk = np.bincount(g_sorted, weights=np.where(rank < k, w_sorted, 0.0), minlength=n_groups)
        out[f"top{k}_weight"] = np.where(defined, tk, np.nan)
    return out


def top_k_per_group(
    group: np.ndarray, score: np.ndarray, n_groups: int, k: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``k`` highest-scoring positions of every group, for each column of ``score``.

    Parameters
    ----------
    group : ndarray of int, shape (n,)
        Group code of each position.
    score : ndarray of float, shape (n, S)
        One ranking key per column (e.g. |P&L| per scenario); NaN ranks last.
    n_groups : int
    k : int

    Returns
    -------
    list of (index, rank) per column
        ``index`` into the positions, ordered by group then rank; ``rank`` 0-based. Ties keep the
        input order (stable sorts).

    Notes
    -----
    Positions are laid out once in a dense (groups × largest group) table so each column costs one
    row-wise ``argsort`` of a small matrix; when group sizes are very skewed (the table would be
    much larger than the data) it falls back to one ``lexsort`` per column.
    """
    group = np.asarray(group, dtype=np.int64)
    score = np.asarray(score, dtype=float)
    n = group.size
    out: list[tuple[np.ndarray, np.ndarray]] = []
    if n == 0:
        return [(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)) for _ in range(score.shape[1])]
    order0 = np.argsort(group, kind="stable")
    gs = group[order0]
    counts = np.bincount(group, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    slot = np.arange(n) - starts[gs]
    kmax = int(counts.max())
    if n_groups * kmax > 4 * n + 1024:
        for j in range(score.shape[1]):
            order, rank = group_rank_desc(group, score[:, j], n_groups)
            sel = rank < k
            out.append((order[sel], rank[sel]))
        return out
    table = np.full((n_groups, kmax), -1, dtype=np.int64)
    table[gs, slot] = order0
    filled = table >= 0
    safe = np.where(filled, table, 0)
    kk = min(k, kmax)
    ranks = np.broadcast_to(np.arange(kk), (n_groups, kk))
    for j in range(score.shape[1]):
        s = score[safe, j]
        key = np.where(filled & ~np.isnan(s), -s, np.inf)
        # NaN scores of real positions sort after finite ones but before padding.
        key = np.where(filled & np.isnan(s), np.finfo(float).max, key)
        best = np.argsort(key, axis=1, kind="stable")[:, :kk]
        idx = np.take_along_axis(table, best, axis=1)
        valid = idx >= 0
        out.append((idx[valid], ranks[valid]))
    return out
