"""Seconds per pair visit of the converging ZCore engine, and a cluster estimate from them.

Builds the engine for ``--n`` x ``--dim`` embeddings (those of
``bench/zcore_reliability.py``), runs ``--visits`` pair visits of its first
pass on one thread (after one visit that compiles the kernel) and prints the
seconds per visit, the bytes a Ray task moves, and the estimate for one pass
(every dimension pair once, about ``POINTS_PER_SAMPLE`` lattice points per
sample) at ``--scale-to`` samples on ``--cores`` cores, scaled linearly in N
from the measured cost (a visit's work is O(N): its lattice holds about
2000 N / pairs points and its grid build touches every sample).

Usage: ``.venv/bin/python bench/zcore_pair_cost.py [--n 100000] [--dim 512] [--visits 64]
[--scale-to 10000000] [--cores 64 256]``
"""

import argparse
import pathlib
import resource
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from harness import plugin_package  # noqa: E402

plugin_package()
from bench.zcore_reliability import embeddings  # noqa: E402
from coreset_curation.core import zcore_expected, zcore_ray  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--visits", type=int, default=64)
    parser.add_argument("--scale-to", type=int, default=10_000_000)
    parser.add_argument("--cores", type=int, nargs="+", default=[64, 256])
    args = parser.parse_args()

    start = time.perf_counter()
    engine = zcore_expected._Engine(embeddings(args.n, dim=args.dim), 1000, 4, seed=0)
    print(f"engine for {args.n:,} x {args.dim}: {time.perf_counter() - start:.1f} s "
          f"(columns, grid cells); {engine.points_per_visit:,} lattice points per visit")
    pairs, parity, shifts = engine.visits(0, args.visits + 1)
    acc = np.zeros((4, engine.num), dtype=np.int64)
    zcore_expected.add_visits(engine.columns, engine.settings, pairs[:1], parity[:1], shifts[:1], acc)
    start = time.perf_counter()
    zcore_expected.add_visits(engine.columns, engine.settings, pairs[1:], parity[1:], shifts[1:], acc)
    per_visit = (time.perf_counter() - start) / args.visits
    total = len(engine.pairs)
    column = sum(field[0].nbytes for field in engine.columns)
    print(f"{per_visit * 1e3:.2f} ms per pair visit on one thread ({args.visits} visits); "
          f"one pass = {total:,} visits = {per_visit * total:,.0f} core-seconds")
    print(f"a task moves at most {2 * zcore_ray._BLOCK} columns of {column / 1e6:.2f} MB in and "
          f"{acc.nbytes / 1e6:.1f} MB of sums out, for up to {zcore_ray._TASK_VISITS} visits")

    factor = args.scale_to / args.n
    big_visit = per_visit * factor
    core_seconds = big_visit * total
    print(f"\nestimate at {args.scale_to:,} x {args.dim} (linear in N: x{factor:.0f}): "
          f"{big_visit:.2f} s per visit, {core_seconds / 3600:,.0f} core-hours per pass; "
          f"object store {column * factor * args.dim / 1e9:.1f} GB of columns")
    for cores in args.cores:
        print(f"  {cores:>4} cores: {core_seconds / cores / 3600:.2f} h per pass")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
