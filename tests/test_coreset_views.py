"""Coreset orders and saved coreset views (issue 12) on real datasets in real MongoDB.

The same code path as bench/scale.py at 1M samples, at a size that fits CI.
"""

import json
import math
import os
import subprocess
import sys
import uuid

import numpy as np
import pytest

from conftest import PLUGIN_NAME
from harness import fast_dataset

N = 3000


@pytest.fixture(scope="module")
def ops(fo):
    import fiftyone.operators as foo

    return {name: foo.get_operator(f"{PLUGIN_NAME}/{name}") for name in (
        "compute_zcore_scores", "save_coreset_view", "compute_coreset_order")}


@pytest.fixture(scope="module")
def scored(fo, ops):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 16)) * 4
    labels = rng.integers(0, 20, N)
    vectors = (centers[labels] + rng.normal(size=(N, 16))).astype(np.float32)
    dataset = fast_dataset(f"coreset-views-{uuid.uuid4().hex[:8]}", vectors, labels=labels % 5)
    ops["compute_zcore_scores"](dataset, "emb", n_samples=30_000, seed=0)
    yield dataset
    dataset.delete()


def _reload_ids(dataset_name, view_names):
    """``{view name: sorted ids}`` read back by a new process."""
    code = (
        "import json, sys, fiftyone as fo;"
        f"d = fo.load_dataset({dataset_name!r});"
        "print(json.dumps({n: sorted(d.load_saved_view(n).values('id')) for n in sys.argv[1:]}))"
    )
    out = subprocess.run([sys.executable, "-c", code, *view_names], capture_output=True, text=True,
                         env=dict(os.environ), check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("selection", ["top", "ccs", "cluster", "coverage", "prototype"])
def test_every_selection_saves_exact_nested_frozen_views_that_reload_in_a_new_process(fo, ops, scored, selection):
    dataset = scored
    order = ops["compute_coreset_order"](dataset, "zcore_score", selection=selection)
    rank_field = order["rank_field"]
    ranks = dict(zip(*dataset.values(["id", rank_field])))
    assert sorted(ranks.values()) == list(range(N))  # a permutation: every sample ranked once
    expected = {}
    for rate in (0.3, 0.7, 0.9):
        name = f"{selection}-{int(rate * 100)}"
        summary = ops["save_coreset_view"](dataset, "zcore_score", rate, name, selection=selection)
        kept = N - math.floor(rate * N)
        assert summary["kept"] == kept and summary["selection"] == selection
        assert summary["rank_field"] == rank_field  # the order is reused, not recomputed
        assert len(str(dataset.load_saved_view(name)._serialize())) < 1000  # a small match document
        expected[name] = sorted(i for i, r in ranks.items() if r < kept)
    reloaded = _reload_ids(dataset.name, list(expected))
    assert reloaded == expected
    views = [set(reloaded[name]) for name in expected]
    assert views[2] <= views[1] <= views[0]  # nested: a higher rate keeps a subset


def test_top_keeps_the_best_scores(fo, ops, scored):
    summary = ops["save_coreset_view"](scored, "zcore_score", 0.8, "best-20", selection="top")
    kept = set(scored.load_saved_view("best-20").values("id"))
    ids, scores = scored.values(["id", "zcore_score"])
    assert min(s for i, s in zip(ids, scores) if i in kept) >= max(s for i, s in zip(ids, scores) if i not in kept)
    assert summary["kept"] == 600


def test_the_default_selection_uses_the_recorded_embeddings(fo, bridge, ops, scored):
    summary = ops["save_coreset_view"](scored, "zcore_score", 0.5, "default-50")
    assert summary["selection"] == bridge.DEFAULT_SELECTION
    config = scored.get_run_info(summary["rank_field"]).config
    assert config.embeddings_fields == ["emb"]
    # the saved view says in one line what the order uses (core.order.order_uses)
    from coreset_curation.core.order import order_uses

    description = scored.get_saved_view_info("default-50")["description"]
    assert summary["description"] == description
    assert f"uses {order_uses(bridge.DEFAULT_SELECTION)}" in description


def test_without_recorded_embeddings_the_default_falls_back_to_top_and_says_so(fo, ops, make_dataset):
    dataset = make_dataset(30, field=None)
    dataset.set_values("score", np.random.default_rng(0).random(30).tolist())
    summary = ops["save_coreset_view"](dataset, "score", 0.5, "fallback")
    assert summary["selection"] == "top" and "no embeddings are recorded" in summary["note"]


def test_stratified_views_keep_every_class_at_the_rate(fo, ops, scored):
    summary = ops["save_coreset_view"](scored, "zcore_score", 0.6, "strat-60", selection="top",
                                       stratify_by="ground_truth")
    view = scored.load_saved_view("strat-60")
    counts = view.count_values("ground_truth.label")
    totals = scored.count_values("ground_truth.label")
    assert summary["kept"] == N - math.floor(0.6 * N) == sum(counts.values())
    for label, total in totals.items():
        assert abs(counts[label] - 0.4 * total) <= 1


def test_a_frozen_rank_field_is_never_rewritten(fo, bridge, ops, make_dataset):
    dataset = make_dataset(100)
    ops["compute_zcore_scores"](dataset, "emb", n_samples=2000, seed=0)
    first = ops["save_coreset_view"](dataset, "zcore_score", 0.5, "half", selection="top")
    kept = sorted(dataset.load_saved_view("half").values("id"))
    ranks = dataset.values(first["rank_field"])
    ops["compute_zcore_scores"](dataset, "emb", n_samples=2000, seed=1)  # re-scored: the order is stale
    second = ops["save_coreset_view"](dataset, "zcore_score", 0.5, "half-again", selection="top")
    assert second["rank_field"] == first["rank_field"] + "_2"
    assert dataset.values(first["rank_field"]) == ranks
    assert sorted(dataset.load_saved_view("half").values("id")) == kept
    assert sorted(dataset.load_saved_view("half-again").values("id")) != kept


def test_a_stale_order_is_recomputed_after_rescoring(fo, bridge, ops, make_dataset):
    dataset = make_dataset(200)
    ops["compute_zcore_scores"](dataset, "emb", n_samples=2000, seed=0)
    first = ops["compute_coreset_order"](dataset, "zcore_score", selection="top")
    assert bridge.find_order(dataset, "zcore_score", selection="top") is not None
    ops["compute_zcore_scores"](dataset, "emb", n_samples=2000, seed=1)
    assert bridge.find_order(dataset, "zcore_score", selection="top") is None
    rank_field, summary = bridge.order_for(dataset, "zcore_score", selection="top")
    assert rank_field == first["rank_field"] and summary["reused"] is False
    order = np.argsort(np.array(dataset.values(rank_field)))
    scores = np.array(dataset.values("zcore_score"))
    assert (np.diff(scores[order]) <= 0).all()


def test_no_large_id_lists_travel(fo, ops, scored):
    """Saved coresets, shown kept/pruned and load paths are matches, not select(<ids>)."""
    import fiftyone.core.stages as fosg

    from coreset_curation import bridge

    summary = ops["save_coreset_view"](scored, "zcore_score", 0.3, "big-kept", selection="top")
    for view in (scored.load_saved_view("big-kept"),
                 bridge.kept_view(scored, summary["rank_field"], 0.3),
                 bridge.pruned_view(scored, summary["rank_field"], 0.3)):
        assert not any(isinstance(stage, (fosg.Select, fosg.Exclude)) for stage in view._stages)
    assert len(bridge.kept_view(scored, summary["rank_field"], 0.3)) == summary["kept"]
