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
import uuid
from dataclasses import dataclass

import numpy as np

import fiftyone as fo
import fiftyone.core.fields as fof

from ..core import mimic as core_mimic
from ..core import params
from . import internals, runs, tags
from .commit import FieldWrite, TagWrite, commit, recover
from .embeddings import zero_shot_text
from .fields import classification_fields
from .progress import phases
from .reads import check_vector_fields, hidden_field_message, read_columns, read_vectors
from .targets import target_of

REFERENCES = ("trusted", "zero_shot", "checkpoint")
DEFAULT_SCORE_FIELD = "mimic_score"
_NORM_TOLERANCE = 1e-2


@dataclass
class LabelledEmbeddings:
    """The scored samples: ids, (N, D) vectors, (N,) class indices, class names."""

    ids: np.ndarray
    vectors: np.ndarray
    labels: np.ndarray
    classes: list
    skipped_ids: np.ndarray
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
    score_field=DEFAULT_SCORE_FIELD,
    run_key=None,
    overwrite=False,
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
    are skipped, counted and get None. With ``issue_tag``, the scored samples
    whose score is below 0 get that tag; a rerun moves it from the samples
    this run added it to onto the new flagged samples: a tag a sample already
    had is never removed.

    Nothing is written until every score is computed, and scores, tags and
    the run record land together. The run is recorded under ``run_key``
    (default: the score field's name).

    Returns:
        a summary dict: scored, skipped, skipped_no_label,
        skipped_no_embedding, flagged, tagged, classes, reference, seed, ...
    """
    start = time.perf_counter()
    recover(internals.root_dataset(collection))
    target = target_of(collection, "compute_mimic_scores")
    reference = params.choice("reference", reference, REFERENCES)
    overwrite = params.boolean("overwrite", overwrite)
    runs.check_output_field(collection, score_field, runs.MIMIC, param="score_field", overwrite=overwrite,
                            run_key=run_key or score_field)
    run_key = runs.check_run_key(collection, run_key or score_field, runs.MIMIC)
    check_vector_fields(collection, embeddings_field)
    _check_label_field(collection, label_field)
    issue_tag = _check_issue_tag(collection, issue_tag, trusted_tag)
    core_mimic._method(method)
    epochs = params.integer("epochs", epochs, minimum=1, maximum=params.MAX_EPOCHS)
    batch_size = params.integer("batch_size", batch_size, minimum=1)
    lr = params.number("lr", lr, above=0.0)
    seed = params.seed(seed)
    for template in _templates(templates) if reference == "zero_shot" else ():
        params.template("templates", template)  # before any data is read
    report = phases(params.callback("progress", progress))
    if collection.count() == 0:
        raise ValueError("The view is empty: select labelled samples with embeddings before computing mimic scores")

    data = load_labelled_embeddings(collection, embeddings_field, label_field, progress=report(0.0, 0.1))
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
        progress=report(0.1, 0.95),
    )
    flagged = core_mimic.flag_label_issues(scores, data.labels)
    accuracy, chance = _reference_accuracy(head, data, reference, info)
    warning = core_mimic.sanity_warning(accuracy, chance, int(flagged.sum()), len(data.ids),
                                        reference=_REFERENCE_NAMES[reference])
    del data.vectors

    summary = dict(
        scored=len(data.ids),
        skipped=len(data.skipped_ids),
        skipped_no_label=data.skipped_no_label,
        skipped_no_embedding=data.skipped_no_embedding,
        flagged=int(flagged.sum()),
        tagged=int(flagged.sum()) if issue_tag else 0,
        issue_tag=issue_tag,
        classes=list(data.classes),
        num_classes=len(data.classes),
        seconds=None,
        seed=seed,
        reference_accuracy=None if accuracy is None else round(accuracy, 4),
        chance_accuracy=None if chance is None else round(chance, 4),
        warning=warning,
        **{k: v for k, v in info.items() if k != "trusted_mask"},
    )
    config = runs.make_config(
        runs.MIMIC,
        embeddings_field=embeddings_field,
        label_field=label_field,
        score_field=score_field,
        target_kind=target.kind,
        token=uuid.uuid4().hex,
        reference=reference,
        trusted_tag=trusted_tag,
        trusted_view=trusted_view,
        checkpoint_path=os.path.abspath(checkpoint_path) if reference == "checkpoint" else None,
        templates=list(_templates(templates)) if reference == "zero_shot" else None,
        issue_tag=issue_tag,
        classes=list(data.classes),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        alignment_method=method,  # 'method' is the run's method name
        seed=seed,
        **{k: v for k, v in info.items() if k != "trusted_mask"},  # what the reference was built from
    )
    writes = [
        FieldWrite(
            score_field,
            np.concatenate([data.ids, data.skipped_ids]),
            scores.astype(float).tolist() + [None] * len(data.skipped_ids),
            fof.FloatField,
        )
    ]
    if issue_tag:
        writes.append(TagWrite(issue_tag, ids=data.ids[flagged]))
    summary["seconds"] = round(time.perf_counter() - start, 3)
    commit(collection, run_key, config, dict(summary=summary), writes=writes)
    report(1.0, 1.0)(1.0)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    summary["run_key"] = run_key
    summary["score_field"] = score_field
    return summary


_REFERENCE_NAMES = dict(trusted="the reference head (trained on the trusted samples)",
                       zero_shot="the zero-shot reference head", checkpoint="the checkpoint reference head")


def _reference_accuracy(head, data, reference, info):
    """The reference head's accuracy on its reference samples: the trusted ones, else every scored sample."""
    mask = info.get("trusted_mask") if reference == "trusted" else None
    if mask is not None:
        return core_mimic.reference_accuracy(head, data.vectors[mask], data.labels[mask])
    return core_mimic.reference_accuracy(head, data.vectors, data.labels)


def _check_issue_tag(collection, issue_tag, trusted_tag):
    """None, or the tag to put on likely label errors (never the trusted tag; not on frames)."""
    issue_tag = tags.check_tag(issue_tag, "issue_tag")
    if issue_tag is None:
        return None
    if trusted_tag and issue_tag == trusted_tag:
        raise ValueError(
            f"issue_tag: '{issue_tag}' is the trusted_tag; choose another tag for likely label errors"
        )
    if target_of(collection).kind == "frames":
        raise ValueError(
            "issue_tag: video frames have no tags in FiftyOne, so a frames view cannot keep them; leave "
            "issue_tag empty and filter the frames by score (mimic_score < 0 marks likely label errors)"
        )
    return issue_tag


def load_labelled_embeddings(collection, embeddings_field, label_field, progress=None):
    """Reads the embeddings and labels of the samples that have both.

    Class indices follow the sorted distinct label strings of those samples.
    """
    _check_label_field(collection, label_field)
    table = read_vectors(collection, embeddings_field, progress=progress)
    label_ids, columns = read_columns(collection, [f"{label_field}.label"])
    label_of = {
        i: (lab if isinstance(lab, str) and lab.strip() else None)
        for i, lab in zip(label_ids, columns[f"{label_field}.label"])
    }
    keep = np.fromiter((label_of.get(i) is not None for i in table.ids), dtype=bool, count=len(table.ids))
    no_label = sum(1 for v in label_of.values() if v is None)
    no_embedding = sum(1 for i in table.missing_ids if label_of.get(i) is not None)
    kept_ids = table.ids[keep]
    skipped_ids = np.concatenate([table.ids[~keep], table.missing_ids])
    if len(kept_ids) < 2:
        raise ValueError(
            f"mimic scores need at least 2 samples with both a label in '{label_field}' and an embedding in "
            f"'{embeddings_field}'; found {len(kept_ids)} ({no_label} without a label, "
            f"{no_embedding} without an embedding)"
        )
    names = np.array([label_of[i] for i in kept_ids], dtype=object)
    classes = sorted(set(names.tolist()))
    if len(classes) < 2:
        raise ValueError(
            f"label_field '{label_field}' has a single class ({classes[0]!r}) among the scored samples; "
            "mimic scores need at least 2 classes"
        )
    index = {c: k for k, c in enumerate(classes)}
    vectors = table.vectors if keep.all() else table.vectors[keep]
    return LabelledEmbeddings(
        ids=kept_ids,
        vectors=vectors,
        labels=np.fromiter((index[n] for n in names), dtype=np.int64, count=len(names)),
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
        members = set(collection.match_tags(trusted_tag).values("_id"))
        source = f"tag '{trusted_tag}'"
    else:
        dataset = internals.root_dataset(collection)
        saved = dataset.list_saved_views()
        if not isinstance(trusted_view, str) or trusted_view not in saved:
            raise ValueError(
                f"trusted_view: no saved view named {trusted_view!r} on dataset '{dataset.name}'; "
                f"saved views: {saved or 'none'}"
            )
        members = set(dataset.load_saved_view(trusted_view).values("_id"))
        source = f"saved view '{trusted_view}'"
    mask = np.fromiter((i in members for i in data.ids), dtype=bool, count=len(data.ids))
    if not mask.any():
        raise ValueError(
            f"the trusted set is empty: no sample of this view with a label in '{data.label_field}' and an "
            f"embedding in '{data.embeddings_field}' is in {source}. Tag (or save a view of) samples whose "
            "labels you have checked, at least one per class"
        )
    head = core_mimic.train_linear_head(
        data.vectors[mask], data.labels[mask], len(data.classes), seed=seed, classes=data.classes
    )
    return head, dict(trusted=int(mask.sum()), trusted_mask=mask)


def _zero_shot_head(collection, data, templates, device):
    field = data.embeddings_field
    templates = _templates(templates)
    for name in data.classes:
        core_mimic.text_prompts(name, templates)  # validates the templates and class names
    text, scale, model = zero_shot_text(collection, field, data.classes, templates, device=device)
    if text.shape[1] != data.vectors.shape[1]:
        raise ValueError(
            f"embeddings_field '{field}' holds {data.vectors.shape[1]}-dim vectors but the text embeddings of "
            f"its model are {text.shape[1]}-dim; these are not that model's image embeddings"
        )
    norms = np.sqrt(core_mimic._row_sq_norms(data.vectors))
    if np.abs(norms - 1.0).max() > _NORM_TOLERANCE:
        raise ValueError(
            f"embeddings_field '{field}' is not L2-normalised (norms range {norms.min():.3g}-{norms.max():.3g}); "
            "zero_shot compares the model's normalised image embeddings with its text embeddings: recompute "
            "them with compute_embeddings"
        )
    head = core_mimic.zero_shot_head(text, scale, classes=data.classes)
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
        hidden = hidden_field_message(collection, label_field, "label_field")
        raise ValueError(
            hidden
            or f"label_field: field '{label_field}' does not exist on dataset "
            f"'{internals.root_dataset(collection).name}'. Classification fields available: {available}"
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
    return tuple(params.strings("templates", templates, "prompt templates such as 'a photo of a {}.'"))
