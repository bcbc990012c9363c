"""A million samples: throughput, memory and exactness of every phase at 1M x 512.

Builds (once, then reuses) a persistent dataset of 1,000,000 image samples
with 512-d float32 embeddings drawn around 100 centres and a 10-class
``ground_truth``, in a database of its own (``bench/out/scale-db``, its own
mongod). Each phase runs in a fresh process, so its peak RSS is its own, and
prints one line: seconds and peak RSS (and the phase's own figures).

Phases (``--phases``, default all, in this order):

* ``load``: ``bridge.read_vectors`` of the 1M x 512 field (peak RSS above the
  process baseline, as a multiple of the float32 matrix);
* ``zcore``: ``compute_zcore_scores`` with the plugin's defaults (converging
  ``"auto"``, 300 s budget): seconds, reliability, the warning it gives;
* ``write``: committing 1M new scores (staging + journal + server-side merge);
* ``order``: ``compute_coreset_order`` for every selection (the default first;
  ``--selections`` restricts this phase and ``panel``/``save`` to some, e.g. ``prototype``);
* ``panel``: the Coreset Explorer's first load and slider moves (median, p95)
  for every selection, through a real ExecutionContext;
* ``save``: ``save_coreset_view`` at 30, 70 and 90 % for every selection; a new
  process reloads each saved view and checks it holds exactly the
  ``n - floor(p n)`` samples the operator reported;
* ``mimic``: ``compute_mimic_scores`` (trusted reference: 1,000 tagged samples);
* ``duplicates``: ``find_near_duplicates`` with the automatic radius (read, search, write of both fields):
  seconds, peak RSS as a multiple of the float32 matrix, groups and extra copies found.

Usage: ``.venv/bin/python bench/scale.py [--n 1000000] [--phases load zcore ...] [--selections ...] [--rebuild]``
(the build takes ~3-4 min; zcore ~7 min; the default order ~5 min, the others a few minutes each).
"""

import argparse
import json
import math
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from harness import add_fast_samples, configure_environment, fast_dataset, plugin_package  # noqa: E402

STATE = ROOT / "bench" / "out" / "scale"
DIM = 512
PHASES = ("load", "zcore", "write", "order", "panel", "save", "mimic", "duplicates")
SELECTIONS = ("prototype", "top", "ccs", "cluster", "coverage")


def _peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _rss_gib():
    import psutil

    return psutil.Process().memory_info().rss / 2**30


def _emit(**figures):
    figures["peak_rss_gib"] = round(_peak_gib(), 2)
    print("RESULT " + json.dumps(figures), flush=True)


def _name(n):
    return f"coreset-scale-{n // 1000}k"


def build(n, rebuild=False):
    import numpy as np

    import fiftyone as fo

    name = _name(n)
    if fo.dataset_exists(name) and not rebuild:
        dataset = fo.load_dataset(name)
        if len(dataset) == n and dataset.count_sample_tags().get("trusted") == 1000:
            return dataset
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(100, DIM)).astype(np.float32)
    dataset = None
    step = 100_000
    for s in range(0, n, step):
        count = min(step, n - s)
        which = rng.integers(0, 100, count)
        vectors = centres[which] + 0.7 * rng.normal(size=(count, DIM)).astype(np.float32)
        if dataset is None:
            dataset = fast_dataset(name, vectors, labels=which % 10)
        else:
            add_fast_samples(dataset, vectors, labels=which % 10, start=s)
        print(f"  built {s + count:,} samples ({time.perf_counter() - start:.0f} s)", flush=True)
    dataset.reload()
    dataset.take(1000, seed=1).tag_samples("trusted")  # the trusted set of the mimic phase
    print(f"build: {n:,} x {DIM} in {time.perf_counter() - start:.0f} s", flush=True)
    return dataset


def phase_load(dataset):
    from coreset_curation import bridge

    base = _rss_gib()
    start = time.perf_counter()
    table = bridge.read_vectors(dataset, "emb")
    seconds = time.perf_counter() - start
    matrix = table.vectors.nbytes / 2**30
    above = _peak_gib() - base
    _emit(phase="load", seconds=round(seconds, 1), matrix_gib=round(matrix, 2), baseline_gib=round(base, 2),
          above_baseline_gib=round(above, 2), ratio_to_matrix=round(above / matrix, 2))


def phase_zcore(dataset):
    from coreset_curation import bridge

    start = time.perf_counter()
    summary = bridge.compute_zcore_scores(dataset, "emb", seed=0)
    _emit(phase="zcore", seconds=round(time.perf_counter() - start, 1), reliability=summary["reliability"],
          iterations_per_sample=summary["iterations_per_sample"], warning=summary["warning"])


def phase_write(dataset):
    import numpy as np

    import fiftyone.core.fields as fof
    from coreset_curation.bridge import commit, reads, runs

    ids, _ = reads.read_columns(dataset, [])
    values = np.random.default_rng().random(len(ids)).tolist()
    config = runs.make_config(runs.ZCORE, score_field="bench_write", embeddings_fields=["emb"], target_kind="samples")
    start = time.perf_counter()
    commit.commit(dataset, "bench_write", config, dict(summary={}),
                  writes=[commit.FieldWrite("bench_write", ids, values, fof.FloatField)])
    seconds = time.perf_counter() - start
    assert dataset.count("bench_write") == len(ids)
    dataset.delete_run("bench_write")  # its cleanup drops the field: the other phases never see it
    _emit(phase="write", seconds=round(seconds, 1), values=len(ids))


def phase_order(dataset, selections=SELECTIONS):
    from coreset_curation import bridge

    figures = {}
    for selection in selections:
        start = time.perf_counter()
        summary = bridge.compute_coreset_order(dataset, "zcore_score", selection=selection)
        figures[selection] = round(time.perf_counter() - start, 1)
        print(f"  order '{selection}': {figures[selection]} s ({summary['scored']:,} ranked)", flush=True)
    _emit(phase="order", seconds=figures, default=bridge.DEFAULT_SELECTION)


def phase_panel(dataset, selections=SELECTIONS, moves=20):
    import importlib

    import numpy as np

    from harness import PanelDriver

    module = importlib.import_module("coreset_curation.panels.coreset_explorer")
    figures = {}
    for selection in selections:
        driver = PanelDriver(module, dataset.view())
        start = time.perf_counter()
        driver.event("on_load")
        assert driver.state["score_field"] == "zcore_score"
        driver.event("on_change_setting", path="selection", value=selection)
        first = time.perf_counter() - start
        times = []
        for rate in np.linspace(1, 99, moves).round().astype(int).tolist():
            start = time.perf_counter()
            driver.event("on_change_setting", path="prune_rate", value=rate)
            times.append((time.perf_counter() - start) * 1000)
            kept = len(dataset) - math.floor(rate / 100 * len(dataset))
            assert f"Kept {kept:,}" in str(driver.component("summary")), (selection, rate)
        figures[selection] = dict(first_load_s=round(first, 1), median_ms=round(statistics.median(times), 1),
                                  p95_ms=round(float(np.percentile(times, 95)), 1))
        print(f"  panel '{selection}': {figures[selection]}", flush=True)
    _emit(phase="panel", **figures)


def phase_save(dataset, selections=SELECTIONS):
    from coreset_curation import bridge

    figures = {}
    expected = {}
    for selection in selections:
        for rate in (0.3, 0.7, 0.9):
            name = f"scale-{selection}-{int(rate * 100)}"
            start = time.perf_counter()
            summary = bridge.save_coreset_view(dataset, "zcore_score", rate, name, selection=selection,
                                               overwrite=True)
            figures[name] = round(time.perf_counter() - start, 1)
            assert summary["kept"] == len(dataset) - math.floor(rate * len(dataset))
            expected[name] = (summary["kept"], summary["rank_field"])
            print(f"  save '{name}': {figures[name]} s, kept {summary['kept']:,}", flush=True)
    # A new process reloads every saved view and compares it with the rank prefix.
    check = subprocess.run(
        [sys.executable, __file__, "--check-saved", json.dumps(expected), "--n", str(len(dataset))],
        capture_output=True, text=True, env=dict(os.environ),
    )
    print(check.stdout.strip(), flush=True)
    assert check.returncode == 0, check.stderr[-2000:]
    _emit(phase="save", seconds=figures, reloaded_exactly=True)


def check_saved(dataset, expected):
    """In a new process: each saved view holds exactly the first ``kept`` ranks."""
    for name, (kept, rank_field) in expected.items():
        view = dataset.load_saved_view(name)
        ids = set(view.values("_id"))
        prefix = set(dataset.match({rank_field: {"$lt": kept}}).values("_id"))
        assert len(ids) == kept and ids == prefix, name
        print(f"  reloaded '{name}': {len(ids):,} samples = the rank prefix", flush=True)


def phase_mimic(dataset):
    from coreset_curation import bridge

    start = time.perf_counter()
    summary = bridge.compute_mimic_scores(dataset, "emb", "ground_truth", trusted_tag="trusted", seed=0,
                                          score_field="bench_mimic", overwrite=True)
    _emit(phase="mimic", seconds=round(time.perf_counter() - start, 1), scored=summary["scored"],
          flagged=summary["flagged"])


def phase_duplicates(dataset):
    from coreset_curation import bridge

    start = time.perf_counter()
    summary = bridge.find_near_duplicates(dataset, "emb", group_field="bench_dup_group",
                                          representative_field="bench_dup_keep", overwrite=True)
    seconds = time.perf_counter() - start
    matrix = len(dataset) * DIM * 4 / 2**30
    dataset.delete_run(summary["run_key"])  # its cleanup drops both fields: the other phases never see them
    _emit(phase="duplicates", seconds=round(seconds, 1), groups=summary["groups"], copies=summary["copies"],
          radius=summary["radius"], matrix_gib=round(matrix, 2), ratio_to_matrix=round(_peak_gib() / matrix, 2))


def _child(args):
    configure_environment(STATE, own_database=False)
    plugin_package()
    import fiftyone as fo

    dataset = fo.load_dataset(_name(args.n))
    if args.check_saved:
        check_saved(dataset, json.loads(args.check_saved))
        return
    phase = globals()[f"phase_{args.phase}"]
    if args.phase in ("order", "panel", "save"):
        return phase(dataset, selections=args.selections)
    phase(dataset)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--phases", nargs="+", default=list(PHASES), choices=PHASES)
    parser.add_argument("--selections", nargs="+", default=list(SELECTIONS), choices=SELECTIONS,
                        help="the selections of the order, panel and save phases")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--check-saved", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase or args.check_saved:
        return _child(args)

    STATE.mkdir(parents=True, exist_ok=True)
    configure_environment(STATE)  # our own mongod on the bench database; children reuse its URI
    plugin_package()
    build(args.n, rebuild=args.rebuild)
    results = []
    for phase in args.phases:
        print(f"phase {phase} ...", flush=True)
        proc = subprocess.run([sys.executable, __file__, "--phase", phase, "--n", str(args.n),
                               "--selections", *args.selections],
                              capture_output=True, text=True, env=dict(os.environ))
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                results.append(json.loads(line[7:]))
                print(f"{phase}: {line[7:]}", flush=True)
            else:
                print(line, flush=True)
        if proc.returncode != 0:
            print(proc.stderr[-6000:], flush=True)
            raise SystemExit(f"phase {phase} failed")
    print("summary:")
    for result in results:
        print("  " + json.dumps(result))


if __name__ == "__main__":
    main()
