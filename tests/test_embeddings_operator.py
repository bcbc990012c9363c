"""compute_embeddings on real FiftyOne datasets in real MongoDB, through FiftyOne's model zoo.

Models are random-init: a tiny open_clip architecture (registered with open_clip's
``add_model_config``) saved to checkpoint files and loaded through
``foz.load_zoo_model("open-clip-torch", pretrained=<path>)``, and a torchvision
ResNet-18 passed as a FiftyOne ``TorchImageModel`` object. Nothing is downloaded.
"""

import os
import signal
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from conftest import PLUGIN_NAME, ROOT
from harness import TINY_CLIP, tiny_clip

EMBED = f"{PLUGIN_NAME}/compute_embeddings"
ZCORE = f"{PLUGIN_NAME}/compute_zcore_scores"
TINY = "coreset-test-tiny-operator"
DIM = TINY_CLIP["embed_dim"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Registers the tiny architecture; returns (config path, checkpoint A, checkpoint B)."""
    config, (first, second) = tiny_clip(tmp_path_factory.mktemp("tiny_model"), TINY, seeds=(0, 1))
    return config, first, second


@pytest.fixture(scope="module")
def ckpt(tiny):
    return tiny[1]


@pytest.fixture(scope="module")
def foo(fo):
    import fiftyone.operators as operators

    return operators


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """24 distinct digit images (sklearn's), upscaled to 40x40 PNGs."""
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, digit in enumerate(load_digits().images[:24]):
        path = folder / f"digit_{i:02d}.png"
        Image.fromarray((digit * 15).astype(np.uint8)).resize((40, 40)).convert("RGB").save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def datasets(fo):
    made = []

    def build(paths, boxes=0):
        dataset = fo.Dataset(f"coreset-emb-{uuid.uuid4().hex[:10]}")
        samples = []
        for i, p in enumerate(paths):
            dets = [fo.Detection(label=str(k), bounding_box=[0.1 + 0.2 * k, 0.1 * (i % 3), 0.3, 0.5]) for k in range(boxes)]
            samples.append(fo.Sample(filepath=p, ground_truth=fo.Detections(detections=dets)))
        dataset.add_samples(samples, progress=False)
        made.append(dataset)
        return dataset

    yield build
    for dataset in made:
        if not dataset.deleted:
            dataset.delete()


def resnet18(fo):
    """A random-init torchvision ResNet-18 as FiftyOne's TorchImageModel (512-dim pooled features)."""
    import fiftyone.utils.torch as fout

    torch.manual_seed(0)
    return fout.TorchImageModel(fout.TorchImageModelConfig(dict(
        entrypoint_fcn="torchvision.models.resnet18", entrypoint_args=dict(weights=None), embeddings_layer="<fc",
        image_size=[64, 64], image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225], device="cpu")))


def _run(foo, view, **params):
    """The SDK call of the operator: ``foo.get_operator(uri)(view, ...)`` returns the summary."""
    return foo.get_operator(EMBED)(view, **params)


def _direct(ckpt, paths):
    """Unit image embeddings computed by open_clip itself, without FiftyOne."""
    net, _, preprocess = open_clip.create_model_and_transforms(TINY, pretrained=ckpt)
    with torch.no_grad():
        out = net.eval().encode_image(torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths]))
    return (out / out.norm(dim=-1, keepdim=True)).numpy()


def test_operator_embeds_readable_images_records_the_model_and_retries_only_failures(fo, foo, bridge, ckpt, images,
                                                                                     tmp_path, datasets):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png")
    missing = str(tmp_path / "missing.png")
    paths = images[:2] + [missing, str(corrupt)] + images[2:8]  # one batch of 4 holds both bad files
    dataset = datasets(paths)

    params = dict(clip_model=TINY, pretrained=ckpt, batch_size=4, num_workers=0)  # the App path: a generator
    assert foo.execute_operator(EMBED, ctx=dict(view=dataset.view(), params=params)).error is None

    vectors = dataset.values("clip_embeddings")
    assert [i for i, v in enumerate(vectors) if v is None] == [2, 3]
    good = np.stack([v for v in vectors if v is not None])
    assert good.dtype == np.float32 and good.shape == (8, DIM)
    np.testing.assert_allclose(good, _direct(ckpt, images[:8]), atol=1e-5)
    summary = dataset.load_run_results("clip_embeddings").summary
    assert summary["embedded"] == 8 and summary["failed"] == 2 and summary["skipped_existing"] == 0
    errors = {e["filepath"]: e["error"] for e in summary["failed_examples"]}
    assert set(errors) == {missing, str(corrupt)} and "FileNotFoundError" in errors[missing]
    assert "UnidentifiedImageError" in errors[str(corrupt)]
    identity = bridge.embeddings_model_identity(dataset, "clip_embeddings")
    assert identity["zoo_model"] == "open-clip-torch" and identity["kwargs"] == dict(clip_model=TINY, pretrained=ckpt)
    assert len(identity["checkpoint_sha256"]) == 64 and identity["normalize"] is True
    config = dataset.get_run_info("clip_embeddings").config
    assert config.status == "completed" and config.embedding_dim == DIM and config.plugin == PLUGIN_NAME

    again = _run(foo, dataset.view(), clip_model=TINY, pretrained=ckpt, num_workers=0)
    assert again["embedded"] == 0 and again["failed"] == 2 and again["skipped_existing"] == 8
    dataset.delete_run("clip_embeddings")  # the run owns its field
    assert dataset.get_field("clip_embeddings") is None


def test_two_models_in_one_run_and_zcore_on_both(fo, foo, bridge, ckpt, images, datasets):
    dataset = datasets(images[:12])
    summary = bridge.compute_embeddings(dataset, ["open-clip-torch", resnet18(fo)], ["clip", "resnet"],
                                        clip_model=TINY, pretrained=ckpt, num_workers=0)
    assert summary["embeddings_fields"] == ["clip", "resnet"] and summary["embedding_dims"] == [DIM, 512]
    assert summary["embedded"] == 24 and summary["failed"] == 0
    resnet = np.stack(dataset.values("resnet"))
    assert resnet.shape == (12, 512) and np.unique(resnet.round(5), axis=0).shape[0] == 12
    assert bridge.embeddings_model_identity(dataset, "resnet")["model_class"] == "fiftyone.utils.torch.TorchImageModel"
    # the same model object again resumes; another ResNet (other weights) is refused
    assert bridge.compute_embeddings(dataset, resnet18(fo), "resnet", num_workers=0)["skipped_existing"] == 12
    other = resnet18(fo)
    torch.nn.init.zeros_(other._model.conv1.weight)
    with pytest.raises(ValueError, match="mixing models"):
        bridge.compute_embeddings(dataset, other, "resnet", num_workers=0)

    from fiftyone.operators.executor import ExecutionContext

    ctx = ExecutionContext(request_params=dict(dataset_name=dataset.name, params=dict(embeddings_field=["clip", "resnet"])))
    prop = foo.get_operator(ZCORE).resolve_input(ctx).type.properties["embeddings_field"]
    assert {c.value for c in prop.view.choices} >= {"clip", "resnet"} and not getattr(prop, "invalid", False)
    result = foo.get_operator(ZCORE)(dataset, ["clip", "resnet"], n_samples=2000, seed=0)
    assert result["scored"] == 12 and dataset.get_run_info("zcore_score").config.embeddings_fields == ["clip", "resnet"]


def test_patch_embeddings_one_distinct_vector_per_object(fo, foo, bridge, ckpt, images, datasets):
    dataset = datasets(images[:6], boxes=3)
    result = _run(foo, dataset.view(), clip_model=TINY, pretrained=ckpt, num_workers=0, patches_field="ground_truth")
    assert result["embeddings_fields"] == ["ground_truth.detections.clip_embeddings"]
    assert result["total"] == 18 and result["embedded"] == 18 and result["target_kind"] == "patches"
    patches = dataset.to_patches("ground_truth")  # a fresh patches view reads the vectors on the labels
    vectors = np.stack(patches.values("ground_truth.clip_embeddings"))
    assert vectors.shape == (18, DIM) and np.unique(vectors.round(5), axis=0).shape[0] == 18
    sample = dataset.first()
    crop = Image.open(sample.filepath).convert("RGB").crop((4, 0, 16, 20))  # the first box, [0.1, 0, 0.3, 0.5] of 40x40
    np.testing.assert_allclose(vectors[0], _direct_image(TINY, ckpt, crop), atol=1e-5)

    # a patches view: only its objects without a vector are embedded
    dataset.set_values("ground_truth.detections.clip_embeddings", [[None, d[1], d[2]] for d in
                       dataset.values("ground_truth.detections.clip_embeddings")])
    view = dataset.to_patches("ground_truth").match(fo.ViewField("ground_truth.label") != "2")
    again = _run(foo, view, clip_model=TINY, pretrained=ckpt, num_workers=0)
    assert again["total"] == 12 and again["embedded"] == 6 and again["skipped_existing"] == 6
    np.testing.assert_allclose(np.stack(dataset.to_patches("ground_truth").values("ground_truth.clip_embeddings")),
                               vectors, atol=1e-6)
    assert _run(foo, dataset.to_patches("ground_truth"), clip_model=TINY, pretrained=ckpt)["skipped_existing"] == 18
    dataset.delete_run("ground_truth_detections_clip_embeddings")
    assert "ground_truth.detections.clip_embeddings" not in dataset.get_field_schema(flat=True)
    assert dataset.count("ground_truth.detections") == 18  # the labels themselves are kept


def _direct_image(arch, ckpt, image):
    net, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=ckpt)
    with torch.no_grad():
        out = net.eval().encode_image(preprocess(image)[None])[0]
    return (out / out.norm()).numpy()


KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from harness import plugin_package
import fiftyone as fo, open_clip
open_clip.add_model_config({config!r})
bridge = __import__(plugin_package().__name__ + ".bridge", fromlist=["bridge"])
import time
calls = []
def progress(fraction):  # called after each batch of 2
    calls.append(fraction)
    if len(calls) >= 2:
        time.sleep(0.6)  # FiftyOne writes every 0.2 s, in the background: let the first batches land
    if len(calls) == 4:
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9: no cleanup, no run record update
bridge.compute_embeddings(fo.load_dataset({name!r}), clip_model={arch!r}, pretrained={ckpt!r}, batch_size=2,
                          num_workers=0, progress=progress)
"""


def test_resume_after_kill_9_embeds_only_the_missing_samples(fo, foo, tiny, images, datasets):
    config, ckpt, other = tiny
    dataset = datasets(images[:12])
    dataset.persistent = True
    script = KILLED_RUN.format(tests=str(ROOT / "tests"), config=config, name=dataset.name, arch=TINY, ckpt=ckpt)
    env = dict(os.environ, FIFTYONE_SHOW_PROGRESS_BARS="false")
    process = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True, timeout=120)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]

    dataset.reload()
    done = [v is not None for v in dataset.values("clip_embeddings")]
    assert 4 <= sum(done) < 12
    assert dataset.get_run_info("clip_embeddings").config.status == "running"
    kept = {i: (v, t) for i, v, t in zip(*dataset.values(["id", "clip_embeddings", "last_modified_at"])) if v is not None}
    with pytest.raises(Exception, match="mixing models"):  # the killed run's record still names its model
        _run(foo, dataset.view(), clip_model=TINY, pretrained=other, num_workers=0)

    result = _run(foo, dataset.view(), clip_model=TINY, pretrained=ckpt, num_workers=0)
    assert result["embedded"] == 12 - sum(done) and result["skipped_existing"] == sum(done)
    for i, v, t in zip(*dataset.values(["id", "clip_embeddings", "last_modified_at"])):
        if i in kept:
            np.testing.assert_array_equal(v, kept[i][0])
            assert t == kept[i][1]  # not rewritten
    np.testing.assert_allclose(np.stack(dataset.values("clip_embeddings")), _direct(ckpt, images[:12]), atol=1e-5)
    assert dataset.get_run_info("clip_embeddings").config.status == "completed"


def test_cancel_stops_between_batches_and_keeps_one_model(fo, bridge, tiny, images, datasets):
    _, ckpt, other = tiny
    dataset = datasets(images[:12])
    calls = []

    def cancel_after_two_batches(fraction):
        calls.append(fraction)
        if len(calls) == 2:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        bridge.compute_embeddings(dataset, clip_model=TINY, pretrained=ckpt, batch_size=3, num_workers=0,
                                  progress=cancel_after_two_batches)
    assert sum(v is not None for v in dataset.values("clip_embeddings")) == 6 and len(calls) == 2
    assert dataset.get_run_info("clip_embeddings").config.status == "interrupted"
    with pytest.raises(ValueError, match="mixing models"):
        bridge.compute_embeddings(dataset, clip_model=TINY, pretrained=other, num_workers=0, skip_existing=False)
    assert bridge.compute_embeddings(dataset, clip_model=TINY, pretrained=ckpt, num_workers=0)["embedded"] == 6


@pytest.mark.parametrize(
    "case,message",
    [
        ("other_checkpoint", "mixing models"),
        ("unrecorded_vectors", "did not record"),
        ("string_field", "already exists as a StringField"),
        ("builtin_field", "plain field name"),
        ("fields_per_model", "one distinct field per model"),
        ("not_a_zoo_model", "not a zoo model with embeddings.*close matches: open-clip-torch"),
        ("zoo_model_without_embeddings", "not a zoo model with embeddings"),
        ("patches_field", "not a Detection"),
        ("video", r"to_frames\(sample_frames=True\)"),
    ],
)
def test_bad_input_is_refused_before_writing(fo, foo, tiny, images, tmp_path, datasets, case, message):
    _, ckpt, other = tiny
    dataset = datasets(images[:3])
    params = dict(clip_model=TINY, pretrained=ckpt, num_workers=0)
    field = "clip_embeddings"
    if case == "other_checkpoint":
        _run(foo, dataset.limit(1), **params)
        params["pretrained"] = other
    elif case == "unrecorded_vectors":
        dataset.set_values(field, [np.ones(DIM, np.float32), None, None])
    elif case == "string_field":
        dataset.set_values(field, ["a", "b", "c"])
    elif case == "builtin_field":
        params["embeddings_field"] = field = "filepath"
    elif case == "fields_per_model":
        params.update(model=["open-clip-torch", "open-clip-torch"])
    elif case == "not_a_zoo_model":
        params["model"] = "open-clip-torc"
    elif case == "zoo_model_without_embeddings":
        params["model"] = "yolov8n-coco-torch"
    elif case == "patches_field":
        dataset.set_values("label", [fo.Classification(label="a")] * 3)
        params["patches_field"] = "label"
    elif case == "video":
        dataset = datasets([str(tmp_path / "clip.mp4")])
    before = str(dataset.values(field)) if dataset.get_field(field) is not None else None
    runs = dataset.list_runs()

    with pytest.raises(Exception, match=message):
        _run(foo, dataset.view(), **params)
    assert (str(dataset.values(field)) if dataset.get_field(field) is not None else None) == before
    assert dataset.list_runs() == runs


def test_frames_view_of_a_video_dataset(fo, foo, ckpt, images, tmp_path, datasets):
    dataset = datasets([str(tmp_path / "video.mp4")])
    sample = dataset.first()
    for i in range(3):
        sample.frames[i + 1] = fo.Frame(filepath=images[i])
    sample.save()
    result = _run(foo, dataset.to_frames(sample_frames=False), clip_model=TINY, pretrained=ckpt, num_workers=0)
    assert result["embedded"] == 3
    vectors = dataset.values("frames.clip_embeddings")[0]
    np.testing.assert_allclose(np.stack(vectors), _direct(ckpt, images[:3]), atol=1e-5)


def test_delegated_run_executes_from_the_queue(fo, foo, ckpt, images, datasets):
    from fiftyone.operators.delegated import DelegatedOperationService

    dataset = datasets(images[:4])
    queued = foo.get_operator(EMBED)(dataset, "open-clip-torch", "e", clip_model=TINY, pretrained=ckpt,
                                     num_workers=0, delegate=True)
    assert dataset.get_field("e") is None
    service = DelegatedOperationService()
    service.execute_queued_operations(dataset_name=dataset.name)
    doc = service.get(queued.result["id"])
    assert doc.run_state == "completed", doc.run_state
    assert doc.result.result["embedded"] == 4 and all(len(v) == DIM for v in dataset.values("e"))
    with pytest.raises(ValueError, match="Model object cannot be queued"):
        foo.get_operator(EMBED)(dataset, resnet18(fo), delegate=True)


def _form(foo, dataset, view=None, **params):
    from fiftyone.operators.executor import ExecutionContext

    request = dict(dataset_name=dataset.name, params=params)
    if view is not None:
        request["view"] = view._serialize()
    return foo.get_operator(EMBED).resolve_input(ExecutionContext(request_params=request)).type.properties


def test_form_offers_zoo_models_and_marks_bad_input_before_running(fo, foo, tiny, images, datasets):
    import fiftyone.zoo as foz

    _, ckpt, other = tiny
    dataset = datasets(images[:2], boxes=1)
    props = _form(foo, dataset, model=["open-clip-torch"], clip_model="RN50")
    assert {c.value for c in props["model"].view.choices} == set(foz.list_zoo_models(tags="embeddings"))
    assert [c.value for c in props["pretrained"].view.choices] == open_clip.list_pretrained_tags_by_model("RN50")
    assert props["embeddings_field"].default == ["clip_embeddings"] and "patches_field" in props

    props = _form(foo, dataset, model=["open-clip-torch", "dinov2-vits14-torch"], clip_model=TINY, pretrained=ckpt,
                  num_workers=0)
    assert props["embeddings_field"].default == ["clip_embeddings", "dinov2_vits14_torch_embeddings"]
    assert not any(getattr(p, "invalid", False) for p in props.values())

    _run(foo, dataset.view(), clip_model=TINY, pretrained=ckpt, num_workers=0)
    props = _form(foo, dataset, clip_model=TINY, pretrained=other)
    assert props["embeddings_field"].invalid and "mixing models" in props["embeddings_field"].error_message
    props = _form(foo, dataset, view=dataset.to_patches("ground_truth"), clip_model=TINY, pretrained=ckpt)
    assert "patches" in props and "patches_field" not in props and not props["embeddings_field"].invalid

    props = _form(foo, dataset, model=["open-clip-torch"], clip_model="ViT-B-32", pretrained="laion2b_s34b_b79k",
                  embeddings_field=["b32"])
    if not props["pretrained"].invalid:
        pytest.skip("huggingface.co is reachable or the weights are cached: the offline check does not apply")
    assert "pass pretrained=<path of a local checkpoint file>" in props["pretrained"].error_message
