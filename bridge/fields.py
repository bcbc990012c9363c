"""Which fields of a collection the plugin offers: vectors, scores, labels."""

from bson import ObjectId

import fiftyone as fo
import fiftyone.core.fields as fof

from . import internals, runs
from .targets import is_vector_field

_NUMERIC = (fof.FloatField, fof.IntField)


def vector_fields(collection):
    """Sample-level fields that hold vectors, sorted (label attributes such as logits are not offered)."""
    schema = collection.get_field_schema()
    return sorted(name for name, field in schema.items() if is_vector_field(field))


def score_fields(collection):
    """Numeric sample fields, best default first.

    ZCore score fields (newest run first), then other numeric fields, then
    this plugin's label-quality (mimic) scores last: a coreset ranked by label
    quality is rarely what is meant. Coreset rank fields are not scores and
    are left out.
    """
    schema = collection.get_field_schema()
    names = [n for n, f in schema.items() if isinstance(f, _NUMERIC) and not n.startswith("_")]
    zcore = [c["score_field"] for _, c, _ in runs.plugin_runs(collection, runs.ZCORE)]
    last = {c.get("score_field") for _, c, _ in runs.plugin_runs(collection, runs.MIMIC)}
    ranks = {c.get("rank_field") for _, c, _ in runs.plugin_runs(collection, runs.ORDER)}
    names = [n for n in names if n not in ranks]
    first = [n for n in dict.fromkeys(zcore) if n in names]
    rest = sorted(n for n in names if n not in first and n not in last)
    return first + rest + sorted(n for n in names if n in last)


def default_score_field(collection):
    """The latest ZCore score field, else the first numeric field that is not a label-quality score."""
    fields = score_fields(collection)
    mimic = {c.get("score_field") for _, c, _ in runs.plugin_runs(collection, runs.MIMIC)}
    for name in fields:
        if name not in mimic:
            return name
    return fields[0] if fields else None


def classification_fields(collection):
    """Names of ``Classification`` label fields."""
    return sorted(collection.get_field_schema(embedded_doc_type=fo.Classification).keys())


def fields_version(collection):
    """A key that changes when the dataset's fields or runs change (one small read of the dataset document).

    Caches of :func:`score_fields` and run summaries are keyed on it; score values edited in place do not change it.
    """
    import fiftyone.core.odm as foo

    dataset = internals.root_dataset(collection)
    doc = foo.get_db_conn().datasets.find_one({"_id": ObjectId(internals.dataset_id(dataset))},
                                              {"last_modified_at": True, "runs": True})
    if doc is None:
        return None
    runs_ = sorted((k, str(v)) for k, v in (doc.get("runs") or {}).items())
    return str(doc.get("last_modified_at")), tuple(runs_)
