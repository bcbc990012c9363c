"""ZCore in expectation: the converging engine (``sample_dim=2``).

The published process (see :mod:`.zcore`) draws a dimension pair, a point from
the product of the per-dimension triangular(min, median, max) densities, +1 to
the L1-nearest sample and minus the normalised ``d ** -redundancy_exp``
weights to that sample's ``redundancy_nn`` nearest others. Its expectation is
the average over all D (D - 1) / 2 pairs of each pair's expected
contribution. This engine estimates that average with far less noise per
second:

- pairs are visited exhaustively, in a random order (a pass), so the pair
  sampling noise, which dominates the published estimate, vanishes once a
  pass is complete (measured: the contribution of a sample differs far more
  from pair to pair than from draw to draw);
- within a pair the points are not drawn at random but form two shifted
  quantile lattices of the pair's triangular density (stratified: each
  sample's count is close to the mass of its L1 Voronoi cell); every point
  adds coverage, and one in ``COVERAGE_REFINE ** 2`` (a coarser lattice with
  the same expectation) spreads the redundancy penalty, whose search of the
  nearest others is the costly part;
- one 2-D grid index per pair answers each point's nearest sample and each
  covered sample's nearest others from the few cells nearest to it (a
  best-first search by L1 distance) instead of one O(N) pass;
- the weights ``d ** -redundancy_exp`` fall off like ``j ** -(exp / 2)`` with
  the neighbour rank j, so only the nearest ``NEIGHBOURS_USED`` are computed
  and the normalisation adds the tail out to ``redundancy_nn`` for a locally
  uniform density (``bench/zcore_reliability.py --neighbours`` measures that
  the ranking does not change);
- exact duplicates in a projection share their coverage and the earliest
  other duplicate (by row) loses it, as in the published process.

Reliability: four sums, by pair half (alternate pairs of the order) and by
lattice. While a pass is partial, the pair halves' split-half reliability
measures the noise (as for ``n_samples="auto"``); the noise of sampling pairs
shrinks by the unvisited fraction, and once every pair is visited only the
lattices' split-half noise remains.
"""

import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from . import params
from .zcore import DEFAULTS, ZCoreResult, _as_columns, _column_stats, min_max_normalize, split_half_reliability
from .zcore_expected_cpu import run_pairs
from .zcore_ray import BACKENDS, check_backend

#: neighbours whose weights are computed; the rest of the normalisation is estimated. 16 left a bias
#: (Spearman rho 0.930 against 10^8 exact iterations at 10,000 x 64, 64 gives 0.957, each at reliability
#: about 0.955): the penalty share of neighbours beyond it is dropped, and it varies with local density.
NEIGHBOURS_USED = 64
#: lattice points per sample over one pass of all pairs (both lattices together)
POINTS_PER_SAMPLE = 2000
#: coverage lattice points per side of a redundancy lattice point: the penalties are spread from one in
#: COVERAGE_REFINE ** 2 of the points (a coarser lattice with the same expectation), which costs a search of the
#: 65 nearest each, while every point adds coverage. At 100,000 x 512, one thread, 80 s (bench/zcore_refine.py):
#: 1 -> 0.181 (10.2 ms a visit), 2 -> 0.249 (4.0 ms), 3 -> 0.240, 4 -> 0.213 split-half rank reliability.
COVERAGE_REFINE = 2
#: most passes over all pairs a run makes (data whose reliability cannot grow stops here)
MAX_PASSES = 32
# Pairs in the first round, before the reliability can say how many are needed.
_FIRST_ROUND = 64
# Pairs a thread runs between checks for cancellation.
_BATCH = 8
#: samples per grid cell on average (a cell costs a heap step of the search: at 100,000 x 512 a
#: visit took 8.0 ms at 10 per cell, 14.3 ms at 2 and 8.2 ms at 43)
CELL_SAMPLES = 10
# Values sampled per column for the quantile edges of the grid cells.
_EDGE_SAMPLE = 20_000


def zcore_expected_run(
    embeddings,
    *,
    seed=None,
    target_reliability=DEFAULTS["target_reliability"],
    time_budget=DEFAULTS["time_budget"],
    redundancy_nn=DEFAULTS["redundancy_nn"],
    redundancy_exp=DEFAULTS["redundancy_exp"],
    random_init=DEFAULTS["random_init"],
    progress=None,
    num_threads=None,
    max_pairs=None,
    backend=DEFAULTS["backend"],
    ray_address=None,
):
    """Scores every row of ``embeddings`` by ZCore's expected score (``sample_dim=2``).

    Args:
        embeddings: array-like of shape (N, D), N >= 3, D >= 2, finite values
        seed: integer seed; None draws one (returned in the result)
        target_reliability: the reliability at which the run stops
        time_budget: seconds after which the run stops (None: no limit)
        redundancy_nn: neighbours over which the penalty is normalised
        redundancy_exp: exponent of the inverse-distance penalty
        random_init: break ties between equal scores at random
        progress: optional callable receiving the estimated fraction done in
            [0, 1]; an exception it raises cancels the run
        num_threads: CPU threads (default: all cores)
        max_pairs: stop after this many pair visits (default: no limit)
        backend: ``"local"`` (CPU threads) or ``"ray"`` (tasks on a Ray
            cluster, :mod:`.zcore_ray`: the same scores for the same seed)
        ray_address: the Ray cluster (default: a Ray already initialised in
            this process, else ``RAY_ADDRESS``, else a new local Ray)

    Returns:
        a :class:`~.zcore.ZCoreResult` whose ``n_samples`` is the number of
        lattice points (the draws it stands for) and ``stopped_by`` one of
        ``"target_reliability"``, ``"time_budget"``, ``"max_pairs"`` or
        ``"max_passes"`` (:data:`MAX_PASSES`, or a complete pass whose
        reliability cannot be measured, e.g. constant scores)
    """
    start = time.perf_counter()
    seed = params.seed(seed)
    target_reliability = params.number("target_reliability", target_reliability, above=0.0, below=1.0)
    time_budget = params.optional(params.number, "time_budget", time_budget, above=0.0)
    redundancy_nn = params.integer("redundancy_nn", redundancy_nn, minimum=1)
    redundancy_exp = params.number("redundancy_exp", redundancy_exp, minimum=0.0)
    random_init = params.boolean("random_init", random_init)
    progress = params.callback("progress", progress)
    num_threads = params.optional(params.integer, "num_threads", num_threads, minimum=1)
    max_pairs = params.optional(params.integer, "max_pairs", max_pairs, minimum=2)
    backend, ray_address = check_backend(backend, ray_address)

    engine = _Engine(embeddings, redundancy_nn, redundancy_exp, seed)
    run_visits = _executor(backend, engine, num_threads, ray_address)
    total = len(engine.pairs)
    acc = np.zeros((4, engine.num), dtype=np.int64)
    visits = 0
    goal = min(total, _FIRST_ROUND)
    reliability = float("nan")
    shown = [0.0]

    def report(visited):
        if progress is None:
            return
        spent = time.perf_counter() - start
        planned = total * math.ceil(max(visited, 1) / total)
        shown[0] = max(shown[0], min(1.0, visited / planned, spent / time_budget if time_budget else 1.0))
        progress(shown[0])

    deadline = None if time_budget is None else start + time_budget
    while True:
        visits = run_visits(visits, goal, acc, report, deadline)
        reliability = _reliability(acc, min(1.0, visits / total))
        spent = time.perf_counter() - start
        if reliability >= target_reliability:
            stopped_by = "target_reliability"
            break
        if time_budget is not None and spent >= time_budget:
            stopped_by = "time_budget"
            break
        if max_pairs is not None and visits >= max_pairs:
            stopped_by = "max_pairs"
            break
        if visits >= MAX_PASSES * total or (visits >= total and not np.isfinite(reliability)):
            stopped_by = "max_passes"
            break
        goal = _next_goal(visits, total, reliability, target_reliability)
        if visits >= total and time_budget is not None:
            # Another pass only when the measured rate says it fits.
            if spent / visits * (goal - visits) > time_budget - spent:
                stopped_by = "time_budget"
                break
        elif time_budget is not None:
            goal = min(goal, visits + max(2, int(visits / spent * (time_budget - spent))))
        if max_pairs is not None:
            goal = min(goal, max_pairs)

    scores = (acc[0] + acc[1] + acc[2] + acc[3]).astype(np.float64)
    if random_init:
        # Breaks ties only: below one unit of the fixed-point sums.
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(0,))))
        scores += rng.uniform(0.0, 1.0, engine.num)
    if progress is not None:
        progress(1.0)
    return ZCoreResult(
        scores=min_max_normalize(scores),
        n_samples=int(engine.points_per_visit * visits),
        reliability=float(reliability),
        seed=seed,
        seconds=time.perf_counter() - start,
        device="cpu" if backend == BACKENDS[0] else backend,
        stopped_by=stopped_by,
        target_reliability=target_reliability,
    )


def _next_goal(visits, total, reliability, target):
    """Pair visits for the next round: whole passes once the first is complete."""
    if visits < total:
        needed = total
        if reliability > 0:
            # Spearman-Brown, ignoring the finite number of pairs (an overestimate).
            needed = visits * target * (1 - reliability) / (reliability * (1 - target))
        return min(total, 2 * visits, max(visits + 2, math.ceil(1.1 * needed)))
    return visits + total


def _reliability(acc, visited):
    """The run's reliability from its four sums and the fraction of pairs visited."""
    by_pairs = split_half_reliability(acc[0] + acc[1], acc[2] + acc[3])
    by_lattice = split_half_reliability(acc[0] + acc[2], acc[1] + acc[3])
    noise = visited * _noise(by_lattice)
    if visited < 1:
        noise += (1 - visited) * _noise(by_pairs)
    return 1.0 / (1.0 + noise) if np.isfinite(noise) else float("nan")


def _noise(reliability):
    """Noise-to-signal variance ratio of a reliability (inf when it is not positive)."""
    return (1 - reliability) / reliability if reliability > 0 else np.inf


def lattice_grid(points, refine):
    """Redundancy lattice points per side for about ``points`` coverage points a visit (two lattices)."""
    return max(2, math.ceil(max(4, math.ceil(math.sqrt(points / 2))) / refine))


def tail_weight(used, total, exp):
    """Sum over ranks j in (used, total] of (used / j) ** (exp / 2).

    In a locally uniform 2-D density the j-th neighbour is at distance about
    d_used * sqrt(j / used), so this times d_used ** -exp estimates the
    normalisation that the uncomputed neighbours add.
    """
    if total <= used:
        return 0.0
    j = np.arange(used + 1, total + 1, dtype=np.float64)
    return float(np.sum((used / j) ** (exp / 2)))


class _Engine:
    """The columns, their grid cells and the pair order of a run."""

    def __init__(self, embeddings, redundancy_nn, redundancy_exp, seed):
        cols = _as_columns(embeddings)
        dim, num = cols.shape
        if dim < 2:
            raise ValueError(f"the expected-score engine needs at least 2 dimensions, got {dim}; use zcore_run")
        self.num = num
        lo, med, hi = _column_stats(cols)
        edges, bins = _cells(cols)
        #: per-column data of the kernel, each with one row per dimension
        self.columns = (cols, bins, edges, lo, med, hi)
        used = min(NEIGHBOURS_USED, num - 1)
        tail = tail_weight(used, min(redundancy_nn, num - 1), redundancy_exp)
        a, b = np.triu_indices(dim, k=1)
        self.pairs = np.stack([a, b], axis=1)
        # Both coverage lattices together hold about POINTS_PER_SAMPLE * N points per pass.
        grid = lattice_grid(POINTS_PER_SAMPLE * num / len(self.pairs), COVERAGE_REFINE)
        self.points_per_visit = 2 * (grid * COVERAGE_REFINE) ** 2
        #: the kernel's scalar settings
        self.settings = (grid, used, tail, float(redundancy_exp), COVERAGE_REFINE)
        self.seed = seed

    def _pass(self, index):
        """Pass ``index``: the pair order and each visit's lattice shifts."""
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(2, index))))
        order = rng.permutation(len(self.pairs))
        return self.pairs[order], rng.random((len(order), 2, 2))

    def visits(self, first, last):
        """Pair visits first..last-1 (counted over passes): their pairs, parities (0/1 half) and lattice shifts."""
        total = len(self.pairs)
        parts = []
        for index in range(first // total, (last - 1) // total + 1):
            order, shifts = self._pass(index)
            lo_, hi_ = max(first - index * total, 0), min(last - index * total, total)
            parts.append((order[lo_:hi_], shifts[lo_:hi_]))
        pairs = np.concatenate([p for p, _ in parts])
        shifts = np.concatenate([s for _, s in parts])
        return pairs, (np.arange(first, last) % 2).astype(np.int64), shifts


def add_visits(columns, settings, pairs, parity, shifts, acc, done=None):
    """Adds the contributions of pair visits to the (4, N) int64 sums ``acc``.

    ``columns`` and ``settings`` are an engine's (or the columns that
    ``pairs`` index); ``done`` counts finished visits.
    """
    done = np.zeros(1, dtype=np.int64) if done is None else done
    run_pairs(*columns, pairs, parity, shifts, *settings, acc, done)


def _executor(backend, engine, num_threads, ray_address):
    """``run_visits(first, last, acc, report)`` of a backend."""
    if backend == "ray":
        from .zcore_ray import RayVisits

        return RayVisits(engine, ray_address)
    return _Threads(engine, num_threads)


class _Threads:
    """Runs an engine's pair visits on CPU threads, in batches between checks for cancellation."""

    def __init__(self, engine, num_threads):
        self.engine = engine
        self.threads = max(1, int(num_threads or os.cpu_count() or 1))

    def __call__(self, first, last, acc, report, deadline=None):
        """Adds pair visits first..last-1 to ``acc``; calls ``report(visits)`` while they run.

        Past ``deadline`` (a ``time.perf_counter()`` value) no new batch
        starts; returns the end of the visits done (a prefix: batches are
        taken in order).
        """
        pairs, parity, shifts = self.engine.visits(first, last)
        jobs = iter(range(0, last - first, _BATCH))
        lock = threading.Lock()
        stop = threading.Event()
        done = np.zeros(1, dtype=np.int64)
        taken = [first]

        def work():
            local = np.zeros_like(acc)
            counter = np.zeros(1, dtype=np.int64)
            while not stop.is_set():
                with lock:
                    lo_ = next(jobs, None)
                    if lo_ is not None:
                        taken[0] = first + min(lo_ + _BATCH, last - first)
                if lo_ is None:
                    break
                hi_ = lo_ + _BATCH
                add_visits(self.engine.columns, self.engine.settings, pairs[lo_:hi_], parity[lo_:hi_],
                           shifts[lo_:hi_], local, counter)
                with lock:
                    done[0] += len(pairs[lo_:hi_])
            return local

        threads = min(self.threads, math.ceil((last - first) / _BATCH))
        with ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(work) for _ in range(threads)]
            try:
                pending = futures
                while pending:
                    pending = wait(pending, timeout=0.25)[1]
                    report(first + int(done[0]))
                    if deadline is not None and time.perf_counter() > deadline and taken[0] > first:
                        stop.set()
            finally:
                stop.set()
            for future in futures:
                acc += future.result()
        return taken[0]


def _cells(cols):
    """Per column, the inner edges of about sqrt(N / CELL_SAMPLES) quantile cells and each value's cell."""
    dim, num = cols.shape
    nb = int(min(256, max(1, round(math.sqrt(num / CELL_SAMPLES)))))
    rng = np.random.default_rng(0)
    sample = rng.choice(num, min(num, _EDGE_SAMPLE), replace=False)
    levels = np.arange(1, nb) / nb
    edges = np.empty((dim, nb - 1))
    bins = np.empty((dim, num), dtype=np.uint8)
    for d in range(dim):
        edges[d] = np.quantile(cols[d, sample].astype(np.float64), levels)
        bins[d] = np.searchsorted(edges[d], cols[d].astype(np.float64), side="right")
    return edges, bins
