"""Tests of core.embeddings with a real (tiny, random-init) open_clip model.

The architecture is registered through open_clip's own ``add_model_config``;
its weights are saved to a checkpoint file and loaded back through
``pretrained=<path>``, the same route a user's checkpoint takes.
"""

import hashlib
import json
import os
import pickle

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from coreset_curation.core import embeddings as E

TINY = "coreset-test-tiny-vit"
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
DIM = TINY_CFG["embed_dim"]


@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory):
    """Registers the tiny architecture with open_clip; returns its config folder."""
    root = tmp_path_factory.mktemp("tiny_model")
    (root / f"{TINY}.json").write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(root / f"{TINY}.json")
    assert TINY in open_clip.list_models()
    return root


@pytest.fixture(scope="module")
def tiny(tiny_arch):
    """(source model, checkpoint path, loaded model) shared by the module."""
    root = tiny_arch
    torch.manual_seed(0)
    source = open_clip.create_model(TINY, pretrained=None).eval()
    ckpt = root / "tiny.pt"
    torch.save(source.state_dict(), ckpt)
    loaded = E.load_model(TINY, str(ckpt), device="cpu")
    return source, str(ckpt), loaded


def _write_images(folder, n, seed=0):
    rng = np.random.default_rng(seed)
    modes = ["RGB", "L", "RGBA", "P"]
    paths = []
    for i in range(n):
        h, w = int(rng.integers(20, 80)), int(rng.integers(20, 80))
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        im = Image.fromarray(arr).convert(modes[i % len(modes)])
        p = folder / f"img_{i:03d}.png"
        im.save(p)
        paths.append(str(p))
    return paths


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return _write_images(tmp_path_factory.mktemp("images"), 7)


def _collect(paths, loaded, **kw):
    chunks = list(E.iter_embeddings(paths, loaded, **kw))
    pos = np.concatenate([c[0] for c in chunks])
    vec = np.concatenate([c[1] for c in chunks])
    failed = [f for c in chunks for f in c[2]]
    return pos, vec, failed, chunks


# ---------------------------------------------------------------- images


def test_shapes_and_unit_norm(tiny, images):
    _, _, loaded = tiny
    res = E.embed_images(images, loaded=loaded, batch_size=4, num_workers=0)
    assert res.embeddings.shape == (len(images), DIM)
    assert res.embeddings.dtype == np.float32
    assert res.failed == []
    assert res.ok.all()
    np.testing.assert_allclose(np.linalg.norm(res.embeddings, axis=1), 1.0, atol=1e-5)
    assert res.identity["architecture"] == TINY
    assert res.identity["embedding_dim"] == DIM
    # distinct images give distinct embeddings
    assert np.unique(res.embeddings.round(5), axis=0).shape[0] == len(images)


def test_unnormalized_matches_source_model(tiny, images):
    source, _, loaded = tiny
    raw = E.embed_images(images, loaded=loaded, num_workers=0, normalize=False).embeddings
    norms = np.linalg.norm(raw, axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-3)
    # the checkpoint round trip reproduces the source model exactly
    preprocess = loaded.preprocess
    x = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in images])
    with torch.no_grad():
        expected = source.encode_image(x).numpy()
    np.testing.assert_allclose(raw, expected, rtol=1e-4, atol=1e-5)
    unit = E.embed_images(images, loaded=loaded, num_workers=0).embeddings
    np.testing.assert_allclose(unit, raw / norms[:, None], atol=1e-5)


def test_deterministic_across_runs_and_workers(tiny, images):
    _, _, loaded = tiny
    a = E.embed_images(images, loaded=loaded, batch_size=3, num_workers=0).embeddings
    b = E.embed_images(images, loaded=loaded, batch_size=3, num_workers=0).embeddings
    c = E.embed_images(images, loaded=loaded, batch_size=3, num_workers=2).embeddings
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, c, atol=1e-6)


@pytest.mark.parametrize("batch_size", [1, 6, 7, 8, 64])
def test_batch_boundaries(tiny, images, batch_size):
    _, _, loaded = tiny
    ref = E.embed_images(images, loaded=loaded, batch_size=len(images), num_workers=0).embeddings
    pos, vec, failed, chunks = _collect(images, loaded, batch_size=batch_size, num_workers=0)
    n = len(images)
    expected_sizes = [min(batch_size, n - s) for s in range(0, n, batch_size)]
    assert [len(c[0]) for c in chunks] == expected_sizes
    assert pos.dtype == np.int64
    np.testing.assert_array_equal(pos, np.arange(n))
    assert failed == []
    np.testing.assert_allclose(vec, ref, atol=1e-5)


def test_empty_input(tiny):
    _, _, loaded = tiny
    seen = []
    assert list(E.iter_embeddings([], loaded, progress=seen.append)) == []
    assert seen == [1.0]
    res = E.embed_images([], loaded=loaded)
    assert res.embeddings.shape == (0, DIM)


def test_bad_images_are_reported_and_skipped(tiny, images, tmp_path):
    _, _, loaded = tiny
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"this is not a png at all")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(open(images[0], "rb").read()[:60])
    missing = tmp_path / "missing.jpg"
    paths = [images[0], str(missing), str(corrupt), str(truncated), images[1], images[2]]
    bad = {1, 2, 3}

    pos, vec, failed, chunks = _collect(paths, loaded, batch_size=2, num_workers=2)
    assert sorted(p for p, _ in failed) == sorted(bad)
    assert all(isinstance(msg, str) and msg for _, msg in failed)
    assert "FileNotFoundError" in dict(failed)[1]
    np.testing.assert_array_equal(pos, [0, 4, 5])
    # the batch [corrupt, truncated] has no good image: empty (0, D) vectors
    empty = [c for c in chunks if len(c[0]) == 0]
    assert len(empty) == 1 and empty[0][1].shape == (0, DIM)
    good = E.embed_images([images[0], images[1], images[2]], loaded=loaded, num_workers=0)
    np.testing.assert_allclose(vec, good.embeddings, atol=1e-5)

    res = E.embed_images(paths, loaded=loaded, batch_size=4, num_workers=0)
    np.testing.assert_array_equal(np.flatnonzero(~res.ok), sorted(bad))
    assert np.isnan(res.embeddings[sorted(bad)]).all()
    np.testing.assert_allclose(res.embeddings[[0, 4, 5]], good.embeddings, atol=1e-5)


def test_jpeg_and_progress(tiny, images, tmp_path):
    _, _, loaded = tiny
    jpg = tmp_path / "big.jpg"
    Image.open(images[0]).convert("RGB").resize((400, 300)).save(jpg, quality=95)
    seen = []
    res = E.embed_images([str(jpg)] + images, loaded=loaded, batch_size=3, num_workers=0, progress=seen.append)
    assert res.ok.all()
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 3
    assert all(0.0 <= f <= 1.0 for f in seen)


def test_argument_validation(tiny, images):
    _, _, loaded = tiny
    with pytest.raises(ValueError, match="paths"):
        list(E.iter_embeddings(images[0], loaded))
    with pytest.raises(ValueError, match="batch_size"):
        list(E.iter_embeddings(images, loaded, batch_size=0))
    with pytest.raises(ValueError, match="num_workers"):
        list(E.iter_embeddings(images, loaded, num_workers=-1))
    with pytest.raises(ValueError, match="progress"):
        list(E.iter_embeddings(images, loaded, progress=0.5))
    with pytest.raises(ValueError, match="loaded"):
        list(E.iter_embeddings(images, ("not", "a", "model")))
    with pytest.raises(ValueError, match="device"):
        E.load_model(TINY, None, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            E.load_model(TINY, None, device="cuda")


# ---------------------------------------------------------------- loading


def test_unknown_architecture_lists_close_matches():
    with pytest.raises(ValueError, match="Unknown open_clip architecture") as err:
        E.load_model("ViT-B-3", None, device="cpu")
    assert "ViT-B-32" in str(err.value)
    with pytest.raises(ValueError, match="ViT-B-32"):
        E.load_model("vit-b-32", None, device="cpu")
    assert "ViT-B-32" in E.list_architectures()


def test_unknown_tag_lists_valid_tags():
    with pytest.raises(ValueError, match="Unknown pretrained tag") as err:
        E.load_model("ViT-B-32", "laion2b_nonexistent", device="cpu")
    msg = str(err.value)
    for tag in ("laion2b_s34b_b79k", "openai", "datacomp_xl_s13b_b90k"):
        assert tag in msg
    assert "openai" in E.list_pretrained_tags("ViT-B-32")


def test_missing_and_corrupt_checkpoints(tiny_arch, tmp_path):
    with pytest.raises(ValueError, match="not found"):
        E.load_model(TINY, str(tmp_path / "nope.pt"), device="cpu")
    with pytest.raises(ValueError, match="not a file"):
        E.load_model(TINY, str(tmp_path), device="cpu")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(2048))
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        E.load_model(TINY, str(garbage), device="cpu")
    not_sd = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], not_sd)
    with pytest.raises(ValueError, match="state dict"):
        E.load_model(TINY, str(not_sd), device="cpu")


def test_checkpoint_of_other_architecture_is_rejected(tiny, tmp_path):
    source, _, _ = tiny
    sd = {k: v for k, v in source.state_dict().items() if not k.startswith("visual.transformer.resblocks.1")}
    partial = tmp_path / "partial.pt"
    torch.save(sd, partial)
    with pytest.raises(ValueError, match="does not fit"):
        E.load_model(TINY, str(partial), device="cpu")


def test_wrapped_checkpoint_formats_load(tiny, images, tmp_path):
    source, _, loaded = tiny
    ref = E.embed_images(images[:2], loaded=loaded, num_workers=0).embeddings
    wrapped = tmp_path / "wrapped.pth"
    sd = {"module." + k: v for k, v in source.state_dict().items()}
    torch.save({"state_dict": sd, "epoch": 3}, wrapped)
    other = E.load_model(TINY, wrapped, device="cpu")  # PathLike accepted
    got = E.embed_images(images[:2], loaded=other, num_workers=0).embeddings
    np.testing.assert_allclose(got, ref, atol=1e-6)

    safetensors = pytest.importorskip("safetensors.torch")
    st = tmp_path / "tiny.safetensors"
    safetensors.save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(st))
    other = E.load_model(TINY, str(st), device="cpu")
    got = E.embed_images(images[:2], loaded=other, num_workers=0).embeddings
    np.testing.assert_allclose(got, ref, atol=1e-6)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        # unpickling this opens (creates) the marker file
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("fmt", ["torch_zip", "raw_pickle"])
def test_malicious_checkpoint_is_refused_without_running_code(tiny_arch, tmp_path, fmt):
    # control: the payload really runs when unpickled the unsafe way
    control = tmp_path / "control_marker"
    pickle.loads(pickle.dumps(_Evil(str(control)))).close()
    assert control.exists()

    marker = tmp_path / "pwned_marker"
    ckpt = tmp_path / "evil.pt"
    if fmt == "torch_zip":
        torch.save({"visual.proj": torch.zeros(2), "x": _Evil(str(marker))}, ckpt)
    else:
        ckpt.write_bytes(pickle.dumps({"x": _Evil(str(marker))}, protocol=2))
    with pytest.raises(ValueError, match="Refusing checkpoint"):
        E.load_model(TINY, str(ckpt), device="cpu")
    assert not marker.exists()


def test_model_identity(tiny):
    _, ckpt, loaded = tiny
    ident = E.model_identity(TINY, ckpt)
    assert ident["architecture"] == TINY
    assert ident["embedding_dim"] == DIM
    assert ident["pretrained"] == os.path.abspath(ckpt)
    assert ident["checkpoint_sha256"] == hashlib.sha256(open(ckpt, "rb").read()).hexdigest()
    assert loaded.identity == ident
    tag = E.model_identity("ViT-B-32", "openai")
    assert tag["pretrained"] == "openai" and tag["embedding_dim"] == 512
    assert "checkpoint_sha256" not in tag


def test_loaded_model_unpacks_as_tuple(tiny):
    _, _, loaded = tiny
    model, preprocess, tokenizer, device = loaded
    assert device == torch.device("cpu")
    assert not model.training
    assert loaded.embedding_dim == DIM


# ---------------------------------------------------------------- text


def test_text_embeddings_shape_norm_and_order(tiny):
    source, _, loaded = tiny
    names = ["cat", "dog", "sailing boat"]
    templates = ["a photo of a {}.", "a drawing of a {}.", lambda c: f"itap of a {c}"]
    emb = E.text_embeddings(names, loaded, templates)
    assert emb.shape == (3, DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)

    rev = E.text_embeddings(names[::-1], loaded, templates)
    np.testing.assert_allclose(rev, emb[::-1], atol=1e-5)
    single = E.text_embeddings(["dog"], loaded, templates)
    np.testing.assert_allclose(single[0], emb[1], atol=1e-5)

    # the CLIP zero-shot recipe: normalised mean of normalised prompt embeddings
    tok = open_clip.get_tokenizer(TINY)
    prompts = ["a photo of a dog.", "a drawing of a dog.", "itap of a dog"]
    with torch.no_grad():
        f = source.encode_text(tok(prompts))
    f = f / f.norm(dim=-1, keepdim=True)
    m = f.mean(0)
    np.testing.assert_allclose(emb[1], (m / m.norm()).numpy(), atol=1e-5)
    assert not np.allclose(emb[0], emb[1], atol=1e-3)


def test_text_embeddings_validation_and_logit_scale(tiny):
    source, _, loaded = tiny
    with pytest.raises(ValueError, match="class_names"):
        E.text_embeddings("cat", loaded)
    with pytest.raises(ValueError, match="class_names"):
        E.text_embeddings([], loaded)
    with pytest.raises(ValueError, match="template"):
        E.text_embeddings(["cat"], loaded, ["no placeholder"])
    assert E.logit_scale(loaded) == pytest.approx(float(source.logit_scale.detach().exp()))
    assert E.logit_scale(loaded) == pytest.approx(1 / 0.07, rel=1e-5)
