"""Shared by the tests and the benchmarks: environment, plugin import, panel driver.

Nothing here imports fiftyone at module level, so the environment can be set
before fiftyone is first imported.
"""

import importlib.util
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PLUGIN_NAME = "@coreset/curation"
PANEL_URI = f"{PLUGIN_NAME}/coreset_explorer"


def configure_environment(state):
    """Points FiftyOne at a private database and a plugins dir that links to this repo."""
    state = pathlib.Path(state)
    plugins = state / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "coreset-curation"
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    os.environ["FIFTYONE_PLUGINS_DIR"] = str(plugins)
    os.environ.setdefault("FIFTYONE_DATABASE_DIR", str(state / "db"))
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")


def plugin_package(name="coreset_curation_under_test"):
    """Imports the repo as a package (as FiftyOne does) to reach bridge and panels."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


class PanelDriver:
    """Calls panel events the way the App does and keeps the panel state between them."""

    def __init__(self, module, view, state=None):
        self.panel = module.CoresetExplorer()
        self.view = view
        self.state = dict(state or {})
        self.requests = []
        self.output = None

    def event(self, method, **params):
        from fiftyone.operators.executor import ExecutionContext, Executor

        executor = Executor()
        request = dict(
            dataset_name=self.view._root_dataset.name,
            view=self.view._serialize(),
            params=dict(panel_id="panel-under-test", panel_state=dict(self.state), __method__=method, **params),
        )
        ctx = ExecutionContext(request_params=request, executor=executor, operator_uri=PANEL_URI)
        result = self.panel.execute(ctx)
        self.state = dict(ctx.panel_state)
        self.requests = [r.operator_uri for r in executor._requests]
        outputs = [r for r in executor._requests if r.operator_uri == "show_panel_output"]
        self.output = outputs[-1].params["output"] if outputs else None
        self.executor = executor
        return result

    def component(self, name):
        return self.output["type"]["properties"].get(name)
