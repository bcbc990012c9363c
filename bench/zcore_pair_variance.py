"""Where the noise of the converging ZCore engine comes from: pairs, dimensions, lattices.

Computes every dimension pair's expected contribution to every sample's score
(``sample_dim=2``, published defaults) with the converging engine's kernel at
several lattice densities, on the clustered embeddings of
``bench/zcore_reliability.py`` (default 20,000 x 32: 496 pairs, about a minute
on 2 cores), and prints:

- the signal (variance over samples of the all-pairs mean) and the variance of
  one pair's contribution around it, split into the part that the two
  dimensions explain on their own (main effects) and their interaction;
- the lattice noise of one pair visit per lattice density (points per sample,
  both lattices together); the engine's default at 100k-1M x 512 is about 0.015;
- the split-half reliability of the mean over random pairs and over whole
  round-robin rounds (each dimension in exactly one pair of a round, so the
  main effects cancel), at the same number of pairs.

A pair design can only remove the main effects; the interaction and the
lattice noise shrink only with more pairs and more points per pair.

Usage: ``.venv/bin/python bench/zcore_pair_variance.py [--n 20000] [--dim 32]
[--densities 8 1 0.1 0.015]``
"""

import argparse
import math
import pathlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from harness import plugin_package  # noqa: E402

plugin_package()
from bench.zcore_reliability import embeddings  # noqa: E402
from coreset_curation.core import zcore_expected  # noqa: E402
from coreset_curation.core.zcore import DEFAULTS, split_half_reliability  # noqa: E402
from coreset_curation.core.zcore_expected_cpu import SCALE  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--densities", type=float, nargs="+", default=[8, 1, 0.1, 0.015],
                        help="lattice points per sample per pair visit, both lattices together")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.dim % 2:
        parser.error("--dim must be even (round-robin rounds pair every dimension)")
    x = embeddings(args.n, dim=args.dim)
    engine = zcore_expected._Engine(x, DEFAULTS["redundancy_nn"], DEFAULTS["redundancy_exp"], seed=0)
    pairs = engine.pairs
    print(f"{args.n:,} x {args.dim} clustered embeddings, all {len(pairs)} pairs; units: one pair's mass "
          f"times N (a sample's mean coverage is 1)")
    per_pair = {}
    for density in sorted(args.densities, reverse=True):
        start = time.perf_counter()
        per_pair[density] = _contributions(engine, density, args.threads)
        print(f"  lattice density {density:g}: {time.perf_counter() - start:.1f} s", flush=True)
    dense = max(per_pair)
    value = per_pair[dense].mean(axis=1)  # (pairs, N), both lattices
    mean = value.mean(axis=0)
    signal = mean.var()
    total, main_effects, interaction = _decompose(value, mean, pairs, args.dim)
    print(f"signal (variance over samples of the all-pairs mean): {signal:.4f}")
    print(f"one pair around it: {total:.3f} = main effects {main_effects:.3f} ({main_effects / total:.0%}) "
          f"+ interaction {interaction:.3f} ({interaction / total:.0%}); per-pair signal-to-noise "
          f"{signal / total:.2e}")
    print(f"{'density':>8} {'lattice noise':>14} {'vs pair var':>12} {'all pairs once: reliability':>28}")
    for density, values in sorted(per_pair.items(), reverse=True):
        noise = float(np.mean(((values[:, 0] - values[:, 1]) / 2) ** 2))
        # All pairs once: only the lattice noise is left.
        reliability = signal / (signal + noise / len(pairs))
        print(f"{density:>8g} {noise:>14.3f} {noise / total:>12.2f} {reliability:>28.3f}")
    rng = np.random.default_rng(0)
    rounds = _round_robin(rng.permutation(args.dim))
    index = {(int(a), int(b)): t for t, (a, b) in enumerate(pairs)}
    per_round = args.dim // 2
    print(f"split-half reliability at density {dense:g} (mean of 5 draws): random pairs vs whole rounds")
    for share in (0.1, 0.25, 0.5):
        n_rounds = max(2, int(round(share * len(rounds))) // 2 * 2)
        count = n_rounds * per_round
        by_pairs, by_rounds = [], []
        for _ in range(5):
            chosen = rng.permutation(len(pairs))[:count]
            by_pairs.append(split_half_reliability(value[chosen[0::2]].sum(0), value[chosen[1::2]].sum(0)))
            order = rng.permutation(len(rounds))[:n_rounds]
            ids = [[index[tuple(sorted(p))] for p in rounds[r]] for r in order]
            halves = [np.concatenate(ids[0::2]), np.concatenate(ids[1::2])]
            by_rounds.append(split_half_reliability(value[halves[0]].sum(0), value[halves[1]].sum(0)))
        print(f"  {count:>5} pairs ({count / len(pairs):.0%}): random {np.mean(by_pairs):.3f}, "
              f"round-robin {np.mean(by_rounds):.3f}")


def _contributions(engine, density, threads):
    """(pairs, 2 lattices, N) contributions of every pair at ``density`` points per sample."""
    num = engine.num
    grid = max(2, math.ceil(math.sqrt(density * num / 2)))
    settings = (grid,) + engine.settings[1:4] + (1,)  # one lattice for coverage and penalties
    shifts = np.random.default_rng(1).random((len(engine.pairs), 2, 2))
    out = np.empty((len(engine.pairs), 2, num), dtype=np.float32)

    def visit(t):
        acc = np.zeros((4, num), dtype=np.int64)
        zcore_expected.add_visits(engine.columns, settings, engine.pairs[t : t + 1], np.zeros(1, np.int64),
                                  shifts[t : t + 1], acc)
        out[t] = acc[:2] * (num / SCALE)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(visit, range(len(engine.pairs))))
    return out


def _decompose(value, mean, pairs, dim):
    """Mean per-pair variance around ``mean``: total, the dimensions' main effects, their interaction."""
    a, b = pairs[:, 0], pairs[:, 1]
    by_dim = np.stack([value[(a == d) | (b == d)].mean(axis=0) for d in range(dim)])
    effect = (dim - 1) / (dim - 2) * (by_dim - mean)  # main effects of a complete pair design
    main = effect[a] + effect[b]
    residual = value - mean - main
    return float(((value - mean) ** 2).mean()), float((main**2).mean()), float((residual**2).mean())


def _round_robin(dims):
    """The circle method: len(dims) - 1 rounds, each pairing every dimension once."""
    n = len(dims)
    rounds = []
    for r in range(n - 1):
        pairs_ = [(dims[n - 1], dims[r])]
        pairs_ += [(dims[(r + k) % (n - 1)], dims[(r - k) % (n - 1)]) for k in range(1, n // 2)]
        rounds.append(pairs_)
    return rounds


if __name__ == "__main__":
    main()
