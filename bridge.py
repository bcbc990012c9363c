"""The one place that moves data between FiftyOne collections and arrays.

Operators and panels call these functions; ``core`` never sees FiftyOne.
"""

import math
import time

import numpy as np

import fiftyone as fo
import fiftyone.core.fields as fof

from .core import selection as core_selection
from .core import zcore as core_zcore

PLUGIN = "@coreset/curation"
ZCORE_METHOD = "coreset_zcore"
SELECTION_MODES = core_selection.SELECTION_MODES
_NUMERIC_FIELDS = (fof.FloatField, fof.IntField)
_VECTOR_FIELDS = (fof.VectorField, fof.ArrayField)


class EmbeddingTable:
    """Embeddings of the samples that have them, with the ids of those that do not."""

    def __init__(self, ids, vectors, missing_ids, fields):
        self.ids = ids
        self.vectors = vectors
        self.missing_ids = missing_ids
        self.fields = fields


# -- schema helpers ---------------------------------------------------------


def vector_fields(collection):
    """Names of the sample fields that hold vectors, sorted."""
    schema = collection.get_field_schema(flat=True)
    return sorted(
        name
        for name, field in schema.items()
        if isinstance(field, _VECTOR_FIELDS)
        or (isinstance(field, fof.ListField) and isinstance(field.field, (fof.FloatField, fof.IntField)))
    )


def numeric_fields(collection):
    """Names of numeric sample fields, this plugin's score fields first."""
    schema = collection.get_field_schema(flat=True)
    names = [
        name
        for name, field in schema.items()
        if isinstance(field, _NUMERIC_FIELDS) and not name.startswith("_") and "." not in name
    ]
    ours = set(plugin_score_fields(collection))
    return sorted(names, key=lambda n: (n not in ours, n))


def plugin_score_fields(collection):
    """Score fields written by this plugin's runs."""
    fields = []
    for key in collection.list_runs():
        config = collection.get_run_info(key).config
        field = getattr(config, "score_field", None)
        if getattr(config, "plugin", None) == PLUGIN and field:
            fields.append(field)
    return fields


def classification_fields(collection):
    """Names of ``Classification`` label fields."""
    return sorted(collection.get_field_schema(embedded_doc_type=fo.Classification).keys())


def _field(collection, name, param):
    if not isinstance(name, str) or not name:
        raise ValueError(f"{param} must be a field name, got {name!r}")
    field = collection.get_field(name)
    if field is None:
        raise ValueError(
            f"{param}: field '{name}' does not exist on dataset '{collection._root_dataset.name}'. "
            f"Vector fields available: {vector_fields(collection) or 'none'}"
        )
    return field


# -- embeddings ---------------------------------------------------------------


def load_embeddings(collection, fields, *, standardize="auto"):
    """Reads one or more vector fields into an (N, D) float32 array.

    Fields are concatenated in the given order. Samples missing any field are
    skipped and their ids returned. With ``standardize`` each field is centred
    and divided by its overall standard deviation, so one model's scale does
    not dominate; ``"auto"`` standardizes when there is more than one field.
    """
    if isinstance(fields, str):
        fields = [fields]
    fields = list(fields or [])
    if not fields:
        raise ValueError("embeddings_field is required: name one or more vector fields")
    if len(set(fields)) != len(fields):
        raise ValueError(f"embeddings_field lists a field twice: {fields}")
    for name in fields:
        field = _field(collection, name, "embeddings_field")
        is_list = isinstance(field, fof.ListField) and isinstance(field.field, (fof.FloatField, fof.IntField))
        if not (isinstance(field, _VECTOR_FIELDS) or is_list):
            raise ValueError(
                f"embeddings_field: '{name}' is a {type(field).__name__}, not a vector field. "
                f"Vector fields available: {vector_fields(collection) or 'none'}; "
                "compute embeddings first (compute_embeddings)"
            )
    if standardize == "auto":
        standardize = len(fields) > 1

    ids = np.asarray(collection.values("id"))
    columns = [collection.values(name) for name in fields]
    present = np.ones(len(ids), dtype=bool)
    for values in columns:
        present &= np.array([v is not None for v in values], dtype=bool)

    blocks = []
    for name, values in zip(fields, columns):
        rows = [values[i] for i in np.flatnonzero(present)]
        lengths = {np.size(v) for v in rows}
        if len(lengths) > 1:
            raise ValueError(
                f"embeddings_field: '{name}' holds vectors of different lengths {sorted(lengths)}; "
                "recompute the embeddings with one model"
            )
        block = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            bad = ids[present][~finite]
            raise ValueError(
                f"embeddings_field: '{name}' has NaN or inf values in {len(bad)} samples "
                f"(e.g. {', '.join(bad[:3])}); recompute those embeddings or exclude them from the view"
            )
        if standardize and len(block):
            block = block - block.mean(axis=0)
            block /= max(float(np.sqrt(np.mean(block**2))), 1e-12)
        blocks.append(block)
    vectors = np.concatenate(blocks, axis=1) if blocks else np.empty((0, 0), np.float32)
    return EmbeddingTable(ids[present].tolist(), vectors, ids[~present].tolist(), fields)


# -- writing ------------------------------------------------------------------


def check_writable_field(collection, name, param="score_field"):
    """Refuses names that would overwrite a non-numeric field or a protected one."""
    if not isinstance(name, str) or not name.strip() or name.startswith("_") or "." in name:
        raise ValueError(f"{param} must be a plain field name (no leading '_' or '.'), got {name!r}")
    dataset = collection._root_dataset
    if name in ("id", "filepath", "tags", "metadata", "created_at", "last_modified_at"):
        raise ValueError(f"{param}: '{name}' is a built-in field; choose another name")
    field = dataset.get_field(name)
    if field is not None and not isinstance(field, (fof.FloatField,)):
        raise ValueError(
            f"{param}: field '{name}' already exists as a {type(field).__name__}; "
            "choose another name or delete that field first"
        )


def write_sample_values(collection, name, values_by_id):
    """Writes ``{sample_id: value}`` to a field in one bulk step.

    Values are computed in full before anything is written, so a failed run
    never leaves a half-written field.
    """
    collection._root_dataset.set_values(name, values_by_id, key_field="id", validate=False)


def record_run(collection, run_key, method, params, summary):
    """Records a run with FiftyOne's runs API, replacing one of the same key."""
    dataset = collection._root_dataset
    config = dataset.init_run(plugin=PLUGIN, method=method, **params, **summary)
    if run_key in dataset.list_runs():
        dataset.delete_run(run_key)
    dataset.register_run(run_key, config)
    results = dataset.init_run_results(run_key, summary=summary)
    dataset.save_run_results(run_key, results)


def run_key_for(field_name):
    """The run key under which a score field's run is recorded."""
    return field_name


# -- ZCore --------------------------------------------------------------------


def compute_zcore_scores(
    collection,
    embeddings_field,
    *,
    score_field="zcore_score",
    standardize="auto",
    n_samples=1_000_000,
    sample_dim=2,
    redundancy_nn=1000,
    redundancy_exp=4,
    random_init=True,
    seed=None,
    target_reliability=0.9,
    time_budget=None,
    device="auto",
    num_threads=None,
    progress=None,
):
    """Scores the samples of a collection with ZCore and writes ``score_field``.

    Returns a summary dict (scored, skipped, seconds, reliability, ...).
    """
    start = time.perf_counter()
    check_writable_field(collection, score_field)
    if len(collection) == 0:
        raise ValueError("The view is empty: select samples with embeddings before computing ZCore scores")
    table = load_embeddings(collection, embeddings_field, standardize=standardize)
    if len(table.ids) < 3:
        raise ValueError(
            f"ZCore needs at least 3 samples with embeddings in '{', '.join(table.fields)}'; "
            f"found {len(table.ids)} (skipped {len(table.missing_ids)} without). Compute embeddings first"
        )
    result = core_zcore.zcore_run(
        table.vectors,
        n_samples=n_samples,
        sample_dim=sample_dim,
        redundancy_nn=redundancy_nn,
        redundancy_exp=redundancy_exp,
        random_init=random_init,
        seed=seed,
        progress=progress,
        device=device,
        num_threads=num_threads,
        target_reliability=target_reliability,
        time_budget=time_budget,
    )
    values = dict(zip(table.ids, result.scores.tolist()))
    values.update(dict.fromkeys(table.missing_ids))
    write_sample_values(collection, score_field, values)
    summary = dict(
        scored=len(table.ids),
        skipped=len(table.missing_ids),
        seconds=round(time.perf_counter() - start, 3),
        reliability=None if math.isnan(result.reliability) else round(result.reliability, 4),
        n_samples_used=result.n_samples,
        stopped_by=result.stopped_by,
        seed=result.seed,
        device=result.device,
    )
    params = dict(
        embeddings_fields=table.fields,
        score_field=score_field,
        standardize=standardize,
        n_samples=n_samples,
        sample_dim=sample_dim,
        redundancy_nn=redundancy_nn,
        redundancy_exp=redundancy_exp,
        random_init=random_init,
        target_reliability=target_reliability,
        time_budget=time_budget,
        view_stages=[str(s) for s in getattr(collection, "_stages", [])],
    )
    record_run(collection, run_key_for(score_field), ZCORE_METHOD, params, summary)
    return summary


# -- coresets -----------------------------------------------------------------


class ScoreTable:
    """Scores of a collection's samples that have one, cached for fast sweeps."""

    def __init__(self, ids, scores, missing, labels=None, embeddings=None):
        self.ids = ids
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
    selection="top",
    embeddings_field=None,
    seed=0,
):
    """Ids of the kept and the pruned scored samples of a collection."""
    table = load_scores(
        collection, score_field, label_field=stratify_by, embeddings_field=embeddings_field
    )
    if len(table.scores) == 0:
        raise ValueError(f"score_field: no sample in the view has a '{score_field}' value; compute scores first")
    kept = select_kept(table, prune_rate, keep=keep, selection=selection, stratify=bool(stratify_by), seed=seed)
    mask = np.zeros(len(table.ids), dtype=bool)
    mask[kept] = True
    return table.ids[mask].tolist(), table.ids[~mask].tolist()


def save_coreset_view(
    collection,
    score_field,
    prune_rate,
    view_name,
    *,
    keep="highest",
    stratify_by=None,
    selection="top",
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
    kept, pruned = coreset_ids(
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
    return dict(view_name=view_name, kept=len(kept), pruned=len(pruned), description=description)
