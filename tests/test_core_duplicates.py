"""Tests of core.duplicates: planted copies found, tight distinct groups kept apart, the radius, determinism."""

import numpy as np
import pytest

from coreset_curation.core import duplicates as cd
from coreset_curation.core.duplicates import near_duplicate_groups


def _planted(n=3000, d=32, copies=200, noise=0.01, seed=0):
    """Clustered points plus ``copies`` noisy copies of distinct originals; returns (x, pairs of (original, copy))."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, d))
    x = centers[rng.integers(0, 20, n)] + 0.5 * rng.normal(size=(n, d))
    originals = rng.choice(n, copies, replace=False)
    dup = x[originals] + noise * rng.normal(size=(copies, d))
    return np.concatenate([x, dup]).astype(np.float32), np.stack([originals, n + np.arange(copies)], axis=1)


def _check_planted(result, pairs, n):
    groups, representative, radius = result
    assert radius > 0
    for original, copy in pairs:
        assert groups[original] >= 0 and groups[original] == groups[copy]
    grouped = np.flatnonzero(groups >= 0)
    assert set(grouped) == set(pairs.ravel())  # nothing else is called a duplicate
    assert result.num_groups == len(pairs) and result.num_copies == len(pairs)
    # one representative per group, the lowest index: the original
    assert representative[pairs[:, 0]].all() and not representative[pairs[:, 1]].any()
    assert representative[groups < 0].all()


def test_planted_copies_are_found_exact():
    x, pairs = _planted()
    _check_planted(near_duplicate_groups(x), pairs, len(x))


def test_planted_copies_are_found_on_principal_components(monkeypatch):
    monkeypatch.setattr(cd, "EXACT_MAX", 1000)  # the IVF path, at a test's size
    x, pairs = _planted(n=6000, d=96, copies=300)
    _check_planted(near_duplicate_groups(x), pairs, len(x))


def test_a_tight_group_of_distinct_samples_is_not_merged():
    rng = np.random.default_rng(3)
    background = rng.normal(size=(20, 16))[rng.integers(0, 20, 2000)] * 8.0 + rng.normal(size=(2000, 16))
    tight = rng.normal(size=(8, 16)) * 0.5 + 60.0  # 8 distinct samples of a rare group, tighter than the rest
    copy = tight[:1] + 0.001
    x = np.concatenate([background, tight, copy]).astype(np.float32)
    groups, representative, _ = near_duplicate_groups(x)
    assert groups[2000] >= 0 and groups[2000] == groups[2008]
    assert (groups[2001:2008] == -1).all()  # the group's distinct members are no copies of each other
    assert (groups >= 0).sum() == 2 and representative.sum() == len(x) - 1


def test_groups_of_several_copies_and_exact_duplicates():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(500, 8))
    x = np.concatenate([x, np.repeat(x[:3], 40, axis=0)]).astype(np.float32)  # 40 exact copies of each of 3
    groups, representative, _ = near_duplicate_groups(x)
    assert [groups[k] for k in range(3)] == [0, 1, 2]
    for k in range(3):
        assert (groups[500 + 40 * k : 540 + 40 * k] == k).all()
    assert representative.sum() == 500


def test_radius_is_used_and_validated():
    x = np.array([[0.0, 0.0], [0.5, 0.0], [3.0, 0.0], [3.2, 0.0]], np.float32)
    groups, representative, radius = near_duplicate_groups(x, radius=0.6)
    assert radius == 0.6 and list(groups) == [0, 0, 1, 1] and list(representative) == [True, False, True, False]
    assert list(near_duplicate_groups(x, radius=0.3).groups) == [-1, -1, 0, 0]
    assert list(near_duplicate_groups(x, radius=0).groups) == [-1, -1, -1, -1]
    for bad in (-1, "wide", float("nan"), float("inf")):
        with pytest.raises(ValueError, match="^radius must be"):
            near_duplicate_groups(x, radius=bad)
    with pytest.raises(ValueError, match="^radius: the automatic radius needs more than 10 samples"):
        near_duplicate_groups(x)
    with pytest.raises(ValueError, match="^num_threads must be"):
        near_duplicate_groups(x, radius=1, num_threads=0)
    with pytest.raises(ValueError, match="^embeddings must be a 2-D array"):
        near_duplicate_groups(x[0])


def test_default_radius_follows_the_rule():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    tenth = np.sort(d, axis=1)[:, cd.REFERENCE_NEIGHBOR]  # column 0 is the sample itself
    assert near_duplicate_groups(x).radius == pytest.approx(cd.RADIUS_RATIO * np.median(tenth), rel=1e-5)


def test_deterministic_and_cancellable(monkeypatch):
    monkeypatch.setattr(cd, "EXACT_MAX", 1000)
    x, _ = _planted(n=4000, d=80, copies=100, seed=9)
    first, second = near_duplicate_groups(x, num_threads=1), near_duplicate_groups(x)
    assert np.array_equal(first.groups, second.groups) and first.radius == second.radius
    seen = []

    def stop(fraction):
        seen.append(fraction)
        if fraction > 0.5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        near_duplicate_groups(x, progress=stop)
    assert seen == sorted(seen)


def test_empty_input():
    result = near_duplicate_groups(np.empty((0, 4), np.float32), radius=1.0)
    assert len(result.groups) == 0 and result.num_groups == 0
