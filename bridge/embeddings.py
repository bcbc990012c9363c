"""Image embeddings of a collection with an open_clip model.

Vectors are written chunk by chunk, so an interrupted run keeps what it
computed and a rerun with ``skip_existing=True`` embeds only the samples whose
field is still empty. The model's identity is recorded with the run, so later
operators (e.g. mimic's zero-shot reference) can reload the same model with
:func:`embeddings_model_identity`.

``core.embeddings`` (torch, open_clip) is imported lazily: loading the plugin
stays cheap.
"""

import time

import numpy as np

import fiftyone.core.fields as fof

from . import runs
from .commit import commit

EMBEDDINGS_METHOD = runs.EMBEDDINGS
DEFAULT_EMBEDDINGS_FIELD = "clip_embeddings"
DEFAULT_CHUNK_SIZE = 1024
_BUILTIN = ("id", "filepath", "tags", "metadata", "created_at", "last_modified_at", "frames")
_MAX_EXAMPLES = 5


def _core():
    from ..core import embeddings

    return embeddings


def compute_embeddings(
    collection,
    model="ViT-B-32",
    pretrained="laion2b_s34b_b79k",
    *,
    embeddings_field=DEFAULT_EMBEDDINGS_FIELD,
    batch_size=32,
    num_workers=2,
    device="auto",
    skip_existing=True,
    normalize=True,
    chunk_size=DEFAULT_CHUNK_SIZE,
    progress=None,
):
    """Embeds the images of a collection with an open_clip model.

    Args:
        collection: a dataset or view of images (for videos, run on
            ``dataset.to_frames(sample_frames=True)``)
        model: an open_clip architecture name, e.g. ``"ViT-B-32"``
        pretrained: a pretrained tag of that architecture (downloaded on first
            use) or the path of a local checkpoint file
        embeddings_field: the vector field to write
        batch_size, num_workers, device, normalize: see ``core.embeddings``
        skip_existing: embed only the samples whose field is None
        chunk_size: samples written to the database at a time
        progress: optional callable receiving the fraction done in [0, 1]

    Returns:
        a summary dict: embedded, skipped_existing, failed, failed_examples,
        total, embedding_dim, seconds, ...
    """
    start = time.perf_counter()
    _check_collection(collection)
    _check_field_name(embeddings_field)
    field = _check_vector_field(collection, embeddings_field)
    _check_int(batch_size, "batch_size", 1)
    _check_int(num_workers, "num_workers", 0)
    _check_int(chunk_size, "chunk_size", 1)
    if progress is not None and not callable(progress):
        raise ValueError("progress must be a callable taking a fraction in [0, 1], or None")

    E = _core()
    identity = E.model_identity(model, pretrained)  # validates model and pretrained
    identity["normalize"] = bool(normalize)
    dim = identity["embedding_dim"]

    existing_ids = _existing_ids(collection, embeddings_field, field) if skip_existing else set()
    warning = _check_compatible(collection, embeddings_field, field, identity, skip_existing, existing_ids)

    ids, paths = collection.values(["id", "filepath"])
    pending = [(i, p) for i, p in zip(ids, paths) if i not in existing_ids]
    as_list = isinstance(field, fof.ListField)

    params = dict(
        embeddings_field=embeddings_field,
        model=model,
        pretrained=identity["pretrained"],
        embedding_dim=dim,
        model_identity=identity,
        normalize=bool(normalize),
        skip_existing=bool(skip_existing),
        batch_size=int(batch_size),
        view_stages=[str(s) for s in getattr(collection, "_stages", [])],
    )
    summary = dict(
        embeddings_field=embeddings_field,
        model=model,
        pretrained=identity["pretrained"],
        embedding_dim=dim,
        total=len(ids),
        embedded=0,
        skipped_existing=len(ids) - len(pending),
        failed=0,
        failed_examples=[],
        device=None,
        seconds=0.0,
        status="completed",
    )
    if warning:
        summary["warning"] = warning
    if not pending:
        if progress is not None:
            progress(1.0)
        summary["seconds"] = round(time.perf_counter() - start, 3)
        if embeddings_model_identity(collection, embeddings_field) is None:
            _record(collection, params, summary)
        return summary

    loaded = E.load_model(model, pretrained, device=device)  # refuses bad checkpoints
    summary["device"] = str(loaded.device)
    _record(collection, params, dict(summary, status="running"))

    buffer = {}

    def flush():
        if buffer:
            _write(collection, embeddings_field, buffer)
            summary["embedded"] += len(buffer)
            buffer.clear()

    pending_ids = [i for i, _ in pending]
    try:
        for positions, vectors, failed in E.iter_embeddings(
            [p for _, p in pending],
            loaded,
            batch_size=int(batch_size),
            num_workers=int(num_workers),
            normalize=normalize,
            progress=progress,
        ):
            for pos, vector in zip(positions.tolist(), vectors):
                buffer[pending_ids[pos]] = vector.tolist() if as_list else vector
            for pos, error in failed:
                summary["failed"] += 1
                if len(summary["failed_examples"]) < _MAX_EXAMPLES:
                    summary["failed_examples"].append(dict(filepath=pending[pos][1], error=error[:300]))
            if len(buffer) >= chunk_size:
                flush()
    except BaseException as error:
        # keep what was computed: a rerun with skip_existing=True resumes from here
        try:
            flush()
            summary.update(status="interrupted", error=f"{type(error).__name__}: {error}")
            summary["seconds"] = round(time.perf_counter() - start, 3)
            _record(collection, params, summary)
        except Exception:
            pass
        raise
    flush()
    summary["seconds"] = round(time.perf_counter() - start, 3)
    _record(collection, params, summary)
    return summary


def embeddings_model_identity(collection, embeddings_field):
    """The model that computed ``embeddings_field``, or None if not recorded.

    Returns a dict with ``architecture``, ``pretrained`` (a tag or the
    absolute checkpoint path), ``embedding_dim``, ``normalize``, and
    ``checkpoint_sha256`` for checkpoint files; pass ``architecture`` and
    ``pretrained`` to ``core.embeddings.load_model`` to reload the model.
    """
    if not isinstance(embeddings_field, str):
        return None
    found = runs.plugin_runs(collection, runs.EMBEDDINGS, embeddings_field=embeddings_field)
    if not found:
        return None
    identity = found[0][1].get("model_identity")
    return dict(identity) if identity else None


def zero_shot_text(collection, embeddings_field, class_names, templates, *, device="auto"):
    """Text embeddings of the class prompts with the model that computed ``embeddings_field``.

    Returns ``(text, logit_scale, model)``: the (C, D) L2-normalised mean of
    each class's prompt embeddings (``template.format(name)`` per template),
    the model's logit scale, and a dict naming the model.
    """
    identity = embeddings_model_identity(collection, embeddings_field)
    if not identity or not identity.get("architecture"):
        raise ValueError(
            f"embeddings_field '{embeddings_field}' was not computed by compute_embeddings (no model is "
            "recorded for it); zero_shot needs that model's text tower. Use reference='trusted' or "
            "'checkpoint', or recompute the embeddings with compute_embeddings"
        )
    E = _core()
    arch, pretrained = identity["architecture"], identity.get("pretrained")
    try:
        loaded = E.load_model(arch, pretrained, device=device)
    except (ValueError, RuntimeError) as err:
        raise ValueError(
            f"zero_shot: could not reload {arch} / {pretrained}, the model that computed '{embeddings_field}': {err}"
        ) from err
    recorded_sha = identity.get("checkpoint_sha256")
    loaded_sha = loaded.identity.get("checkpoint_sha256")
    if recorded_sha and loaded_sha and recorded_sha != loaded_sha:
        raise ValueError(
            f"zero_shot: the checkpoint {pretrained!r} changed since '{embeddings_field}' was computed "
            "(sha256 differs); recompute the embeddings or restore the checkpoint"
        )
    text = E.text_embeddings(list(class_names), loaded, tuple(templates))
    return text, E.logit_scale(loaded), dict(architecture=arch, pretrained=pretrained)


# -- checks -------------------------------------------------------------------


def _check_collection(collection):
    media_type = collection.media_type
    if media_type == "video":
        raise ValueError(
            "compute_embeddings embeds images, and this is a video dataset. Convert the videos to "
            "frames and run on the frames view: frames = dataset.to_frames(sample_frames=True), then "
            "compute_embeddings(frames, ...) (in the App: open the frames view, then run the operator)"
        )
    if media_type == "group":
        raise ValueError(
            "compute_embeddings needs images, and this is a grouped dataset: select an image slice, "
            "e.g. dataset.select_group_slices(media_type='image')"
        )
    if len(collection) == 0:
        raise ValueError("The view is empty: select the images to embed")
    if media_type != "image":
        raise ValueError(f"compute_embeddings embeds images; this collection's media type is {media_type!r}")


def _check_field_name(name):
    if (
        not isinstance(name, str)
        or not name.isidentifier()
        or name.startswith("_")
        or name in _BUILTIN
    ):
        raise ValueError(
            "embeddings_field must be a plain field name (letters, digits, '_'; no leading '_', "
            f"not a built-in field such as 'filepath'), got {name!r}"
        )


def _is_vector_field(field):
    return isinstance(field, (fof.VectorField, fof.ArrayField)) or (
        isinstance(field, fof.ListField) and isinstance(field.field, (fof.FloatField, fof.IntField))
    )


def _check_vector_field(collection, name):
    field = collection._dataset.get_field(name)
    if field is not None and not _is_vector_field(field):
        raise ValueError(
            f"embeddings_field: field '{name}' already exists as a {type(field).__name__}, not a vector "
            "field; choose another name or delete that field first"
        )
    return field


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _existing_ids(collection, name, field):
    if field is None:
        return set()
    return set(collection.exists(name).values("id"))


def _first_vector(collection, name):
    values = collection.exists(name).limit(1).values(name)
    return values[0] if values else None


def _same_model(a, b):
    if a.get("architecture") != b.get("architecture"):
        return False
    if a.get("checkpoint_sha256") or b.get("checkpoint_sha256"):
        same_weights = a.get("checkpoint_sha256") == b.get("checkpoint_sha256")
    else:
        same_weights = a.get("pretrained") == b.get("pretrained")
    return same_weights and a.get("normalize", True) == b.get("normalize", True)


def _check_compatible(collection, name, field, identity, skip_existing, existing_ids):
    """Refuses to mix vectors of two models in one field; returns a warning or None."""
    if field is None:
        return None
    dim = identity["embedding_dim"]
    label = f"{identity['architecture']} / {identity['pretrained']}"
    in_view = _first_vector(collection, name)
    if in_view is not None and np.size(in_view) != dim and skip_existing:
        raise ValueError(
            f"embeddings_field '{name}' already holds {np.size(in_view)}-dim vectors but {label} gives "
            f"{dim}-dim ones. Recompute them all with skip_existing=False, or choose another field"
        )
    elsewhere = None
    if in_view is None:
        elsewhere = _first_vector(collection._dataset, name)
        if elsewhere is not None and np.size(elsewhere) != dim:
            raise ValueError(
                f"embeddings_field '{name}' holds {np.size(elsewhere)}-dim vectors on samples outside "
                f"this view but {label} gives {dim}-dim ones; choose another field, or run on the whole "
                "dataset with skip_existing=False"
            )
    if not skip_existing or (in_view is None and elsewhere is None):
        return None
    previous = embeddings_model_identity(collection, name)
    if previous is None:
        if not existing_ids:
            return None
        return (
            f"{len(existing_ids)} samples already held '{name}' vectors that this plugin did not record; "
            "they were kept (skip_existing=True)"
        )
    if not _same_model(previous, identity):
        raise ValueError(
            f"embeddings_field '{name}' holds embeddings of {previous.get('architecture')} / "
            f"{previous.get('pretrained')} (normalize={previous.get('normalize', True)}), not {label} "
            f"(normalize={identity['normalize']}); mixing models in one field makes distances "
            "meaningless. Recompute them all with skip_existing=False, or choose another field"
        )
    return None


def _record(collection, params, summary):
    key = params["embeddings_field"]
    extra = {k: v for k, v in summary.items() if k not in params}
    config = runs.make_config(runs.EMBEDDINGS, target_kind="samples", **params)
    commit(collection, key, config, dict(summary=extra))


def _write(collection, name, values_by_id):
    collection.set_values(name, values_by_id, key_field="id", validate=False)
