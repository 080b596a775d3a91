"""Minimum-cost assignment of tracks to detections, in NumPy (no scipy on a device).

`linear_assignment(cost, max_cost)` returns the pairs of a minimum-cost matching among the
pairs whose cost is at most `max_cost` (the others may not be matched), as ByteTrack's
`lapjv(..., cost_limit)` does. Most rows of a tracking cost matrix have one candidate that
no other row wants (objects apart from each other): those are taken first, vectorised, and
only the rows and columns left (objects close to each other) go through the Hungarian
method (shortest augmenting paths, the Jonker-Volgenant form, its inner loop over columns
vectorised). Exact: the pre-pass only takes pairs that every optimal matching contains.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["linear_assignment", "solve_dense"]

_BIG = 1e9


def solve_dense(cost: npt.ArrayLike) -> np.ndarray:
    """Minimum-cost assignment of a dense (n, m) matrix with n <= m: the column of each row.

    The Hungarian method with potentials (shortest augmenting paths, O(n^2 m)), the loop
    over columns done by NumPy.
    """
    c = np.asarray(cost, dtype=np.float64)
    n, m = c.shape
    if n > m:
        raise ValueError(f"solve_dense needs rows <= columns, got {c.shape}")
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=np.int64)  # p[j]: the row (1-based) holding column j; 0 = free
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            cur = c[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            used_idx = used.nonzero()[0]
            u[p[used_idx]] += delta
            v[used_idx] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = int(way[j0])
            p[j0] = p[j1]
            j0 = j1
    cols = np.empty(n, dtype=np.int64)
    assigned = p[1:].nonzero()[0] + 1
    cols[p[assigned] - 1] = assigned - 1
    return cols


def linear_assignment(
    cost: npt.ArrayLike, max_cost: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match rows to columns at least total cost, using only pairs with cost <= max_cost.

    Returns (matches (k, 2) of [row, col], unmatched rows, unmatched cols). Among the
    matchings of allowed pairs it takes one with the most pairs, and of those the cheapest.
    """
    c = np.asarray(cost, dtype=np.float64)
    n, m = c.shape if c.ndim == 2 else (0, 0)
    if n == 0 or m == 0:
        return np.empty((0, 2), dtype=np.int64), np.arange(n), np.arange(m)
    allowed = c <= max_cost
    row_deg = allowed.sum(1)
    col_deg = allowed.sum(0)
    # a row with exactly one allowed column that no other row may take: always matched
    unique_row = row_deg == 1
    col_of = allowed.argmax(1)
    easy = unique_row & (col_deg[col_of] == 1)
    easy_rows = easy.nonzero()[0]
    pairs = [np.column_stack((easy_rows, col_of[easy_rows]))]
    rest_rows = ((row_deg > 0) & ~easy).nonzero()[0]
    taken = np.zeros(m, dtype=bool)
    taken[col_of[easy_rows]] = True
    rest_cols = ((col_deg > 0) & ~taken).nonzero()[0]
    if len(rest_rows) and len(rest_cols):
        sub = c[rest_rows][:, rest_cols]
        ok = sub <= max_cost
        # disallowed pairs cost more than any matching of allowed pairs: the optimum
        # then has as many allowed pairs as possible, and the cheapest of those
        big = _BIG + float(np.abs(sub[ok]).sum()) if ok.any() else _BIG
        work = np.where(ok, sub, big)
        if len(rest_rows) <= len(rest_cols):
            cols = solve_dense(work)
            r, k = np.arange(len(rest_rows)), cols
        else:
            rows = solve_dense(work.T)
            r, k = rows, np.arange(len(rest_cols))
        keep = ok[r, k]
        pairs.append(np.column_stack((rest_rows[r[keep]], rest_cols[k[keep]])))
    matches = np.concatenate(pairs).astype(np.int64)
    matched_r = np.zeros(n, dtype=bool)
    matched_c = np.zeros(m, dtype=bool)
    matched_r[matches[:, 0]] = True
    matched_c[matches[:, 1]] = True
    return matches, (~matched_r).nonzero()[0], (~matched_c).nonzero()[0]
