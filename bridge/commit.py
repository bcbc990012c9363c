"""Results land all at once, or not at all: staged writes, a journal, and recovery.

A run computes everything first. :func:`commit` then

1. stages the new values in private collections (the dataset is untouched);
2. under a lock on each written field (and saved-view name), checks what must
   still hold, and records the plan in a journal document: the commit point;
3. applies the plan: declares the fields, merges the staged values into the
   sample (or frame) documents with server-side ``$merge`` stages, adds the
   run's tags and releases those of the record it replaces (:mod:`.tags`),
   saves a saved view, replaces the run record (``register_run`` +
   ``save_run_results``), then drops the journal entry.

A failure or ``kill -9`` before the commit point leaves the dataset and the
old run record as they were (the staged copy is dropped, now or by the next
recovery). After it, every step is idempotent and the journal holds the whole
plan: :func:`recover`, which every plugin entry point calls, finishes it, so
the field ends up holding all the new values and the new run record. A plan
that fails for another reason than a lost connection is given up once: a new
field is removed, the run's tags released, the old run record kept.
"""

import datetime
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field as dc_field

import numpy as np
import psutil
from bson import ObjectId, json_util
from pymongo.errors import DuplicateKeyError

import eta.core.utils as etau
import fiftyone.core.odm as foo
import fiftyone.core.runs as fors

from . import internals, tags
from .targets import Target, target_of

logger = logging.getLogger(__name__)

JOURNAL = "coreset_curation.commits"
LOCKS = "coreset_curation.locks"
STAGING = "coreset_curation.staging"
_BATCH = 50_000
_LOCK_WAIT_S = 30.0
_FOREIGN_STALE_S = 6 * 3600
# Parallel $merge streams: each is one server-side operation on one core.
_PARTS = max(1, min(4, os.cpu_count() or 1))


def _db():
    return foo.get_db_conn()


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _owner():
    process = psutil.Process()
    return dict(host=socket.gethostname(), pid=os.getpid(), started=process.create_time())


def _alive(owner):
    if not owner:
        return False
    if owner.get("host") != socket.gethostname():
        started = owner.get("started") or 0
        return time.time() - started < _FOREIGN_STALE_S
    try:
        return abs(psutil.Process(owner["pid"]).create_time() - owner["started"]) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError):
        return False


# -- what a commit writes ---------------------------------------------------------


@dataclass
class FieldWrite:
    """New values of one output field: ``values[i]`` for the document ``ids[i]``.

    With ``replace`` the field holds this run's values only: documents of the
    target that had a value and are not in ``ids`` are set to None.
    """

    name: str
    ids: np.ndarray
    values: list
    ftype: type
    replace: bool = True
    ftype_kwargs: dict = dc_field(default_factory=dict)
    index: bool = False  # a database index on the field (rank fields: fast matches on the rank)


@dataclass
class TagWrite:
    """The run wants ``tag`` on some samples; the tags its previous record added are released.

    The samples are given by ``ids``, or by a MongoDB ``query`` on the
    sample documents (applied server-side: no id list travels). Ownership is
    per sample (:mod:`.tags`): a tag that was there before is never removed.
    """

    tag: str
    ids: np.ndarray = None
    query: dict = None


@dataclass
class SavedView:
    name: str
    view: object
    description: str = None


def is_saved_as(dataset, name, view):
    """Whether ``dataset`` has a saved view ``name`` and it is ``view`` (the same stages)."""
    return dataset.has_saved_view(name) and dataset.load_saved_view(name) == view


# -- locks ----------------------------------------------------------------------


class _Locks:
    """Exclusive locks on names (fields, saved views) of a dataset, across processes."""

    def __init__(self, keys, what):
        self.keys = sorted(set(keys))
        self.what = what
        self.held = []

    def __enter__(self):
        locks = _db()[LOCKS]
        deadline = time.monotonic() + _LOCK_WAIT_S
        try:
            for key in self.keys:
                while True:
                    try:
                        locks.insert_one(dict(_id=key, owner=_owner(), created_at=_now()))
                        self.held.append(key)
                        break
                    except DuplicateKeyError:
                        doc = locks.find_one({"_id": key})
                        if doc is not None and not _alive(doc.get("owner")):
                            locks.delete_one({"_id": key, "owner": doc.get("owner")})
                            continue
                        if time.monotonic() > deadline:
                            raise ValueError(
                                f"another run is writing {self.what} right now; try again when it finishes"
                            ) from None
                        time.sleep(0.2)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        locks = _db()[LOCKS]
        for key in self.held:
            locks.delete_one({"_id": key})
        self.held = []


def lock_keys(target, writes=(), saved_view=None, run_key=None):
    dataset_id = internals.dataset_id(target.root)
    keys = [f"{dataset_id}:{target.kind}:{w.name}" for w in writes]
    if run_key is not None:
        keys.append(f"{dataset_id}:run:{run_key}")
    if saved_view is not None:
        keys.append(f"{dataset_id}:view:{saved_view.name}")
    return keys


# -- commit -----------------------------------------------------------------------


def commit(collection, run_key, config, results, *, writes=(), saved_view=None, precheck=None):
    """Writes a run's results and its run record in one recoverable step.

    Args:
        collection: the target collection of the run
        run_key: the run key (validated by the caller)
        config: a ``fiftyone.core.runs.RunConfig`` of this plugin
        results: a JSON-serializable dict stored as the run's results
        writes: :class:`FieldWrite` and :class:`TagWrite` objects
        saved_view: an optional :class:`SavedView` to save (replacing this plugin's own view of that name)
        precheck: called under the locks, before the commit point; raise to abort
    """
    target = target_of(collection, patches=True)
    db = _db()
    token = uuid.uuid4().hex
    journal = db[JOURNAL]
    journal.create_index("dataset_id")
    dataset_id = internals.dataset_id(target.root)
    journal.insert_one(dict(_id=token, dataset_id=dataset_id, state="staging", owner=_owner(), created_at=_now()))
    committed = False
    try:
        plan = _stage(db, token, target, writes)
        plan["run"] = dict(
            key=run_key,
            config=config.serialize(),
            results=results,
            stages=internals.view_stages(collection),
        )
        if saved_view is not None:
            plan["saved_view"] = dict(
                name=saved_view.name, description=saved_view.description,
                stages=internals.view_stages(saved_view.view),
            )
        fields = [w for w in writes if isinstance(w, FieldWrite)]
        what = ", ".join(f"'{w.name}'" for w in fields) or "these results"
        with _Locks(lock_keys(target, fields, saved_view, run_key), what):
            if precheck is not None:
                precheck()
            previous = internals.run_docs(target.root).get(run_key)
            plan["release"] = (previous.config or {}).get("token") if previous is not None else None
            for write in plan["writes"]:
                if write["type"] in ("field", "labels"):
                    write["existed"] = target.get_field(write["name"]) is not None
            if saved_view is not None:
                plan["saved_view"]["existed"] = target.root.has_saved_view(saved_view.name)
            journal.update_one({"_id": token}, {"$set": dict(state="applying", plan=json_util.dumps(plan))})
            committed = True
            try:
                _apply(target.root, token, plan, collection=collection)
            except Exception as error:
                if _transient(error):
                    raise
                _give_up(target.root, token, plan, error)
                raise
    except BaseException:
        if committed:  # past the commit point: leave the plan to recover()
            journal.update_one({"_id": token, "state": "applying"}, {"$set": {"owner": None}})
        else:
            _discard(db, token)
        raise


def _stage(db, token, target, writes):
    plan = dict(kind=target.kind, writes=[])
    now = _now()
    for k, write in enumerate(writes):
        base = f"{STAGING}.{token}.{k}"
        ids = [] if write.ids is None else list(write.ids)
        if isinstance(write, FieldWrite) and target.kind == "patches":
            parts = _insert_parts(db, base, _label_docs(db, target, write, now), len(write.ids))
            plan["writes"].append(dict(type="labels", name=write.name, parts=parts,
                                       ftype=etau.get_class_name(write.ftype), ftype_kwargs={}))
        elif isinstance(write, FieldWrite):
            values = list(write.values)
            if write.replace:
                staged = set(ids)
                for name in target.merge_collections:
                    if db[name].estimated_document_count() <= len(staged):
                        continue  # every document is being written
                    for doc in db[name].find({write.name: {"$ne": None}}, {"_id": True}):
                        if doc["_id"] not in staged:
                            staged.add(doc["_id"])
                            ids.append(doc["_id"])
                            values.append(None)
            parts = _insert_parts(db, base, ({"_id": i, "v": v, "m": now} for i, v in zip(ids, values)), len(ids))
            plan["writes"].append(
                dict(
                    type="field",
                    name=write.name,
                    parts=parts,
                    ftype=etau.get_class_name(write.ftype),
                    ftype_kwargs={k_: etau.get_class_name(v) if isinstance(v, type) else v
                                  for k_, v in write.ftype_kwargs.items()},
                    index=write.index,
                )
            )
        elif write.query is not None:
            plan["writes"].append(dict(type="tags", tag=write.tag, parts=[], query=write.query))
        else:
            parts = _insert_parts(db, base, ({"_id": i} for i in ids), len(ids))
            plan["writes"].append(dict(type="tags", tag=write.tag, parts=parts, query=None))
    return plan


def _label_docs(db, target, write, now):
    """Staged values of a label attribute: this run's labels, and None for the other labels that have a value.

    One document per label: ``{_id: label id, s: id of the sample holding it, v: value}``.
    """
    values = dict(zip(write.ids, write.values))
    root = target.label_root
    for doc in db[internals.sample_collection_name(target.root)].find({}, {f"{root}._id": True,
                                                                           f"{root}.{write.name}": True}):
        labels = doc
        for part in root.split("."):
            labels = labels.get(part) if isinstance(labels, dict) else None
        for label in labels if isinstance(labels, list) else [labels] if isinstance(labels, dict) else []:
            if label.get("_id") in values:
                yield {"_id": label["_id"], "s": doc["_id"], "v": values[label["_id"]], "m": now}
            elif label.get(write.name) is not None:
                yield {"_id": label["_id"], "s": doc["_id"], "v": None, "m": now}


def _insert_parts(db, base, docs, count):
    """Inserts staged documents round-robin into up to _PARTS collections."""
    parts = max(1, min(_PARTS, count // 10_000 + 1))
    names = [f"{base}.{p}" for p in range(parts)]
    batches = [[] for _ in range(parts)]
    for i, doc in enumerate(docs):
        batch = batches[i % parts]
        batch.append(doc)
        if len(batch) >= _BATCH // parts:
            db[names[i % parts]].insert_many(batch, ordered=False)
            batch.clear()
    for name, batch in zip(names, batches):
        if batch:
            db[name].insert_many(batch, ordered=False)
    return names


def _discard(db, token):
    _drop_staging(db, token)
    db[JOURNAL].delete_one({"_id": token})


def _drop_staging(db, token):
    for name in db.list_collection_names(filter={"name": {"$regex": f"^{STAGING}\\.{token}\\."}}):
        db.drop_collection(name)


def _merge_all(db, pipelines):
    """Runs (staging collection, pipeline) aggregations, several at once."""
    from concurrent.futures import ThreadPoolExecutor

    def run(item):
        name, pipeline = item
        list(db[name].aggregate(pipeline, allowDiskUse=True))

    with ThreadPoolExecutor(max(1, min(_PARTS, len(pipelines)))) as pool:
        list(pool.map(run, pipelines))


def _apply(root, token, plan, collection=None):
    """Applies a journaled plan; every step may be repeated safely."""
    db = _db()
    run = plan["run"]
    if collection is None:
        collection = internals.build_view(root, run["stages"])
    target = target_of(collection, patches=True)
    owner = _tag_owner(plan, token)
    for write in plan["writes"]:
        if write["type"] == "field":
            _merge_field(db, target, write)
        elif write["type"] == "labels":
            _merge_labels(db, target, write)
    for write in plan["writes"]:
        if write["type"] == "tags":
            tags.record(root, write["tag"], owner, query=write["query"], staged=write["parts"])
            tags.apply(root, write["tag"], owner)
    if target.kind == "samples":
        for write in plan["writes"]:
            if write.get("index"):
                target.root.create_index(write["name"])
    if "saved_view" in plan:
        saved = plan["saved_view"]
        root.save_view(
            saved["name"], internals.build_view(root, saved["stages"]), description=saved["description"],
            overwrite=True,
        )
    if plan.get("release") and plan["release"] != owner:
        tags.release(root, plan["release"])
    _replace_run_record(collection, run)
    for write in plan["writes"]:
        for part in write["parts"]:
            db.drop_collection(part)
    db[JOURNAL].delete_one({"_id": token})
    target.reload()


def _tag_owner(plan, token):
    """The token that owns a run's tags: its config's ``token`` (what cleanup and reruns release)."""
    return plan["run"]["config"].get("token") or token


def _merge_field(db, target, write):
    kwargs = {
        k: etau.get_class(v) if isinstance(v, str) and "." in v and k.endswith("field") else v
        for k, v in write.get("ftype_kwargs", {}).items()
    }
    target.declare(write["name"], etau.get_class(write["ftype"]), **kwargs)
    merges = []
    for into in target.merge_collections:
        pipeline = [
            {"$project": {write["name"]: "$v", "last_modified_at": "$m"}},
            {"$merge": {"into": into, "on": "_id", "whenMatched": "merge", "whenNotMatched": "discard"}},
        ]
        merges += [(part, pipeline) for part in write["parts"]]
    _merge_all(db, merges)


def _merge_labels(db, target, write):
    """Sets a label attribute from staged per-label values, on the source samples and the patches' own documents."""
    name, root, own = write["name"], target.label_root, target.collection.patches_field
    target.declare(name, etau.get_class(write["ftype"]))

    def updated(label, index):  # the label with this run's value, if it has one
        return {"$cond": [{"$gte": [index, 0]}, {"$mergeObjects": [label, {name: {"$arrayElemAt": ["$$new.v", index]}}]},
                          label]}

    top = root.split(".")[0]
    if target.label_list:
        labels = {"$map": {"input": {"$ifNull": ["$" + root, []]}, "as": "d",
                           "in": updated("$$d", {"$indexOfArray": ["$$new.k", "$$d._id"]})}}
        new = {"$mergeObjects": ["$" + top, {root.split(".", 1)[1]: labels}]}
    else:
        new = updated("$" + top, {"$indexOfArray": ["$$new.k", "$" + top + "._id"]})
    on_samples = [
        {"$group": {"_id": "$s", "k": {"$push": "$_id"}, "v": {"$push": "$v"}, "m": {"$max": "$m"}}},
        {"$merge": {"into": internals.sample_collection_name(target.root), "on": "_id", "whenNotMatched": "discard",
                    "whenMatched": [{"$set": {top: {"$cond": [{"$eq": [{"$type": "$" + top}, "object"]}, new, "$" + top]},
                                              "last_modified_at": "$$new.m"}}]}},
    ]
    on_patches = [
        {"$project": {"v": True, "m": True}},
        {"$merge": {"into": internals.sample_collection_name(target.collection), "on": "_id",
                    "whenNotMatched": "discard",
                    "whenMatched": [{"$set": {own: {"$cond": [{"$eq": [{"$type": "$" + own}, "object"]},
                                                              {"$mergeObjects": ["$" + own, {name: "$$new.v"}]},
                                                              "$" + own]},
                                              "last_modified_at": "$$new.m"}}]}},
    ]
    _merge_all(db, [(part, on_samples) for part in write["parts"]])
    _merge_all(db, [(part, on_patches) for part in write["parts"]])


def _replace_run_record(collection, run):
    config = fors.BaseRunConfig.from_dict(dict(run["config"]))
    method = config.build()
    if run["key"] in collection.list_runs():  # the previous record (its fields are ours now)
        fors.Run.delete_run(collection, run["key"], cleanup=False)
    method.register_run(collection, run["key"], overwrite=True, cleanup=False)
    method.save_run_results(
        collection, run["key"], fors.RunResults(collection, config, run["key"], **run["results"]), overwrite=True
    )


def _transient(error):
    """Whether a failure may pass by itself (the database was unreachable), so the commit is retried."""
    from pymongo.errors import ConnectionFailure

    return isinstance(error, ConnectionFailure)


def _give_up(root, token, plan, error):
    """A commit that cannot finish: undo what can be undone, keep the old run record, never retry."""
    logger.error("Could not finish writing the results of run '%s': %s", plan["run"]["key"], error)
    db = _db()
    target = target_of(internals.build_view(root, plan["run"]["stages"]), patches=True)
    for write in plan["writes"]:
        if write["type"] in ("field", "labels") and not write.get("existed", True):
            target.delete(write["name"])  # it was new: nothing of it is left
    saved = plan.get("saved_view")
    if saved and not saved.get("existed", True) and is_saved_as(root, saved["name"],
                                                                internals.build_view(root, saved["stages"])):
        root.delete_saved_view(saved["name"])
    tags.release(root, _tag_owner(plan, token))
    _drop_staging(db, token)
    db[JOURNAL].update_one(
        {"_id": token}, {"$set": dict(state="failed", error=f"{type(error).__name__}: {error}", owner=None),
                         "$unset": {"plan": ""}},
    )


def recover(dataset):
    """Finishes this dataset's interrupted commits and drops abandoned staged data.

    A commit that fails again for a reason other than a lost database
    connection is given up (see :func:`_give_up`) rather than retried on every
    call. Journals, staged data and tag records of deleted datasets are dropped.
    Returns the number of commits finished.
    """
    db = _db()
    finished = 0
    dataset_id = internals.dataset_id(dataset)
    for doc in list(db[JOURNAL].find({"dataset_id": dataset_id, "state": {"$ne": "failed"}})):
        if _alive(doc.get("owner")):
            continue  # its process is still working on it
        if doc.get("state") == "applying":
            with _Locks([f"{dataset_id}:recover:{doc['_id']}"], "this dataset's interrupted results"):
                if db[JOURNAL].find_one({"_id": doc["_id"], "state": "applying"}) is None:
                    continue
                plan = json_util.loads(doc["plan"])
                try:
                    _apply(dataset, doc["_id"], plan)
                except Exception as error:
                    if _transient(error):
                        raise
                    _give_up(dataset, doc["_id"], plan, error)
                    continue
                finished += 1
        else:
            _discard(db, doc["_id"])
    _forget_deleted_datasets(db)
    return finished


def _forget_deleted_datasets(db):
    live = internals.live_dataset_ids()
    for doc in db[JOURNAL].find({"dataset_id": {"$nin": sorted(live)}}, {"_id": True}):
        _discard(db, doc["_id"])
    tokens = set(db[JOURNAL].distinct("_id"))
    for name in db.list_collection_names(filter={"name": {"$regex": f"^{STAGING}\\."}}):
        if name.split(".")[2] not in tokens:
            db.drop_collection(name)
    tags.forget_datasets(live)


def pending_commits(dataset):
    """Journal entries of this dataset (for tests and diagnostics)."""
    return list(_db()[JOURNAL].find({"dataset_id": internals.dataset_id(dataset)}, {"plan": False}))


def object_ids(ids):
    """bson ObjectIds from ids given as strings or ObjectIds."""
    return np.asarray([i if isinstance(i, ObjectId) else ObjectId(i) for i in ids], dtype=object)


__all__ = [
    "FieldWrite",
    "TagWrite",
    "SavedView",
    "Target",
    "commit",
    "recover",
    "pending_commits",
    "object_ids",
]
