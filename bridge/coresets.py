"""Coresets of a collection: which samples a pruning rate keeps, and saved views."""

import numpy as np

import fiftyone as fo
import fiftyone.core.fields as fof

from ..core import selection as core_selection
from .fields import _NUMERIC_FIELDS, classification_fields, load_embeddings, numeric_fields

SELECTION_MODES = ("auto",) + tuple(core_selection.SELECTIONS)


def recorded_embeddings_field(collection, score_field):
    """The embeddings field(s) a score field was computed from, per its run record."""
    dataset = collection._root_dataset
    if score_field not in dataset.list_runs():
        return None
    config = dataset.get_run_info(score_field).config
    fields = getattr(config, "embeddings_fields", None) or getattr(config, "embeddings_field", None)
    fields = [fields] if isinstance(fields, str) else list(fields or [])
    if not fields or any(dataset.get_field(f) is None for f in fields):
        return None
    return fields[0] if len(fields) == 1 else fields


def resolve_selection(collection, score_field, selection="auto", embeddings_field=None):
    """The selection mode to run and the embeddings it needs.

    ``"auto"`` is the recommended mode (:data:`core.selection.DEFAULT_SELECTION`)
    when embeddings are known (given, or recorded by the run that wrote the
    score field), else ``"top"``.
    """
    if selection in (None, "auto"):
        embeddings_field = embeddings_field or recorded_embeddings_field(collection, score_field)
        if embeddings_field:
            return core_selection.DEFAULT_SELECTION, embeddings_field
        return "top", None
    if selection not in core_selection.SELECTIONS:
        raise ValueError(f"selection must be one of {list(SELECTION_MODES)}, got {selection!r}")
    if selection in core_selection.EMBEDDING_SELECTIONS:
        embeddings_field = embeddings_field or recorded_embeddings_field(collection, score_field)
        if not embeddings_field:
            raise ValueError(
                f"selection '{selection}' needs embeddings: pass embeddings_field "
                f"(no embeddings are recorded for '{score_field}')"
            )
        return selection, embeddings_field
    return selection, None


class ScoreTable:
    """Scores of a collection's samples that have one, cached for fast sweeps."""

    def __init__(self, ids, scores, missing, labels=None, embeddings=None, selection="top"):
        self.ids = ids
        self.selection = selection
        self.scores = scores
        self.missing = missing
        self.labels = labels
        self.embeddings = embeddings


def load_scores(collection, score_field, *, label_field=None, embeddings_field=None):
    """Reads a numeric score field (and optional labels / embeddings) of the scored samples."""
    field = collection.get_field(score_field) if isinstance(score_field, str) else None
    if field is None:
        raise ValueError(
            f"score_field: field {score_field!r} does not exist; numeric fields available: "
            f"{numeric_fields(collection) or 'none'}. Compute ZCore or mimic scores first"
        )
    if not isinstance(field, _NUMERIC_FIELDS):
        raise ValueError(f"score_field: '{score_field}' is a {type(field).__name__}, not a numeric field")
    ids = np.asarray(collection.values("id"))
    raw = collection.values(score_field)
    present = np.array([v is not None and np.isfinite(v) for v in raw], dtype=bool)
    scores = np.array([v for v, p in zip(raw, present) if p], dtype=np.float64)
    labels = None
    if label_field:
        labels = _labels(collection, label_field, param="stratify_by")[present]
    embeddings = None
    if embeddings_field:
        table = load_embeddings(collection.select(ids[present].tolist(), ordered=True), embeddings_field)
        if table.missing_ids:
            raise ValueError(
                f"embeddings_field: {len(table.missing_ids)} scored samples have no '{embeddings_field}'; "
                "this selection mode needs embeddings for every scored sample"
            )
        embeddings = table.vectors
    return ScoreTable(ids[present], scores, int((~present).sum()), labels, embeddings)


def _labels(collection, label_field, param):
    field = collection.get_field(label_field)
    if field is None:
        raise ValueError(
            f"{param}: field '{label_field}' does not exist; Classification fields available: "
            f"{classification_fields(collection) or 'none'}"
        )
    if not (isinstance(field, fof.EmbeddedDocumentField) and issubclass(field.document_type, fo.Classification)):
        raise ValueError(f"{param}: '{label_field}' is not a Classification field")
    values = collection.values(f"{label_field}.label")
    # Samples without a label form their own stratum.
    return np.array(["" if v is None else str(v) for v in values], dtype=object)


def select_kept(table, prune_rate, *, keep="highest", selection="top", stratify=False, seed=0):
    """Positions (into ``table``) of the samples a coreset keeps."""
    return core_selection.select_coreset(
        table.scores,
        prune_rate,
        keep=keep,
        selection=selection,
        labels=table.labels if stratify else None,
        stratify=bool(stratify),
        embeddings=table.embeddings,
        seed=seed,
    )


def coreset_ids(
    collection,
    score_field,
    prune_rate,
    *,
    keep="highest",
    stratify_by=None,
    selection="auto",
    embeddings_field=None,
    seed=0,
):
    """Ids of the kept and the pruned scored samples, and the selection mode used."""
    selection, embeddings_field = resolve_selection(collection, score_field, selection, embeddings_field)
    table = load_scores(
        collection, score_field, label_field=stratify_by, embeddings_field=embeddings_field
    )
    if len(table.scores) == 0:
        raise ValueError(f"score_field: no sample in the view has a '{score_field}' value; compute scores first")
    kept = select_kept(table, prune_rate, keep=keep, selection=selection, stratify=bool(stratify_by), seed=seed)
    mask = np.zeros(len(table.ids), dtype=bool)
    mask[kept] = True
    return table.ids[mask].tolist(), table.ids[~mask].tolist(), selection


def save_coreset_view(
    collection,
    score_field,
    prune_rate,
    view_name,
    *,
    keep="highest",
    stratify_by=None,
    selection="auto",
    embeddings_field=None,
    seed=0,
    tag=None,
    overwrite=False,
):
    """Saves the coreset of a collection as a saved view; returns a summary."""
    dataset = collection._root_dataset
    if not isinstance(view_name, str) or not view_name.strip():
        raise ValueError("view_name must be a non-empty name for the saved view")
    if dataset.has_saved_view(view_name) and not overwrite:
        raise ValueError(
            f"view_name: a saved view named '{view_name}' already exists on '{dataset.name}'; "
            "choose another name or pass overwrite=True"
        )
    kept, pruned, selection = coreset_ids(
        collection,
        score_field,
        prune_rate,
        keep=keep,
        stratify_by=stratify_by,
        selection=selection,
        embeddings_field=embeddings_field,
        seed=seed,
    )
    view = collection.select(kept)
    description = (
        f"Coreset of {len(kept)}/{len(kept) + len(pruned)} samples: prune {prune_rate:.0%} by "
        f"{keep} '{score_field}' ({selection}{', stratified by ' + stratify_by if stratify_by else ''})"
    )
    if tag:
        view.tag_samples(tag)
    dataset.save_view(view_name, view, description=description, overwrite=overwrite)
    return dict(
        view_name=view_name, kept=len(kept), pruned=len(pruned), selection=selection, description=description
    )


def accuracy_curve(
    collection,
    score_field,
    embeddings_field,
    label_field,
    *,
    rates=(0, 10, 30, 50, 70, 90),
    keep="highest",
    selection="auto",
    stratify=False,
    held_out=0.2,
    max_train=20_000,
    seed=0,
):
    """Linear-probe accuracy on held-out labelled samples when training on each rate's kept set."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    selection, selection_embeddings = resolve_selection(collection, score_field, selection, embeddings_field)
    if selection_embeddings not in (None, embeddings_field):
        raise ValueError("embeddings_field: the probe and the selection must use the same embeddings")
    table = load_scores(collection, score_field, label_field=label_field, embeddings_field=embeddings_field)
    labelled = np.flatnonzero(table.labels != "")
    if len(labelled) < 10 or len(np.unique(table.labels[labelled])) < 2:
        raise ValueError(f"label_field: need at least 10 samples and 2 classes labelled in '{label_field}'")
    train, test = train_test_split(labelled, test_size=held_out, random_state=seed)
    in_train = np.zeros(len(table.ids), dtype=bool)
    in_train[train] = True
    rng = np.random.default_rng(seed)
    accuracy = []
    for rate in rates:
        kept = select_kept(table, rate / 100.0, keep=keep, selection=selection, stratify=stratify, seed=seed)
        fit = kept[in_train[kept]]
        if len(fit) > max_train:
            fit = rng.choice(fit, max_train, replace=False)
        if len(np.unique(table.labels[fit])) < 2:
            accuracy.append(None)
            continue
        probe = LogisticRegression(max_iter=1000).fit(table.embeddings[fit], table.labels[fit])
        accuracy.append(round(float(probe.score(table.embeddings[test], table.labels[test])), 4))
    return dict(rates=list(rates), accuracy=accuracy, held_out=len(test))
