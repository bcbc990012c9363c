"""Reference copy of the per-rate coreset selection the plugin had (core/selection.py)
before the nested coreset orders (core/order.py) replaced it.

Bench-only: ``bench/coreset_quality.py`` uses it for the "per-rate prototype"
reference row. The code is unchanged except that :func:`kept_count` is
core.order's (same counts, with the floating-point rounding fix), so both
sides of a comparison keep exactly the same number of samples.

Original module docstring follows.

Pure numpy / scikit-learn; no FiftyOne import.

:func:`select_coreset` keeps exactly ``n - floor(prune_rate * n)`` of ``n``
samples. The ``selection`` modes are

``"top"``
    the samples with the best scores (ZCore as published).
``"ccs"``
    coverage-centric stratified sampling on the score (Zheng et al., ICLR
    2023, "Coverage-centric Coreset Selection for High Pruning Rates"): drop
    the ``beta`` fraction with the most extreme scores (the ones ``"top"``
    would keep first; ``beta`` rises with the pruning rate), cut the rest into
    50 equal-width score strata and spend the budget evenly across them
    (smallest stratum first), sampling at random inside a stratum.
``"cluster"``
    cluster-balanced: k-means on the embeddings with one cluster per
    :data:`CLUSTER_SIZE` kept samples, the same fraction kept from every
    cluster (largest-remainder rounding), best scores first inside a cluster.
``"coverage"``
    k-center greedy (farthest-first traversal) on the embeddings with an
    outlier guard: samples whose 10-th-neighbour distance is far above the
    bulk (median + 6 MAD) are only taken once every other sample is.
``"prototype"`` (:data:`DEFAULT_SELECTION`)
    k-means prototypes: k = number kept, one sample kept per cluster (the one
    nearest its centroid). What changes with the pruning rate is how the
    k-means is seeded (:func:`prototype_alpha`): up to 75 % pruning by k-center
    greedy from the most central sample (coverage: the atypical samples
    matter while much is kept), from 85 % by greedy facility location
    (k-median: typical, representative samples matter when little is kept;
    a seeded jitter and the score break near-ties), a mix in between. Lloyd
    iterations then move every seed to the middle of the part of the data it
    stands for. Scores only break ties here: the selection is driven by the
    embeddings.

Why ``"prototype"`` is the default: on the digits benchmark
(``bench/coreset_quality.py``) it is the only mode that matches or beats every
baseline (random, ZCore top, FiftyOne Brain representativeness/uniqueness,
k-center greedy) at every pruning rate from 30 to 95 %, by the widest margins
at high rates (about +0.05 over k-center greedy at 95 %), and with 5 % noise
images and 20 % near-duplicates planted it stays ahead of random at every
rate and of k-center greedy at 90-95 %. Score-only orders (``"top"``)
concentrate the kept set at high pruning rates and lose to random there;
plain k-center greedy (``"coverage"`` without outliers) chases outliers.

Embedding modes work on blocks of at most :data:`BLOCK_SIZE` samples: larger
inputs are first split by k-means into blocks and the budget is shared
between blocks in proportion to their sizes (largest remainder), so memory is
O(BLOCK_SIZE^2) and time about O(n * BLOCK_SIZE * d).
"""

import math
import warnings

import numpy as np

from coreset_curation.core.order import kept_count as _kept_count

__all__ = [
    "DEFAULT_SELECTION",
    "SELECTIONS",
    "EMBEDDING_SELECTIONS",
    "select_coreset",
    "kept_count",
    "class_budgets",
]

SELECTIONS = ("top", "ccs", "cluster", "coverage", "prototype")
EMBEDDING_SELECTIONS = frozenset({"cluster", "coverage", "prototype"})
DEFAULT_SELECTION = "prototype"

#: kept samples per k-means cluster in ``"cluster"`` mode
CLUSTER_SIZE = 1
#: number of score strata in ``"ccs"`` mode (as in Zheng et al.)
CCS_STRATA = 50
#: largest block the embedding modes solve directly
BLOCK_SIZE = 2048
#: neighbour used for the outlier guard of ``"coverage"``
GUARD_NEIGHBOR = 10
#: robust z (in MADs above the median) beyond which ``"coverage"`` defers a sample
GUARD_MADS = 6.0


def kept_count(n, prune_rate):
    """Number of samples kept out of ``n``: core.order.kept_count."""
    _check_rate(prune_rate)
    return _kept_count(n, prune_rate)


def class_budgets(sizes, prune_rate):
    """Kept count per class for a stratified selection.

    Every class keeps ``size - floor(prune_rate * size)`` samples, so each
    class is pruned at (at most) the global rate. The per-class floors drop
    ``sum(floor(rate * size))`` samples, which can be short of the global
    ``floor(rate * n)`` by up to (number of classes - 1). The missing drops go
    one each to the classes with the largest fractional part
    ``rate * size - floor(rate * size)`` (largest-remainder / Hamilton
    allocation); classes that would become empty come last, then ties go to
    the earlier class. The total kept is therefore exactly
    ``n - floor(prune_rate * n)`` and no class is off its exact share
    ``(1 - rate) * size`` by a full sample.

    Args:
        sizes: class sizes (non-negative integers)
        prune_rate: in [0, 1)

    Returns:
        int64 array of kept counts, one per class
    """
    _check_rate(prune_rate)
    sizes = np.asarray(sizes, dtype=np.int64)
    exact = prune_rate * sizes
    drops = np.floor(exact).astype(np.int64)
    total_drop = int(math.floor(prune_rate * int(sizes.sum())))
    extra = total_drop - int(drops.sum())
    if extra > 0:
        frac = exact - drops
        empties = (sizes - drops) <= 1
        order = np.lexsort((np.arange(len(sizes)), -frac, empties))
        order = order[frac[order] > 0][:extra]
        drops[order] += 1
        short = extra - len(order)
        if short > 0:  # only reachable through float rounding: largest classes
            room = np.flatnonzero(sizes - drops > 0)
            room = room[np.lexsort((room, -(sizes - drops)[room]))][:short]
            drops[room] += 1
    return sizes - drops


def select_coreset(
    scores,
    prune_rate,
    *,
    keep="highest",
    selection="top",
    labels=None,
    stratify=False,
    embeddings=None,
    seed=None,
):
    """Returns the positions of the samples to keep.

    Args:
        scores: array-like of shape (n,) of finite numbers (drop samples with
            missing / NaN scores before calling)
        prune_rate: fraction to prune, in [0, 1); exactly
            ``n - floor(prune_rate * n)`` samples are kept
        keep: ``"highest"`` (higher score = keep first, ZCore) or
            ``"lowest"`` (inverts the score order)
        selection: one of :data:`SELECTIONS`; ``"cluster"``, ``"coverage"``
            and ``"prototype"`` need ``embeddings``
        labels: array-like of shape (n,) of class labels, used when
            ``stratify`` is True
        stratify: prune every class at the same rate (see
            :func:`class_budgets` for how remainders are shared) and run the
            selection inside each class
        embeddings: array-like of shape (n, d) of finite numbers
        seed: integer seed of the randomised modes; None means 0, so every
            mode is deterministic for given inputs

    Returns:
        int64 array of kept positions, sorted ascending. Ties in the score
        order are broken by position (the earlier sample first).

    Raises:
        ValueError: on a bad ``prune_rate``, ``keep``, ``selection``, NaN or
            infinite scores, mismatched lengths, or missing embeddings/labels
    """
    _check_rate(prune_rate)
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {scores.shape}")
    try:
        scores = scores.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(
            "scores must be numbers; drop samples whose score is None before selecting"
        ) from e
    n = len(scores)
    if np.isnan(scores).any():
        raise ValueError(
            f"scores contain {int(np.isnan(scores).sum())} NaN value(s); "
            "drop samples with missing (None/NaN) scores before selecting"
        )
    if not np.isfinite(scores).all():
        raise ValueError("scores contain infinite values; scores must be finite")
    if keep not in ("highest", "lowest"):
        raise ValueError(f"keep must be 'highest' or 'lowest', got {keep!r}")
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")

    emb = None
    if selection in EMBEDDING_SELECTIONS:
        if embeddings is None:
            raise ValueError(
                f"selection={selection!r} needs embeddings (array of shape (n, d)); "
                "pass embeddings= or use selection='top' or 'ccs'"
            )
    if embeddings is not None:
        emb = np.asarray(embeddings, dtype=np.float64)
        if emb.ndim == 1:
            emb = emb[:, None]
        if emb.ndim != 2 or len(emb) != n:
            raise ValueError(
                f"embeddings must have shape (n, d) with n={n} (the number of scores), "
                f"got {emb.shape}"
            )
        if not np.isfinite(emb).all():
            raise ValueError("embeddings contain NaN or infinite values")

    if seed is None:
        seed = 0
    seed = int(seed)

    # Priority: 0 = kept first. Stable sort keeps earlier positions first on ties.
    order = np.argsort(-scores if keep == "highest" else scores, kind="stable")
    priority = np.empty(n, dtype=np.int64)
    priority[order] = np.arange(n)

    if stratify:
        if labels is None:
            raise ValueError("stratify=True needs labels")
        labels = np.asarray(labels, dtype=object)
        if labels.shape != (n,):
            raise ValueError(
                f"labels must have shape ({n},) (one per score), got {labels.shape}"
            )
        groups = _group_positions(labels)
        budgets = class_budgets([len(g) for g in groups], prune_rate)
        parts = []
        for c, (pos, budget) in enumerate(zip(groups, budgets)):
            if budget == 0:
                continue
            rng = np.random.default_rng([seed, c])
            sub = emb[pos] if emb is not None else None
            local = _select(selection, priority[pos], sub, int(budget), prune_rate, rng)
            parts.append(pos[local])
        kept = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    else:
        if labels is not None and len(labels) != n:
            raise ValueError(f"labels must have length {n} (one per score), got {len(labels)}")
        budget = kept_count(n, prune_rate)
        kept = _select(selection, priority, emb, budget, prune_rate, np.random.default_rng(seed))

    kept = np.sort(np.asarray(kept, dtype=np.int64))
    assert len(np.unique(kept)) == len(kept) == kept_count(n, prune_rate)
    return kept


# ---------------------------------------------------------------- helpers


def _check_rate(prune_rate):
    try:
        ok = 0 <= prune_rate < 1
    except TypeError:
        ok = False
    if not ok or isinstance(prune_rate, bool):
        raise ValueError(f"prune_rate must be a number in [0, 1), got {prune_rate!r}")


def _group_positions(labels):
    """Positions of each class, classes in order of first occurrence."""
    index = {}
    codes = np.empty(len(labels), dtype=np.int64)
    for i, lab in enumerate(labels):
        key = lab.item() if isinstance(lab, np.generic) else lab
        try:
            codes[i] = index.setdefault(key, len(index))
        except TypeError as e:
            raise ValueError(f"labels must be hashable, got {lab!r}") from e
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(index)))[:-1]
    return np.split(order, bounds)


def _select(selection, priority, emb, budget, rate, rng):
    """Local positions (into this group) of ``budget`` samples to keep."""
    n = len(priority)
    if budget >= n:
        return np.arange(n)
    if budget == 0:
        return np.zeros(0, dtype=np.int64)
    if selection == "top":
        return np.argsort(priority, kind="stable")[:budget]
    if selection == "ccs":
        return _ccs(priority, budget, rate, rng)
    if selection == "prototype":
        solver = lambda p, e, b, r: _prototype(p, e, b, r, rate=rate)  # noqa: E731
    else:
        solver = {"cluster": _cluster, "coverage": _coverage}[selection]
    return _blocked(solver, priority, emb, budget, rng)


def _rank_goodness(priority):
    """Priority mapped to (0, 1]: 1 for the best sample of the group."""
    n = len(priority)
    order = np.argsort(priority, kind="stable")
    good = np.empty(n)
    good[order] = 1.0 - np.arange(n) / max(n, 1)
    return good


def _largest_remainder(weights, total, caps=None):
    """Integer shares of ``total`` proportional to ``weights`` (ties: earlier first)."""
    weights = np.asarray(weights, dtype=np.float64)
    exact = total * weights / weights.sum()
    share = np.floor(exact).astype(np.int64)
    if caps is not None:
        share = np.minimum(share, caps)
    rest = total - int(share.sum())
    while rest > 0:
        room = np.ones(len(share), bool) if caps is None else share < caps
        frac = np.where(room, exact - share, -np.inf)
        order = np.lexsort((np.arange(len(share)), -frac))
        order = order[room[order]][:rest]
        if len(order) == 0:
            raise RuntimeError("cannot allocate the budget")  # pragma: no cover
        share[order] += 1
        rest = total - int(share.sum())
    return share


# ------------------------------------------------------------------- ccs


def ccs_beta(rate):
    """Fraction of the most extreme scores that ``"ccs"`` drops first.

    Zero up to 50 % pruning, then rising linearly to 0.2 at 100 %.
    """
    return max(0.0, rate - 0.5) * 0.4


def _ccs(priority, budget, rate, rng):
    n = len(priority)
    order = np.argsort(priority, kind="stable")
    hard = min(int(math.floor(ccs_beta(rate) * n)), n - budget)
    pool = order[hard:]
    # Strata over the score rank (equal width in rank, robust to score scale).
    good = _rank_goodness(priority)[pool]
    lo, hi = good.min(), good.max()
    span = hi - lo if hi > lo else 1.0
    strata = np.minimum(((good - lo) / span * CCS_STRATA).astype(np.int64), CCS_STRATA - 1)
    members = [pool[strata == s] for s in range(CCS_STRATA)]
    members = [m for m in members if len(m)]
    members.sort(key=len)  # stable: equal sizes keep stratum order
    chosen = []
    left = budget
    for i, m in enumerate(members):
        take = min(len(m), left // (len(members) - i))
        chosen.append(rng.permutation(m)[:take])
        left -= take
    chosen = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    if left > 0:  # integer remainders: top up at random from the unchosen pool
        rest = np.setdiff1d(pool, chosen)
        chosen = np.concatenate([chosen, rng.permutation(rest)[:left]])
    return chosen


# ------------------------------------------------------ embedding solvers


def _blocked(solver, priority, emb, budget, rng):
    """Runs ``solver`` directly or on k-means blocks of at most BLOCK_SIZE."""
    n = len(priority)
    if n <= BLOCK_SIZE:
        return np.asarray(solver(priority, emb, budget, rng), dtype=np.int64)
    from sklearn.cluster import MiniBatchKMeans

    parts = int(math.ceil(2 * n / BLOCK_SIZE))
    km = MiniBatchKMeans(
        n_clusters=parts, random_state=int(rng.integers(2**31)), n_init=1, batch_size=4096
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab = km.fit_predict(emb)
    if np.bincount(lab, minlength=parts).max() == n:  # degenerate: split in order
        lab = np.arange(n) * parts // n
    sizes = np.bincount(lab, minlength=parts)
    shares = _largest_remainder(sizes, budget, caps=sizes)
    out = []
    for b in range(parts):
        if shares[b] == 0:
            continue
        pos = np.flatnonzero(lab == b)
        if shares[b] >= len(pos):
            out.append(pos)
            continue
        out.append(pos[_blocked(solver, priority[pos], emb[pos], int(shares[b]), rng)])
    return np.concatenate(out)


def _sq_dists(a, b):
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def _farthest_first(emb, budget, first, allowed=None, tiebreak=None):
    """k-center greedy from ``first``; ``allowed`` restricts the candidates."""
    n = len(emb)
    sel = np.empty(budget, dtype=np.int64)
    sel[0] = first
    dist = _sq_dists(emb, emb[first : first + 1])[:, 0]
    taken = np.zeros(n, bool)
    taken[first] = True
    tb = np.zeros(n) if tiebreak is None else tiebreak
    for i in range(1, budget):
        cand = dist if allowed is None else np.where(allowed, dist, -1.0)
        cand = np.where(taken, -np.inf, cand)
        best = cand.max()
        if best <= 0:  # everything left is a duplicate of a kept sample
            ties = np.flatnonzero(cand == best)
        else:
            ties = np.flatnonzero(cand >= best * (1 - 1e-12))
        j = int(ties[np.argmax(tb[ties])]) if len(ties) > 1 else int(ties[0])
        sel[i] = j
        taken[j] = True
        dist = np.minimum(dist, _sq_dists(emb, emb[j : j + 1])[:, 0])
    return sel


def _outlier_mask(emb):
    """True for samples whose GUARD_NEIGHBOR-th neighbour is unusually far."""
    n = len(emb)
    k = min(GUARD_NEIGHBOR, n - 1)
    if k < 1:
        return np.zeros(n, bool)
    d = np.sqrt(_sq_dists(emb, emb))
    kd = np.partition(d, k, axis=1)[:, k]
    med = np.median(kd)
    mad = np.median(np.abs(kd - med))
    if mad == 0:
        return kd > med
    return kd > med + GUARD_MADS * 1.4826 * mad


def _coverage(priority, emb, budget, rng):
    n = len(emb)
    outlier = _outlier_mask(emb)
    inliers = np.flatnonzero(~outlier)
    good = _rank_goodness(priority)
    first = int(rng.choice(inliers)) if len(inliers) else int(rng.integers(n))
    k_in = min(budget, max(len(inliers), 1))
    sel = _farthest_first(emb, k_in, first, allowed=~outlier, tiebreak=good)
    if k_in < budget:  # guard leaves too few: least isolated outliers next
        rest = np.setdiff1d(np.arange(n), sel)
        sel = np.concatenate([sel, _farthest_first_fill(emb, sel, rest, budget - k_in)])
    return sel


def _farthest_first_fill(emb, sel, rest, count):
    """Continues k-center greedy over ``rest`` from an existing selection."""
    dist = _sq_dists(emb[rest], emb[sel]).min(1)
    out = []
    avail = np.ones(len(rest), bool)
    for _ in range(count):
        j = int(np.argmax(np.where(avail, dist, -np.inf)))
        out.append(rest[j])
        avail[j] = False
        dist = np.minimum(dist, _sq_dists(emb[rest], emb[rest[j] : rest[j] + 1])[:, 0])
    return np.asarray(out, dtype=np.int64)


def _kmeans(emb, k, rng, init=None):
    from sklearn.cluster import KMeans

    kwargs = dict(n_clusters=k, random_state=int(rng.integers(2**31)))
    if init is not None:
        kwargs.update(init=init, n_init=1)
    else:
        kwargs.update(n_init=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on duplicate points
        km = KMeans(**kwargs).fit(emb)
    return km.labels_, km.cluster_centers_, float(km.inertia_)


def _cluster(priority, emb, budget, rng):
    n = len(emb)
    k = max(1, min(n, int(round(budget / CLUSTER_SIZE))))
    labels, _, _ = _kmeans(emb, k, rng)
    sizes = np.bincount(labels, minlength=k)
    present = np.flatnonzero(sizes)
    shares = np.zeros(k, dtype=np.int64)
    shares[present] = _largest_remainder(sizes[present], budget, caps=sizes[present])
    out = []
    for c in present:
        pos = np.flatnonzero(labels == c)
        out.append(pos[np.argsort(priority[pos], kind="stable")[: shares[c]]])
    return np.concatenate(out)


def prototype_alpha(rate):
    """Share of the ``"prototype"`` k-means seeds chosen by facility location.

    The rest are added by k-center greedy. 0 up to 75 % pruning (pure
    farthest-first: atypical samples matter when much data is kept), rising
    linearly to 1 at 85 % pruning and above (pure facility location: typical
    samples matter when little is kept). On digits, mixtures of the two
    initialisations did worse than either, hence the short ramp.
    """
    return float(np.clip((rate - 0.75) / 0.1, 0.0, 1.0))


def _facility_location(dist, count, bonus):
    """Greedy k-median facility location on a distance matrix.

    Maximises sum_i max_{j in S} (dmax - d_ij) + sum_{j in S} bonus_j, with
    gains updated incrementally for the samples whose best cover changed.
    """
    n = len(dist)
    sim = dist.max() - dist
    gain = sim.sum(1) + bonus
    cover = np.zeros(n)
    taken = np.zeros(n, bool)
    sel = np.empty(count, dtype=np.int64)
    for i in range(count):
        j = int(np.argmax(np.where(taken, -np.inf, gain)))
        sel[i] = j
        taken[j] = True
        new = np.maximum(cover, sim[j])
        ch = np.flatnonzero(new > cover)
        if len(ch):
            s = sim[:, ch]
            gain -= (np.maximum(s - cover[ch], 0) - np.maximum(s - new[ch], 0)).sum(1)
        cover = new
    return sel


def _central(emb, good):
    """The sample nearest the mean (ties: better score, then earlier)."""
    d = ((emb - emb.mean(0)) ** 2).sum(1)
    return int(np.lexsort((np.arange(len(emb)), -good, d))[0])


def _prototype(priority, emb, budget, rng, rate=None):
    n = len(emb)
    good = _rank_goodness(priority)
    alpha = prototype_alpha(rate if rate is not None else 1.0 - budget / n)
    k_fl = int(round(alpha * budget))
    if k_fl == 0:
        # farthest-first from the most central sample: deterministic, and never
        # started from an outlier
        init = _farthest_first(emb, budget, _central(emb, good), tiebreak=good)
    else:
        dist = np.sqrt(_sq_dists(emb, emb))
        # seeded jitter, then the score rank, break near-ties between candidates
        bonus = np.median(dist) * (0.05 * rng.random(n) + 1e-3 * good)
        init = _facility_location(dist, k_fl, bonus)
        del dist
        if k_fl < budget:
            rest = np.setdiff1d(np.arange(n), init)
            init = np.concatenate([init, _farthest_first_fill(emb, init, rest, budget - k_fl)])
    labels, centers, _ = _kmeans(emb, budget, rng, init=emb[init])
    d = ((emb - centers[labels]) ** 2).sum(1)
    # nearest to its centroid; ties (to 1e-9 of the largest distance, e.g. the
    # two members of a two-sample cluster) go to the earlier position
    d = np.round(d / (d.max() + 1e-300), 9)
    order = np.lexsort((np.arange(n), d, labels))
    lab_sorted = labels[order]
    firsts = np.flatnonzero(np.r_[True, lab_sorted[1:] != lab_sorted[:-1]])
    chosen = order[firsts]
    if len(chosen) < budget:  # empty clusters (duplicates): k-center fill
        rest = np.setdiff1d(np.arange(n), chosen)
        chosen = np.concatenate(
            [chosen, _farthest_first_fill(emb, chosen, rest, budget - len(chosen))]
        )
    return chosen
