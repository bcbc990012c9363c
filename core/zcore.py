"""ZCore: zero-shot coreset scores.

Griffin, Marks and Corso, "Zero-Shot Coreset Selection" (arXiv 2411.15349).
Every iteration draws ``sample_dim`` random embedding dimensions and a point
from the per-dimension triangular distribution (min, median, max of the data).
The sample nearest to that point (L1 over the drawn dimensions, ties broken
at random) gains +1 (coverage); its ``redundancy_nn`` nearest other samples lose weights
proportional to ``d ** -redundancy_exp`` normalised to sum to 1, or, when the
nearest other sample is an exact duplicate, that one loses 1 (redundancy).

The CPU engine (:mod:`.zcore_cpu`) stores the embeddings column-major, runs
one vectorised pass per iteration and selects the neighbours among a few
candidates bounded by the triangle inequality, on all cores with independent
random streams. Scores are accumulated as fixed-point integers, so a seed
gives the same scores whatever the number of threads. A torch path batches
iterations on a GPU.
"""

import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numba
import numpy as np
from scipy.stats import spearmanr

from . import KERNEL_CACHE, params
from .zcore_cpu import SCALE as _SCALE
from .zcore_cpu import run_iterations as _run_iterations
from .zcore_ray import BACKENDS, check_backend

_MAX_CHUNK = 1024
# Chunks per engine call: about 10^6 iterations, whose draws take about 50 MB.
_CHUNKS_PER_CALL = 1024
# Iterations a worker runs between checks for cancellation (about 0.5 s at N = 1M).
_MAX_GROUP = 1024

DEFAULTS = dict(
    n_samples="auto",
    sample_dim=2,
    redundancy_nn=1000,
    redundancy_exp=4,
    backend=BACKENDS[0],
    random_init=True,
    target_reliability=0.97,
    time_budget=300.0,
)
#: the published number of iterations (Griffin et al.), selectable as ``n_samples``
PAPER_N_SAMPLES = 1_000_000
# Every keyword parameter of zcore_run with its default.
_PARAMS = dict(DEFAULTS, seed=None, progress=None, device="auto", num_threads=None, ray_address=None)
#: below this split-half reliability a ranking is mostly noise, and runs say so
RELIABILITY_WARNING = 0.5


@dataclass
class ZCoreResult:
    """Scores of one ZCore run and what the run measured."""

    scores: np.ndarray
    n_samples: int
    reliability: float
    seed: int
    seconds: float
    device: str
    stopped_by: str = "n_samples"
    target_reliability: float | None = None

    @property
    def warning(self):
        """One sentence when the ranking is unreliable or the run stopped short of its target, else None."""
        return shortfall_warning(self.reliability, self.target_reliability, self.stopped_by) or reliability_warning(
            self.reliability, self.n_samples, len(self.scores)
        )


def shortfall_warning(reliability, target, stopped_by):
    """Says when an ``"auto"`` run stopped before reaching its target reliability."""
    if target is None or stopped_by == "target_reliability" or reliability >= target:
        return None
    why = {"time_budget": "the time budget ran out", "max_samples": "the iteration cap was reached",
           "max_passes": "the pass cap was reached", "max_pairs": "the pair-visit cap was reached"}
    if math.isnan(reliability):
        reached = "before the split-half reliability could be measured (the ranking may be mostly noise)"
    else:
        noise = " (the ranking is mostly noise)" if reliability < RELIABILITY_WARNING else ""
        reached = f"at split-half reliability {reliability:.2f}{noise}, below the target {target:.2f}"
    return f"Stopped short: {why.get(stopped_by, stopped_by)} {reached}; raise time_budget to get closer"


def reliability_warning(reliability, n_samples, num):
    """Says when a run's split-half reliability is too low to trust its ranking."""
    if not (reliability < RELIABILITY_WARNING):  # also NaN: cannot be measured
        return None
    per_sample = n_samples / max(num, 1)
    measured = "could not be measured" if math.isnan(reliability) else f"is {reliability:.2f}"
    return (
        f"{n_samples:,} iterations are {per_sample:.2g} per sample and the split-half reliability "
        f"{measured} (below {RELIABILITY_WARNING}): the ranking is mostly noise; "
        "rerun with n_samples='auto' and a time_budget, or with more iterations"
    )


def zcore_scores(embeddings, **kwargs):
    """Returns ZCore scores in [0, 1] as a float32 array of shape (N,).

    See :func:`zcore_run` for the parameters.
    """
    return zcore_run(embeddings, **kwargs).scores


def zcore_run(
    embeddings,
    *,
    n_samples=DEFAULTS["n_samples"],
    sample_dim=DEFAULTS["sample_dim"],
    redundancy_nn=DEFAULTS["redundancy_nn"],
    redundancy_exp=DEFAULTS["redundancy_exp"],
    random_init=DEFAULTS["random_init"],
    seed=None,
    progress=None,
    device="auto",
    num_threads=None,
    target_reliability=DEFAULTS["target_reliability"],
    time_budget=DEFAULTS["time_budget"],
    backend=DEFAULTS["backend"],
    ray_address=None,
):
    """Scores every row of ``embeddings`` for coverage minus redundancy.

    Args:
        embeddings: array-like of shape (N, D), N >= 3, finite values
        n_samples: ``"auto"`` (default) to run until the split-half
            reliability reaches ``target_reliability`` or ``time_budget``
            seconds pass, whichever comes first: with ``sample_dim=2`` the
            converging engine (:func:`.zcore_expected.zcore_expected_run`,
            CPU), else sampling rounds of this engine; or a number of
            sampling iterations (the paper: :data:`PAPER_N_SAMPLES`)
        sample_dim: dimensions drawn per iteration
        redundancy_nn: neighbours penalised per iteration (capped at N - 1)
        redundancy_exp: exponent of the inverse-distance penalty
        random_init: add U(0, 1) noise before normalisation
        seed: integer seed; None draws one (returned in the result)
        progress: optional callable receiving the fraction done in [0, 1]
        device: ``"auto"`` (CUDA when torch sees one, else CPU), ``"cpu"``
            or a torch CUDA device such as ``"cuda"`` or ``"cuda:1"``
        num_threads: CPU threads (default: all cores)
        target_reliability: the reliability at which ``"auto"`` stops
        time_budget: seconds after which ``"auto"`` stops (None: no limit)
        backend: where the converging engine runs: ``"local"`` or ``"ray"``
            (:mod:`.zcore_ray`; ``ray_address`` or ``RAY_ADDRESS`` names the cluster)

    Returns:
        a :class:`ZCoreResult`
    """
    start = time.perf_counter()
    checked = check_params(
        n_samples=n_samples, sample_dim=sample_dim, redundancy_nn=redundancy_nn, redundancy_exp=redundancy_exp,
        random_init=random_init, seed=seed, progress=progress, device=device, num_threads=num_threads,
        target_reliability=target_reliability, time_budget=time_budget, backend=backend, ray_address=ray_address,
    )
    if checked["backend"] != BACKENDS[0] and not (checked["n_samples"] == "auto" and checked["sample_dim"] == 2):
        raise ValueError(
            f"backend={checked['backend']!r} runs the converging engine only: use n_samples='auto' with "
            "sample_dim=2, or backend='local'"
        )
    n_samples, sample_dim, redundancy_nn = checked["n_samples"], checked["sample_dim"], checked["redundancy_nn"]
    redundancy_exp, random_init, seed = checked["redundancy_exp"], checked["random_init"], checked["seed"]
    progress, device, num_threads = checked["progress"], checked["device"], checked["num_threads"]
    target_reliability, time_budget = checked["target_reliability"], checked["time_budget"]
    auto = n_samples == "auto"
    if auto and sample_dim == 2:
        return _converging_run(
            embeddings, seed=seed, target_reliability=target_reliability, time_budget=time_budget,
            redundancy_nn=redundancy_nn, redundancy_exp=redundancy_exp, random_init=random_init,
            progress=progress, num_threads=num_threads, backend=checked["backend"],
            ray_address=checked["ray_address"],
        )
    # Samples are stored in a fixed shuffled order, so the first ones are a
    # random subset (the engine estimates neighbour radii from them).
    num_rows = len(embeddings) if hasattr(embeddings, "__len__") else 0
    order = np.random.default_rng(0).permutation(num_rows)
    cols = _as_columns(embeddings, order)
    dim, num = cols.shape
    if sample_dim > dim:
        raise ValueError(
            f"sample_dim={sample_dim} exceeds the embedding dimension {dim}; "
            "choose sample_dim <= D"
        )
    redundancy_nn = min(redundancy_nn, num - 1)

    stats = _column_stats(cols)
    engine = _make_engine(device, cols, stats, sample_dim, redundancy_nn, float(redundancy_exp), num_threads)
    chunk = _chunk_size(n_samples if not auto else 10 * num)

    acc = np.zeros((2, num), dtype=np.int64)
    done = 0
    next_chunk = 0
    reliability = float("nan")
    stopped_by = "n_samples"
    if auto:
        goal = max(10 * num, 2 * chunk)
        cap = 10_000 * num
    else:
        goal = n_samples
        cap = n_samples
    while True:
        todo = goal - done
        n_chunks = math.ceil(todo / chunk)
        sizes = [min(chunk, todo - i * chunk) for i in range(n_chunks)]
        specs = [(seed, next_chunk + i, sizes[i]) for i in range(n_chunks)]

        # The engine draws all iterations of a call up front: bound a call's draws (and memory).
        for first in range(0, len(specs), _CHUNKS_PER_CALL):
            batch = specs[first : first + _CHUNKS_PER_CALL]
            base = done + sum(size for _, _, size in specs[:first])

            def _report(n, _base=base, _goal=goal):
                if progress is not None:
                    total = cap if not auto else _goal
                    progress(min(1.0, (_base + n) / total))

            engine(batch, acc, _report)
        done = goal
        next_chunk += n_chunks
        reliability = split_half_reliability(acc[0], acc[1])
        if not auto:
            break
        if reliability >= target_reliability:
            stopped_by = "target_reliability"
            break
        if time_budget is not None and time.perf_counter() - start >= time_budget:
            stopped_by = "time_budget"
            break
        if done >= cap:
            stopped_by = "max_samples"
            break
        goal = min(cap, 2 * done)
        if time_budget is not None:
            # Do not start a round that the measured rate says would overrun.
            rate = done / max(time.perf_counter() - start, 1e-9)
            left = time_budget - (time.perf_counter() - start)
            goal = min(goal, done + max(chunk, int(rate * left)))

    halves = np.empty_like(acc)
    halves[:, order] = acc
    acc = halves
    scores = (acc[0] + acc[1]).astype(np.float64) / _SCALE
    if random_init:
        init_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(0,))))
        scores += init_rng.uniform(0.0, 1.0, num)
    if progress is not None:
        progress(1.0)
    return ZCoreResult(
        scores=min_max_normalize(scores),
        n_samples=int(done),
        reliability=float(reliability),
        seed=seed,
        seconds=time.perf_counter() - start,
        device=device,
        stopped_by=stopped_by,
        target_reliability=target_reliability if auto else None,
    )


def _converging_run(embeddings, **kwargs):
    """``n_samples="auto"`` with ``sample_dim=2``: the converging engine (CPU threads or Ray)."""
    from .zcore_expected import zcore_expected_run

    return zcore_expected_run(embeddings, **kwargs)


def check_params(**given):
    """Validates the parameters of :func:`zcore_run`; returns them normalised.

    ``seed=None`` is replaced by a drawn seed, so a caller that checks first
    and runs later uses (and records) the same seed.
    """
    unknown = sorted(set(given) - set(_PARAMS))
    if unknown:
        raise ValueError(f"unknown ZCore parameter(s) {unknown}; the parameters are {sorted(_PARAMS)}")
    p = {**_PARAMS, **given}
    n_samples = p["n_samples"]
    mode = n_samples.strip().lower() if isinstance(n_samples, str) else None
    auto = mode == "auto"
    if not auto:
        try:
            n_samples = params.integer("n_samples", n_samples, minimum=1, maximum=params.MAX_N_SAMPLES)
        except ValueError:
            raise ValueError(
                f"n_samples must be an integer in [1, {params.MAX_N_SAMPLES:.0e}] or 'auto', got {n_samples!r}"
            ) from None
    backend, ray_address = check_backend(p["backend"], p["ray_address"])
    return dict(
        n_samples="auto" if auto else n_samples,
        sample_dim=params.integer("sample_dim", p["sample_dim"], minimum=1),
        redundancy_nn=params.integer("redundancy_nn", p["redundancy_nn"], minimum=1),
        redundancy_exp=params.number("redundancy_exp", p["redundancy_exp"], minimum=0.0),
        random_init=params.boolean("random_init", p["random_init"]),
        seed=params.seed(p["seed"]),
        progress=params.callback("progress", p["progress"]),
        device=resolve_device(p["device"]),
        num_threads=params.optional(params.integer, "num_threads", p["num_threads"], minimum=1,
                                    maximum=params.max_workers()),
        target_reliability=params.number(
            "target_reliability", p["target_reliability"], above=0.0, below=1.0
        ),
        time_budget=params.optional(params.number, "time_budget", p["time_budget"], above=0.0),
        backend=backend,
        ray_address=ray_address,
    )


def split_half_reliability(half_a, half_b):
    """Spearman-Brown corrected rank correlation of two independent halves."""
    if np.ptp(half_a) == 0 or np.ptp(half_b) == 0:
        return float("nan")
    r = spearmanr(half_a, half_b).statistic
    if not np.isfinite(r):
        return float("nan")
    if r <= -1:
        return -1.0
    return float(2 * r / (1 + r))


def min_max_normalize(values):
    """Maps values linearly onto [0, 1] (all zeros when they are constant)."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = values.min(), values.max()
    if hi == lo:
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - lo) / (hi - lo)).astype(np.float32)


def resolve_device(device):
    """Returns ``"cpu"`` or a concrete torch CUDA device string."""
    if device in (None, "auto"):
        return "cuda" if _cuda_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if isinstance(device, str) and device.startswith("cuda"):
        if not _cuda_available():
            raise ValueError(f"device={device!r} was requested but torch sees no CUDA device; use 'cpu' or 'auto'")
        return device
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")


def _cuda_available():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _as_columns(embeddings, order=None):
    """Validates (N, D) embeddings and returns them as a (D, N) float32 array.

    With ``order``, column j of the result holds sample ``order[j]``.
    """
    arr = np.asarray(embeddings)
    if arr.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array of shape (N, D), got shape {arr.shape}")
    num, dim = arr.shape
    if num < 3:
        raise ValueError(f"ZCore needs at least 3 samples with embeddings, got {num}")
    if dim < 1:
        raise ValueError("embeddings have no dimensions")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"embeddings must be numeric, got dtype {arr.dtype}")
    step = max(1, (1 << 24) // max(num, 1))
    if order is None and arr.dtype == np.float32 and arr.T.flags.c_contiguous:
        # Already column-major float32: used as it is, checked column block by column block.
        for d0 in range(0, dim, step):
            _check_finite_columns(arr.T[d0 : d0 + step])
        return arr.T
    # One D x N float32 copy; checked column by column so no N x D temporary.
    cols = np.empty((dim, num), dtype=np.float32)
    for d0 in range(0, dim, step):
        block = np.asarray(arr[:, d0 : d0 + step], dtype=np.float32).T
        _check_finite_columns(block)
        cols[d0 : d0 + step] = block if order is None else block[:, order]
    return cols


def _check_finite_columns(block):
    """Refuses a (d, N) block of columns holding NaN or inf, naming the first rows."""
    if not np.isfinite(block).all():
        bad = np.where(~np.isfinite(block).all(axis=0))[0][:5]
        raise ValueError(
            f"embeddings contain NaN or inf (rows {bad.tolist()} ...); recompute or drop those embeddings"
        )


def _column_stats(cols):
    """Per-dimension (min, median, max) as float64 arrays."""
    dim = cols.shape[0]
    lo = np.empty(dim)
    med = np.empty(dim)
    hi = np.empty(dim)
    for d in range(dim):
        lo[d], med[d], hi[d] = cols[d].min(), np.median(cols[d]), cols[d].max()
    return lo, med, hi


def _chunk_size(n_samples):
    return max(1, min(_MAX_CHUNK, math.ceil(n_samples / 2)))


def chunk_uniforms(seed, chunk_index, size, sample_dim):
    """The uniforms of one chunk: dims (size, k), points (size, k), ties (size,)."""
    ss = np.random.SeedSequence(seed, spawn_key=(1, chunk_index))
    rng = np.random.Generator(np.random.PCG64(ss))
    u = rng.random((size, 2 * sample_dim + 1))
    return u[:, :sample_dim], u[:, sample_dim : 2 * sample_dim], u[:, 2 * sample_dim]


def _make_engine(device, cols, stats, sample_dim, redundancy_nn, redundancy_exp, num_threads):
    if device == "cpu":
        return _CpuEngine(cols, stats, sample_dim, redundancy_nn, redundancy_exp, num_threads)
    return _TorchEngine(cols, stats, sample_dim, redundancy_nn, redundancy_exp, device)


class _CpuEngine:
    """Runs iterations on CPU threads, grouped by their first dimension."""

    def __init__(self, cols, stats, sample_dim, redundancy_nn, redundancy_exp, num_threads):
        self.cols = cols
        self.lo, self.med, self.hi = stats
        self.sample_dim = sample_dim
        self.k = redundancy_nn
        self.exp = redundancy_exp
        self.threads = max(1, int(num_threads or os.cpu_count() or 1))

    def __call__(self, specs, acc, report):
        dim, num = self.cols.shape
        total = sum(size for _, _, size in specs)
        dims = np.empty((total, self.sample_dim), dtype=np.int64)
        points = np.empty((total, self.sample_dim), dtype=np.float32)
        ties = np.empty(total, dtype=np.float64)
        halves = np.empty(total, dtype=np.int8)
        start = 0
        for seed, index, size in specs:
            u_dims, u_points, ties[start : start + size] = chunk_uniforms(seed, index, size, self.sample_dim)
            stop = start + size
            prepare_iterations(u_dims, u_points, self.lo, self.med, self.hi, dim, dims[start:stop], points[start:stop])
            halves[start:stop] = index % 2
            start = stop
        by_dim = np.argsort(dims[:, 0], kind="stable")
        dims, points, ties, halves = dims[by_dim], points[by_dim], ties[by_dim], halves[by_dim]
        bounds = np.flatnonzero(np.diff(dims[:, 0])) + 1
        groups = [
            (g, min(g + _MAX_GROUP, end))
            for start_, end in zip(np.r_[0, bounds], np.r_[bounds, total])
            for g in range(int(start_), int(end), _MAX_GROUP)
        ]
        # Largest groups first so the threads finish together.
        groups.sort(key=lambda g: g[0] - g[1])

        threads = min(self.threads, len(groups))
        local = [np.zeros((2, num), dtype=np.int64) for _ in range(threads)]
        finished = [0] * threads
        queue = iter(groups)
        lock = threading.Lock()

        stop = threading.Event()

        def work(t):
            while not stop.is_set():
                with lock:
                    group = next(queue, None)
                if group is None:
                    return
                g0, g1 = group
                _run_iterations(
                    self.cols, dims[g0:g1], points[g0:g1], ties[g0:g1], halves[g0:g1],
                    self.k, self.exp, local[t][0], local[t][1],
                )
                finished[t] += g1 - g0

        with ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(work, t) for t in range(threads)]
            try:
                pending = futures
                while pending:
                    pending = wait(pending, timeout=0.25)[1]
                    report(sum(finished))
            finally:
                # An interrupt or a cancelling progress callback: workers stop after their group.
                stop.set()
            for future in futures:
                future.result()
        for part in local:
            acc += part


class _TorchEngine:
    """Runs chunks on a torch device, all iterations of a chunk at once."""

    def __init__(self, cols, stats, sample_dim, redundancy_nn, redundancy_exp, device):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.cols = torch.from_numpy(cols).to(self.device)
        self.lo, self.med, self.hi = (torch.from_numpy(s).to(self.device) for s in stats)
        self.sample_dim = sample_dim
        self.k = redundancy_nn
        self.exp = redundancy_exp

    def __call__(self, specs, acc, report):
        torch = self.torch
        dim, num = self.cols.shape
        halves = torch.zeros((2, num), dtype=torch.int64, device=self.device)
        done = 0
        for seed, index, size in specs:
            u_dims, u_points, u_ties = chunk_uniforms(seed, index, size, self.sample_dim)
            dims = torch.from_numpy(distinct_dims(u_dims, dim)).to(self.device)
            u_points = torch.from_numpy(u_points).to(self.device)
            u_ties = torch.from_numpy(u_ties).to(self.device)
            # Bound the (batch, sample_dim, N) gather to about 256 MB.
            batch = max(1, (1 << 26) // (num * self.sample_dim))
            for b0 in range(0, size, batch):
                self._batch(
                    dims[b0 : b0 + batch], u_points[b0 : b0 + batch], u_ties[b0 : b0 + batch], halves[index % 2]
                )
            done += size
            report(done)
        acc += halves.cpu().numpy()

    def _batch(self, dims, u_points, u_ties, out):
        torch = self.torch
        lo, med, hi = self.lo[dims], self.med[dims], self.hi[dims]
        points = _triangular_torch(torch, lo, med, hi, u_points).float()
        x = self.cols[dims]  # (B, k, N)
        dist = (x - points[..., None]).abs().sum(1)
        # Nearest sample, ties broken uniformly at random.
        nearest = dist == dist.min(1, keepdim=True).values
        pick = (u_ties * nearest.sum(1)).floor().long()
        cover = (nearest.cumsum(1) > pick[:, None]).int().argmax(1)
        rows = torch.arange(len(dims), device=self.device)
        out.index_add_(0, cover, torch.full_like(cover, int(_SCALE)))
        centre = x[rows, :, cover]  # (B, k)
        dist = (x - centre[..., None]).abs().sum(1)
        dist[rows, cover] = float("inf")
        near_d, near_i = torch.topk(dist, self.k, dim=1, largest=False, sorted=True)
        near_d = near_d.double()
        dup = near_d[:, 0] == 0
        weights = (near_d[:, :1].clamp_min(1e-300) / near_d.clamp_min(1e-300)) ** self.exp
        weights = weights / weights.sum(1, keepdim=True)
        weights[dup] = 0.0
        weights[dup, 0] = 1.0
        units = torch.round(weights * _SCALE).to(torch.int64)
        out.index_add_(0, near_i.reshape(-1), -units.reshape(-1))


def _triangular_torch(torch, lo, mode, hi, u):
    width = hi - lo
    safe = torch.where(width > 0, width, torch.ones_like(width))
    cut = (mode - lo) / safe
    left = lo + torch.sqrt(u * width * (mode - lo))
    right = hi - torch.sqrt((1 - u) * width * (hi - mode))
    return torch.where(u < cut, left, right)


def distinct_dims(u_dims, dim):
    """Maps (T, k) uniforms to k distinct dimensions per row, uniformly."""
    out = np.empty(u_dims.shape, dtype=np.int64)
    _distinct_dims(u_dims, dim, out)
    return out


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def _distinct_dims(u_dims, dim, out):
    for t in range(u_dims.shape[0]):
        _pick_dims(u_dims[t], dim, out[t])


@numba.njit(nogil=True, cache=KERNEL_CACHE, inline="always")
def _pick_dims(u, dim, chosen):
    """Sequential draw without replacement; ``chosen`` ends up sorted."""
    k = u.shape[0]
    for j in range(k):
        r = min(int(u[j] * (dim - j)), dim - j - 1)
        pos = 0
        while pos < j and chosen[pos] <= r:
            r += 1
            pos += 1
        for m in range(j, pos, -1):
            chosen[m] = chosen[m - 1]
        chosen[pos] = r


@numba.njit(nogil=True, cache=KERNEL_CACHE, inline="always")
def _triangular(lo, mode, hi, u):
    width = hi - lo
    if width <= 0.0:
        return lo
    if u < (mode - lo) / width:
        return lo + math.sqrt(u * width * (mode - lo))
    return hi - math.sqrt((1.0 - u) * width * (hi - mode))


@numba.njit(nogil=True, cache=KERNEL_CACHE)
def prepare_iterations(u_dims, u_points, lo, med, hi, dim, dims_out, points_out):
    """Turns uniforms into sorted distinct dims and triangular points."""
    for t in range(u_dims.shape[0]):
        _pick_dims(u_dims[t], dim, dims_out[t])
        for j in range(u_dims.shape[1]):
            d = dims_out[t, j]
            points_out[t, j] = _triangular(lo[d], med[d], hi[d], u_points[t, j])
