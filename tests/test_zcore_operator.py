"""The ZCore operator on real FiftyOne datasets in real MongoDB: SDK, App and delegated paths."""

import importlib

import numpy as np
import pytest
import yaml

from conftest import PLUGIN_NAME, ROOT
from harness import app_execute, form

ZCORE = f"{PLUGIN_NAME}/compute_zcore_scores"


@pytest.fixture(scope="module")
def foo(fo):
    import fiftyone.operators as operators

    return operators


@pytest.fixture(scope="module")
def zcore(foo):
    return foo.get_operator(ZCORE)


def test_every_operator_and_panel_is_listed_in_the_manifest(fo, foo, bridge):
    manifest = yaml.safe_load((ROOT / "fiftyone.yml").read_text())
    listed = set(manifest["operators"]) | set(manifest.get("panels") or [])
    package = bridge.__name__.rsplit(".", 1)[0]
    classes = importlib.import_module(package + ".operators").OPERATORS
    classes = classes + importlib.import_module(package + ".panels").PANELS
    defined = {cls().config.name for cls in classes}
    loaded = {op.config.name for op in foo.list_operators() if op.plugin_name == PLUGIN_NAME}
    assert listed == defined == loaded


def test_sdk_call_with_only_the_embeddings_field_runs_until_reliable_with_the_published_settings(fo, zcore, make_dataset):
    dataset = make_dataset(60)
    result = zcore(dataset, "emb")
    scores = dataset.values("zcore_score")
    assert all(s is not None and 0.0 <= s <= 1.0 for s in scores)
    assert min(scores) == 0.0 and max(scores) == 1.0
    assert result["scored"] == 60 and result["skipped"] == 0
    assert -1.0 <= result["reliability"] <= 1.0 and result["reliability_note"]
    info = dataset.get_run_info("zcore_score")
    assert type(info.config).__name__ == "ZCoreRunConfig"
    config = info.config
    # the converging run by default (until reliable, within a time budget), the paper's score settings
    assert config.n_samples == "auto" and config.target_reliability == 0.97 and config.time_budget == 300
    assert config.redundancy_nn == 1000 and config.sample_dim == 2
    assert result["stopped_by"] in ("target_reliability", "time_budget", "max_passes")
    assert config.redundancy_exp == 4 and config.random_init is True
    assert config.embeddings_fields == ["emb"] and config.seed == result["seed"]
    assert dataset.load_run_results("zcore_score").summary["scored"] == 60


def test_the_app_form_defaults_are_the_sdk_defaults(fo, zcore, make_dataset):
    from coreset_curation.operators.zcore import DEFAULTS

    dataset = make_dataset(12)
    inputs, errors = form(ZCORE, dataset.view(), dict(advanced=True))
    props = inputs["type"]["properties"]
    assert not errors
    assert props["score_field"]["default"] == DEFAULTS["score_field"] == "zcore_score"
    assert props["n_samples"]["default"] == str(DEFAULTS["n_samples"]) == "auto"
    assert props["time_budget"]["default"] == DEFAULTS["time_budget"] == 300
    assert props["target_reliability"]["default"] == DEFAULTS["target_reliability"] == 0.97
    assert props["redundancy_nn"]["default"] == 1000 and props["sample_dim"]["default"] == 2
    assert props["standardize"]["default"] == "auto"


def test_same_seed_same_scores(fo, zcore, make_dataset):
    dataset = make_dataset(40)
    zcore(dataset, "emb", seed=3, n_samples=5000, score_field="a")
    zcore(dataset, "emb", seed=np.int64(3), n_samples="5000", score_field="b")
    assert dataset.values("a") == dataset.values("b")


def test_several_fields_are_concatenated_and_standardized(fo, zcore, bridge, make_dataset):
    dataset = make_dataset(50, dim=4)
    rng = np.random.default_rng(1)
    dataset.set_values("emb2", list(rng.normal(size=(50, 6)).astype(np.float32) * 1000))
    table = bridge.read_vectors(dataset, ["emb", "emb2"], standardize=True)
    assert table.vectors.shape == (50, 10)
    assert abs(float(np.sqrt(np.mean(table.vectors[:, 4:] ** 2))) - 1.0) < 1e-3
    result = zcore(dataset, ["emb", "emb2"], n_samples=4000)
    assert result["scored"] == 50
    config = dataset.get_run_info("zcore_score").config
    assert config.embeddings_fields == ["emb", "emb2"] and config.standardized is True


def test_a_run_on_a_view_writes_that_view_and_records_it(fo, zcore, make_dataset):
    dataset = make_dataset(50)
    zcore(dataset.limit(3), "emb", n_samples=300)
    assert sum(v is not None for v in dataset.values("zcore_score")) == 3
    assert len(dataset.load_run_view("zcore_score")) == 3


def test_samples_without_embeddings_are_skipped_and_counted(fo, zcore, make_dataset):
    dataset = make_dataset(30, missing={2, 5, 7})
    result = zcore(dataset, "emb", n_samples=3000)
    assert result["skipped"] == 3 and result["scored"] == 27
    values = dataset.values("zcore_score")
    assert [i for i, v in enumerate(values) if v is None] == [2, 5, 7]


def test_the_app_run_streams_progress_shows_the_result_and_reloads(fo, make_dataset):
    dataset = make_dataset(400)
    messages = app_execute(ZCORE, dataset.view(), dict(embeddings_field=["emb"], score_field="zcore_score",
                                                       n_samples="20000", advanced=True))
    uris = [uri for uri, _ in messages]
    progress = [p["progress"] for uri, p in messages if uri == "set_progress" and "progress" in p]
    assert progress[0] == 0.0 and progress[-1] == 1.0 and progress == sorted(progress)
    shown = [p for uri, p in messages if uri == "show_output"]
    assert len(shown) == 1 and shown[0]["results"]["scored"] == 400
    assert "reliability" in shown[0]["outputs"]["type"]["properties"]
    assert "reload_dataset" in uris and uris.index("reload_dataset") > uris.index("show_output")
    assert dataset.count("zcore_score") == 400


def test_an_app_run_with_bad_input_shows_one_sentence_and_writes_nothing(fo, make_dataset):
    dataset = make_dataset(20)
    messages = app_execute(ZCORE, dataset.view(), dict(embeddings_field=["emb"], n_samples="many"))
    shown = [p for uri, p in messages if uri == "show_output"]
    assert shown and shown[0]["results"]["error"].startswith("n_samples must be an integer in [1, 1e+10] or 'auto'")
    assert "reload_dataset" not in [uri for uri, _ in messages]
    assert dataset.get_field("zcore_score") is None and not dataset.list_runs()


def test_execute_operator_from_python_still_runs(fo, foo, make_dataset):
    dataset = make_dataset(30)
    foo.execute_operator(ZCORE, ctx=dict(view=dataset.view(), params=dict(embeddings_field="emb", n_samples=2000)))
    assert dataset.count("zcore_score") == 30


def test_delegated_run_executes_from_the_queue_and_stores_the_summary(fo, zcore, make_dataset):
    from fiftyone.operators.delegated import DelegatedOperationService

    dataset = make_dataset(40)
    queued = zcore(dataset, "emb", n_samples=20_000, delegate=True)
    assert queued.delegated
    assert dataset.get_field("zcore_score") is None
    service = DelegatedOperationService()
    service.execute_queued_operations(dataset_name=dataset.name)
    dataset.reload()
    assert all(v is not None for v in dataset.values("zcore_score"))
    doc = service.get(queued.result["id"])
    assert doc.run_state == "completed", doc.run_state
    assert doc.result.result["scored"] == 40


def test_the_form_blocks_execution_when_there_is_nothing_to_score(fo, make_dataset):
    dataset = make_dataset(10, field=None)
    inputs, errors = form(ZCORE, dataset.view())
    assert errors and "Compute embeddings" in errors[0]["error_message"]


def test_the_form_refuses_a_taken_score_field_up_front(fo, make_dataset):
    dataset = make_dataset(10)
    dataset.set_values("confidence", [0.5] * 10)
    _, errors = form(ZCORE, dataset.view(), dict(embeddings_field=["emb"], score_field="confidence"))
    assert errors and "was not written by compute_zcore_scores" in errors[0]["error_message"]
    _, errors = form(ZCORE, dataset.view(), dict(embeddings_field=["emb"], score_field="confidence", overwrite=True))
    assert not errors


def test_a_low_reliability_run_warns_and_suggests_auto(fo, zcore, make_dataset):
    dataset = make_dataset(2000, dim=16)
    result = zcore(dataset, "emb", n_samples=1000, seed=0)
    assert result["reliability"] is None or result["reliability"] < 0.5
    assert "n_samples='auto'" in result["warning"]
    assert dataset.load_run_results("zcore_score").summary["warning"] == result["warning"]


@pytest.mark.parametrize(
    "setup,params,message",
    [
        ("empty", dict(embeddings_field="emb"), "empty"),
        ("nan", dict(embeddings_field="emb"), "NaN or inf"),
        ("ragged", dict(embeddings_field="emb"), "different lengths"),
        ("plain", dict(embeddings_field="filepath"), "not a vector field"),
        ("plain", dict(embeddings_field="nope"), "does not exist"),
        ("hidden", dict(embeddings_field="emb"), "this view excludes it"),
        ("two", dict(embeddings_field="emb"), "at least 3 samples"),
        ("plain", dict(embeddings_field="emb", score_field="filepath"), "plain field name"),
        ("plain", dict(embeddings_field="emb", score_field="sp ace"), "plain field name"),
        ("plain", dict(embeddings_field="emb", n_samples=-5), "n_samples"),
        ("plain", dict(embeddings_field="emb", n_samples=float("inf")), "n_samples"),
        ("plain", dict(embeddings_field="emb", redundancy_exp="x"), "redundancy_exp"),
        ("plain", dict(embeddings_field="emb", seed=2**63), "seed must be an integer in"),
        ("plain", dict(embeddings_field="emb", standardize="maybe"), "standardize must be true or false"),
    ],
)
def test_bad_input_errors_and_never_writes_a_field(fo, zcore, make_dataset, setup, params, message):
    dataset = make_dataset(2 if setup == "two" else 12)
    view = dataset.view()
    if setup == "empty":
        view = dataset.match({"filepath": "none"})
    if setup == "hidden":
        view = dataset.select_fields()
    if setup == "nan":
        sample = dataset.first()
        sample["emb"] = np.array([np.nan] * 8, dtype=np.float32)
        sample.save()
    if setup == "ragged":
        sample = dataset.last()
        sample["emb"] = np.zeros(5, dtype=np.float32)
        sample.save()
    params = dict(params)
    field = params.pop("embeddings_field")
    with pytest.raises(ValueError, match=message):
        zcore(view, field, **params)
    assert dataset.get_field("zcore_score") is None and dataset.get_field("sp ace") is None
    assert not dataset.list_runs()
