"""Time and peak memory of core.order.coreset_order per mode on synthetic clustered embeddings.

The data: ``--n`` x ``--dim`` float32 embeddings (default 1,000,000 x 512,
2 GiB) built in memory in chunks (no FiftyOne, no float64 copy): ``--clusters``
Gaussian centres N(0, 1), each sample a random centre plus N(0, 0.5^2)
noise, a few percent of the samples pure N(0, 2^2) noise (outliers); scores
uniform in [0, 1); labels = the centre index modulo 10 (for ``--stratify``).

Each mode runs in its own child process that builds the same data, so the
peak RSS printed for a mode is that process's maximum resident set (the
embeddings included) and nothing leaks from one mode into the next. Rows:
``seconds`` = wall time of the ``coreset_order`` call alone; ``peak RSS`` =
the child's ``ru_maxrss``; ``x matrix`` = peak RSS / the float32 matrix size.
The target for the default order at 1M x 512 is at most 600 s and about
2.5x the matrix. Timings on a shared 2-core machine are noisy.

Usage: ``.venv/bin/python bench/order_speed.py [--n 1000000] [--dim 512]
[--modes prototype,coverage,...] [--stratify]``
"""

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from harness import plugin_package  # noqa: E402

plugin_package()
from coreset_curation.core.order import DEFAULT_ORDER, ORDERS, coreset_order  # noqa: E402

WHAT = {
    "top": "score order (argsort)",
    "ccs": "score strata round robin, top held back",
    "cluster": "k-means blocks, k-means per block, score inside",
    "coverage": "k-means blocks, farthest-first per block",
    "prototype": "k-means blocks, facility location then farthest-first",
}


def _peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def build(n, dim, clusters, seed=0):
    """Clustered float32 embeddings, scores and labels, built chunk by chunk."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    emb = np.empty((n, dim), dtype=np.float32)
    which = rng.integers(0, clusters, n)
    chunk = 65536
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32)
        block = emb[start:stop]
        np.multiply(noise, np.float32(0.5), out=block)
        block += centres[which[start:stop]]
        outlier = rng.random(stop - start) < 0.02
        block[outlier] = noise[outlier] * np.float32(2.0)
    scores = rng.random(n)
    return emb, scores, which % 10


def child(args):
    emb, scores, labels = build(args.n, args.dim, args.clusters)
    built = _peak_gib()
    start = time.perf_counter()
    order = coreset_order(
        scores,
        embeddings=emb,
        mode=args.child,
        labels=labels if args.stratify else None,
        stratify=args.stratify,
        seed=0,
    )
    seconds = time.perf_counter() - start
    assert order.shape == (args.n,)
    assert np.array_equal(np.bincount(order, minlength=args.n), np.ones(args.n, dtype=np.int64))
    print(json.dumps(dict(mode=args.child, seconds=seconds, peak=_peak_gib(), built=built,
                          matrix=emb.nbytes / 2**30)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--modes", default=",".join(ORDERS))
    parser.add_argument("--stratify", action="store_true", help="stratify by 10 labels")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    modes = [m for m in args.modes.split(",") if m]
    print(f"{args.n:,} x {args.dim} float32 ({args.n * args.dim * 4 / 2**30:.2f} GiB), "
          f"{args.clusters} clusters, {os.cpu_count()} CPU(s)"
          f"{', stratified by 10 labels' if args.stratify else ''}; one child process per mode")
    print(f"{'mode':<12} {'what it runs':<56} {'seconds':>8} {'peak RSS':>9} {'x matrix':>8}")
    for mode in modes:
        cmd = [sys.executable, __file__, "--child", mode, "--n", str(args.n), "--dim", str(args.dim),
               "--clusters", str(args.clusters)] + (["--stratify"] if args.stratify else [])
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(f"{mode:<12} failed (exit {out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        name = mode + (" *" if mode == DEFAULT_ORDER else "")
        print(f"{name:<12} {WHAT[mode]:<56} {r['seconds']:>8.1f} {r['peak']:>7.2f} G {r['peak'] / r['matrix']:>8.2f}",
              flush=True)
    print("(* the default order; peak RSS includes the embeddings, "
          f"{args.n * args.dim * 4 / 2**30:.2f} GiB after building: "
          "timings on a shared 2-core machine are noisy)")


if __name__ == "__main__":
    main()
