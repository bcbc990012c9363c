"""ZCore split-half reliability vs iterations per sample on a 100,000-sample set.

Embeddings: 100,000 x 512 float32 with a low intrinsic dimension, like the
embeddings of real image models: a 16-d latent drawn from a mixture of 50
Gaussian clusters, mapped linearly to 512-d, plus isotropic noise (10 % of the
signal's scale). Each row runs ``zcore_run`` (published defaults except
``n_samples``) with a fresh seed and prints the iterations per sample, the
split-half reliability the run records, the seconds, and whether the run warns.

With ``--expected`` it measures the converging engine instead
(``zcore_run(n_samples="auto")``, the default): its reliability-versus-seconds curve,
seconds and peak RSS at ``--n`` x 512 until ``--target`` or ``--budget``, and
the Spearman rho at 10,000 x 64 between its run and a long run of the exact
engine (``--reference-iterations``; 0 skips it).

Usage: ``.venv/bin/python bench/zcore_reliability.py [--n 100000] [--per-sample 1 3 10 30]``
or ``... --expected [--target 0.97] [--budget 300] [--reference-iterations 1e8]``
"""

import argparse
import pathlib
import sys
import threading
import time

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from harness import plugin_package  # noqa: E402

plugin_package()
from coreset_curation.core import zcore_expected  # noqa: E402
from coreset_curation.core.zcore import DEFAULTS, RELIABILITY_WARNING, zcore_run  # noqa: E402


def embeddings(n, dim=512, latent=16, clusters=50, seed=0, chunk=65536):
    """Clustered (n, dim) float32 embeddings, column-major as the plugin reads them, built chunk by chunk."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, latent)) * 3
    mixing = rng.normal(size=(latent, dim)) / np.sqrt(latent)
    x = np.empty((n, dim), dtype=np.float32, order="F")
    noise = None
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        part = np.random.default_rng([seed, start])
        z = centres[part.integers(0, clusters, rows)] + part.normal(size=(rows, latent))
        signal = z @ mixing
        noise = 0.1 * signal.std() if noise is None else noise  # the first chunk sets the noise scale
        x[start : start + rows] = signal + noise * part.normal(size=signal.shape)
    return x


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--per-sample", type=float, nargs="+", default=[1, 3, 10, 30])
    parser.add_argument("--expected", action="store_true", help="measure the converging engine")
    parser.add_argument("--target", type=float, default=DEFAULTS["target_reliability"])
    parser.add_argument("--budget", type=float, default=300.0)
    parser.add_argument("--reference-iterations", type=float, default=1e8)
    parser.add_argument("--neighbours", action="store_true", help="how far the weights can be cut")
    args = parser.parse_args()
    if args.neighbours:
        return neighbours()
    if args.expected:
        return expected(args)
    x = embeddings(args.n)
    zcore_run(x[:1000], n_samples=1000, seed=0)  # compile (or load) the kernels first
    print(f"{args.n:,} x {x.shape[1]} embeddings (16-d latent, 50 clusters); warning below {RELIABILITY_WARNING}")
    print(f"{'iterations/sample':>18} {'iterations':>12} {'reliability':>12} {'seconds':>8}  warns")
    for seed, per_sample in enumerate(args.per_sample, start=1):
        iterations = int(per_sample * args.n)
        start = time.perf_counter()
        result = zcore_run(x, n_samples=iterations, seed=seed)
        seconds = time.perf_counter() - start
        print(f"{per_sample:>18g} {iterations:>12,} {result.reliability:>12.3f} {seconds:>8.1f}  "
              f"{'yes' if result.warning else 'no'}", flush=True)


def _rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


class _PeakRss:
    """Samples the process's resident memory every 50 ms while in use."""

    def __enter__(self):
        self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _run_with_curve(x, **kwargs):
    """Runs the converging engine; returns the result and its (seconds, pair visits, reliability) rounds."""
    curve = []
    start = time.perf_counter()
    measure = zcore_expected._reliability

    def recorded(acc, visited):
        value = measure(acc, visited)
        curve.append((time.perf_counter() - start, visited, value))
        return value

    zcore_expected._reliability = recorded
    try:
        return zcore_expected.zcore_expected_run(x, **kwargs), curve
    finally:
        zcore_expected._reliability = measure


def neighbours(n=3000, dim=32, cuts=(2, 4, 8, 16, 32, 64)):
    """Rho between one pass with the weights cut to k neighbours and one with all redundancy_nn = 1000.

    Same seed, so the same pairs and lattices: only the cut differs.
    """
    x = embeddings(n, dim=dim)
    kept = zcore_expected.NEIGHBOURS_USED
    runs = {}
    try:
        for k in cuts + (1000,):
            zcore_expected.NEIGHBOURS_USED = k
            start = time.perf_counter()
            runs[k] = zcore_expected.zcore_expected_run(
                x, seed=1, target_reliability=0.9999, max_pairs=dim * (dim - 1) // 2, random_init=False
            )
            runs[k].seconds = time.perf_counter() - start
    finally:
        zcore_expected.NEIGHBOURS_USED = kept
    print(f"{n:,} x {dim}, one pass; Spearman rho against all 1000 neighbours (reliability "
          f"{runs[1000].reliability:.3f})")
    for k in cuts:
        rho = spearmanr(runs[k].scores, runs[1000].scores).statistic
        print(f"  {k:>4} neighbours: rho {rho:.4f}  ({runs[k].seconds:.1f} s vs {runs[1000].seconds:.1f} s)")


def expected(args):
    """The converging engine's figures: curve, seconds and peak RSS, then rho against the exact engine."""
    zcore_expected.zcore_expected_run(embeddings(500, dim=8), seed=0)  # compile (or load) the kernel first
    x = embeddings(args.n)
    matrix_mb = x.nbytes / 2**20
    with _PeakRss() as rss:
        before = rss.peak
        result, curve = _run_with_curve(x, seed=1, target_reliability=args.target, time_budget=args.budget)
    print(f"converging engine, {args.n:,} x {x.shape[1]} (float32 matrix {matrix_mb:,.0f} MB), "
          f"target {args.target}, budget {args.budget:g} s")
    print(f"{'seconds':>8} {'pairs visited':>14} {'reliability':>12}")
    for seconds, visited, value in curve:
        print(f"{seconds:>8.1f} {visited:>14.3f} {value:>12.3f}")
    print(f"reliability {result.reliability:.3f} in {result.seconds:.1f} s ({result.stopped_by}); "
          f"peak RSS {rss.peak:,.0f} MB = {rss.peak / matrix_mb:.2f}x the matrix "
          f"({before:,.0f} MB before the run)", flush=True)
    if args.reference_iterations <= 0:
        return
    small = embeddings(10_000, dim=64)
    ours = zcore_expected.zcore_expected_run(small, seed=2, target_reliability=args.target)
    start = time.perf_counter()
    ref = zcore_run(small, n_samples=int(args.reference_iterations), seed=3)
    rho = spearmanr(ours.scores, ref.scores).statistic
    print(f"10,000 x 64: converging run reliability {ours.reliability:.3f} in {ours.seconds:.1f} s; "
          f"exact engine {int(args.reference_iterations):,} iterations (reliability {ref.reliability:.3f}, "
          f"{time.perf_counter() - start:.0f} s); Spearman rho {rho:.3f}")


if __name__ == "__main__":
    main()
