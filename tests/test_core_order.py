"""Tests of core.order: permutations, nested prefixes, exact counts, stratified quotas, errors."""

import math
from fractions import Fraction

import numpy as np
import pytest

import coreset_curation.core.order as co
from coreset_curation.core.order import (
    DEFAULT_ORDER,
    EMBEDDING_ORDERS,
    ORDERS,
    class_counts,
    coreset_order,
    kept_count,
    kept_positions,
    ranks_from_order,
)

RATES = ("0", "0.01", "0.1", "0.25", "0.29", "0.3", "0.333", "0.5", "0.57", "0.7", "0.9", "0.95", "0.99", "0.999")


def _data(n, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random(n), rng.normal(size=(n, d))


def _blobs(per=30, centers=((0, 0), (10, 0), (0, 10), (10, 10)), seed=0):
    rng = np.random.default_rng(seed)
    emb = np.concatenate([rng.normal(c, 0.5, (per, 2)) for c in centers])
    return emb, np.repeat(np.arange(len(centers)), per)


def _is_permutation(order, n):
    return order.dtype == np.int64 and order.shape == (n,) and np.array_equal(np.sort(order), np.arange(n))


def _within_quota(order, labels):
    """Every prefix holds floor or ceil of its exact share of every class."""
    classes, codes = np.unique(labels, return_inverse=True)
    n = len(order)
    sizes = np.bincount(codes, minlength=len(classes))
    counts = np.cumsum(np.eye(len(classes), dtype=np.int64)[codes[order]], axis=0)  # (n, classes)
    h = np.arange(1, n + 1)[:, None]
    exact = h * sizes[None, :]
    # floor(h s / n) <= count <= ceil(h s / n), in integers
    return bool(np.all(counts * n >= exact - (n - 1)) and np.all(counts * n <= exact + (n - 1)))


def test_default_is_an_embedding_order():
    assert DEFAULT_ORDER in ORDERS
    assert DEFAULT_ORDER in EMBEDDING_ORDERS
    assert EMBEDDING_ORDERS <= set(ORDERS)


# ----------------------------------------------------------------- counts


@pytest.mark.parametrize("rate", RATES)
def test_kept_count_exact(rate):
    # the decimal rate as written, times n, floored: no floating-point shortfall
    for n in range(0, 301):
        expected = n - math.floor(Fraction(rate) * n)
        if n > 0:
            expected = max(expected, 1)
        assert kept_count(n, float(rate)) == expected, (n, rate)


def test_kept_count_rounding_fix():
    assert math.floor(0.29 * 100) == 28  # the floating-point trap
    assert kept_count(100, 0.29) == 71
    assert kept_count(100, 0.57) == 43
    assert kept_count(3, 1 / 3) == 2
    assert kept_count(10, 0.999999999) == 1
    assert kept_count(1, 0.999) == 1 and kept_count(0, 0.5) == 0
    # monotone: a higher rate never keeps more
    for n in (1, 7, 100, 1078, 10**6):
        counts = [kept_count(n, r / 1000) for r in range(1000)]
        assert all(a >= b for a, b in zip(counts, counts[1:]))
        assert counts[0] == n and counts[-1] >= 1


@pytest.mark.parametrize("rate", [1, 1.0, 1.5, -0.1, float("nan"), "half", None, True])
def test_bad_prune_rate(rate):
    with pytest.raises(ValueError, match="prune_rate"):
        kept_count(5, rate)


def test_numeric_strings_and_numpy_rates_are_accepted():
    assert kept_count(100, "0.29") == kept_count(100, np.float32(0.29)) == 71


# ------------------------------------------------------- every mode's order


@pytest.mark.parametrize("mode", ORDERS)
@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 50, 301])
def test_permutation(mode, n):
    scores, emb = _data(n)
    order = coreset_order(scores, embeddings=emb, mode=mode, seed=1)
    assert _is_permutation(order, n)


@pytest.mark.parametrize("mode", ORDERS)
def test_nested_prefixes_and_counts(mode):
    scores, emb = _data(211, seed=3)
    order = coreset_order(scores, embeddings=emb, mode=mode, seed=2)
    previous = None
    for rate in sorted(float(r) for r in RATES):
        kept = kept_positions(order, rate)
        assert len(kept) == 211 - math.floor(Fraction(str(rate)) * 211)
        assert np.all(np.diff(kept) > 0)
        if previous is not None:
            assert set(kept) <= set(previous), "a higher rate keeps a subset"
        previous = kept


@pytest.mark.parametrize("mode", ORDERS)
def test_deterministic(mode):
    scores, emb = _data(160, d=6, seed=9)
    a = coreset_order(scores, embeddings=emb, mode=mode, seed=11)
    b = coreset_order(scores.copy(), embeddings=emb.copy(), mode=mode, seed=11)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        coreset_order(scores, embeddings=emb, mode=mode, seed=None),
        coreset_order(scores, embeddings=emb, mode=mode),
    )


@pytest.mark.parametrize("mode", ["ccs", "coverage", "cluster"])
def test_seed_changes_randomised_modes(mode):
    scores, emb = _data(160, d=6, seed=9)
    runs = {tuple(coreset_order(scores, embeddings=emb, mode=mode, seed=s)[:30]) for s in range(4)}
    assert len(runs) > 1


@pytest.mark.parametrize("mode", ORDERS)
def test_keep_lowest_inverts_the_score(mode):
    scores, emb = _data(120, seed=4)
    a = coreset_order(scores, embeddings=emb, mode=mode, keep="lowest", seed=2)
    b = coreset_order(-scores, embeddings=emb, mode=mode, keep="highest", seed=2)
    np.testing.assert_array_equal(a, b)


def test_top_is_score_order_ties_by_position():
    scores = np.array([0.5, 0.9, 0.1, 0.7, 0.3, 0.8])
    np.testing.assert_array_equal(coreset_order(scores, mode="top"), [1, 5, 3, 0, 4, 2])
    np.testing.assert_array_equal(coreset_order(scores, mode="top", keep="lowest"), [2, 4, 0, 3, 5, 1])
    ties = np.array([1, 2, 2, 2, 0, 2], dtype=float)
    np.testing.assert_array_equal(coreset_order(ties, mode="top"), [1, 2, 3, 5, 0, 4])
    np.testing.assert_array_equal(coreset_order(ties, mode="top", keep="lowest"), [4, 0, 1, 2, 3, 5])


def test_ranks_from_order_inverts():
    order = coreset_order(*_data(40)[:1], mode="top")
    rank = ranks_from_order(order)
    np.testing.assert_array_equal(order[rank], np.arange(40))
    for rate in (0.0, 0.3, 0.9):
        np.testing.assert_array_equal(np.flatnonzero(rank < kept_count(40, rate)), kept_positions(order, rate))


@pytest.mark.parametrize("mode", ORDERS)
def test_tiny_inputs(mode):
    for n in (1, 2, 3):
        scores, emb = _data(n, seed=n)
        order = coreset_order(scores, embeddings=emb, mode=mode)
        assert _is_permutation(order, n)
        strat = coreset_order(scores, embeddings=emb, mode=mode, labels=np.arange(n) % 2, stratify=True)
        assert _is_permutation(strat, n)
    # a single sample / all-equal embeddings
    assert coreset_order([0.3], embeddings=[[1.0, 2.0]], mode=mode).tolist() == [0]
    same = coreset_order(np.zeros(3), embeddings=np.ones((3, 2)), mode=mode)
    assert _is_permutation(same, 3)


@pytest.mark.parametrize("mode", ORDERS)
def test_duplicates(mode):
    base = np.random.default_rng(0).normal(size=(5, 3))
    emb = np.repeat(base, 20, axis=0)  # 100 rows, 5 distinct
    order = coreset_order(np.zeros(100), embeddings=emb, mode=mode, seed=1)
    assert _is_permutation(order, 100)
    if mode in ("prototype", "coverage"):
        # the 5 distinct points come first, the 95 redundant copies after
        assert len({tuple(e) for e in emb[order[:5]]}) == 5


def test_duplicate_ties_go_to_the_better_score_then_position():
    emb = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [5.0, 5.0]])
    order = coreset_order(np.array([0.1, 0.9, 0.5, 0.5]), embeddings=emb, mode="prototype")
    # one of each pair first; inside a pair the better score (1 over 0), then
    # the earlier position (2 over 3)
    assert order.tolist() == [1, 2, 3, 0]
    order = coreset_order(np.array([0.1, 0.9, 0.5, 0.5]), embeddings=emb, mode="prototype", keep="lowest")
    assert order.tolist() == [0, 2, 3, 1]


def test_float32_input():
    scores, emb = _data(200, d=8)
    order = coreset_order(scores, embeddings=emb.astype(np.float32))
    assert _is_permutation(order, 200)
    assert _is_permutation(coreset_order(scores, embeddings=emb.astype(np.float16)), 200)


# ----------------------------------------------------------- stratified


@pytest.mark.parametrize("mode", ORDERS)
def test_stratified_prefixes_within_one_sample(mode):
    rng = np.random.default_rng(1)
    sizes = {"cat": 60, "dog": 25, "bird": 9, "fish": 3}
    labels = rng.permutation(np.array(sum(([k] * v for k, v in sizes.items()), [])))
    scores, emb = _data(len(labels), seed=2)
    order = coreset_order(scores, embeddings=emb, mode=mode, labels=labels, stratify=True, seed=5)
    assert _is_permutation(order, len(labels))
    assert _within_quota(order, labels)
    # ... while the unstratified order is not balanced at every prefix
    if mode == "top":
        skewed = scores + (labels == "cat")
        assert not _within_quota(coreset_order(skewed, mode="top"), labels)
        assert _within_quota(coreset_order(skewed, mode="top", labels=labels, stratify=True), labels)


def test_stratified_top_is_per_class_score_order():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.2, 0.3, 0.4])
    order = coreset_order(scores, mode="top", labels=labels, stratify=True)
    assert [i for i in order if labels[i] == 0] == [0, 1, 2, 3]
    assert [i for i in order if labels[i] == 1] == [7, 6, 5, 4]
    assert sorted(order[:4]) == [0, 1, 6, 7]
    low = coreset_order(scores, mode="top", labels=labels, stratify=True, keep="lowest")
    assert sorted(low[:4]) == [2, 3, 4, 5]


@pytest.mark.parametrize("sequence", ["_interleave", "_edf_sequence"])
def test_interleave_random_sizes(sequence):
    rng = np.random.default_rng(0)
    for trial in range(400):
        m = int(rng.integers(1, 9))
        sizes = rng.integers(0, 40, m) if trial % 2 else np.exp(rng.uniform(0, 5, m)).astype(int)
        if sizes.sum() == 0:
            continue
        seq = getattr(co, sequence)(sizes)
        assert np.array_equal(np.bincount(seq, minlength=len(sizes)), sizes)
        # position h of the merged order comes from part seq[h]
        assert _within_quota(np.arange(int(sizes.sum())), seq), sizes


def test_interleave_centres_rare_classes_and_falls_back():
    # a rare class is placed near its share, not pushed to the end
    seq = co._interleave([1000, 1, 1, 1, 1])
    np.testing.assert_array_equal(np.flatnonzero(seq > 0) + 1, [251, 502, 628, 879])
    assert co._interleave([3, 1]).tolist() == [0, 0, 1, 0]
    # a size mix where the centred rule would miss a window: the quota method is used
    sizes = [69, 57, 3, 57, 2, 2]
    assert co._centred_sequence(sizes) is None
    np.testing.assert_array_equal(co._interleave(sizes), co._edf_sequence(sizes))
    assert _within_quota(np.arange(190), co._interleave(sizes))


def test_class_counts():
    counts = class_counts([10, 5, 3], 9)
    assert counts.sum() == 9 and np.all(np.abs(counts - 9 * np.array([10, 5, 3]) / 18) < 1)
    with pytest.raises(ValueError, match="kept"):
        class_counts([2, 2], 5)


def test_labels_of_mixed_types_and_none():
    labels = np.array(["a", None, 3, "a", None, 3, "a", None], dtype=object)
    order = coreset_order(np.arange(8, dtype=float), mode="top", labels=labels, stratify=True)
    assert {labels[k] for k in order[:3]} == {"a", None, 3}


# ----------------------------------------------------------------- errors


def test_bad_scores():
    with pytest.raises(ValueError, match="scores must be finite.*NaN"):
        coreset_order(np.array([0.1, np.nan, 0.3]), mode="top")
    with pytest.raises(ValueError, match="scores must be finite.*infinite"):
        coreset_order(np.array([0.1, np.inf, 0.3]), mode="top")
    with pytest.raises(ValueError, match="scores.*None"):
        coreset_order(np.array([0.1, None, 0.3], dtype=object), mode="top")
    with pytest.raises(ValueError, match="scores must be one-dimensional"):
        coreset_order(np.ones((3, 2)), mode="top")
    with pytest.raises(ValueError, match="scores"):
        coreset_order(["a", "b"], mode="top")


def test_bad_embeddings():
    scores, emb = _data(10)
    with pytest.raises(ValueError, match=r"embeddings must have shape \(n, d\) with n=10"):
        coreset_order(scores, embeddings=emb[:9])
    with pytest.raises(ValueError, match="embeddings must have shape"):
        coreset_order(scores, embeddings=np.ones((10, 2, 2)))
    bad = emb.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="embeddings must be finite"):
        coreset_order(scores, embeddings=bad, mode="coverage")
    with pytest.raises(ValueError, match="embeddings must be numbers"):
        coreset_order(scores, embeddings=[["x"] * 2] * 10)


@pytest.mark.parametrize("mode", sorted(EMBEDDING_ORDERS))
def test_embedding_mode_without_embeddings(mode):
    with pytest.raises(ValueError, match=f"mode='{mode}' needs embeddings"):
        coreset_order(np.ones(5), mode=mode)


def test_other_bad_arguments():
    scores, emb = _data(10)
    with pytest.raises(ValueError, match="mode must be one of"):
        coreset_order(scores, mode="nope")
    with pytest.raises(ValueError, match="keep must be"):
        coreset_order(scores, mode="top", keep="best")
    with pytest.raises(ValueError, match="stratify=True needs labels"):
        coreset_order(scores, mode="top", stratify=True)
    with pytest.raises(ValueError, match="labels must have shape"):
        coreset_order(scores, mode="top", labels=np.zeros(9), stratify=True)
    with pytest.raises(ValueError, match="labels must have length"):
        coreset_order(scores, mode="top", labels=np.zeros(9))
    unhashable = np.empty(10, dtype=object)
    for i in range(10):
        unhashable[i] = [i]
    with pytest.raises(ValueError, match="labels must be hashable"):
        coreset_order(scores, mode="top", labels=unhashable, stratify=True)
    for seed in (-1, 1.5, "zero", True, 2**32):
        with pytest.raises(ValueError, match="seed"):
            coreset_order(scores, mode="top", seed=seed)
    with pytest.raises(ValueError, match="progress"):
        coreset_order(scores, mode="top", progress=0.5)


# ------------------------------------------------------- what the modes do


@pytest.mark.parametrize("mode", ["prototype", "coverage"])
def test_embedding_orders_cover_every_blob_first(mode):
    # four tight, far-apart blobs; scores favour blob 0, so score order alone
    # would keep only blob 0
    emb, blob = _blobs()
    scores = np.where(blob == 0, 1.0, 0.0) + np.random.default_rng(0).random(len(blob)) * 0.1
    assert set(blob[coreset_order(scores, mode="top")[:4]]) == {0}
    for seed in range(3):
        order = coreset_order(scores, embeddings=emb, mode=mode, seed=seed)
        assert sorted(blob[order[:4]]) == [0, 1, 2, 3]


def test_prototype_prefix_is_typical_coverage_prefix_is_not():
    emb, blob = _blobs(per=25)
    centre = np.array([emb[blob == b].mean(0) for b in range(4)])

    def spread(order, k=8):
        return float(np.mean(np.linalg.norm(emb[order[:k]] - centre[blob[order[:k]]], axis=1)))

    proto = coreset_order(np.zeros(100), embeddings=emb, mode="prototype")
    cover = coreset_order(np.zeros(100), embeddings=emb, mode="coverage")
    assert spread(proto) < 0.5 * spread(cover)


def test_outlier_guard_puts_isolated_samples_last():
    emb, _ = _blobs(per=50)
    outliers = np.random.default_rng(3).uniform(200, 400, (4, 2))
    emb = np.concatenate([emb, outliers])
    assert co._outlier_mask(co._distances(emb))[200:].all()
    for mode in ("prototype", "coverage"):
        order = coreset_order(np.zeros(len(emb)), embeddings=emb, mode=mode)
        assert set(order[-4:]) == {200, 201, 202, 203}, mode


def test_cluster_order_balances_clusters_and_uses_scores():
    emb, blob = _blobs(per=40, centers=((0, 0), (20, 0)))
    scores = np.random.default_rng(1).random(len(blob))
    scores[blob == 0] += 10  # score order alone keeps only blob 0
    order = coreset_order(scores, embeddings=emb, mode="cluster", seed=0)
    for k in (4, 20, 40, 60):
        assert abs(int((blob[order[:k]] == 0).sum()) - k / 2) <= 2
    # inside a cluster (here: inside blob 1, which has 2 clusters) better scores come first
    first = order[:10]
    assert np.mean(scores[first[blob[first] == 1]]) > np.median(scores[blob == 1])


def test_ccs_spreads_over_strata_and_holds_back_the_top():
    n = 1000
    scores = np.linspace(0, 1, n)
    order = coreset_order(scores, mode="ccs", seed=0)
    kept = order[: kept_count(n, 0.9)]
    assert scores[kept].min() < 0.1  # top would keep only scores > 0.9
    rank = n - 1 - np.arange(n)  # 0 = best
    for k in (1, 50, 100, 300, 499, 500, 800):
        held = math.floor(co.CCS_SLOPE * max(0.0, n / 2 - k))
        assert rank[order[:k]].min() >= held, k
    # round robin: the first 41 samples hit the 41 strata not held back at k=41
    # (held back: the 183 best ranks, i.e. strata 41-49), one each
    strata = np.minimum((np.arange(n) * 50) // n, 49)
    assert sorted(strata[order[:41]]) == list(range(41))
    assert len(np.unique(strata[order[500:550]])) == 50  # nothing held back past n/2


def test_progress_reports_fractions():
    seen = []
    scores, emb = _data(300, d=3)
    coreset_order(scores, embeddings=emb, labels=np.arange(300) % 3, stratify=True, progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in seen)
    assert all(a <= b for a, b in zip(seen, seen[1:]))


@pytest.mark.parametrize("mode", sorted(EMBEDDING_ORDERS))
def test_blocked_path(mode, monkeypatch):
    monkeypatch.setattr(co, "BLOCK_SIZE", 64)
    monkeypatch.setattr(co, "BLOCK_FIT_ROWS", 200)
    monkeypatch.setattr(co, "BRANCH", 4)
    scores, emb = _data(700, d=3, seed=8)
    seen = []
    a = coreset_order(scores, embeddings=emb, mode=mode, seed=2, progress=seen.append)
    b = coreset_order(scores, embeddings=emb, mode=mode, seed=2)
    assert _is_permutation(a, 700)
    np.testing.assert_array_equal(a, b)
    assert all(x <= y for x, y in zip(seen, seen[1:])) and seen[-1] == 1.0
    blocks = co._split_blocks(emb, np.arange(700), np.random.default_rng(0), co._Progress(None))
    assert all(0 < len(x) <= 64 for x in blocks)
    assert np.array_equal(np.sort(np.concatenate(blocks)), np.arange(700))
    # duplicates-only input cannot be split by k-means: it is split in order
    dup = np.zeros((200, 3))
    assert _is_permutation(coreset_order(np.zeros(200), embeddings=dup, mode=mode), 200)
