"""Where the converging ZCore engine's noise comes from at scale, and the floor for any pair-visiting estimator.

The expected score (``sample_dim=2``, published defaults) is the mean over all
P = D (D - 1) / 2 dimension pairs of each pair's contribution. An estimator
that visits pairs has two noises: the pairs it has not visited and what it
does not compute exactly within a visited pair (the engine's lattice noise).
On the clustered embeddings of ``bench/zcore_reliability.py`` this script
prints:

1. the engine's own visits (``--visits`` random pairs of its first pass, on
   ``--cores`` threads): the signal S (variance over samples of the all-pairs mean), the
   exact per-pair variance pv and the lattice noise L of one visit, L split
   into its coverage and redundancy parts (the same visits with the penalty
   switched off); and the split-half reliability of those visits two ways:
   Pearson (what S, pv and L predict) and by ranks (the plugin's measure,
   which is what the targets are stated in);
2. near-exact pair visits (``--exact-visits`` random pairs on a lattice of
   ``--exact-density`` points per sample, one lattice point per sample and
   more: lattice noise a few % of pv): their rank reliability, and from it,
   by Spearman-Brown and the finite number of pairs, the share of pairs
   that reaches ``--target`` even with every visited pair exact, the
   sample-pair contributions that is, and the time each may take to fit
   ``--budget`` seconds on ``--cores`` cores, against what one costs here.

Usage: ``.venv/bin/python bench/zcore_noise_budget.py [--n 100000] [--dim 512]
[--visits 8192] [--exact-visits 512] [--target 0.95] [--budget 300] [--cores 2] [--refine 2]``
"""

import argparse
import math
import pathlib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.stats import pearsonr

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from harness import plugin_package  # noqa: E402

plugin_package()
from bench.zcore_reliability import embeddings  # noqa: E402
from coreset_curation.core import zcore_expected  # noqa: E402
from coreset_curation.core.zcore import DEFAULTS, split_half_reliability  # noqa: E402
from coreset_curation.core.zcore_expected_cpu import SCALE  # noqa: E402

# A normalisation so large that every penalty rounds to zero: coverage only.
_NO_PENALTY = 1e30


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--visits", type=int, default=8192, help="engine visits measured")
    parser.add_argument("--exact-visits", type=int, default=512, help="near-exact visits measured (0: skip)")
    parser.add_argument("--exact-density", type=float, default=1.0, help="their lattice points per sample")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--budget", type=float, default=300.0, help="seconds")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--refine", type=int, default=zcore_expected.COVERAGE_REFINE,
                        help="one lattice point in refine ** 2 spreads the penalty (1: one lattice for both terms)")
    args = parser.parse_args()
    start = time.perf_counter()
    x = embeddings(args.n, dim=args.dim)
    engine = zcore_expected._Engine(x, DEFAULTS["redundancy_nn"], DEFAULTS["redundancy_exp"], seed=0)
    del x
    total = len(engine.pairs)
    num = engine.num
    pairs, _, shifts = engine.visits(0, max(args.visits, args.exact_visits))
    print(f"{args.n:,} x {args.dim} clustered embeddings, P = {total:,} pairs; set-up "
          f"{time.perf_counter() - start:.0f} s", flush=True)

    start = time.perf_counter()
    grid = zcore_expected.lattice_grid(engine.points_per_visit, args.refine)
    settings = (grid,) + engine.settings[1:4] + (args.refine,)
    m = _moments(engine, settings, pairs[: args.visits], shifts[: args.visits], args.cores, penalty_split=True)
    seconds = time.perf_counter() - start
    lattice = m["lattice"]
    pair_var = m["per_visit"] - lattice
    # Disjoint halves drawn from P pairs without replacement covary by -pv / (P - 1).
    signal = m["signal"] + pair_var / (total - 1)
    print(f"\n1. the engine's lattice ({engine.points_per_visit:,} coverage points a visit, "
          f"{engine.points_per_visit / num:.4f} per sample, penalties from 1 in {args.refine**2}): "
          f"{args.visits:,} visits ({seconds:.0f} s with the penalty-free copies)")
    print(f"   signal S {signal:.4g} (standard error {m['signal_se'] / signal:.0%}); exact per-pair variance "
          f"pv {pair_var:.4g} = {pair_var / signal:,.0f} S; lattice noise of a visit L {lattice:.4g} = "
          f"{lattice / pair_var:.2f} pv: coverage {m['lattice_cov'] / lattice:.0%}, redundancy "
          f"{m['lattice_red'] / lattice:.0%} (correlation {m['lattice_corr']:.2f})")
    share = args.visits / total
    pearson_model = signal / (signal + ((1 - share) * pair_var + lattice) / args.visits)
    print(f"   split-half reliability of the {args.visits:,} visits: Pearson {m['pearson']:.3f} (S, pv and L "
          f"predict {pearson_model:.3f}), by ranks {m['rank']:.3f}")

    if args.exact_visits < 2:
        return
    exact_grid = zcore_expected.lattice_grid(args.exact_density * num, 1)
    exact_settings = (exact_grid,) + engine.settings[1:4] + (1,)
    n_exact = args.exact_visits
    start = time.perf_counter()
    e = _moments(engine, exact_settings, pairs[:n_exact], shifts[:n_exact], args.cores, penalty_split=False)
    seconds = time.perf_counter() - start
    exact_noise = zcore_expected._noise(e["rank"])
    exact_lattice = e["lattice"] / (e["per_visit"] - e["lattice"])
    print(f"\n2. near-exact visits ({2 * exact_grid**2:,} points a visit, {2 * exact_grid**2 / num:.2f} per "
          f"sample, lattice noise {exact_lattice:.2f} pv): {n_exact} visits in {seconds:.0f} s on "
          f"{args.cores} threads = {seconds * args.cores / n_exact / num * 1e6:.2f} µs a sample-pair "
          f"contribution; their split-half reliability by ranks {e['rank']:.3f}, Pearson {e['pearson']:.3f}")
    q = zcore_expected._noise(args.target)
    # Noise-to-signal of n exact visits out of P: (1 - n / P) * c / n with c = noise * n_exact (Spearman-Brown).
    per_visit_noise = exact_noise * n_exact / (1 - n_exact / total)
    needed = per_visit_noise / (q + per_visit_noise / total)
    contributions = needed * num
    allowed = args.budget * args.cores / contributions
    print(f"   reliability {args.target} by ranks, every visited pair exact (Spearman-Brown from these visits: "
          f"optimistic here, section 1's engine curve grows slower): {needed / total:.0%} of the pairs = "
          f"{contributions:.3g} sample-pair contributions; {args.budget:g} s on {args.cores} cores allows "
          f"{_duration(allowed)} each")


def _duration(seconds):
    """``seconds`` in ps, ns, µs or s."""
    for unit, scale in (("ps", 1e-12), ("ns", 1e-9), ("µs", 1e-6)):
        if seconds < 1000 * scale:
            return f"{seconds / scale:.0f} {unit}"
    return f"{seconds:.3g} s"


def _moments(engine, settings, pairs, shifts, threads, penalty_split):
    """Signal, per-visit variance, lattice noise and split-half reliabilities of ``pairs`` on ``threads``."""
    num = engine.num
    n = len(pairs)
    sums = np.zeros((2, num))  # per half of the visits
    squares = np.zeros(num)
    noise = np.zeros((3, num))  # squared lattice differences: whole, coverage, redundancy
    cross = np.zeros(num)
    lock = threading.Lock()
    unit = num / SCALE  # a sample's mean coverage is 1
    coverage_only = settings[:2] + (_NO_PENALTY,) + settings[3:]

    def visit(t):
        parts = []
        for chosen in (settings, coverage_only) if penalty_split else (settings,):
            acc = np.zeros((4, num), dtype=np.int64)
            zcore_expected.add_visits(engine.columns, chosen, pairs[t : t + 1], np.zeros(1, np.int64),
                                      shifts[t : t + 1], acc)
            parts.append(acc[:2] * unit)
        whole = parts[0]
        value = whole.mean(axis=0)
        diffs = [(whole[0] - whole[1]) / 2]
        if penalty_split:
            diffs += [(lat[0] - lat[1]) / 2 for lat in (parts[1], whole - parts[1])]
        with lock:
            sums[t % 2] += value
            squares[:] += value**2
            for row, diff in enumerate(diffs):
                noise[row] += diff**2
            if penalty_split:
                cross[:] += diffs[1] * diffs[2]

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(visit, range(n)))
    half_a, half_b = sums[0] / (n // 2), sums[1] / (n - n // 2)
    mean = (sums[0] + sums[1]) / n
    centred_a, centred_b = half_a - half_a.mean(), half_b - half_b.mean()
    lattice, cov_l, red_l = noise.mean(axis=1) / n
    r = pearsonr(sums[0], sums[1]).statistic
    out = dict(
        signal=float(np.mean(centred_a * centred_b)),  # the halves' noises are independent
        signal_se=float(np.sqrt(centred_a.var() * centred_b.var() / num)),
        per_visit=float(np.mean(squares / n - mean**2)) * n / (n - 1),  # around the mean of the pairs measured
        lattice=float(lattice),
        pearson=2 * r / (1 + r),
        rank=split_half_reliability(sums[0], sums[1]),
    )
    if penalty_split:
        out.update(lattice_cov=float(cov_l), lattice_red=float(red_l),
                   lattice_corr=float(cross.mean() / n / math.sqrt(cov_l * red_l)))
    return out


if __name__ == "__main__":
    main()
