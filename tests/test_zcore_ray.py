"""The converging ZCore engine on a local Ray: the local scores, through worker deaths, cancellable, from FiftyOne."""

import os
import signal
import sys
import time

import numpy as np
import pytest

from bench.zcore_reliability import embeddings
from coreset_curation.core import zcore
from coreset_curation.core.zcore_expected import zcore_expected_run
from conftest import PLUGIN_NAME
from harness import app_execute, form

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

# Ray names a worker process after the task it runs.
TASK_TITLE = "ray::_run_task"
# About 0.1 s per pair visit, and 16 visits per task of the first round (64 visits on 2 CPUs):
# long enough to catch tasks while they run.
BIG = dict(num=10_000, dim=24)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    from coreset_curation.core.zcore_ray import runtime_env

    ray.init(num_cpus=2, include_dashboard=False, runtime_env=runtime_env(), log_to_driver=False)
    yield
    ray.shutdown()


def running_tasks():
    """Worker processes executing a pair-visit task now."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if cmdline.startswith(TASK_TITLE):
            found.append(process)
    return found


def wait_for_tasks(timeout=20.0):
    """The task processes once some run (empty after ``timeout``)."""
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        found = running_tasks()
        if found:
            return found
        time.sleep(0.01)
    return []


def test_same_seed_same_scores_as_the_local_engine():
    x = embeddings(1000, dim=12)
    # 150 visits: two passes of the 66 pairs and part of a third, in several rounds.
    # No time budget: a slow Ray start (a loaded machine) must not end the Ray run by the budget instead.
    kwargs = dict(seed=3, random_init=False, target_reliability=0.9999, max_pairs=150, time_budget=None)
    local = zcore_expected_run(x, **kwargs)
    on_ray = zcore_expected_run(x, backend="ray", **kwargs)
    np.testing.assert_array_equal(on_ray.scores, local.scores)
    assert (on_ray.n_samples, on_ray.reliability, on_ray.stopped_by) == (
        local.n_samples, local.reliability, "max_pairs")
    assert on_ray.device == "ray"
    other = zcore_expected_run(x, backend="ray", **dict(kwargs, seed=4))
    assert not np.array_equal(other.scores, local.scores)


def test_a_worker_killed_mid_task_is_retried_and_the_scores_do_not_change():
    x = embeddings(BIG["num"], dim=BIG["dim"])
    kwargs = dict(seed=5, random_init=False, target_reliability=0.9999, max_pairs=64, time_budget=None)
    killed = []

    def kill_one(fraction):
        if not killed:
            for process in wait_for_tasks(timeout=2.0)[:1]:
                os.kill(process.pid, signal.SIGKILL)
                killed.append(process.pid)

    on_ray = zcore_expected_run(x, backend="ray", progress=kill_one, **kwargs)
    assert killed, "no task was caught running"
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    local = zcore_expected_run(x, **kwargs)
    np.testing.assert_array_equal(on_ray.scores, local.scores)


def test_cancelling_the_run_stops_its_tasks_promptly():
    x = embeddings(BIG["num"], dim=BIG["dim"])
    seen = {}

    def cancel(fraction):
        seen["running"] = len(wait_for_tasks())
        seen["at"] = time.perf_counter()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        zcore_expected_run(x, backend="ray", seed=0, target_reliability=0.9999, progress=cancel)
    assert seen["running"] > 0
    assert time.perf_counter() - seen["at"] < 10
    assert running_tasks() == []


def test_compute_zcore_scores_on_a_dataset_with_the_ray_backend(fo, bridge, make_dataset):
    import fiftyone.operators as foo

    dataset = make_dataset(300, dim=8, missing=(7,))
    operator = foo.get_operator(f"{PLUGIN_NAME}/compute_zcore_scores")
    summary = operator(dataset, "emb", backend="ray", seed=11, score_field="on_ray")
    assert summary["scored"] == 299 and summary["skipped"] == 1 and summary["device"] == "ray"
    bridge.compute_zcore_scores(dataset, "emb", seed=11, score_field="local")
    on_ray, local = dataset.values("on_ray"), dataset.values("local")
    assert on_ray[7] is None and local[7] is None
    assert on_ray == local


def test_the_app_form_offers_the_backend_and_an_app_run_uses_it(fo, make_dataset):
    uri = f"{PLUGIN_NAME}/compute_zcore_scores"
    dataset = make_dataset(200, dim=8)
    inputs, _ = form(uri, dataset.view(), dict(advanced=True))
    backend = inputs["type"]["properties"]["backend"]
    assert backend["default"] == "local" and [c["value"] for c in backend["view"]["choices"]] == ["local", "ray"]
    assert "ray_address" not in inputs["type"]["properties"]
    inputs, _ = form(uri, dataset.view(), dict(advanced=True, backend="ray"))
    assert "ray_address" in inputs["type"]["properties"]
    messages = app_execute(uri, dataset.view(), dict(embeddings_field=["emb"], seed="2",
                                                    advanced=True, backend="ray"))
    shown = [p for name, p in messages if name == "show_output"]
    assert shown[0]["results"]["device"] == "ray" and dataset.count("zcore_score") == 200


def test_a_scheduled_run_uses_the_ray_backend(fo, make_dataset):
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    dataset = make_dataset(150, dim=8)
    operator = foo.get_operator(f"{PLUGIN_NAME}/compute_zcore_scores")
    queued = operator(dataset, "emb", backend="ray", seed=1, delegate=True)
    DelegatedOperationService().execute_queued_operations(dataset_name=dataset.name)
    doc = DelegatedOperationService().get(queued.result["id"])
    assert doc.run_state == "completed", doc.run_state
    assert doc.result.result["device"] == "ray" and doc.result.result["scored"] == 150


def test_ray_runs_the_converging_engine_only():
    with pytest.raises(ValueError, match="backend='ray' runs the converging engine only"):
        zcore.zcore_run(embeddings(50, dim=4), n_samples=1000, backend="ray")
    with pytest.raises(ValueError, match=r"backend must be one of \['local', 'ray'\]"):
        zcore_expected_run(embeddings(50, dim=4), backend="dask")


def test_without_ray_installed_the_backend_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ValueError, match=r"pip install -r requirements-ray.txt"):
        zcore_expected_run(embeddings(50, dim=4), backend="ray")
    # The local engine needs no Ray.
    assert len(zcore_expected_run(embeddings(50, dim=4), backend="local").scores) == 50
