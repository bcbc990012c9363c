"""Near-duplicate groups on synthetic clustered embeddings with planted copies: precision, recall, time, memory.

Usage: .venv/bin/python bench/duplicates_quality.py [--num 100000] [--dim 512] [--threads 2]

The data: ``--num`` rows of ``--dim`` float32, 1,000 Gaussian clusters of
different spreads (0.3 to 1.0 per dimension around N(0, 1) centres); 10 % of
the rows are planted copies (one to three per original) of other rows plus
Gaussian noise of 0.01 to 0.08 per dimension, i.e. 2-15 % of the radius the
rule picks here. ``core.duplicates.near_duplicate_groups`` runs with the
default (automatic) radius. Precision and recall are over pairs: a pair is
found when both samples are in one group, true when one is a planted copy of
the other (or both copies of one original). ``seconds`` is the call alone (wall clock; CPU
seconds beside it: with ``--threads 1`` and the machine shared, the CPU time
is the single-core work, an upper bound of the wall time on idle cores);
``peak RSS`` is the process's maximum resident set (the matrix included);
``x matrix`` is peak RSS / the float32 matrix.
"""

import argparse
import pathlib
import resource
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from harness import plugin_package  # noqa: E402

plugin_package()
from coreset_curation.core.duplicates import near_duplicate_groups  # noqa: E402

CLUSTERS = 1000
COPY_FRACTION = 0.1


def _peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def planted(num, dim, seed=0):
    """``(x, truth)``: float32 rows, and per row its planted group (-1: not planted), built in blocks."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((CLUSTERS, dim), dtype=np.float32)
    spread = rng.uniform(0.3, 1.0, CLUSTERS).astype(np.float32)
    copies = int(num * COPY_FRACTION)
    originals = num - copies
    x = np.empty((num, dim), np.float32)
    for start in range(0, originals, 65_536):
        stop = min(originals, start + 65_536)
        c = rng.integers(0, CLUSTERS, stop - start)
        x[start:stop] = centers[c] + spread[c, None] * rng.standard_normal((stop - start, dim), dtype=np.float32)
    # one to three copies per original, `copies` in all
    per = rng.integers(1, 4, copies)
    sources = rng.choice(originals, size=copies, replace=False)
    source_of = np.repeat(sources, per)[:copies]
    truth = np.full(num, -1, np.int64)
    truth[np.unique(source_of)] = np.unique(source_of)
    truth[originals:] = source_of
    for start in range(originals, num, 65_536):
        stop = min(num, start + 65_536)
        noise = rng.uniform(0.01, 0.08, stop - start).astype(np.float32)[:, None]
        x[start:stop] = x[source_of[start - originals : stop - originals]] + noise * rng.standard_normal(
            (stop - start, dim), dtype=np.float32)
    return x, truth


def _pairs(labels):
    """The number of unordered pairs within groups (labels >= 0)."""
    sizes = np.bincount(labels[labels >= 0])
    return int((sizes * (sizes - 1) // 2).sum())


def pair_scores(found, truth):
    both = (found >= 0) & (truth >= 0)
    joint = found[both] * (truth.max() + 1) + truth[both]  # pairs found and true: same found group and same truth
    _, common = np.unique(joint, return_inverse=True)
    hits = _pairs(common)
    predicted, actual = _pairs(found), _pairs(truth)
    return hits / max(predicted, 1), hits / max(actual, 1), predicted, actual


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    x, truth = planted(args.num, args.dim)
    matrix = x.nbytes / 2**30
    print(f"{args.num:,} x {args.dim} float32 ({matrix:.2f} GiB), {int((truth >= 0).sum()):,} rows in "
          f"{len(np.unique(truth[truth >= 0])):,} planted groups; peak before the call {_peak_gib():.2f} GiB")
    start, cpu = time.perf_counter(), time.process_time()
    result = near_duplicate_groups(x, num_threads=args.threads)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    precision, recall, predicted, actual = pair_scores(result.groups, truth)
    print(f"radius {result.radius:.4f} (automatic); groups {result.num_groups:,}; extra copies {result.num_copies:,}")
    print(f"pairs found {predicted:,}, planted {actual:,}: precision {precision:.4f}, recall {recall:.4f}")
    print(f"seconds {seconds:.1f} (CPU seconds of the process {cpu:.1f}); peak RSS {_peak_gib():.2f} GiB = {_peak_gib() / matrix:.2f} x matrix")


if __name__ == "__main__":
    main()
