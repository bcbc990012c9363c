"""The compiled CPU kernel of ZCore: runs a batch of sampling iterations.

Samples are stored column-major (D x N) in a fixed shuffled order, so the
first ones are a random subset. Per iteration, with drawn point s and covered
sample c (the one nearest to s):

1. one vectorised pass stores d(x, s) for every sample and the minimum of
   each block of samples (as the int32 bits of the non-negative floats, which
   order like the floats and reduce with SIMD integer minima);
2. the (rank)-th smallest d(x, c) over the first samples bounds T, the
   distance to c's k-th neighbour; every x with d(x, c) <= T has
   d(x, s) <= T + d(s, c), so a SIMD mask over the stored distances picks the
   candidates and only they get a distance to c. If fewer than k fall within
   T, the rank is widened (in the end to every sample);
3. a histogram over [0, T] finds the k nearest candidates without sorting.

The result equals a full sort of all distances (ties at the k-th distance
keep the earliest in storage order).
"""

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from . import KERNEL_CACHE

# Score units per +1: accumulation in int64 fixed point is exact and order-free.
SCALE = float(2**32)
_BLOCK = 256
_MAX_BITS = 0x7FFFFFFF
_SAMPLED = 1024
_BUCKETS = 512
_SIDE = 64


@intrinsic
def _trailing_zeros(typingctx, word):
    """Count of trailing zero bits of a non-zero uint64."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return sig, codegen


@intrinsic
def _float_bits(typingctx, value):
    """The int32 bit pattern of a float32."""
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@intrinsic
def _bits_float(typingctx, value):
    """The float32 with the given int32 bit pattern."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@intrinsic
def _mask8(typingctx, values, start, limit):
    """Bit j set when values[start + j] <= limit, j < 8: one SIMD compare and movemask."""
    sig = types.uint64(values, start, limit)

    def codegen(context, builder, signature, args):
        values, start, limit = args
        i32 = ir.IntType(32)
        v8f = ir.VectorType(ir.FloatType(), 8)
        v8i = ir.VectorType(i32, 8)
        data = context.make_array(signature.args[0])(context, builder, values).data
        vec = builder.load(builder.bitcast(builder.gep(data, [start]), v8f.as_pointer()), align=4)
        bound = builder.insert_element(ir.Constant(v8f, ir.Undefined), limit, ir.Constant(i32, 0))
        bound = builder.shuffle_vector(bound, ir.Constant(v8f, ir.Undefined), ir.Constant(v8i, [0] * 8))
        within = builder.fcmp_ordered("<=", vec, bound)
        return builder.zext(builder.bitcast(within, ir.IntType(8)), ir.IntType(64))

    return sig, codegen


@numba.njit(nogil=True, cache=KERNEL_CACHE, fastmath=True, inline="always")
def _fill(a, b, ca, cb, cols, row, centre, out, start, length):
    """out[:length] = L1 distances of samples start.. to the centre.

    ``a``/``b`` are the columns of the first two drawn dimensions (``b`` is a
    zero column when only one is drawn), further dimensions come from ``row``.
    """
    for i in range(length):
        out[i] = abs(a[start + i] - ca) + abs(b[start + i] - cb)
    for j in range(2, row.shape[0]):
        col = cols[row[j]]
        c = centre[j]
        for i in range(length):
            out[i] += abs(col[start + i] - c)


@numba.njit(nogil=True, cache=KERNEL_CACHE, fastmath=True)
def _distances_to(a, b, ca, cb, cols, row, centre, dist, block_min):
    """Stores d(x, centre) in ``dist`` and block minima (bits); returns the minimum (bits)."""
    num = a.shape[0]
    bits = dist.view(np.int32)
    best = np.int32(_MAX_BITS)
    for blk in range(block_min.shape[0]):
        start = blk * _BLOCK
        length = min(_BLOCK, num - start)
        _fill(a, b, ca, cb, cols, row, centre, dist[start:], start, length)
        low = np.int32(_MAX_BITS)
        for i in range(start, start + length):
            low = min(low, bits[i])
        block_min[blk] = low
        best = min(best, low)
    return best


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def _pick_tie(bits, block_min, best, u):
    """The sample at distance ``best`` chosen by the uniform ``u`` among the tied ones."""
    num = bits.shape[0]
    tied = 0
    for blk in range(block_min.shape[0]):
        if block_min[blk] == best:
            for i in range(blk * _BLOCK, min(blk * _BLOCK + _BLOCK, num)):
                tied += bits[i] == best
    pick = min(int(u * tied), tied - 1)
    for blk in range(block_min.shape[0]):
        if block_min[blk] == best:
            for i in range(blk * _BLOCK, min(blk * _BLOCK + _BLOCK, num)):
                if bits[i] == best:
                    if pick == 0:
                        return i
                    pick -= 1
    return -1


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def _candidates(dist, reach, a, b, ca, cb, cols, row, centre, limit, skip, out_i, out_d):
    """Samples other than ``skip`` with d(x, s) <= reach (stored) and d(x, c) <= limit.

    Writes their positions (in storage order) and distances to c; returns how many.
    """
    num = dist.shape[0]
    full = num // 64
    count = 0
    for w in range(full + 1):
        base = w * 64
        word = np.uint64(0)
        if w < full:
            for g in range(8):
                word |= _mask8(dist, base + g * 8, reach) << np.uint64(g * 8)
        else:
            for i in range(base, num):
                if dist[i] <= reach:
                    word |= np.uint64(1) << np.uint64(i - base)
        while word != 0:
            i = base + _trailing_zeros(word)
            word &= word - np.uint64(1)
            d = abs(a[i] - ca) + abs(b[i] - cb)
            for j in range(2, row.shape[0]):
                d += abs(cols[row[j], i] - centre[j])
            out_i[count] = i
            out_d[count] = d
            count += (d <= limit) & (i != skip)
    return count


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def _kth_bits(values, count, k, hist, scratch):
    """The k-th smallest (1-based) of values[:count] (int32 >= 0), by radix select.

    ``values`` is left unchanged; ``scratch`` needs ``count`` entries.
    """
    lo = np.int32(_MAX_BITS)
    hi = np.int32(0)
    for i in range(count):
        lo = min(lo, values[i])
        hi = max(hi, values[i])
    src = values
    n = count
    while True:
        if lo == hi:
            return lo
        if n == 1:
            return src[0]
        span = np.int64(hi) - np.int64(lo)
        shift = 0
        while (span >> shift) >= hist.shape[0]:
            shift += 1
        hist[: (span >> shift) + 1] = 0
        for i in range(n):
            hist[(np.int64(src[i]) - lo) >> shift] += 1
        before = 0
        bucket = 0
        while before + hist[bucket] < k:
            before += hist[bucket]
            bucket += 1
        k -= before
        new_lo = np.int64(lo) + (np.int64(bucket) << shift)
        new_hi = min(np.int64(hi), new_lo + (np.int64(1) << shift) - 1)
        if shift == 0:
            return np.int32(new_lo)
        m = 0
        for i in range(n):
            v = src[i]
            scratch[m] = v
            m += (np.int64(v) >= new_lo) & (np.int64(v) <= new_hi)
        lo = np.int32(new_lo)
        hi = np.int32(new_hi)
        n = m
        src = scratch


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def _keep_below(bits, index, count, kth, k):
    """Compacts to the k nearest: all below ``kth``, then ties at ``kth`` in order."""
    below = 0
    for m in range(count):
        below += bits[m] < kth
    ties = k - below
    kept = 0
    for m in range(count):
        d = bits[m]
        at = d == kth
        keep = (d < kth) | (at & (ties > 0))
        ties -= at & keep
        bits[kept] = d
        index[kept] = index[m]
        kept += keep
    return kept


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def _keep_k_nearest(dist, index, count, k, top, hist, side_d, side_i):
    """Compacts candidates (all with distance <= top) to the k nearest, ties in order."""
    n_buckets = hist.shape[0]
    if not top < np.inf:
        top = np.float32(0.0)
        for m in range(count):
            top = max(top, dist[m])
    scale = n_buckets / np.float64(top) if top > 0 else 0.0
    hist[:] = 0
    for m in range(count):
        hist[min(int(np.float64(dist[m]) * scale), n_buckets - 1)] += 1
    before = 0
    bucket = 0
    while before + hist[bucket] < k:
        before += hist[bucket]
        bucket += 1
    if hist[bucket] >= side_d.shape[0]:
        # Many equal distances: an exact select over all candidates.
        kth = _kth_bits(dist.view(np.int32), count, k, hist, side_i)
        return _keep_below(dist.view(np.int32), index, count, kth, k)
    kept = 0
    n_side = 0
    for m in range(count):
        d = dist[m]
        i = index[m]
        at = min(int(np.float64(d) * scale), n_buckets - 1)
        dist[kept] = d
        index[kept] = i
        kept += at < bucket
        side_d[n_side] = d
        side_i[n_side] = i
        n_side += at == bucket
    # The boundary bucket: nearest first, ties in order (stable insertion sort).
    for x in range(1, n_side):
        d = side_d[x]
        i = side_i[x]
        y = x
        while y > 0 and side_d[y - 1] > d:
            side_d[y] = side_d[y - 1]
            side_i[y] = side_i[y - 1]
            y -= 1
        side_d[y] = d
        side_i[y] = i
    for x in range(k - before):
        dist[kept] = side_d[x]
        index[kept] = side_i[x]
        kept += 1
    return kept


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def run_iterations(cols, dims, points, ties, halves, k, exp, acc0, acc1):
    """Runs iterations (best grouped by first dimension, so its column stays cached).

    Args:
        cols: (D, N) float32 samples in shuffled storage order
        dims: (T, r) sorted distinct drawn dimensions
        points: (T, r) float32 drawn points
        ties: (T,) uniforms that break coverage ties
        halves: (T,) 0 or 1: which accumulator an iteration adds to
        k: neighbours penalised per iteration (<= N - 1)
        exp: exponent of the inverse-distance penalty
        acc0, acc1: (N,) int64 score accumulators in units of 2**-32
    """
    num = cols.shape[1]
    unit = np.int64(SCALE)
    r = dims.shape[1]
    zero = np.zeros(num if r == 1 else 0, dtype=np.float32)
    centre = np.zeros(max(r, 2), dtype=np.float32)
    block_min = np.empty((num + _BLOCK - 1) // _BLOCK, dtype=np.int32)
    dist = np.empty(num, dtype=np.float32)
    dist_bits = dist.view(np.int32)
    cand_d = np.empty(num, dtype=np.float32)
    cand_bits = cand_d.view(np.int32)
    cand_i = np.empty(num, dtype=np.int32)
    sample = np.empty(min(num, _SAMPLED), dtype=np.float32)
    sample_bits = sample.view(np.int32)
    hist = np.empty(1024, dtype=np.int32)
    scratch = np.empty(num, dtype=np.int32)
    bucket_hist = np.empty(_BUCKETS, dtype=np.int32)
    side_d = np.empty(_SIDE, dtype=np.float32)
    side_i = np.empty(max(_SIDE, num), dtype=np.int32)
    weights = np.empty(k, dtype=np.float64)
    n_sampled = sample.shape[0]
    bounded = k + 1 < num
    # About 2 standard deviations above the expected rank of the (k+1)-th
    # nearest among the first samples: the bound holds in ~98% of iterations.
    expected = (k + 1) * n_sampled / num
    rank = min(n_sampled, int(expected + 2.0 * math.sqrt(expected) + 2.0))
    integer_exp = exp == math.floor(exp) and exp <= 16
    for t in range(dims.shape[0]):
        acc = acc0 if halves[t] == 0 else acc1
        row = dims[t]
        a = cols[row[0]]
        b = cols[row[1]] if r > 1 else zero
        for j in range(r):
            centre[j] = points[t, j]

        # Coverage: the sample nearest to s, ties broken at random.
        best = _distances_to(a, b, centre[0], centre[1], cols, row, centre, dist, block_min)
        cover = _pick_tie(dist_bits, block_min, best, ties[t])
        acc[cover] += unit
        gap = np.float64(dist[cover])

        # Redundancy: the k nearest others of c.
        for j in range(r):
            centre[j] = cols[row[j], cover]
        ca, cb = centre[0], centre[1]
        if bounded:
            _fill(a, b, ca, cb, cols, row, centre, sample, 0, n_sampled)
        tried = rank
        while True:
            if bounded and tried <= n_sampled:
                limit = _bits_float(_kth_bits(sample_bits, n_sampled, tried, hist, scratch))
            else:
                limit = np.float32(np.inf)
            # The relative margin covers float32 rounding in the triangle inequality.
            reach = np.float32((np.float64(limit) + gap) * (1.0 + 1e-5))
            count = _candidates(dist, reach, a, b, ca, cb, cols, row, centre, limit, cover, cand_i, cand_d)
            if count >= k or not limit < np.inf:
                break
            tried = 2 * tried + 8

        nearest = np.int32(_MAX_BITS)
        for m in range(count):
            nearest = min(nearest, cand_bits[m])
        if nearest == 0:
            # An exact duplicate of c: it alone loses 1 (the earliest stored).
            duplicate = num
            for m in range(count):
                if cand_bits[m] == 0:
                    duplicate = min(duplicate, cand_i[m])
            acc[duplicate] -= unit
            continue
        if count > k:
            count = _keep_k_nearest(cand_d, cand_i, count, k, limit, bucket_hist, side_d, side_i)

        # Weights relative to the nearest distance: no overflow of d ** -exp.
        near = np.float64(_bits_float(nearest))
        total = 0.0
        for m in range(count):
            ratio = near / np.float64(cand_d[m])
            if integer_exp:
                w = 1.0
                for _ in range(int(exp)):
                    w *= ratio
            else:
                w = ratio**exp
            weights[m] = w
            total += w
        per_unit = SCALE / total
        for m in range(count):
            acc[cand_i[m]] -= np.int64(weights[m] * per_unit + 0.5)
