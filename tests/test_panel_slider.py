"""The JS slider's Python side and the plot parts (issue 21), on real datasets in real MongoDB.

The panel is driven through a real ExecutionContext (no App): what it sends to
the App (panel data, the component, view and selection operations) is read from
the executor's requests.
"""

import importlib
import json

import numpy as np
import pytest

from harness import PanelDriver


@pytest.fixture(scope="module")
def panel_module(bridge):
    return importlib.import_module(bridge.__name__.rsplit(".", 1)[0] + ".panels.coreset_explorer")


@pytest.fixture(scope="module")
def slider(bridge):
    return importlib.import_module(bridge.__name__.rsplit(".", 1)[0] + ".panels.slider")


@pytest.fixture(autouse=True)
def js_slider_on(monkeypatch):
    monkeypatch.delenv("CORESET_JS_SLIDER", raising=False)


def _dataset(make_dataset, n=600, classes=("cat", "dog", "bird", "")):
    dataset = make_dataset(n, labels=[classes[(i * 7) % len(classes)] for i in range(n)])
    dataset.set_values("score", np.random.default_rng(1).random(n).tolist())
    return dataset


def _open(panel_module, view, **settings):
    return PanelDriver.opened(panel_module, view, **settings)


def _sent(driver):
    """The slider summaries the last event sent to the App: ``{rev: summary}``."""
    out = {}
    for request in driver.executor._requests:
        if request.operator_uri == "patch_panel_data":
            for key, value in request.params["data"].items():
                if key.startswith("rate_slider."):
                    out[key.split(".", 1)[1]] = value
    return out


def _component(driver):
    return driver.component("rate_slider")["view"]


def _table(panel_module, driver, view):
    """The sweep table the panel draws from, for the driver's current settings."""
    orders = importlib.import_module(panel_module.__name__.rsplit(".", 1)[0] + ".orders")
    return orders.sweep_table(view._root_dataset.name, view, dict(driver.state))


@pytest.mark.parametrize("selection", ["top", "coverage"])
def test_the_summary_matches_the_table_at_every_rate(panel_module, slider, make_dataset, selection):
    dataset = _dataset(make_dataset)
    driver = _open(panel_module, dataset.view(), selection=selection)
    view = _component(driver)
    assert view["component"] == "CoresetRateSlider" and view["composite_view"] is True
    assert view["on_release"].endswith("#on_rate_released") and view["rate"] == 50
    assert "rate_slider" not in driver.state  # no state key shadows the component's data
    driver.event("on_rate_summary")  # as the component asks when it has none
    sent = _sent(driver)
    assert list(sent) == [view["rev"]]
    summary = sent[view["rev"]]
    table = _table(panel_module, driver, dataset.view())
    assert summary["n"] == len(dataset) and len(summary["kept"]) == 100
    names = ["(no label)" if c == "" else c for c in table.classes.tolist()]
    assert summary["classes"] == names
    for rate in range(100):
        mask = table.mask(rate)
        assert summary["kept"][rate] == table.kept_count(rate) == int(mask.sum())
        assert summary["class_kept"][rate] == np.bincount(table.codes[mask], minlength=len(names)).tolist()
        assert summary["bin_kept"][rate] == np.bincount(table.bins[mask], minlength=len(table.edges) - 1).tolist()
        if selection == "top":
            assert summary["threshold"][rate] == pytest.approx(table.scores[mask].min(), abs=1e-6)
    if selection != "top":
        assert summary["threshold"] is None  # coverage-aware orders have no score cut


def test_the_summary_is_small_and_sent_once_per_order(panel_module, make_dataset):
    dataset = _dataset(make_dataset, n=3000)
    driver = _open(panel_module, dataset.view(), selection="top")
    driver.event("on_rate_summary")
    summary = next(iter(_sent(driver).values()))
    size = len(json.dumps(summary))
    assert size < 20_000, size  # per rate, never per sample
    assert all(len(v) <= 100 for v in summary.values() if isinstance(v, list))
    driver.event("on_rate_released", rate=30)
    assert _sent(driver) == {}  # the App has it: not sent again on a release
    rev = _component(driver)["rev"]
    driver.event("on_change_setting", path="keep", value="lowest")
    assert list(_sent(driver)) != [rev] and _component(driver)["rev"] != rev  # a new order: a new summary


def test_a_release_stores_the_rate_and_renders_it(panel_module, make_dataset):
    dataset = _dataset(make_dataset)
    driver = _open(panel_module, dataset.view(), selection="top")
    driver.event("on_rate_released", rate=72)
    assert driver.state["prune_rate"] == 72
    rates = driver.component("rates")["type"]["properties"]  # the component has the slider and typed box
    assert not any(k.startswith(("prune_rate_", "rate_typed_")) for k in rates)
    assert any(k.startswith("keep_count_") for k in rates)  # keep N stays a box of the panel
    assert _component(driver)["rate"] == 72
    assert "set_view" not in driver.requests  # the grid shows the dataset: left alone
    driver.event("on_rate_released", rate=150)
    assert driver.state["prune_rate"] == 99  # clamped
    driver.event("on_rate_released", rate="x")
    assert driver.state["prune_rate"] == 99


def test_a_release_moves_a_grid_that_shows_the_kept_samples(fo, panel_module, bridge, make_dataset):
    dataset = _dataset(make_dataset)
    driver = _open(panel_module, dataset.view(), selection="top")
    driver.event("on_show_kept")
    assert "set_view" in driver.requests
    kept_view = next(r for r in driver.executor._requests if r.operator_uri == "set_view")
    driver.view = fo.DatasetView._build(dataset, kept_view.params["view"])  # the App's view now
    driver.event("on_rate_released", rate=80)
    moved = [r for r in driver.executor._requests if r.operator_uri == "set_view"]
    assert len(moved) == 1
    new = fo.DatasetView._build(dataset, moved[0].params["view"])
    assert len(new) == len(dataset) - 480  # 20 % of 600 kept
    driver.view = new
    driver.event("on_show_pruned")
    pruned = next(r for r in driver.executor._requests if r.operator_uri == "set_view")
    driver.view = fo.DatasetView._build(dataset, pruned.params["view"])
    driver.event("on_rate_released", rate=10)
    moved = [r for r in driver.executor._requests if r.operator_uri == "set_view"]
    assert len(fo.DatasetView._build(dataset, moved[0].params["view"])) == 60  # still the pruned


def test_without_the_js_slider_the_python_slider_is_drawn(panel_module, make_dataset, monkeypatch):
    monkeypatch.setenv("CORESET_JS_SLIDER", "0")
    dataset = _dataset(make_dataset, n=60)
    driver = _open(panel_module, dataset.view(), selection="top")
    assert driver.component("rate_slider") is None
    assert driver.component("histogram") is not None and driver.component("summary") is not None
    assert any(k.startswith("prune_rate_") for k in driver.component("rates")["type"]["properties"])


def test_the_map_draws_the_pruned_first_and_a_lasso_selects_in_the_grid(panel_module, make_dataset):
    dataset = _dataset(make_dataset, n=80)
    driver = _open(panel_module, dataset.view(), selection="top", show_map=True)
    driver.event("on_compute_map")
    plot = driver.component("map")["view"]
    pruned, kept = plot["data"]
    assert (pruned["name"], kept["name"]) == ("pruned", "kept")  # drawn first: under the kept
    assert pruned["marker"]["opacity"] < kept["marker"]["opacity"]  # muted
    assert len(pruned["ids"]) == len(pruned["x"]) == 40 and set(pruned["ids"]) <= set(dataset.values("id"))
    assert plot["layout"]["dragmode"] == "lasso" and plot["on_selected"].endswith("#on_map_selected")
    chosen = kept["ids"][:5] + pruned["ids"][:3]
    driver.event("on_map_selected", data=[dict(trace="kept", idx=i, id=x) for i, x in enumerate(chosen)])
    select = next(r for r in driver.executor._requests if r.operator_uri == "set_selected_samples")
    assert [s["id"] for s in select.params["samples"]] == chosen
    driver.event("on_map_selected", data=[])  # plotly's empty report when the redrawn map drops the lasso
    assert not any(r.operator_uri == "set_selected_samples" for r in driver.executor._requests)


def test_the_curve_has_a_random_baseline_a_marker_and_a_fixed_range(panel_module, make_dataset):
    dataset = _dataset(make_dataset, n=120)
    driver = _open(panel_module, dataset.view(), selection="top")
    driver.event("on_rate_released", rate=30)
    driver.event("on_compute_curve")
    driver.event("on_curve_now")  # the spinner's timer
    plot = driver.component("accuracy_plot")["view"]
    names = [t["name"] for t in plot["data"]]
    assert names == ["coreset (linear probe)", "random subset of the same size"]
    curve = driver.state["accuracy"]
    assert len(curve["random"]) == len(curve["rates"]) and curve["full"] == curve["accuracy"][0]
    assert curve["random"][0] == curve["accuracy"][0]  # at 0 % both train on everything
    layout = plot["layout"]
    marker = [s for s in layout["shapes"] if s.get("x0") == 30]
    assert marker and marker[0]["yref"] == "paper"
    low, high = layout["yaxis"]["range"]
    assert layout["yaxis"]["autorange"] is False and high == 1.0 and low <= curve["full"]
    values = [v for v in curve["accuracy"] + curve["random"] if v is not None]
    assert low <= min(values)
