"""Embeddings with FiftyOne's zoo models and its ``compute_embeddings`` / ``compute_patch_embeddings``; added here:
the model identity in a run record per field, no two models in one field, resuming (items without a vector are
embedded), unreadable files counted and reported, float32 (optionally unit) vectors."""

import difflib
import hashlib
import os
import re
import socket
import stat
import threading
import time
import types
from importlib.metadata import version

import numpy as np
from PIL import Image

import fiftyone as fo
import fiftyone.core.models as fom
import fiftyone.core.utils as fou
import fiftyone.zoo as foz
from fiftyone import ViewField as F

from ..core import params
from . import internals, runs
from .commit import _Locks, commit, lock_keys, recover
from .progress import phases
from .targets import is_vector_field, target_of

OPEN_CLIP = "open-clip-torch"
DEFAULT_EMBEDDINGS_FIELD = "clip_embeddings"
LABEL_TYPES = (fo.Detection, fo.Detections, fo.Polyline, fo.Polylines)
IMAGE_BYTES = 4 * 2**20  # memory of one image in a batch (decoded pixels and model input): bounds batch_size
READ_TIMEOUT_S = 30  # the longest this module waits to open one image file itself
_SHA = {}


def default_field(model):
    """``clip_embeddings`` for open_clip, else ``<zoo name or class>_embeddings``."""
    name = model.get("name") if isinstance(model, dict) else model if isinstance(model, str) else type(model).__name__
    return DEFAULT_EMBEDDINGS_FIELD if name == OPEN_CLIP else re.sub(r"\W+", "_", str(name)).lower() + "_embeddings"


def compute_embeddings(collection, model=OPEN_CLIP, embeddings_field=None, *, clip_model="ViT-B-32",
                       pretrained="laion2b_s34b_b79k", patches_field=None, batch_size=32, num_workers=None,
                       device="auto", skip_existing=True, normalize=True, progress=None):
    """Embeds the images of ``collection`` (or the objects of a patches view / ``patches_field``, on their labels).

    ``model``: a zoo model name, a dict ``{"name": <zoo name>, **load_zoo_model kwargs}``, a FiftyOne ``Model``, or
    a list of these, each with its own ``embeddings_field`` (default :func:`default_field`). ``clip_model`` and
    ``pretrained`` (a tag or a checkpoint path) apply to ``open-clip-torch``. ``progress`` may raise to cancel.
    """
    start = time.perf_counter()
    recover(internals.root_dataset(collection))
    kw = dict(batch_size=params.batch_size(batch_size, IMAGE_BYTES), skip_failures=True, num_workers=params.optional(
        params.integer, "num_workers", num_workers, minimum=0, maximum=params.max_workers()))
    skip_existing, report = params.boolean("skip_existing", skip_existing), phases(params.callback("progress", progress))
    view, plans = plan(collection, model, embeddings_field, clip_model=clip_model, pretrained=pretrained,
                       patches_field=patches_field, normalize=params.boolean("normalize", normalize))
    models = [_load(p, _device(device)) for p in plans]  # all models load before any field is written
    view, unreadable = _regular_files(view)
    s = [_embed(view, p, m, kw, skip_existing, report(k / len(plans), (k + 1) / len(plans)), unreadable)
         for k, (p, m) in enumerate(zip(plans, models))]
    return dict(embeddings_fields=[p.path for p in plans], models=[x["model"] for x in s], target_kind=plans[0].kind,
                embedding_dims=[x["embedding_dim"] for x in s], total=s[0]["total"], failed=max(x["failed"] for x in s),
                embedded=sum(x["embedded"] for x in s), skipped_existing=sum(x["skipped_existing"] for x in s),
                skipped_unreadable=unreadable,
                failed_examples=[e for x in s for e in x["failed_examples"]][:5],
                seconds=round(time.perf_counter() - start, 3), per_field={p.path: x for p, x in zip(plans, s)})


def plan(collection, model=OPEN_CLIP, embeddings_field=None, *, clip_model="ViT-B-32",
         pretrained="laion2b_s34b_b79k", patches_field=None, normalize=True):
    """Checks models and fields, loading nothing: ``(images view, one plan per field)`` or a ValueError."""
    view, patches_field, record = _images(collection, patches_field)
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    fields = embeddings_field if isinstance(embeddings_field, (list, tuple)) else [embeddings_field] * len(models)
    if len(fields) != len(models):
        raise ValueError(f"embeddings_field: pass one field per model: model has {len(models)}, "
                         f"embeddings_field has {len(fields)} ({list(fields)})")
    fields = [runs.check_field_name(f or default_field(m), "embeddings_field") for f, m in zip(fields, models)]
    if not models or len(fields) != len(models) or len(set(fields)) != len(fields):
        raise ValueError(f"embeddings_field: pass one distinct field per model ({len(models)} models, got {fields})")
    plans = [_spec(m, clip_model, pretrained, normalize) for m in models]
    for p, name in zip(plans, fields):
        p.path = internals.label_path(view, patches_field, name) if patches_field else name
        p.kind = "patches" if patches_field else target_of(view).kind
        p.key, p.patches_field, p.record = p.path.replace(".", "_"), patches_field, record
        _check_field(view, p)
    return view, plans


def embeddings_model_identity(collection, embeddings_field):
    """The identity of the model recorded for ``embeddings_field`` (a dict), or None."""
    found = runs.plugin_runs(collection, runs.EMBEDDINGS, embeddings_field=embeddings_field)
    return dict(found[0][1]["model_identity"]) if found and found[0][1].get("model_identity") else None


def zero_shot_text(collection, embeddings_field, class_names, templates, *, device="auto"):
    """``(text, logit_scale, model)``: per class, the float32 unit mean of its unit prompt embeddings by the text tower
    of the zoo model recorded for ``embeddings_field``; that model's ``exp(logit_scale)`` (CLIP's 100 if none); its name."""
    identity = embeddings_model_identity(collection, embeddings_field) or {}
    if not identity.get("zoo_model"):
        raise ValueError(f"embeddings_field '{embeddings_field}' was not computed by compute_embeddings with a zoo "
                         "model, so no text tower is recorded for it; use reference='trusted' or 'checkpoint', or "
                         "recompute the embeddings with compute_embeddings and a zoo model name")
    p = _spec(dict(name=identity["zoo_model"], **identity["kwargs"]), None, None, identity["normalize"])
    if p.identity != identity:
        raise ValueError(f"zero_shot: {p.kwargs['pretrained']} changed since '{embeddings_field}' was computed; restore it")
    model = _load(p, _device(device))
    if not getattr(model, "can_embed_prompts", False):
        raise ValueError(f"reference='zero_shot' needs a model with a text tower, and '{embeddings_field}' was "
                         f"computed by {p.label}, which has none; use reference='trusted' or 'checkpoint'")
    config = model.config if hasattr(getattr(model, "config", None), "text_prompt") else types.SimpleNamespace()
    with model, fou.SetAttributes(config, text_prompt=""):  # open_clip's wrapper would prepend "A photo of"
        text = _unit(np.asarray(model.embed_prompts([t.format(c) for c in class_names for t in templates]), np.float32))
    scale = getattr(internals.torch_module(model), "logit_scale", None)
    text = _unit(text.reshape(len(class_names), len(templates), -1).mean(1))
    return text, float(scale.detach().exp()) if scale is not None else 100.0, dict(zoo_model=p.name, **p.kwargs)


def _spec(model, clip_model, pretrained, normalize):
    """How to load a model, and what identifies it: zoo name and weights, or class and a hash of the weights."""
    if isinstance(model, fom.Model):
        net, h = internals.torch_module(model), hashlib.sha256()
        for name, t in (net.state_dict() if hasattr(net, "state_dict") else {}).items():
            h.update(name.encode() + t.detach().float().cpu().numpy().tobytes())
        label = f"{type(model).__module__}.{type(model).__name__}"
        return types.SimpleNamespace(model=model, name=None, kwargs={}, label=label, identity=dict(
            model_class=label, weights_sha256=h.hexdigest(), normalize=normalize))
    kwargs = {k: v for k, v in model.items() if k != "name"} if isinstance(model, dict) else {}
    name = model.get("name") if isinstance(model, dict) else model
    if name not in (zoo := foz.list_zoo_models(tags="embeddings")):
        close = ", ".join(difflib.get_close_matches(str(name), zoo, 5, 0.5)) or "none"
        raise ValueError(f"model: {name!r} is not a zoo model with embeddings (close matches: {close}); pass a "
                         "name from foz.list_zoo_models(tags='embeddings') or a Model object")
    p = types.SimpleNamespace(model=None, name=name, kwargs=kwargs, label=name,
                              identity=dict(zoo_model=name, kwargs=kwargs, normalize=normalize))
    if name != OPEN_CLIP:
        return p
    import open_clip

    arch, tag = kwargs.setdefault("clip_model", clip_model), kwargs.setdefault("pretrained", pretrained)
    if arch not in open_clip.list_models():
        close = ", ".join(difflib.get_close_matches(str(arch), open_clip.list_models(), 5, 0.5)) or "none"
        raise ValueError(f"clip_model: {arch!r} is not an open_clip architecture (close matches: {close}); "
                         "see open_clip.list_models()")
    tags, p.label = open_clip.list_pretrained_tags_by_model(arch), f"{name} ({arch}, {tag})"
    if tag not in tags and not (isinstance(tag, (str, os.PathLike)) and os.path.isfile(tag)):
        raise ValueError(f"pretrained: {tag!r} is neither a pretrained tag of {arch} (tags: {', '.join(tags) or 'none'})"
                         " nor a checkpoint file; pass a tag or the path of a local checkpoint file")
    if tag not in tags:  # a local checkpoint: its content identifies it
        path = kwargs["pretrained"] = os.path.abspath(os.fspath(tag))
        key = (path, os.stat(path).st_size, os.stat(path).st_mtime_ns)
        if key not in _SHA:
            with open(path, "rb") as f:
                _SHA[key] = hashlib.file_digest(f, "sha256").hexdigest()
        p.identity["checkpoint_sha256"], p.label = _SHA[key], f"{name} ({arch}, {path})"
    return p


def _images(collection, patches_field):
    """The images to run on, the label field of the objects to embed, and the collection to record the run on."""
    record = collection
    if hasattr(collection, "patches_field"):  # a patches view: its objects, on the images they come from
        patches_field, record = collection.patches_field, internals.patches_source(collection)
        ids = collection.values(f"{patches_field}.id") if internals.own_stages(collection) else None  # filtered: these objects
        collection = record if ids is None else record.select_labels(ids=ids, fields=patches_field)
    if collection.media_type == "video" or internals.is_patches(collection):
        raise ValueError("compute_embeddings embeds images or their objects: for videos run it on "
                         "dataset.to_frames(sample_frames=True), for objects on dataset.to_patches(field)")
    target_of(collection, "compute_embeddings")  # refuses clips, groups and dynamic groups with a sentence
    if len(collection) == 0:
        raise ValueError("The view is empty: select the images to embed")
    label_type = getattr(collection.get_field(str(patches_field)), "document_type", 0) if patches_field else None
    if patches_field is not None and label_type not in LABEL_TYPES:
        raise ValueError(f"patches_field: {patches_field!r} is not a Detection(s) or Polyline(s) field of this view")
    return collection, patches_field, record


def _regular_files(view):
    """``(view, count)``: the view without its items whose file is not a regular file (a FIFO or a device would
    block the image reader forever), and how many those are."""
    ids, paths = view.values(["id", "filepath"])
    bad = [i for i, path in zip(ids, paths) if not _regular(path)]
    return (view.exclude(bad) if bad else view), len(bad)


def _regular(path):
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, TypeError, ValueError):  # missing or remote: the reader fails on it fast, counted as failed
        return True


def _check_field(view, p):
    field = target_of(view).get_field(p.path)  # other runs write scores, never vectors
    if field is not None and not is_vector_field(field):
        raise ValueError(f"embeddings_field: '{p.path}' already exists as a {type(field).__name__}; choose another name")
    runs.check_run_key(view, p.key, runs.EMBEDDINGS, "embeddings_field")
    was = embeddings_model_identity(view, p.path)
    if field is None or was == p.identity or not internals.backing_dataset(view).count(p.path):
        return
    if was is None:
        raise ValueError(f"embeddings_field: '{p.path}' holds vectors that compute_embeddings did not record; "
                         "choose another name (they are kept)")
    was = ", ".join(map(str, [was.get("zoo_model") or was.get("model_class"), *was.get("kwargs", {}).values()]))
    raise ValueError(f"embeddings_field: '{p.path}' holds embeddings of another model ({was}), not {p.label}; mixing "
                     "models in one field makes distances meaningless. Choose another field, or delete the old run "
                     f"first (dataset.delete_run('{p.key}') removes its vectors)")


def _device(device):
    if device != "auto" and not re.fullmatch(r"cpu|mps|cuda(:\d+)?", str(device)):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps', got {device!r}")
    if str(device).startswith("cuda") and not __import__("torch").cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use 'auto' or 'cpu'")
    return device


def offline_problem(p):
    """One sentence if plan ``p`` is an open_clip tag whose weights are not cached and cannot be downloaded."""
    if p.name != OPEN_CLIP or os.path.isfile(p.kwargs["pretrained"]):
        return None  # other zoo models fail fast when offline, and _load translates their errors
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    cfg = open_clip.get_pretrained_cfg(p.kwargs["clip_model"], p.kwargs["pretrained"])
    repo, file = os.path.split(cfg.get("hf_hub", ""))  # tags with a plain URL fail fast offline (no retries)
    files = (file or "open_clip_pytorch_model.bin", "open_clip_model.safetensors")
    if not repo or any(isinstance(try_to_load_from_cache(repo, f), str) for f in files):
        return None
    try:
        socket.getaddrinfo("huggingface.co", 443)
    except OSError:
        return _offline(p, "huggingface.co cannot be reached")
    return None


def _offline(p, reason):
    if p.name == OPEN_CLIP:
        return (f"pretrained: the weights of {p.label} must be downloaded and {reason}; offline, pass pretrained=<path "
                "of a local checkpoint file> (that tag's open_clip weights, copied from a machine with internet) or "
                "copy the Hugging Face cache (~/.cache/huggingface) here")
    return (f"model: the weights of {p.label} must be downloaded and {reason}; offline, run foz.load_zoo_model("
            f"'{p.name}') once on a machine with internet and copy fo.config.model_zoo_dir ({fo.config.model_zoo_dir}),"
            " ~/.cache/torch and ~/.cache/huggingface here")


def _load(p, device):
    if p.model is None and (problem := offline_problem(p)):
        raise ValueError(problem)
    try:
        device = {} if device == "auto" else dict(device=device)
        p.model = p.model or foz.load_zoo_model(p.name, cache=False, **p.kwargs, **device)
    except Exception as error:
        chain = [error]
        while (cause := chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 8:
            chain.append(cause)
        text = " | ".join(f"{type(e).__module__}.{type(e).__name__}: {e}" for e in chain)
        reason = next((str(e).strip().splitlines()[0] for e in chain[::-1] if str(e).strip()), repr(error))[:200]
        path = p.kwargs["pretrained"] if p.name == OPEN_CLIP and os.path.isfile(p.kwargs["pretrained"]) else None
        if path and re.search(r"Unsupported global|unsupported class", text):
            message = (f"pretrained: refusing {path}: it holds Python objects besides tensors and loading it would "
                       "run code from the file; save the model's state_dict() only (or use .safetensors)")
        elif path:
            message = (f"pretrained: open_clip could not load {path} into clip_model={p.kwargs['clip_model']} "
                       f"({reason}); pass a .pt/.pth/.bin/.safetensors state dict saved from that architecture")
        elif re.search(r"ConnectionError|URLError|gaierror|requests\.|urllib3|huggingface|internet|download", text, re.I):
            message = _offline(p, f"the download failed ({reason})")
        else:
            message = f"model: could not load {p.label}: {reason}"
        raise ValueError(message) from error
    if not getattr(p.model, "has_embeddings", False):
        raise ValueError(f"model: {p.label} does not expose embeddings (model.has_embeddings is False)")
    return p.model


def _embed(view, p, model, kw, skip_existing, progress, unreadable=0):
    """Embeds the items of ``view`` without a vector (all with ``skip_existing=False``) into ``p.path``."""
    start, attr, patches = time.perf_counter(), p.path.rsplit(".", 1)[-1], p.patches_field
    if patches:
        labels = internals.label_path(view, patches)
        missing = lambda v: v.filter_labels(patches, F(attr).exists(False), only_matches=True)  # noqa: E731
        count = lambda v: v.count(labels)  # noqa: E731
        run = lambda v, **k: v.compute_patch_embeddings(model, patches, embeddings_field=attr, **k)  # noqa: E731
    else:
        missing, count = (lambda v: v.exists(p.path, False)), len  # noqa: E731
        run = lambda v, **k: v.compute_embeddings(model, embeddings_field=p.path, **k)  # noqa: E731
    todo = missing(view) if skip_existing else view
    total, pending = count(view), count(todo)
    summary = dict(embeddings_field=p.path, model=p.label, embedding_dim=None, total=total, embedded=0,
                   skipped_existing=total - pending, skipped_unreadable=unreadable, failed=0, failed_examples=[])
    unit = _unit if p.identity["normalize"] else (lambda x: x)
    as_float32 = {k: lambda x, f=getattr(model, k): unit(np.asarray(f(x), np.float32)) for k in ("embed", "embed_all")}
    lock = _Locks(lock_keys(target_of(view), [types.SimpleNamespace(name=p.path)]), f"'{p.path}'")
    with lock, fou.SetAttributes(model, **as_float32):
        _record(view, p, "running", summary)
        try:
            if pending:
                run(todo, progress=lambda pb: progress(pb.progress or 0.0), **kw)
            again = missing(todo)  # FiftyOne skips a whole batch for one unreadable image: retry those one by one
            if not patches and kw["batch_size"] > 1 and len(again):
                run(again, progress=lambda pb: progress(1.0), **dict(kw, batch_size=1))
        except BaseException as error:
            _record(view, p, "interrupted", dict(summary, error=f"{type(error).__name__}: {error}"[:500]))
            raise
        if p.kind == "frames":  # FiftyOne's async SaveContext can miss frames when syncing them to the videos
            internals.sync_to_source(view, [p.path])
        failed = missing(todo)
        first = (view.filter_labels(patches, F(attr).exists()) if patches else view.exists(p.path)).limit(1)
        first = first.values(p.path, unwind=True)
        summary.update(embedded=pending - count(failed), failed=count(failed), seconds=round(time.perf_counter() - start, 3),
                       failed_examples=[dict(filepath=f, error=_why(f)) for f in failed.limit(5).values("filepath")],
                       embedding_dim=int(np.size(first[0])) if first else None)
        _record(view, p, "completed", summary)
    return summary


def _why(path):
    """Why a file got no vector: what PIL says about it, that the model failed on it, or that reading it timed out."""
    why = [f"TimeoutError: the file could not be read within {READ_TIMEOUT_S} s"]

    def read():
        try:
            Image.open(path).convert("RGB")
            why[0] = "the model failed on this image (see the log)"
        except Exception as error:  # noqa: BLE001 - any reason is reported as it is
            why[0] = f"{type(error).__name__}: {error}"[:300]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(READ_TIMEOUT_S)
    return why[0]


def _record(view, p, status, summary):
    config = runs.make_config(
        runs.EMBEDDINGS, embeddings_field=p.path, target_kind=p.kind, patches_field=p.patches_field, model=p.label,
        model_identity=p.identity, embedding_dim=summary["embedding_dim"], status=status,
        versions=dict(fiftyone=fo.__version__, open_clip=version("open_clip_torch")))
    commit(p.record, p.key, config, dict(summary=summary))


def _unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
