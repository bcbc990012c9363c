"""Every misuse from issue 20's "Unactionable or hanging" list gets one sentence naming the parameter.

Real datasets in the test MongoDB, called as a person does: the operator call
(``foo.get_operator(uri)(dataset, ...)``) or the bridge function it runs.
"""

import io
import os
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import PLUGIN_NAME
from harness import tiny_clip

OPERATORS = ("compute_embeddings", "compute_zcore_scores", "compute_mimic_scores", "compute_coreset_order",
             "save_coreset_view")
TINY = "coreset-test-tiny-errors"


@pytest.fixture(scope="module")
def ops(fo):
    import fiftyone.operators as foo

    return {name: foo.get_operator(f"{PLUGIN_NAME}/{name}") for name in OPERATORS}


def _labelled(make_dataset, n=40):
    """A dataset with 8-dim vectors in 'emb', two classes in 'ground_truth' and a few 'trusted' samples of each."""
    dataset = make_dataset(n, labels=["cat" if i % 2 else "dog" for i in range(n)])
    dataset.limit(6).tag_samples("trusted")
    return dataset


def _mimic(ops, dataset, **kwargs):
    return ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted", **kwargs)


# -- bounds -------------------------------------------------------------------------------------------------


def test_mimic_batch_size_beyond_memory_names_the_bound(ops, make_dataset):
    dataset = _labelled(make_dataset)
    with pytest.raises(ValueError, match=r"^batch_size must be <= [\d,]+ \(what fits in the [\d.]+ GiB of memory"):
        _mimic(ops, dataset, batch_size=10**15)
    assert dataset.get_field("mimic_score") is None
    assert _mimic(ops, dataset, batch_size=1000)["scored"] == 40  # larger than the data is a full batch


def test_embeddings_batch_size_and_num_workers_are_bounded(ops, make_dataset):
    dataset = make_dataset(3)
    with pytest.raises(ValueError, match=r"^batch_size must be <= [\d,]+ \(what fits in the .* memory"):
        ops["compute_embeddings"](dataset, batch_size=1e9)
    with pytest.raises(ValueError, match=r"^num_workers must be an integer in \[0, \d+\], got 1000000000"):
        ops["compute_embeddings"](dataset, num_workers=10**9)


def test_zcore_n_samples_and_num_threads_and_mimic_epochs_are_bounded(ops, make_dataset):
    dataset = _labelled(make_dataset)
    with pytest.raises(ValueError, match=r"^n_samples must be an integer in \[1, 1e\+10\] or 'auto', got 1e\+30"):
        ops["compute_zcore_scores"](dataset, "emb", n_samples=1e30)
    with pytest.raises(ValueError, match=r"^num_threads must be an integer in \[1, \d+\], got 1000000000"):
        ops["compute_zcore_scores"](dataset, "emb", num_threads=10**9)
    with pytest.raises(ValueError, match=r"^epochs must be an integer in \[1, 10000\], got 1000000000"):
        _mimic(ops, dataset, epochs=10**9)
    assert dataset.get_field("zcore_score") is None and dataset.get_field("mimic_score") is None


# -- corrupt stored vectors ---------------------------------------------------------------------------------


def _truncated():
    """A valid stored vector of the test datasets (float32, 8 values) without its last 4 bytes."""
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(8, np.float32), allow_pickle=False)
    return zlib.compress(buffer.getvalue()[:-4])


@pytest.mark.parametrize("stored", [b"not zlib at all", zlib.compress(b"zlib, but not a numpy array"), _truncated(),
                                    "a string", 7])
def test_a_corrupt_stored_vector_names_the_sample_and_the_field(fo, ops, make_dataset, stored):
    import fiftyone.core.odm as foodm

    dataset = make_dataset(30)
    bad = dataset.skip(17).first().id
    db = foodm.get_db_conn()
    name = db.datasets.find_one({"name": dataset.name})["sample_collection_name"]
    from bson import ObjectId

    assert db[name].update_one({"_id": ObjectId(bad)}, {"$set": {"emb": stored}}).modified_count == 1
    with pytest.raises(ValueError, match=rf"^embeddings_field: the vector stored in 'emb' of sample {bad} is corrupt"):
        ops["compute_zcore_scores"](dataset, "emb")
    assert dataset.get_field("zcore_score") is None


# -- lists and templates ------------------------------------------------------------------------------------


def test_a_scalar_where_a_list_goes_is_refused_with_the_parameter_name(ops, make_dataset):
    dataset = _labelled(make_dataset)
    with pytest.raises(ValueError, match=r"^embeddings_field must be a string or a list of strings"):
        ops["compute_zcore_scores"](dataset, 5)
    with pytest.raises(ValueError, match=r"^templates must be a string or a list of strings"):
        ops["compute_mimic_scores"](dataset, "emb", "ground_truth", reference="zero_shot", templates=5)


@pytest.mark.parametrize("template", ["a {photo} of a {}", "a { of a {}", "{} and {1}", "a photo"])
def test_a_brace_in_a_prompt_template_is_one_sentence(ops, make_dataset, template):
    dataset = _labelled(make_dataset)
    with pytest.raises(ValueError, match=r"^templates: each template must contain exactly one '\{\}'"):
        ops["compute_mimic_scores"](dataset, "emb", "ground_truth", reference="zero_shot",
                                    templates=["a photo of a {}.", template])


# -- saved view names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("view_name", ["!!!", "é", "x" * 2000])
def test_a_view_name_without_a_slug_names_view_name(ops, make_dataset, view_name):
    dataset = make_dataset(20)
    dataset.set_values("score", np.arange(20, dtype=float).tolist())
    with pytest.raises(ValueError, match=r"^view_name: '.*' cannot name a saved view \(its slug has length"):
        ops["save_coreset_view"](dataset, "score", 0.5, view_name)
    assert dataset.list_saved_views() == []


# -- the collection argument --------------------------------------------------------------------------------


@pytest.mark.parametrize("delegate", [False, True])
def test_a_dataset_name_or_none_in_place_of_the_collection(bridge, ops, make_dataset, delegate):
    dataset = make_dataset(10)
    name = dataset.name
    calls = dict(
        compute_embeddings=(), compute_zcore_scores=("emb",), compute_mimic_scores=("emb", "ground_truth"),
        compute_coreset_order=("score",), save_coreset_view=("score", 0.5, "kept"),
    )
    for op, args in calls.items():
        with pytest.raises(ValueError, match=rf"^sample_collection must be a FiftyOne dataset or view, got "
                                             rf"'{name}'; load it with fo.load_dataset\('{name}'\)$"):
            ops[op](name, *args, delegate=delegate)
        with pytest.raises(ValueError, match=r"^sample_collection must be a FiftyOne dataset or view, got None"):
            ops[op](None, *args, delegate=delegate)
    for function, args in ((bridge.read_vectors, ("emb",)), (bridge.vector_fields, ()), (bridge.recover, ()),
                           (bridge.kept_view, ("rank", 0.5))):
        with pytest.raises(ValueError, match=rf"^sample_collection must be .* got '{name}'"):
            function(name, *args)


# -- files that block -------------------------------------------------------------------------------------


def test_a_fifo_among_the_images_is_skipped_and_counted(fo, ops, tmp_path):
    _, (checkpoint,) = tiny_clip(tmp_path, TINY)
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"img_{i}.png"))
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(paths[-1])
    fifo = str(tmp_path / "pipe.png")
    os.mkfifo(fifo)
    dataset = fo.Dataset()
    dataset.add_samples([fo.Sample(filepath=p) for p in paths + [fifo]], progress=False)
    result = {}

    def embed():
        try:
            result["summary"] = ops["compute_embeddings"](dataset, clip_model=TINY, pretrained=checkpoint,
                                                          batch_size=2, num_workers=0, device="cpu")
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            result["error"] = error

    worker = threading.Thread(target=embed, daemon=True)
    worker.start()
    worker.join(180)
    if worker.is_alive():  # release the blocked reader, then fail
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    try:
        assert not worker.is_alive(), "compute_embeddings blocked on a FIFO"
        assert "error" not in result, result.get("error")
        summary = result["summary"]
        assert summary["skipped_unreadable"] == 1 and summary["embedded"] == 3 and summary["failed"] == 0
        assert dataset.exists("clip_embeddings").count() == 3
        assert dataset.match(fo.ViewField("filepath") == fifo).first()["clip_embeddings"] is None
    finally:
        dataset.delete()
