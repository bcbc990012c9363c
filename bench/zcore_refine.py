"""How many lattice points should spread redundancy penalties: reliability per second by ``COVERAGE_REFINE``.

Every coverage lattice point of the converging ZCore engine adds coverage;
one in refine ** 2 (every refine-th row and column: a coarser lattice with the
same expectation) also spreads the redundancy penalty, which costs a search of
the 65 nearest samples. For each refine this runs the engine's first-pass
pair visits on one thread for ``--seconds`` (same coverage density, same pairs
and shifts), in batches, and prints the visits done and the split-half
reliability by ranks of the two halves of the visits (the plugin's measure)
at each doubling of the visits and at the end.

Usage: ``.venv/bin/python bench/zcore_refine.py [--n 100000] [--dim 512] [--refine 1 2 3 4] [--seconds 80]``
"""

import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from harness import plugin_package  # noqa: E402

plugin_package()
from bench.zcore_reliability import embeddings  # noqa: E402
from coreset_curation.core import zcore_expected  # noqa: E402
from coreset_curation.core.zcore import DEFAULTS, split_half_reliability  # noqa: E402

_BATCH = 64


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--refine", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--seconds", type=float, default=80.0)
    args = parser.parse_args()
    engine = zcore_expected._Engine(embeddings(args.n, dim=args.dim), DEFAULTS["redundancy_nn"],
                                    DEFAULTS["redundancy_exp"], seed=0)
    total = len(engine.pairs)
    pairs, parity, shifts = engine.visits(0, total)
    points = engine.points_per_visit
    print(f"{args.n:,} x {args.dim}, about {points:,} coverage points a visit, one thread, {args.seconds:g} s each; "
          f"split-half reliability by ranks")
    print(f"{'refine':>6} {'penalty points':>15} {'visits':>8} {'seconds':>8} {'ms/visit':>9} {'reliability':>12}")
    for refine in args.refine:
        grid = zcore_expected.lattice_grid(points, refine)
        settings = (grid,) + engine.settings[1:4] + (refine,)
        warm = np.zeros((4, engine.num), dtype=np.int64)
        zcore_expected.add_visits(engine.columns, settings, pairs[:1], parity[:1], shifts[:1], warm)
        acc = np.zeros((4, engine.num), dtype=np.int64)
        start = time.perf_counter()
        done, report = 0, _BATCH * 16
        while done < total:
            rows = slice(done, done + _BATCH)
            zcore_expected.add_visits(engine.columns, settings, pairs[rows], parity[rows], shifts[rows], acc)
            done += len(pairs[rows])
            seconds = time.perf_counter() - start
            if done >= report or seconds >= args.seconds:
                reliability = split_half_reliability(acc[0] + acc[1], acc[2] + acc[3])
                print(f"{refine:>6} {2 * grid**2:>15,} {done:>8,} {seconds:>8.1f} {seconds / done * 1e3:>9.2f} "
                      f"{reliability:>12.3f}", flush=True)
                report *= 2
            if seconds >= args.seconds:
                break


if __name__ == "__main__":
    main()
