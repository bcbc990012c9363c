"""Checks the default coreset order on the long-tailed benchmarks of ``bench/coreset_quality.py``.

Criteria, on every variant (``digits`` and ``synthetic``; mean over the seeds):

1. probe accuracy of the default order >= random subsets and >= k-center
   greedy at 50, 70, 90 and 95 % pruning;
2. every class of >= 5 samples keeps >= 1 sample at <= 90 % pruning (every seed);
3. at most one member of every planted near-duplicate group is kept at >= 50 %
   pruning (every seed).

Prints the tables and one line per failed criterion; exits 1 while one fails.
``--variants`` adds the score-steered variants of the default (item 4 of
issue 19). Run: ``.venv/bin/python bench/long_tail.py`` (a few minutes on 2
shared cores).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import coreset_quality as cq  # noqa: E402


def failures(results, facts, tol=1e-9):
    default = cq.order_label(cq.DEFAULT_ORDER)
    out = []
    for variant, rows in results.items():
        mine = rows[default]
        for r in cq.LT_RATES:
            acc = sum(v["acc"] for v in mine[r]) / len(mine[r])
            for base in ("random", cq.KCENTER):
                other = sum(v["acc"] for v in rows[base][r]) / len(rows[base][r])
                if acc < other - tol:
                    out.append(f"{variant} {r:.0%}: default {acc:.3f} < {base} {other:.3f}")
            if r <= 0.9:
                for c, size in facts[variant]["sizes"].items():
                    lost = [s for s, v in enumerate(mine[r]) if size >= 5 and v["classes"][c] == 0]
                    if lost:
                        out.append(f"{variant} {r:.0%}: class {c} ({size} samples) loses every sample "
                                   f"(seed index {lost})")
            if r >= 0.5:
                worst = max(v["max_group"] for v in mine[r])
                if worst > 1:
                    out.append(f"{variant} {r:.0%}: a planted duplicate group keeps {worst} members")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", action="store_true", help="add the score-steered variants of the default")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results, facts = cq.long_tail_results(lambda m: print(m, flush=True), extra_variants=args.variants)
    cq.print_long_tail(results, facts)
    failed = failures(results, facts)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    for line in failed:
        print("FAIL", line)
    print("all criteria hold" if not failed else f"{len(failed)} criterion check(s) fail")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
