"""The instant pruning-rate slider: a JS component (js/) drawn from a per-rate summary.

While the user drags, the component (``CoresetRateSlider``, built into
``js/dist/index.umd.js``) draws the kept count, the class-balance bars and the
histogram with its threshold from a summary the panel sends once per order:
one row per integer percent 0-99 (kept count, kept per class, kept per
histogram bin, score threshold), a few KB whatever the number of samples. Only
the release calls the panel (``on_rate_released``), which stores the rate and
moves the grid if it shows the kept or pruned samples.

The summary goes to the App as panel *data* under ``rate_slider.<rev>``: the
component sits at ``rate_slider`` and no state key has that name (a state key
of a component's name would shadow its data); ``<rev>`` changes with the
order, so an old summary is never merged into a new one.
"""

import hashlib
import os
import pathlib

import numpy as np

from ..core import order as core_order
from . import actions
from .state import DEFAULT_PERCENT, parse_percent, set_rate, state_of

COMPONENT = "CoresetRateSlider"
NAME = "rate_slider"
RATES = 100  # integer percents 0..99
#: the most classes the slider draws (the most frequent ones); the rest are counted in one note
MAX_CLASSES = 40
BUNDLE = pathlib.Path(__file__).resolve().parent.parent / "js" / "dist" / "index.umd.js"
_SENT = "slider_summary_rev"  # state key: the summary revision the App holds


def enabled():
    """True when the App gets the JS slider: the bundle is built and ``CORESET_JS_SLIDER`` is not ``0``.

    With ``CORESET_JS_SLIDER=0`` (or no bundle) the panel draws its Python slider and
    plots instead, which follow the slider only after each server round trip.
    """
    return BUNDLE.exists() and os.environ.get("CORESET_JS_SLIDER", "1") != "0"


def revision(table):
    """A short key of the order a summary describes (kept on the table: one hash per order)."""
    rev = getattr(table, "slider_rev", None)
    if rev is None:
        digest = hashlib.sha1(repr((table.rank_field, table.selection, table.unscored)).encode())
        for part in (table.ranks, table.scores, table.codes):
            if part is not None:
                digest.update(np.ascontiguousarray(part).tobytes())
        rev = table.slider_rev = digest.hexdigest()[:10]
    return rev


def summary(table, score_field=None):
    """What the slider draws at every integer rate: O(N) to build, O(rates x (classes + bins)) to send."""
    n = len(table.ranks)
    kept = [core_order.kept_count(n, r / 100.0) if n else 0 for r in range(RATES)]
    order = table.by_rank  # positions in rank order: a rate keeps the first kept[r]
    bins = table.bins[order] if n else np.zeros(0, np.int64)
    n_bins = len(table.edges) - 1
    bin_kept = _prefix_counts(bins, kept, n_bins)
    out = dict(
        n=n, unscored=int(table.unscored), kept=kept, field=score_field, selection=table.selection,
        edges=[round(float(e), 6) for e in table.edges], bin_totals=np.bincount(table.bins, minlength=n_bins).tolist(),
        bin_kept=bin_kept, threshold=None, classes=None,
    )
    if table.selection == "top" and n:
        out["threshold"] = [round(float(table.scores[order[k - 1]]), 6) if k else None for k in kept]
    if table.codes is not None and len(table.classes):
        totals = np.bincount(table.codes, minlength=len(table.classes))
        shown = np.argsort(-totals, kind="stable")[:MAX_CLASSES]
        shown = shown[np.argsort(table.classes[shown], kind="stable")]  # drawn in name order
        remap = np.full(len(table.classes), len(shown), np.int64)
        remap[shown] = np.arange(len(shown))
        codes = remap[table.codes[order]]
        out["classes"] = [c if c else "(no label)" for c in table.classes[shown].tolist()]
        out["class_totals"] = totals[shown].tolist()
        out["class_kept"] = [row[:len(shown)] for row in _prefix_counts(codes, kept, len(shown) + 1)]
        out["classes_left_out"] = int(len(table.classes) - len(shown))
    return out


def _prefix_counts(values, prefix_lengths, size):
    """``bincount(values[:k])`` for each k, from one pass over ``values`` (k need not be sorted)."""
    order = np.argsort(prefix_lengths, kind="stable")
    rows = [None] * len(prefix_lengths)
    counts = np.zeros(size, np.int64)
    done = 0
    for i in order:
        k = prefix_lengths[i]
        if k > done:
            counts += np.bincount(values[done:k], minlength=size)
            done = k
        rows[i] = counts.tolist()
    return rows


def add(panel, ctx, owner, table):
    """The slider component in ``panel`` (nothing while the order is missing or fails: the
    panel says why); sends the order's summary to the App when it lacks it."""
    if table is None:
        return
    state = state_of(ctx)
    rev = revision(table)
    if state.get(_SENT) != rev:
        ctx.panel.set_data(f"{NAME}.{rev}", summary(table, state.get("score_field")))
        state.set(_SENT, rev)
    rate = int(round(state.get("prune_rate", DEFAULT_PERCENT)))
    panel.view(NAME, component_view(rev, rate, owner.on_rate_released, owner.on_rate_summary))


def component_view(rev, rate, on_release, on_summary):
    import fiftyone.operators.types as types

    return types.View(component=COMPONENT, composite_view=True, rev=rev, rate=rate, on_release=on_release,
                      on_summary=on_summary, label="Pruning rate (%)")


class SliderEvents:
    """The panel methods the component calls (mixed into the panel class)."""

    def on_rate_released(self, ctx):
        """The slider was let go at ``ctx.params['rate']``: stores it and moves a kept/pruned grid along."""
        state = state_of(ctx)
        percent, _ = parse_percent(ctx.params.get("rate"))
        if percent is None or percent == state.get("prune_rate", DEFAULT_PERCENT):
            return
        set_rate(state, percent, "slider")
        actions.follow(ctx, state)  # flushes the state before it moves the grid

    def on_rate_summary(self, ctx):
        """The component has no summary for its order (the App was reloaded): the render sends it."""
        state_of(ctx).set(_SENT, None)
