"""The order policy: which coreset order the panel sweeps for a score, selection, keep, stratification and view.

Browsing writes nothing. An order already stored (a rank field with its run,
from ``compute_coreset_order``, a save or a tag) is read; any other order is
computed in memory (:func:`bridge.coreset_order`) and kept in the plugin's
cache, up to :data:`AUTO_ORDER_LIMIT` scored samples; above that the panel
asks the user to compute it. :func:`stored_rank_field` writes an in-memory
order when an action needs it on the samples (save a view, tag).
"""

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from .. import bridge
from ..bridge import internals
from . import cache
from .state import kept_count

#: orders of at most this many scored samples are computed in memory on the spot; larger ones on request
AUTO_ORDER_LIMIT = 20_000
#: histogram bins
BINS = 40
#: an event waits this long (seconds) for an order before the panel shows it is busy with it
BUSY_AFTER_S = 0.3
#: the panel settings an order depends on (its job key)
SETTINGS = ("base_view", "score_field", "selection", "keep", "label_field", "stratify", "embeddings_field")

_WORKERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="coreset-order")
_JOBS = {}
_JOBS_LOCK = threading.Lock()


class SweepTable:
    """What one coreset order needs in memory: ids, scores, ranks and class codes of the ranked samples.

    ``rank_field`` is None while the order lives in memory only (``order`` then holds it).
    """

    def __init__(self, ids, scores, ranks, unscored, selection, *, rank_field=None, order=None, classes=None,
                 codes=None):
        self.ids = ids
        self.scores = scores
        self.ranks = ranks
        self.unscored = unscored
        self.selection = selection
        self.rank_field = rank_field
        self.order = order
        self.classes = classes
        self.codes = codes
        self.edges = np.histogram_bin_edges(scores, bins=BINS) if len(scores) else np.linspace(0, 1, BINS + 1)
        self.bins = np.clip(np.searchsorted(self.edges, scores, side="right") - 1, 0, BINS - 1)
        self.by_rank = np.argsort(ranks, kind="stable")
        self.map_rows = {}

    def kept_count(self, percent):
        return kept_count(len(self.ranks), percent)

    def mask(self, percent):
        return self.ranks < self.kept_count(percent)


class Busy:
    """An order still being computed in the background: which, since when, how far (``fraction`` or None)."""

    def __init__(self, selection):
        self.selection = selection
        self.started = time.monotonic()
        self.fraction = None
        self.future = None

    def report(self, fraction):
        self.fraction = fraction

    def describe(self):
        seconds = f"{time.monotonic() - self.started:.0f} s"
        if self.fraction is None:  # reading a stored order, or about to compute one
            return f"Preparing the '{self.selection}' order (nothing is written): {seconds}"
        return (f"Computing the '{self.selection}' order in memory (nothing is written): "
                f"{100 * self.fraction:.0f} % · {seconds}")


def table(dataset_name, base, state, *, wait=None):
    """:func:`sweep_table` of the current settings, computed in the background.

    Waits up to ``wait`` seconds (None: until it is done); an order still being
    computed then is returned as a :class:`Busy`, and the next call for the
    same settings finds the same job.
    """
    settings = {key: state.get(key) for key in SETTINGS}
    key = (dataset_name, repr(sorted(settings.items())))
    with _JOBS_LOCK:
        job = _JOBS.get(key)
        started = job is None
        if started:
            job = _JOBS[key] = Busy(settings["selection"])
            job.future = _WORKERS.submit(sweep_table, dataset_name, base, settings, progress=job.report)
    if started:
        job.future.add_done_callback(lambda _: _forget(key, job))
    try:
        return job.future.result(timeout=wait)
    except FutureTimeout:
        return job


def _forget(key, job):
    with _JOBS_LOCK:
        if _JOBS.get(key) is job:
            del _JOBS[key]


def order_kwargs(state):
    """The order's settings from the panel state, as :func:`bridge.coreset_order` takes them."""
    return dict(
        selection=state.get("selection"),
        keep=state.get("keep", "highest"),
        stratify_by=state.get("label_field") if state.get("stratify") else None,
        embeddings_field=state.get("embeddings_field"),
    )


def rank_field_for(base, state):
    """Where an order of the panel is stored: the default rank field for the dataset,
    one of the view's own for a view (``..._view_1a2b3c4d_rank``); a new version of it
    (``..._rank_2``) when a saved coreset view is frozen on it.

    The default name does not depend on the view: computed on a view, the order would
    overwrite the dataset's one, and a view that shows kept or pruned samples, which is
    a match on that very field, would change while it is re-ranked.
    """
    name = bridge.rank_field_name(state.get("score_field"), state.get("selection"), state.get("keep", "highest"),
                                  state.get("label_field") if state.get("stratify") else None)
    if internals.own_stages(base):
        digest = hashlib.sha1(str(internals.stage_dicts(base)).encode()).hexdigest()[:8]
        name = f"{name[:-len('_rank')]}_view_{digest}_rank"
    return bridge.unpinned_rank_field(base, name)


def _keys(dataset_name, base, state):
    """Cache keys of the stored order found (it changes with the dataset's fields and runs) and of the one in memory."""
    settings = (state.get("score_field"), repr(sorted(order_kwargs(state).items())))
    return ((dataset_name, "order", state.get("base_view"), bridge.fields_version(base)) + settings,
            (dataset_name, "memory", state.get("base_view")) + settings)


def sweep_table(dataset_name, base, state, progress=None):
    """The sweep table of the current settings, or None when the order is too large to compute on the spot.

    Whether a stored order is still exact is checked once per setting (it reads
    every score: 1.4 s at 1M samples); slider moves reuse the answer until
    Refresh or a dataset change.
    """
    score_field, label_field = state.get("score_field"), state.get("label_field")
    kwargs = order_kwargs(state)
    order_key, memory_key = _keys(dataset_name, base, state)
    found = cache.CACHE.get(order_key, lambda: ("stored", bridge.find_order(base, score_field, **kwargs)))
    if found[1] is not None:
        config = found[1][1]  # find_order: (run key, config)
        table = cache.CACHE.get((dataset_name, "table", state.get("base_view"), config.get("token"), label_field),
                                lambda: _stored_table(base, config, label_field))
        if table is not None:
            return table
        cache.CACHE.put(order_key, ("stored", None))  # the scores changed by hand since: order again, in memory
    order = cache.CACHE.peek(memory_key)
    if order is None:
        if base.exists(score_field).count() > AUTO_ORDER_LIMIT:
            return None
        order = cache.CACHE.get(memory_key, lambda: bridge.coreset_order(base, score_field, progress=progress,
                                                                         **kwargs))
    return cache.CACHE.get((dataset_name, "table", state.get("base_view"), memory_key, label_field),
                           lambda: _memory_table(base, order, label_field))


def stored_rank_field(dataset_name, base, state, table):
    """The rank field of ``table``'s order, writing the order (field and run) first if it lives in memory only.

    Called by the actions that need the order on the samples: save a view, tag the kept samples.
    """
    if table.rank_field is not None:
        return table.rank_field
    summary = bridge.store_order(base, table.order, rank_field=rank_field_for(base, state))
    table.rank_field = summary["rank_field"]
    cache.drop(dataset_name, "order")
    return table.rank_field


def _classes(labels):
    classes, codes = np.unique(labels, return_inverse=True)
    return classes, codes


def _stored_table(base, config, label_field):
    paths = [config["score_field"], config["rank_field"]] + ([f"{label_field}.label"] if label_field else [])
    ids, columns = bridge.read_columns(base, paths)
    ranks = np.array([-1 if v is None else v for v in columns[config["rank_field"]]], dtype=np.int64)
    ranked = ranks >= 0
    raw = columns[config["score_field"]]
    if any((v is None) != (not r) for v, r in zip(raw, ranked)):
        return None  # the scores changed since the order was computed (a field no run of ours wrote)
    scores = np.array([v for v, r in zip(raw, ranked) if r], dtype=np.float64)
    classes = codes = None
    if label_field:
        classes, codes = _classes(np.array(["" if v is None else str(v) for v in columns[paths[2]]],
                                           dtype=object)[ranked])
    return SweepTable(ids[ranked], scores, ranks[ranked], int((~ranked).sum()), config["selection"],
                      rank_field=config["rank_field"], classes=classes, codes=codes)


def _memory_table(base, order, label_field):
    classes = codes = None
    if label_field:
        ids, columns = bridge.read_columns(base, [f"{label_field}.label"])
        label_of = dict(zip(ids.tolist(), columns[f"{label_field}.label"]))
        labels = np.array(["" if label_of.get(i) is None else str(label_of[i]) for i in order.ids.tolist()],
                          dtype=object)
        classes, codes = _classes(labels)
    return SweepTable(order.ids, order.scores, order.ranks, len(order.unscored), order.selection, order=order,
                      classes=classes, codes=codes)


def shown_view(base, table, percent, *, kept=True):
    """The kept (or pruned) samples at ``percent``: a small match on the rank field of a stored order,
    a select of the smaller id set of an in-memory one (at most :data:`AUTO_ORDER_LIMIT` samples)."""
    count = table.kept_count(percent)
    if table.rank_field is not None:
        make = bridge.kept_view if kept else bridge.pruned_view
        return make(base, table.rank_field, kept=count)
    return bridge.order_view(base, table.order, count, pruned=not kept)
