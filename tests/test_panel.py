"""Coreset Explorer panel driven through a real ExecutionContext (no App)."""

import importlib
import math

import numpy as np
import pytest

from conftest import PLUGIN_NAME
from harness import PanelDriver


@pytest.fixture(scope="module")
def panel_module(bridge):
    return importlib.import_module(bridge.__name__.rsplit(".", 1)[0] + ".panels.coreset_explorer")


def _scored_dataset(make_dataset, n=60, labels=True):
    labels_list = [str(i % 3) for i in range(n)] if labels else None
    dataset = make_dataset(n, labels=labels_list)
    dataset.set_values("score", np.random.default_rng(0).random(n).tolist())
    return dataset


def test_load_picks_the_fields_and_renders_every_part(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset)
    driver = PanelDriver(panel_module, dataset.view())
    driver.event("on_load")
    assert driver.state["score_field"] == "score"
    assert driver.state["prune_rate"] == 50 and driver.state["keep"] == "highest"
    assert driver.state["label_field"] == "ground_truth"
    for name in ("score_field", "prune_rate", "histogram", "classes", "summary", "save", "show_kept"):
        assert driver.component(name) is not None or name in str(driver.output), name
    assert "Kept 30" in str(driver.component("summary"))


def test_plugin_score_fields_come_first(panel_module, bridge, make_dataset):
    dataset = _scored_dataset(make_dataset)
    dataset.set_values("aaa_other", [1.0] * len(dataset))
    bridge.record_run(dataset, "score", "test", dict(score_field="score"), {})
    assert bridge.numeric_fields(dataset)[0] == "score"


@pytest.mark.parametrize("rate", [0, 30, 70, 99])
def test_slider_moves_update_counts_and_histogram(panel_module, make_dataset, rate):
    dataset = _scored_dataset(make_dataset, 57)
    driver = PanelDriver(panel_module, dataset.view())
    driver.event("on_load")
    driver.event("on_change_setting", path="prune_rate", value=rate)
    kept = 57 - math.floor(rate / 100 * 57)
    assert f"Kept {kept}" in str(driver.component("summary"))
    bars = driver.output["type"]["properties"]["histogram"]["view"]["data"]
    assert sum(bars[0]["y"]) == kept and sum(bars[1]["y"]) == 57 - kept
    assert driver.state["render_ms"] < 1000


def test_stratify_and_keep_lowest(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 60)
    driver = PanelDriver(panel_module, dataset.view())
    driver.event("on_load")
    driver.event("on_change_setting", path="stratify", value=True)
    driver.event("on_change_setting", path="keep", value="lowest")
    driver.event("on_change_setting", path="prune_rate", value=50)
    bars = driver.output["type"]["properties"]["classes"]["view"]["data"]
    assert bars[1]["y"] == [10, 10, 10]


def test_show_kept_and_pruned_set_the_app_view(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 20)
    driver = PanelDriver(panel_module, dataset.view())
    driver.event("on_load")
    driver.event("on_show_kept")
    assert "set_view" in driver.requests
    driver.event("on_show_pruned")
    assert "set_view" in driver.requests


def test_tag_kept(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 20)
    driver = PanelDriver(panel_module, dataset.view())
    driver.event("on_load")
    driver.event("on_change_setting", path="tag", value="keepme")
    driver.event("on_tag_kept")
    assert dataset.match_tags("keepme").count() == 10


def test_panel_saves_the_same_coreset_as_the_operator(fo, panel_module, make_dataset):
    import fiftyone.operators as foo

    dataset = _scored_dataset(make_dataset, 45)
    driver = PanelDriver(panel_module, dataset.view())
    driver.event("on_load")
    driver.event("on_change_setting", path="prune_rate", value=70)
    driver.event("on_change_setting", path="stratify", value=True)
    driver.event("on_change_setting", path="view_name", value="from-panel")
    driver.event("on_save")
    assert dataset.has_saved_view("from-panel")
    # The same field, rate and mode through the operator.
    foo.execute_operator(
        f"{PLUGIN_NAME}/save_coreset_view",
        ctx=dict(
            view=dataset.view(),
            params=dict(
                score_field="score", prune_rate=0.7, view_name="from-op", stratify_by="ground_truth", selection="top"
            ),
        ),
    )
    panel_ids = sorted(dataset.load_saved_view("from-panel").values("id"))
    assert panel_ids == sorted(dataset.load_saved_view("from-op").values("id"))
    assert len(panel_ids) == 45 - math.floor(0.7 * 45)


def test_saving_over_a_taken_name_asks_first(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 20)
    dataset.save_view("taken", dataset.limit(3))
    driver = PanelDriver(panel_module, dataset.view())
    driver.event("on_load")
    driver.event("on_change_setting", path="view_name", value="taken")
    driver.event("on_save")
    assert len(dataset.load_saved_view("taken")) == 3
    assert driver.state["confirm_overwrite"] is True and "exists" in driver.state["message"]
    assert driver.component("save")["view"]["label"] == "Overwrite"
    driver.event("on_save")
    assert len(dataset.load_saved_view("taken")) == 10


def test_no_numeric_field_offers_to_compute_scores(panel_module, make_dataset):
    dataset = make_dataset(10)
    driver = PanelDriver(panel_module, dataset.view())
    driver.event("on_load")
    button = driver.component("open_zcore")
    assert button["view"]["operator"] == f"{PLUGIN_NAME}/compute_zcore_scores"
    assert "No score field" in str(driver.component("empty"))


def test_missing_scores_are_ignored_and_counted(panel_module, make_dataset):
    dataset = make_dataset(10)
    dataset.set_values("score", [None, None, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    driver = PanelDriver(panel_module, dataset.view())
    driver.event("on_load")
    summary = str(driver.component("summary"))
    assert "Kept 4" in summary and "2 without a score" in summary


def test_changed_view_and_dataset_refresh(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 40)
    driver = PanelDriver(panel_module, dataset.view())
    driver.event("on_load")
    assert "of 40 scored" in str(driver.component("summary"))
    driver.view = dataset.limit(20)
    driver.event("on_change_view")
    assert "of 20 scored" in str(driver.component("summary"))
    dataset.set_values("score", [None] * 10 + [0.5] * 30)
    driver.view = dataset.view()
    driver.event("on_change_dataset")
    assert "of 30 scored" in str(driver.component("summary"))


def test_map_and_accuracy_curve(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 80)
    driver = PanelDriver(panel_module, dataset.view())
    driver.event("on_load")
    driver.event("on_change_setting", path="show_map", value=True)
    traces = driver.output["type"]["properties"]["map"]["view"]["data"]
    assert [t["name"] for t in traces] == ["pruned", "kept"]
    assert len(traces[1]["x"]) == 40 and len(traces[0]["x"]) == 40
    driver.event("on_compute_curve")
    curve = driver.state["curve"]
    assert curve["rates"][0] == 0 and len(curve["accuracy"]) == len(curve["rates"])
    assert all(a is None or 0 <= a <= 1 for a in curve["accuracy"])
    assert driver.component("curve") is not None


def test_panel_and_operator_agree_on_a_coverage_mode(fo, panel_module, make_dataset):
    import fiftyone.operators as foo

    dataset = _scored_dataset(make_dataset, 50)
    driver = PanelDriver(panel_module, dataset.view())
    driver.event("on_load")
    for path, value in (("prune_rate", 60), ("selection", "prototype"), ("view_name", "panel-proto")):
        driver.event("on_change_setting", path=path, value=value)
    driver.event("on_save")
    foo.execute_operator(
        f"{PLUGIN_NAME}/save_coreset_view",
        ctx=dict(
            view=dataset.view(),
            params=dict(score_field="score", prune_rate=0.6, view_name="op-proto", selection="prototype",
                        embeddings_field="emb"),
        ),
    )
    panel_ids = sorted(dataset.load_saved_view("panel-proto").values("id"))
    assert panel_ids == sorted(dataset.load_saved_view("op-proto").values("id"))
    assert len(panel_ids) == 20
