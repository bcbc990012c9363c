"""Drag-to-update latency of the panel's JS slider in the real App (headless Chromium).

Serves the App on a dataset, opens the Coreset Explorer, drags the slider with
the mouse (``--steps`` pointer moves) and prints, over the steps, the median
and max time from the input event to the frame showing that rate's kept count,
plus the time the panel took to answer the release, and how long the App took
to show the dataset and then the panel (its first load: order, per-rate summary).

Default: a fresh 20,000-sample dataset (bulk-inserted, 16-d vectors in 10
classes, a random score, the panel's default order computed) in the bench's own
mongod. ``--dataset NAME`` uses an existing persistent dataset instead (e.g.
the 1M one: run with its ``FIFTYONE_DATABASE_URI``; the panel's default order
must be computed on it already, as ``compute_coreset_order`` does).

Needs the Debian ``chromium`` package and playwright (never ``playwright install``).

Usage: ``.venv/bin/python bench/drag_latency.py [--n 20000] [--dataset NAME] [--steps 40]``
"""

import argparse
import os
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
    parser.add_argument("--n", type=int, default=20_000, help="samples of the fresh dataset")
    parser.add_argument("--dataset", help="an existing persistent dataset instead")
    parser.add_argument("--steps", type=int, default=40, help="pointer moves of the drag")
    args = parser.parse_args()
    configure_environment(tempfile.mkdtemp(prefix="coreset-drag-"),
                          own_database="FIFTYONE_DATABASE_URI" not in os.environ)
    plugin_package()
    os.environ["CORESET_JS_SLIDER"] = "1"
    import fiftyone as fo
    from playwright.sync_api import sync_playwright

    import coreset_curation.bridge as bridge
    from app import Browser, Clock, served
    from slider_drag import RANGE, drag

    made = None
    if args.dataset:
        dataset = fo.load_dataset(args.dataset)
    else:
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 10, args.n)
        vectors = (rng.normal(size=(10, 16))[labels] + rng.normal(size=(args.n, 16))).astype(np.float32)
        dataset = made = fast_dataset(f"drag-latency-{args.n}", vectors, labels=[f"class_{c}" for c in labels],
                                      persistent=False)
        dataset.set_values("score", rng.random(args.n).tolist())
        bridge.compute_coreset_order(dataset, "score", embeddings_field="emb")
    n = dataset.count()
    try:
        with served(fo, dataset) as url, sync_playwright() as playwright:
            ui = Browser(playwright, url, Clock(900, "the drag bench"), viewport=dict(width=1600, height=1400))
            try:
                start = time.perf_counter()
                ui.open_dataset(dataset, cap_s=300)
                opened = time.perf_counter() - start
                start = time.perf_counter()
                panel = ui.open_panel(cap_s=600)
                panel.locator(RANGE).wait_for(timeout=ui.clock.ms(600))
                shown = time.perf_counter() - start
                ui.page.wait_for_timeout(2000)
                latencies, _, _ = drag(ui.page, 50, 80, n, steps=args.steps)
                ui.page.wait_for_timeout(2000)
            finally:
                ui.close()
    finally:
        if made is not None:
            made.delete()
    answered = [b - a for what, a, b in getattr(drag, "requests", []) if what.endswith("#on_rate_released")]
    print(f"{'samples':>10} {'steps drawn':>12} {'median ms':>10} {'max ms':>8} {'release answered ms':>20}")
    print(f"{n:>10,} {len(latencies):>12} {statistics.median(latencies):>10.1f} {max(latencies):>8.1f} "
          f"{(answered[0] if answered else float('nan')):>20.0f}")
    print(f"App showed the dataset in {opened:.1f} s, then the panel with its slider in {shown:.1f} s")


if __name__ == "__main__":
    main()
