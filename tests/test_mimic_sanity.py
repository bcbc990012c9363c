"""Mimic warns when its scores are likely meaningless: a reference head near chance, or most samples flagged."""

import numpy as np

from conftest import PLUGIN_NAME
from harness import PanelDriver, app_execute, labelled

MIMIC = f"{PLUGIN_NAME}/compute_mimic_scores"


def test_the_rule():
    from coreset_curation.core import mimic

    assert mimic.sanity_warning(0.95, 0.34, 3, 60) is None
    assert "near chance" in mimic.sanity_warning(0.36, 0.34, 3, 60)  # 3 classes: a head at 36 % says nothing
    assert "1,443 of 1,500 samples (96%) are flagged" in mimic.sanity_warning(0.9, 0.1, 1443, 1500)
    head = mimic.LinearHead(np.eye(2, dtype=np.float32), None)
    x = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], np.float32)
    assert mimic.reference_accuracy(head, x, np.array([0, 1, 0, 1])) == (1.0, 0.5)
    assert mimic.reference_accuracy(head, x, np.array([1, 0, 0, 1])) == (0.5, 0.5)


def test_a_good_reference_gives_no_warning(fo, make_dataset):
    import fiftyone.operators as foo

    dataset = labelled(make_dataset)
    summary = foo.get_operator(MIMIC)(dataset, "emb", "ground_truth", trusted_tag="trusted")
    assert summary["warning"] is None and summary["reference_accuracy"] > 0.9


def test_a_random_head_is_warned_about_in_the_summary_the_app_and_the_panel(fo, bridge, make_dataset, tmp_path):
    dataset = labelled(make_dataset, n=90)
    head = tmp_path / "random_head.npy"
    weight = np.random.default_rng(5).normal(size=(3, 8)).astype(np.float32)
    weight[:, :] = weight[0]  # every class the same direction: the head predicts one class only
    np.save(head, weight)
    requests = app_execute(MIMIC, dataset.view(), dict(embeddings_field="emb", label_field="ground_truth",
                                                       reference="checkpoint", checkpoint_path=str(head)))
    shown = [p for uri, p in requests if uri == "show_output"][0]
    assert "near chance" in str(shown["outputs"]) and "Warning" in str(shown["outputs"])
    notes = [p for uri, p in requests if uri == "notify"]
    assert notes[-1]["variant"] == "warning" and "near chance" in notes[-1]["message"]
    run = dataset.load_run_results("mimic_score", load_view=False).summary
    assert "near chance" in run["warning"]

    import importlib

    panel = importlib.import_module("coreset_curation.panels.coreset_explorer")
    driver = PanelDriver(panel, dataset.view())
    driver.event("on_load")
    driver.event("on_change_setting", path="score_field", value="mimic_score")
    driver.event("on_change_setting", path="selection", value="top")
    names = list(driver.output["type"]["properties"])
    assert "near chance" in str(driver.component("reliability"))
    assert names.index("reliability") == names.index("rates") + 1  # next to the slider
