"""The panel follows runs scheduled in the background (delegated): progress while they run, a result when they land."""

import importlib

from conftest import PLUGIN_NAME
from harness import PanelDriver

ZCORE = f"{PLUGIN_NAME}/compute_zcore_scores"


def test_a_scheduled_run_shows_in_the_panel_then_lands_with_no_reload_by_the_user(fo, bridge, make_dataset):
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    panel = importlib.import_module(bridge.__name__.rsplit(".", 1)[0] + ".panels.coreset_explorer")
    dataset = make_dataset(60)
    driver = PanelDriver.opened(panel, dataset.view())
    assert driver.component("empty") is not None  # no score yet: the panel watches for one
    assert driver.component("background_timer")["view"]["on_interval"].endswith("#on_background_tick")
    queued = foo.execute_operator(ZCORE, ctx=dict(view=dataset.view(), params=dict(embeddings_field="emb", seed=0,
                                                                                  n_samples=20000)),
                                  request_delegation=True)
    assert queued.delegated
    driver.event("on_background_tick")
    line = str(driver.component("background_row_0")["type"]["properties"]["background_0"])
    assert "compute_zcore_scores" in line and "in the background: queued" in line, line
    assert driver.state["background"] == [str(queued.result["id"])]
    assert "reload_dataset" not in driver.requests

    DelegatedOperationService().execute_queued_operations(dataset_name=dataset.name)  # the orchestrator runs it
    driver.event("on_background_tick")
    assert "reload_dataset" in driver.requests  # the App shows the new field
    assert "finished in the background" in driver.state["message"] and "scored 60" in driver.state["message"]
    assert driver.state["background"] == [] and driver.component("background_row_0") is None
    assert driver.state["score_field"] == "zcore_score" and driver.state["kept"] == 30  # swept at once


def test_a_queued_run_can_be_cancelled_from_the_panel_and_nothing_is_written(fo, bridge, make_dataset):
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    panel = importlib.import_module(bridge.__name__.rsplit(".", 1)[0] + ".panels.coreset_explorer")
    dataset = make_dataset(40)
    queued = foo.execute_operator(ZCORE, ctx=dict(view=dataset.view(), params=dict(embeddings_field="emb", seed=0)),
                                  request_delegation=True)
    driver = PanelDriver.opened(panel, dataset.view())
    button = driver.component("background_row_0")["type"]["properties"]["cancel_background_0"]["view"]
    assert button["label"] == "Cancel" and button["params"] == {"run_id": str(queued.result["id"])}
    driver.event("on_cancel_background", **button["params"])
    assert driver.state["message"].startswith("Cancelled 'compute_zcore_scores' before it started")
    service = DelegatedOperationService()
    assert not service.list_operations(dataset_name=dataset.name) and driver.component("background_row_0") is None
    service.execute_queued_operations(dataset_name=dataset.name)  # nothing left to run
    dataset.reload()
    assert dataset.get_field("zcore_score") is None and not dataset.list_runs()
