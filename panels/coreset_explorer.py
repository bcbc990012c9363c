"""Coreset Explorer: sweep the pruning rate, see what is kept, save coreset views.

The panel sweeps the view it was opened on (its *base*): showing the kept or
pruned samples in the grid does not re-base it, and it says what it sweeps.
Every selection is a coreset order (a rank field computed once and stored
with its run): a slider move is a threshold on the ranks held in memory, and
"Show kept" is a small match on the rank field, never a list of ids.
"""

import contextlib
import hashlib
import threading
import time
from collections import OrderedDict

import numpy as np

import fiftyone.operators as foo
import fiftyone.operators.types as types
from bson import json_util

from .. import bridge
from ..bridge import internals
from ..core import order as core_order
from . import plot_parts, slider as js_slider  # [issue 21 hook] the JS slider, the plot parts

PLUGIN = bridge.PLUGIN
#: orders of at most this many scored samples are computed on the spot; larger ones on request
AUTO_ORDER_LIMIT = 20_000
_MAP_POINTS = 5_000
_BINS = 40
_CACHE_SIZE = 8
_KEPT, _PRUNED = "#ff6d04", "#9e9e9e"
# The App's plotly.js (3.x) ignores string titles and hides legends unless asked.
_LEGEND = dict(showlegend=True, legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"))
_PLOT_CONFIG = dict(displayModeBar=False, scrollZoom=False)
# Rows of controls: the App reports a control in a row as "<row>.<name>" and keeps its value there.
_RATES, _TAGGING, _SAVING = "rates", "tagging", "saving"


def _title(text):
    return dict(text=text, x=0.01, xanchor="left", font=dict(size=14))


@contextlib.contextmanager
def _one_state_patch(ctx):
    """Sends the state writes of one event to the App as one patch.

    The App applies every ``patch_panel_state`` in a task of its own and redraws the
    whole panel for each; an event writes several keys (a slider move: the rate, the
    typed box's revision, the last control, the render time). The merged patch goes
    out where the first one would have been overtaken by another operation (the panel
    output, a view change...), so the App sees the writes in the same order relative
    to those.
    """
    trigger = ctx.trigger
    pending = {}

    def flush():
        if pending:
            trigger("patch_panel_state", params=dict(panel_id=ctx.params.get("panel_id"), state=dict(pending)))
            pending.clear()

    def batched(operator_name, params=None):
        params = params or {}
        own = params.get("panel_id") in (None, ctx.params.get("panel_id"))
        if operator_name == "patch_panel_state" and own and set(params) <= {"panel_id", "state"}:
            pending.update(params.get("state") or {})
            return None
        flush()
        return trigger(operator_name, params=params)

    ctx.trigger = batched
    try:
        yield
    finally:
        flush()
        del ctx.trigger


class _Repeats:
    """Events seen in the last few seconds, to drop the App's second copy of one."""

    def __init__(self, ttl_s=5.0, size=256):
        self.ttl_s = ttl_s
        self.size = size
        self.seen_at = OrderedDict()
        self.lock = threading.Lock()

    def seen(self, ctx):
        params = ctx.params
        key = json_util.dumps(
            [ctx.request_params.get("dataset_name"), params.get("panel_id"), params.get("path"),
             params.get("value"), params.get("panel_state")],
            sort_keys=True,
        )
        now = time.monotonic()
        with self.lock:
            while self.seen_at and next(iter(self.seen_at.values())) < now - self.ttl_s:
                self.seen_at.popitem(last=False)
            if key in self.seen_at:
                return True
            self.seen_at[key] = now
            while len(self.seen_at) > self.size:
                self.seen_at.popitem(last=False)
        return False


_REPEATS = _Repeats()

#: what a control shows before the panel stores a value for it
_CONTROL_DEFAULTS = dict(tag="coreset", view_name="")


def _set_rate(state, rate, source="slider"):
    """Sets the pruning rate; the other control (slider or typed box) is replaced by a new one.

    The App keeps each control's value at the control's path in the panel state and
    reports a value written there as a change of that control, often late and with a
    panel state from before the write; it also puts a box the user has typed into
    back to the typed value. So the panel never writes there: a control that must
    show a new value is replaced by one of a new name (``rates.rate_typed_3``) whose
    default is the new value, and events of replaced controls are ignored.
    """
    other = "typed_rev" if source == "slider" else "slider_rev"
    state.set({"prune_rate": rate, other: int(state.get(other) or 0) + 1})


def _control(path):
    """``(name, revision)`` of a control path: ``rates.rate_typed_3`` -> ``("rate_typed", 3)``."""
    name = (path or "").rsplit(".", 1)[-1]
    for base in ("prune_rate", "rate_typed"):
        if name.startswith(base + "_") and name[len(base) + 1:].isdigit():
            return base, int(name[len(base) + 1:])
    return name, None


def _as_rate(value):
    """A typed pruning rate as an int in [0, 99], or None if it is no number."""
    try:
        return min(99, max(0, int(round(float(value)))))
    except (TypeError, ValueError, OverflowError):
        return None


def _ignored(ctx):
    """True for a control event that changes nothing: from a replaced control, or the App
    reporting the value a control was created with (it does so for every new control)."""
    path = ctx.params.get("path") or ""
    name, revision = _control(path)
    state = ctx.panel.state
    if name in _CONTROL_DEFAULTS and "." in path:  # a text box in a row: its setting is the flat name
        current = state.get(name)
        value = ctx.params.get("value")
        return (value or "") == (_CONTROL_DEFAULTS[name] if current is None else current)
    if revision is None:
        return False
    current = int(state.get("slider_rev" if name == "prune_rate" else "typed_rev") or 0)
    if revision < current:
        return True
    rate = _as_rate(ctx.params.get("value"))
    return rate is None or rate == state.get("prune_rate")


class _Cache:
    """Recently used sweep tables and maps, so a slider move runs no database query."""

    def __init__(self, size=_CACHE_SIZE):
        self.size = size
        self.entries = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key, build):
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        value = build()
        if value is not None:  # None: nothing to keep, built again next time
            self.put(key, value)
        return value

    def put(self, key, value):
        with self.lock:
            self.entries[key] = value
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)

    def drop(self, dataset_name):
        with self.lock:
            for key in [k for k in self.entries if k[0] == dataset_name]:
                del self.entries[key]


_CACHE = _Cache()
_MAP_LOCK = threading.Lock()


class SweepTable:
    """What one coreset order needs in memory: scores, ranks, class codes of the ranked samples."""

    def __init__(self, rank_field, selection, scores, ranks, unscored, classes=None, codes=None, note=None):
        self.rank_field = rank_field
        self.selection = selection
        self.scores = scores
        self.ranks = ranks
        self.unscored = unscored
        self.classes = classes
        self.codes = codes
        self.note = note
        self.edges = np.histogram_bin_edges(scores, bins=_BINS) if len(scores) else np.linspace(0, 1, _BINS + 1)
        self.bins = np.clip(np.searchsorted(self.edges, scores, side="right") - 1, 0, _BINS - 1)
        self.by_rank = np.argsort(ranks, kind="stable")
        self.ids = None
        self.warning = None
        self.map_rows = {}

    def kept_count(self, rate):
        return core_order.kept_count(len(self.ranks), rate / 100.0)

    def mask(self, rate):
        return self.ranks < self.kept_count(rate)


def _serialize(view):
    return json_util.dumps(internals.stage_dicts(view, include_uuids=True) or [])


def _describe(view):
    if not internals.own_stages(view):
        return f"the whole dataset ({view.count():,} samples)"
    stages = ", ".join(type(s).__name__ for s in internals.own_stages(view))
    return f"the view it was opened on ({view.count():,} samples: {stages})"


class CoresetExplorer(js_slider.SliderEvents, plot_parts.PlotEvents, foo.Panel):  # [issue 21 hook] mixins
    @property
    def config(self):
        return foo.PanelConfig(
            name="coreset_explorer",
            label="Coreset Explorer",
            category=foo.Categories.CURATE,
            icon="filter_alt",
            help_markdown="Sweep the pruning rate of a score field and save the kept samples as a frozen view.",
        )

    def resolve_panel_config(self):
        # Not subscribed to the App's view changes: the App sends three of those events (view,
        # filters, extended stages) after every change of the panel state, view unchanged, and
        # their round trips and redraws delay the next slider move. A view change is seen at
        # the panel's next event instead (see execute).
        config = super().resolve_panel_config()
        config.pop("on_change_view", None)
        return config

    # -- the view being swept -------------------------------------------------------

    def _base(self, ctx):
        stages = ctx.panel.state.get("base_view")
        if stages is None:
            return ctx.view
        return internals.view_of_stage_dicts(ctx.dataset, json_util.loads(stages)) if stages != "[]" else ctx.dataset

    def _rebase(self, ctx):
        state = ctx.panel.state
        state.base_view = _serialize(ctx.view)
        state.view_key = state.base_view
        state.base_label = _describe(ctx.view)
        state.shown_view = None

    # -- events ----------------------------------------------------------------------

    def on_load(self, ctx):
        bridge.recover(ctx.dataset)
        state = ctx.panel.state
        state.stale_views = [
            f"'{v['view_name']}' (saved with {v['kept']:,}, now {'gone' if v['count'] is None else format(v['count'], ',')})"
            for v in bridge.coreset_views(ctx.dataset) if v["stale"]
        ]
        if state.get("base_view") is None:
            self._rebase(ctx)
        base = self._base(ctx)
        fields = bridge.score_fields(base)
        if state.get("score_field") not in fields:
            state.score_field = bridge.default_score_field(base)
        defaults = dict(prune_rate=50, keep="highest", selection=bridge.DEFAULT_SELECTION, stratify=False,
                        show_map=False)
        for key, value in defaults.items():
            if state.get(key) is None:
                state.set(key, value)
        labels = bridge.classification_fields(base)
        if state.get("label_field") not in labels:
            state.label_field = labels[0] if labels else None
        vectors = bridge.vector_fields(base)
        if state.get("embeddings_field") not in vectors:
            recorded = bridge.recorded_embeddings_fields(base, state.get("score_field")) if state.get("score_field") else None
            state.embeddings_field = (recorded or vectors or [None])[0]

    def execute(self, ctx):
        method = ctx.params.get("__method__")
        if method == "on_change_view" and ctx.panel.state.get("view_key") == _serialize(ctx.view):
            return None  # the view did not change: nothing to redraw
        # The App sends some control changes twice at once (same value, same panel state), and
        # reports a new control's initial value as a change (see _set_rate): neither changes a
        # setting, and redrawing for them would only slow the next slider move down.
        if method == "on_change_setting" and (_ignored(ctx) or _REPEATS.seen(ctx)):
            return None
        with _one_state_patch(ctx):
            if method not in (None, "on_startup", "on_load", "on_change_view", "on_change_dataset",
                              "on_sweep_current_view") and \
                    ctx.panel.state.get("view_key") is not None:
                self.on_change_view(ctx)  # the App's view may have changed since the last event
            return super().execute(ctx)

    def on_change_view(self, ctx):
        state = ctx.panel.state
        key = _serialize(ctx.view)
        if state.get("view_key") == key:
            return
        state.view_key = key
        if key in (state.get("shown_view"), state.get("base_view")):
            return  # our own Show kept/pruned, or back to the base: keep sweeping the base
        self._rebase(ctx)
        state.message = f"The App's view changed: now sweeping {state.get('base_label')}."
        self.on_load(ctx)

    def on_change_dataset(self, ctx):
        _CACHE.drop(ctx.dataset.name)
        state = ctx.panel.state
        state.base_view = None
        state.accuracy = None
        state.message = None
        self.on_load(ctx)

    def on_refresh(self, ctx):
        _CACHE.drop(ctx.dataset.name)
        ctx.panel.state.accuracy = None
        self.on_load(ctx)

    def on_sweep_current_view(self, ctx):
        self._rebase(ctx)
        ctx.panel.state.message = f"Now sweeping {ctx.panel.state.get('base_label')}."
        self.on_load(ctx)

    def on_change_setting(self, ctx):
        """Any control: the new value arrives in ``ctx.params['value']``.

        Controls inside a row (``panel.h_stack``) arrive with the row's name in
        front (``rates.prune_rate_2``, ``tagging.tag``): the setting is the last
        part, without the revision (see _set_rate), and the panel keeps its value
        under that flat name; it never writes at a control's own path.
        """
        path, _ = _control(ctx.params.get("path"))
        state = ctx.panel.state
        value = ctx.params.get("value")
        if path == "rate_typed" and _as_rate(value) is None:
            return  # cleared or half-typed: keep the current rate
        if path and state.get("last_control") != path:
            state.last_control = path  # which control the user is on (see the slider's focus)
        if path == "rate_typed":
            _set_rate(state, _as_rate(value), source="typed")
        elif path == "prune_rate":
            _set_rate(state, value)
        elif path:
            state.set(path, value)
        if path in ("score_field", "selection", "keep", "stratify", "label_field", "embeddings_field"):
            state.accuracy = None
        if path == "score_field":
            recorded = bridge.recorded_embeddings_fields(self._base(ctx), value)
            if recorded:
                state.embeddings_field = recorded[0]
        if path == "show_map" and value:
            state.map_pending = True
        if state.get("message") is not None:
            state.message = None
        if state.get("confirm_overwrite"):
            state.confirm_overwrite = False

    def on_show_kept(self, ctx):
        self._show(ctx, kept=True)

    def on_show_pruned(self, ctx):
        self._show(ctx, kept=False)

    def _show(self, ctx, kept):
        table = self._table(ctx)
        if table is None:
            return
        count = table.kept_count(ctx.panel.state.get("prune_rate", 50))
        make = bridge.kept_view if kept else bridge.pruned_view
        view = make(self._base(ctx), table.rank_field, kept=count)
        ctx.panel.state.shown_view = _serialize(view)
        ctx.ops.set_view(view=view)

    def on_tag_kept(self, ctx):
        state = ctx.panel.state
        tag = _text(state, _TAGGING, "tag", default="coreset")
        if not tag:
            state.message = "Enter a tag for the kept samples first."
            return
        table = self._table(ctx)
        count = table.kept_count(state.get("prune_rate", 50))
        try:
            done = bridge.tag_coreset(self._base(ctx), table.rank_field, tag, kept=count)
        except ValueError as error:
            state.message = str(error)
            return
        state.message = (
            f"Tagged the {count:,} kept samples '{done['tag']}' ({done['added']:,} did not have it); "
            f"undo with dataset.delete_run('{done['run_key']}')."
        )
        ctx.ops.reload_dataset()

    def on_save(self, ctx):
        state = ctx.panel.state
        name = _text(state, _SAVING, "view_name")
        if not name:
            state.message = "Enter a name for the saved view."
            return
        taken = ctx.dataset.has_saved_view(name)
        if taken and not state.get("confirm_overwrite"):
            state.confirm_overwrite = True
            state.message = f"A saved view named '{name}' exists. Press 'Overwrite' to replace it."
            return
        try:
            summary = bridge.save_coreset_view(
                self._base(ctx),
                state.get("score_field"),
                state.get("prune_rate", 50) / 100.0,
                name,
                keep=state.get("keep", "highest"),
                stratify_by=state.get("label_field") if state.get("stratify") else None,
                selection=state.get("selection"),
                embeddings_field=state.get("embeddings_field"),
                overwrite=taken,
            )
        except ValueError as error:
            state.message = f"Not saved: {error}"
            return
        state.confirm_overwrite = False
        state.message = f"Saved view '{name}': kept {summary['kept']:,}, pruned {summary['pruned']:,} (frozen)."
        ctx.ops.reload_dataset()

    def on_compute_order(self, ctx):
        """Computes the missing order right here (small collections)."""
        state = ctx.panel.state
        try:
            base = self._base(ctx)
            bridge.compute_coreset_order(base, state.get("score_field"), rank_field=_rank_field(base, state),
                                         **self._order_kwargs(state))
        except ValueError as error:
            state.message = f"No coreset order: {error}"
            return
        _CACHE.drop(ctx.dataset.name)
        state.message = None

    def on_compute_curve(self, ctx):
        state = ctx.panel.state
        table = self._table(ctx)
        try:
            state.accuracy = bridge.accuracy_curve(
                self._base(ctx), table.rank_field, state.get("embeddings_field"), state.get("label_field")
            )
        except ValueError as error:
            state.message = f"No accuracy curve: {error}"

    def on_compute_map(self, ctx):
        state = ctx.panel.state
        field = state.get("embeddings_field")
        try:
            with _MAP_LOCK:
                _CACHE.get((ctx.dataset.name, "map", field), lambda: bridge.embedding_map(ctx.dataset, field))
        except Exception as error:  # a failed map must not take the panel down with it
            state.message = f"No 2-D map: {type(error).__name__}: {error}"
            state.show_map = False
        state.map_pending = False

    # -- data --------------------------------------------------------------------------

    @staticmethod
    def _order_kwargs(state):
        return dict(
            selection=state.get("selection"),
            keep=state.get("keep", "highest"),
            stratify_by=state.get("label_field") if state.get("stratify") else None,
            embeddings_field=state.get("embeddings_field"),
        )

    def _table(self, ctx):
        """The sweep table of the current settings, or None when the order is still missing."""
        state = ctx.panel.state
        base = self._base(ctx)
        score_field, label_field = state.get("score_field"), state.get("label_field")
        kwargs = self._order_kwargs(state)

        def computed(rank_field):
            """The order computed on the spot into ``rank_field``, or None when the view is too large for that."""
            if base.exists(score_field).count() > AUTO_ORDER_LIMIT:
                return None
            bridge.compute_coreset_order(base, score_field, rank_field=rank_field, **kwargs)
            return bridge.find_order(base, score_field, **kwargs)

        def cached(found):
            key, config = found
            cache_key = (ctx.dataset.name, state.get("base_view"), key, config.get("token"), label_field)
            return _CACHE.get(cache_key, lambda: self._load(base, config, label_field))

        # Whether the order is still exact is checked once per setting (it reads every score:
        # 1.4 s at 1M samples); slider moves reuse the answer until Refresh or a dataset change.
        order_key = (ctx.dataset.name, "order", state.get("base_view"), score_field, repr(sorted(kwargs.items())))
        found = _CACHE.get(order_key, lambda: bridge.find_order(base, score_field, **kwargs))
        if found is None:
            found = computed(_rank_field(base, state))
            if found is None:
                return None
            _CACHE.put(order_key, found)
        table = cached(found)
        if table is None:  # an outdated order: computed again in its own field, where it is small enough
            _CACHE.drop(ctx.dataset.name)
            found = computed(bridge.unpinned_rank_field(base, found[1]["rank_field"]))
            table = None if found is None else cached(found)
        return table

    @staticmethod
    def _load(base, config, label_field):
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
            labels = np.array(["" if v is None else str(v) for v in columns[paths[2]]], dtype=object)[ranked]
            classes, codes = np.unique(labels, return_inverse=True)
        table = SweepTable(config["rank_field"], config["selection"], scores, ranks[ranked],
                           int((~ranked).sum()), classes, codes)
        table.ids = ids[ranked]
        table.warning = _reliability_warning(base, config["score_field"])
        return table

    # -- render ------------------------------------------------------------------------

    def render(self, ctx):
        start = time.perf_counter()
        panel = types.Object()
        state = ctx.panel.state
        base = self._base(ctx)
        fields = bridge.score_fields(base)
        layout = types.GridView(orientation="vertical", padding=2, gap=2)
        if not fields:
            panel.md(
                "### No score field yet\n"
                "Compute ZCore scores first: they need only an embeddings field "
                "(compute embeddings with the *Compute embeddings* operator if you have none).",
                name="empty",
            )
            panel.btn("open_zcore", label="Compute ZCore scores", icon="calculate", variant="contained",
                      on_click=f"{PLUGIN}/compute_zcore_scores", prompt=True)
            return types.Property(panel, view=layout)

        panel.md(f"Sweeping {state.get('base_label') or _describe(base)}.", name="sweeping")
        if state.get("message"):
            panel.view("message", types.Notice(label=state.get("message")))
        if state.get("stale_views"):
            panel.view("stale_warning", types.Warning(
                label="Stale saved coreset views",
                description="These no longer hold the samples they were saved with (samples were deleted or the "
                "view was changed): " + ", ".join(state.get("stale_views")) + ". Save them again to refresh them.",
            ))
        self._controls(panel, ctx, fields)
        try:
            table = self._table(ctx)
        except ValueError as error:
            panel.view("error", types.Error(label="Cannot build the coreset", description=str(error)))
            return types.Property(panel, view=layout)
        if table is None:
            panel.view("no_order", types.Warning(
                label="No coreset order for these settings yet",
                description=f"'{state.get('selection')}' on {base.exists(state.get('score_field')).count():,} "
                "samples is computed once (it can take minutes); every pruning rate then is instant.",
            ))
            panel.btn("compute_order", label="Compute coreset order", icon="calculate", variant="contained",
                      on_click=f"{PLUGIN}/compute_coreset_order", prompt=True,
                      params=dict(score_field=state.get("score_field"), **self._order_kwargs(state)))
            return types.Property(panel, view=layout)

        rate = state.get("prune_rate", 50)
        mask = table.mask(rate)
        kept = int(mask.sum())
        threshold = None
        if table.selection == "top" and kept:
            threshold = float(table.scores[table.by_rank[kept - 1]])
        summary = (
            f"**Kept {kept:,}** · pruned {len(mask) - kept:,} of {len(mask):,} scored samples"
            + (f" · score threshold {threshold:.4f}" if threshold is not None else "")
            + (f" · {table.unscored:,} without a score (ignored)" if table.unscored else "")
        )
        if not js_slider.enabled():  # [issue 21 hook] the JS slider draws the count
            panel.md(summary, name="summary")
        note = _selection_note(table.selection)
        if note:
            panel.md(note, name="selection_note")
        if table.warning:
            panel.view("reliability", types.Warning(label="Unreliable scores", description=table.warning))
        if not js_slider.enabled():  # [issue 21 hook] the JS slider draws the histogram and class bars
            panel.plot("histogram", **_histogram(table, mask, threshold, state.get("score_field")))
        if table.codes is not None and not js_slider.enabled():  # [issue 21 hook]
            panel.plot("classes", **_class_bars(table.classes, table.codes, mask))
        self._map(panel, ctx, table, mask)
        self._curve(panel, ctx)
        self._actions(panel, state)
        if ctx.params.get("__method__") != "on_change_view":
            # Not on on_change_view: a state write there would fire on_change_view again, forever.
            state.render_ms = round((time.perf_counter() - start) * 1000, 1)
        return types.Property(panel, view=layout)

    def _controls(self, panel, ctx, fields):
        state = ctx.panel.state
        on_change = self.on_change_setting
        base = self._base(ctx)
        panel.enum("score_field", fields, label="Score field", default=state.get("score_field"),
                   view=types.DropdownView(), on_change=on_change)
        # The slider and the typed box are named after their revision (see _set_rate); each shows
        # the rate it was created with, as its default.
        rate = state.get("prune_rate", 50)
        if js_slider.enabled():  # [issue 21 hook] the JS slider (panels/slider.py): slider, typed rate, count
            js_slider.add(panel, ctx, self)
        else:  # [issue 21 hook] the Python slider and typed box (CORESET_JS_SLIDER=0 or no bundle)
            rates = panel.h_stack(_RATES, align_x="left", align_y="center", gap=2)
            slider = {"min": 0, "max": 99, "step": 1, "sx": {"mt": 3}}  # room for the value above the thumb
            if state.get("last_control") not in ("rate_typed", "tag", "view_name"):
                # The App re-creates the slider whenever its value changes, which drops the keyboard
                # focus after each key press: the new one takes the focus back, unless the user is
                # typing into a box (which would lose it).
                slider["slotProps"] = {"input": {"autoFocus": True}}
            rates.int(
                f"prune_rate_{int(state.get('slider_rev') or 0)}", label="Pruning rate (%)", default=rate,
                min=0, max=99, on_change=on_change,
                view=types.SliderView(label_position="top", value_precision=0,
                                      componentsProps={"slider": slider, "item": {"sx": {"width": 360}}}),
            )
            rates.int(f"rate_typed_{int(state.get('typed_rev') or 0)}", label="or type it", default=rate,
                      min=0, max=99, view=types.FieldView(), on_change=on_change)
        panel.enum("keep", list(bridge.KEEP), label="Keep", default=state.get("keep", "highest"),
                   view=types.RadioView(orientation="horizontal"), on_change=on_change)
        panel.enum("selection", list(bridge.SELECTIONS), label="Selection", default=state.get("selection"),
                   view=types.DropdownView(), on_change=on_change)
        labels = bridge.classification_fields(base)
        if labels:
            panel.enum("label_field", labels, label="Label field", default=state.get("label_field"),
                       view=types.DropdownView(), on_change=on_change)
            panel.bool("stratify", label="Stratify by class", default=bool(state.get("stratify")),
                       view=types.SwitchView(), on_change=on_change)
        vectors = bridge.vector_fields(base)
        if vectors:
            panel.enum("embeddings_field", vectors, label="Embeddings (map, coverage-aware selections, curve)",
                       default=state.get("embeddings_field"), view=types.DropdownView(), on_change=on_change)
            panel.bool("show_map", label="Show 2-D map", default=bool(state.get("show_map")),
                       view=types.SwitchView(), on_change=on_change)

    def _map(self, panel, ctx, table, mask):
        state = ctx.panel.state
        field = state.get("embeddings_field")
        if not (state.get("show_map") and field):
            return
        key = (ctx.dataset.name, "map", field)
        if key not in _CACHE.entries:
            # The App shows a LoadingView's ``text`` (default "Loading"), not its label.
            panel.view("map_loading", types.LoadingView(
                text=f"Computing the 2-D map of '{field}' (UMAP, once per field; can take a minute)"))
            panel.view("map_timer", types.TimerView(timeout=50, on_timeout=self.on_compute_map))
            return
        points = _CACHE.get(key, lambda: None)
        rows = table.map_rows.get(field)
        if rows is None:  # once per table and field
            rows = np.fromiter((points.index.get(str(i), -1) for i in table.ids), dtype=np.int64, count=len(table.ids))
            table.map_rows[field] = rows
        shown = np.flatnonzero(rows >= 0)
        if len(shown) > _MAP_POINTS:
            shown = shown[np.linspace(0, len(shown) - 1, _MAP_POINTS).astype(int)]
        xy = points.xy[rows[shown]]
        kept = mask[shown]
        data = plot_parts.map_traces(xy, kept, table.ids[shown])  # [issue 21 hook]
        layout = dict(title=_title(f"2-D map of '{field}' ({points.method})"), height=360,
                      margin=dict(t=40, b=20, l=20, r=20), xaxis=dict(visible=False), yaxis=dict(visible=False),
                      **_LEGEND, **plot_parts.MAP_LAYOUT)  # [issue 21 hook]
        panel.plot("map", data=data, layout=layout, config=_PLOT_CONFIG,
                   on_selected=self.on_map_selected)  # [issue 21 hook]

    def _curve(self, panel, ctx):
        state = ctx.panel.state
        if not (state.get("label_field") and state.get("embeddings_field")):
            return
        curve = state.get("accuracy")
        if curve:
            panel.plot("accuracy_plot", config=_PLOT_CONFIG, **plot_parts.accuracy_plot(  # [issue 21 hook]
                curve, int(state.get("prune_rate", 50)),
                f"Estimated accuracy vs pruning rate (linear probe, {curve['held_out']} held-out samples)"))
        panel.btn("compute_curve", label="Estimate accuracy vs pruning rate", icon="show_chart",
                  on_click=self.on_compute_curve)

    def _actions(self, panel, state):
        show = panel.h_stack("show", align_x="left", gap=1)
        show.btn("show_kept", label="Show kept", icon="visibility", on_click=self.on_show_kept)
        show.btn("show_pruned", label="Show pruned", icon="visibility_off", on_click=self.on_show_pruned)
        show.btn("sweep_current", label="Sweep the App's current view", icon="sync", on_click=self.on_sweep_current_view)
        show.btn("refresh", label="Refresh", icon="refresh", on_click=self.on_refresh)
        tag = panel.h_stack(_TAGGING, align_x="left", align_y="center", gap=1)
        tag.str("tag", label="Tag", default=_text(state, _TAGGING, "tag", default=_CONTROL_DEFAULTS["tag"]),
                on_change=self.on_change_setting)
        tag.btn("tag_kept", label="Tag kept", icon="sell", on_click=self.on_tag_kept)
        save = panel.h_stack(_SAVING, align_x="left", align_y="center", gap=1)
        save.str("view_name", label="Saved view name", default=state.get("view_name"), on_change=self.on_change_setting)
        label = "Overwrite" if state.get("confirm_overwrite") else "Save as view"
        save.btn("save", label=label, icon="save", variant="contained", on_click=self.on_save)


def _rank_field(base, state):
    """Where the panel writes the order it computes: the default rank field for the dataset,
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


def _text(state, row, name, default=""):
    """A text box's value: the App's own copy (``<row>.<name>``, current even when a button
    click overtakes the box's debounced change event), else the panel's, else ``default``."""
    for key in (f"{row}.{name}", name):
        value = state.get(key)
        if value is not None:
            return str(value).strip()
    return default


def _selection_note(selection):
    if selection in bridge.EMBEDDING_SELECTIONS:
        return (f"*{selection}*: coverage-aware, driven by the embeddings; the score only breaks ties. "
                "Pick *top* to keep the best scores.")
    return None


def _reliability_warning(collection, score_field):
    from ..bridge import runs

    owner = runs.owner_of(internals.root_dataset(collection), score_field)
    if owner is None or owner[1].get("method") != runs.ZCORE:
        return None
    summary = None
    try:
        summary = internals.root_dataset(collection).load_run_results(owner[0], load_view=False).summary
    except Exception:
        return None
    return summary.get("warning") if summary else None


def _histogram(table, mask, threshold, field):
    kept_counts = np.bincount(table.bins[mask], minlength=_BINS).tolist()
    pruned_counts = np.bincount(table.bins[~mask], minlength=_BINS).tolist()
    centres = ((table.edges[:-1] + table.edges[1:]) / 2).tolist()
    shapes = []
    if threshold is not None:
        shapes.append(dict(type="line", x0=threshold, x1=threshold, yref="paper", y0=0, y1=1,
                           line=dict(color="#d32f2f", width=2, dash="dash")))
    title = f"'{field}' histogram" + (" (cut dashed)" if threshold is not None else "")
    return dict(
        data=[
            dict(type="bar", name="kept", x=centres, y=kept_counts, marker=dict(color=_KEPT)),
            dict(type="bar", name="pruned", x=centres, y=pruned_counts, marker=dict(color=_PRUNED)),
        ],
        layout=dict(title=_title(title), barmode="stack", height=260, shapes=shapes,
                    margin=dict(t=40, b=30, l=40, r=20), bargap=0.05, **_LEGEND),
        config=_PLOT_CONFIG,
    )


def _class_bars(classes, codes, mask):
    totals = np.bincount(codes, minlength=len(classes))
    kept = np.bincount(codes[mask], minlength=len(classes))
    names = [c if c else "(no label)" for c in classes.tolist()]
    return dict(
        data=[
            dict(type="bar", name="all", x=names, y=totals.tolist(), marker=dict(color=_PRUNED)),
            dict(type="bar", name="kept", x=names, y=kept.tolist(), marker=dict(color=_KEPT)),
        ],
        layout=dict(title=_title("Class balance: kept vs all"), barmode="overlay", height=240,
                    margin=dict(t=40, b=40, l=40, r=20), xaxis=dict(type="category"), **_LEGEND),
        config=_PLOT_CONFIG,
    )
