"""One resolver for the three entry points (issue 20, item 5), on real datasets in real MongoDB.

Each operator is reached three ways: the App form (``resolve_input`` then
``execute``, streamed), the SDK call ``foo.get_operator(uri)(dataset, ...)``
and ``foo.execute_operator(uri, ctx=dict(view=..., params=...))``. They take
the same names, the same defaults (the bridge function's signature), strict
booleans and checked list lengths, and a failed run is an error on each.
"""

import asyncio
import inspect
import re

import pytest

from conftest import PLUGIN_NAME
from harness import app_execute, form, labelled

ZCORE = f"{PLUGIN_NAME}/compute_zcore_scores"
MIMIC = f"{PLUGIN_NAME}/compute_mimic_scores"
ORDER = f"{PLUGIN_NAME}/compute_coreset_order"
SAVE = f"{PLUGIN_NAME}/save_coreset_view"
EMBED = f"{PLUGIN_NAME}/compute_embeddings"


@pytest.fixture(scope="module")
def foo(fo):
    import fiftyone.operators as operators

    return operators


@pytest.fixture(scope="module")
def ops(foo):
    return {uri: foo.get_operator(uri) for uri in (ZCORE, MIMIC, ORDER, SAVE, EMBED)}


def _execute(foo, uri, view, params):
    """``foo.execute_operator``'s ExecutionResult, without its raise_exceptions()."""
    from fiftyone.operators.executor import _parse_ctx, execute_or_delegate_operator

    request = _parse_ctx(ctx=dict(view=view, params=params))
    return asyncio.run(execute_or_delegate_operator(uri, request, exhaust=True))


def _signature_default(function, name):
    return inspect.signature(function).parameters[name].default


def _shown_error(messages):
    shown = [p for uri, p in messages if uri == "show_output"]
    assert len(shown) == 1, messages
    return shown[0]["results"]["error"]


# -- a failed run is an error on every path -----------------------------------------------


def test_execute_operator_reports_a_failed_run_as_an_error(fo, foo, make_dataset):
    from fiftyone.operators.executor import ExecutionError

    dataset = make_dataset(20)
    params = dict(embeddings_field="emb", n_samples="many")
    result = _execute(foo, ZCORE, dataset.view(), params)
    assert result.error is not None
    assert result.error_message == "n_samples must be an integer in [1, 1e+10] or 'auto', got 'many'"
    with pytest.raises(ExecutionError, match=r"n_samples must be an integer in \[1, 1e\+10\] or 'auto'"):
        foo.execute_operator(ZCORE, ctx=dict(view=dataset.view(), params=params))
    assert dataset.get_field("zcore_score") is None and not dataset.list_runs()


def test_the_app_still_shows_a_failed_run_as_one_sentence(fo, make_dataset):
    dataset = make_dataset(20)
    messages = app_execute(ZCORE, dataset.view(), dict(embeddings_field=["emb"], n_samples="many"))
    assert _shown_error(messages) == "n_samples must be an integer in [1, 1e+10] or 'auto', got 'many'"
    assert dataset.get_field("zcore_score") is None


def test_a_failed_delegated_run_is_marked_failed_with_the_sentence(fo, ops, make_dataset):
    from fiftyone.operators.delegated import DelegatedOperationService

    dataset = make_dataset(20)
    queued = ops[ZCORE](dataset, "emb", n_samples="many", delegate=True)
    service = DelegatedOperationService()
    service.execute_queued_operations(dataset_name=dataset.name)
    doc = service.get(queued.result["id"])
    assert doc.run_state == "failed", doc.run_state
    assert "n_samples must be an integer in [1, 1e+10] or 'auto', got 'many'" in str(doc.result.error)
    assert dataset.get_field("zcore_score") is None


# -- unknown names ------------------------------------------------------------------------


def test_a_misspelled_parameter_is_refused_with_the_nearest_name_on_every_path(fo, foo, ops, make_dataset):
    dataset = make_dataset(30)
    ops[ZCORE](dataset, "emb", n_samples=2000, seed=0)
    sentence = "unknown parameter 'prune_rat'; did you mean 'prune_rate'?"
    with pytest.raises(ValueError, match=r"^unknown parameter 'prune_rat'; did you mean 'prune_rate'\?$"):
        ops[SAVE](dataset, "zcore_score", view_name="core", prune_rat=0.9)
    params = dict(score_field="zcore_score", view_name="core", prune_rat=0.9)
    assert _execute(foo, SAVE, dataset.view(), params).error_message == sentence
    assert _shown_error(app_execute(SAVE, dataset.view(), params)) == sentence
    assert not dataset.has_saved_view("core")


def test_a_name_far_from_every_parameter_lists_them(fo, ops, make_dataset):
    dataset = make_dataset(20)
    with pytest.raises(ValueError, match=r"unknown parameter 'xyzzy'; this operator takes embeddings_field, "):
        ops[ZCORE](dataset, "emb", xyzzy=1)


def test_form_only_switches_are_ignored_but_not_on_other_operators(fo, foo, bridge, make_dataset):
    dataset = make_dataset(30)
    app_execute(ZCORE, dataset.view(), dict(embeddings_field=["emb"], n_samples=2000, advanced=True))
    assert dataset.count("zcore_score") == 30
    result = _execute(foo, SAVE, dataset.view(), dict(score_field="zcore_score", view_name="v", advanced=True))
    assert result.error_message == "unknown parameter 'advanced'; this operator takes " + ", ".join(
        n for n in inspect.signature(bridge.save_coreset_view).parameters if n not in ("collection", "progress"))


def test_a_missing_required_parameter_is_one_sentence(fo, foo, make_dataset):
    dataset = make_dataset(20)
    result = _execute(foo, ZCORE, dataset.view(), dict(n_samples=100))
    assert result.error_message == "missing parameter 'embeddings_field': pass a value for embeddings_field"


# -- booleans -------------------------------------------------------------------------------


def test_delegate_false_as_a_string_runs_now_and_queues_nothing(fo, ops, make_dataset):
    from fiftyone.operators.delegated import DelegatedOperationService

    dataset = make_dataset(30)
    summary = ops[ZCORE](dataset, "emb", n_samples=2000, seed=0, delegate="false")
    assert summary["scored"] == 30 and dataset.count("zcore_score") == 30
    assert not DelegatedOperationService().list_operations(dataset_name=dataset.name)


def test_a_boolean_that_is_not_one_is_refused(fo, foo, ops, make_dataset):
    dataset = make_dataset(30)
    with pytest.raises(ValueError, match=r"^delegate must be true or false, got 'later'$"):
        ops[ZCORE](dataset, "emb", delegate="later")
    with pytest.raises(ValueError, match=r"^random_init must be true or false, got 'sometimes'$"):
        ops[ZCORE](dataset, "emb", random_init="sometimes")
    params = dict(embeddings_field="emb", n_samples=2000, random_init="sometimes")
    assert _execute(foo, ZCORE, dataset.view(), params).error_message == (
        "random_init must be true or false, got 'sometimes'")
    assert dataset.get_field("zcore_score") is None


def test_overwrite_false_as_a_string_does_not_overwrite_a_user_field(fo, foo, ops, make_dataset):
    from fiftyone.operators.executor import ExecutionError

    dataset = make_dataset(30)
    dataset.set_values("mine", [1.0] * 30)
    with pytest.raises(ValueError, match="pass overwrite=True"):
        ops[ZCORE](dataset, "emb", score_field="mine", overwrite="false")
    with pytest.raises(ExecutionError, match="pass overwrite=True"):
        foo.execute_operator(ZCORE, ctx=dict(view=dataset.view(), params=dict(
            embeddings_field="emb", score_field="mine", overwrite="false")))
    assert dataset.values("mine") == [1.0] * 30


# -- list lengths ---------------------------------------------------------------------------


def test_extra_embeddings_field_names_are_refused_not_dropped(fo, foo, ops, make_dataset):
    from fiftyone.operators.executor import ExecutionError

    dataset = make_dataset(10)
    sentence = "embeddings_field: pass one field per model: model has 2, embeddings_field has 3 (['a', 'b', 'c'])"
    with pytest.raises(ValueError) as error:
        ops[EMBED](dataset, model=["open-clip-torch", "resnet50-imagenet-torch"], embeddings_field=["a", "b", "c"])
    assert str(error.value) == sentence
    params = dict(model=["open-clip-torch", "resnet50-imagenet-torch"], embeddings_field=["a", "b", "c"])
    with pytest.raises(ExecutionError, match=re.escape(sentence)):  # the form marks it invalid
        foo.execute_operator(EMBED, ctx=dict(view=dataset.view(), params=params))
    with pytest.raises(ValueError, match="model has 1, embeddings_field has 2"):
        ops[EMBED](dataset, model="open-clip-torch", embeddings_field=["a", "b"])
    assert not {"a", "b", "c"} & set(dataset.get_field_schema())


def test_a_scalar_where_a_list_is_expected_is_one_item_or_a_clear_error(fo, ops, make_dataset):
    dataset = make_dataset(30)
    assert ops[ZCORE](dataset, "emb", n_samples=2000, seed=0)["scored"] == 30  # a name for a list of names
    for call in (lambda: ops[ZCORE](dataset, 5), lambda: ops[EMBED](dataset, model=5),
                 lambda: ops[EMBED](dataset, embeddings_field=5)):
        with pytest.raises(ValueError) as error:
            call()
        assert "not iterable" not in str(error.value) and len(str(error.value).split(". ")) == 1


# -- two run keys, one field --------------------------------------------------------------


def test_two_run_keys_cannot_claim_one_output_field(fo, ops, make_dataset):
    dataset = labelled(make_dataset)
    ops[MIMIC](dataset, "emb", "ground_truth", trusted_tag="trusted", score_field="s", run_key="first", seed=0)
    with pytest.raises(ValueError) as error:
        ops[MIMIC](dataset, "emb", "ground_truth", trusted_tag="trusted", score_field="s", run_key="second")
    assert str(error.value) == ("score_field: 's' holds the output of run 'first', not of run_key 'second'; "
                                "choose another score_field, or pass run_key='first' to replace that run")
    assert "second" not in dataset.list_runs()
    ops[MIMIC](dataset, "emb", "ground_truth", trusted_tag="trusted", score_field="s", run_key="first", seed=1)
    ops[ZCORE](dataset, "emb", n_samples=2000, score_field="z", seed=0)  # run key: the field
    with pytest.raises(ValueError, match="'z' holds the output of run 'z', not of run_key 'other'"):
        ops[ZCORE](dataset, "emb", n_samples=2000, score_field="z", run_key="other")
    assert sorted(dataset.list_runs()) == ["first", "z"]


# -- the same defaults on every path --------------------------------------------------------


@pytest.mark.parametrize("uri,name", [(MIMIC, "issue_tag"), (MIMIC, "trusted_tag"), (SAVE, "selection"),
                                      (ORDER, "selection"), (SAVE, "prune_rate")])
def test_the_form_default_is_the_bridge_default(fo, foo, bridge, make_dataset, uri, name):
    dataset = labelled(make_dataset)
    foo.get_operator(ZCORE)(dataset, "emb", n_samples=2000, seed=0)
    props = form(uri, dataset.view(), dict(reference="trusted"))[0]["type"]["properties"]
    default = _signature_default(getattr(bridge, uri.rsplit("/", 1)[1]), name)
    if name == "prune_rate":  # the App's unit is the percent; the SDK's, the fraction
        name, default = "prune_percent", 100 * default
    assert props[name].get("default") == default


def test_the_defaults_keep_the_same_samples_from_python_execute_operator_and_the_app(fo, foo, ops, make_dataset):
    dataset = make_dataset(100)
    ops[ZCORE](dataset, "emb", n_samples=5000, seed=0)
    ops[SAVE](dataset, "zcore_score", view_name="sdk")  # prune_rate and selection: the defaults
    foo.execute_operator(SAVE, ctx=dict(view=dataset.view(), params=dict(score_field="zcore_score", view_name="py")))
    props = form(SAVE, dataset.view())[0]["type"]["properties"]
    form_params = {k: p["default"] for k, p in props.items() if p.get("default") is not None}
    app_execute(SAVE, dataset.view(), dict(form_params, view_name="app"))
    ids = [set(dataset.load_saved_view(v).values("id")) for v in ("sdk", "py", "app")]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 50
    assert {dataset.get_run_info(f"coreset_view_{v}").config.selection for v in ("sdk", "py", "app")} == {"prototype"}


def test_mimic_tags_nothing_and_picks_no_trusted_tag_unless_asked_on_every_path(fo, foo, ops, make_dataset):
    from fiftyone.operators.executor import ExecutionError

    dataset = labelled(make_dataset)  # 15 samples carry the tag "trusted"
    with pytest.raises(ValueError, match="reference='trusted' needs trusted_tag"):
        ops[MIMIC](dataset, "emb", "ground_truth")
    params = dict(embeddings_field="emb", label_field="ground_truth")
    with pytest.raises(ExecutionError, match="trusted_tag: pick the tag of samples whose labels you checked"):
        foo.execute_operator(MIMIC, ctx=dict(view=dataset.view(), params=params))  # the form's check
    errors = form(MIMIC, dataset.view())[1]  # the App asks for it too
    assert [e["path"].lstrip(".") for e in errors] == ["trusted_tag"]
    before = dataset.count_sample_tags()
    ops[MIMIC](dataset, "emb", "ground_truth", trusted_tag="trusted", seed=0)
    foo.execute_operator(MIMIC, ctx=dict(view=dataset.view(), params=dict(params, trusted_tag="trusted",
                                                                              score_field="m2")))
    assert dataset.count("mimic_score") == dataset.count("m2") == 60
    assert dataset.count_sample_tags() == before == {"trusted": 15}
