"""Embeddings of a collection with FiftyOne's model zoo, resumable and recorded.

FiftyOne does the work: ``foz.load_zoo_model`` builds the model (a zoo model
tagged "embeddings"; ``open-clip-torch`` with any architecture and a tag or a
local checkpoint; or a ``Model`` object), ``compute_embeddings`` embeds images
and ``compute_patch_embeddings`` the objects of a label field. Added here: the
model identity in one run record per field, a refusal to mix models in a
field, resuming (only items without a vector are embedded), unreadable files
counted and reported, float32 (optionally unit) vectors, cancellable progress.
"""

import difflib
import hashlib
import os
import re
import socket
import time
import types

import numpy as np

import fiftyone as fo
import fiftyone.core.models as fom
import fiftyone.core.utils as fou
import fiftyone.zoo as foz
from fiftyone import ViewField as F

from ..core import params
from . import runs
from .commit import _Locks, commit, lock_keys, recover
from .progress import phases
from .targets import is_vector_field, target_of

OPEN_CLIP = "open-clip-torch"
DEFAULT_EMBEDDINGS_FIELD = "clip_embeddings"
_EXAMPLES = 5
_SHA = {}


def embedding_models():
    """The zoo models that expose embeddings: ``foz.list_zoo_models(tags="embeddings")``."""
    return foz.list_zoo_models(tags="embeddings")


def default_field(model):
    """``clip_embeddings`` for open_clip, else ``<zoo name or class>_embeddings``."""
    name = model.get("name") if isinstance(model, dict) else model if isinstance(model, str) else type(model).__name__
    return DEFAULT_EMBEDDINGS_FIELD if name == OPEN_CLIP else re.sub(r"\W+", "_", str(name)).lower() + "_embeddings"


def compute_embeddings(
    collection,
    model=OPEN_CLIP,
    embeddings_field=None,
    *,
    clip_model="ViT-B-32",
    pretrained="laion2b_s34b_b79k",
    patches_field=None,
    batch_size=32,
    num_workers=None,
    device="auto",
    skip_existing=True,
    normalize=True,
    progress=None,
):
    """Embeds the images of ``collection``, or the objects of ``patches_field``, with one or more models.

    ``model`` is a zoo model name, a dict ``{"name": <zoo name>, **load_zoo_model kwargs}``, a
    ``fiftyone.core.models.Model``, or a list of these; each writes its own ``embeddings_field``
    (a list, default :func:`default_field`). ``clip_model`` and ``pretrained`` (a tag or a local
    checkpoint path) apply to ``open-clip-torch`` entries. On a patches view (``to_patches(field)``)
    or with ``patches_field`` each object gets a vector, stored on its label. ``skip_existing``
    embeds only the items without one; ``normalize`` stores unit vectors; ``progress`` receives
    the fraction done and may raise to cancel. Returns a summary dict (``per_field`` for each).
    """
    start = time.perf_counter()
    recover(collection._root_dataset)
    kw = dict(batch_size=params.integer("batch_size", batch_size, minimum=1), skip_failures=True,
              num_workers=params.optional(params.integer, "num_workers", num_workers, minimum=0))
    skip_existing = params.boolean("skip_existing", skip_existing)
    report = phases(params.callback("progress", progress))
    view, patches_field, plans = plan(collection, model, embeddings_field, clip_model=clip_model, pretrained=pretrained,
                                      patches_field=patches_field, normalize=params.boolean("normalize", normalize))
    models = [_load(p, _device(device)) for p in plans]  # all load before any field is written
    done, failed = {}, set()
    for k, (p, m) in enumerate(zip(plans, models)):
        done[p.path], bad = _embed(view, p, m, patches_field, kw, skip_existing, report(k / len(plans), (k + 1) / len(plans)))
        failed |= bad
    total = lambda key: sum(s[key] for s in done.values())  # noqa: E731
    return dict(
        embeddings_fields=list(done), models=[s["model"] for s in done.values()], target_kind=plans[0].kind,
        embedding_dims=[s["embedding_dim"] for s in done.values()], total=done[plans[0].path]["total"],
        embedded=total("embedded"), skipped_existing=total("skipped_existing"), failed=len(failed),
        failed_examples=[e for s in done.values() for e in s["failed_examples"]][:_EXAMPLES],
        seconds=round(time.perf_counter() - start, 3), per_field=done,
    )


def plan(collection, model=OPEN_CLIP, embeddings_field=None, *, clip_model="ViT-B-32", pretrained="laion2b_s34b_b79k",
         patches_field=None, normalize=True):
    """Checks models and fields without loading anything: ``(images view, patches field, plans)`` or a ValueError."""
    view, patches_field = _images(collection, patches_field)
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    fields = list(embeddings_field) if isinstance(embeddings_field, (list, tuple)) else [embeddings_field] * len(models)
    fields = [f or default_field(m) for f, m in zip(fields, models)]
    if not models or len(fields) != len(models) or len(set(fields)) != len(fields):
        raise ValueError(f"embeddings_field: pass one distinct field per model ({len(models)} models, got {fields})")
    plans = [_spec(m, clip_model, pretrained, normalize) for m in models]
    for p, name in zip(plans, fields):
        runs.check_field_name(name, "embeddings_field")
        p.path = view._get_label_field_path(patches_field, name)[1] if patches_field else name
        p.kind, p.key = "patches" if patches_field else target_of(view).kind, p.path.replace(".", "_")
        p.patches_field = patches_field
        _check_field(view, p)
    return view, patches_field, plans


def embeddings_model_identity(collection, embeddings_field):
    """The identity of the model recorded for ``embeddings_field`` (a dict), or None."""
    found = runs.plugin_runs(collection, runs.EMBEDDINGS, embeddings_field=embeddings_field)
    return dict(found[0][1]["model_identity"]) if found and found[0][1].get("model_identity") else None


def zero_shot_text(collection, embeddings_field, class_names, templates, *, device="auto"):
    """Class prompt embeddings from the text tower of the zoo model recorded for ``embeddings_field``.

    Returns ``(text, logit_scale, model)``: the (C, D) float32 unit mean of each class's unit
    prompt embeddings (``template.format(name)``), ``exp(logit_scale)`` of the model (100, CLIP's
    value, if it has none), and a dict naming the model.
    """
    identity = embeddings_model_identity(collection, embeddings_field)
    if not identity or not identity.get("zoo_model"):
        raise ValueError(
            f"embeddings_field '{embeddings_field}' was not computed by compute_embeddings with a zoo model (no "
            "reloadable model is recorded for it); zero_shot needs that model's text tower. Use reference='trusted' "
            "or 'checkpoint', or recompute the embeddings with compute_embeddings and a zoo model name")
    p = _spec(dict(name=identity["zoo_model"], **identity["kwargs"]), None, None, identity["normalize"])
    if p.identity != identity:
        raise ValueError(f"zero_shot: the checkpoint {p.kwargs.get('pretrained')} changed since '{embeddings_field}' "
                         "was computed (sha256 differs); restore it or recompute the embeddings")
    model = _load(p, _device(device))
    if not getattr(model, "can_embed_prompts", False):
        raise ValueError(f"reference='zero_shot' needs a model with a text tower, and '{embeddings_field}' was computed "
                         f"by {p.label}, which has none; use reference='trusted' or 'checkpoint'")
    templates = [templates] if isinstance(templates, str) else list(templates)
    config = model.config if hasattr(getattr(model, "config", None), "text_prompt") else types.SimpleNamespace()
    with model, fou.SetAttributes(config, text_prompt=""):  # open_clip would prepend "A photo of"
        text = _unit(np.asarray(model.embed_prompts([t.format(c) for c in class_names for t in templates]), np.float32))
    text = _unit(text.reshape(len(class_names), len(templates), -1).mean(axis=1))
    scale = getattr(getattr(model, "_model", None), "logit_scale", None)
    return text, float(scale.detach().exp().item()) if scale is not None else 100.0, dict(zoo_model=p.name, **p.kwargs)


# -- what a model is, where it writes ------------------------------------------------------


def _spec(model, clip_model, pretrained, normalize):
    if isinstance(model, fom.Model):  # identified by its class and a hash of its weights
        net, h = getattr(model, "_model", None), hashlib.sha256()
        for name, t in (net.state_dict() if hasattr(net, "state_dict") else {}).items():
            h.update(name.encode() + t.detach().float().cpu().numpy().tobytes())
        label = f"{type(model).__module__}.{type(model).__name__}"
        identity = dict(model_class=label, weights_sha256=h.hexdigest(), normalize=normalize)
        return types.SimpleNamespace(model=model, name=None, kwargs={}, label=label, identity=identity)
    name, kwargs = (model.get("name"), {k: v for k, v in model.items() if k != "name"}) if isinstance(model, dict) else (model, {})
    if name not in embedding_models():
        close = difflib.get_close_matches(str(name), embedding_models(), 5, 0.5)
        raise ValueError(f"model: {name!r} is not a zoo model with embeddings (close matches: {', '.join(close) or 'none'});"
                         " pass a name from foz.list_zoo_models(tags='embeddings') or a Model object")
    identity = dict(zoo_model=name, kwargs=kwargs, normalize=normalize)
    if name == OPEN_CLIP:
        identity.update(_open_clip(kwargs, clip_model, pretrained))
    label = f"{name} ({kwargs['clip_model']}, {kwargs['pretrained']})" if name == OPEN_CLIP else name
    return types.SimpleNamespace(model=None, name=name, kwargs=kwargs, label=label, identity=identity)


def _open_clip(kwargs, clip_model, pretrained):
    import open_clip

    arch, tag = kwargs.setdefault("clip_model", clip_model), kwargs.setdefault("pretrained", pretrained)
    if arch not in open_clip.list_models():
        names = open_clip.list_models()
        close = [n for n in names if n.lower() == str(arch).lower()] + difflib.get_close_matches(str(arch), names, 5, 0.5)
        raise ValueError(f"clip_model: {arch!r} is not an open_clip architecture (close matches: "
                         f"{', '.join(dict.fromkeys(close)) or 'none'}); see open_clip.list_models()")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag in tags:
        return {}
    if not isinstance(tag, (str, os.PathLike)) or not os.path.isfile(tag):
        raise ValueError(f"pretrained: {tag!r} is neither a pretrained tag of {arch} (tags: {', '.join(tags) or 'none'})"
                         " nor a checkpoint file; pass a tag or the path of a local checkpoint file")
    path = kwargs["pretrained"] = os.path.abspath(os.fspath(tag))
    key = (path, os.stat(path).st_size, os.stat(path).st_mtime_ns)
    if key not in _SHA:
        with open(path, "rb") as f:
            _SHA[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return dict(checkpoint_sha256=_SHA[key])


def _images(collection, patches_field):
    """The images to run on (a patches view: its objects' images), and the objects' label field."""
    if hasattr(collection, "patches_field"):
        if patches_field not in (None, collection.patches_field):
            raise ValueError(f"patches_field: this patches view holds '{collection.patches_field}', not {patches_field!r}")
        patches_field = collection.patches_field
        ids = collection.values(f"{patches_field}.id")
        collection = collection._source_collection.select_labels(ids=ids, fields=patches_field)
    if collection.media_type == "video" or getattr(collection, "_is_patches", False):
        raise ValueError("compute_embeddings embeds images or their objects: for videos run it on "
                         "dataset.to_frames(sample_frames=True), for objects on dataset.to_patches(field)")
    target_of(collection, "compute_embeddings")  # refuses clips, groups and dynamic groups with a sentence
    if len(collection) == 0:
        raise ValueError("The view is empty: select the images to embed")
    kind = getattr(collection.get_field(patches_field), "document_type", None) if isinstance(patches_field, str) else 0
    if patches_field is not None and kind not in (fo.Detection, fo.Detections, fo.Polyline, fo.Polylines):
        raise ValueError(f"patches_field: {patches_field!r} is not a Detection(s) or Polyline(s) field of this view")
    return collection, patches_field


def _check_field(view, p):
    target = target_of(view)
    field, owner = target.get_field(p.path), runs.owner_of(target.root, p.path, target.kind)
    if field is not None and not is_vector_field(field):
        raise ValueError(f"embeddings_field: '{p.path}' already exists as a {type(field).__name__}; choose another name")
    if owner is not None and owner[1].get("method") != runs.EMBEDDINGS:
        raise ValueError(f"embeddings_field: '{p.path}' holds the output of run '{owner[0]}'; choose another name")
    runs.check_run_key(view, p.key, runs.EMBEDDINGS, "embeddings_field")
    previous = embeddings_model_identity(view, p.path)
    if field is None or previous == p.identity or not view._dataset.count(p.path):
        return
    if previous is None:
        raise ValueError(f"embeddings_field: '{p.path}' holds vectors that compute_embeddings did not record; "
                         "choose another name (they are kept)")
    was = ", ".join(map(str, [previous.get("zoo_model") or previous.get("model_class"), *previous.get("kwargs", {}).values()]))
    raise ValueError(f"embeddings_field: '{p.path}' holds embeddings of another model ({was}), not {p.label}; mixing "
                     f"models in one field makes distances meaningless. Choose another field, or delete the old run "
                     f"first (dataset.delete_run('{p.key}') removes its vectors)")


# -- loading --------------------------------------------------------------------------------


def _device(device):
    if device != "auto" and not re.fullmatch(r"cpu|mps|cuda(:\d+)?", str(device)):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps', got {device!r}")
    if str(device).startswith("cuda") and not __import__("torch").cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use 'auto' or 'cpu'")
    return device


def offline_problem(p):
    """One sentence if the weights of plan ``p`` must be downloaded and their host cannot be reached, else None."""
    url = _download_url(p)
    host = url and re.sub(r"^\w+://([^/:]+).*", r"\1", url)
    try:
        host and socket.getaddrinfo(host, 443)
    except OSError:
        return _offline(p, f"{host} cannot be reached")
    return None


def _download_url(p):
    """Where the weights would be downloaded from; None when they are on this machine (or FiftyOne cannot say)."""
    if p.name == OPEN_CLIP and not os.path.isfile(p.kwargs["pretrained"]):
        import open_clip
        from huggingface_hub import try_to_load_from_cache

        cfg = open_clip.get_pretrained_cfg(p.kwargs["clip_model"], p.kwargs["pretrained"])
        repo, name = os.path.split(cfg.get("hf_hub", ""))
        if repo:
            names = (name or "open_clip_pytorch_model.bin", "open_clip_model.safetensors")
            return None if any(isinstance(try_to_load_from_cache(repo, n), str) for n in names) else f"https://huggingface.co/{repo}"
        return None if os.path.isfile(os.path.expanduser(f"~/.cache/clip/{os.path.basename(cfg['url'])}")) else cfg["url"]
    zoo = foz.get_zoo_model(p.name) if p.name not in (None, OPEN_CLIP) else None
    url = getattr(getattr(getattr(zoo, "manager", None), "config", None), "url", None)
    return url if url and not zoo.is_in_dir(fo.config.model_zoo_dir) else None


def _offline(p, reason):
    if p.name == OPEN_CLIP:
        how = ("pass pretrained=<path of a local checkpoint file> (that tag's open_clip weights, copied from a machine "
               "with internet) or copy the Hugging Face cache (~/.cache/huggingface) here")
    else:
        how = (f"run foz.load_zoo_model('{p.name}') once on a machine with internet and copy fo.config.model_zoo_dir "
               f"({fo.config.model_zoo_dir}), ~/.cache/torch and ~/.cache/huggingface here")
    return f"{'pretrained' if p.name == OPEN_CLIP else 'model'}: the weights of {p.label} must be downloaded and {reason}; offline, {how}"


def _load(p, device):
    if p.model is None:
        problem = offline_problem(p)
        if problem:
            raise ValueError(problem)
        try:
            p.model = foz.load_zoo_model(p.name, cache=False, **p.kwargs, **({} if device == "auto" else {"device": device}))
        except Exception as error:
            raise ValueError(_load_error(p, error)) from error
    if not getattr(p.model, "has_embeddings", False):
        raise ValueError(f"model: {p.label} does not expose embeddings (model.has_embeddings is False)")
    return p.model


def _load_error(p, error):
    chain = [error]
    while (chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 8:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    text = " | ".join(f"{type(e).__module__}.{type(e).__name__}: {e}" for e in chain)
    reason = (str(chain[-1]).strip().splitlines() or [type(chain[-1]).__name__])[0][:200]
    checkpoint = p.kwargs.get("pretrained") if p.name == OPEN_CLIP and os.path.isfile(p.kwargs["pretrained"]) else None
    if checkpoint and re.search(r"Unsupported global|unsupported class", text):
        return (f"pretrained: refusing {checkpoint}: it holds Python objects besides tensors and loading it would run "
                "code from the file; save the model's state_dict() only (or use .safetensors)")
    if checkpoint:
        return (f"pretrained: open_clip could not load {checkpoint} into clip_model={p.kwargs['clip_model']} ({reason});"
                " pass a .pt/.pth/.bin/.safetensors state dict saved from that architecture, and that architecture")
    if re.search(r"ConnectionError|URLError|gaierror|requests\.|urllib3|huggingface_hub|internet|download", text, re.I):
        return _offline(p, f"the download failed ({reason})")
    return f"model: could not load {p.label}: {reason}"


# -- running --------------------------------------------------------------------------------


def _embed(view, p, model, patches_field, kw, skip_existing, progress):
    start, attr = time.perf_counter(), p.path.rsplit(".", 1)[-1]
    if patches_field:
        labels = view._get_label_field_path(patches_field)[1]
        missing = lambda v: v.filter_labels(patches_field, F(attr).exists(False), only_matches=True)  # noqa: E731
        count, ids = (lambda v: v.count(labels)), (lambda v: v.values(f"{labels}.id", unwind=True))  # noqa: E731
        run = lambda v, **k: v.compute_patch_embeddings(model, patches_field, embeddings_field=attr, **k)  # noqa: E731
    else:
        missing, count, ids = (lambda v: v.exists(p.path, False)), len, (lambda v: v.values("id"))  # noqa: E731
        run = lambda v, **k: v.compute_embeddings(model, embeddings_field=p.path, **k)  # noqa: E731
    todo = missing(view) if skip_existing else view
    total, pending = count(view), count(todo)
    summary = dict(embeddings_field=p.path, model=p.label, embedding_dim=None, total=total, embedded=0,
                   skipped_existing=total - pending, failed=0, failed_examples=[])
    unit = _unit if p.identity["normalize"] else (lambda x: x)
    as_float32 = dict(embed=lambda x, f=model.embed: unit(np.asarray(f(x), np.float32)),
                      embed_all=lambda xs, f=model.embed_all: unit(np.asarray(f(xs), np.float32)))
    lock = _Locks(lock_keys(target_of(view), [types.SimpleNamespace(name=p.path)]), f"'{p.path}'")
    with lock, fou.SetAttributes(model, **as_float32):
        _record(view, p, "running", summary)
        try:
            if pending:
                run(todo, progress=lambda pb: progress(pb.progress or 0.0), **kw)
            again = missing(todo)  # FiftyOne drops a whole batch for one unreadable image: retry those one by one
            if not patches_field and kw["batch_size"] > 1 and 0 < len(again) and (len(again) < pending or pending <= kw["batch_size"]):
                run(again, progress=lambda pb: progress(1.0), **dict(kw, batch_size=1))
        except BaseException as error:
            _record(view, p, "interrupted", dict(summary, error=f"{type(error).__name__}: {error}"[:500]))
            raise
        if p.kind == "frames":  # FiftyOne's async SaveContext can miss frames when syncing them to the videos
            view._sync_source(fields=[p.path])
        failed = missing(todo)
        vector = (view if not patches_field else view.filter_labels(patches_field, F(attr).exists())).exists(p.path)
        first = vector.limit(1).values(p.path, unwind=True) if patches_field else vector.limit(1).values(p.path)
        summary.update(embedded=pending - count(failed), failed=count(failed), failed_examples=_examples(failed),
                       embedding_dim=int(np.size(first[0])) if first else None, seconds=round(time.perf_counter() - start, 3))
        _record(view, p, "completed", summary)
    return summary, set(ids(failed))


def _examples(failed):
    from PIL import Image

    out = []
    for path in failed.limit(_EXAMPLES).values("filepath"):
        try:
            Image.open(path).convert("RGB")
            out.append(dict(filepath=path, error="the model failed on this image (see the log)"))
        except Exception as error:
            out.append(dict(filepath=path, error=f"{type(error).__name__}: {error}"[:300]))
    return out


def _record(view, p, status, summary):
    from importlib.metadata import version

    config = runs.make_config(
        runs.EMBEDDINGS, embeddings_field=p.path, target_kind=p.kind, patches_field=p.patches_field, model=p.label,
        model_identity=p.identity, embedding_dim=summary["embedding_dim"], status=status,
        versions=dict(fiftyone=fo.__version__, open_clip=version("open_clip_torch")),
    )
    commit(view, p.key, config, dict(summary=summary))


def _unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
