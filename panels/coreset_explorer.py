"""Coreset Explorer: sweep the pruning rate, see what is kept, save coreset views.

The panel sweeps the view it was opened on (its *base*): showing the kept or
pruned samples in the grid does not re-base it, and it says what it sweeps.
Every selection is a coreset order: a slider move is a threshold on the ranks
held in memory. Browsing writes nothing: orders the user only looks at are
computed in memory (:mod:`.orders`); a rank field and its run are written when
the user saves a view, tags or computes the order.

This module wires the panel to the App (events, layout); the parts live in
:mod:`.state` (state keys, percent, one patch per event), :mod:`.cache` (the
plugin's cache), :mod:`.orders` (the order policy), :mod:`.plots` and
:mod:`.actions`.
"""

import os
import time

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .. import bridge
from ..core import maps as core_maps
from ..core import order as core_order
from . import actions, background, cache, orders, plots
from .state import (
    CONTROL_DEFAULTS,
    DEFAULT_PERCENT,
    MAX_PERCENT,
    MIN_PERCENT,
    ORDER_SETTINGS,
    RATES,
    SAVING,
    SHOW,
    TAGGING,
    Repeats,
    base_of,
    control,
    describe,
    format_percent,
    ignored,
    parse_percent,
    percent_for_kept,
    rebase,
    say,
    serialize,
    set_rate,
    state_of,
    text,
)
from . import duplicates  # near-duplicates line and "Show duplicates" (panels/duplicates.py)
from . import slider as js_slider  # the JS slider (js/, panels/slider.py)

PLUGIN = bridge.PLUGIN
#: how often a busy order's progress is redrawn (ms)
BUSY_TICK_MS = 700
_REPEATS = Repeats()
#: events that run before the panel knows its base (no view check first)
_FIRST_EVENTS = (None, "on_startup", "on_load", "on_change_view", "on_change_dataset", "on_sweep_current_view")


class CoresetExplorer(js_slider.SliderEvents, plots.PlotEvents, foo.Panel):
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

    # -- events ----------------------------------------------------------------------

    def execute(self, ctx):
        """``foo.Panel.execute`` with the event's state writes sent as one patch (see :class:`.state.BufferedState`)."""
        method = ctx.params.get("__method__")
        if method == "on_change_view" and ctx.panel.state.get("view_key") == serialize(ctx.view):
            return None  # the view did not change: nothing to redraw
        # The App sends some control changes twice at once (same value, same panel state), and
        # reports a new control's initial value as a change (see state.set_rate): neither changes a
        # setting, and redrawing for them would only slow the next slider move down.
        if method == "on_change_setting" and (ignored(ctx) or _REPEATS.seen(ctx)):
            return None
        if method in (None, "on_startup"):
            return self.on_startup(ctx)
        state = state_of(ctx)
        if method not in _FIRST_EVENTS and state.get("view_key") is not None:
            self.on_change_view(ctx)  # the App's view may have changed since the last event
        ctx.event_args = ctx.params.get("event_args", {})
        result = getattr(self, method)(ctx) if hasattr(self, method) else None
        output = self.render(ctx)
        state.flush()
        ctx.ops.show_panel_output(output)
        return result

    def on_load(self, ctx):
        state = state_of(ctx)
        bridge.recover(ctx.dataset)
        state.stale_views = [
            f"'{v['view_name']}' (saved with {v['kept']:,}, now {'gone' if v['count'] is None else format(v['count'], ',')})"
            for v in bridge.coreset_views(ctx.dataset) if v["stale"]
        ]
        if state.get("base_view") is None:
            rebase(ctx, state)
        base = base_of(ctx, state)
        fields = cache.score_fields(base)
        if state.get("score_field") not in fields:
            state.score_field = cache.default_score_field(base)
        defaults = dict(prune_rate=DEFAULT_PERCENT, keep="highest", selection=bridge.DEFAULT_SELECTION,
                        stratify=False, show_map=False)
        for key, value in defaults.items():
            if state.get(key) is None:
                state.set(key, value)
        labels = bridge.classification_fields(base)
        if state.get("label_field") not in labels:
            state.label_field = labels[0] if labels else None
        vectors = bridge.vector_fields(base)
        if vectors and os.environ.get("CORESET_MAP_WARM_UP", "1") != "0":
            core_maps.warm_up()  # so that a first 2-D map waits for its layout, not for UMAP's compiler
        if state.get("embeddings_field") not in vectors:
            recorded = bridge.recorded_embeddings_fields(base, state.get("score_field")) if state.get("score_field") else None
            state.embeddings_field = (recorded or vectors or [None])[0]

    def on_change_view(self, ctx):
        state = state_of(ctx)
        key = serialize(ctx.view)
        if state.get("view_key") == key:
            return
        state.view_key = key
        if key in (state.get("shown_view"), state.get("base_view")):
            return  # our own Show kept/pruned, or back to the base: keep sweeping the base
        rebase(ctx, state)
        say(state, f"The App's view changed: now sweeping {state.get('base_label')}.")
        self.on_load(ctx)

    def on_change_dataset(self, ctx):
        cache.drop(ctx.dataset.name)
        state = state_of(ctx)
        state.set(dict(base_view=None, accuracy=None))
        say(state, None)
        self.on_load(ctx)

    def on_refresh(self, ctx):
        cache.drop(ctx.dataset.name)
        state_of(ctx).accuracy = None
        self.on_load(ctx)

    def on_sweep_current_view(self, ctx):
        state = state_of(ctx)
        rebase(ctx, state)
        say(state, f"Now sweeping {state.get('base_label')}.", SHOW)
        self.on_load(ctx)

    def on_change_setting(self, ctx):
        """Any control: the new value arrives in ``ctx.params['value']``.

        Controls inside a row (``panel.h_stack``) arrive with the row's name in
        front (``rates.prune_rate_2``, ``tagging.tag``): the setting is the last
        part, without the revision (see state.set_rate), and the panel keeps its
        value under that flat name; it never writes at a control's own path.
        """
        path, _ = control(ctx.params.get("path"))
        state = state_of(ctx)
        value = ctx.params.get("value")
        if path and state.get("last_control") != path:
            state.last_control = path  # which control the user is on (see the slider's focus)
        message = None
        if path in ("prune_rate", "rate_typed", "keep_count"):
            if path == "keep_count":
                table = orders.table(ctx.dataset.name, base_of(ctx, state), state)
                percent, message = percent_for_kept(value, len(table.ranks)) if table else (None, None)
            else:
                percent, message = parse_percent(value)
            if percent is None:
                say(state, message, RATES)
                return
            set_rate(state, percent, {"prune_rate": "slider", "rate_typed": "typed", "keep_count": "count"}[path])
            actions.follow(ctx, state)
        elif path:
            state.set(path, value)
        if path in ORDER_SETTINGS:
            state.accuracy = None
            actions.follow(ctx, state)  # a grid showing the kept samples shows the new order's
        if path == "score_field":
            recorded = bridge.recorded_embeddings_fields(base_of(ctx, state), value)
            if recorded:
                state.embeddings_field = recorded[0]
        if path == "show_map" and value:
            state.map_pending = True
        if message is not None:
            say(state, message, RATES)  # the clamp, next to the rate
        elif state.get("message") is not None:
            say(state, None)
        if state.get("confirm_overwrite"):
            state.confirm_overwrite = False

    def on_show_kept(self, ctx):
        actions.show(ctx, state_of(ctx), kept=True)

    def on_show_pruned(self, ctx):
        actions.show(ctx, state_of(ctx), kept=False)

    def on_show_duplicates(self, ctx):  # near-duplicates (panels/duplicates.py)
        state = state_of(ctx)
        duplicates.show(ctx, base_of(ctx, state), state)

    def on_tag_kept(self, ctx):
        actions.tag_kept(ctx, state_of(ctx))

    def on_save(self, ctx):
        actions.save(ctx, state_of(ctx))

    def on_compute_order(self, ctx):
        """Computes and stores the missing order right here."""
        actions.compute_order(ctx, state_of(ctx))

    def on_compute_curve(self, ctx):
        """The button: the render shows the curve's busy state, whose timer computes it (:meth:`on_curve_now`)."""
        state_of(ctx).curve_pending = True

    def on_curve_now(self, ctx):
        actions.compute_curve(ctx, state_of(ctx))

    def on_background_tick(self, ctx):
        """The timer of the runs in the background (:mod:`.background`): a landed run's field is offered at once."""
        if background.tick(ctx, state_of(ctx)):
            self.on_load(ctx)

    def on_cancel_background(self, ctx):
        background.cancel(ctx, state_of(ctx), ctx.params.get("run_id"))

    def on_order_progress(self, ctx):
        """A tick of the busy order's timer: the render redraws its progress, or the order once it is ready;
        a grid showing the kept samples follows it then."""
        state = state_of(ctx)
        if state.get("follow_pending"):
            actions.follow(ctx, state)

    def on_compute_map(self, ctx):
        actions.compute_map(ctx, state_of(ctx))

    # -- render ------------------------------------------------------------------------

    def render(self, ctx):
        start = time.perf_counter()
        panel = types.Object()
        state = state_of(ctx)
        base = base_of(ctx, state)
        fields = cache.score_fields(base)
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
            # a run scheduled from here lands here
            background.render(panel, ctx, state, self.on_background_tick, self.on_cancel_background, watch=True)
            return types.Property(panel, view=layout)

        panel.md(f"Sweeping {state.get('base_label') or describe(base)}.", name="sweeping")
        background.render(panel, ctx, state, self.on_background_tick, self.on_cancel_background)
        _notice(panel, state, None)
        if state.get("stale_views"):
            panel.view("stale_warning", types.Warning(
                label="Stale saved coreset views",
                description="These no longer hold the samples they were saved with (samples were deleted or the "
                "view was changed): " + ", ".join(state.get("stale_views")) + ". Save them again to refresh them.",
            ))
        try:
            table = orders.table(ctx.dataset.name, base, state, wait=orders.BUSY_AFTER_S)
        except ValueError as error:
            self._controls(panel, ctx, fields, None)
            panel.view("error", types.Error(label="Cannot build the coreset", description=str(error)))
            return types.Property(panel, view=layout)
        if isinstance(table, orders.Busy):
            self._controls(panel, ctx, fields, None)
            panel.view("order_busy", types.LoadingView(text=table.describe()))
            panel.view("order_timer", types.TimerView(interval=BUSY_TICK_MS, on_interval=self.on_order_progress))
            return types.Property(panel, view=layout)
        self._controls(panel, ctx, fields, table)
        if table is None:
            panel.view("no_order", types.Warning(
                label="No coreset order for these settings yet",
                description=f"'{state.get('selection')}' on {base.exists(state.get('score_field')).count():,} "
                f"samples (more than {orders.AUTO_ORDER_LIMIT:,}) is computed once on request (it can take "
                "minutes) and stored; every pruning rate then is instant.",
            ))
            panel.btn("compute_order", label="Compute coreset order", icon="calculate", variant="contained",
                      on_click=f"{PLUGIN}/compute_coreset_order", prompt=True,
                      params=dict(score_field=state.get("score_field"), **orders.order_kwargs(state)))
            _notice(panel, state, "order")
            return types.Property(panel, view=layout)

        percent = state.get("prune_rate", DEFAULT_PERCENT)
        mask = table.mask(percent)
        kept = int(mask.sum())
        threshold = None
        if table.selection == "top" and kept:
            threshold = float(table.scores[table.by_rank[kept - 1]])
        summary = (
            f"**Kept {kept:,}** · pruned {len(mask) - kept:,} of {len(mask):,} scored samples "
            f"at {format_percent(percent)} %"
            + (f" · score threshold {threshold:.4f}" if threshold is not None else "")
            + (f" · {table.unscored:,} without a score (ignored)" if table.unscored else "")
            + ("" if table.rank_field else " · order in memory (nothing written until you save or tag)")
        )
        if not js_slider.enabled():  # the JS slider draws the count, the histogram and the class bars
            panel.md(summary, name="summary")
        note = _selection_note(table.selection)
        if note:
            panel.md(note, name="selection_note")
        if not js_slider.enabled():
            panel.plot("histogram", **plots.histogram(table, mask, threshold, state.get("score_field")))
            if table.codes is not None:
                panel.plot("classes", **plots.class_bars(table.classes, table.codes, mask))
        self._map(panel, ctx, table, mask)
        self._curve(panel, ctx)
        self._actions(panel, state)
        duplicates.render(panel, base, self.on_show_duplicates)  # near-duplicates (panels/duplicates.py)
        _notice(panel, state, "duplicates")
        if ctx.params.get("__method__") != "on_change_view":
            # Not on on_change_view: a state write there would fire on_change_view again, forever.
            state.set(dict(kept=kept, render_ms=round((time.perf_counter() - start) * 1000, 1)))
        return types.Property(panel, view=layout)

    def _controls(self, panel, ctx, fields, table):
        state = state_of(ctx)
        on_change = self.on_change_setting
        base = base_of(ctx, state)
        panel.enum("score_field", fields, label="Score field", default=state.get("score_field"),
                   view=types.DropdownView(), on_change=on_change)
        # The slider and the typed boxes are named after their revision (see state.set_rate); each
        # shows the rate it was created with, as its default.
        percent = state.get("prune_rate", DEFAULT_PERCENT)
        if js_slider.enabled():  # slider, typed rate and kept count drawn in the browser (panels/slider.py)
            js_slider.add(panel, ctx, self, table)
        rates = panel.h_stack(RATES, align_x="left", align_y="center", gap=2)
        if not js_slider.enabled():  # the Python slider (CORESET_JS_SLIDER=0 or no bundle)
            slider = {"min": MIN_PERCENT, "max": MAX_PERCENT, "step": 1, "sx": {"mt": 3}}  # room for the value
            if state.get("last_control") not in ("rate_typed", "keep_count", "tag", "view_name"):
                # The App re-creates the slider whenever its value changes, which drops the keyboard
                # focus after each key press: the new one takes the focus back, unless the user is
                # typing into a box (which would lose it).
                slider["slotProps"] = {"input": {"autoFocus": True}}
            rates.int(
                f"prune_rate_{int(state.get('slider_rev') or 0)}", label="Pruning rate (%)", default=round(percent),
                min=MIN_PERCENT, max=MAX_PERCENT, on_change=on_change,
                view=types.SliderView(label_position="top", value_precision=0,
                                      componentsProps={"slider": slider, "item": {"sx": {"width": 360}}}),
            )
            rates.str(f"rate_typed_{int(state.get('typed_rev') or 0)}", label="or type it (%)",
                      default=format_percent(percent), view=types.FieldView(), on_change=on_change)
        if table is not None:
            rates.str(f"keep_count_{int(state.get('count_rev') or 0)}", label="or keep N samples",
                      default=str(table.kept_count(percent)), view=types.FieldView(), on_change=on_change)
        _notice(panel, state, RATES)
        warning = cache.score_warning(base, state.get("score_field")) if state.get("score_field") else None
        if warning:  # next to the slider: how far to trust the scores it sweeps
            panel.view("reliability", types.Warning(label="Check these scores", description=warning))
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
        state = state_of(ctx)
        field = state.get("embeddings_field")
        if not (state.get("show_map") and field):
            return
        points = cache.CACHE.peek((ctx.dataset.name, "map", field))
        if points is None:
            # The App shows a LoadingView's ``text`` (default "Loading"), not its label.
            panel.view("map_loading", types.LoadingView(
                text=f"Computing the 2-D map of '{field}' (UMAP, once per field; can take a minute)"))
            panel.view("map_timer", types.TimerView(timeout=50, on_timeout=self.on_compute_map))
            return
        panel.plot("map", **plots.embedding_map(table, points, mask, field), on_selected=self.on_map_selected,
                   on_click=self.on_map_clicked)
        if state.get("map_preview"):
            plots.map_preview(panel, ctx.dataset, table, mask, state.get("map_preview"),
                              state.get("prune_rate", DEFAULT_PERCENT))
        _notice(panel, state, "map")

    def _curve(self, panel, ctx):
        state = state_of(ctx)
        if not (state.get("label_field") and state.get("embeddings_field")):
            return
        if state.get("curve_pending"):
            panel.view("curve_loading", types.LoadingView(
                text="Estimating accuracy vs pruning rate (a linear probe per rate, on the kept samples)"))
            panel.view("curve_timer", types.TimerView(timeout=50, on_timeout=self.on_curve_now))
            return
        curve = state.get("accuracy")
        if curve:
            panel.plot("accuracy_plot", **plots.accuracy_curve(curve, state.get("prune_rate", DEFAULT_PERCENT)))
        panel.btn("compute_curve", label="Estimate accuracy vs pruning rate", icon="show_chart",
                  on_click=self.on_compute_curve)
        _notice(panel, state, "curve")

    def _actions(self, panel, state):
        show = panel.h_stack(SHOW, align_x="left", gap=1)
        show.btn("show_kept", label="Show kept", icon="visibility", on_click=self.on_show_kept)
        show.btn("show_pruned", label="Show pruned", icon="visibility_off", on_click=self.on_show_pruned)
        show.btn("sweep_current", label="Sweep the App's current view", icon="sync", on_click=self.on_sweep_current_view)
        show.btn("refresh", label="Refresh", icon="refresh", on_click=self.on_refresh)
        show.btn("delete_runs", label="Delete coreset runs", icon="delete", on_click=f"{PLUGIN}/delete_coreset_runs",
                 prompt=True)
        _notice(panel, state, SHOW)
        tag = panel.h_stack(TAGGING, align_x="left", align_y="center", gap=1)
        tag.str("tag", label="Tag", default=text(state, TAGGING, "tag", default=CONTROL_DEFAULTS["tag"]),
                on_change=self.on_change_setting)
        tag.btn("tag_kept", label="Tag kept", icon="sell", on_click=self.on_tag_kept)
        _notice(panel, state, TAGGING)
        save = panel.h_stack(SAVING, align_x="left", align_y="center", gap=1)
        save.str("view_name", label="Saved view name", default=state.get("view_name"), on_change=self.on_change_setting)
        label = "Overwrite" if state.get("confirm_overwrite") else "Save as view"
        save.btn("save", label=label, icon="save", variant="contained", on_click=self.on_save)
        _notice(panel, state, SAVING)


def _notice(panel, state, at):
    """The panel's message, where it belongs: next to the control that caused it (``at``)."""
    if state.get("message") and state.get("message_at") == at:
        panel.view("message", types.Notice(label=state.get("message")))


def _selection_note(selection):
    if selection not in core_order.ORDERS:
        return None
    note = f"*{selection}* uses: {core_order.order_uses(selection)}."
    return note + (" Pick *top* to keep the best scores." if selection in bridge.EMBEDDING_SELECTIONS else "")

