"""The compiled kernel of the converging ZCore engine: whole dimension pairs.

Per pair (a, b): the samples are counting-sorted into a grid of cells whose
edges are quantiles of each column (precomputed bins), so the cells hold
about ten samples each. Two independently shifted quantile lattices of the
pair's triangular density give the coverage: each lattice point goes to its
L1-nearest sample, found by visiting cells nearest first (a heap keyed by a
cell's L1 distance from the point) until the next cell is farther than the
best sample. The redundancy penalties come from a coarser lattice with the
same expectation, every ``refine``-th point of each row and column: each
sample nearest to one of those spreads that mass over its nearest others (the
same search), with the normalised ``d ** -exp`` weights whose normalisation
adds ``tail`` times the last one. A search of the nearest others costs about
four of a point's nearest sample, and the penalty, a weighted sum over many
neighbours, is the less noisy term, so it gets the fewer points.

Contributions are added in int64 fixed point (``SCALE`` per unit of a pair's
mass), so sums do not depend on the order of pairs or threads.
"""

import math

import numba
import numpy as np

from . import KERNEL_CACHE
from .zcore import _triangular

#: score units per unit of one pair's probability mass
SCALE = float(2**32)


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def _build(xa, xb, bina, binb, nb, start, fill, sx, sy, sid):
    """Counting sort of the samples into cells ``bin_a * nb + bin_b``."""
    start[:] = 0
    for i in range(xa.shape[0]):
        start[np.int64(bina[i]) * nb + binb[i] + 1] += 1
    for c in range(nb * nb):
        start[c + 1] += start[c]
    fill[:] = start[:-1]
    for i in range(xa.shape[0]):
        c = np.int64(bina[i]) * nb + binb[i]
        p = fill[c]
        sx[p] = xa[i]
        sy[p] = xb[i]
        sid[p] = i
        fill[c] = p + 1


@numba.njit(nogil=True, cache=KERNEL_CACHE, inline="always")
def _gap(q, edges, cell, own):
    """The distance from coordinate ``q`` (in cell ``own``) to cell ``cell`` along one axis."""
    if cell < own:
        return q - edges[cell]
    if cell > own:
        return edges[cell - 1] - q
    return 0.0


@numba.njit(nogil=True, cache=KERNEL_CACHE, inline="always")
def _push(heap_key, heap_cell, size, key, cell):
    """Adds ``cell`` to the min-heap of cells by ``key``; returns the new size."""
    m = size
    while m > 0 and heap_key[(m - 1) // 2] > key:
        heap_key[m] = heap_key[(m - 1) // 2]
        heap_cell[m] = heap_cell[(m - 1) // 2]
        m = (m - 1) // 2
    heap_key[m] = key
    heap_cell[m] = cell
    return size + 1


@numba.njit(nogil=True, cache=KERNEL_CACHE, inline="always")
def _pop(heap_key, heap_cell, size):
    """Removes the root of the min-heap (read it before); returns the new size."""
    size -= 1
    key, cell = heap_key[size], heap_cell[size]
    m = 0
    while True:
        child = 2 * m + 1
        if child >= size:
            break
        if child + 1 < size and heap_key[child + 1] < heap_key[child]:
            child += 1
        if heap_key[child] >= key:
            break
        heap_key[m] = heap_key[child]
        heap_cell[m] = heap_cell[child]
        m = child
    heap_key[m] = key
    heap_cell[m] = cell
    return size


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def _search(qx, qy, ci, cj, nb, ea, eb, start, sx, sy, sid, best_d, best_i, scratch):
    """The len(best_d) nearest samples to q (L1), nearest first; returns how many.

    Cells are visited nearest first by their L1 distance from q (a best-first
    search over the grid, whose cells with distance below any radius are
    connected to q's cell), so only cells that can hold a nearer sample are read.
    """
    heap_key, heap_cell, mark, marked = scratch
    k = best_d.shape[0]
    n = 0
    size = _push(heap_key, heap_cell, 0, 0.0, ci * nb + cj)
    mark[ci * nb + cj] = 1
    marked[0] = ci * nb + cj
    n_marked = 1
    while size > 0:
        key, c = heap_key[0], heap_cell[0]
        if n == k and key >= best_d[k - 1]:
            break
        size = _pop(heap_key, heap_cell, size)
        for p in range(start[c], start[c + 1]):
            d = abs(np.float64(sx[p]) - qx) + abs(np.float64(sy[p]) - qy)
            if n < k or d < best_d[n - 1]:
                m = n if n < k else k - 1
                while m > 0 and best_d[m - 1] > d:
                    best_d[m] = best_d[m - 1]
                    best_i[m] = best_i[m - 1]
                    m -= 1
                best_d[m] = d
                best_i[m] = sid[p]
                n = min(n + 1, k)
        i, j = c // nb, c % nb
        for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            ni, nj = i + di, j + dj
            if 0 <= ni < nb and 0 <= nj < nb:
                nc = ni * nb + nj
                if mark[nc] == 0:
                    mark[nc] = 1
                    marked[n_marked] = nc
                    n_marked += 1
                    size = _push(heap_key, heap_cell, size, _gap(qx, ea, ni, ci) + _gap(qy, eb, nj, cj), nc)
    for m in range(n_marked):
        mark[marked[m]] = 0
    return n


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def _has_duplicate(s, px, py, cell, start, sx, sy, sid):
    """Whether another sample sits exactly on sample ``s`` at (px, py) (such samples share s's cell)."""
    for p in range(start[cell], start[cell + 1]):
        if sid[p] != s and np.float64(sx[p]) == px and np.float64(sy[p]) == py:
            return True
    return False


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def _bin(edges, value):
    """The cell index of ``value`` given the inner edges."""
    return np.searchsorted(edges, value, side="right")


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def run_pairs(cols, bins, edges, lo, med, hi, pairs, parity, shifts, grid, used, tail, exp, refine, acc, done):
    """Adds the contributions of ``pairs`` to ``acc``.

    Args:
        cols: (D, N) float32 columns
        bins: (D, N) uint8 cell of each value; edges: (D, nb - 1) float64 inner edges
        lo, med, hi: (D,) float64 triangular parameters
        pairs: (P, 2) dimension pairs; parity: (P,) 0/1 half of each pair
        shifts: (P, 2, 2) lattice shifts (pair, lattice, axis)
        grid: lattice points per side of each of the two redundancy lattices
        used: nearest others whose weights are computed (<= N - 1)
        tail: normalisation added per unit of the last computed weight
        exp: exponent of the inverse-distance penalty
        refine: coverage lattice points per side of a redundancy lattice
            point (the redundancy lattice is every refine-th one of them)
        acc: (4, N) int64 sums, row 2 * parity + lattice
        done: (1,) int64 counter of finished pairs
    """
    num = cols.shape[1]
    nb = edges.shape[1] + 1
    fine = grid * refine
    start = np.empty(nb * nb + 1, dtype=np.int64)
    fill = np.empty(nb * nb, dtype=np.int64)
    sx = np.empty(num, dtype=np.float32)
    sy = np.empty(num, dtype=np.float32)
    sid = np.empty(num, dtype=np.int64)
    # Per lattice: coverage points (fine) and redundancy points (coarse) nearest to each sample.
    covered = np.zeros((2, num), dtype=np.int64)
    count = np.zeros((2, num), dtype=np.int64)
    touched = np.empty(num, dtype=np.int64)
    one_d = np.empty(1, dtype=np.float64)
    one_i = np.empty(1, dtype=np.int64)
    near_d = np.empty(used + 1, dtype=np.float64)
    near_i = np.empty(used + 1, dtype=np.int64)
    ratio = np.empty(used, dtype=np.float64)
    qx = np.empty(fine, dtype=np.float64)
    qy = np.empty(fine, dtype=np.float64)
    bx = np.empty(fine, dtype=np.int64)
    by = np.empty(fine, dtype=np.int64)
    scratch = (np.empty(nb * nb, dtype=np.float64), np.empty(nb * nb, dtype=np.int64),
               np.zeros(nb * nb, dtype=np.uint8), np.empty(nb * nb, dtype=np.int64))
    unit = SCALE / (grid * grid)
    fine_unit = unit / (refine * refine)
    integer_exp = exp == math.floor(exp) and exp <= 16
    for t in range(pairs.shape[0]):
        a, b = pairs[t, 0], pairs[t, 1]
        xa, xb = cols[a], cols[b]
        ea, eb = edges[a], edges[b]
        _build(xa, xb, bins[a], bins[b], nb, start, fill, sx, sy, sid)
        n_touched = 0
        for lat in range(2):
            # The fine lattice's shift and which of its points form the coarse one (the same
            # coarse lattice for every refine: its shift is shifts[t, lat]).
            ox = int(shifts[t, lat, 0] * refine)
            oy = int(shifts[t, lat, 1] * refine)
            fx = shifts[t, lat, 0] * refine - ox
            fy = shifts[t, lat, 1] * refine - oy
            for g in range(fine):
                qx[g] = _triangular(lo[a], med[a], hi[a], (g + fx) / fine)
                qy[g] = _triangular(lo[b], med[b], hi[b], (g + fy) / fine)
                bx[g] = _bin(ea, qx[g])
                by[g] = _bin(eb, qy[g])
            for g in range(fine):
                for h in range(fine):
                    _search(qx[g], qy[h], bx[g], by[h], nb, ea, eb, start, sx, sy, sid, one_d, one_i, scratch)
                    s = one_i[0]
                    if covered[0, s] == 0 and covered[1, s] == 0:
                        touched[n_touched] = s
                        n_touched += 1
                    covered[lat, s] += 1
                    if g % refine == ox and h % refine == oy:
                        count[lat, s] += 1
        row = 2 * parity[t]
        for m in range(n_touched):
            s = touched[m]
            px, py = np.float64(xa[s]), np.float64(xb[s])
            ci, cj = _bin(ea, px), _bin(eb, py)
            if count[0, s] + count[1, s] > 0 or _has_duplicate(s, px, py, ci * nb + cj, start, sx, sy, sid):
                n = _search(px, py, ci, cj, nb, ea, eb, start, sx, sy, sid, near_d, near_i, scratch)
            else:
                n = 1  # coverage only: s alone, no penalty to spread
                near_d[0] = 0.0
                near_i[0] = s
            _spread(s, n, near_d, near_i, ratio, covered[0, s] * fine_unit, covered[1, s] * fine_unit,
                    count[0, s] * unit, count[1, s] * unit, tail, exp, integer_exp, acc[row], acc[row + 1])
            covered[0, s] = 0
            covered[1, s] = 0
            count[0, s] = 0
            count[1, s] = 0
        done[0] += 1


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def _spread(s, n, near_d, near_i, ratio, cover0, cover1, mass0, mass1, tail, exp, integer_exp, acc0, acc1):
    """Adds the coverage of ``s`` (one per lattice) and the redundancy penalties of its mass (one per lattice)."""
    # Drop s itself (or, when ties hide it, the farthest).
    own = n - 1
    for m in range(n):
        if near_i[m] == s:
            own = m
            break
    for m in range(own, n - 1):
        near_d[m] = near_d[m + 1]
        near_i[m] = near_i[m + 1]
    k = n - 1
    if k > 0 and near_d[0] == 0.0:
        # Exact duplicates share the coverage; the earliest other duplicate loses it.
        first = s
        second = -1
        size = 1
        for m in range(k):
            if near_d[m] != 0.0:
                break
            size += 1
            j = near_i[m]
            if j < first:
                second = first
                first = j
            elif second < 0 or j < second:
                second = j
        for cover, mass, acc in ((cover0, mass0, acc0), (cover1, mass1, acc1)):
            share = cover / size
            acc[s] += np.int64(share + 0.5)
            for m in range(size - 1):
                acc[near_i[m]] += np.int64(share + 0.5)
            share = mass / size
            acc[first] -= np.int64(share * (size - 1) + 0.5)
            acc[second] -= np.int64(share + 0.5)
        return
    acc0[s] += np.int64(cover0 + 0.5)
    acc1[s] += np.int64(cover1 + 0.5)
    if mass0 == 0.0 and mass1 == 0.0:
        return
    total = 0.0
    for m in range(k):
        r = near_d[0] / near_d[m]
        if integer_exp:
            w = 1.0
            for _ in range(int(exp)):
                w *= r
        else:
            w = r**exp
        ratio[m] = w
        total += w
    total += tail * ratio[k - 1]
    per0 = mass0 / total
    per1 = mass1 / total
    for m in range(k):
        acc0[near_i[m]] -= np.int64(ratio[m] * per0 + 0.5)
        acc1[near_i[m]] -= np.int64(ratio[m] * per1 + 0.5)
