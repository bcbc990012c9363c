"""Unit tests of core.zcore: hand-checkable cases, exactness, determinism, errors."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from bench.zcore_reference import reference_zcore_scores
from coreset_curation.core import zcore


def _cloud(n=40, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _brute_force(cols, dims, points, ties, k, exp):
    """The published iteration, one full sort at a time, for the same draws."""
    num = cols.shape[1]
    acc = np.zeros(num, dtype=np.int64)
    unit = 2**32
    for row, point, tie in zip(dims, points, ties):
        dist = np.zeros(num, dtype=np.float32)
        for j, d in enumerate(row):
            dist += np.abs(cols[d] - point[j])
        nearest = np.flatnonzero(dist == dist.min())
        cover = nearest[min(int(tie * len(nearest)), len(nearest) - 1)]
        acc[cover] += unit
        dist = np.zeros(num, dtype=np.float32)
        for j, d in enumerate(row):
            dist += np.abs(cols[d] - cols[d, cover])
        order = [i for i in np.argsort(dist, kind="stable") if i != cover]
        if dist[order[0]] == 0:
            acc[order[0]] -= unit
            continue
        near = np.array(order[:k])
        weights = (np.float64(dist[near[0]]) / dist[near].astype(np.float64)) ** exp
        acc[near] -= np.round(weights / weights.sum() * unit).astype(np.int64)
    return acc


@pytest.mark.parametrize(
    "num,dim,k,levels",
    [
        (500, 6, 50, None),
        (3000, 16, 1000, None),
        (200, 3, 199, None),
        (60, 2, 1, None),
        (3000, 8, 400, 6),
        (3000, 8, 400, 200),
    ],
)
def test_fast_kernel_equals_full_sort(num, dim, k, levels):
    x = _cloud(num, dim, seed=num)
    if levels is not None:
        # Few distinct values: many equal distances at the k-th neighbour and exact duplicates.
        x = np.round(x * levels / 4).astype(np.float32)
    cols = zcore._as_columns(x)
    lo, med, hi = zcore._column_stats(cols)
    u_dims, u_points, ties = zcore.chunk_uniforms(7, 0, 300, 2)
    dims = np.empty((300, 2), dtype=np.int64)
    points = np.empty((300, 2), dtype=np.float32)
    zcore.prepare_iterations(u_dims, u_points, lo, med, hi, dim, dims, points)
    acc0 = np.zeros(num, dtype=np.int64)
    acc1 = np.zeros(num, dtype=np.int64)
    halves = np.zeros(300, dtype=np.int8)
    zcore._run_iterations(cols, dims, points, ties, halves, k, 4.0, acc0, acc1)
    expected = _brute_force(cols, dims, points, ties, k, 4.0)
    # Weights are rounded to 2**-32; the integer power may differ in the last ulp.
    np.testing.assert_allclose(acc0, expected, atol=4, rtol=0)
    assert not acc1.any()


def test_draws_are_distinct_dims_and_inside_the_data_range():
    u_dims, u_points, _ = zcore.chunk_uniforms(1, 3, 2000, 3)
    dims = zcore.distinct_dims(u_dims, 5)
    assert dims.min() >= 0 and dims.max() < 5
    assert all(len(set(row)) == 3 for row in dims.tolist())
    # Every dimension is drawn about equally often.
    counts = np.bincount(dims.ravel(), minlength=5)
    assert counts.min() > 0.8 * counts.mean()


def test_isolated_point_scores_high_and_a_duplicate_pair_both_lose():
    x = _cloud()
    x[0] = 6.0
    alone = zcore.zcore_scores(x, n_samples=40_000, random_init=False, seed=0)
    assert alone[0] > np.quantile(alone, 0.75)
    doubled = zcore.zcore_scores(np.vstack([x, x[:1]]), n_samples=40_000, random_init=False, seed=0)
    assert doubled[0] < alone[0] - 0.1
    assert doubled[-1] < alone[0] - 0.1


def test_outputs_are_normalized_float32():
    scores = zcore.zcore_scores(_cloud(100), n_samples=2_000, seed=3)
    assert scores.dtype == np.float32 and scores.shape == (100,)
    assert scores.min() == 0.0 and scores.max() == 1.0


def test_same_seed_same_scores_whatever_the_threads():
    x = _cloud(300, 8)
    one = zcore.zcore_scores(x, n_samples=5_000, seed=11, num_threads=1)
    two = zcore.zcore_scores(x, n_samples=5_000, seed=11, num_threads=2)
    other = zcore.zcore_scores(x, n_samples=5_000, seed=12, num_threads=2)
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one, other)


def test_seed_none_is_reported_and_reproduces():
    x = _cloud(80)
    first = zcore.zcore_run(x, n_samples=1_000)
    again = zcore.zcore_run(x, n_samples=1_000, seed=first.seed)
    np.testing.assert_array_equal(first.scores, again.scores)


def test_tiny_distances_do_not_overflow():
    x = _cloud(120, 4)
    scaled = zcore.zcore_scores(x * np.float32(1e-18), n_samples=5_000, random_init=False, seed=5)
    plain = zcore.zcore_scores(x, n_samples=5_000, random_init=False, seed=5)
    assert np.isfinite(scaled).all()
    assert spearmanr(scaled, plain).statistic > 0.99


def test_redundancy_nn_larger_than_n_is_capped():
    scores = zcore.zcore_scores(_cloud(10), n_samples=500, redundancy_nn=1000, seed=0)
    assert np.isfinite(scores).all() and scores.shape == (10,)


def test_split_half_reliability_is_recorded_and_grows_with_iterations():
    x = _cloud(200, 8)
    few = zcore.zcore_run(x, n_samples=400, random_init=False, seed=1)
    many = zcore.zcore_run(x, n_samples=40_000, random_init=False, seed=1)
    assert -1 <= few.reliability < many.reliability <= 1
    assert many.reliability > 0.8


def test_auto_stops_at_the_target():
    result = zcore.zcore_run(_cloud(200, 8), n_samples="auto", target_reliability=0.6, seed=2)
    assert result.stopped_by == "target_reliability"
    assert result.reliability >= 0.6
    assert result.n_samples >= 2_000


@pytest.mark.parametrize("sample_dim", [2, 3])  # the converging engine, and sampling rounds
def test_auto_stops_at_the_time_budget(sample_dim):
    zcore.zcore_run(_cloud(50, 4), sample_dim=sample_dim, seed=0)  # compiles the kernels outside the budget
    result = zcore.zcore_run(
        _cloud(2_000, 32), n_samples="auto", sample_dim=sample_dim, target_reliability=0.999, time_budget=1.0, seed=2
    )
    assert result.stopped_by == "time_budget"
    assert result.seconds < 6.0
    assert not result.reliability >= 0.999  # NaN when too few pairs were visited to measure it


def test_matches_the_published_algorithm_in_distribution():
    # Small enough to converge: 300 iterations per sample, no random init.
    x = _cloud(150, 8, seed=4)
    n = 300 * len(x)
    ours = zcore.zcore_scores(x, n_samples=n, random_init=False, seed=1)
    ref_a = reference_zcore_scores(x, n_samples=n, random_init=False, seed=1)
    ref_b = reference_zcore_scores(x, n_samples=n, random_init=False, seed=2)
    between_refs = spearmanr(ref_a, ref_b).statistic
    assert between_refs > 0.5
    assert spearmanr(ours, ref_a).statistic >= between_refs - 0.05


def test_torch_engine_matches_the_cpu_engine():
    torch = pytest.importorskip("torch")
    x = _cloud(400, 6, seed=9)
    cols = zcore._as_columns(x)
    stats = zcore._column_stats(cols)
    specs = [(5, 0, 256), (5, 1, 256)]
    cpu = np.zeros((2, 400), dtype=np.int64)
    zcore._CpuEngine(cols, stats, 2, 50, 4.0, 2)(specs, cpu, lambda n: None)
    on_torch = np.zeros((2, 400), dtype=np.int64)
    zcore._TorchEngine(cols, stats, 2, 50, 4.0, "cpu")(specs, on_torch, lambda n: None)
    assert torch.is_tensor(torch.zeros(1))
    np.testing.assert_allclose(on_torch, cpu, atol=8 * 512, rtol=0)


def test_progress_reaches_one():
    seen = []
    zcore.zcore_scores(_cloud(50), n_samples=3_000, seed=0, progress=seen.append)
    assert seen and seen[-1] == 1.0
    assert all(0.0 <= p <= 1.0 for p in seen)


@pytest.mark.parametrize(
    "embeddings,kwargs,message",
    [
        (np.zeros((2, 4)), {}, "at least 3 samples"),
        (np.zeros(5), {}, "2-D array"),
        (np.array([[0, 1.0], [np.nan, 1], [2, 3]]), {}, "NaN or inf"),
        (np.array([[0, 1.0], [np.inf, 1], [2, 3]]), {}, "NaN or inf"),
        (np.zeros((5, 2)), {"sample_dim": 3}, "sample_dim"),
        (np.zeros((5, 2)), {"n_samples": 0}, "n_samples"),
        (np.zeros((5, 2)), {"n_samples": "many"}, "n_samples"),
        (np.zeros((5, 2)), {"redundancy_nn": -1}, "redundancy_nn"),
        (np.zeros((5, 2)), {"redundancy_exp": float("nan")}, "redundancy_exp"),
        (np.zeros((5, 2)), {"device": "tpu"}, "device"),
        (np.array([["a", "b"]] * 4), {}, "numeric"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(embeddings, kwargs, message):
    with pytest.raises(ValueError, match=message):
        zcore.zcore_scores(embeddings, **kwargs)


def test_constant_embeddings_give_zero_scores():
    scores = zcore.zcore_scores(np.ones((6, 3)), n_samples=200, random_init=False, seed=0)
    assert scores.shape == (6,) and np.isfinite(scores).all()


def test_kernels_load_from_the_disk_cache_in_a_fresh_process(tmp_path):
    """numba compiles the kernels once per machine: a second process loads them from disk."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from harness import plugin_package; plugin_package()\n"
        "import numpy as np\n"
        "from coreset_curation.core import zcore, zcore_cpu\n"
        "zcore.zcore_run(np.random.default_rng(0).normal(size=(50, 4)), n_samples=200, seed=0, device='cpu')\n"
        "kernels = [zcore_cpu.run_iterations, zcore.prepare_iterations]\n"
        "print(sum(len(k.stats.cache_hits) for k in kernels), sum(len(k.stats.cache_misses) for k in kernels))\n"
    ) % os.path.dirname(__file__)
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            for _ in range(2)]
    hits, misses = map(int, runs[1].stdout.split()[-2:])
    assert hits >= 2 and misses == 0, runs[1].stdout
