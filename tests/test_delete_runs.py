"""delete_coreset_runs: the App form lists the plugin's runs with what each wrote; deleting goes through cleanup."""

import numpy as np
import pytest

from conftest import PLUGIN_NAME
from harness import app_execute, form

URI = f"{PLUGIN_NAME}/delete_coreset_runs"


@pytest.fixture(scope="module")
def ops(fo):
    import fiftyone.operators as foo

    return {name: foo.get_operator(f"{PLUGIN_NAME}/{name}") for name in (
        "compute_zcore_scores", "save_coreset_view", "compute_coreset_order", "delete_coreset_runs")}


def _curated(make_dataset, ops, bridge):
    dataset = make_dataset(40)
    dataset.set_values("score", np.random.default_rng(0).random(40).tolist())
    ops["compute_zcore_scores"](dataset, "emb", n_samples=2000, seed=0)
    order = ops["compute_coreset_order"](dataset, "score", selection="top")
    ops["save_coreset_view"](dataset, "score", 0.5, "half", selection="top")
    bridge.tag_coreset(dataset, order["rank_field"], "best", prune_rate=0.75)
    return dataset, order["rank_field"]


def _boxes(props):
    return {name[len("run__"):]: p for name, p in props.items() if name.startswith("run__")}


def test_the_form_lists_every_run_with_its_fields_views_and_sizes(fo, bridge, ops, make_dataset):
    dataset, rank_field = _curated(make_dataset, ops, bridge)
    inputs, errors = form(URI, dataset.view())
    boxes = _boxes(inputs["type"]["properties"])
    assert set(boxes) == {"zcore_score", rank_field, "coreset_view_half", "coreset_tag_best"}
    assert f"field '{rank_field}' · 40 samples" in boxes[rank_field]["view"]["label"]
    assert "saved view 'half' · 20 samples" in boxes["coreset_view_half"]["view"]["label"]
    assert "tag 'best'" in boxes["coreset_tag_best"]["view"]["label"]
    assert errors  # nothing ticked yet: Execute is disabled


def test_an_order_a_kept_view_is_frozen_on_is_refused_in_the_form_words(fo, bridge, ops, make_dataset):
    dataset, rank_field = _curated(make_dataset, ops, bridge)
    inputs, errors = form(URI, dataset.view(), {f"run__{rank_field}": True})
    message = str(inputs["type"]["properties"]["refused"])
    assert "frozen on" in message and "tick those too" in message and "run_keys" not in message
    assert errors
    with pytest.raises(ValueError, match="run_keys: .* frozen on"):
        ops["delete_coreset_runs"](dataset, [rank_field])
    assert dataset.has_field(rank_field) and dataset.has_saved_view("half")


def test_deleting_from_the_app_removes_the_fields_views_and_tags_and_nothing_else(fo, bridge, ops, make_dataset):
    dataset, rank_field = _curated(make_dataset, ops, bridge)
    ticked = {f"run__{k}": True for k in (rank_field, "coreset_view_half", "coreset_tag_best")}
    assert not form(URI, dataset.view(), ticked)[1]
    requests = app_execute(URI, dataset.view(), ticked)
    assert any(uri == "reload_dataset" for uri, _ in requests)
    dataset.reload()
    assert sorted(dataset.list_runs()) == ["zcore_score"]
    assert not dataset.has_field(rank_field) and dataset.has_field("zcore_score") and dataset.has_field("score")
    assert not dataset.has_saved_view("half")
    assert dataset.match_tags("best").count() == 0


def test_the_sdk_deletes_by_run_key_and_refuses_unknown_keys(fo, bridge, ops, make_dataset):
    dataset, rank_field = _curated(make_dataset, ops, bridge)
    with pytest.raises(ValueError, match="run_keys: \\['nope'\\] are not runs of this plugin"):
        ops["delete_coreset_runs"](dataset, ["nope"])
    summary = ops["delete_coreset_runs"](dataset, "zcore_score")
    assert summary["fields"] == ["zcore_score"] and summary["deleted"] == 1
    assert "zcore_score" not in dataset.list_runs()
