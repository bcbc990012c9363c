"""Test set-up: a private MongoDB, the plugin discovered through FIFTYONE_PLUGINS_DIR.

Environment variables are set before anything imports fiftyone. Core tests do
not import fiftyone at all.
"""

import importlib
import os
import pathlib
import tempfile
import uuid

import numpy as np
import pytest

from harness import PLUGIN_NAME, ROOT, configure_environment, plugin_package  # noqa: F401

STATE = pathlib.Path(os.environ.get("CORESET_TEST_STATE") or tempfile.mkdtemp(prefix="coreset-tests-"))
os.environ["CORESET_TEST_STATE"] = str(STATE)
# No UMAP warm-up thread in the test process (it would hold the GIL beside every test); the App servers
# the browser tests start warm up as a user's does (tests/app.py: served).
os.environ["CORESET_MAP_WARM_UP"] = "0"
configure_environment(STATE)
plugin_package()  # core tests import coreset_curation.core


@pytest.fixture(scope="session")
def fo():
    import fiftyone

    return fiftyone


@pytest.fixture(scope="session")
def bridge(fo):
    return importlib.import_module(plugin_package().__name__ + ".bridge")


@pytest.fixture
def make_dataset(fo):
    """Builds persistent datasets in the real MongoDB; deletes them afterwards."""
    made = []

    def build(n=60, dim=8, *, labels=None, missing=(), field="emb", seed=0, persistent=True):
        rng = np.random.default_rng(seed)
        dataset = fo.Dataset(f"coreset-test-{uuid.uuid4().hex[:10]}")
        dataset.persistent = persistent
        samples = []
        for i in range(n):
            sample = fo.Sample(filepath=f"/nonexistent/img_{i:05d}.png")
            if labels is not None:
                sample["ground_truth"] = fo.Classification(label=str(labels[i]))
            samples.append(sample)
        dataset.add_samples(samples, progress=False)
        vectors = rng.normal(size=(n, dim)).astype(np.float32)
        values = [None if i in missing else vectors[i] for i in range(n)]
        if field:
            dataset.set_values(field, values)
        made.append(dataset)
        return dataset

    yield build
    for dataset in made:
        if not dataset.deleted:
            dataset.delete()
