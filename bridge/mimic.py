"""Grad-Mimic label-quality scores of a labelled collection.

The labels come from a ``Classification`` field. Classes are indexed in the
**sorted order of the distinct label strings of the scored samples** (the
samples of the view with both a label and an embedding); a checkpoint head's
rows must follow that order, and the run record stores it (``classes``).

Three references (the "trusted" direction the gradients are compared with):

* ``"trusted"``: a logistic-regression head trained on the scored samples
  that carry ``trusted_tag`` or belong to the saved view ``trusted_view``;
* ``"zero_shot"``: the class names' prompt embeddings from the text tower of
  the open_clip model that computed the image embeddings (as recorded by
  ``compute_embeddings``), times the model's logit scale;
* ``"checkpoint"``: a head saved as ``.npy`` or ``.pt``/``.pth`` (loaded
  without running pickled code).

Higher score = the sample's label agrees with the reference; scores below 0
are flagged as likely label errors (``flag_label_issues``).
"""

import os
import time
from dataclasses import dataclass

import numpy as np

import fiftyone as fo
import fiftyone.core.fields as fof

from ..core import mimic as core_mimic
from .embeddings import embeddings_model_identity
from .fields import classification_fields, check_writable_field, load_embeddings, record_run, run_key_for
from .fields import write_sample_values

MIMIC_METHOD = "coreset_mimic"
REFERENCES = ("trusted", "zero_shot", "checkpoint")
_NORM_TOLERANCE = 1e-2


@dataclass
class LabelledEmbeddings:
    """The scored samples: ids, (N, D) vectors, (N,) class indices, class names."""

    ids: list
    vectors: np.ndarray
    labels: np.ndarray
    classes: list
    skipped_ids: list
    skipped_no_label: int
    skipped_no_embedding: int
    embeddings_field: str
    label_field: str


def compute_mimic_scores(
    collection,
    embeddings_field,
    label_field,
    *,
    reference="trusted",
    trusted_tag=None,
    trusted_view=None,
    checkpoint_path=None,
    templates=None,
    score_field="mimic_score",
    issue_tag=None,
    epochs=core_mimic.DEFAULTS["epochs"],
    batch_size=core_mimic.DEFAULTS["batch_size"],
    lr=core_mimic.DEFAULTS["lr"],
    method=core_mimic.DEFAULTS["method"],
    seed=None,
    device="auto",
    progress=None,
):
    """Scores the labels of a collection with Grad-Mimic and writes ``score_field``.

    Samples without a label (or with an empty one) or without an embedding
    are skipped, counted and get ``None``. With ``issue_tag``, the scored
    samples whose score is below 0 get that tag, and the tag is removed from
    the other samples of the collection, so it always matches the latest run.

    Nothing is written until every score is computed: a failed run leaves no
    field behind. The run is recorded under the key ``score_field``.

    Returns:
        a summary dict: scored, skipped, skipped_no_label,
        skipped_no_embedding, flagged, tagged, classes, reference, seed, ...
    """
    start = time.perf_counter()
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {list(REFERENCES)}, got {reference!r}")
    check_writable_field(collection, score_field)
    if issue_tag is not None and (not isinstance(issue_tag, str) or not issue_tag.strip()):
        raise ValueError(f"issue_tag must be a non-empty tag name or None, got {issue_tag!r}")
    core_mimic._method(method)
    epochs = core_mimic._positive_int("epochs", epochs)
    batch_size = core_mimic._positive_int("batch_size", batch_size)
    lr = core_mimic._positive_float("lr", lr)
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer or None, got {seed!r}")
    seed = int(seed)

    data = load_labelled_embeddings(collection, embeddings_field, label_field)
    head, info = reference_head(
        collection,
        data,
        reference=reference,
        trusted_tag=trusted_tag,
        trusted_view=trusted_view,
        checkpoint_path=checkpoint_path,
        templates=templates,
        seed=seed,
        device=device,
    )
    scores = core_mimic.mimic_scores(
        data.vectors,
        data.labels,
        head,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        method=method,
        seed=seed,
        progress=progress,
    )
    flagged = core_mimic.flag_label_issues(scores, data.labels)

    values = dict(zip(data.ids, scores.tolist()))
    values.update(dict.fromkeys(data.skipped_ids))
    write_sample_values(collection, score_field, values)
    tagged = 0
    if issue_tag is not None:
        flagged_ids = [i for i, f in zip(data.ids, flagged) if f]
        collection.untag_samples(issue_tag)
        if flagged_ids:
            collection._root_dataset.select(flagged_ids).tag_samples(issue_tag)
        tagged = len(flagged_ids)

    summary = dict(
        scored=len(data.ids),
        skipped=len(data.skipped_ids),
        skipped_no_label=data.skipped_no_label,
        skipped_no_embedding=data.skipped_no_embedding,
        flagged=int(flagged.sum()),
        tagged=tagged,
        classes=list(data.classes),
        num_classes=len(data.classes),
        seconds=round(time.perf_counter() - start, 3),
        **info,
    )
    params = dict(
        embeddings_field=embeddings_field,
        label_field=label_field,
        reference=reference,
        trusted_tag=trusted_tag,
        trusted_view=trusted_view,
        checkpoint_path=os.path.abspath(checkpoint_path) if reference == "checkpoint" else None,
        templates=list(_templates(templates)) if reference == "zero_shot" else None,
        score_field=score_field,
        issue_tag=issue_tag,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        alignment_method=method,  # 'method' is the run's method name
        seed=seed,
        view_stages=[str(s) for s in getattr(collection, "_stages", [])],
    )
    record_run(collection, run_key_for(score_field), MIMIC_METHOD, params, summary)
    return summary


def load_labelled_embeddings(collection, embeddings_field, label_field):
    """Reads the embeddings and labels of the samples that have both.

    Class indices follow the sorted distinct label strings of those samples.
    """
    _check_label_field(collection, label_field)
    if len(collection) == 0:
        raise ValueError("The view is empty: select labelled samples with embeddings before computing mimic scores")
    table = load_embeddings(collection, embeddings_field, standardize=False)
    ids = collection.values("id")
    labels = collection.values(f"{label_field}.label")
    label_of = {i: (lab if isinstance(lab, str) and lab.strip() else None) for i, lab in zip(ids, labels)}
    keep = np.array([label_of[i] is not None for i in table.ids], dtype=bool)
    kept_ids = [i for i, k in zip(table.ids, keep) if k]
    no_label = sum(1 for i in ids if label_of[i] is None)
    no_embedding = sum(1 for i in table.missing_ids if label_of[i] is not None)
    scored = set(kept_ids)
    skipped_ids = [i for i in ids if i not in scored]
    if len(kept_ids) < 2:
        raise ValueError(
            f"mimic scores need at least 2 samples with both a label in '{label_field}' and an embedding in "
            f"'{embeddings_field}'; found {len(kept_ids)} ({no_label} without a label, "
            f"{no_embedding} without an embedding)"
        )
    names = [label_of[i] for i in kept_ids]
    classes = sorted(set(names))
    if len(classes) < 2:
        raise ValueError(
            f"label_field '{label_field}' has a single class ({classes[0]!r}) among the scored samples; "
            "mimic scores need at least 2 classes"
        )
    index = {c: k for k, c in enumerate(classes)}
    return LabelledEmbeddings(
        ids=kept_ids,
        vectors=table.vectors[keep],
        labels=np.array([index[n] for n in names], dtype=np.int64),
        classes=classes,
        skipped_ids=skipped_ids,
        skipped_no_label=no_label,
        skipped_no_embedding=no_embedding,
        embeddings_field=embeddings_field,
        label_field=label_field,
    )


def reference_head(
    collection,
    data,
    *,
    reference="trusted",
    trusted_tag=None,
    trusted_view=None,
    checkpoint_path=None,
    templates=None,
    seed=None,
    device="auto",
):
    """Builds the reference head of ``data`` (a :class:`LabelledEmbeddings`).

    Returns ``(head, info)``: a ``LinearHead`` of shape (C, D) whose rows
    follow ``data.classes``, and a dict of what was used (recorded with the run).
    """
    if reference == "trusted":
        return _trusted_head(collection, data, trusted_tag, trusted_view, seed)
    if reference == "zero_shot":
        return _zero_shot_head(collection, data, templates, device)
    if reference == "checkpoint":
        return _checkpoint_head(data, checkpoint_path)
    raise ValueError(f"reference must be one of {list(REFERENCES)}, got {reference!r}")


# -- references -----------------------------------------------------------------


def _trusted_head(collection, data, trusted_tag, trusted_view, seed):
    given = [name for name, value in (("trusted_tag", trusted_tag), ("trusted_view", trusted_view)) if value]
    if not given:
        raise ValueError(
            "reference='trusted' needs trusted_tag (a tag on the samples whose labels are known to be "
            "correct) or trusted_view (a saved view of them)"
        )
    if len(given) == 2:
        raise ValueError("give trusted_tag or trusted_view, not both")
    if trusted_tag:
        if not isinstance(trusted_tag, str):
            raise ValueError(f"trusted_tag must be a tag name, got {trusted_tag!r}")
        members = set(collection.match_tags(trusted_tag).values("id"))
        source = f"tag '{trusted_tag}'"
    else:
        dataset = collection._root_dataset
        saved = dataset.list_saved_views()
        if not isinstance(trusted_view, str) or trusted_view not in saved:
            raise ValueError(
                f"trusted_view: no saved view named {trusted_view!r} on dataset '{dataset.name}'; "
                f"saved views: {saved or 'none'}"
            )
        members = set(dataset.load_saved_view(trusted_view).values("id"))
        source = f"saved view '{trusted_view}'"
    mask = np.array([i in members for i in data.ids], dtype=bool)
    if not mask.any():
        raise ValueError(
            f"the trusted set is empty: no sample of this view with a label in '{data.label_field}' and an "
            f"embedding in '{data.embeddings_field}' is in {source}. Tag (or save a view of) samples whose "
            "labels you have checked, at least one per class"
        )
    head = core_mimic.train_linear_head(
        data.vectors[mask], data.labels[mask], len(data.classes), seed=seed, classes=data.classes
    )
    return head, dict(trusted=int(mask.sum()))


def _zero_shot_head(collection, data, templates, device):
    field = data.embeddings_field
    identity = embeddings_model_identity(collection, field)
    if not identity or not identity.get("architecture"):
        raise ValueError(
            f"embeddings_field '{field}' was not computed by compute_embeddings (no open_clip model is "
            "recorded for it); zero_shot needs that model's text tower. Use reference='trusted' or "
            "'checkpoint', or recompute the embeddings with compute_embeddings"
        )
    if identity.get("normalize") is False:
        raise ValueError(
            f"embeddings_field '{field}' holds unnormalised embeddings (normalize=False); zero_shot compares "
            "them with L2-normalised text embeddings. Recompute them with normalize=True"
        )
    norms = np.linalg.norm(data.vectors.astype(np.float64), axis=1)
    if np.abs(norms - 1.0).max() > _NORM_TOLERANCE:
        raise ValueError(
            f"embeddings_field '{field}' is not L2-normalised (norms range {norms.min():.3g}-{norms.max():.3g}); "
            "zero_shot needs the model's normalised image embeddings. Recompute them with compute_embeddings"
        )
    templates = _templates(templates)
    for name in data.classes:
        core_mimic.text_prompts(name, templates)  # validates the templates and class names

    from ..core import embeddings as core_embeddings

    arch, pretrained = identity["architecture"], identity.get("pretrained")
    try:
        loaded = core_embeddings.load_model(arch, pretrained, device=device)
    except (ValueError, RuntimeError) as err:
        raise ValueError(
            f"zero_shot: could not reload {arch} / {pretrained}, the model that computed '{field}': {err}"
        ) from err
    recorded_sha = identity.get("checkpoint_sha256")
    loaded_sha = loaded.identity.get("checkpoint_sha256")
    if recorded_sha and loaded_sha and recorded_sha != loaded_sha:
        raise ValueError(
            f"zero_shot: the checkpoint {pretrained!r} changed since '{field}' was computed (sha256 differs); "
            "recompute the embeddings or restore the checkpoint"
        )
    text = core_embeddings.text_embeddings(data.classes, loaded, templates)
    if text.shape[1] != data.vectors.shape[1]:
        raise ValueError(
            f"embeddings_field '{field}' holds {data.vectors.shape[1]}-dim vectors but the text tower of "
            f"{arch} / {pretrained} gives {text.shape[1]}-dim ones; these are not that model's image embeddings"
        )
    scale = core_embeddings.logit_scale(loaded)
    head = core_mimic.zero_shot_head(text, scale, classes=data.classes)
    model = dict(architecture=arch, pretrained=pretrained)
    return head, dict(logit_scale=round(scale, 6), model=model)


def _checkpoint_head(data, checkpoint_path):
    if not isinstance(checkpoint_path, (str, os.PathLike)) or not os.fspath(checkpoint_path):
        raise ValueError("reference='checkpoint' needs checkpoint_path: a .npy or .pt/.pth file of the head")
    num_classes, dim = len(data.classes), data.vectors.shape[1]
    try:
        head = core_mimic.load_head(checkpoint_path, num_classes, dim, classes=data.classes)
    except ValueError as err:
        if "shape" in str(err):
            raise ValueError(
                f"{err}. The scored samples have {num_classes} classes and {dim}-dim embeddings; the head's "
                f"rows must follow the sorted label names {data.classes}"
            ) from None
        raise
    return head, dict(checkpoint=os.path.abspath(os.fspath(checkpoint_path)))


# -- checks ---------------------------------------------------------------------


def _check_label_field(collection, label_field):
    if not isinstance(label_field, str) or not label_field:
        raise ValueError(f"label_field must be the name of a Classification field, got {label_field!r}")
    available = classification_fields(collection) or "none"
    field = collection.get_field(label_field)
    if field is None:
        raise ValueError(
            f"label_field: field '{label_field}' does not exist on dataset "
            f"'{collection._root_dataset.name}'. Classification fields available: {available}"
        )
    if not (isinstance(field, fof.EmbeddedDocumentField) and field.document_type is fo.Classification):
        kind = field.document_type.__name__ if isinstance(field, fof.EmbeddedDocumentField) else type(field).__name__
        raise ValueError(
            f"label_field: '{label_field}' is a {kind}, not a Classification field (one label per sample). "
            f"Classification fields available: {available}"
        )


def _templates(templates):
    if templates is None:
        return core_mimic.DEFAULT_TEMPLATES
    if isinstance(templates, str):
        return (templates,)
    return tuple(templates)
