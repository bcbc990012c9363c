"""The save form speaks percent (the SDK keeps fractions): keep-N instead, a kept-count preview, errors in its labels."""

import numpy as np
import pytest

from conftest import PLUGIN_NAME
from harness import app_execute, form

SAVE = f"{PLUGIN_NAME}/save_coreset_view"
ORDER = f"{PLUGIN_NAME}/compute_coreset_order"


def _scored(make_dataset, n=200):
    dataset = make_dataset(n)
    dataset.set_values("score", np.random.default_rng(0).random(n).tolist())
    return dataset


def _form(dataset, **params):
    inputs, errors = form(SAVE, dataset.view(), dict(dict(score_field="score", selection="top"), **params))
    return inputs["type"]["properties"], [e.get("reason", "") + str(e) for e in errors]


def test_the_rate_is_a_percent_with_a_kept_preview(fo, make_dataset):
    dataset = _scored(make_dataset)
    props, errors = _form(dataset, view_name="x")
    assert props["prune_percent"]["default"] == 50 and props["prune_percent"]["view"]["label"] == "Pruning rate (%)"
    assert "Keeps 100 of the 200 samples scored in 'score' (prunes 100)" in str(props["preview"])
    props, errors = _form(dataset, view_name="x", prune_percent=0.7)  # 0.7 %, not 70 %
    assert "Keeps 199 of the 200" in str(props["preview"]) and not errors


@pytest.mark.parametrize("params,label", [
    (dict(prune_percent=150), "Pruning rate (%)"), (dict(prune_percent=-1), "Pruning rate (%)"),
    (dict(keep_count=0), "or keep N samples"), (dict(keep_count=500), "or keep N samples"),
])
def test_out_of_range_input_is_refused_in_the_forms_words(fo, make_dataset, params, label):
    dataset = _scored(make_dataset)
    props, errors = _form(dataset, view_name="x", **params)
    name = next(iter(params))
    assert props[name].get("invalid") and props[name]["error_message"].startswith(label + ":")
    assert "prune_rate" not in props[name]["error_message"] and "preview" not in props
    assert errors


def test_names_are_refused_with_the_form_label(fo, bridge, make_dataset):
    dataset = _scored(make_dataset)
    props, _ = _form(dataset)
    assert props["view_name"]["error_message"] == "Saved view name: enter a name for the saved view"
    bridge.save_coreset_view(dataset, "score", 0.5, "taken", selection="top")
    props, _ = _form(dataset, view_name="taken")
    assert props["view_name"]["error_message"].startswith("Saved view name: a saved coreset view named 'taken'")
    assert "tick Overwrite" in props["view_name"]["error_message"]


def test_the_app_saves_at_a_percent_or_a_kept_count_and_the_sdk_keeps_fractions(fo, make_dataset):
    import fiftyone.operators as foo

    dataset = _scored(make_dataset)
    app_execute(SAVE, dataset.view(), dict(score_field="score", selection="top", prune_percent=0.7, view_name="p"))
    app_execute(SAVE, dataset.view(), dict(score_field="score", selection="top", keep_count=13, view_name="n"))
    foo.get_operator(SAVE)(dataset, "score", 0.007, "sdk", selection="top")
    assert len(dataset.load_saved_view("p")) == 199 == len(dataset.load_saved_view("sdk"))
    assert len(dataset.load_saved_view("n")) == 13
    assert set(dataset.load_saved_view("n").values("id")) == set(
        dataset.sort_by("score", reverse=True).limit(13).values("id"))


def _options(uri, dataset, params):
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext

    request = dict(dataset_name=dataset.name, view=dataset.view()._serialize(), params=params)
    ctx = ExecutionContext(request_params=request, operator_uri=uri)
    return foo.get_operator(uri).resolve_execution_options(ctx)


def test_schedule_is_the_default_only_for_long_work(fo, bridge, monkeypatch, make_dataset):
    monkeypatch.setattr(fo.config, "allow_legacy_orchestrators", True)
    dataset = _scored(make_dataset)
    params = dict(score_field="score", selection="top", prune_percent=50, view_name="x")
    assert _options(SAVE, dataset, params).default_choice_to_delegated is False  # 200 samples: well under 30 s
    assert _options(ORDER, dataset, dict(score_field="score", selection="top")).allow_delegated_execution
    from coreset_curation.operators import coreset_view

    monkeypatch.setitem(coreset_view._ORDER_S_PER_SAMPLE, "top", 1.0)  # as if each sample took a second
    assert _options(SAVE, dataset, params).default_choice_to_delegated is True
    bridge.compute_coreset_order(dataset, "score", selection="top")  # an up-to-date order: the save is instant
    assert _options(SAVE, dataset, params).default_choice_to_delegated is False
