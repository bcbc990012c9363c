"""ZCore split-half reliability vs iterations per sample on a 100,000-sample set.

Embeddings: 100,000 x 512 float32 with a low intrinsic dimension, like the
embeddings of real image models: a 16-d latent drawn from a mixture of 50
Gaussian clusters, mapped linearly to 512-d, plus isotropic noise (10 % of the
signal's scale). Each row runs ``zcore_run`` (published defaults except
``n_samples``) with a fresh seed and prints the iterations per sample, the
split-half reliability the run records, the seconds, and whether the run warns.

Usage: ``.venv/bin/python bench/zcore_reliability.py [--n 100000] [--per-sample 1 3 10 30]``
"""

import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from harness import plugin_package  # noqa: E402

plugin_package()
from coreset_curation.core.zcore import RELIABILITY_WARNING, zcore_run  # noqa: E402


def embeddings(n, dim=512, latent=16, clusters=50, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, latent)) * 3
    z = centres[rng.integers(0, clusters, n)] + rng.normal(size=(n, latent))
    mixing = rng.normal(size=(latent, dim)) / np.sqrt(latent)
    x = z @ mixing
    x += 0.1 * x.std() * rng.normal(size=x.shape)
    return x.astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--per-sample", type=float, nargs="+", default=[1, 3, 10, 30])
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
