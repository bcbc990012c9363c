"""find_near_duplicates on real datasets in real MongoDB: SDK, execute_operator, patches views, runs, reload."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import PLUGIN_NAME
from harness import form

URI = f"{PLUGIN_NAME}/find_near_duplicates"


@pytest.fixture(scope="module")
def foo(fo):
    import fiftyone.operators as operators

    return operators


@pytest.fixture(scope="module")
def op(foo):
    return foo.get_operator(URI)


def _planted(n=60, copies=10, dim=8, seed=0):
    """``n`` vectors whose last ``copies`` are noisy copies of the first ``copies``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x[n - copies :] = x[:copies] + 1e-3 * rng.normal(size=(copies, dim)).astype(np.float32)
    return x


def _with_copies(make_dataset, n=60, copies=10):
    dataset = make_dataset(n, field=None)
    dataset.set_values("emb", list(_planted(n, copies)))
    return dataset


def _check_groups(groups, representative, n=60, copies=10):
    for k in range(copies):
        assert groups[k] is not None and groups[k] == groups[n - copies + k]
        assert representative[k] is True and representative[n - copies + k] is False
    assert len({groups[k] for k in range(copies)}) == copies
    assert all(g is None for g in groups[copies : n - copies]) and all(representative[copies : n - copies])


def _reload(dataset_name, fields):
    """``(runs, {field: values})`` of a dataset read back by a new process."""
    code = (
        "import json, sys, fiftyone as fo;"
        f"d = fo.load_dataset({dataset_name!r});"
        "print(json.dumps([d.list_runs(), {f: d.values(f) for f in sys.argv[1:]}]))"
    )
    out = subprocess.run([sys.executable, "-c", code, *fields], capture_output=True, text=True,
                         env=dict(os.environ), check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_sdk_call_finds_planted_copies_records_a_run_that_reloads_and_cleans_up(fo, op, make_dataset):
    dataset = _with_copies(make_dataset)
    summary = op(dataset, "emb")
    assert summary["groups"] == 10 and summary["copies"] == 10 and summary["in_groups"] == 20
    assert summary["radius_rule"] == "automatic" and summary["radius"] > 0 and summary["samples"] == 60
    assert summary["message"].startswith("10 near-duplicate groups, 10 extra copies")
    groups, representative = dataset.values("near_dup_group"), dataset.values("near_dup_representative")
    _check_groups(groups, representative)
    assert "near_dup_group" in dataset.list_runs()
    info = dataset.get_run_info("near_dup_group")
    assert type(info.config).__name__ == "DuplicatesRunConfig" and info.config.embeddings_fields == ["emb"]
    assert info.config.radius is None and info.config.radius_used == pytest.approx(summary["radius"], rel=1e-4)
    assert dataset.load_run_results("near_dup_group").summary["copies"] == 10

    runs, values = _reload(dataset.name, ["near_dup_group", "near_dup_representative"])
    assert "near_dup_group" in runs
    assert values["near_dup_group"] == groups and values["near_dup_representative"] == representative

    dataset.delete_run("near_dup_group")  # the run's cleanup removes both fields
    assert not dataset.has_field("near_dup_group") and not dataset.has_field("near_dup_representative")
    assert "near_dup_group" not in dataset.list_runs()


def test_execute_operator_with_a_radius_on_a_view_and_a_rerun_replaces_the_values(fo, foo, make_dataset):
    dataset = _with_copies(make_dataset)
    view = dataset.skip(5)  # the copies of samples 0..4 (50..54) lose their originals
    params = dict(embeddings_field="emb", radius=0.05, group_field="g", representative_field="keep")
    result = foo.execute_operator(URI, ctx=dict(view=view, params=params))
    assert result.error is None, result.error
    summary = dataset.load_run_results("g").summary  # a generator's result stays in the App: read the run's
    assert summary["groups"] == 5 and summary["radius_rule"] == "given" and summary["radius"] == 0.05
    groups = dataset.values("g")
    assert all(g is None for g in groups[:5] + groups[50:55]) and sum(g is not None for g in groups) == 10, str(groups)
    assert dataset.get_run_info("g").config.radius == 0.05
    # the same run again on the whole dataset: this run's values only, one run record
    again = foo.execute_operator(URI, ctx=dict(view=dataset.view(), params=dict(params, radius=None)))
    assert again.error is None and dataset.load_run_results("g").summary["groups"] == 10
    _check_groups(dataset.values("g"), dataset.values("keep"))
    assert dataset.list_runs().count("g") == 1


def _detections_dataset(fo, make_dataset, n=30, copies=6):
    """``n`` images with two boxes each; box vectors on the labels, the last ``copies`` boxes copy the first."""
    dataset = make_dataset(n, field=None)
    x = _planted(2 * n, copies, seed=4)
    for i, sample in enumerate(dataset.iter_samples(autosave=True)):
        sample["boxes"] = fo.Detections(detections=[
            fo.Detection(label="a", bounding_box=[0.1, 0.1, 0.2, 0.2], emb=x[2 * i]),
            fo.Detection(label="b", bounding_box=[0.5, 0.5, 0.2, 0.2], emb=x[2 * i + 1]),
        ])
    dataset.add_sample_field("boxes.detections.emb", fo.VectorField)
    return dataset, x


def test_a_patches_view_gets_the_groups_on_its_labels_and_cleanup_removes_them(fo, op, make_dataset):
    dataset, x = _detections_dataset(fo, make_dataset)
    patches = dataset.to_patches("boxes")
    summary = op(patches, "boxes.emb")
    assert summary["target_kind"] == "patches" and summary["groups"] == 6 and summary["copies"] == 6
    # on the source labels, in the order of the boxes
    groups = [g for per_sample in dataset.values("boxes.detections.near_dup_group") for g in per_sample]
    representative = [r for s in dataset.values("boxes.detections.near_dup_representative") for r in s]
    _check_groups(groups, representative, n=60, copies=6)
    # on the patches view itself, and on a fresh one
    assert patches.values("boxes.near_dup_group") == groups
    fresh = dataset.to_patches("boxes")
    assert fresh.values("boxes.near_dup_group") == groups
    assert fresh.values("boxes.near_dup_representative") == representative
    assert "near_dup_group" in dataset.list_runs()

    runs, values = _reload(dataset.name, ["boxes.detections.near_dup_group"])
    assert "near_dup_group" in runs and [g for s in values["boxes.detections.near_dup_group"] for g in s] == groups

    # a filtered patches view: its objects only; the others' values are cleared
    view = dataset.to_patches("boxes").match(fo.ViewField("boxes.label") == "a")
    summary = op(view, "boxes.emb", radius=1e-2)
    assert summary["samples"] == 30
    groups = [g for s in dataset.values("boxes.detections.near_dup_group") for g in s]
    assert all(g is None for g in groups[1::2])

    dataset.delete_run("near_dup_group")
    schema = dataset.get_field_schema(flat=True)
    assert "boxes.detections.near_dup_group" not in schema and "boxes.detections.near_dup_representative" not in schema
    assert "boxes.detections.emb" in schema
    assert not any("near_dup_group" in d for boxes in dataset.values("boxes", _raw=True)
                   for d in boxes["detections"])  # the attribute is gone from every label


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(embeddings_field="nope"), "^embeddings_field: field 'nope' does not exist"),
        (dict(radius=-1.0), "^radius must be a finite number >= 0.0"),
        (dict(radius="wide"), "^radius must be"),
        (dict(group_field="_g"), "^group_field must be a plain field name"),
        (dict(representative_field="near_dup_group"), "^representative_field: 'near_dup_group' is also the group_field"),
        (dict(group_field="label"), "^group_field: field 'label' already exists and was not written by "
                                    "find_near_duplicates; choose another name, or pass overwrite=True"),
        (dict(num_threads=0), "^num_threads must be"),
        (dict(radiu=1.0), "^unknown parameter 'radiu'; did you mean 'radius'\\?"),
    ],
)
def test_bad_input_is_refused_with_one_sentence_naming_the_parameter(fo, op, make_dataset, kwargs, message):
    dataset = _with_copies(make_dataset, n=20, copies=2)
    dataset.set_values("label", [1] * 20)
    field = kwargs.pop("embeddings_field", "emb")
    with pytest.raises(ValueError, match=message):
        op(dataset, field, **kwargs)
    assert not dataset.has_field("near_dup_group") and dataset.list_runs() == []


def test_overwrite_replaces_a_user_field_and_too_few_samples_need_a_radius(fo, op, make_dataset):
    dataset = _with_copies(make_dataset, n=20, copies=2)
    dataset.set_values("label", [7] * 20)
    op(dataset, "emb", group_field="label", overwrite=True)
    assert sum(v is not None for v in dataset.values("label")) == 4
    with pytest.raises(ValueError, match="^radius: the automatic radius needs more than 10 samples"):
        op(dataset.limit(8), "emb", group_field="small", representative_field="small_keep")
    assert op(dataset.limit(8), "emb", radius=0.1, group_field="small", representative_field="small_keep")["groups"] == 0


def test_nothing_is_written_when_the_run_is_cancelled_or_fails_while_writing(fo, op, make_dataset, monkeypatch):
    from coreset_curation.bridge import commit as commit_module

    dataset = _with_copies(make_dataset)

    def cancel(fraction):
        if fraction > 0.5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        op(dataset, "emb", progress=cancel)
    assert not dataset.has_field("near_dup_group") and not dataset.has_field("near_dup_representative")
    assert dataset.list_runs() == []

    merged = []
    original = commit_module._merge_field

    def fail_on_second(db, target, write):
        if merged:
            raise RuntimeError("disk full")
        merged.append(write["name"])
        return original(db, target, write)

    monkeypatch.setattr(commit_module, "_merge_field", fail_on_second)
    with pytest.raises(RuntimeError, match="disk full"):
        op(dataset, "emb")
    dataset.reload()
    assert merged == ["near_dup_group"]  # the first field was written, then given up: removed
    assert not dataset.has_field("near_dup_group") and not dataset.has_field("near_dup_representative")
    assert dataset.list_runs() == []
    assert all(p.get("state") == "failed" for p in commit_module.pending_commits(dataset))  # given up, never retried


def test_the_app_form_offers_vector_fields_and_checks_the_output_fields(fo, make_dataset):
    from coreset_curation.operators.duplicates import DEFAULTS

    dataset = _with_copies(make_dataset, n=20, copies=2)
    dataset.set_values("label", [1] * 20)
    inputs, errors = form(URI, dataset.view())
    props = inputs["type"]["properties"]
    assert not errors
    assert props["embeddings_field"]["default"] == "emb" and props["radius"].get("default") is None
    assert "automatic radius" in props["radius"]["view"]["description"]
    assert props["group_field"]["default"] == DEFAULTS["group_field"] == "near_dup_group"
    assert props["representative_field"]["default"] == "near_dup_representative"
    inputs, errors = form(URI, dataset.view(), dict(group_field="label"))
    assert inputs["type"]["properties"]["group_field"]["invalid"]
    assert "already exists" in inputs["type"]["properties"]["group_field"]["error_message"]
    empty = make_dataset(3, field=None)
    inputs, _ = form(URI, empty.view())
    assert "no_embeddings" in inputs["type"]["properties"]


def test_the_panel_counts_the_duplicates_and_shows_them_side_by_side(fo, op, bridge, make_dataset):
    import importlib

    from harness import PanelDriver

    panel_module = importlib.import_module(bridge.__name__.rsplit(".", 1)[0] + ".panels.coreset_explorer")
    dataset = _with_copies(make_dataset)
    dataset.set_values("score", np.random.default_rng(0).random(60).tolist())
    driver = PanelDriver(panel_module, dataset.view())
    driver.event("on_load")
    driver.event("on_change_setting", path="selection", value="top")
    assert "not searched yet" in str(driver.component("duplicates"))
    assert "find_near_duplicates" in str(driver.component("duplicates"))  # the button opens the operator's form

    op(dataset, "emb")
    driver.event("on_refresh")
    line = str(driver.component("duplicates"))
    assert "10 extra copies in 10 groups" in line and "show_duplicates" in line
    driver.event("on_show_duplicates")
    request = [r for r in driver.executor._requests if r.operator_uri == "set_view"][0]
    shown = fo.DatasetView._build(dataset, request.params["view"])
    groups, representative = shown.values("near_dup_group"), shown.values("near_dup_representative")
    assert groups == sorted(groups) == [g for g in range(10) for _ in range(2)]  # each group's pair side by side
    assert representative == [True, False] * 10  # the representative first
    driver.view = shown  # the App shows the duplicates and echoes the view change: the panel keeps its base
    driver.event("on_change_view")
    assert "the whole dataset (60 samples)" in str(driver.component("sweeping"))


def test_a_delegated_run_executes_from_the_queue_and_stores_the_summary(fo, op, make_dataset):
    from fiftyone.operators.delegated import DelegatedOperationService

    dataset = _with_copies(make_dataset)
    queued = op(dataset, "emb", delegate=True)
    assert queued.delegated and not dataset.has_field("near_dup_group")
    service = DelegatedOperationService()
    service.execute_queued_operations(dataset_name=dataset.name)
    dataset.reload()
    _check_groups(dataset.values("near_dup_group"), dataset.values("near_dup_representative"))
    doc = service.get(queued.result["id"])
    assert doc.run_state == "completed", doc.run_state
    assert doc.result.result["copies"] == 10
