"""Results land all at once, or not at all: staged writes, a journal, and recovery.

A run computes everything first. :func:`commit` then

1. stages the new values in private collections (the dataset is untouched);
2. under a lock on each written field (and saved-view name), checks what must
   still hold, and records the plan in a journal document: the commit point;
3. applies the plan: declares the fields, merges the staged values into the
   sample (or frame) documents with server-side ``$merge`` stages, moves tags
   and coreset memberships, saves a saved view, replaces the run record
   (``register_run`` + ``save_run_results``), then drops the journal entry.

A failure or ``kill -9`` before the commit point leaves the dataset and the
old run record as they were (the staged copy is dropped, now or by the next
recovery). After it, every step is idempotent and the journal holds the whole
plan: :func:`recover`, which every plugin entry point calls, finishes it, so
the field ends up holding all the new values and the new run record.
"""

import datetime
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
import fiftyone.core.view as fov

from .targets import Target, target_of

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
class MembershipWrite:
    """``member`` is removed from list field ``name`` everywhere, then added to some documents.

    The documents are given by ``ids``, or by a MongoDB ``query`` on the
    target's documents (applied server-side: no id list travels).
    """

    name: str  # "tags", or a ListField(StringField)
    member: str
    ids: np.ndarray = None
    query: dict = None


@dataclass
class SavedView:
    name: str
    view: object
    description: str = None


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


def lock_keys(target, writes=(), saved_view=None):
    dataset_id = str(target.root._doc.id)
    keys = [f"{dataset_id}:{target.kind}:{w.name}" for w in writes]
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
        writes: :class:`FieldWrite` and :class:`MembershipWrite` objects
        saved_view: an optional :class:`SavedView` to save (overwriting)
        precheck: called under the locks, before the commit point; raise to abort
    """
    target = target_of(collection)
    db = _db()
    token = uuid.uuid4().hex
    journal = db[JOURNAL]
    journal.create_index("dataset_id")
    journal.insert_one(
        dict(_id=token, dataset_id=str(target.root._doc.id), state="staging", owner=_owner(), created_at=_now())
    )
    committed = False
    try:
        plan = _stage(db, token, target, writes)
        plan["run"] = dict(
            key=run_key,
            config=config.serialize(),
            results=results,
            stages=_stages(collection),
        )
        if saved_view is not None:
            plan["saved_view"] = dict(
                name=saved_view.name, description=saved_view.description, stages=_stages(saved_view.view)
            )
        what = ", ".join(f"'{w.name}'" for w in writes if isinstance(w, FieldWrite)) or "these results"
        with _Locks(lock_keys(target, [w for w in writes if isinstance(w, FieldWrite)], saved_view), what):
            if precheck is not None:
                precheck()
            journal.update_one({"_id": token}, {"$set": dict(state="applying", plan=json_util.dumps(plan))})
            committed = True
            _apply(target.root, token, plan, collection=collection)
    except BaseException:
        if committed:  # past the commit point: leave the plan to recover()
            journal.update_one({"_id": token}, {"$set": {"owner": None}})
        else:
            _discard(db, token)
        raise


def _stages(collection):
    if isinstance(collection, fov.DatasetView):
        return [json_util.dumps(s) for s in collection._serialize(include_uuids=False)]
    return None


def _stage(db, token, target, writes):
    plan = dict(kind=target.kind, writes=[])
    now = _now()
    for k, write in enumerate(writes):
        base = f"{STAGING}.{token}.{k}"
        ids = [] if write.ids is None else list(write.ids)
        if isinstance(write, FieldWrite):
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
            plan["writes"].append(
                dict(type="membership", name=write.name, member=write.member, parts=[], query=write.query)
            )
        else:
            parts = _insert_parts(db, base, ({"_id": i, "m": now} for i in ids), len(ids))
            plan["writes"].append(dict(type="membership", name=write.name, member=write.member, parts=parts))
    return plan


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
    for name in db.list_collection_names(filter={"name": {"$regex": f"^{STAGING}\\.{token}\\."}}):
        db.drop_collection(name)
    db[JOURNAL].delete_one({"_id": token})


def _rebuild(root, stages):
    if stages is None:
        return root
    return fov.DatasetView._build(root, [json_util.loads(s) for s in stages])


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
        collection = _rebuild(root, run["stages"])
    target = target_of(collection)
    for write in plan["writes"]:
        if write["type"] == "field":
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
        else:
            name, member = write["name"], write["member"]
            if name != "tags":
                import fiftyone.core.fields as fof

                target.declare(name, fof.ListField, subfield=fof.StringField)
            merges = []
            for into in target.merge_collections:
                db[into].update_many({name: member}, {"$pull": {name: member}})
                if write.get("query") is not None:
                    db[into].update_many(
                        write["query"], [{"$set": {name: {"$setUnion": [{"$ifNull": [f"${name}", []]}, [member]]},
                                                   "last_modified_at": "$$NOW"}}]
                    )
                    continue
                add = [
                    {"$set": {name: {"$setUnion": [{"$ifNull": [f"${name}", []]}, [member]]},
                              "last_modified_at": "$$new.m"}}
                ]
                pipeline = [
                    {"$merge": {"into": into, "on": "_id", "whenMatched": add, "whenNotMatched": "discard"}}
                ]
                merges += [(part, pipeline) for part in write["parts"]]
            _merge_all(db, merges)
    if target.kind == "samples":
        for write in plan["writes"]:
            if write.get("index"):
                target.root.create_index(write["name"])
    if "saved_view" in plan:
        saved = plan["saved_view"]
        root.save_view(
            saved["name"], _rebuild(root, saved["stages"]), description=saved["description"], overwrite=True
        )
    config = fors.BaseRunConfig.from_dict(dict(run["config"]))
    method = config.build()
    if run["key"] in collection.list_runs():  # the previous record (its fields are ours now)
        fors.Run.delete_run(collection, run["key"], cleanup=False)
    method.register_run(collection, run["key"], overwrite=True, cleanup=False)
    method.save_run_results(
        collection, run["key"], fors.RunResults(collection, config, run["key"], **run["results"]), overwrite=True
    )
    for write in plan["writes"]:
        for part in write["parts"]:
            db.drop_collection(part)
    db[JOURNAL].delete_one({"_id": token})
    target.reload()


def recover(dataset):
    """Finishes this dataset's interrupted commits and drops abandoned staged data.

    Returns the number of commits finished.
    """
    db = _db()
    finished = 0
    dataset_id = str(dataset._doc.id)
    for doc in list(db[JOURNAL].find({"dataset_id": dataset_id})):
        if _alive(doc.get("owner")):
            continue  # its process is still working on it
        if doc.get("state") == "applying":
            with _Locks([f"{dataset_id}:recover:{doc['_id']}"], "this dataset's interrupted results"):
                if db[JOURNAL].find_one({"_id": doc["_id"]}) is None:
                    continue
                _apply(dataset, doc["_id"], json_util.loads(doc["plan"]))
                finished += 1
        else:
            _discard(db, doc["_id"])
    return finished


def pending_commits(dataset):
    """Journal entries of this dataset (for tests and diagnostics)."""
    return list(_db()[JOURNAL].find({"dataset_id": str(dataset._doc.id)}, {"plan": False}))


def object_ids(ids):
    """bson ObjectIds from ids given as strings or ObjectIds."""
    return np.asarray([i if isinstance(i, ObjectId) else ObjectId(i) for i in ids], dtype=object)


__all__ = [
    "FieldWrite",
    "MembershipWrite",
    "SavedView",
    "Target",
    "commit",
    "recover",
    "pending_commits",
    "object_ids",
]
