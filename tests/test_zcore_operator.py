"""ZCore and coreset-view operators on real FiftyOne datasets in real MongoDB."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import PLUGIN_NAME, ROOT

ZCORE = f"{PLUGIN_NAME}/compute_zcore_scores"
SAVE = f"{PLUGIN_NAME}/save_coreset_view"


@pytest.fixture(scope="module")
def foo(fo):
    import fiftyone.operators as operators

    return operators


def _run(foo, uri, view, **params):
    return foo.execute_operator(uri, ctx=dict(view=view, params=params)).result


def test_every_operator_and_panel_is_listed_in_the_manifest(fo, foo, bridge):
    import importlib

    manifest = yaml.safe_load((ROOT / "fiftyone.yml").read_text())
    listed = set(manifest["operators"]) | set(manifest.get("panels") or [])
    package = bridge.__name__.rsplit(".", 1)[0]
    classes = importlib.import_module(package + ".operators").OPERATORS
    classes = classes + importlib.import_module(package + ".panels").PANELS
    defined = {cls().config.name for cls in classes}
    loaded = {op.config.name for op in foo.list_operators() if op.plugin_name == PLUGIN_NAME}
    assert listed == defined == loaded


def test_sdk_call_with_only_the_embeddings_field(fo, foo, make_dataset):
    dataset = make_dataset(60)
    result = _run(foo, ZCORE, dataset.view(), embeddings_field="emb")
    scores = dataset.values("zcore_score")
    assert all(s is not None and 0.0 <= s <= 1.0 for s in scores)
    assert min(scores) == 0.0 and max(scores) == 1.0
    assert result["scored"] == 60 and result["skipped"] == 0
    assert -1.0 <= result["reliability"] <= 1.0
    assert "zcore_score" in dataset.list_runs()
    config = dataset.get_run_info("zcore_score").config
    assert config.n_samples == 1_000_000 and config.redundancy_nn == 1000
    assert config.embeddings_fields == ["emb"] and config.seed == result["seed"]
    assert dataset.load_run_results("zcore_score").summary["scored"] == 60


def test_same_seed_same_scores_through_the_operator(fo, foo, make_dataset):
    dataset = make_dataset(40)
    _run(foo, ZCORE, dataset.view(), embeddings_field="emb", seed=3, n_samples=5000, score_field="a")
    _run(foo, ZCORE, dataset.view(), embeddings_field="emb", seed=3, n_samples=5000, score_field="b")
    assert dataset.values("a") == dataset.values("b")


def test_several_fields_are_concatenated_and_standardized(fo, foo, bridge, make_dataset):
    dataset = make_dataset(50, dim=4)
    rng = np.random.default_rng(1)
    dataset.set_values("emb2", list(rng.normal(size=(50, 6)).astype(np.float32) * 1000))
    table = bridge.load_embeddings(dataset, ["emb", "emb2"])
    assert table.vectors.shape == (50, 10)
    assert abs(table.vectors[:, 4:].std() - 1.0) < 1e-3
    result = _run(foo, ZCORE, dataset.view(), embeddings_field=["emb", "emb2"], n_samples=4000)
    assert result["scored"] == 50
    assert dataset.get_run_info("zcore_score").config.embeddings_fields == ["emb", "emb2"]


def test_works_on_the_target_view_only(fo, foo, make_dataset):
    dataset = make_dataset(50)
    view = dataset.limit(30)
    _run(foo, ZCORE, view, embeddings_field="emb", n_samples=3000)
    values = dataset.values("zcore_score")
    assert sum(v is not None for v in values) == 30


def test_samples_without_embeddings_are_skipped_and_counted(fo, foo, make_dataset):
    dataset = make_dataset(30, missing={2, 5, 7})
    result = _run(foo, ZCORE, dataset.view(), embeddings_field="emb", n_samples=3000)
    assert result["skipped"] == 3 and result["scored"] == 27
    values = dataset.values("zcore_score")
    assert [i for i, v in enumerate(values) if v is None] == [2, 5, 7]


def test_delegated_run_executes_from_the_queue(fo, foo, make_dataset):
    from fiftyone.operators.delegated import DelegatedOperationService

    dataset = make_dataset(40)
    queued = foo.execute_operator(
        ZCORE,
        ctx=dict(view=dataset.view(), params=dict(embeddings_field="emb", n_samples=20_000)),
        request_delegation=True,
    )
    assert queued.delegated
    assert dataset.get_field("zcore_score") is None
    service = DelegatedOperationService()
    service.execute_queued_operations(dataset_name=dataset.name)
    dataset.reload()
    assert all(v is not None for v in dataset.values("zcore_score"))
    doc = service.get(queued.result["id"])
    assert doc.run_state == "completed", doc.run_state
    assert doc.result.result["scored"] == 40


@pytest.mark.parametrize(
    "setup,params,message",
    [
        ("empty", dict(embeddings_field="emb"), "empty"),
        ("nan", dict(embeddings_field="emb"), "NaN or inf"),
        ("ragged", dict(embeddings_field="emb"), "different lengths"),
        ("plain", dict(embeddings_field="filepath"), "not a vector field"),
        ("plain", dict(embeddings_field="nope"), "does not exist"),
        ("two", dict(embeddings_field="emb"), "at least 3 samples"),
        ("plain", dict(embeddings_field="emb", score_field="filepath"), "built-in field"),
        ("plain", dict(embeddings_field="emb", n_samples=-5), "n_samples"),
    ],
)
def test_bad_input_errors_and_never_writes_a_field(fo, foo, make_dataset, setup, params, message):
    dataset = make_dataset(2 if setup == "two" else 12)
    view = dataset.view()
    if setup == "empty":
        view = dataset.match({"filepath": "none"})
    if setup == "nan":
        sample = dataset.first()
        sample["emb"] = np.array([np.nan] * 8, dtype=np.float32)
        sample.save()
    if setup == "ragged":
        sample = dataset.last()
        sample["emb"] = np.zeros(5, dtype=np.float32)
        sample.save()
    with pytest.raises(Exception, match=message):
        foo.execute_operator(ZCORE, ctx=dict(view=view, params=params))
    assert dataset.get_field(params.get("score_field", "zcore_score")) is None or params.get("score_field") == "filepath"
    assert "zcore_score" not in dataset.list_runs()


# -- save_coreset_view ---------------------------------------------------------


def _scored(make_dataset, n=40, labels=None):
    dataset = make_dataset(n, labels=labels)
    rng = np.random.default_rng(5)
    dataset.set_values("score", rng.random(n).tolist())
    return dataset


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.7, 0.99])
def test_saved_view_holds_exactly_the_expected_count(fo, foo, make_dataset, rate):
    dataset = _scored(make_dataset, 37)
    result = _run(foo, SAVE, dataset.view(), score_field="score", prune_rate=rate, view_name="core")
    expected = 37 - math.floor(rate * 37)
    assert result["kept"] == expected
    assert len(dataset.load_saved_view("core")) == expected


def test_saved_view_keeps_the_highest_scores_and_reloads_in_a_new_process(fo, foo, make_dataset):
    dataset = _scored(make_dataset, 50)
    _run(foo, SAVE, dataset.view(), score_field="score", prune_rate=0.7, view_name="core70")
    ids = np.array(dataset.values("id"))
    scores = np.array(dataset.values("score"))
    expected = sorted(ids[np.argsort(-scores, kind="stable")[:15]].tolist())
    code = (
        "import json, fiftyone as fo;"
        f"v = fo.load_dataset({dataset.name!r}).load_saved_view('core70');"
        "print(json.dumps(sorted(v.values('id'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


def test_keep_lowest_tag_and_stratify(fo, foo, make_dataset):
    labels = ["a"] * 20 + ["b"] * 10
    dataset = _scored(make_dataset, 30, labels=labels)
    _run(
        foo, SAVE, dataset.view(), score_field="score", prune_rate=0.5, view_name="low",
        keep="lowest", stratify_by="ground_truth", tag="kept",
    )
    view = dataset.load_saved_view("low")
    assert len(view) == 15
    assert view.count_values("ground_truth.label") == {"a": 10, "b": 5}
    assert dataset.match_tags("kept").count() == 15
    low = dataset.match({"ground_truth.label": "a"}).sort_by("score").limit(10).values("id")
    assert set(low) <= set(view.values("id"))


def test_ties_are_broken_deterministically(fo, foo, make_dataset):
    dataset = make_dataset(20)
    dataset.set_values("score", [0.5] * 20)
    _run(foo, SAVE, dataset.view(), score_field="score", prune_rate=0.5, view_name="t1")
    _run(foo, SAVE, dataset.view(), score_field="score", prune_rate=0.5, view_name="t2")
    assert dataset.load_saved_view("t1").values("id") == dataset.load_saved_view("t2").values("id")


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_prune_rate_outside_range_is_refused(fo, foo, make_dataset, rate):
    dataset = _scored(make_dataset, 10)
    with pytest.raises(Exception, match="prune_rate"):
        _run(foo, SAVE, dataset.view(), score_field="score", prune_rate=rate, view_name="x")
    assert not dataset.has_saved_view("x")


def test_a_taken_view_name_is_refused_unless_overwrite(fo, foo, make_dataset):
    dataset = _scored(make_dataset, 10)
    _run(foo, SAVE, dataset.view(), score_field="score", prune_rate=0.5, view_name="taken")
    with pytest.raises(Exception, match="already exists"):
        _run(foo, SAVE, dataset.view(), score_field="score", prune_rate=0.2, view_name="taken")
    assert len(dataset.load_saved_view("taken")) == 5
    _run(foo, SAVE, dataset.view(), score_field="score", prune_rate=0.2, view_name="taken", overwrite=True)
    assert len(dataset.load_saved_view("taken")) == 8


def test_missing_scores_are_not_kept(fo, foo, make_dataset):
    dataset = make_dataset(10)
    dataset.set_values("score", [None, 0.1, 0.2, None, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    result = _run(foo, SAVE, dataset.view(), score_field="score", prune_rate=0.5, view_name="m")
    assert result["kept"] == 4 and result["pruned"] == 4
