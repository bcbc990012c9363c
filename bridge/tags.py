"""Tags the plugin adds, owned per sample: the plugin never removes a tag it did not add.

Every (dataset, tag, sample) that a run of this plugin wants tagged has one
document in :data:`OWNERS`::

    {_id: {d: dataset id, t: tag, s: sample id}, runs: [run tokens], user: bool}

``user`` records whether the sample already had the tag when the plugin first
wanted it there. :func:`release` takes a run out of ``runs``; a tag is
removed from a sample only when no run wants it any more and ``user`` is
false. Tags always travel as data (``$literal`` or a document value), never as
an aggregation expression, so names like ``$filepath`` are plain tags.

Each step is idempotent, so a journaled commit (:mod:`.commit`) can repeat it.
"""

import fiftyone.core.odm as foo

from . import internals

OWNERS = "coreset_curation.tag_owners"


def _owners():
    collection = foo.get_db_conn()[OWNERS]
    collection.create_index([("_id.d", 1), ("runs", 1)])
    return collection


def check_tag(value, param):
    """None for an empty value, else the tag name (any non-empty string is a valid FiftyOne tag)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{param} must be a tag name (a string) or empty, got {value!r}")
    value = value.strip()
    if len(value) > 1000:
        raise ValueError(f"{param} must be at most 1000 characters long; choose a shorter tag name")
    return value


def record(dataset, tag, token, *, query=None, staged=()):
    """Records that run ``token`` wants ``tag`` on the samples matched by ``query`` (or in ``staged`` collections)."""
    db, samples, dataset_id = foo.get_db_conn(), internals.sample_collection_name(dataset), internals.dataset_id(dataset)
    doc = {
        "_id": {"d": dataset_id, "t": {"$literal": tag}, "s": "$_id"},
        "runs": {"$literal": [token]},
        "user": {"$in": [{"$literal": tag}, {"$ifNull": ["$tags", []]}]},
    }
    merge = {"$merge": {
        "into": OWNERS, "on": "_id", "whenNotMatched": "insert",
        "whenMatched": [{"$set": {"runs": {"$setUnion": [{"$ifNull": ["$runs", []]}, "$$new.runs"]}}}],
    }}
    _owners()
    if query is not None:
        db[samples].aggregate([{"$match": query}, {"$project": doc}, merge], allowDiskUse=True)
        return
    for part in staged:
        db[part].aggregate([
            {"$lookup": {"from": samples, "localField": "_id", "foreignField": "_id", "as": "sample",
                         "pipeline": [{"$project": {"tags": True}}]}},
            {"$unwind": "$sample"},
            {"$replaceRoot": {"newRoot": "$sample"}},
            {"$project": doc},
            merge,
        ], allowDiskUse=True)


def apply(dataset, tag, token):
    """Adds ``tag`` to every sample that run ``token`` wants it on (order of other tags kept)."""
    tags = {"$ifNull": ["$tags", []]}
    add = [{"$set": {
        "tags": {"$cond": [{"$in": [{"$literal": tag}, tags]}, tags, {"$concatArrays": [tags, [{"$literal": tag}]]}]},
        "last_modified_at": "$$NOW",
    }}]
    _owners().aggregate([
        {"$match": {"_id.d": internals.dataset_id(dataset), "_id.t": tag, "runs": token}},
        {"$project": {"_id": "$_id.s"}},
        {"$merge": {"into": internals.sample_collection_name(dataset), "on": "_id", "whenMatched": add,
                    "whenNotMatched": "discard"}},
    ], allowDiskUse=True)


def release(dataset, token):
    """Run ``token`` no longer wants its tags: removes those no other run wants and the user did not have."""
    owners = _owners()
    dataset_id = internals.dataset_id(dataset)
    owners.update_many({"_id.d": dataset_id, "runs": token}, {"$pull": {"runs": token}})
    _remove_orphans(dataset, dataset_id)


def _remove_orphans(dataset, dataset_id):
    owners = _owners()
    remove = [{"$set": {
        "tags": {"$filter": {"input": {"$ifNull": ["$tags", []]}, "cond": {"$not": [{"$in": ["$$this", "$$new.t"]}]}}},
        "last_modified_at": "$$NOW",
    }}]
    owners.aggregate([
        {"$match": {"_id.d": dataset_id, "runs": {"$size": 0}, "user": False}},
        {"$group": {"_id": "$_id.s", "t": {"$push": "$_id.t"}}},
        {"$merge": {"into": internals.sample_collection_name(dataset), "on": "_id", "whenMatched": remove,
                    "whenNotMatched": "discard"}},
    ], allowDiskUse=True)
    owners.delete_many({"_id.d": dataset_id, "runs": {"$size": 0}})


def added_count(dataset, token):
    """How many samples have a tag because of run ``token`` (not there before the plugin)."""
    return _owners().count_documents({"_id.d": internals.dataset_id(dataset), "runs": token, "user": False})


def forget_datasets(live_ids):
    """Drops the records of datasets that no longer exist."""
    owners = _owners()
    gone = [d for d in owners.distinct("_id.d") if d not in live_ids]
    if gone:
        owners.delete_many({"_id.d": {"$in": gone}})
