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


def configure_environment(state, *, own_database=True):
    """Points FiftyOne at a private database and a plugins dir that links to this repo.

    With ``own_database`` a mongod of our own is started on a free port, so
    parallel jobs never share FiftyOne's default database service (processes
    with different database dirs can otherwise attach to one mongod).
    """
    state = pathlib.Path(state)
    plugins = state / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "coreset-curation"
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    os.environ["FIFTYONE_PLUGINS_DIR"] = str(plugins)
    os.environ.setdefault("FIFTYONE_DATABASE_DIR", str(state / "db"))
    if own_database and "FIFTYONE_DATABASE_URI" not in os.environ:
        os.environ["FIFTYONE_DATABASE_URI"] = start_mongod(os.environ["FIFTYONE_DATABASE_DIR"])
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")


def start_mongod(db_dir, timeout=60):
    """Starts FiftyOne's bundled mongod on a free loopback port; returns its URI.

    The server is stopped when this process exits.
    """
    import atexit
    import socket
    import subprocess
    import time

    spec = importlib.util.find_spec("fiftyone")
    mongod = pathlib.Path(spec.submodule_search_locations[0]) / "db" / "bin" / "mongod"
    db_dir = pathlib.Path(db_dir)
    (db_dir / "log").mkdir(parents=True, exist_ok=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [str(mongod), "--dbpath", str(db_dir), "--port", str(port), "--bind_ip", "127.0.0.1",
         "--nounixsocket", "--logpath", str(db_dir / "log" / "mongo.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(process.terminate)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return f"mongodb://127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mongod did not start; see {db_dir / 'log' / 'mongo.log'}")
            time.sleep(0.1)


def plugin_package():
    """Imports the repo as the package ``coreset_curation``, as the plugin's register() does."""
    if "coreset_curation" not in sys.modules:
        spec = importlib.util.spec_from_file_location("_coreset_curation_entry", ROOT / "__init__.py")
        entry = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(entry)
        entry.package()
    return sys.modules["coreset_curation"]


class PanelDriver:
    """Calls panel events the way the App does and keeps the panel state between them."""

    def __init__(self, module, view, state=None):
        self.panel = module.CoresetExplorer()
        self.view = view
        self.state = dict(state or {})
        self.requests = []
        self.output = None

    @classmethod
    def opened(cls, module, view, **settings):
        """A driver after the panel's load and one settings change per keyword, in order."""
        driver = cls(module, view)
        driver.event("on_load")
        for path, value in settings.items():
            driver.event("on_change_setting", path=path, value=value)
        return driver

    def event(self, method, wait_busy=True, **params):
        """Sends one event; while the panel then shows a busy order, its timer ticks too (unless ``wait_busy`` is False)."""
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
        if self.busy and method != "on_order_progress" and wait_busy:
            return self.until_ready(result)
        return result

    @property
    def busy(self):
        """Whether the panel shows an order still being computed (with its progress timer)."""
        return bool(self.output) and "order_busy" in self.output["type"]["properties"]

    def until_ready(self, result=None, cap_s=300):
        """Sends the busy order's timer ticks, as the App does, until the panel draws the order."""
        import time

        deadline = time.monotonic() + cap_s
        requests = list(self.requests)
        while self.busy:
            assert time.monotonic() < deadline, "the order stayed busy"
            time.sleep(0.05)
            self.event("on_order_progress")
            requests += self.requests
        self.requests = requests
        return result

    def component(self, name):
        return self.output["type"]["properties"].get(name)


def app_execute(operator_uri, view, params):
    """Executes an operator the way the App does (immediate, generator streamed).

    Returns the list of ``(operator_uri, params)`` the App would be asked to
    run: ``set_progress``, ``show_output``, ``reload_dataset``, ``notify``...
    """
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext, Executor

    executor = Executor()
    request = dict(dataset_name=view._root_dataset.name, view=view._serialize(), params=dict(params),
                   operator_uri=operator_uri)  # as the App's requests do
    ctx = ExecutionContext(request_params=request, executor=executor, operator_uri=operator_uri)
    operator = foo.get_operator(operator_uri)
    result = operator.execute(ctx)
    if hasattr(result, "__next__"):
        for _ in result:
            pass
    return [(r.operator_uri, r.params) for r in executor._requests]


def form(operator_uri, view, params=None):
    """The operator's resolved input form (as the App gets it) and its validation errors."""
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext, ValidationContext

    request = dict(dataset_name=view._root_dataset.name, view=view._serialize(), params=dict(params or {}))
    ctx = ExecutionContext(request_params=request, operator_uri=operator_uri)
    operator = foo.get_operator(operator_uri)
    inputs = operator.resolve_input(ctx)
    validation = ValidationContext(ctx, inputs, operator)
    errors = [e.to_json() for e in validation.errors]
    return inputs.to_json(), errors


def labelled(make_dataset, n=60, seed=0):
    """A dataset of ``n`` samples in 3 classes, embeddings that carry the label, 5 per class tagged "trusted"."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    dataset = make_dataset(n, labels=labels)
    centers = rng.normal(size=(3, 8)) * 3
    dataset.set_values("emb", list((centers[labels] + rng.normal(size=(n, 8))).astype(np.float32)))
    ids = np.array(dataset.values("id"))
    dataset.select([i for c in range(3) for i in ids[labels == c][:5]]).tag_samples("trusted")
    return dataset


def fast_dataset(name, vectors, *, labels=None, persistent=True):
    """A real FiftyOne dataset of ``len(vectors)`` image samples with an ``emb`` vector field.

    Documents are inserted in FiftyOne's own format in bulk (much faster than
    ``add_samples`` at 10^5-10^6 samples); ``labels`` adds ``ground_truth``
    classifications.
    """
    import fiftyone as fo

    dataset = fo.Dataset(name, persistent=persistent)
    dataset.add_sample_field("emb", fo.VectorField)
    if labels is not None:
        dataset.add_sample_field("ground_truth", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    add_fast_samples(dataset, vectors, labels=labels)
    return dataset


def add_fast_samples(dataset, vectors, *, labels=None, start=0, batch=10_000):
    """Appends samples ``start, start + 1, ...`` with the given vectors (and labels) in bulk."""
    import datetime

    import fiftyone.core.utils as fou
    from bson import ObjectId

    collection = dataset._sample_collection
    dataset_id = dataset._doc.id
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    for first in range(0, len(vectors), batch):
        docs = []
        for i in range(first, min(first + batch, len(vectors))):
            k = start + i
            doc = {
                "_id": ObjectId(), "filepath": f"/data/img_{k:07d}.png", "tags": [], "_media_type": "image",
                "_rand": ((k + 1) * 0.6180339887) % 1.0 or 0.5, "emb": fou.serialize_numpy_array(vectors[i]),
                "_dataset_id": dataset_id, "created_at": now, "last_modified_at": now,
            }
            if labels is not None:
                doc["ground_truth"] = {"_id": ObjectId(), "_cls": "Classification", "tags": [],
                                       "label": str(labels[i])}
            docs.append(doc)
        collection.insert_many(docs, ordered=False)
    dataset.reload()
    return dataset


#: A tiny open_clip architecture: random-init checkpoints of it stand in for downloaded weights.
TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def tiny_clip(folder, name, cfg=TINY_CLIP, seeds=(0,)):
    """Registers the architecture ``name`` with open_clip (its config saved in ``folder``) and
    saves one random-init checkpoint per seed; returns ``(config path, [checkpoint paths])``."""
    import json

    import open_clip
    import torch

    folder = pathlib.Path(folder)
    config = folder / f"{name}.json"
    config.write_text(json.dumps(cfg))
    open_clip.add_model_config(config)
    checkpoints = []
    for seed in seeds:
        torch.manual_seed(seed)
        checkpoints.append(str(folder / f"{name}_{seed}.pt"))
        torch.save(open_clip.create_model(name, pretrained=None).state_dict(), checkpoints[-1])
    return str(config), checkpoints
