"""Peak memory of ZCore on 1,000,000 x 768 float32 embeddings (the input included).

Usage: .venv/bin/python bench/zcore_memory.py [--num 1000000] [--dim 768] [--n-samples 20000]
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
from coreset_curation.core.zcore import zcore_run  # noqa: E402


def _peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--n-samples", type=int, default=20_000)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    embeddings = np.empty((args.num, args.dim), dtype=np.float32)
    for start in range(0, args.num, 100_000):
        stop = min(start + 100_000, args.num)
        embeddings[start:stop] = rng.standard_normal((stop - start, args.dim), dtype=np.float32)
    print(f"embeddings {args.num:,} x {args.dim} float32: {embeddings.nbytes / 2**30:.2f} GiB; peak so far {_peak_gib():.2f} GiB")
    start = time.perf_counter()
    result = zcore_run(embeddings, n_samples=args.n_samples, seed=0)
    print(f"{args.n_samples:,} iterations in {time.perf_counter() - start:.1f} s (incl. column copy and stats)")
    assert result.scores.shape == (args.num,)
    print(f"peak RSS: {_peak_gib():.2f} GiB")


if __name__ == "__main__":
    main()
