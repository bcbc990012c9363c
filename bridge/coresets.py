"""Coreset orders and saved coreset views of a collection.

A *coreset order* ranks the scored samples once (a rank field, 0 = kept
longest, with its run record) so that the coreset at any pruning rate ``p``
is the prefix of the first ``n - floor(p * n)`` ranks. The operator, the
panel and the SDK therefore keep exactly the same samples for the same score
field, selection, keep and stratification, and a slider move is a threshold.

A *saved coreset view* is ``match({rank_field: {"$lt": kept}})`` on the root
dataset: a small document at any dataset size, saved without rewriting a
single sample. It is frozen: a rank field that a saved view matches on is
never rewritten (a later order with the same settings goes to a new rank
field, ``..._rank_2``), so the view reloads the same samples after re-scoring.
"""

import hashlib
import time
import uuid

import numpy as np
from bson import json_util

import fiftyone as fo
import fiftyone.core.fields as fof
import fiftyone.core.utils as fou
from fiftyone.core.expressions import ViewExpression

from ..core import order as core_order
from ..core import params
from . import internals, runs, tags
from .commit import FieldWrite, SavedView, TagWrite, commit, recover
from .fields import classification_fields, score_fields
from .progress import phases
from .reads import check_vector_fields, hidden_field_message, read_columns, read_vectors
from .targets import target_of

SELECTIONS = core_order.ORDERS
DEFAULT_SELECTION = core_order.DEFAULT_ORDER
EMBEDDING_SELECTIONS = core_order.EMBEDDING_ORDERS
KEEP = ("highest", "lowest")
_NUMERIC = (fof.FloatField, fof.IntField)


# -- the order ------------------------------------------------------------------------


def recorded_embeddings_fields(collection, score_field):
    """The embeddings field(s) the run that wrote ``score_field`` used, if recorded and present."""
    owner = runs.owner_of(internals.root_dataset(collection), score_field)
    if owner is None:
        return None
    config = owner[1]
    fields = config.get("embeddings_fields") or config.get("embeddings_field")
    fields = [fields] if isinstance(fields, str) else list(fields or [])
    schema = collection.get_field_schema()
    if not fields or any(f not in schema for f in fields):
        return None
    return fields


def resolve_selection(collection, score_field, selection=None, embeddings_field=None):
    """``(selection, embeddings fields or None, note or None)`` to run.

    The default is :data:`DEFAULT_SELECTION` when embeddings are known (given,
    or recorded by the run that wrote the score), else ``"top"``, with a note
    that says so.
    """
    fields = None
    if embeddings_field:
        fields = check_vector_fields(collection, embeddings_field)
    if selection in (None, "", "auto", "default"):
        fields = fields or recorded_embeddings_fields(collection, score_field)
        if fields:
            return DEFAULT_SELECTION, fields, None
        return "top", None, (
            f"no embeddings are recorded for '{score_field}': used 'top' (the best scores); "
            f"pass embeddings_field to use '{DEFAULT_SELECTION}'"
        )
    selection = params.choice("selection", selection, SELECTIONS)
    if selection in EMBEDDING_SELECTIONS:
        fields = fields or recorded_embeddings_fields(collection, score_field)
        if not fields:
            raise ValueError(
                f"selection '{selection}' needs embeddings: pass embeddings_field "
                f"(no embeddings are recorded for '{score_field}')"
            )
        return selection, fields, None
    return selection, None, None


def _check_score_field(collection, score_field):
    if not isinstance(score_field, str) or not score_field:
        raise ValueError(f"score_field must name a numeric field, got {score_field!r}")
    field = collection.get_field(score_field)
    if field is None:
        hidden = hidden_field_message(collection, score_field, "score_field")
        raise ValueError(
            hidden
            or f"score_field: field {score_field!r} does not exist; numeric fields available: "
            f"{score_fields(collection) or 'none'}. Compute ZCore scores first"
        )
    if not isinstance(field, _NUMERIC):
        raise ValueError(f"score_field: '{score_field}' is a {type(field).__name__}, not a numeric field")


def _check_label_field(collection, label_field, param="stratify_by"):
    field = collection.get_field(label_field) if isinstance(label_field, str) else None
    if field is None:
        raise ValueError(
            f"{param}: field {label_field!r} does not exist; Classification fields available: "
            f"{classification_fields(collection) or 'none'}"
        )
    if not (isinstance(field, fof.EmbeddedDocumentField) and issubclass(field.document_type, fo.Classification)):
        raise ValueError(f"{param}: '{label_field}' is not a Classification field")


def rank_field_name(score_field, selection, keep="highest", stratify_by=None):
    """The rank field of an order: ``<score>_<selection>_rank`` (+ ``_low``, ``_by_<label>``)."""
    name = f"{score_field}_{selection}"
    if keep == "lowest":
        name += "_low"
    if stratify_by:
        name += f"_by_{stratify_by}"
    return name + "_rank"


def _order_spec(collection, score_field, selection, keep, stratify_by, embeddings_field):
    _check_score_field(collection, score_field)
    keep = params.choice("keep", keep, KEEP)
    if stratify_by:
        _check_label_field(collection, stratify_by)
    selection, fields, note = resolve_selection(collection, score_field, selection, embeddings_field)
    return dict(
        score_field=score_field, selection=selection, keep=keep, stratify_by=stratify_by or None,
        embeddings_fields=fields, note=note,
    )


def _score_token(collection, score_field):
    owner = runs.owner_of(internals.root_dataset(collection), score_field)
    return owner[1].get("token") if owner else None


def find_order(collection, score_field, *, selection=None, keep="highest", stratify_by=None, embeddings_field=None):
    """The key and config of an up-to-date order of ``score_field`` on this collection, or None.

    An order is up to date when it was computed on the same view from the
    score run that wrote the field now (or, for fields no run of this plugin
    wrote, when it is the newest order).
    """
    spec = _order_spec(collection, score_field, selection, keep, stratify_by, embeddings_field)
    return _find(collection, spec)


def _find(collection, spec):
    stages = _stages_key(collection)
    token = _score_token(collection, spec["score_field"])
    fingerprint = None
    for key, config, _ in runs.plugin_runs(
        collection, runs.ORDER, score_field=spec["score_field"], selection=spec["selection"], keep=spec["keep"],
        stratify_by=spec["stratify_by"],
    ):
        if config.get("view") != stages or config.get("score_token") != token:
            continue
        if spec["embeddings_fields"] and config.get("embeddings_fields") != spec["embeddings_fields"]:
            continue
        if collection.get_field(config["rank_field"]) is None:
            continue
        fingerprint = fingerprint or score_fingerprint(collection, spec["score_field"])
        if config.get("fingerprint") != fingerprint:
            continue  # samples were added or deleted, or scores edited, since
        return key, config
    return None


def score_fingerprint(collection, score_field):
    """A digest of the collection's sample ids and their scores, computed in the database.

    It changes when a sample is added or deleted or a score is edited, so an
    order is reused only while it is exact (1.4 s at 1M samples, bench/order_fingerprint.py).
    """
    key = {"$concat": [{"$toString": "$_id"}, ":", {"$toString": {"$ifNull": ["$" + score_field, "none"]}}]}
    digest = ViewExpression({"$abs": {"$mod": [{"$toHashedIndexKey": key}, 2**31 - 1]}})
    count, total = collection.aggregate([fo.Count(), fo.Sum(digest)])
    return f"{count}:{int(total or 0)}"


def _stages_key(collection):
    return str(internals.view_stages(collection) or "[]")


class CoresetOrder:
    """An order computed in memory (:func:`coreset_order`): nothing is written until :func:`store_order`.

    ``ids`` are the ranked (scored) samples, ``ranks[i]`` the rank of ``ids[i]``
    (0 = kept longest) and ``scores[i]`` its score, ``unscored`` the ids of the
    samples without a score.
    """

    def __init__(self, ids, ranks, scores, unscored, spec, fingerprint, score_token, view, seed, seconds):
        self.ids = ids
        self.ranks = ranks
        self.scores = scores
        self.unscored = unscored
        self.spec = spec
        self.fingerprint = fingerprint
        self.score_token = score_token
        self.view = view
        self.seed = seed
        self.seconds = seconds

    @property
    def selection(self):
        return self.spec["selection"]

    def kept_count(self, prune_rate):
        return core_order.kept_count(len(self.ids), prune_rate)


def coreset_order(
    collection,
    score_field,
    *,
    selection="auto",
    keep="highest",
    stratify_by=None,
    embeddings_field=None,
    seed=0,
    progress=None,
):
    """Ranks the scored samples of a collection in memory; writes nothing.

    Returns a :class:`CoresetOrder`, which :func:`store_order` writes as a rank
    field with its run (the panel browses orders this way, and stores one only
    when the user saves, tags or computes it).
    """
    start = time.perf_counter()
    target = target_of(collection, "a coreset order")
    if target.kind != "samples":
        raise ValueError("coreset orders and views are computed on samples; run them on the dataset or a view of it")
    spec = _order_spec(collection, score_field, selection, keep, stratify_by, embeddings_field)
    seed = params.seed(seed)
    report = phases(params.callback("progress", progress))
    fingerprint = score_fingerprint(collection, score_field)
    data = _read_scored(collection, spec, report(0.0, 0.15))
    order = core_order.coreset_order(
        data["scores"],
        embeddings=data["vectors"],
        mode=spec["selection"],
        keep=spec["keep"],
        labels=data["labels"],
        stratify=bool(spec["stratify_by"]),
        seed=seed,
        progress=report(0.15, 0.95),
    )
    return CoresetOrder(
        data["ids"], core_order.ranks_from_order(order), data["scores"], data["unscored"], spec, fingerprint,
        _score_token(collection, score_field), _stages_key(collection), seed, round(time.perf_counter() - start, 3),
    )


def store_order(collection, order, *, rank_field=None, progress=None):
    """Writes an order of :func:`coreset_order` as ``rank_field`` with its run record; returns the summary.

    Refused when the collection's scores or samples changed since the order was computed.
    """
    start = time.perf_counter()
    recover(internals.root_dataset(collection))
    if not isinstance(order, CoresetOrder):
        raise ValueError(f"order must be a CoresetOrder from coreset_order(), got {type(order).__name__}")
    spec = order.spec
    score_field = spec["score_field"]
    if order.view != _stages_key(collection) or order.fingerprint != score_fingerprint(collection, score_field):
        raise ValueError("order: the samples or their scores changed since this order was computed; refresh and "
                         "compute it again")
    rank_field = _check_rank_field(collection, spec, rank_field)
    summary = _store(collection, order, rank_field)
    if progress is not None:
        params.callback("progress", progress)(1.0)
    summary["seconds"] = round(order.seconds + time.perf_counter() - start, 3)
    return summary


def _check_rank_field(collection, spec, rank_field):
    if rank_field is None:
        rank_field = unpinned_rank_field(collection, rank_field_name(spec["score_field"], spec["selection"],
                                                                     spec["keep"], spec["stratify_by"]))
    elif rank_field in runs.pinned_rank_fields(collection):
        raise ValueError(f"rank_field: '{rank_field}' is frozen by a saved coreset view; choose another name")
    runs.check_output_field(collection, rank_field, runs.ORDER, param="rank_field", ftype=fof.IntField)
    runs.check_run_key(collection, rank_field, runs.ORDER, param="rank_field")
    return rank_field


def _store(collection, order, rank_field):
    spec = order.spec
    score_field = spec["score_field"]
    summary = dict(
        rank_field=rank_field,
        scored=len(order.ids),
        unscored=len(order.unscored),
        selection=spec["selection"],
        score_field=score_field,
        keep=spec["keep"],
        stratify_by=spec["stratify_by"],
        embeddings_fields=spec["embeddings_fields"],
        note=spec["note"] or _score_note(spec["selection"]),
        seconds=order.seconds,
    )
    config = runs.make_config(
        runs.ORDER,
        score_field=score_field,
        selection=spec["selection"],
        keep=spec["keep"],
        stratify_by=spec["stratify_by"],
        embeddings_fields=spec["embeddings_fields"],
        rank_field=rank_field,
        target_kind="samples",
        token=uuid.uuid4().hex,
        score_token=order.score_token,
        view=order.view,
        fingerprint=order.fingerprint,
        seed=order.seed,
        scored=len(order.ids),
    )
    ids = np.concatenate([order.ids, order.unscored])
    values = order.ranks.tolist() + [None] * len(order.unscored)
    commit(collection, rank_field, config, dict(summary=summary),
           writes=[FieldWrite(rank_field, ids, values, fof.IntField, index=True)])
    return summary


def compute_coreset_order(
    collection,
    score_field,
    *,
    selection="auto",
    keep="highest",
    stratify_by=None,
    embeddings_field=None,
    rank_field=None,
    seed=0,
    progress=None,
):
    """Ranks the scored samples of a collection once; writes ``rank_field``.

    Returns a summary: rank_field, scored, unscored, selection, seconds, note.
    """
    recover(internals.root_dataset(collection))
    target_of(collection, "a coreset order")
    spec = _order_spec(collection, score_field, selection, keep, stratify_by, embeddings_field)
    rank_field = _check_rank_field(collection, spec, rank_field)
    report = phases(params.callback("progress", progress))
    order = coreset_order(collection, score_field, selection=spec["selection"], keep=spec["keep"],
                          stratify_by=spec["stratify_by"], embeddings_field=spec["embeddings_fields"], seed=seed,
                          progress=report(0.0, 0.95))
    order.spec["note"] = spec["note"]
    start = time.perf_counter()
    summary = _store(collection, order, rank_field)
    report(1.0, 1.0)(1.0)
    summary["seconds"] = round(order.seconds + time.perf_counter() - start, 3)
    return summary


def unpinned_rank_field(collection, name):
    """``name``, or ``name_2``, ``name_3``, ... : the first that no saved coreset view is frozen on."""
    pinned = runs.pinned_rank_fields(collection)
    candidate, version = name, 1
    while candidate in pinned:
        version += 1
        candidate = f"{name}_{version}"
    return candidate


def _score_note(selection):
    if selection == "top":
        return "the coreset keeps the best scores (the ZCore paper's selection)"
    if selection == "ccs":
        return "coverage-centric stratified sampling over the score"
    return None


def _read_scored(collection, spec, progress):
    """Ids, scores, labels and (when needed) embeddings of the scored samples, aligned."""
    paths = [spec["score_field"]] + ([f"{spec['stratify_by']}.label"] if spec["stratify_by"] else [])
    ids, columns = read_columns(collection, paths)
    raw = np.array([np.nan if v is None else v for v in columns[spec["score_field"]]], dtype=np.float64)
    scored = np.isfinite(raw)
    labels = None
    if spec["stratify_by"]:
        labels = np.array(["" if v is None else str(v) for v in columns[paths[1]]], dtype=object)
    data = dict(ids=ids[scored], scores=raw[scored], unscored=ids[~scored], vectors=None,
                labels=None if labels is None else labels[scored])
    if len(data["ids"]) == 0:
        raise ValueError(
            f"score_field: no sample in the view has a '{spec['score_field']}' value; compute scores first"
        )
    if spec["selection"] in EMBEDDING_SELECTIONS:
        table = read_vectors(collection, spec["embeddings_fields"], progress=progress)
        row = {i: r for r, i in enumerate(table.ids)}
        positions = np.fromiter((row.get(i, -1) for i in data["ids"]), dtype=np.int64, count=len(data["ids"]))
        if (positions < 0).any():
            raise ValueError(
                f"embeddings_field: {int((positions < 0).sum())} scored samples have no "
                f"'{', '.join(spec['embeddings_fields'])}'; selection '{spec['selection']}' needs embeddings "
                "for every scored sample"
            )
        if not np.array_equal(positions, np.arange(len(positions))):
            # Keep the (large) matrix in place: reorder the small arrays to its rows instead.
            back = np.empty(len(table.ids), dtype=np.int64)
            back[:] = -1
            back[positions] = np.arange(len(positions))
            keep_rows = back >= 0
            sel = back[keep_rows]
            data["ids"], data["scores"] = data["ids"][sel], data["scores"][sel]
            if data["labels"] is not None:
                data["labels"] = data["labels"][sel]
            vectors = table.vectors if keep_rows.all() else table.vectors[keep_rows]
        else:
            vectors = table.vectors
        data["vectors"] = vectors
    return data


def order_for(collection, score_field, *, selection=None, keep="highest", stratify_by=None, embeddings_field=None,
              seed=0, progress=None):
    """``(rank_field, summary)`` of an up-to-date order, computed if there is none."""
    spec = _order_spec(collection, score_field, selection, keep, stratify_by, embeddings_field)
    found = _find(collection, spec)
    if found is not None:
        key, config = found
        return config["rank_field"], dict(
            rank_field=config["rank_field"], selection=config["selection"], scored=config.get("scored"),
            reused=True, note=spec["note"] or _score_note(config["selection"]),
        )
    summary = compute_coreset_order(
        collection, score_field, selection=spec["selection"], keep=spec["keep"], stratify_by=spec["stratify_by"],
        embeddings_field=spec["embeddings_fields"], seed=seed, progress=progress,
    )
    summary["reused"] = False
    summary["note"] = spec["note"] or summary.get("note")
    return summary["rank_field"], summary


# -- saved coreset views ------------------------------------------------------------


def view_run_key(view_name):
    """The run key of a saved coreset view: ``coreset_view_<slug>`` (a slug names one view only)."""
    return "coreset_view_" + view_slug(view_name).replace("-", "_")


def view_slug(view_name):
    """FiftyOne's slug of a saved view name, or a ValueError naming ``view_name``."""
    try:
        return fou.to_slug(view_name)
    except (ValueError, TypeError) as error:
        reason = str(error).rsplit("; ", 1)[-1]  # e.g. "length 0 < 1": no letter or digit, or too long
        shown = view_name if len(str(view_name)) <= 60 else f"{view_name[:57]}..."
        raise ValueError(f"view_name: {shown!r} cannot name a saved view (its slug has {reason}); use a "
                         "name with letters or digits, at most 1,500 characters long") from None


def check_view_name(dataset, view_name, *, overwrite=False):
    """The saved view name, if saving under it replaces nothing but this plugin's own view of that very name.

    FiftyOne identifies saved views by the slug of their name ('My View' and
    'my-view' share 'my-view'), so a name whose slug belongs to any other
    view is refused, and so is a name held by a view this plugin did not
    save; ``overwrite`` replaces only the plugin's own coreset view.
    """
    if not isinstance(view_name, str) or not view_name.strip():
        raise ValueError("view_name must be a non-empty name for the saved view")
    view_name = view_name.strip()
    slug = view_slug(view_name)
    for other in dataset.list_saved_views():
        if other != view_name and fou.to_slug(other) == slug:
            raise ValueError(
                f"view_name: '{view_name}' and the existing saved view '{other}' would share the URL name "
                f"'{slug}' (FiftyOne would replace '{other}'); choose another name"
            )
    if dataset.has_saved_view(view_name):
        ours = [c for _, c, _ in runs.plugin_runs(dataset, runs.VIEW, view_name=view_name)]
        if not any(runs.owns_saved_view(dataset, c) for c in ours):
            raise ValueError(
                f"view_name: '{view_name}' is a saved view this plugin did not create (or that was saved again "
                "since); choose another name, or delete that view in FiftyOne first"
            )
        if not overwrite:
            raise ValueError(
                f"view_name: a saved coreset view named '{view_name}' already exists on '{dataset.name}'; "
                "choose another name or pass overwrite=True"
            )
    return view_name


def save_coreset_view(
    collection,
    score_field,
    prune_rate=0.5,
    view_name=None,
    *,
    keep="highest",
    stratify_by=None,
    selection="auto",
    embeddings_field=None,
    seed=0,
    tag=None,
    overwrite=False,
    kept=None,
    progress=None,
):
    """Saves the coreset of a collection at ``prune_rate`` as a frozen saved view.

    The view holds exactly ``n - floor(prune_rate * n)`` of the ``n`` scored
    samples (or ``kept`` of them, if given, instead of a rate): the prefix of
    the coreset order (computed once, or reused).
    With ``tag``, the kept samples also get that tag (removed again, from the
    samples the save added it to, by a re-save or ``delete_run``).
    Returns a summary: view_name, kept, pruned, selection, description.
    """
    start = time.perf_counter()
    root = internals.root_dataset(collection)
    recover(root)
    prune_rate = params.fraction("prune_rate", prune_rate)
    overwrite = params.boolean("overwrite", overwrite)
    view_name = check_view_name(root, view_name, overwrite=overwrite)
    key = view_run_key(view_name)
    runs.check_run_key(collection, key, runs.VIEW, param="view_name")
    tag = tags.check_tag(tag, "tag")
    report = phases(params.callback("progress", progress))

    rank_field, order = order_for(
        collection, score_field, selection=selection, keep=keep, stratify_by=stratify_by,
        embeddings_field=embeddings_field, seed=seed, progress=report(0.0, 0.9),
    )
    scored = collection.exists(rank_field).count()
    if kept is None:
        kept = core_order.kept_count(scored, prune_rate)
    else:
        kept = params.integer("kept", kept, minimum=1, maximum=scored)
        prune_rate = 1.0 - kept / scored
    query = {rank_field: {"$lt": kept}}
    description = (
        f"Coreset of {kept}/{scored} samples: prune {prune_rate:.0%} by {keep} '{score_field}' "
        f"({order['selection']}{', stratified by ' + stratify_by if stratify_by else ''}: "
        f"uses {core_order.order_uses(order['selection'])}); frozen on '{rank_field}'"
    )
    config = runs.make_config(
        runs.VIEW,
        view_name=view_name,
        score_field=score_field,
        rank_field=rank_field,
        selection=order["selection"],
        keep=keep,
        stratify_by=stratify_by or None,
        prune_rate=prune_rate,
        kept=kept,
        query=json_util.dumps(query),
        tag=tag,
        target_kind="samples",
        token=uuid.uuid4().hex,
    )
    writes = [TagWrite(tag, query=query)] if tag else []
    summary = dict(
        view_name=view_name, kept=kept, pruned=scored - kept, selection=order["selection"],
        rank_field=rank_field, description=description, note=order.get("note"), seconds=None,
    )

    def still_free():
        root.reload()
        check_view_name(root, view_name, overwrite=overwrite)

    commit(collection, key, config, dict(summary=summary), writes=writes,
           saved_view=SavedView(view_name, root.match(query), description), precheck=still_free)
    report(1.0, 1.0)(1.0)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    return summary


def tag_coreset(collection, rank_field, tag, *, prune_rate=None, kept=None):
    """Tags the kept samples of an order at a rate (or a kept count): a run of its own, undone by ``delete_run``.

    The run key is ``coreset_tag_<slug of the tag>``: tagging again with the
    same tag moves it (from the samples this run added it to) to the new kept
    samples. Returns a summary: tag, kept, added (samples that did not have the tag), run_key.
    """
    root = internals.root_dataset(collection)
    recover(root)
    tag = tags.check_tag(tag, "tag")
    if tag is None:
        raise ValueError("tag: enter a tag name for the kept samples")
    if rank_field not in {c.get("rank_field") for _, c, _ in runs.plugin_runs(root, runs.ORDER)}:
        raise ValueError(f"rank_field: '{rank_field}' is not a coreset order of this plugin; compute an order first")
    scored = collection.exists(rank_field).count()
    if kept is None:
        kept = core_order.kept_count(scored, params.fraction("prune_rate", prune_rate))
    kept = params.integer("kept", kept, minimum=0, maximum=scored)
    key = _tag_run_key(root, tag)
    runs.check_run_key(collection, key, runs.TAG, param="tag")
    query = {rank_field: {"$lt": kept}}  # an order's rank field is set on the samples it ranked only
    config = runs.make_config(runs.TAG, tag=tag, rank_field=rank_field, kept=kept, target_kind="samples",
                              token=uuid.uuid4().hex)
    summary = dict(tag=tag, kept=kept, run_key=key)
    commit(root, key, config, dict(summary=summary), writes=[TagWrite(tag, query=query)])
    summary["added"] = tags.added_count(root, config.token)
    return summary


def _tag_run_key(dataset, tag):
    """The run key of ``tag``'s tag_coreset run: the one it has, else ``coreset_tag_<slug>`` while no other tag
    holds that slug ('a b' and 'a-b' share one), else ``coreset_tag_<digest>`` (also for tags without a slug, '$')."""
    for key, _, _ in runs.plugin_runs(dataset, runs.TAG, tag=tag):
        return key
    try:
        key = "coreset_tag_" + fou.to_slug(tag).replace("-", "_")
    except ValueError:
        key = None
    if key is None or key in runs.raw_runs(dataset):
        key = "coreset_tag_" + hashlib.sha1(tag.encode()).hexdigest()[:12]
    return key


def coreset_views(dataset):
    """This plugin's saved coreset views: name, kept when saved, samples now, and whether it is stale.

    A saved coreset view is stale when it no longer holds the samples it
    was saved with (samples were deleted, or the view was changed by hand).
    """
    found = []
    for key, config, _ in runs.plugin_runs(dataset, runs.VIEW):
        name = config.get("view_name")
        ours = runs.owns_saved_view(dataset, config)
        now = dataset.load_saved_view(name).count() if ours else None
        found.append(dict(view_name=name, run_key=key, kept=config.get("kept"), count=now,
                          stale=not ours or now != config.get("kept")))
    return found


def kept_view(collection, rank_field, prune_rate=None, kept=None):
    """The kept samples of ``collection`` at a rate (or a kept count), as a small match on the rank."""
    if kept is None:
        kept = core_order.kept_count(collection.exists(rank_field).count(), params.fraction("prune_rate", prune_rate))
    return collection.match({rank_field: {"$lt": int(kept)}})


def pruned_view(collection, rank_field, prune_rate=None, kept=None):
    """The pruned scored samples, as a small match on the rank."""
    if kept is None:
        kept = core_order.kept_count(collection.exists(rank_field).count(), params.fraction("prune_rate", prune_rate))
    return collection.match({rank_field: {"$gte": int(kept)}})


def order_view(collection, order, kept, *, pruned=False):
    """The kept (or pruned) samples of an in-memory order at a kept count, as a select/exclude of the smaller id set.

    In-memory orders are small (the panel stores the larger ones), so the id list stays a few hundred KB at most.
    """
    if not isinstance(order, CoresetOrder):
        raise ValueError(f"order must be a CoresetOrder from coreset_order(), got {type(order).__name__}")
    kept = params.integer("kept", kept, minimum=0, maximum=len(order.ids))
    inside = order.ranks >= kept if pruned else order.ranks < kept
    wanted, others = order.ids[inside], order.ids[~inside]
    if len(wanted) <= len(others) + len(order.unscored):
        return collection.select([str(i) for i in wanted])
    return collection.exclude([str(i) for i in np.concatenate([others, order.unscored])])


def accuracy_curve(
    collection,
    rank_field,
    embeddings_field,
    label_field,
    *,
    rates=(0, 10, 30, 50, 70, 90),
    held_out=0.2,
    max_train=20_000,
    seed=0,
):
    """Linear-probe accuracy on held-out labelled samples when training on each rate's kept prefix.

    ``rank_field`` is a stored order's rank field, or a :class:`CoresetOrder` held in memory.

    The held-out samples are drawn from the ranked, labelled samples and
    never trained on; at each rate the probe trains on the kept samples
    outside the held-out set. ``random`` is the baseline: the same number of
    ranked samples drawn at random; ``full`` the accuracy with every sample.
    """
    from sklearn.linear_model import LogisticRegression

    fields = check_vector_fields(collection, embeddings_field)
    _check_label_field(collection, label_field, param="label_field")
    if isinstance(rank_field, CoresetOrder):
        ids, columns = read_columns(collection, [f"{label_field}.label"])
        rank_of = dict(zip(rank_field.ids.tolist(), rank_field.ranks.tolist()))
        ranks = np.array([rank_of.get(i, -1) for i in ids.tolist()], dtype=np.int64)
    else:
        ids, columns = read_columns(collection, [rank_field, f"{label_field}.label"])
        ranks = np.array([-1 if v is None else v for v in columns[rank_field]], dtype=np.int64)
    labels = np.array(["" if v is None else str(v) for v in columns[f"{label_field}.label"]], dtype=object)
    use = (ranks >= 0) & (labels != "")
    if use.sum() < 10 or len(set(labels[use])) < 2:
        raise ValueError(f"label_field: need at least 10 ranked samples and 2 classes labelled in '{label_field}'")
    table = read_vectors(collection, fields)
    row = {i: r for r, i in enumerate(table.ids)}
    rows = np.fromiter((row.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))
    use &= rows >= 0
    positions = np.flatnonzero(use)
    rng = np.random.default_rng(seed)
    test = rng.choice(positions, max(1, int(round(held_out * len(positions)))), replace=False)
    in_test = np.zeros(len(ids), bool)
    in_test[test] = True
    n_ranked = int((ranks >= 0).sum())
    ranked = np.flatnonzero(ranks >= 0)
    baseline_rng = np.random.default_rng(seed + 1)

    def probe_accuracy(train):
        fit = np.flatnonzero(use & ~in_test & train)
        if len(fit) > max_train:
            fit = rng.choice(fit, max_train, replace=False)
        if len(set(labels[fit])) < 2:
            return None
        probe = LogisticRegression(max_iter=1000).fit(table.vectors[rows[fit]], labels[fit])
        return round(float(probe.score(table.vectors[rows[test]], labels[test])), 4)

    accuracy, random = [], []
    for rate in rates:
        kept = core_order.kept_count(n_ranked, rate / 100.0)
        accuracy.append(probe_accuracy(ranks < kept))
        # the baseline: as many ranked samples, drawn at random
        drawn = np.zeros(len(ids), bool)
        drawn[baseline_rng.choice(ranked, kept, replace=False)] = True
        random.append(probe_accuracy(drawn))
    full = accuracy[list(rates).index(0)] if 0 in rates else probe_accuracy(ranks >= 0)
    return dict(rates=list(rates), accuracy=accuracy, random=random, full=full, held_out=len(test))
