"""Plain per-iteration ZCore, as published: the baseline of the speed benchmark.

One numpy iteration at a time over row-major embeddings, a full argsort for the
redundancy neighbours, iterations split across worker processes each with its
own random stream. It is kept simple on purpose: it is what we compare against.
"""

import numpy as np
from concurrent.futures import ProcessPoolExecutor


def _sample_scores(embeddings, stats, n_iter, sample_dim, redundancy_nn, redundancy_exp, seed):
    rng = np.random.default_rng(seed)
    lo, med, hi = stats
    num, dim = embeddings.shape
    scores = np.zeros(num)
    for _ in range(n_iter):
        dims = rng.choice(dim, sample_dim, replace=False)
        point = rng.triangular(lo[dims], med[dims], hi[dims])
        dist = np.abs(embeddings[:, dims] - point).sum(axis=1)
        cover = rng.choice(np.flatnonzero(dist == dist.min()))
        scores[cover] += 1
        dist = np.abs(embeddings[:, dims] - embeddings[cover, dims]).sum(axis=1)
        order = np.argsort(dist)
        order = order[order != cover]
        if dist[order[0]] == 0:
            scores[order[0]] -= 1
            continue
        near = order[:redundancy_nn]
        penalty = (dist[near[0]] / dist[near].astype(np.float64)) ** redundancy_exp
        scores[near] -= penalty / penalty.sum()
    return scores


def reference_zcore_scores(
    embeddings,
    *,
    n_samples=1_000_000,
    sample_dim=2,
    redundancy_nn=1000,
    redundancy_exp=4,
    random_init=True,
    seed=None,
    workers=1,
):
    """Published ZCore, one iteration at a time; returns raw-normalized scores."""
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    stats = (
        embeddings.min(axis=0).astype(np.float64),
        np.median(embeddings, axis=0).astype(np.float64),
        embeddings.max(axis=0).astype(np.float64),
    )
    redundancy_nn = min(redundancy_nn, len(embeddings) - 1)
    seeds = np.random.SeedSequence(seed).spawn(workers + 1)
    parts = [n_samples // workers + (w < n_samples % workers) for w in range(workers)]
    args = [
        (embeddings, stats, parts[w], sample_dim, redundancy_nn, redundancy_exp, seeds[w])
        for w in range(workers)
    ]
    if workers == 1:
        results = [_sample_scores(*args[0])]
    else:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_sample_scores, *zip(*args)))
    scores = np.sum(results, axis=0)
    if random_init:
        scores += np.random.default_rng(seeds[-1]).uniform(0, 1, len(scores))
    lo, hi = scores.min(), scores.max()
    return ((scores - lo) / (hi - lo) if hi > lo else np.zeros_like(scores)).astype(np.float32)
