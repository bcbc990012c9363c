"""The converging ZCore engine estimates what the exact engine estimates, reproducibly and cancellably."""

import time

import numpy as np
import pytest
from scipy.stats import spearmanr

from bench.zcore_reliability import embeddings
from coreset_curation.core import zcore
from coreset_curation.core import zcore_expected
from coreset_curation.core.zcore_expected import zcore_expected_run


def test_ranks_like_a_long_run_of_the_exact_engine():
    x = embeddings(1000, dim=16)
    iterations = 1000 * len(x)
    ref_a = zcore.zcore_run(x, n_samples=iterations, random_init=False, seed=1)
    ref_b = zcore.zcore_run(x, n_samples=iterations, random_init=False, seed=2)
    # Two exact runs agree only up to their own noise: that is the ceiling.
    ceiling = spearmanr(ref_a.scores, ref_b.scores).statistic
    ours = zcore_expected_run(x, target_reliability=0.95, random_init=False, seed=3)
    assert ours.reliability >= 0.95 and ours.stopped_by == "target_reliability"
    rho = spearmanr(ours.scores, ref_a.scores).statistic
    assert ceiling > 0.85
    assert rho >= ceiling - 0.02, (rho, ceiling)


def test_same_seed_same_scores_and_another_seed_differs():
    x = embeddings(600, dim=8)
    one = zcore_expected_run(x, seed=4, num_threads=1)
    two = zcore_expected_run(x, seed=4, num_threads=2)
    other = zcore_expected_run(x, seed=5)
    np.testing.assert_array_equal(one.scores, two.scores)
    assert not np.array_equal(one.scores, other.scores)
    assert one.scores.dtype == np.float32 and one.scores.min() == 0.0 and one.scores.max() == 1.0


def test_a_progress_callback_that_raises_cancels_the_run():
    x = embeddings(20_000, dim=64)
    seen = []

    def cancel(fraction):
        seen.append(fraction)
        raise KeyboardInterrupt

    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        zcore_expected_run(x, seed=0, target_reliability=0.999, progress=cancel)
    assert len(seen) == 1
    # A full run takes minutes; the cancelled one stops after its threads' current batch.
    assert time.perf_counter() - start < 20


def test_a_duplicate_pair_both_lose_coverage():
    x = embeddings(300, dim=6)
    alone = zcore_expected_run(x, random_init=False, seed=0).scores
    doubled = zcore_expected_run(np.vstack([x, x[:1]]), random_init=False, seed=0).scores
    assert doubled[0] < alone[0] - 0.05
    assert doubled[-1] < alone[0] - 0.05


def test_zcore_run_defaults_to_it_and_keeps_the_sampling_engine_elsewhere():
    x = embeddings(300, dim=6)
    via_run = zcore.zcore_run(x, seed=7)
    np.testing.assert_array_equal(via_run.scores, zcore_expected_run(x, seed=7).scores)
    assert via_run.n_samples != zcore.PAPER_N_SAMPLES
    # Other sample_dim values, and a number of iterations, run the published sampling process.
    three = zcore.zcore_run(x, sample_dim=3, target_reliability=0.6, seed=7)
    assert three.stopped_by == "target_reliability" and three.n_samples % 300 == 0
    paper = zcore.zcore_run(x, n_samples=zcore.PAPER_N_SAMPLES, seed=7)
    assert paper.n_samples == 1_000_000 and paper.stopped_by == "n_samples" and paper.target_reliability is None


def test_time_budget_stops_a_run_short_and_says_so():
    result = zcore_expected_run(embeddings(20_000, dim=64), seed=1, target_reliability=0.999, time_budget=1.0)
    assert result.stopped_by == "time_budget"
    assert not result.reliability >= 0.999  # NaN when too few pairs were visited to measure it
    assert result.warning.startswith("Stopped short: the time budget ran out") and "time_budget" in result.warning


def test_a_run_without_a_time_budget_still_ends_after_max_passes(monkeypatch):
    monkeypatch.setattr(zcore_expected, "MAX_PASSES", 2)
    result = zcore_expected_run(embeddings(300, dim=6), seed=0, target_reliability=0.999999, time_budget=None)
    assert result.stopped_by == "max_passes" and result.n_samples > 0
    assert result.warning.startswith("Stopped short: the pass cap was reached")


@pytest.mark.parametrize(
    "embeddings_,kwargs,message",
    [
        (np.zeros((5, 1)), {}, "at least 2 dimensions"),
        (np.zeros((2, 4)), {}, "at least 3 samples"),
        (np.array([[0, 1.0], [np.nan, 1], [2, 3]]), {}, "NaN or inf"),
        (np.zeros((5, 2)), {"target_reliability": 1.5}, "target_reliability"),
        (np.zeros((5, 2)), {"time_budget": -1}, "time_budget"),
        (np.zeros((5, 2)), {"redundancy_nn": 0}, "redundancy_nn"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(embeddings_, kwargs, message):
    with pytest.raises(ValueError, match=message):
        zcore_expected_run(embeddings_, **kwargs)
