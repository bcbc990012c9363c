"""What checking that an order is still exact costs: ``score_fingerprint`` at 100k and 1M samples.

Each row builds a dataset of N image samples (bulk-inserted, 8-d vectors) with
a float ``score`` field in the bench's own mongod, then times
``bridge.score_fingerprint`` (the database-side digest of ids and scores that
``find_order`` compares) three times and prints the median.

Usage: ``.venv/bin/python bench/order_fingerprint.py [--n 100000 1000000]``
"""

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from harness import configure_environment, fast_dataset, plugin_package  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    configure_environment(tempfile.mkdtemp(prefix="coreset-fingerprint-"))
    plugin_package()
    import coreset_curation.bridge as bridge

    print(f"{'samples':>10} {'fingerprint s (median of 3)':>28}")
    for n in args.n:
        rng = np.random.default_rng(0)
        dataset = fast_dataset(f"fingerprint-{n}", rng.normal(size=(n, 8)).astype(np.float32), persistent=False)
        dataset.set_values("score", rng.random(n).tolist())
        times = []
        for _ in range(3):
            start = time.perf_counter()
            bridge.score_fingerprint(dataset, "score")
            times.append(time.perf_counter() - start)
        print(f"{n:>10,} {statistics.median(times):>28.2f}", flush=True)
        dataset.delete()


if __name__ == "__main__":
    main()
