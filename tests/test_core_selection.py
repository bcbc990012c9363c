"""Tests of core.selection (the per-rate prefix of core.order): counts, stratification, determinism, errors."""

import math

import numpy as np
import pytest

from core.order import coreset_order
from core.selection import (
    DEFAULT_SELECTION,
    EMBEDDING_SELECTIONS,
    SELECTIONS,
    class_budgets,
    kept_count,
    select_coreset,
)

RATES = (0.0, 0.01, 0.1, 0.3, 0.333, 0.5, 0.7, 0.9, 0.95, 0.99, 0.999)


def _data(n, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random(n), rng.normal(size=(n, d))


def _blobs(per=30, centers=((0, 0), (10, 0), (0, 10), (10, 10)), seed=0):
    rng = np.random.default_rng(seed)
    emb = np.concatenate([rng.normal(c, 0.5, (per, 2)) for c in centers])
    return emb, np.repeat(np.arange(len(centers)), per)


def test_default_is_a_known_mode():
    assert DEFAULT_SELECTION in SELECTIONS
    assert DEFAULT_SELECTION in EMBEDDING_SELECTIONS


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 97, 1000])
@pytest.mark.parametrize("rate", RATES)
def test_exact_count_score_modes(n, rate):
    scores, _ = _data(n)
    expected = n - math.floor(rate * n)
    for mode in ("top", "ccs"):
        kept = select_coreset(scores, rate, selection=mode, seed=1)
        assert kept.dtype == np.int64
        assert len(kept) == expected == kept_count(n, rate)
        assert np.all(np.diff(kept) > 0), "sorted ascending, no duplicates"
        assert kept.min() >= 0 and kept.max() < n


@pytest.mark.parametrize("mode", sorted(EMBEDDING_SELECTIONS))
@pytest.mark.parametrize("n,rate", [(1, 0.5), (2, 0.5), (5, 0.3), (40, 0.1), (40, 0.5), (40, 0.95), (211, 0.7), (211, 0.999)])
def test_exact_count_embedding_modes(mode, n, rate):
    scores, emb = _data(n)
    kept = select_coreset(scores, rate, selection=mode, embeddings=emb, seed=3)
    assert len(kept) == n - math.floor(rate * n)
    assert len(np.unique(kept)) == len(kept)
    assert np.all(np.diff(kept) > 0)


def test_zero_rate_keeps_everything():
    scores, emb = _data(50)
    for mode in SELECTIONS:
        kept = select_coreset(scores, 0.0, selection=mode, embeddings=emb)
        np.testing.assert_array_equal(kept, np.arange(50))


def test_top_keeps_highest_and_lowest():
    scores = np.array([0.5, 0.9, 0.1, 0.7, 0.3, 0.8])
    np.testing.assert_array_equal(select_coreset(scores, 0.5), [1, 3, 5])
    np.testing.assert_array_equal(select_coreset(scores, 0.5, keep="lowest"), [0, 2, 4])
    # keep="lowest" is the highest of the negated scores, for every mode
    s, emb = _data(120, seed=4)
    for mode in SELECTIONS:
        a = select_coreset(s, 0.6, keep="lowest", selection=mode, embeddings=emb, seed=2)
        b = select_coreset(-s, 0.6, keep="highest", selection=mode, embeddings=emb, seed=2)
        np.testing.assert_array_equal(a, b)


def test_ties_break_by_position():
    scores = np.ones(10)
    np.testing.assert_array_equal(select_coreset(scores, 0.7), [0, 1, 2])
    np.testing.assert_array_equal(select_coreset(scores, 0.7, keep="lowest"), [0, 1, 2])
    scores = np.array([1, 2, 2, 2, 0, 2], dtype=float)
    np.testing.assert_array_equal(select_coreset(scores, 0.5), [1, 2, 3])
    np.testing.assert_array_equal(select_coreset(scores, 0.5, keep="lowest"), [0, 1, 4])


def test_ties_deterministic_in_every_mode():
    _, emb = _data(90, seed=5)
    scores = np.repeat([0.0, 1.0, 2.0], 30)
    for mode in SELECTIONS:
        runs = [select_coreset(scores, 0.8, selection=mode, embeddings=emb, seed=7) for _ in range(2)]
        np.testing.assert_array_equal(*runs)


@pytest.mark.parametrize("mode", SELECTIONS)
def test_seeded_determinism(mode):
    scores, emb = _data(300, d=6, seed=9)
    a = select_coreset(scores, 0.8, selection=mode, embeddings=emb, seed=11)
    b = select_coreset(scores, 0.8, selection=mode, embeddings=emb, seed=11)
    np.testing.assert_array_equal(a, b)
    c = select_coreset(scores, 0.8, selection=mode, embeddings=emb)  # None means 0
    d = select_coreset(scores, 0.8, selection=mode, embeddings=emb, seed=0)
    np.testing.assert_array_equal(c, d)


def test_select_coreset_is_the_sorted_order_prefix():
    scores, emb = _data(200, d=5, seed=3)
    labels = np.arange(200) % 3
    for mode in SELECTIONS:
        for stratify in (False, True):
            order = coreset_order(scores, embeddings=emb, mode=mode, labels=labels, stratify=stratify, seed=4)
            previous = None
            for rate in (0.0, 0.3, 0.5, 0.9, 0.99):
                kept = select_coreset(
                    scores, rate, selection=mode, embeddings=emb, labels=labels, stratify=stratify, seed=4
                )
                np.testing.assert_array_equal(kept, np.sort(order[: kept_count(200, rate)]))
                if previous is not None:
                    assert set(kept) <= set(previous), "nested across rates"
                previous = kept


def test_rounding_fix():
    # floor(0.29 * 100) is 28 in floating point; 29 are pruned as written
    assert len(select_coreset(np.arange(100.0), 0.29)) == 71
    assert kept_count(100, 0.29) == 71


def test_class_budgets_quota_rule():
    # kept 9 of (10, 5, 3): exact shares 5, 2.5, 1.5; the stratified order's
    # prefix of 9 is 0 1 0 2 0 1 0 0 1 (classes), i.e. 5, 3, 1
    np.testing.assert_array_equal(class_budgets([10, 5, 3], 0.5), [5, 3, 1])
    # 0.3 * 21 = 6.3 -> 15 kept of (7, 7, 7): 5 each
    np.testing.assert_array_equal(class_budgets([7, 7, 7], 0.3), [5, 5, 5])
    # kept 2 of (1, 3): shares 0.5 and 1.5; both candidates for position 2 are
    # due, the second sample of class 1 must be placed by position 3, the single
    # sample of class 0 only by position 4
    np.testing.assert_array_equal(class_budgets([1, 3], 0.5), [0, 2])
    np.testing.assert_array_equal(class_budgets([9, 11], 0.45), [5, 6])


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("sizes", [(1,), (5, 1, 1), (10, 5, 3), (33, 17, 8, 2, 1), (100, 101, 250, 7)])
def test_class_budgets_exact_total(rate, sizes):
    budgets = class_budgets(sizes, rate)
    n = sum(sizes)
    kept = kept_count(n, rate)
    assert budgets.sum() == kept == n - math.floor(round(rate * n, 9))
    sizes = np.array(sizes)
    assert np.all(budgets <= sizes) and np.all(budgets >= 0)
    # every class less than one sample from its exact share of the kept total
    assert np.all(np.abs(budgets - kept * sizes / n) < 1)


@pytest.mark.parametrize("mode", SELECTIONS)
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.75, 0.9])
def test_stratified_counts_and_rates(mode, rate):
    rng = np.random.default_rng(1)
    sizes = {"cat": 60, "dog": 25, "bird": 9, "fish": 3}
    labels = np.array(sum(([k] * v for k, v in sizes.items()), []))
    perm = rng.permutation(len(labels))
    labels = labels[perm]
    scores, emb = _data(len(labels), seed=2)
    kept = select_coreset(scores, rate, selection=mode, labels=labels, stratify=True, embeddings=emb, seed=5)
    n = len(labels)
    assert len(kept) == n - math.floor(rate * n)
    assert len(np.unique(kept)) == len(kept)
    names = list(dict.fromkeys(labels))  # classes in order of first occurrence
    budgets = class_budgets([sizes[k] for k in names], rate)
    for name, budget in zip(names, budgets):
        size = sizes[name]
        got = int((labels[kept] == name).sum())
        assert abs(got - len(kept) * size / n) < 1, (name, got)
        assert got == budget


def test_stratified_top_is_per_class_top():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(select_coreset(scores, 0.5), [0, 1, 2, 3])
    np.testing.assert_array_equal(
        select_coreset(scores, 0.5, labels=labels, stratify=True), [0, 1, 6, 7]
    )
    np.testing.assert_array_equal(
        select_coreset(scores, 0.5, labels=labels, stratify=True, keep="lowest"), [2, 3, 4, 5]
    )


def test_labels_of_mixed_types_and_none():
    labels = np.array(["a", None, 3, "a", None, 3, "a", None], dtype=object)
    scores = np.arange(8, dtype=float)
    kept = select_coreset(scores, 0.5, labels=labels, stratify=True)
    assert len(kept) == 4
    assert {labels[k] for k in kept} == {"a", None, 3}


@pytest.mark.parametrize("rate", [1, 1.0, 1.5, -0.1, float("nan"), "0.5", None, True])
def test_bad_prune_rate(rate):
    with pytest.raises(ValueError, match="prune_rate"):
        select_coreset(np.ones(5), rate)
    with pytest.raises(ValueError, match="prune_rate"):
        kept_count(5, rate)


def test_nan_scores_rejected():
    with pytest.raises(ValueError, match="NaN"):
        select_coreset(np.array([0.1, np.nan, 0.3]), 0.5)
    with pytest.raises(ValueError, match="None"):
        select_coreset(np.array([0.1, None, 0.3], dtype=object), 0.5)
    with pytest.raises(ValueError, match="infinite"):
        select_coreset(np.array([0.1, np.inf, 0.3]), 0.5)


@pytest.mark.parametrize("mode", sorted(EMBEDDING_SELECTIONS))
def test_missing_embeddings(mode):
    with pytest.raises(ValueError, match="needs embeddings"):
        select_coreset(np.ones(5), 0.5, selection=mode)


def test_other_validation():
    scores, emb = _data(10)
    with pytest.raises(ValueError, match="embeddings must have shape"):
        select_coreset(scores, 0.5, selection="prototype", embeddings=emb[:9])
    with pytest.raises(ValueError, match="NaN or infinite"):
        bad = emb.copy()
        bad[3, 1] = np.nan
        select_coreset(scores, 0.5, selection="coverage", embeddings=bad)
    with pytest.raises(ValueError, match="labels"):
        select_coreset(scores, 0.5, labels=np.zeros(9), stratify=True)
    with pytest.raises(ValueError, match="needs labels"):
        select_coreset(scores, 0.5, stratify=True)
    with pytest.raises(ValueError, match="selection"):
        select_coreset(scores, 0.5, selection="nope")
    with pytest.raises(ValueError, match="keep"):
        select_coreset(scores, 0.5, keep="best")
    with pytest.raises(ValueError, match="one-dimensional"):
        select_coreset(np.ones((3, 2)), 0.5)


@pytest.mark.parametrize("mode", ["prototype", "coverage"])
def test_embedding_modes_cover_every_blob(mode):
    # four tight, far-apart blobs of equal size and scores that favour one blob:
    # keeping 4 must take one from each (score order alone would take blob 0)
    emb, blob = _blobs()
    scores = np.where(blob == 0, 1.0, 0.0) + np.random.default_rng(0).random(len(blob)) * 0.1
    assert set(blob[select_coreset(scores, 1 - 4 / len(blob))]) == {0}
    for seed in range(3):
        kept = select_coreset(scores, 1 - 4 / len(blob), selection=mode, embeddings=emb, seed=seed)
        assert sorted(blob[kept]) == [0, 1, 2, 3]


def test_cluster_mode_balances_and_uses_scores():
    emb, blob = _blobs(per=40, centers=((0, 0), (20, 0)))
    scores = np.random.default_rng(1).random(len(blob))
    scores[blob == 0] += 10  # score order alone keeps only blob 0
    kept = select_coreset(scores, 0.5, selection="cluster", embeddings=emb, seed=0)
    assert abs(int((blob[kept] == 0).sum()) - 20) <= 2


def test_duplicates_do_not_break_counts():
    base = np.random.default_rng(0).normal(size=(5, 3))
    emb = np.repeat(base, 20, axis=0)  # 100 rows, 5 distinct
    scores = np.zeros(100)
    for mode in SELECTIONS:
        for rate in (0.5, 0.9, 0.95, 0.97):
            kept = select_coreset(scores, rate, selection=mode, embeddings=emb, seed=1)
            assert len(kept) == 100 - math.floor(rate * 100)
    # the first 5 prototypes are the 5 distinct points
    kept = select_coreset(scores, 0.95, selection="prototype", embeddings=emb)
    assert len({tuple(e) for e in emb[kept]}) == 5
