"""Coreset orders: one ranking per selection, the coreset at any pruning rate a prefix.

Pure numpy / scikit-learn / numba; no FiftyOne import.

:func:`coreset_order` turns per-sample scores (and, for some modes,
embeddings) into a permutation of ``range(n)``, best first. The coreset at
pruning rate ``p`` is ``order[:kept_count(n, p)]``: exactly
``n - floor(p * n)`` samples, and the set kept at a higher rate is a subset
of the set kept at a lower one (nested), in every mode. So a slider over the
pruning rate needs one order, not one selection per rate.

The modes (:data:`ORDERS`):

``"top"``
    score order (ZCore as published): best score first, ties by position.
``"ccs"``
    nested coverage-centric stratified sampling over the score (Zheng et al.,
    ICLR 2023): 50 equal-width strata over the score rank, visited round robin
    (a random order inside each stratum), so every prefix spends its budget
    evenly over the strata and a stratum that runs out leaves the rest to the
    others. The ``beta`` most extreme (best-ranked) samples are held back:
    at prefix length ``k`` the ``floor(0.4 * max(0, n/2 - k))`` best-ranked
    samples are not yet allowed (``beta`` = 0 up to 50 % pruning, rising to
    0.2 at 100 %, as in the per-rate version).
``"cluster"``
    cluster-balanced: k-means with one cluster per :data:`CLUSTER_SIZE`
    samples, best scores first inside a cluster; every cluster's best sample
    first (so a small distinct cluster is kept while any cluster is), then
    the rest merged so that every prefix keeps every cluster at about the
    same rate.
``"coverage"``
    k-center greedy (farthest-first traversal) from a seeded random start.
    The tail of a farthest-first order is the most redundant samples, so
    they are pruned first.
``"prototype"`` (:data:`DEFAULT_ORDER`)
    greedy facility location (k-median: each new sample is the one that most
    reduces the total distance from every sample to its nearest chosen one)
    for the first :data:`PROTOTYPE_FRACTION` of the order -- typical,
    representative samples while little is kept -- then a farthest-first
    continuation from that prefix, so what is pruned first at low rates is
    the most redundant. **The score only breaks exact ties** (equal gains,
    and which copy of a near-duplicate group stays): the order is driven by
    the embeddings alone. On the digits benchmark, weighting the
    facility-location gains by the ZCore score, or adding a score bonus to
    them, lowered accuracy, and a Lloyd-style refinement of nested levels
    gained nothing beyond noise (figures in ``bench/coreset_quality.py``);
    on the long-tailed benchmarks, letting the score decide among gains
    within 0.1-5 % of the best (:data:`SCORE_TOLERANCE`) moved accuracy by
    -0.016 to +0.009 with no consistent sign, so it stays at exact ties, and
    weighting representatives by their near-duplicate group size
    (:data:`COPIES_WEIGHT`) lost 0.04-0.09 at 90-95 % pruning.

Every embedding order (:data:`EMBEDDING_ORDERS`) comes in three tiers, each
merged over the blocks (below) by the quota rule:

1. the order of the mode over one representative per near-duplicate group
   (the best-scored copy), isolated samples left out;
2. the other near-duplicate copies, in rounds: the second copy of every
   group, then the third, ... So of a group of near-duplicates only one
   representative stays until the others are gone: the extra copies are the
   first pruned after the isolated samples. Two samples are near-duplicates
   when closer than :func:`.duplicates.default_radius` (0.2 x the median
   distance to the 10th neighbour in the block; exact copies always), and
   a group is a connected set of such pairs: no threshold to tune;
3. the isolated samples (the outlier guard, "junk"): representatives whose
   :data:`GUARD_NEIGHBOR`-th (2nd) neighbour among the representatives is
   more than :data:`GUARD_RATIO` x the typical such distance (the median
   over all blocks) away, least isolated first, each followed by its copies.
   A member of a small tight group (three or more samples, e.g. a rare
   class) has its 2nd neighbour inside the group, so it is not taken for
   junk: such a group keeps a member at about its share or better, while a
   single sample far from everything goes last.

``keep="lowest"`` inverts the role of the score in every mode.

Stratified orders (``stratify=True``): one order per class, merged so that
every prefix of length ``h`` holds ``floor(h * size_c / n)`` or
``ceil(h * size_c / n)`` samples of each class ``c`` -- less than one sample
from its exact share -- and exactly ``h`` in total. The rule: the ``j``-th
sample (0-based) of class ``c`` may only take a position in its window
``[floor(j n / size_c) + 1, ceil((j + 1) n / size_c)]``; it becomes due at
its Sainte-Lague target ``ceil((j + 1/2) n / size_c)``; position ``h`` goes to
the due sample with the earliest window end (ties: the class seen first),
or, if none is due, to the allowed one with the earliest target. Should that
ever leave a sample past its window (possible only with very unequal class
sizes; about 1 size mix in 400 in random trials), the classes are merged
instead by earliest window end alone (the quota method of Balinski and
Young), which never does. The same rule merges the k-means blocks and the
clusters below.

Scale: embedding modes work on blocks of at most :data:`BLOCK_SIZE` samples.
Larger inputs are split by hierarchical k-means (at most :data:`BRANCH`
clusters per split, fitted on a subsample, assigned in chunks) and the block
orders merged by the quota rule, so memory is O(n + BLOCK_SIZE^2) on top of
the embeddings (which are never copied whole nor converted to float64; each
block is copied to float64) and time about O(n * BLOCK_SIZE * d). Measured
with ``bench/order_speed.py`` on 1,000,000 x 512 float32 clustered data
(1.91 GiB) on 2 shared cores: ``"prototype"`` 143 s, ``"coverage"`` 60 s,
``"cluster"`` 252 s, ``"ccs"`` 1.7 s, ``"top"`` 0.6 s; peak RSS 2.52 GiB
(1.32x the matrix, the matrix included). These figures predate the three
tiers, which read every block twice (near-duplicates and isolation first,
then the order over the representatives): ``"prototype"`` on 100,000 x 128
clustered data took 30-54 s against 17-37 s before (two runs each, load
average ~19 on 2 cores); at 1M x 512 through the database
(``bench/scale.py --phases order --selections prototype``, load average
2-6) ``"prototype"`` took 192 s, peak RSS 2.91 GiB (1.52x the matrix).
"""

import heapq
import math
import warnings

import numba
import numpy as np

from . import KERNEL_CACHE, params
from .duplicates import REFERENCE_NEIGHBOR, default_radius

__all__ = [
    "ORDERS",
    "DEFAULT_ORDER",
    "EMBEDDING_ORDERS",
    "coreset_order",
    "kept_count",
    "kept_positions",
    "ranks_from_order",
    "class_counts",
    "order_uses",
]

ORDERS = ("top", "ccs", "cluster", "coverage", "prototype")
DEFAULT_ORDER = "prototype"
EMBEDDING_ORDERS = frozenset({"cluster", "coverage", "prototype"})

#: number of score strata in ``"ccs"`` (as in Zheng et al.)
CCS_STRATA = 50
#: ``"ccs"`` holds back the ``CCS_SLOPE * max(0, p - 0.5)`` most extreme fraction at pruning rate p
CCS_SLOPE = 0.4
#: samples per k-means cluster in ``"cluster"``
CLUSTER_SIZE = 20
#: share of each block ordered by facility location in ``"prototype"``
PROTOTYPE_FRACTION = 0.3
#: largest block the embedding modes solve directly
BLOCK_SIZE = 2048
#: most clusters per split of the hierarchical k-means blocking
BRANCH = 32
#: rows of the subsample each blocking k-means is fitted on
BLOCK_FIT_ROWS = 16384
#: facility-location gains within this fraction of the best count as equal (the score decides);
#: 0: the score breaks exact ties only (score-steered variants were measured, see the module docstring)
SCORE_TOLERANCE = 0.0
#: facility location weighs each representative by the size of its near-duplicate group
COPIES_WEIGHT = False
#: neighbour used by the outlier guard: a sample with two close neighbours is not isolated
GUARD_NEIGHBOR = 2
#: the guard defers a sample whose GUARD_NEIGHBOR-th neighbour is this many times farther than typical
GUARD_RATIO = 2.0

_ROWS = 32768  # rows per chunk when scanning the embeddings


# ------------------------------------------------------------------ public


def kept_count(n, prune_rate):
    """Number of samples kept out of ``n`` at ``prune_rate``: ``n - floor(prune_rate * n)``.

    The product is snapped to the nearest integer when it is within 1e-6
    (relative) of it, so ``prune_rate=0.29`` with ``n=100`` prunes 29 as
    written (floating point computes 28.999999999999996; a float32 0.29 gives
    28.99999917). At least one sample is kept whenever ``n > 0``.
    """
    prune_rate = _check_rate(prune_rate)
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    x = float(prune_rate) * n
    r = round(x)
    drop = r if abs(x - r) <= 1e-6 * max(1.0, x) else math.floor(x)
    return n - min(int(drop), max(n - 1, 0))


def kept_positions(order, prune_rate):
    """The kept positions at ``prune_rate`` (sorted ascending): ``order[:kept_count]``."""
    order = np.asarray(order, dtype=np.int64)
    return np.sort(order[: kept_count(len(order), prune_rate)])


def ranks_from_order(order):
    """``rank[i]`` = the position of sample ``i`` in ``order`` (0 = kept longest).

    Sample ``i`` is kept at pruning rate ``p`` iff ``rank[i] < kept_count(n, p)``.
    """
    order = np.asarray(order, dtype=np.int64)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank


def class_counts(sizes, kept):
    """Per-class counts in a stratified prefix of length ``kept`` (the quota rule).

    Args:
        sizes: class sizes (non-negative integers), in class order
        kept: prefix length, ``0 <= kept <= sum(sizes)``

    Returns:
        int64 array: ``floor`` or ``ceil`` of ``kept * size / n`` per class,
        summing to ``kept``
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    kept = int(kept)
    if not 0 <= kept <= int(sizes.sum()):
        raise ValueError(f"kept must be in [0, {int(sizes.sum())}], got {kept}")
    seq = _interleave(sizes)
    return np.bincount(seq[:kept], minlength=len(sizes)).astype(np.int64)


def coreset_order(
    scores,
    *,
    embeddings=None,
    mode=DEFAULT_ORDER,
    keep="highest",
    labels=None,
    stratify=False,
    seed=0,
    progress=None,
):
    """Returns the coreset order: a permutation of ``range(n)``, best first.

    The coreset at pruning rate ``p`` is ``order[:kept_count(n, p)]``
    (see :func:`kept_positions`); coresets are nested across rates.

    Args:
        scores: array-like of shape (n,) of finite numbers (drop samples with
            missing scores first)
        embeddings: array-like of shape (n, d) of finite numbers; needed by
            the modes in :data:`EMBEDDING_ORDERS`. float32 input is used as
            is (never copied whole)
        mode: one of :data:`ORDERS` (default :data:`DEFAULT_ORDER`)
        keep: ``"highest"`` (a higher score is kept longer, ZCore) or
            ``"lowest"`` (inverts the role of the score)
        labels: array-like of shape (n,) of hashable class labels, used when
            ``stratify`` is True
        stratify: keep every class at the same rate in every prefix (the
            quota rule, see the module docstring) with one order per class
        seed: integer seed of the randomised parts (``"ccs"`` strata order,
            ``"coverage"`` start, k-means); the order is deterministic for
            given inputs and seed. ``None`` means 0
        progress: optional callable receiving the fraction done in [0, 1]

    Returns:
        int64 array of shape (n,)

    Raises:
        ValueError: on invalid inputs, with a one-sentence message naming
            the parameter
    """
    scores = _check_scores(scores)
    n = len(scores)
    mode = params.choice("mode", mode, ORDERS)
    keep = params.choice("keep", keep, ("highest", "lowest"))
    if mode in EMBEDDING_ORDERS and embeddings is None:
        raise ValueError(
            f"mode={mode!r} needs embeddings (an array of shape (n, d)); "
            "pass embeddings= or use mode='top' or 'ccs'"
        )
    emb = None if embeddings is None else _check_embeddings(embeddings, n)
    seed = 0 if seed is None else params.seed(seed)  # deterministic by default: an order is reproducible
    progress = params.callback("progress", progress)
    if stratify:
        if labels is None:
            raise ValueError("stratify=True needs labels (one per score)")
        groups = _group_positions(labels, n)
    else:
        if labels is not None and len(labels) != n:
            raise ValueError(f"labels must have length {n} (one per score), got {len(labels)}")
        groups = [np.arange(n, dtype=np.int64)]

    report = _Progress(progress)
    report(0.0)
    # priority 0 = best score; ties by position (stable sort)
    priority = ranks_from_order(np.argsort(-scores if keep == "highest" else scores, kind="stable"))
    parts = []
    done = 0
    for g, pos in enumerate(groups):
        sub = report.sub(done / max(n, 1), (done + len(pos)) / max(n, 1))
        rng_seed = [seed, g] if stratify else [seed]
        parts.append(_group_order(mode, pos, priority, emb, rng_seed, sub))
        done += len(pos)
    order = _quota_merge(parts) if len(parts) > 1 else parts[0]
    report(1.0)
    return order


# ------------------------------------------------------------- validation


def _check_rate(prune_rate):
    return params.fraction("prune_rate", prune_rate)


def _check_scores(scores):
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {scores.shape}")
    try:
        scores = scores.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(
            "scores must be numbers; drop samples whose score is None before ordering"
        ) from e
    bad = ~np.isfinite(scores)
    if bad.any():
        nan = int(np.isnan(scores).sum())
        what = f"{nan} NaN" if nan else f"{int(bad.sum())} infinite"
        raise ValueError(
            f"scores must be finite, got {what} value(s); drop samples with missing "
            "(None/NaN) or infinite scores first"
        )
    return scores


def _check_embeddings(embeddings, n):
    emb = embeddings if isinstance(embeddings, np.ndarray) else np.asarray(embeddings)
    if emb.dtype.kind not in "f" or emb.dtype.itemsize < 4:
        try:
            emb = emb.astype(np.float32)
        except (TypeError, ValueError) as e:
            raise ValueError("embeddings must be numbers, an array of shape (n, d)") from e
    if emb.ndim == 1:
        emb = emb[:, None]
    if emb.ndim != 2 or emb.shape[0] != n or emb.shape[1] < 1:
        raise ValueError(
            f"embeddings must have shape (n, d) with n={n} (one row per score), got {emb.shape}"
        )
    for start in range(0, n, _ROWS):
        if not np.isfinite(emb[start : start + _ROWS]).all():
            raise ValueError("embeddings must be finite, got NaN or infinite values")
    return emb


def _group_positions(labels, n):
    """Positions of each class, classes in order of first occurrence."""
    labels = np.asarray(labels, dtype=object)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) (one per score), got {labels.shape}")
    index = {}
    codes = np.empty(n, dtype=np.int64)
    for i, lab in enumerate(labels):
        key = lab.item() if isinstance(lab, np.generic) else lab
        try:
            codes[i] = index.setdefault(key, len(index))
        except TypeError as e:
            raise ValueError(f"labels must be hashable, got {lab!r}") from e
    if n == 0:
        return [np.zeros(0, dtype=np.int64)]
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(index)))[:-1]
    return np.split(order.astype(np.int64), bounds)


class _Progress:
    """Maps a sub-range of the work onto [lo, hi] of the caller's callback."""

    def __init__(self, fn, lo=0.0, hi=1.0):
        self.fn, self.lo, self.hi = fn, lo, hi

    def __call__(self, frac):
        if self.fn is not None:
            self.fn(float(min(1.0, max(0.0, self.lo + (self.hi - self.lo) * frac))))

    def sub(self, a, b):
        span = self.hi - self.lo
        return _Progress(self.fn, self.lo + span * a, self.lo + span * b)


# ------------------------------------------------------------ merging


def _interleave(sizes):
    """Which part each position of a merged order comes from (the quota rule).

    Item ``j`` (0-based) of a part of size ``s`` out of ``n`` has the window
    ``[floor(j n / s) + 1, ceil((j + 1) n / s)]`` of 1-based positions: any
    order that places every item inside its window keeps every prefix ``h``
    at ``floor(h s / n)`` or ``ceil(h s / n)`` items of every part.
    :func:`_centred_sequence` places items near their Sainte-Lague targets
    ``(j + 1/2) n / s``; in the rare case it would miss a window (very
    unequal sizes), :func:`_edf_sequence` (the quota method of Balinski and
    Young: earliest deadline first, which never misses) is used instead.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    seq = _centred_sequence(sizes)
    return _edf_sequence(sizes) if seq is None else seq


def _windows(j, s, n):
    """(release, Sainte-Lague target, deadline) positions of item ``j`` of a part of size ``s``."""
    release = j * n // s + 1
    target = -(-(2 * j + 1) * n // (2 * s))
    return release, max(release, target), -(-(j + 1) * n // s)


def _centred_sequence(sizes):
    """Items due at their target go earliest deadline first (ties: lower part);
    when none is due, the released item with the earliest target. None if a
    deadline would be missed."""
    sz = [int(x) for x in sizes]
    n = sum(sz)
    out = np.empty(n, dtype=np.int64)
    nxt = [0] * len(sz)
    win = {c: _windows(0, s, n) for c, s in enumerate(sz) if s > 0}
    waiting = [(w[1], c) for c, w in win.items()]  # (target, part)
    heapq.heapify(waiting)
    due = []  # (deadline, part)
    for h in range(1, n + 1):
        while waiting and waiting[0][0] <= h:
            _, c = heapq.heappop(waiting)
            heapq.heappush(due, (win[c][2], c))
        if due:
            _, c = heapq.heappop(due)
        else:  # nothing due: the earliest target among the released items
            skipped = []
            while True:
                item = heapq.heappop(waiting)
                if win[item[1]][0] <= h:
                    break
                skipped.append(item)
            for it in skipped:
                heapq.heappush(waiting, it)
            c = item[1]
        if win[c][2] < h:
            return None
        out[h - 1] = c
        nxt[c] += 1
        if nxt[c] < sz[c]:
            win[c] = _windows(nxt[c], sz[c], n)
            heapq.heappush(waiting, (win[c][1], c))
    return out


def _edf_sequence(sizes):
    """The quota method: among released items, earliest deadline first (ties: lower part).

    Unit jobs with integer windows: earliest deadline first meets every
    deadline whenever some order does, and the quota method's existence
    (Balinski and Young, 1975) says one does.
    """
    sz = [int(x) for x in sizes]
    n = sum(sz)
    out = np.empty(n, dtype=np.int64)
    nxt = [0] * len(sz)
    ready = [(_windows(0, s, n)[2], c) for c, s in enumerate(sz) if s > 0]  # (deadline, part)
    heapq.heapify(ready)
    pending = []  # (release, part)
    for h in range(1, n + 1):
        while pending and pending[0][0] <= h:
            _, c = heapq.heappop(pending)
            heapq.heappush(ready, (_windows(nxt[c], sz[c], n)[2], c))
        deadline, c = heapq.heappop(ready)
        if deadline < h:  # pragma: no cover - impossible by the quota theorem
            raise RuntimeError("quota merge missed a deadline")
        out[h - 1] = c
        nxt[c] += 1
        if nxt[c] < sz[c]:
            heapq.heappush(pending, (_windows(nxt[c], sz[c], n)[0], c))
    return out


def _quota_merge(parts):
    """Merges orders (arrays of positions) by :func:`_interleave` over their lengths."""
    sizes = np.array([len(p) for p in parts], dtype=np.int64)
    if len(parts) == 1:
        return np.asarray(parts[0], dtype=np.int64)
    seq = _interleave(sizes)
    # the j-th occurrence of part c takes parts[c][j]
    order = np.argsort(seq, kind="stable")
    flat = np.concatenate([np.asarray(p, dtype=np.int64) for p in parts])
    out = np.empty(len(seq), dtype=np.int64)
    out[order] = flat
    return out


# ------------------------------------------------------------ score modes


def _group_order(mode, pos, priority, emb, rng_seed, report):
    """Order of the samples at global positions ``pos`` (returned as global positions)."""
    pri = priority[pos]
    if len(pos) <= 1:
        return pos.copy()
    if mode == "top":
        return pos[np.argsort(pri, kind="stable")]
    if mode == "ccs":
        return pos[_ccs_order(pri, np.random.default_rng(rng_seed))]
    solver = {"prototype": _prototype_block, "coverage": _coverage_block, "cluster": _cluster_block}[mode]
    return _blocked_order(solver, pos, pri, emb, rng_seed, report)


def _ccs_order(pri, rng):
    """Nested CCS over local priorities ``pri`` (0 = best); returns local indices."""
    n = len(pri)
    rank = np.argsort(np.argsort(pri, kind="stable"), kind="stable")  # 0..n-1, 0 = best
    good = 1.0 - rank / n
    lo, hi = good.min(), good.max()
    span = hi - lo if hi > lo else 1.0
    strata = np.minimum(((good - lo) / span * CCS_STRATA).astype(np.int64), CCS_STRATA - 1)
    # a random order inside each stratum, then round robin: j-th of every stratum,
    # smaller strata first on equal j (they run out first), then stratum index
    perm = rng.permutation(n)
    by_stratum = perm[np.argsort(strata[perm], kind="stable")]
    counts = np.bincount(strata, minlength=CCS_STRATA)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    j = np.empty(n, dtype=np.int64)
    j[by_stratum] = np.arange(n) - starts[strata[by_stratum]]
    base = np.lexsort((strata, counts[strata], j))
    # held back: rank r is allowed in prefixes of length k > n/2 - 2.5 (r + 1)
    release = np.maximum(1, (n - 5 * (rank + 1)) // 2 + 1)
    out = np.empty(n, dtype=np.int64)
    ready, pending = [], []  # ready: (position in base, i); pending: (release, position, i)
    ptr = 0
    for k in range(1, n + 1):
        while pending and pending[0][0] <= k:
            _, p, i = heapq.heappop(pending)
            heapq.heappush(ready, (p, i))
        while ptr < n and release[base[ptr]] > k:
            heapq.heappush(pending, (int(release[base[ptr]]), ptr, int(base[ptr])))
            ptr += 1
        if ready and (ptr >= n or ready[0][0] < ptr):
            _, i = heapq.heappop(ready)
        else:
            i = int(base[ptr])
            ptr += 1
        out[k - 1] = i
    return out


# -------------------------------------------------------- embedding modes


def _blocked_order(solver, pos, pri, emb, rng_seed, report):
    """Splits ``pos`` into blocks of at most BLOCK_SIZE and orders each in three tiers.

    Per block (:func:`_tiers`): the kept tier (one representative per
    near-duplicate group, isolated samples left out) ordered by ``solver``,
    then the extra near-duplicate copies, then the isolated samples. Each tier
    is merged over the blocks by quota and the tiers are concatenated, so
    extra copies and isolated samples are the first pruned in the whole order.
    Isolation is judged against the typical distance over all blocks, so a
    far sample that k-means split off into a tiny block still counts as isolated.
    """
    rng = np.random.default_rng(rng_seed)
    if len(pos) <= BLOCK_SIZE:
        blocks = [np.arange(len(pos))]
    else:
        blocks = _split_blocks(emb, pos, rng, report.sub(0.0, 0.1))
    report = report.sub(0.1 if len(blocks) > 1 else 0.0, 1.0)
    found = []
    for local in blocks:  # near-duplicate groups and isolation, block by block
        found.append(_groups(_distances(_block_matrix(emb, pos[local])), pri[local], single=len(blocks) == 1))
    kd = np.concatenate([f[3] for f in found])
    kd = kd[np.isfinite(kd)]
    threshold = GUARD_RATIO * np.median(kd) if len(kd) else np.inf
    tiers = ([], [], [])
    done = 0
    for b, (local, f) in enumerate(zip(blocks, found)):
        main, extras, late = _tiers(*f, pri[local], threshold)
        first = main
        if len(main) > 1:
            x = _block_matrix(emb, pos[local[main]])
            sub = _distances(x)
            copies = np.bincount(f[0])[f[0][main]].astype(np.float64)  # group size of each representative
            first = main[solver(sub, x, pri[local][main], np.random.default_rng(list(rng_seed) + [b]), copies)]
            del sub
        for tier, part in zip(tiers, (first, extras, late)):
            tier.append(pos[local[part]])
        done += len(local)
        report(done / len(pos))
    return np.concatenate([_quota_merge(t) for t in tiers])


def _block_matrix(emb, rows):
    """The block's embeddings as float64, centred."""
    x = np.asarray(emb[rows], dtype=np.float64)
    return x - x.mean(0)


def _split_blocks(emb, pos, rng, report):
    """Hierarchical k-means: local index arrays (into ``pos``) of at most BLOCK_SIZE."""
    from sklearn.cluster import KMeans

    blocks = []
    total = len(pos)
    stack = [np.arange(len(pos), dtype=np.int64)]
    while stack:
        local = stack.pop()
        m = len(local)
        if m <= BLOCK_SIZE:
            blocks.append(local)
            report(sum(len(b) for b in blocks) / total)
            continue
        k = int(min(BRANCH, math.ceil(m / (BLOCK_SIZE // 2))))
        fit = local if m <= BLOCK_FIT_ROWS else np.sort(rng.choice(local, BLOCK_FIT_ROWS, replace=False))
        km = KMeans(n_clusters=k, n_init=1, max_iter=50, random_state=int(rng.integers(2**31)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning on duplicate points
            # a float64 copy of the subsample only: sklearn's float32 path upcasts in slow chunks
            km.fit(np.asarray(emb[pos[fit]], dtype=np.float64))
        centers = km.cluster_centers_.astype(np.float32)
        c2 = (centers * centers).sum(1)
        lab = np.empty(m, dtype=np.int64)
        for s in range(0, m, _ROWS):
            x = emb[pos[local[s : s + _ROWS]]]
            lab[s : s + _ROWS] = np.argmin(c2[None, :] - 2.0 * (x @ centers.T), axis=1)
        sizes = np.bincount(lab, minlength=k)
        if sizes.max() == m:  # degenerate (duplicates): split in order
            lab = np.arange(m) * k // m
        children = [local[lab == c] for c in range(k)]
        # depth first, cluster order: push reversed so cluster 0 is solved first
        stack.extend(ch for ch in reversed(children) if len(ch))
    return blocks


def _distances(x):
    """Euclidean distance matrix of the rows of ``x`` (float64, symmetric, zero diagonal)."""
    sq = np.einsum("ij,ij->i", x, x)
    d = x @ x.T
    d *= -2.0
    d += sq[:, None]
    d += sq[None, :]
    np.maximum(d, 0.0, out=d)
    np.sqrt(d, out=d)
    d = np.minimum(d, d.T)
    np.fill_diagonal(d, 0.0)
    return d


def _kth_neighbour(dist, k):
    """Distance of every sample to its ``k``-th neighbour (capped at n - 1; 0 if none)."""
    n = len(dist)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros(n)
    return np.partition(dist, k, axis=1)[:, k].copy()  # a copy: a column view would keep the n x n partition alive


def _isolation(dist):
    """Distance of every sample to its GUARD_NEIGHBOR-th neighbour (0 if none)."""
    return _kth_neighbour(dist, GUARD_NEIGHBOR)


def _outlier_mask(dist, kd=None):
    """True for isolated samples: GUARD_NEIGHBOR-th neighbour farther than GUARD_RATIO x the median.

    A member of a small tight group (three or more samples) has its
    GUARD_NEIGHBOR-th neighbour inside the group, so only single samples
    (and pairs) far from everything are deferred.
    """
    kd = _isolation(dist) if kd is None else kd
    med = np.median(kd) if len(kd) else 0.0
    if med == 0:  # no typical distance (tiny input, mostly duplicates): no guard
        return np.zeros(len(kd), bool)
    return kd > GUARD_RATIO * med


def _duplicate_groups(dist):
    """Near-duplicate group of every sample (connected components of close pairs).

    A pair is close when its distance is below :func:`.duplicates.default_radius`
    of the block (RADIUS_RATIO x the median distance to the REFERENCE_NEIGHBOR-th
    neighbour), or zero up to rounding (exact copies always count).
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    radius = default_radius(_kth_neighbour(dist, REFERENCE_NEIGHBOR))
    close = dist < max(radius, 1e-6 * float(dist.max(initial=0.0)))
    return connected_components(csr_matrix(close), directed=False)[1]


def _groups(dist, pri, single=True):
    """Near-duplicate groups of a block: ``(group, copy, reps, kd)``.

    ``group``: group id per sample; ``copy``: rank in its group (0 = the
    representative, the best ``priority``); ``reps``: the representatives;
    ``kd``: their isolation among the representatives (the GUARD_NEIGHBOR-th
    neighbour's distance; infinite when one of several blocks has too few
    representatives to measure it, i.e. k-means split them off). Isolation is
    measured among the representatives, so copies do not hide a junk sample.
    """
    n = len(dist)
    group = _duplicate_groups(dist)
    by = np.lexsort((pri, group))  # group by group, best priority first
    start = np.r_[True, group[by][1:] != group[by][:-1]]
    run = np.arange(n) - np.maximum.accumulate(np.where(start, np.arange(n), 0))  # copy number in group
    copy = np.empty(n, dtype=np.int64)
    copy[by] = run
    reps = np.flatnonzero(copy == 0)
    if not single and len(reps) <= GUARD_NEIGHBOR:
        kd = np.full(len(reps), np.inf)
    else:
        kd = _isolation(dist[np.ix_(reps, reps)])
    return group, copy, reps, kd


def _tiers(group, copy, reps, kd, pri, threshold):
    """Local index arrays ``(main, extras, late)`` of a block.

    ``main``: one representative per near-duplicate group, isolated ones
    (``kd > threshold``, a positive threshold) left out; ``extras``: the other
    copies in rounds (the second copy of every group, then the third, ...;
    by priority inside a round), so a group keeps one member until all its
    copies are gone; ``late``: the groups of isolated representatives, least
    isolated first (then priority), each its representative then its copies.
    """
    isolated = kd > threshold if threshold > 0 else np.zeros(len(reps), bool)
    group_kd = np.full(group.max() + 1, -1.0)
    group_kd[group[reps[isolated]]] = kd[isolated]
    junk = group_kd[group] >= 0
    main = reps[~isolated]
    rest = np.flatnonzero((copy > 0) & ~junk)
    extras = rest[np.lexsort((pri[rest], copy[rest]))]
    late = np.flatnonzero(junk)
    group_pri = np.zeros(len(group_kd), dtype=np.int64)
    group_pri[group[reps]] = pri[reps]
    # junk groups least isolated first (ties: priority), each its representative then its copies
    late = late[np.lexsort((copy[late], group_pri[group[late]], group_kd[group[late]]))]
    return main, extras, late


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def _facility_location(sim, count, allowed, priority, tol=0.0, weight=None):  # pragma: no cover - numba
    """Greedy facility location on a symmetric similarity matrix.

    Maximises sum_i max_{j in S} sim[i, j] (cover starts at 0), choosing among
    ``allowed``; gains within ``tol`` (relative) of the best count as equal
    and go to the lower ``priority``. Gains are updated incrementally for the
    samples whose best cover changed.
    """
    n = sim.shape[0]
    w = np.ones(n) if weight is None else weight
    gain = np.zeros(n)
    for i in range(n):
        s = 0.0
        for c in range(n):
            s += w[c] * sim[i, c]
        gain[i] = s
    cover = np.zeros(n)
    taken = np.zeros(n, np.bool_)
    out = np.empty(count, np.int64)
    k = 0
    for _ in range(count):
        bg = -np.inf
        for i in range(n):
            if not taken[i] and allowed[i] and gain[i] > bg:
                bg = gain[i]
        if bg == -np.inf:
            break
        floor = bg - tol * abs(bg)
        best = -1
        bp = np.iinfo(np.int64).max
        for i in range(n):
            if not taken[i] and allowed[i] and gain[i] >= floor and priority[i] < bp:
                best, bp = i, priority[i]
        out[k] = best
        k += 1
        taken[best] = True
        for c in range(n):
            new = sim[best, c]
            old = cover[c]
            if new > old:
                for i in range(n):
                    v = sim[c, i]
                    if v > old:
                        gain[i] -= w[c] * ((v - old) if v <= new else (new - old))
                cover[c] = new
    return out[:k]


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def _farthest_first(dist, prefix, allowed, priority):  # pragma: no cover - numba
    """``prefix``, then farthest-first over the rest of ``allowed``.

    Each step takes the allowed sample farthest from everything taken so far;
    equal distances (e.g. duplicates, or the first step without a prefix) go
    to the lower ``priority``. Returns the prefix and the allowed samples.
    """
    n = dist.shape[0]
    order = np.empty(n, np.int64)
    taken = np.zeros(n, np.bool_)
    near = np.full(n, np.inf)
    k = 0
    for p in prefix:
        order[k] = p
        k += 1
        taken[p] = True
        for i in range(n):
            if dist[p, i] < near[i]:
                near[i] = dist[p, i]
    while k < n:
        best = -1
        bd = -1.0
        bp = np.iinfo(np.int64).max
        for i in range(n):
            if taken[i] or not allowed[i]:
                continue
            d = near[i]
            if d > bd or (d == bd and priority[i] < bp):
                best, bd, bp = i, d, priority[i]
        if best < 0:
            break
        order[k] = best
        k += 1
        taken[best] = True
        for i in range(n):
            if dist[best, i] < near[i]:
                near[i] = dist[best, i]
    return order[:k]


def _prototype_block(dist, x, pri, rng, copies=None):
    """Facility location for the first PROTOTYPE_FRACTION, then farthest-first."""
    n = len(dist)
    if n <= 1:
        return np.arange(n)
    everyone = np.ones(n, bool)
    count = max(1, int(math.ceil(PROTOTYPE_FRACTION * n)))
    sim = dist.max() - dist
    weight = copies if COPIES_WEIGHT and copies is not None else np.ones(n)
    prefix = _facility_location(sim, count, everyone, pri, SCORE_TOLERANCE, weight)
    del sim
    return _farthest_first(dist, prefix, everyone, pri)


def _coverage_block(dist, x, pri, rng, copies=None):
    """k-center greedy from a seeded random start."""
    n = len(dist)
    if n <= 1:
        return np.arange(n)
    first = np.array([rng.integers(n)], dtype=np.int64)
    return _farthest_first(dist, first, np.ones(n, bool), pri)


def _kmeans_seeds(d2, k, rng):
    """k-means++ seeding (Arthur and Vassilvitskii) on a squared-distance matrix."""
    n = len(d2)
    seeds = [int(rng.integers(n))]
    closest = d2[seeds[0]].copy()
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # every sample sits on a seed (duplicates): any unused one
            j = int(np.flatnonzero(~np.isin(np.arange(n), seeds))[0])
        else:
            j = int(np.searchsorted(np.cumsum(closest), rng.random() * total, side="right"))
            j = min(j, n - 1)
        seeds.append(j)
        np.minimum(closest, d2[j], out=closest)
    return np.asarray(seeds, dtype=np.int64)


def _cluster_block(dist, x, pri, rng, copies=None):
    """k-means; every cluster's best sample first, then the rest merged by the quota rule."""
    from sklearn.cluster import KMeans

    n = len(dist)
    k = max(1, min(n, int(round(n / CLUSTER_SIZE))))
    if k == 1:
        return np.argsort(pri, kind="stable")
    d2 = dist * dist
    # k-means++ seeds from the block's distances (sklearn's own seeding costs more
    # than the Lloyd iterations here), then Lloyd
    init = x[_kmeans_seeds(d2, k, rng)]
    del d2
    km = KMeans(n_clusters=k, init=init, n_init=1, max_iter=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on duplicate points
        lab = km.fit_predict(x)
    parts = []
    for c in range(k):
        members = np.flatnonzero(lab == c)
        if len(members):
            parts.append(members[np.argsort(pri[members], kind="stable")])
    merged = _quota_merge(parts)
    head = np.zeros(n, bool)
    head[[p[0] for p in parts]] = True
    # the heads first (a small distinct cluster keeps its best sample while any cluster is kept)
    return np.concatenate([merged[head[merged]], merged[~head[merged]]])


_USES = {
    "prototype": "embeddings only (the score just breaks ties, e.g. which near-duplicate stays)",
    "coverage": "embeddings only, farthest-first (the score just breaks ties, e.g. which near-duplicate stays)",
    "cluster": "score within clusters of the embeddings",
    "ccs": "score strata (every score range kept evenly)",
    "top": "score only (best scores first)",
}


def order_uses(mode):
    """One line saying what the order of ``mode`` uses (for the panel and saved-view descriptions)."""
    return _USES[params.choice("mode", mode, ORDERS)]
