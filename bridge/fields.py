"""Reading and writing sample fields, and recording runs."""

import numpy as np

import fiftyone as fo
import fiftyone.core.fields as fof


PLUGIN = "@coreset/curation"
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
