"""Tests of core.order on curation-shaped data: rare groups kept, near-duplicates out first, junk last."""

import numpy as np
import pytest

import coreset_curation.core.order as co
from coreset_curation.core.duplicates import default_radius
from coreset_curation.core.order import EMBEDDING_ORDERS, ORDERS, coreset_order, kept_count, order_uses

MODES = sorted(EMBEDDING_ORDERS)


def _scene(rare=5, copies=(), junk=4, seed=0, d=8):
    """Four broad blobs of 80, a tight rare group far away, near-duplicate copies, junk singles.

    Returns embeddings and masks/ids: rare group, duplicate group id (-1: none), junk.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (4, d))
    emb = [c + rng.normal(0, 1, (80, d)) for c in centres]
    far = rng.normal(size=d)
    emb.append(25 * far / np.linalg.norm(far) + rng.normal(0, 0.3, (rare, d)))
    base = np.concatenate(emb)
    group = np.full(len(base), -1)
    dup = []
    for g, (src, m) in enumerate(copies):  # m extra copies of base[src], tiny noise
        group[src] = g
        dup.append(base[src] + rng.normal(0, 1e-3, (m, d)))
        group = np.concatenate([group, np.full(m, g)])
    junk_x = rng.uniform(-200, 200, (junk, d))
    emb = np.concatenate([base] + dup + [junk_x])
    n = len(emb)
    is_rare = np.zeros(n, bool)
    is_rare[320 : 320 + rare] = True
    group = np.concatenate([group, np.full(junk, -1)])
    is_junk = np.zeros(n, bool)
    is_junk[n - junk :] = True
    return emb, is_rare, group, is_junk


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rare", [3, 5, 10])
def test_rare_tight_group_survives(mode, rare):
    emb, is_rare, _, is_junk = _scene(rare=rare, seed=rare)
    n = len(emb)
    # the old guard (10th neighbour, robust z) took the group for junk: its 10th neighbour is in another blob
    kd10 = co._kth_neighbour(co._distances(emb), 10)
    med = np.median(kd10)
    assert (kd10[is_rare] > med + 6 * 1.4826 * np.median(np.abs(kd10 - med))).all()
    assert not co._outlier_mask(co._distances(emb))[is_rare].any()
    for seed in range(3):
        scores = np.random.default_rng(seed).random(n)
        order = coreset_order(scores, embeddings=emb, mode=mode, seed=seed)
        for rate in (0.5, 0.7, 0.8, 0.9):
            kept = order[: kept_count(n, rate)]
            assert is_rare[kept].sum() >= 1, (mode, rare, seed, rate)
        # junk singles still go last
        assert is_junk[order[n - is_junk.sum() :]].all(), (mode, seed)


@pytest.mark.parametrize("mode", MODES)
def test_near_duplicates_go_first(mode):
    copies = [(3, 4), (90, 1), (170, 2), (250, 6)]
    emb, _, group, is_junk = _scene(copies=copies, seed=7)
    n = len(emb)
    extras = sum(m for _, m in copies)
    order = coreset_order(np.random.default_rng(0).random(n), embeddings=emb, mode=mode, seed=1)
    rank = co.ranks_from_order(order)
    tail = order[n - is_junk.sum() - extras : n - is_junk.sum()]
    # the extra copies come right before the junk: pruned after the junk, before anything else
    assert sorted(np.bincount(group[tail], minlength=len(copies)).tolist()) == sorted(m for _, m in copies)
    for g in range(len(copies)):
        members = np.flatnonzero(group == g)
        assert (rank[members] < n - is_junk.sum() - extras).sum() == 1  # one representative in the kept tier
    # rounds: every group's second member comes before any group's third
    nth = {g: np.sort(rank[group == g]) for g in range(len(copies))}
    second = max(r[1] for r in nth.values())
    third = min(r[2] for r in nth.values() if len(r) > 2)
    assert second < third
    # the copies are within the shared radius rule, distinct samples are not
    d = co._distances(emb)
    radius = default_radius(co._kth_neighbour(d, 10))
    assert d[3, n - is_junk.sum() - extras] < radius


def test_duplicate_representative_is_the_best_score():
    emb, _, group, _ = _scene(copies=[(5, 3)], seed=3)
    members = np.flatnonzero(group == 0)
    scores = np.zeros(len(emb))
    scores[members[2]] = 1.0
    order = coreset_order(scores, embeddings=emb, mode="prototype")
    rank = co.ranks_from_order(order)
    assert rank[members[2]] == rank[members].min()


@pytest.mark.parametrize("mode", MODES)
def test_tiers_hold_over_blocks(mode, monkeypatch):
    monkeypatch.setattr(co, "BLOCK_SIZE", 100)
    monkeypatch.setattr(co, "BRANCH", 4)
    copies = [(3, 4), (90, 1), (170, 2), (250, 6)]
    emb, is_rare, group, is_junk = _scene(rare=5, copies=copies, seed=7)
    n = len(emb)
    order = coreset_order(np.zeros(n), embeddings=emb, mode=mode, seed=0)
    extras = sum(m for _, m in copies)
    assert is_junk[order[n - is_junk.sum() :]].all()
    assert (group[order[n - is_junk.sum() - extras : n - is_junk.sum()]] >= 0).all()
    assert is_rare[order[: kept_count(n, 0.9)]].any()


def test_block_results_do_not_hold_the_block_matrix():
    # Every block's groups and isolation are kept until all blocks are done: they must not be views
    # into an m x m matrix (the 1M default order peaked at 11 GiB, 5.9x the embeddings, when they were).
    emb, *_ = _scene(rare=5, copies=[(3, 4)], seed=1)
    dist = co._distances(emb)

    def held(a):
        while a.base is not None:
            a = a.base
        return a.nbytes

    for part in co._groups(dist, np.arange(len(emb)), single=False):
        assert held(np.asarray(part)) < dist.nbytes / 10


def test_order_uses():
    for mode in ORDERS:
        line = order_uses(mode)
        assert isinstance(line, str) and line and "\n" not in line
    for mode in ("prototype", "coverage"):
        assert order_uses(mode).startswith("embeddings only")
    assert order_uses("cluster").startswith("score within clusters")
    assert order_uses("top").startswith("score only")
    assert "score strata" in order_uses("ccs")
    with pytest.raises(ValueError, match="mode must be one of"):
        order_uses("nope")
