"""Image and text embeddings with open_clip models.

``load_model`` builds an open_clip model from an architecture name and either
a published pretrained tag or a local checkpoint file. Checkpoints are always
read with ``torch.load(..., weights_only=True)`` (or safetensors), so a file
that would run code when unpickled is refused instead of executed.

``iter_embeddings`` streams ``(positions, vectors, failed)`` batches so that a
caller can store each chunk as it arrives (resumable runs); ``embed_images``
collects them into one array. Images that cannot be read are reported in
``failed`` and skipped, never fatal.
"""

import contextlib
import difflib
import hashlib
import logging
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
DEFAULT_TEMPLATES = ("a photo of a {}.",)

# torch's weights-only unpickler messages for a callable/class it refused to run
_CODE_REFUSAL = re.compile(
    r"unsupported global|unsupported class|unrecognized function|unsupported type", re.I
)
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".npz")


# --------------------------------------------------------------------------
# model loading


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A loaded open_clip model; unpacks as ``(model, preprocess, tokenizer, device)``."""

    model: torch.nn.Module
    preprocess: object
    tokenizer: object
    device: torch.device
    identity: dict = field(default_factory=dict)

    def __iter__(self):
        return iter((self.model, self.preprocess, self.tokenizer, self.device))

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return (self.model, self.preprocess, self.tokenizer, self.device)[i]

    @property
    def embedding_dim(self):
        return _embedding_dim(self.model)


def list_architectures():
    """Names of the open_clip architectures that can be built."""
    return list(open_clip.list_models())


def list_pretrained_tags(model):
    """Published pretrained tags of architecture ``model``."""
    _check_architecture(model)
    return list(open_clip.list_pretrained_tags_by_model(model))


def load_model(model=DEFAULT_MODEL, pretrained=DEFAULT_PRETRAINED, *, device="auto"):
    """Build an open_clip model for inference.

    Args:
        model: an architecture name from :func:`list_architectures`
        pretrained: a pretrained tag from :func:`list_pretrained_tags`, the
            path of a local checkpoint file (``.pt``/``.pth``/``.bin``/
            ``.safetensors``), or None for random weights (testing only)
        device: ``"auto"`` (cuda when available, else cpu), ``"cpu"``,
            ``"cuda"``, ``"cuda:1"``, ...

    Returns:
        a :class:`LoadedModel`, which unpacks as
        ``(model, preprocess, tokenizer, device)``
    """
    _check_architecture(model)
    dev = _resolve_device(device)
    kind, source = _resolve_pretrained(model, pretrained)

    state_dict = None
    kwargs = {}
    if kind == "tag":
        tag_cfg = open_clip.get_pretrained_cfg(model, source)
        if tag_cfg.get("quick_gelu") and not open_clip.get_model_config(model).get(
            "quick_gelu", False
        ):
            # the published weights were trained with QuickGELU
            kwargs["force_quick_gelu"] = True
        try:
            checkpoint = open_clip.download_pretrained(tag_cfg)
        except Exception as e:
            raise RuntimeError(
                f"Could not fetch the weights of pretrained={source!r} for "
                f"model={model!r} ({type(e).__name__}: {e}). Without network "
                "access, pass the path of a local checkpoint file as pretrained"
            ) from e
        if not checkpoint:
            raise RuntimeError(
                f"pretrained={source!r} for model={model!r} has no downloadable "
                "weights; pass the path of a local checkpoint file as pretrained"
            )
        state_dict = _read_checkpoint(checkpoint)
    elif kind == "path":
        state_dict = _read_checkpoint(source)

    # Build with the tag's preprocessing but without letting open_clip read any
    # weights: they are read above, safely, and loaded below.
    with _quiet_random_init_warning(kind != "none"):
        net, _, preprocess = open_clip.create_model_and_transforms(
            model,
            pretrained=source if kind == "tag" else None,
            load_weights=False,
            **kwargs,
        )
    if state_dict is not None:
        _load_state_dict(net, state_dict, model, source)
    elif kind == "npz":
        open_clip.load_checkpoint(net, source)  # numpy arrays, no pickle

    net.eval().to(dev)
    if _has_conv_trunk(net) and dev.type == "cpu":
        net = net.to(memory_format=torch.channels_last)
    tokenizer = open_clip.get_tokenizer(model)
    identity = model_identity(model, pretrained)
    return LoadedModel(net, preprocess, tokenizer, dev, identity)


def model_identity(model, pretrained):
    """What identifies the embeddings of a run: architecture, weights, dim."""
    _check_architecture(model)
    cfg = open_clip.get_model_config(model)
    ident = {
        "architecture": model,
        "pretrained": pretrained,
        "embedding_dim": int(cfg["embed_dim"]),
        "image_size": cfg.get("vision_cfg", {}).get("image_size"),
        "open_clip_version": open_clip.__version__,
    }
    kind, source = _resolve_pretrained(model, pretrained)
    if kind in ("path", "npz"):
        path = os.path.abspath(source)
        ident["pretrained"] = path
        ident["checkpoint_sha256"] = _file_sha256(path)
    return ident


@contextlib.contextmanager
def _quiet_random_init_warning(active):
    """Drop open_clip's "initialized randomly" warning when we load weights after."""

    def _filter(record):
        return not str(record.msg).startswith("No pretrained weights loaded for model")

    root = logging.getLogger()
    if active:
        root.addFilter(_filter)
    try:
        yield
    finally:
        if active:
            root.removeFilter(_filter)


def _check_architecture(model):
    if not isinstance(model, str) or not model:
        raise ValueError(
            f"model must be an open_clip architecture name such as "
            f"{DEFAULT_MODEL!r}, got {model!r}"
        )
    if model.startswith(("hf-hub:", "local-dir:")):
        raise ValueError(
            f"model={model!r}: hub and directory schemas are not supported; pass "
            "an architecture name and pretrained=<path of the checkpoint file>"
        )
    names = open_clip.list_models()
    if model in names:
        return
    lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(model, names, n=5, cutoff=0.5)
    if model.lower() in lower and lower[model.lower()] not in close:
        close.insert(0, lower[model.lower()])
    hint = f"close matches: {', '.join(close)}" if close else "no close match"
    raise ValueError(
        f"Unknown open_clip architecture model={model!r} ({hint}); see "
        f"list_architectures() for all {len(names)} names"
    )


def _resolve_device(device):
    if isinstance(device, torch.device):
        dev = device
    elif device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {device!r}"
            ) from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use 'auto' or 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:index]', got {device!r}")
    return dev


def _resolve_pretrained(model, pretrained):
    """Return ``(kind, source)`` with kind in none/tag/path/npz."""
    if pretrained is None or pretrained == "":
        return "none", None
    if not isinstance(pretrained, (str, os.PathLike)):
        raise ValueError(
            f"pretrained must be a pretrained tag or a checkpoint path, got {pretrained!r}"
        )
    text = os.fspath(pretrained)
    tags = open_clip.list_pretrained_tags_by_model(model)
    if isinstance(pretrained, str) and text in tags:
        return "tag", text
    looks_like_path = (
        isinstance(pretrained, os.PathLike)
        or os.sep in text
        or text.lower().endswith(_CHECKPOINT_SUFFIXES)
        or os.path.exists(text)
    )
    if not looks_like_path:
        valid = ", ".join(tags) if tags else "none (this architecture has no published weights)"
        raise ValueError(
            f"Unknown pretrained tag {text!r} for model={model!r}; valid tags: "
            f"{valid}. Or pass the path of a local checkpoint file"
        )
    if not os.path.exists(text):
        raise ValueError(f"pretrained checkpoint file not found: {text!r}")
    if not os.path.isfile(text):
        raise ValueError(f"pretrained={text!r} is not a file; pass the checkpoint file itself")
    if not os.access(text, os.R_OK):
        raise ValueError(f"pretrained checkpoint {text!r} is not readable (check permissions)")
    if os.path.splitext(text)[1] in (".npz", ".npy"):  # as open_clip dispatches them
        return "npz", text
    return "path", text


def _read_checkpoint(path):
    """Read a state dict without executing code from the file."""
    if str(path).lower().endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise ValueError(
                f"pretrained={path!r} is a safetensors file but the safetensors "
                "package is not installed (pip install safetensors)"
            ) from e
        try:
            obj = load_file(path, device="cpu")
        except Exception as e:
            raise ValueError(
                f"pretrained={path!r} is not a readable safetensors checkpoint "
                f"({type(e).__name__}: {e})"
            ) from e
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            if _CODE_REFUSAL.search(str(e)):
                raise ValueError(
                    f"Refusing checkpoint {path!r}: it holds Python objects besides "
                    "tensors, and loading it would run code from the file. Save "
                    "the model's state_dict() only (or use .safetensors)"
                ) from e
            raise ValueError(
                f"pretrained={path!r} is not a readable PyTorch checkpoint: it is "
                "corrupt or holds data other than tensors"
            ) from e
        except Exception as e:
            raise ValueError(
                f"pretrained={path!r} is not a readable PyTorch checkpoint "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            ) from e

    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(
            f"pretrained={path!r} does not hold a state dict (found "
            f"{type(obj).__name__}); save model.state_dict()"
        )
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise ValueError(
            f"pretrained={path!r} is not a state dict of tensors (e.g. entry {bad[0]!r})"
        )
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def _load_state_dict(net, state_dict, model, source):
    """Load an open_clip/OpenAI state dict, with open_clip's key conversions."""
    of = open_clip.factory
    sd = of.convert_state_dict(net, state_dict)
    if "positional_embedding" in sd and not hasattr(net, "positional_embedding"):
        sd = of.convert_to_custom_text_state_dict(sd)
    for key in ("logit_scale", "logit_bias"):
        target = getattr(net, key, None)
        if key in sd and target is not None and target.ndim != sd[key].ndim:
            sd[key] = sd[key].reshape(target.shape)
    if "logit_bias" not in sd and getattr(net, "logit_bias", None) is not None and "logit_scale" in sd:
        sd["logit_bias"] = torch.zeros_like(sd["logit_scale"])
    sd.pop("text.transformer.embeddings.position_ids", None)
    try:
        of.resize_pos_embed(sd, net)
        of.resize_text_pos_embed(sd, net)
        result = net.load_state_dict(sd, strict=False)
    except (RuntimeError, KeyError, ValueError) as e:
        raise ValueError(
            f"Checkpoint {source!r} does not fit architecture model={model!r}: "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from e
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"{len(result.missing_keys)} missing keys (e.g. {result.missing_keys[:3]})")
        if result.unexpected_keys:
            parts.append(
                f"{len(result.unexpected_keys)} unexpected keys (e.g. {result.unexpected_keys[:3]})"
            )
        raise ValueError(
            f"Checkpoint {source!r} does not fit architecture model={model!r}: "
            + "; ".join(parts)
            + ". Pick the architecture the checkpoint was trained with"
        )


_SHA_CACHE = {}


def _file_sha256(path):
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def _has_conv_trunk(net):
    return type(getattr(net, "visual", None)).__name__ == "ModifiedResNet"


def _embedding_dim(net):
    dim = getattr(getattr(net, "visual", None), "output_dim", None)
    if dim is None:
        proj = getattr(net, "text_projection", None)
        if isinstance(proj, torch.Tensor):
            dim = proj.shape[-1]
        elif isinstance(proj, torch.nn.Linear):
            dim = proj.out_features
    return int(dim) if dim is not None else 0


def _unpack(loaded):
    if isinstance(loaded, LoadedModel):
        return tuple(loaded)
    try:
        net, preprocess, tokenizer, dev = loaded
    except (TypeError, ValueError) as e:
        raise ValueError(
            "loaded must be the result of load_model(), i.e. "
            "(model, preprocess, tokenizer, device)"
        ) from e
    if not isinstance(net, torch.nn.Module) or not hasattr(net, "encode_image"):
        raise ValueError("loaded[0] must be an open_clip model; use load_model()")
    return net, preprocess, tokenizer, _resolve_device(dev)


# --------------------------------------------------------------------------
# images


class _ImageDataset(torch.utils.data.Dataset):
    def __init__(self, paths, preprocess, draft_size):
        self.paths = paths
        self.preprocess = preprocess
        self.draft_size = draft_size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            with Image.open(self.paths[i]) as im:
                if self.draft_size and im.format == "JPEG":
                    # decode large JPEGs at a reduced scale, still >= 2x input
                    im.draft("RGB", (self.draft_size, self.draft_size))
                im = im.convert("RGB")
            return i, self.preprocess(im), None
        except Exception as e:  # unreadable images are reported, not fatal
            return i, None, f"{type(e).__name__}: {e}"


def _collate(items):
    ok = [(i, x) for i, x, err in items if err is None]
    failed = [(i, err) for i, x, err in items if err is not None]
    positions = np.fromiter((i for i, _ in ok), dtype=np.int64, count=len(ok))
    batch = torch.stack([x for _, x in ok]) if ok else None
    return positions, batch, failed


def _input_size(net):
    size = getattr(getattr(net, "visual", None), "image_size", None)
    if isinstance(size, (tuple, list)):
        size = max(size)
    return int(size) if size else None


def _check_paths(paths):
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise ValueError("paths must be a list of image paths, not a single path")
    try:
        paths = [os.fspath(p) for p in paths]
    except TypeError as e:
        raise ValueError("paths must be a list of image file paths (str or PathLike)") from e
    return paths


def _check_batching(batch_size, num_workers):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if (
        isinstance(num_workers, bool)
        or not isinstance(num_workers, (int, np.integer))
        or num_workers < 0
    ):
        raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")


def _inference_context(dev):
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    if dev.type == "cuda":
        stack.enter_context(torch.autocast("cuda", dtype=torch.float16))
    return stack


def iter_embeddings(
    paths,
    loaded,
    *,
    batch_size=32,
    num_workers=2,
    normalize=True,
    progress=None,
):
    """Embed images batch by batch.

    Args:
        paths: a list of image file paths
        loaded: the result of :func:`load_model`
        batch_size: images per forward pass
        num_workers: image-decoding worker processes (0 decodes in-process)
        normalize: whether to L2-normalise the vectors
        progress: an optional callable receiving the fraction done in [0, 1]

    Yields:
        ``(positions, vectors, failed)`` per batch: the int64 indices into
        ``paths`` of the embedded images, their float32 ``(b, D)`` vectors,
        and a list of ``(position, error message)`` for images that could
        not be read
    """
    paths = _check_paths(paths)
    _check_batching(batch_size, num_workers)
    if progress is not None and not callable(progress):
        raise ValueError("progress must be a callable taking a fraction in [0, 1], or None")
    net, preprocess, _, dev = _unpack(loaded)
    dim = _embedding_dim(net)
    n = len(paths)
    if n == 0:
        if progress is not None:
            progress(1.0)
        return

    size = _input_size(net)
    dataset = _ImageDataset(paths, preprocess, 2 * size if size else None)
    num_workers = min(int(num_workers), -(-n // batch_size))
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=int(batch_size),
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=dev.type == "cuda",
        prefetch_factor=4 if num_workers > 0 else None,
    )
    channels_last = _has_conv_trunk(net)
    done = 0
    it = iter(loader)
    try:
        for positions, batch, failed in it:
            if batch is None:
                vectors = np.empty((0, dim), dtype=np.float32)
            else:
                # enter/leave per batch so the caller never runs under inference mode
                with _inference_context(dev):
                    x = batch.to(dev, non_blocking=True)
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    feats = net.encode_image(x).float()
                    if normalize:
                        feats = F.normalize(feats, dim=-1)
                    vectors = feats.cpu().numpy()
            done += len(positions) + len(failed)
            if progress is not None:
                progress(done / n)
            yield positions, vectors, failed
    finally:
        del it  # shuts worker processes down when the caller stops early


@dataclass
class EmbeddingResult:
    """Embeddings of a list of images.

    ``embeddings`` has one row per input path; rows of images that could not
    be read are NaN and listed in ``failed`` as ``(position, error)``.
    """

    embeddings: np.ndarray
    failed: list
    identity: dict

    @property
    def ok(self):
        """Boolean mask of the rows that hold an embedding."""
        mask = np.ones(len(self.embeddings), dtype=bool)
        mask[[p for p, _ in self.failed]] = False
        return mask


def embed_images(
    paths,
    model=DEFAULT_MODEL,
    pretrained=DEFAULT_PRETRAINED,
    *,
    batch_size=32,
    num_workers=2,
    device="auto",
    normalize=True,
    progress=None,
    loaded=None,
):
    """Embed a list of images with an open_clip model.

    Args:
        paths: a list of image file paths
        model, pretrained, device: see :func:`load_model`; ignored when
            ``loaded`` is given
        batch_size, num_workers, normalize, progress: see :func:`iter_embeddings`
        loaded: an already loaded model (the result of :func:`load_model`)

    Returns:
        an :class:`EmbeddingResult`
    """
    paths = _check_paths(paths)
    _check_batching(batch_size, num_workers)
    if loaded is None:
        loaded = load_model(model, pretrained, device=device)
    net = _unpack(loaded)[0]
    identity = loaded.identity if isinstance(loaded, LoadedModel) else {}
    out = np.full((len(paths), _embedding_dim(net)), np.nan, dtype=np.float32)
    failed = []
    for positions, vectors, bad in iter_embeddings(
        paths,
        loaded,
        batch_size=batch_size,
        num_workers=num_workers,
        normalize=normalize,
        progress=progress,
    ):
        out[positions] = vectors
        failed.extend(bad)
    return EmbeddingResult(out, failed, dict(identity))


# --------------------------------------------------------------------------
# text


def _render(template, name):
    if callable(template):
        return template(name)
    return template.format(name)


def text_embeddings(class_names, loaded, templates=DEFAULT_TEMPLATES, *, batch_size=256):
    """Zero-shot class embeddings: the L2-normalised mean of each class's prompts.

    Args:
        class_names: a list of class names; row ``i`` of the result is class ``i``
        loaded: the result of :func:`load_model`
        templates: prompt templates, strings with one ``{}`` (e.g.
            ``"a photo of a {}."``) or callables ``name -> prompt``
        batch_size: prompts per forward pass

    Returns:
        a float32 array of shape ``(len(class_names), D)``
    """
    if isinstance(class_names, str):
        raise ValueError("class_names must be a list of class names, not a single string")
    class_names = list(class_names)
    if not class_names or not all(isinstance(c, str) for c in class_names):
        raise ValueError("class_names must be a non-empty list of strings")
    if isinstance(templates, str) or callable(templates):
        templates = [templates]
    templates = list(templates)
    if not templates:
        raise ValueError('templates must be a non-empty list such as ["a photo of a {}."]')
    for t in templates:
        if not callable(t) and not (isinstance(t, str) and "{}" in t):
            raise ValueError(
                f'each template must be a string containing "{{}}" or a callable, got {t!r}'
            )
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    net, _, tokenizer, dev = _unpack(loaded)

    prompts = [_render(t, c) for c in class_names for t in templates]
    feats = []
    for start in range(0, len(prompts), batch_size):
        tokens = tokenizer(prompts[start : start + batch_size]).to(dev)
        with _inference_context(dev):
            f = net.encode_text(tokens).float()
            feats.append(F.normalize(f, dim=-1).cpu())
    feats = torch.cat(feats).reshape(len(class_names), len(templates), -1)
    return F.normalize(feats.mean(dim=1), dim=-1).numpy().astype(np.float32, copy=False)


def logit_scale(loaded):
    """The model's learned temperature ``exp(logit_scale)`` for zero-shot logits."""
    net = _unpack(loaded)[0]
    return float(net.logit_scale.detach().exp().item())
