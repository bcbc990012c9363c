"""The compute_embeddings operator on real FiftyOne datasets in real MongoDB.

A tiny random-init open_clip architecture is registered with open_clip's
``add_model_config`` and its weights saved to a checkpoint, which the operator
loads through ``pretrained=<path>`` (the offline route). The operator runs
in-process, for immediate and for queued delegated runs, so the registration
holds for both.
"""

import json
import uuid

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from conftest import PLUGIN_NAME

EMBED = f"{PLUGIN_NAME}/compute_embeddings"
ZCORE = f"{PLUGIN_NAME}/compute_zcore_scores"
TINY = "coreset-test-tiny-operator"
TINY_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
DIM = TINY_CFG["embed_dim"]


def register_tiny_model(folder):
    """Registers the tiny architecture in this process; returns a checkpoint path."""
    config = folder / f"{TINY}.json"
    config.write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    net = open_clip.create_model(TINY, pretrained=None)
    ckpt = folder / "tiny.pt"
    torch.save(net.state_dict(), ckpt)
    return str(ckpt)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return register_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="module")
def foo(fo):
    import fiftyone.operators as operators

    return operators


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(24):
        p = folder / f"img_{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, size=(24, 28, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


@pytest.fixture
def datasets(fo):
    made = []

    def build(paths):
        dataset = fo.Dataset(f"coreset-emb-{uuid.uuid4().hex[:10]}")
        dataset.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)
        made.append(dataset)
        return dataset

    yield build
    for dataset in made:
        if not dataset.deleted:
            dataset.delete()


def _run(foo, view, **params):
    return foo.execute_operator(EMBED, ctx=dict(view=view, params=params)).result


def _engine(bridge):
    import importlib

    return importlib.import_module(bridge.__name__.rsplit(".", 1)[0] + ".core.embeddings")


def test_sdk_call_embeds_readable_images_and_records_the_model(fo, foo, bridge, ckpt, images, tmp_path, datasets):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png")
    missing = str(tmp_path / "missing.png")
    paths = images[:6] + [missing, str(corrupt)] + images[6:8]
    dataset = datasets(paths)

    result = _run(foo, dataset.view(), model=TINY, pretrained=ckpt)  # every other param defaulted

    vectors = dataset.values("clip_embeddings")
    assert [i for i, v in enumerate(vectors) if v is None] == [6, 7]
    good = np.stack([vectors[i] for i in range(len(paths)) if i not in (6, 7)])
    assert good.shape == (8, DIM) and good.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(good, axis=1), 1.0, atol=1e-5)
    E = _engine(bridge)
    expected = E.embed_images(images[:8], TINY, ckpt, num_workers=0, device="cpu").embeddings
    np.testing.assert_allclose(good, expected, atol=1e-5)
    assert isinstance(dataset.get_field("clip_embeddings"), fo.core.fields.VectorField)

    assert result["embedded"] == 8 and result["failed"] == 2 and result["skipped_existing"] == 0
    examples = {e["filepath"]: e["error"] for e in result["failed_examples"]}
    assert set(examples) == {missing, str(corrupt)}
    assert "FileNotFoundError" in examples[missing]
    assert result["embedding_dim"] == DIM and result["device"] == "cpu"

    identity = bridge.embeddings_model_identity(dataset, "clip_embeddings")
    assert identity["architecture"] == TINY and identity["embedding_dim"] == DIM
    assert identity["pretrained"] == ckpt and len(identity["checkpoint_sha256"]) == 64
    assert identity["normalize"] is True
    config = dataset.get_run_info("clip_embeddings").config
    assert config.plugin == PLUGIN_NAME and config.model == TINY and config.status == "completed"
    assert bridge.embeddings_model_identity(dataset, "nope") is None
    # a rerun only retries the two unreadable files
    again = _run(foo, dataset.view(), model=TINY, pretrained=ckpt, num_workers=0)
    assert again["embedded"] == 0 and again["failed"] == 2 and again["skipped_existing"] == 8


def test_interrupted_run_resumes_without_recomputing(fo, foo, bridge, ckpt, images, datasets):
    dataset = datasets(images[:12])
    calls = []

    def killed_after_two_batches(fraction):
        calls.append(fraction)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        bridge.compute_embeddings(
            dataset, TINY, ckpt, batch_size=2, num_workers=0, chunk_size=4, progress=killed_after_two_batches
        )
    done = [i for i, v in enumerate(dataset.values("clip_embeddings")) if v is not None]
    assert done == [0, 1, 2, 3]
    assert dataset.get_run_info("clip_embeddings").config.status == "interrupted"
    before = dataset.values("clip_embeddings")[:4]
    stamps = dataset.values("last_modified_at")[:4]

    result = _run(foo, dataset.view(), model=TINY, pretrained=ckpt, num_workers=0, batch_size=3)
    assert result["embedded"] == 8 and result["skipped_existing"] == 4 and result["failed"] == 0
    vectors = dataset.values("clip_embeddings")
    assert all(v is not None for v in vectors)
    for old, new in zip(before, vectors[:4]):
        np.testing.assert_array_equal(old, new)
    assert dataset.values("last_modified_at")[:4] == stamps  # not rewritten
    assert dataset.get_run_info("clip_embeddings").config.status == "completed"

    # skip_existing=False recomputes the whole view
    result = _run(foo, dataset.limit(5), model=TINY, pretrained=ckpt, num_workers=0, skip_existing=False)
    assert result["embedded"] == 5 and result["skipped_existing"] == 0


def test_delegated_run_executes_from_the_queue(fo, foo, ckpt, images, datasets):
    from fiftyone.operators.delegated import DelegatedOperationService

    dataset = datasets(images[:6])
    queued = foo.execute_operator(
        EMBED,
        ctx=dict(view=dataset.view(), params=dict(model=TINY, pretrained=ckpt, num_workers=0, embeddings_field="e")),
        request_delegation=True,
    )
    assert queued.delegated
    assert dataset.get_field("e") is None
    service = DelegatedOperationService()
    service.execute_queued_operations(dataset_name=dataset.name)
    dataset.reload()
    assert all(v is not None and len(v) == DIM for v in dataset.values("e"))
    doc = service.get(queued.result["id"])
    assert doc.run_state == "completed", doc.run_state
    assert doc.result.result["embedded"] == 6


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize(
    "case,message",
    [
        ("architecture", "Unknown open_clip architecture"),
        ("tag", "valid tags: .*laion2b_s34b_b79k"),
        ("garbage_ckpt", "not a readable PyTorch checkpoint"),
        ("missing_ckpt", "not found"),
        ("malicious_ckpt", "Refusing checkpoint"),
        ("string_field", "not a vector field"),
        ("builtin_field", "plain field name"),
        ("other_dim", "skip_existing=False"),
        ("other_model", "mixing models"),
        ("video", r"to_frames\(sample_frames=True\)"),
    ],
)
def test_bad_input_is_refused_before_writing(fo, foo, bridge, ckpt, images, tmp_path, datasets, case, message):
    dataset = datasets(images[:3])
    params = dict(model=TINY, pretrained=ckpt, num_workers=0)
    field = "clip_embeddings"
    if case == "architecture":
        params["model"] = "ViT-B-3"
    elif case == "tag":
        params.update(model="ViT-B-32", pretrained="laion2b_nonexistent")
    elif case == "garbage_ckpt":
        bad = tmp_path / "garbage.pt"
        bad.write_bytes(np.random.default_rng(0).bytes(4096))
        params["pretrained"] = str(bad)
    elif case == "missing_ckpt":
        params["pretrained"] = str(tmp_path / "nope.pt")
    elif case == "malicious_ckpt":
        evil = tmp_path / "evil.pt"
        torch.save({"visual.proj": torch.zeros(2), "x": _Evil(str(tmp_path / "pwned"))}, evil)
        params["pretrained"] = str(evil)
    elif case == "string_field":
        dataset.set_values(field, ["a", "b", "c"])
    elif case == "builtin_field":
        params["embeddings_field"] = field = "filepath"
    elif case == "other_dim":
        dataset.set_values(field, [np.zeros(8, np.float32)] + [None, None])
    elif case == "other_model":
        _run(foo, dataset.limit(1), **params)
        params["normalize"] = False
    elif case == "video":
        dataset = datasets([str(tmp_path / "clip.mp4")])
        assert dataset.media_type == "video"
    before = dataset.values(field) if dataset.get_field(field) is not None else None
    runs = dataset.list_runs()

    with pytest.raises(Exception, match=message):
        _run(foo, dataset.view(), **params)
    assert not (tmp_path / "pwned").exists()
    if before is None:
        assert dataset.get_field(field) is None
    else:
        assert str(dataset.values(field)) == str(before)
    assert dataset.list_runs() == runs


def test_recompute_with_another_dimension_and_skip_existing_false(fo, foo, ckpt, images, datasets):
    dataset = datasets(images[:3])
    dataset.set_values("clip_embeddings", [np.zeros(8, np.float32)] * 3)
    result = _run(foo, dataset.view(), model=TINY, pretrained=ckpt, num_workers=0, skip_existing=False)
    assert result["embedded"] == 3
    assert {len(v) for v in dataset.values("clip_embeddings")} == {DIM}


def test_frames_view_of_a_video_dataset(fo, foo, ckpt, images, tmp_path, datasets):
    dataset = datasets([str(tmp_path / "video.mp4")])
    sample = dataset.first()
    for i in range(3):
        sample.frames[i + 1] = fo.Frame(filepath=images[i])
    sample.save()
    frames = dataset.to_frames(sample_frames=False)  # frames already on disk
    result = _run(foo, frames, model=TINY, pretrained=ckpt, num_workers=0)
    assert result["embedded"] == 3
    # written through to the video dataset's frames
    assert all(v is not None and len(v) == DIM for v in dataset.values("frames.clip_embeddings")[0])


def test_form_lists_architectures_and_the_tags_of_the_chosen_one(fo, foo, images, datasets):
    from fiftyone.operators.executor import ExecutionContext

    dataset = datasets(images[:1])
    operator = foo.get_operator(EMBED)
    ctx = ExecutionContext(request_params=dict(dataset_name=dataset.name, params=dict(model="RN50")))
    properties = operator.resolve_input(ctx).type.properties
    models = [c.value for c in properties["model"].view.choices]
    assert "ViT-B-32" in models and TINY in models
    tags = [c.value for c in properties["pretrained"].view.choices]
    assert tags == open_clip.list_pretrained_tags_by_model("RN50")
    assert properties["pretrained"].view.to_json()["allow_user_input"] is True
    assert properties["embeddings_field"].default == "clip_embeddings"
    required = {name for name, p in properties.items() if p.required}
    assert required == {"model", "pretrained"}


def test_raw_images_to_embeddings_to_zcore_scores(fo, foo, ckpt, images, datasets):
    dataset = datasets(images[:20])
    _run(foo, dataset.view(), model=TINY, pretrained=ckpt, num_workers=0)
    result = foo.execute_operator(
        ZCORE,
        ctx=dict(view=dataset.view(), params=dict(embeddings_field="clip_embeddings", n_samples=2000, seed=0)),
    ).result
    assert result["scored"] == 20
    scores = dataset.values("zcore_score")
    assert all(s is not None and 0.0 <= s <= 1.0 for s in scores)


def test_another_model_is_refused_even_when_the_old_vectors_are_outside_the_view(fo, foo, ckpt, images, datasets):
    dataset = datasets(images[:3])
    _run(foo, dataset.limit(1), model=TINY, pretrained=ckpt, num_workers=0)
    with pytest.raises(Exception, match="mixing models"):
        _run(foo, dataset.skip(1), model=TINY, pretrained=ckpt, num_workers=0, normalize=False)
    assert sum(v is not None for v in dataset.values("clip_embeddings")) == 1
    # the same model fills the rest
    result = _run(foo, dataset.skip(1), model=TINY, pretrained=ckpt, num_workers=0)
    assert result["embedded"] == 2
