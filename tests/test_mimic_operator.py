"""The compute_mimic_scores operator on real FiftyOne datasets in real MongoDB.

Labelled data: sklearn digits, embeddings = PCA(32) of the pixels, with a
seeded fraction of the labels flipped to another class (as in
``bench/mimic_quality.py``); 10 clean samples per class carry the tag
"trusted". Class names are words ("zero", "one", ...) so that their sorted
order differs from the digits'. The zero-shot reference runs with a tiny
random-init open_clip model saved to a checkpoint: its scores mean nothing,
so only the plumbing (model identity, shapes, class order, logit scale) is
checked.
"""

import importlib
import uuid

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from conftest import PLUGIN_NAME
from harness import tiny_clip

MIMIC = f"{PLUGIN_NAME}/compute_mimic_scores"
EMBED = f"{PLUGIN_NAME}/compute_embeddings"
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
N = 400
NOISE = 0.15
TINY = "coreset-test-tiny-mimic"


@pytest.fixture(scope="module")
def foo(fo):
    import fiftyone.operators as operators

    return operators


@pytest.fixture(scope="module")
def core_mimic(bridge):
    return importlib.import_module(bridge.__name__.rsplit(".", 1)[0] + ".core.mimic")


@pytest.fixture(scope="module")
def bridge_mimic(bridge):
    return importlib.import_module(bridge.__name__ + ".mimic")


@pytest.fixture(scope="module")
def digits():
    """(vectors (N, 32), clean labels, noisy labels, trusted indices)."""
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    data = load_digits()
    rng = np.random.default_rng(0)
    idx = rng.choice(len(data.target), N, replace=False)
    vectors = PCA(32, random_state=0).fit_transform(data.data)[idx].astype(np.float32)
    clean = data.target[idx]
    flip = rng.choice(N, int(NOISE * N), replace=False)
    noisy = clean.copy()
    noisy[flip] = (clean[flip] + rng.integers(1, 10, len(flip))) % 10
    ok = np.flatnonzero(noisy == clean)
    trusted = np.concatenate([rng.choice(ok[clean[ok] == c], 10, replace=False) for c in range(10)])
    return vectors, clean, noisy, trusted


def _dataset(make_dataset, digits, *, labels=None, missing_labels=(), missing_emb=()):
    vectors, clean, noisy, trusted = digits
    labels = [NAMES[y] for y in (noisy if labels is None else labels)]
    dataset = make_dataset(N, labels=labels, field=None)
    dataset.set_values("emb", [None if i in missing_emb else v for i, v in enumerate(vectors)])
    if missing_labels:
        ids = dataset.values("id")
        dataset.select([ids[i] for i in missing_labels]).set_values("ground_truth", [None] * len(missing_labels))
    ids = np.array(dataset.values("id"))
    dataset.select(ids[trusted].tolist()).tag_samples("trusted")
    return dataset


def _run(foo, view, **params):
    """The SDK call: ``foo.get_operator(uri)(collection, embeddings_field, label_field, ...)``."""
    embeddings_field = params.pop("embeddings_field", "emb")
    label_field = params.pop("label_field", "ground_truth")
    return foo.get_operator(MIMIC)(view, embeddings_field, label_field, **params)


def _auroc(flipped, scores):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(flipped, -np.asarray(scores))


# -- trusted reference ----------------------------------------------------------------


def test_sdk_call_scores_every_labelled_sample_and_tags_the_flagged_ones(fo, foo, make_dataset, digits):
    _, clean, noisy, _ = digits
    dataset = _dataset(make_dataset, digits)
    # an earlier run tags other samples (another seed, a subset): its tags must not survive
    _run(foo, dataset.limit(200), reference="trusted", trusted_tag="trusted", issue_tag="label_issue", seed=9)
    assert dataset.count_sample_tags()["label_issue"] > 0

    result = _run(foo, dataset.view(), reference="trusted", trusted_tag="trusted", issue_tag="label_issue", seed=0)

    scores = np.array(dataset.values("mimic_score"), dtype=float)
    assert np.isfinite(scores).all() and len(scores) == N
    tagged = np.array(["label_issue" in t for t in dataset.values("tags")])
    np.testing.assert_array_equal(tagged, scores < 0)
    flipped = noisy != clean
    assert _auroc(flipped, scores) > 0.9
    assert tagged[flipped].mean() > 0.6 and tagged[~flipped].mean() < 0.05  # 0.73 and 0.006 here
    assert result["scored"] == N and result["skipped"] == 0
    assert result["flagged"] == result["tagged"] == int(tagged.sum())
    assert result["trusted"] == 100 and result["classes"] == sorted(NAMES)

    config = dataset.get_run_info("mimic_score").config
    assert config.method == "coreset_mimic" and config.reference == "trusted"
    assert config.classes == sorted(NAMES) and config.seed == 0 and config.epochs == 20
    assert config.trusted_tag == "trusted" and config.issue_tag == "label_issue"
    assert dataset.load_run_results("mimic_score").summary["flagged"] == result["flagged"]


def test_only_the_sdk_required_params_and_a_view(fo, foo, make_dataset, digits):
    dataset = _dataset(make_dataset, digits)
    view = dataset.limit(300)
    result = _run(foo, view, reference="trusted", trusted_tag="trusted")
    values = dataset.values("mimic_score")
    assert sum(v is not None for v in values) == 300 == result["scored"]
    assert values[300:] == [None] * (N - 300)
    assert result["tagged"] == 0 and not dataset.count_sample_tags().get("label_issue")
    assert isinstance(dataset.get_run_info("mimic_score").config.seed, int)


def test_trusted_view_gives_the_same_scores_as_the_tag(fo, foo, make_dataset, digits):
    dataset = _dataset(make_dataset, digits)
    dataset.save_view("checked", dataset.select(dataset.match_tags("trusted").values("id")))
    dataset.untag_samples("trusted")
    _run(foo, dataset.view(), reference="trusted", trusted_view="checked", seed=3, score_field="by_view")
    dataset.load_saved_view("checked").tag_samples("trusted")
    _run(foo, dataset.view(), reference="trusted", trusted_tag="trusted", seed=3, score_field="by_tag")
    np.testing.assert_allclose(dataset.values("by_view"), dataset.values("by_tag"), rtol=0, atol=1e-6)
    assert dataset.get_run_info("by_view").config.trusted_view == "checked"


@pytest.mark.parametrize("kind", ["npy", "npy_bias_column", "pt_dict", "pt_tensor"])
def test_checkpoint_head_matches_the_trusted_head(fo, foo, core_mimic, make_dataset, digits, tmp_path, kind):
    vectors, _, noisy, trusted = digits
    dataset = _dataset(make_dataset, digits)
    classes = sorted(NAMES)
    index = np.array([classes.index(NAMES[y]) for y in noisy])
    head = core_mimic.train_linear_head(vectors[trusted], index[trusted], 10, seed=1)
    path = tmp_path / ("head.npy" if kind.startswith("npy") else "head.pt")
    if kind == "npy":
        np.save(path, head.weight)
        head = core_mimic.LinearHead(head.weight, None)
    elif kind == "npy_bias_column":
        np.save(path, np.hstack([head.weight, head.bias[:, None]]))
    elif kind == "pt_dict":
        torch.save({"weight": torch.from_numpy(head.weight), "bias": torch.from_numpy(head.bias)}, path)
    else:
        torch.save(torch.from_numpy(head.weight), path)
        head = core_mimic.LinearHead(head.weight, None)

    result = _run(foo, dataset.view(), reference="checkpoint", checkpoint_path=str(path), seed=5)

    expected = core_mimic.mimic_scores(vectors, index, head, seed=5)
    np.testing.assert_allclose(dataset.values("mimic_score"), expected, atol=1e-5)
    assert result["checkpoint"] == str(path) and result["scored"] == N


def test_samples_without_label_or_embedding_are_skipped_and_counted(fo, foo, make_dataset, digits):
    dataset = _dataset(make_dataset, digits, missing_labels=(3, 4, 9), missing_emb=(4, 20, 21))
    result = _run(foo, dataset.view(), reference="trusted", trusted_tag="trusted", issue_tag="bad")
    values = dataset.values("mimic_score")
    assert [i for i, v in enumerate(values) if v is None] == [3, 4, 9, 20, 21]
    assert result["skipped_no_label"] == 3 and result["skipped_no_embedding"] == 2
    assert result["skipped"] == 5 and result["scored"] == N - 5
    tags = dataset.values("tags")
    assert not any("bad" in tags[i] for i in (3, 4, 9, 20, 21))


def test_delegated_run_executes_from_the_queue(fo, foo, make_dataset, digits):
    from fiftyone.operators.delegated import DelegatedOperationService

    dataset = _dataset(make_dataset, digits)
    params = dict(
        embeddings_field="emb", label_field="ground_truth", reference="trusted", trusted_tag="trusted",
        issue_tag="label_issue",
    )
    queued = foo.execute_operator(MIMIC, ctx=dict(view=dataset.view(), params=params), request_delegation=True)
    assert queued.delegated
    assert dataset.get_field("mimic_score") is None
    service = DelegatedOperationService()
    service.execute_queued_operations(dataset_name=dataset.name)
    dataset.reload()
    doc = service.get(queued.result["id"])
    assert doc.run_state == "completed", doc.run_state
    scores = np.array(dataset.values("mimic_score"), dtype=float)
    assert np.isfinite(scores).all()
    assert doc.result.result["tagged"] == dataset.count_sample_tags()["label_issue"] == int((scores < 0).sum())


# -- bad input ---------------------------------------------------------------------


class _Evil:
    """Unpickling this creates the file ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize(
    "case,message",
    [
        ("label_missing", "label_field: field 'nope' does not exist"),
        ("label_float", "label_field: 'confidence' is a FloatField, not a Classification"),
        ("no_reference_set", "needs trusted_tag"),
        ("empty_trusted", "the trusted set is empty"),
        ("class_absent_from_trusted", r"no samples of classes \['two'\]"),
        ("checkpoint_shape", r"must follow the sorted label names \['eight', 'five'"),
        ("checkpoint_missing", "does not exist"),
        ("zero_shot_unrecorded", "'emb' was not computed by compute_embeddings"),
        ("pickle_npy", "refusing to load"),
        ("pickle_pt", "refusing to load"),
        ("bad_reference", "reference must be one of"),
        ("bad_epochs", r"epochs must be an integer in \[1, 10000\]"),
        ("bad_score_field", "plain field name"),
        ("no_embeddings_field", "embeddings_field"),
    ],
)
def test_bad_input_errors_and_never_writes(fo, foo, make_dataset, digits, tmp_path, case, message):
    vectors, clean, noisy, trusted = digits
    labels = None
    if case == "class_absent_from_trusted":
        labels = noisy.copy()
        labels[trusted[clean[trusted] == 2]] = 3  # no trusted "two", but untrusted "two"s remain
    dataset = _dataset(make_dataset, digits, labels=labels)
    marker = tmp_path / "pwned"
    params = dict(reference="trusted", trusted_tag="trusted", issue_tag="label_issue")
    if case == "label_missing":
        params["label_field"] = "nope"
    elif case == "label_float":
        dataset.set_values("confidence", [0.5] * N)
        params["label_field"] = "confidence"
    elif case == "no_reference_set":
        del params["trusted_tag"]
    elif case == "empty_trusted":
        params["trusted_tag"] = "nobody"
    elif case == "checkpoint_shape":
        np.save(tmp_path / "head.npy", np.zeros((9, 32), np.float32))
        params.update(reference="checkpoint", checkpoint_path=str(tmp_path / "head.npy"))
    elif case == "checkpoint_missing":
        params.update(reference="checkpoint", checkpoint_path=str(tmp_path / "absent.npy"))
    elif case == "zero_shot_unrecorded":
        params.update(reference="zero_shot")
    elif case == "pickle_npy":
        np.save(tmp_path / "head.npy", np.array([_Evil(str(marker))], dtype=object), allow_pickle=True)
        params.update(reference="checkpoint", checkpoint_path=str(tmp_path / "head.npy"))
    elif case == "pickle_pt":
        torch.save({"weight": _Evil(str(marker))}, tmp_path / "head.pt")
        params.update(reference="checkpoint", checkpoint_path=str(tmp_path / "head.pt"))
    elif case == "bad_reference":
        params["reference"] = "oracle"
    elif case == "bad_epochs":
        params["epochs"] = 0
    elif case == "bad_score_field":
        params["score_field"] = "filepath"
    elif case == "no_embeddings_field":
        params["embeddings_field"] = None
    assert not marker.exists()

    with pytest.raises(Exception, match=message):
        _run(foo, dataset.view(), **params)

    assert not marker.exists()
    assert dataset.get_field("mimic_score") is None
    assert "mimic_score" not in dataset.list_runs()
    assert not dataset.count_sample_tags().get("label_issue")


# -- zero-shot reference -------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_embedded(fo, foo, tmp_path_factory):
    """A dataset of 30 random images embedded by the compute_embeddings operator with a tiny model."""
    folder = tmp_path_factory.mktemp("tiny_mimic")
    ckpt = tiny_clip(folder, TINY)[1][0]
    rng = np.random.default_rng(0)
    samples = []
    for i in range(30):
        path = folder / f"img_{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)).save(path)
        label = ["dog", "cat", "bird"][i % 3]
        samples.append(fo.Sample(filepath=str(path), ground_truth=fo.Classification(label=label)))
    dataset = fo.Dataset(f"coreset-mimic-zs-{uuid.uuid4().hex[:10]}")
    dataset.add_samples(samples, progress=False)
    embed = foo.get_operator(EMBED)
    embed(dataset, "open-clip-torch", "clip", clip_model=TINY, pretrained=str(ckpt), num_workers=0, device="cpu")
    yield dataset, ckpt
    dataset.delete()


def test_zero_shot_head_is_the_scaled_text_embeddings_in_sorted_class_order(fo, bridge, bridge_mimic, tiny_embedded):
    dataset, ckpt = tiny_embedded
    data = bridge_mimic.load_labelled_embeddings(dataset, "clip", "ground_truth")
    assert data.classes == ["bird", "cat", "dog"] and data.vectors.shape == (30, 16)

    head, info = bridge_mimic.reference_head(dataset, data, reference="zero_shot", device="cpu")

    assert head.weight.shape == (3, 16) and head.classes == ["bird", "cat", "dog"]
    np.testing.assert_array_equal(head.bias, 0)
    # the tiny model's text tower, straight from open_clip, in sorted class order
    model = open_clip.create_model(TINY, pretrained=None)
    model.load_state_dict(torch.load(ckpt, weights_only=True))
    model.eval()
    templates = bridge_mimic.core_mimic.DEFAULT_TEMPLATES
    tokens = open_clip.get_tokenizer(TINY)([t.format(c) for c in ["bird", "cat", "dog"] for t in templates])
    with torch.no_grad():
        text = model.encode_text(tokens)
    text = (text / text.norm(dim=-1, keepdim=True)).reshape(3, len(templates), -1).mean(1)
    text = (text / text.norm(dim=-1, keepdim=True)).numpy()
    scale = float(model.logit_scale.detach().exp())
    assert info["logit_scale"] == pytest.approx(scale, rel=1e-5) and scale > 1
    np.testing.assert_allclose(head.weight, scale * text, rtol=1e-4, atol=1e-4)
    assert info["model"] == dict(zoo_model="open-clip-torch", clip_model=TINY, pretrained=ckpt)


def test_zero_shot_through_the_operator(fo, foo, tiny_embedded):
    dataset, ckpt = tiny_embedded
    params = dict(
        embeddings_field="clip", label_field="ground_truth", reference="zero_shot", score_field="zs",
        issue_tag="zs_issue", device="cpu", templates=["a photo of a {}.", "a {}."],
    )
    result = _run(foo, dataset.view(), **params)
    scores = np.array(dataset.values("zs"), dtype=float)
    assert np.isfinite(scores).all() and result["scored"] == 30
    tagged = np.array(["zs_issue" in t for t in dataset.values("tags")])
    np.testing.assert_array_equal(tagged, scores < 0)
    config = dataset.get_run_info("zs").config
    assert config.classes == ["bird", "cat", "dog"] and config.model["clip_model"] == TINY
    assert config.templates == ["a photo of a {}.", "a {}."]


@pytest.mark.parametrize(
    "case,message", [("wrong_dim", "not that model's image embeddings"), ("unnormalised", "not L2-normalised")]
)
def test_zero_shot_refuses_vectors_that_are_not_the_models(fo, foo, bridge, tiny_embedded, case, message):
    dataset, ckpt = tiny_embedded
    identity = bridge.embeddings_model_identity(dataset, "clip")
    vectors = np.array(dataset.values("clip"))
    if case == "wrong_dim":
        rng = np.random.default_rng(0)
        vectors = rng.normal(size=(30, 8))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    else:
        vectors = vectors * 3
    field = f"fake_{case}"
    dataset.set_values(field, list(vectors.astype(np.float32)))
    from coreset_curation.bridge import commit, runs

    config = runs.make_config(runs.EMBEDDINGS, embeddings_field=field, model_identity=identity, target_kind="samples")
    commit.commit(dataset, field, config, dict(summary={}))
    params = dict(embeddings_field=field, label_field="ground_truth", reference="zero_shot", score_field="zs_bad")
    try:
        with pytest.raises(ValueError, match=message):
            _run(foo, dataset.view(), **params)
        assert dataset.get_field("zs_bad") is None
    finally:
        dataset.delete_run(field)  # its cleanup removes the field too
        assert dataset.get_field(field) is None
