"""Coreset Explorer panel driven through a real ExecutionContext (no App), on real datasets."""

import importlib
import math

import numpy as np
import pytest

from conftest import PLUGIN_NAME
from harness import PanelDriver


@pytest.fixture(scope="module")
def panel_module(bridge):
    return importlib.import_module(bridge.__name__.rsplit(".", 1)[0] + ".panels.coreset_explorer")


@pytest.fixture(autouse=True)
def python_slider(monkeypatch):
    """These tests read the Python slider and plots; the JS slider's side: test_panel_slider.py."""
    monkeypatch.setenv("CORESET_JS_SLIDER", "0")


@pytest.fixture(scope="module")
def orders_module(panel_module):
    return importlib.import_module(panel_module.__name__.rsplit(".", 1)[0] + ".orders")


@pytest.fixture(scope="module")
def ops(fo):
    import fiftyone.operators as foo

    return {name: foo.get_operator(f"{PLUGIN_NAME}/{name}") for name in (
        "compute_zcore_scores", "compute_mimic_scores", "save_coreset_view", "compute_coreset_order")}


def _scored_dataset(make_dataset, n=60, labels=True, classes=("0", "1", "2")):
    labels_list = [classes[i % len(classes)] for i in range(n)] if labels else None
    dataset = make_dataset(n, labels=labels_list)
    dataset.set_values("score", np.random.default_rng(0).random(n).tolist())
    return dataset


def _open(panel_module, view, **settings):
    return PanelDriver.opened(panel_module, view, **settings)


def _summary(driver):
    return str(driver.component("summary"))


def test_load_picks_the_fields_and_renders_every_part(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset)
    driver = _open(panel_module, dataset.view(), selection="top")
    assert driver.state["score_field"] == "score"
    assert driver.state["prune_rate"] == 50 and driver.state["keep"] == "highest"
    assert driver.state["label_field"] == "ground_truth"
    for name in ("score_field", "rates", "histogram", "classes", "summary", "saving", "show", "tagging", "sweeping"):
        assert driver.component(name) is not None, name
    assert "Kept 30" in _summary(driver) and "score threshold" in _summary(driver)
    assert "the whole dataset (60 samples)" in str(driver.component("sweeping"))


def test_the_default_score_is_the_latest_zcore_field_and_the_default_selection_is_shared(
    panel_module, bridge, ops, make_dataset
):
    from coreset_curation.operators.coreset_view import SAVE_DEFAULTS

    dataset = _scored_dataset(make_dataset, 60)
    dataset.take(15, seed=0).tag_samples("trusted")
    ops["compute_zcore_scores"](dataset, "emb", n_samples=2000, seed=0)
    ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted")
    driver = _open(panel_module, dataset.view())
    assert driver.state["score_field"] == "zcore_score"  # newer mimic scores are not the default
    assert bridge.score_fields(dataset)[-1] == "mimic_score"
    assert driver.state["selection"] == bridge.DEFAULT_SELECTION
    assert bridge.resolve_selection(dataset, "zcore_score", SAVE_DEFAULTS["selection"])[0] == driver.state["selection"]
    assert driver.state["embeddings_field"] == "emb"


@pytest.mark.parametrize("rate", [0, 30, 70, 99])
def test_slider_moves_update_counts_and_histogram(panel_module, make_dataset, rate):
    dataset = _scored_dataset(make_dataset, 57)
    driver = _open(panel_module, dataset.view(), selection="top", prune_rate=rate)
    kept = 57 - math.floor(rate / 100 * 57)
    assert f"Kept {kept}" in _summary(driver)
    bars = driver.output["type"]["properties"]["histogram"]["view"]["data"]
    assert sum(bars[0]["y"]) == kept and sum(bars[1]["y"]) == 57 - kept
    assert driver.state["render_ms"] < 1000


def test_a_typed_rate_moves_the_slider(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 40)
    driver = _open(panel_module, dataset.view(), selection="top", rate_typed="75")
    assert driver.state["prune_rate"] == 75 and "Kept 10" in _summary(driver)


def test_the_threshold_and_cut_appear_only_for_score_order(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 40)
    driver = _open(panel_module, dataset.view(), selection="prototype", embeddings_field="emb")
    assert "score threshold" not in _summary(driver)
    histogram = driver.output["type"]["properties"]["histogram"]["view"]
    assert histogram["layout"]["shapes"] == [] and "cut" not in histogram["layout"]["title"]["text"]
    # the note is core.order.order_uses: what the order really uses
    assert "uses: embeddings only (the score just breaks ties" in str(driver.component("selection_note"))


def test_stratify_and_keep_lowest(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 60)
    driver = _open(panel_module, dataset.view(), selection="top", stratify=True, keep="lowest", prune_rate=50)
    bars = driver.output["type"]["properties"]["classes"]["view"]["data"]
    assert bars[1]["y"] == [10, 10, 10]


def test_every_class_gets_a_bar_even_with_non_numeric_names(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 30, classes=("7", "photo", "12"))
    driver = _open(panel_module, dataset.view(), selection="top")
    classes = driver.output["type"]["properties"]["classes"]["view"]
    assert sorted(classes["data"][0]["x"]) == ["12", "7", "photo"]
    assert classes["layout"]["xaxis"]["type"] == "category"


def _set_view(driver):
    return [r for r in driver.executor._requests if r.operator_uri == "set_view"][0].params["view"]


def test_show_kept_uses_a_small_match_and_does_not_rebase_the_panel(fo, panel_module, bridge, make_dataset):
    dataset = _scored_dataset(make_dataset, 20)
    bridge.compute_coreset_order(dataset, "score", selection="top")  # a stored order: shown by a match on it
    driver = _open(panel_module, dataset.view(), selection="top", prune_rate=70)
    driver.event("on_show_kept")
    stages = str(_set_view(driver))
    assert "Match" in stages and "Select" not in stages and len(stages) < 2000
    shown = fo.DatasetView._build(dataset, _set_view(driver))
    assert len(shown) == 6
    driver.view = shown  # the App now shows the kept samples and echoes the view change
    driver.event("on_change_view")
    assert "Kept 6" in _summary(driver) and "of 20 scored" in _summary(driver)
    driver.event("on_show_pruned")
    assert len(fo.DatasetView._build(dataset, _set_view(driver))) == 14


def test_show_kept_of_an_order_in_memory_selects_the_smaller_side_and_follows_the_slider(fo, panel_module,
                                                                                         make_dataset):
    dataset = _scored_dataset(make_dataset, 20)
    driver = _open(panel_module, dataset.view(), selection="top", prune_rate=70)
    driver.event("on_show_kept")
    stages = str(_set_view(driver))
    assert "Select" in stages and stages.count("'6b") + stages.count("', '") <= 12  # 6 ids, not 20
    shown = fo.DatasetView._build(dataset, _set_view(driver))
    assert len(shown) == 6 and set(shown.values("id")) == set(dataset.sort_by("score", reverse=True).limit(6)
                                                               .values("id"))
    driver.view = shown
    driver.event("on_change_setting", path="prune_rate", value=40)  # the grid follows the rate
    assert len(fo.DatasetView._build(dataset, _set_view(driver))) == 12
    assert "Kept 12" in _summary(driver) and "of 20 scored" in _summary(driver)
    driver.view = fo.DatasetView._build(dataset, _set_view(driver))
    driver.event("on_change_setting", path="keep", value="lowest")  # and the order
    shown = fo.DatasetView._build(dataset, _set_view(driver))
    assert set(shown.values("id")) == set(dataset.sort_by("score").limit(12).values("id"))
    assert not [f for f in dataset.get_field_schema() if f.endswith("_rank")]


def test_a_view_change_by_the_user_rebases_and_says_so(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 40)
    driver = _open(panel_module, dataset.view(), selection="top")
    assert "of 40 scored" in _summary(driver)
    driver.view = dataset.limit(20)
    driver.event("on_change_view")
    assert "of 20 scored" in _summary(driver)
    assert "now sweeping the view it was opened on (20 samples" in str(driver.component("message")).lower()
    dataset.set_values("score", [None] * 10 + [0.5] * 30)
    driver.view = dataset.view()
    driver.event("on_change_dataset")
    assert "of 30 scored" in _summary(driver)


def test_tag_kept_is_a_run_that_leaves_the_users_tags(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 20)
    lowest = dataset.sort_by("score").limit(2)
    lowest.tag_samples("keepme")  # pruned samples the user tagged by hand
    driver = _open(panel_module, dataset.view(), selection="top", tag="keepme")
    driver.event("on_tag_kept")
    assert dataset.match_tags("keepme").count() == 12
    assert "10 did not have it" in driver.state["message"] and "delete_run('coreset_tag_keepme')" in driver.state["message"]
    dataset.delete_run("coreset_tag_keepme")
    assert set(dataset.match_tags("keepme").values("id")) == set(lowest.values("id"))


def test_a_stale_saved_coreset_view_is_reported(panel_module, ops, make_dataset):
    dataset = _scored_dataset(make_dataset, 20)
    ops["save_coreset_view"](dataset, "score", 0.5, "half", selection="top")
    driver = _open(panel_module, dataset.view(), selection="top")
    assert driver.component("stale_warning") is None
    dataset.delete_samples(dataset.load_saved_view("half").limit(4))
    driver.event("on_refresh")
    assert "'half' (saved with 10, now 6)" in str(driver.component("stale_warning"))


def test_a_slider_move_does_not_recheck_the_order(panel_module, bridge, monkeypatch, make_dataset):
    dataset = _scored_dataset(make_dataset, 20)
    driver = _open(panel_module, dataset.view(), selection="top")
    checks = []
    original = bridge.find_order
    monkeypatch.setattr(panel_module.bridge, "find_order", lambda *a, **k: checks.append(1) or original(*a, **k))
    for rate in (10, 20, 30):
        driver.event("on_change_setting", path="prune_rate", value=rate)
    assert "Kept 14" in _summary(driver) and not checks


@pytest.mark.parametrize("selection", ["top", "prototype"])
def test_panel_saves_the_same_coreset_as_the_operator(fo, panel_module, ops, make_dataset, selection):
    dataset = _scored_dataset(make_dataset, 45)
    driver = _open(panel_module, dataset.view(), prune_rate=70, stratify=True, selection=selection,
                   embeddings_field="emb", view_name="from-panel")
    driver.event("on_save")
    assert dataset.has_saved_view("from-panel"), driver.state.get("message")
    ops["save_coreset_view"](dataset, "score", 0.7, "from-op", stratify_by="ground_truth", selection=selection,
                             embeddings_field="emb")
    panel_ids = sorted(dataset.load_saved_view("from-panel").values("id"))
    assert panel_ids == sorted(dataset.load_saved_view("from-op").values("id"))
    assert len(panel_ids) == 45 - math.floor(0.7 * 45)


def test_saving_over_a_name_asks_first_and_never_replaces_a_users_view(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 20)
    dataset.save_view("mine", dataset.limit(3))
    driver = _open(panel_module, dataset.view(), selection="top", view_name="core")
    driver.event("on_save")
    assert len(dataset.load_saved_view("core")) == 10
    driver.event("on_change_setting", path="prune_rate", value=80)
    driver.event("on_change_setting", path="view_name", value="core")
    driver.event("on_save")
    assert driver.state["confirm_overwrite"] is True and "exists" in driver.state["message"]
    assert "Overwrite" in str(driver.component("saving"))
    driver.event("on_save")
    assert len(dataset.load_saved_view("core")) == 4
    driver.event("on_change_setting", path="view_name", value="mine")
    driver.event("on_save")
    driver.event("on_save")
    assert len(dataset.load_saved_view("mine")) == 3 and "did not create" in driver.state["message"]


def test_no_numeric_field_offers_to_compute_scores(panel_module, make_dataset):
    dataset = make_dataset(10)
    driver = _open(panel_module, dataset.view())
    button = driver.component("open_zcore")
    assert button["view"]["operator"] == f"{PLUGIN_NAME}/compute_zcore_scores"
    assert "No score field" in str(driver.component("empty"))


def test_missing_scores_are_ignored_and_counted(panel_module, make_dataset):
    dataset = make_dataset(10)
    dataset.set_values("score", [None, None, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    driver = _open(panel_module, dataset.view(), selection="top")
    assert "Kept 4" in _summary(driver) and "2 without a score" in _summary(driver)


def test_a_large_collection_without_an_order_offers_to_compute_it(panel_module, orders_module, bridge, make_dataset,
                                                                  monkeypatch):
    monkeypatch.setattr(orders_module, "AUTO_ORDER_LIMIT", 10)
    dataset = _scored_dataset(make_dataset, 40)
    driver = _open(panel_module, dataset.view(), selection="top")
    button = driver.component("compute_order")
    assert button["view"]["operator"] == f"{PLUGIN_NAME}/compute_coreset_order"
    assert button["view"]["params"]["score_field"] == "score"
    assert driver.component("summary") is None
    bridge.compute_coreset_order(dataset, "score", selection="top")
    driver.event("on_refresh")
    assert "Kept 20" in _summary(driver)


def test_the_map_shows_a_spinner_first_then_the_points(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 80)
    driver = _open(panel_module, dataset.view(), selection="top", show_map=True)
    assert driver.component("map_loading") is not None
    timer = driver.component("map_timer")["view"]
    assert timer["on_timeout"].endswith("#on_compute_map")
    driver.event("on_compute_map")
    traces = driver.output["type"]["properties"]["map"]["view"]["data"]
    assert [t["name"] for t in traces] == ["pruned", "kept"]
    assert len(traces[1]["x"]) == 40 and len(traces[0]["x"]) == 40
    # a click on a point shows that sample's image and where it stands, under the map
    pruned_id = traces[0]["ids"][3]
    # (the App's click event: the point's id, index and trace at the top level)
    driver.event("on_map_clicked", event="onClick", id=pruned_id, idx=3, trace="pruned", x=None, y=None)
    image = driver.component("map_preview_image")
    sample = dataset[pruned_id]
    assert image["default"] == "/media?filepath=" + sample.filepath.replace("/", "%2F")
    text = str(driver.component("map_preview_text"))
    assert f"sample `{pruned_id}` · pruned at 50 % (rank " in text and f"score {sample.score:.4f}" in text
    kept_id = traces[1]["ids"][0]
    driver.event("on_map_clicked", event="onClick", id=kept_id, idx=0, trace="kept", x=None, y=None)
    assert f"sample `{kept_id}` · kept at 50 %" in str(driver.component("map_preview_text"))


def test_the_accuracy_curve_draws_its_traces(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 80)
    driver = _open(panel_module, dataset.view(), selection="top")
    driver.event("on_compute_curve")  # the button: a spinner first, whose timer computes the curve
    assert driver.component("curve_loading") is not None and "accuracy_plot" not in driver.output["type"]["properties"]
    timer = driver.component("curve_timer")["view"]
    assert timer["on_timeout"].endswith("#on_curve_now")
    driver.event("on_curve_now")
    assert driver.component("curve_loading") is None
    plot = driver.output["type"]["properties"]["accuracy_plot"]["view"]
    assert plot["data"][0]["x"] == [0, 10, 30, 50, 70, 90]
    assert all(a is None or 0 <= a <= 1 for a in plot["data"][0]["y"])
    assert "accuracy_plot" not in driver.state  # no state key shadows the plot's data


def test_plots_do_not_zoom_on_the_mouse_wheel(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 20)
    driver = _open(panel_module, dataset.view(), selection="top")
    assert driver.output["type"]["properties"]["histogram"]["view"]["config"]["scrollZoom"] is False


def test_after_a_save_and_re_scoring_the_panel_orders_into_a_new_field(panel_module, ops, make_dataset):
    dataset = _scored_dataset(make_dataset, 60)
    ops["compute_zcore_scores"](dataset, "emb", n_samples=2000, seed=0)
    driver = _open(panel_module, dataset.view(), score_field="zcore_score", view_name="frozen-one")
    driver.event("on_save")
    frozen = set(dataset.load_saved_view("frozen-one").values("id"))
    ops["compute_zcore_scores"](dataset, "emb", n_samples=2000, seed=1)  # the order is now outdated
    driver.event("on_refresh")
    assert driver.component("error") is None, driver.component("error")
    assert "Kept 30" in _summary(driver)
    assert not dataset.has_field("zcore_score_prototype_rank_2")  # browsing the new order writes nothing
    driver.event("on_change_setting", path="view_name", value="second")
    driver.event("on_save")
    assert dataset.has_field("zcore_score_prototype_rank_2")  # the frozen field is kept as it was
    assert set(dataset.load_saved_view("frozen-one").values("id")) == frozen


# -- one unit, messages where they belong ------------------------------------------------


def _after(driver, name):
    """The name of the component right after ``name`` in the panel's layout."""
    names = list(driver.output["type"]["properties"])
    return names[names.index(name) + 1]


def test_a_typed_rate_is_a_percent_clamped_visibly(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 200)
    driver = _open(panel_module, dataset.view(), selection="top", rate_typed="150")
    assert driver.state["prune_rate"] == 99 and "Kept 2**" in _summary(driver)
    assert "above 99 %" in str(driver.component("message")) and _after(driver, "rates") == "message"
    # the App reports the value each re-created control shows: nothing changes, the message stays
    for path, value in (("rates.keep_count_1", "2"), ("rates.prune_rate_1", 99)):
        assert driver.event("on_change_setting", path=path, value=value) is None and driver.output is None
    assert driver.state["prune_rate"] == 99 and "above 99 %" in driver.state["message"]
    driver.event("on_change_setting", path="rates.rate_typed_1", value="0.7")  # 0.7 %, not 70 %
    assert driver.state["prune_rate"] == 0.7 and "Kept 199**" in _summary(driver) and "at 0.7 %" in _summary(driver)
    assert driver.component("message") is None  # a valid rate clears the clamp message
    assert driver.event("on_change_setting", path="rates.prune_rate_2", value=1) is None  # 0.7 % drawn at 1
    assert driver.state["prune_rate"] == 0.7
    driver.event("on_change_setting", path="rates.rate_typed_2", value="lots")
    assert driver.state["prune_rate"] == 0.7 and "enter a number" in str(driver.component("message"))


def test_keep_n_sets_the_rate_that_keeps_exactly_n(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 57)
    driver = _open(panel_module, dataset.view(), selection="top", keep_count="13")
    assert "Kept 13**" in _summary(driver) and driver.state["prune_rate"] == pytest.approx(100 * 44 / 57)
    driver.event("on_change_setting", path="rates.keep_count_1", value="500")
    assert "Kept 57**" in _summary(driver) and "only 57 samples are scored" in str(driver.component("message"))


def test_an_action_message_appears_next_to_its_button(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 20)
    driver = _open(panel_module, dataset.view(), selection="top")
    driver.event("on_save")
    assert "Saved view name: enter a name" in str(driver.component("message"))
    assert _after(driver, "saving") == "message"


def test_one_event_sends_one_state_patch_before_the_panel_output(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 20)
    driver = _open(panel_module, dataset.view(), selection="top")
    driver.event("on_change_setting", path="prune_rate", value=30)
    assert driver.requests == ["patch_panel_state", "show_panel_output"]
    patch = [r for r in driver.executor._requests if r.operator_uri == "patch_panel_state"][0].params["state"]
    assert patch["prune_rate"] == 30 and patch["typed_rev"] >= 1 and "render_ms" in patch


def test_buffered_state_reads_its_writes_and_flushes_once(fo, make_dataset):
    from fiftyone.operators.executor import ExecutionContext, Executor

    from coreset_curation.panels.state import state_of

    dataset = make_dataset(3)
    executor = Executor()
    ctx = ExecutionContext(request_params=dict(dataset_name=dataset.name, params=dict(panel_id="p", panel_state={})),
                           executor=executor)
    state = state_of(ctx)
    assert state_of(ctx) is state
    state.a = 1
    state.set({"b.c": 2, "a": 3})
    assert state.a == 3 and state.get("b.c") == 2 and ctx.panel.state.get("a") == 3
    assert state.flush() == 2 and state.flush() == 0
    assert [(r.operator_uri, r.params["state"]) for r in executor._requests] == [
        ("patch_panel_state", {"a": 3, "b.c": 2})]


def test_score_fields_are_read_once_per_fields_version(panel_module, bridge, monkeypatch, make_dataset):
    from coreset_curation.panels import cache

    dataset = _scored_dataset(make_dataset, 20)
    driver = _open(panel_module, dataset.view(), selection="top")
    reads = []
    original = bridge.score_fields
    monkeypatch.setattr(bridge, "score_fields", lambda *a: reads.append(1) or original(*a))
    for rate in (10, 20, 30):
        driver.event("on_change_setting", path="prune_rate", value=rate)
    assert not reads
    dataset.set_values("other_score", [0.5] * 20)  # a new field: read again
    assert cache.score_fields(dataset.view()) == ["other_score", "score"] and len(reads) == 1


# -- browsing writes nothing ---------------------------------------------------------------


def test_browsing_every_selection_writes_no_field_and_no_run(fo, panel_module, bridge, make_dataset):
    dataset = _scored_dataset(make_dataset, 60)
    fields, runs = set(dataset.get_field_schema()), dataset.list_runs()
    driver = _open(panel_module, dataset.view(), embeddings_field="emb")
    for selection in bridge.SELECTIONS:
        for keep in bridge.KEEP:
            for stratify in (False, True):
                for path, value in (("selection", selection), ("keep", keep), ("stratify", stratify),
                                    ("prune_rate", 70)):
                    driver.event("on_change_setting", path=path, value=value)
                assert "Kept 18**" in _summary(driver), (selection, keep, stratify, driver.component("error"))
    driver.event("on_compute_curve")
    driver.event("on_curve_now")  # the spinner's timer
    assert driver.component("accuracy_plot") is not None
    dataset.reload()
    assert set(dataset.get_field_schema()) == fields and dataset.list_runs() == runs
    driver.event("on_change_setting", path="tag", value="best")
    driver.event("on_tag_kept")  # an action: now the order is stored, with its run
    assert dataset.match_tags("best").count() == 18
    assert any(f.endswith("_rank") for f in dataset.get_field_schema())


def test_saving_from_a_view_stores_the_order_browsed_in_memory_in_the_views_own_field(panel_module, make_dataset):
    dataset = _scored_dataset(make_dataset, 40)
    view = dataset.sort_by("score").limit(30)
    driver = _open(panel_module, view, selection="top", prune_rate=50, view_name="from-a-view")
    assert "order in memory" in _summary(driver) and not [f for f in dataset.get_field_schema() if "_rank" in f]
    driver.event("on_save")
    saved = dataset.load_saved_view("from-a-view")
    assert len(saved) == 15 and set(saved.values("id")) == set(view.sort_by("score", reverse=True).limit(15)
                                                               .values("id"))
    assert [f for f in dataset.get_field_schema() if "_rank" in f][0].startswith("score_top_view_")
    assert "order in memory" not in _summary(driver)  # now the stored order is read


def test_an_order_in_memory_is_stored_only_while_its_scores_are_unchanged(bridge, make_dataset):
    dataset = _scored_dataset(make_dataset, 30)
    order = bridge.coreset_order(dataset, "score", selection="top")
    assert not dataset.has_field("score_top_rank") and order.kept_count(0.5) == 15
    dataset.set_values("score", [0.5] * 30)
    with pytest.raises(ValueError, match="order: the samples or their scores changed"):
        bridge.store_order(dataset, order)
    order = bridge.coreset_order(dataset, "score", selection="top")
    summary = bridge.store_order(dataset, order)
    assert summary["rank_field"] == "score_top_rank" and dataset.count("score_top_rank") == 30
    assert bridge.find_order(dataset, "score", selection="top")[1]["rank_field"] == "score_top_rank"


def test_an_order_that_takes_a_while_shows_its_progress_then_the_grid_follows_it(fo, panel_module, orders_module,
                                                                                  bridge, make_dataset, monkeypatch):
    import threading

    dataset = _scored_dataset(make_dataset, 60)
    driver = _open(panel_module, dataset.view(), selection="top", embeddings_field="emb")
    driver.event("on_show_kept")
    driver.view = fo.DatasetView._build(dataset, _set_view(driver))  # the App shows the kept samples
    driver.event("on_change_view")
    gate, real = threading.Event(), bridge.coreset_order

    def held(*args, progress=None, **kwargs):  # the order reports a quarter done, then waits for the test
        progress(0.25)
        assert gate.wait(60)
        return real(*args, progress=progress, **kwargs)

    monkeypatch.setattr(bridge, "coreset_order", held)
    driver.event("on_change_setting", wait_busy=False, path="selection", value="coverage")
    text = driver.component("order_busy")["view"]["text"]
    assert text.startswith("Computing the 'coverage' order in memory (nothing is written): 25 % · "), text
    timer = driver.component("order_timer")["view"]
    assert timer["on_interval"].endswith("#on_order_progress") and timer["interval"] == panel_module.BUSY_TICK_MS
    assert driver.component("summary") is None and "set_view" not in driver.requests
    driver.event("on_order_progress", wait_busy=False)  # a tick: still busy, the same job (no second order)
    assert driver.busy and "set_view" not in driver.requests and len(orders_module._JOBS) == 1
    gate.set()
    driver.until_ready()
    assert "Kept 30" in _summary(driver) and "set_view" in driver.requests  # the grid follows the new order
    shown = fo.DatasetView._build(dataset, _set_view(driver))
    table = orders_module.sweep_table(dataset.name, dataset.view(), dict(driver.state))
    assert table.selection == "coverage" and set(shown.values("id")) == {str(i) for i in table.ids[table.mask(50)]}
    assert not orders_module._JOBS and not [f for f in dataset.get_field_schema() if f.endswith("_rank")]
