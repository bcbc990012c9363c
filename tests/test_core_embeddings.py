"""The model side of compute_embeddings: FiftyOne's zoo path against open_clip itself, text towers, loading errors.

``core/embeddings.py`` is gone: models load through ``foz.load_zoo_model``. These
tests check that this path gives open_clip's own vectors, that zero-shot text
embeddings come from the same zoo model, and that bad weights are refused with
one sentence. Weights are random-init checkpoints in local files (nothing is
downloaded); a ResNet-18 zoo model gets its weights the documented offline
way, as files in ``fo.config.model_zoo_dir``.
"""

import os
import pickle
import socket
import uuid

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from coreset_curation.bridge.embeddings import zero_shot_text
from harness import tiny_clip

TINY = "coreset-test-tiny-core"
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
OTHER = "coreset-test-tiny-core-wide"
OTHER_CFG = {**TINY_CFG, "vision_cfg": {**TINY_CFG["vision_cfg"], "width": 96}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Registers two tiny architectures; returns (folder, checkpoint of TINY, source model)."""
    folder = tmp_path_factory.mktemp("tiny_core")
    tiny_clip(folder, OTHER, OTHER_CFG, seeds=())
    checkpoint = tiny_clip(folder, TINY, TINY_CFG)[1][0]
    source = open_clip.create_model(TINY, pretrained=checkpoint).eval()
    return folder, checkpoint, source


@pytest.fixture
def dataset(fo, tmp_path):
    """Six distinct sample images of scikit-learn (photos, crops), as a dataset."""
    from sklearn.datasets import load_sample_images

    paths = []
    for i in range(6):
        photo = load_sample_images().images[i % 2]
        path = tmp_path / f"photo_{i}.png"
        Image.fromarray(photo[40 * i : 40 * i + 200, 60 * i : 60 * i + 260]).save(path)
        paths.append(str(path))
    ds = fo.Dataset(f"coreset-core-emb-{uuid.uuid4().hex[:10]}")
    ds.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)
    yield ds
    ds.delete()


def _open_clip_direct(arch, ckpt, paths):
    net, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=ckpt)
    with torch.no_grad():
        return net.eval().encode_image(torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths])).numpy()


@pytest.mark.slow
def test_vit_b_32_checkpoint_through_the_zoo_gives_open_clips_vectors(bridge, dataset, tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "vit-b-32-random.pt"
    torch.save(open_clip.create_model("ViT-B-32", pretrained=None).state_dict(), ckpt)
    summary = bridge.compute_embeddings(dataset, clip_model="ViT-B-32", pretrained=str(ckpt), num_workers=0,
                                        device="cpu", normalize=False)
    ours = np.stack(dataset.values("clip_embeddings"))
    expected = _open_clip_direct("ViT-B-32", str(ckpt), dataset.values("filepath"))
    cosine = (ours * expected).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(expected, axis=1)
    assert summary["embedding_dims"] == [512] and cosine.min() > 0.9999
    np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-4)  # normalize=False: the raw vectors


def test_zero_shot_text_comes_from_the_same_zoo_model(bridge, tiny, dataset):
    _, ckpt, source = tiny
    bridge.compute_embeddings(dataset, clip_model=TINY, pretrained=ckpt, num_workers=0)
    templates = ["a photo of a {}.", "a drawing of a {}."]
    text, scale, model = zero_shot_text(dataset, "clip_embeddings", ["cat", "sailing boat"], templates)

    tokens = open_clip.get_tokenizer(TINY)([t.format(c) for c in ["cat", "sailing boat"] for t in templates])
    with torch.no_grad():
        f = source.encode_text(tokens)
    f = (f / f.norm(dim=-1, keepdim=True)).reshape(2, 2, -1).mean(1)
    np.testing.assert_allclose(text, (f / f.norm(dim=-1, keepdim=True)).numpy(), atol=1e-5)
    assert text.dtype == np.float32 and scale == pytest.approx(1 / 0.07, rel=1e-5)
    assert model == dict(zoo_model="open-clip-torch", clip_model=TINY, pretrained=ckpt)
    # the image vectors live in the same space: unit norm, the text tower's dimension
    assert np.allclose(np.linalg.norm(np.stack(dataset.values("clip_embeddings")), axis=1), 1, atol=1e-5)


@pytest.fixture
def zoo_dir(fo, tmp_path):
    """Empty model folders: fo.config.model_zoo_dir and torch hub's cache (FIFTYONE_MODEL_ZOO_DIR, TORCH_HOME)."""
    import torchvision

    previous, hub = fo.config.model_zoo_dir, torch.hub.get_dir()
    fo.config.model_zoo_dir = str(tmp_path / "zoo")
    torch.hub.set_dir(str(tmp_path / "torch_hub"))
    yield tmp_path, torchvision
    fo.config.model_zoo_dir = previous
    torch.hub.set_dir(hub)


def test_zoo_model_weights_offline_and_a_model_without_text_tower(bridge, fo, dataset, zoo_dir):
    import fiftyone.zoo as foz

    folder, torchvision = zoo_dir
    try:
        socket.getaddrinfo("download.pytorch.org", 443)
        online = True
    except OSError:
        online = False
    if not online:  # nothing in the zoo dir and no network: one sentence that says what to do
        with pytest.raises(ValueError, match=r"^model: the weights of resnet18-imagenet-torch must be downloaded .*"
                                             r"copy fo.config.model_zoo_dir"):
            bridge.compute_embeddings(dataset, "resnet18-imagenet-torch", num_workers=0)
        assert dataset.get_field("resnet18_imagenet_torch_embeddings") is None
    # the offline way: the files a download would have written (random-init weights stand in)
    state = torchvision.models.resnet18(weights=None).state_dict()
    for path in (folder / "zoo" / foz.get_zoo_model("resnet18-imagenet-torch").base_filename,  # FiftyOne's check
                 folder / "torch_hub" / "checkpoints" / os.path.basename(torchvision.models.ResNet18_Weights.DEFAULT.url)):
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
    summary = bridge.compute_embeddings(dataset, "resnet18-imagenet-torch", num_workers=0, device="cpu")
    assert summary["embeddings_fields"] == ["resnet18_imagenet_torch_embeddings"] and summary["embedding_dims"] == [512]
    with pytest.raises(ValueError, match="needs a model with a text tower.*resnet18-imagenet-torch, which has none"):
        zero_shot_text(dataset, "resnet18_imagenet_torch_embeddings", ["cat", "dog"], ["a photo of a {}."])


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling this creates the marker file


@pytest.mark.parametrize(
    "case,message",
    [
        ("unknown_architecture", r"^clip_model: 'ViT-B-3' is not an open_clip architecture \(close matches: ViT-B-32"),
        ("lowercase_architecture", r"close matches: .*ViT-B-32"),
        ("unknown_tag", r"^pretrained: 'laion2b_nope' is neither a pretrained tag of ViT-B-32 \(tags: .*openai"),
        ("missing_file", r"^pretrained: '.*nope.pt' is neither a pretrained tag"),
        ("directory", r"^pretrained: '.*' is neither a pretrained tag"),
        ("other_architecture", r"^pretrained: open_clip could not load .*into clip_model=coreset-test-tiny-core-wide"),
        ("npz", r"^pretrained: open_clip could not load .*\.npz"),
        ("garbage", r"^pretrained: open_clip could not load .*garbage.pt"),
        ("malicious", r"^pretrained: refusing .*evil.pt: it holds Python objects besides tensors"),
        ("malicious_raw_pickle", r"^pretrained: refusing .*evil.pt: it holds Python objects besides tensors"),
        ("offline_tag", r"^pretrained: the weights of open-clip-torch \(ViT-B-32, laion2b_s34b_b79k\) must be downloaded"),
        ("device", r"^device must be 'auto'"),
    ],
)
def test_bad_weights_are_refused_with_one_sentence(bridge, tiny, dataset, tmp_path, case, message):
    folder, ckpt, _ = tiny
    kwargs = dict(clip_model=TINY, pretrained=ckpt, num_workers=0)
    marker = tmp_path / "pwned"
    if case == "unknown_architecture":
        kwargs["clip_model"] = "ViT-B-3"
    elif case == "lowercase_architecture":
        kwargs["clip_model"] = "vit-b-32"
    elif case in ("unknown_tag", "offline_tag"):
        kwargs.update(clip_model="ViT-B-32", pretrained="laion2b_nope" if case == "unknown_tag" else "laion2b_s34b_b79k")
        if case == "offline_tag":
            try:
                socket.getaddrinfo("huggingface.co", 443)
                pytest.skip("huggingface.co is reachable: the weights would be downloaded")
            except OSError:
                pass
    elif case == "missing_file":
        kwargs["pretrained"] = str(tmp_path / "nope.pt")
    elif case == "directory":
        kwargs["pretrained"] = str(tmp_path)
    elif case == "other_architecture":
        kwargs["clip_model"] = OTHER
    elif case == "npz":
        np.savez(tmp_path / "weights.npz", w=np.zeros(3))
        kwargs["pretrained"] = str(tmp_path / "weights.npz")
    elif case == "garbage":
        (tmp_path / "garbage.pt").write_bytes(np.random.default_rng(0).bytes(4096))
        kwargs["pretrained"] = str(tmp_path / "garbage.pt")
    elif case.startswith("malicious"):
        if case == "malicious":
            torch.save({"visual.proj": torch.zeros(2), "x": _Evil(str(marker))}, tmp_path / "evil.pt")
        else:
            (tmp_path / "evil.pt").write_bytes(pickle.dumps({"x": _Evil(str(marker))}, protocol=2))
        kwargs["pretrained"] = str(tmp_path / "evil.pt")
    elif case == "device":
        kwargs["device"] = "tpu"
    with pytest.raises(ValueError, match=message) as error:
        bridge.compute_embeddings(dataset, **kwargs)
    assert "\n" not in str(error.value) and not marker.exists()
    assert dataset.get_field("clip_embeddings") is None and dataset.list_runs() == []
