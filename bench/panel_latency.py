"""Server time per pruning-rate slider move of the Coreset Explorer panel.

Builds a real dataset in MongoDB (dummy filepaths, random scores, a 10-class
``Classification`` label), then drives the panel the way the App does: one
``execute`` per event through a real ``ExecutionContext`` (``on_change_setting``
with ``path="prune_rate"``, which also re-renders). One warm-up move after
``on_load`` fills the score cache; then ``--moves`` moves across 0..99 % are
timed. The dataset is deleted at the end.

    .venv/bin/python bench/panel_latency.py [--n 100000] [--moves 30] [--profile]

The last line printed is
``slider move: X ms (median), Y ms (p95) at N samples``.
"""

import argparse
import importlib
import os
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

from harness import PanelDriver, configure_environment, plugin_package  # noqa: E402

# The same environment as the tests, set before fiftyone is imported.
configure_environment(os.environ.get("CORESET_BENCH_STATE") or pathlib.Path(tempfile.gettempdir()) / "coreset-bench")

import numpy as np  # noqa: E402

import fiftyone as fo  # noqa: E402


def panel_module():
    """The panel module of the repo imported as a package (as FiftyOne does)."""
    return importlib.import_module(plugin_package().__name__ + ".panels.coreset_explorer")


def summary(driver):
    return str(driver.component("summary"))


def build_dataset(n, seed=0):
    rng = np.random.default_rng(seed)
    dataset = fo.Dataset(f"coreset-bench-{uuid.uuid4().hex[:8]}")
    labels = rng.integers(0, 10, n)
    scores = rng.random(n)
    samples = (
        fo.Sample(
            filepath=f"/nonexistent/img_{i:06d}.png",
            score=float(scores[i]),
            ground_truth=fo.Classification(label=f"c{labels[i]}"),
        )
        for i in range(n)
    )
    dataset.add_samples(samples, validate=False, progress=False, num_samples=n)
    return dataset


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--moves", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="cProfile the timed moves (top 25 by cumulative time)")
    args = parser.parse_args()

    module = panel_module()
    start = time.perf_counter()
    dataset = build_dataset(args.n)
    print(f"dataset: {args.n:,} samples with 'score' and 10-class 'ground_truth' in {time.perf_counter() - start:.1f} s")
    try:
        driver = PanelDriver(module, dataset.view())
        start = time.perf_counter()
        driver.event("on_load")
        first_ms = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        driver.event("on_change_setting", path="prune_rate", value=37)  # warm-up
        warm_ms = (time.perf_counter() - start) * 1000
        print(f"first load (reads the scores, fills the cache): {first_ms:.0f} ms; warm-up move: {warm_ms:.0f} ms")

        rates = np.linspace(0, 99, args.moves).round().astype(int).tolist()
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
        totals, renders = [], []
        for rate in rates:
            start = time.perf_counter()
            if profiler:
                profiler.enable()
            driver.event("on_change_setting", path="prune_rate", value=rate)
            if profiler:
                profiler.disable()
            totals.append((time.perf_counter() - start) * 1000)
            renders.append(driver.state["render_ms"])
            kept = args.n - int(np.floor(rate / 100 * args.n))
            assert f"Kept {kept:,}" in summary(driver), (rate, summary(driver))

        # The App echoes every panel state change with on_change_view events (view unchanged).
        driver.event("on_change_view", value=[])  # the first one records the view
        echoes = []
        for _ in range(10):
            start = time.perf_counter()
            driver.event("on_change_view", value=[])
            echoes.append((time.perf_counter() - start) * 1000)
        # What the App sends for one slider move: on_change_setting twice, then three echoes.
        bursts = []
        for rate in rates[::3]:
            start = time.perf_counter()
            for _ in range(2):
                driver.event("on_change_setting", path="prune_rate", value=rate)
            for _ in range(3):
                driver.event("on_change_view", value=[])
            bursts.append((time.perf_counter() - start) * 1000)

        if profiler:
            import pstats

            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        print(
            f"per move over {len(rates)} moves: execute median {statistics.median(totals):.1f} ms, "
            f"p95 {percentile(totals, 95):.1f} ms, max {max(totals):.1f} ms; "
            f"render alone median {statistics.median(renders):.1f} ms"
        )
        print(f"on_change_view echo (no view change): median {statistics.median(echoes):.1f} ms")
        print(f"App-like burst per move (2 x on_change_setting + 3 x on_change_view): "
              f"median {statistics.median(bursts):.0f} ms")
        print(
            f"slider move: {statistics.median(totals):.0f} ms (median), {percentile(totals, 95):.0f} ms (p95) "
            f"at {args.n} samples"
        )
    finally:
        dataset.delete()


if __name__ == "__main__":
    main()
