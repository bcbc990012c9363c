"""Coreset Explorer: sweep the pruning rate, see what is kept, save coreset views."""

import threading
import time
from collections import OrderedDict

import numpy as np

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .. import bridge

PLUGIN = bridge.PLUGIN
_MAP_POINTS = 5_000
_BINS = 40
_CACHE_SIZE = 8
_KEPT, _PRUNED = "#ff6d04", "#9e9e9e"
# The App's plotly.js (3.x) ignores string titles and hides legends unless asked.
_LEGEND = dict(showlegend=True, legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"))


def _title(text):
    return dict(text=text, x=0.01, xanchor="left", font=dict(size=14))


class _SweepCache:
    """Recently used score tables, so a slider move runs no database query."""

    def __init__(self, size=_CACHE_SIZE):
        self.size = size
        self.entries = OrderedDict()

    def get(self, key, build):
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        value = build()
        self.entries[key] = value
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return value

    def drop(self, dataset_name):
        for key in [k for k in self.entries if k[0] == dataset_name]:
            del self.entries[key]


_CACHE = _SweepCache()
# The App can send the same event twice at once; one UMAP per field, not two racing ones.
_MAP_LOCK = threading.Lock()


def _view_key(ctx):
    return str(ctx.view._serialize())


def _set(state, key, value):
    """Writes panel state only when it changes: every write is a round trip to the App,
    and the App answers a state change with ``on_change_view`` events."""
    if state.get(key) != value:
        state.set(key, value)


class CoresetExplorer(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="coreset_explorer",
            label="Coreset Explorer",
            category=foo.Categories.CURATE,
            icon="filter_alt",
            help_markdown="Sweep the pruning rate of a score field and save the kept samples as a view.",
        )

    # -- events ------------------------------------------------------------

    def on_load(self, ctx):
        state = ctx.panel.state
        fields = bridge.numeric_fields(ctx.view)
        if state.get("score_field") not in fields:
            ctx.panel.state.score_field = fields[0] if fields else None
        defaults = dict(prune_rate=50, keep="highest", selection="top", stratify=False, show_map=False)
        for key, value in defaults.items():
            if state.get(key) is None:
                ctx.panel.state.set(key, value)
        labels = bridge.classification_fields(ctx.view)
        if state.get("label_field") not in labels:
            ctx.panel.state.label_field = labels[0] if labels else None
        vectors = bridge.vector_fields(ctx.view)
        if state.get("embeddings_field") not in vectors:
            # Prefer sample-level fields: the flat schema also lists label attributes such as
            # 'ground_truth.logits', which sort first but are usually empty.
            top_level = [v for v in vectors if "." not in v]
            ctx.panel.state.embeddings_field = (top_level or vectors or [None])[0]

    def execute(self, ctx):
        # The App answers every panel state change with on_change_view events (three per
        # change, view unchanged): skip those, render included, instead of redrawing each time.
        if ctx.params.get("__method__") == "on_change_view" and ctx.panel.state.get("view_key") == _view_key(ctx):
            return None
        return super().execute(ctx)

    def on_change_view(self, ctx):
        # The App fires this whenever its context objects are rebuilt (e.g. after any panel
        # state change), not only when the view changes: act only on a real change.
        key = _view_key(ctx)
        if ctx.panel.state.get("view_key") == key:
            return
        _set(ctx.panel.state, "view_key", key)
        _set(ctx.panel.state, "message", None)
        self.on_load(ctx)

    def on_change_dataset(self, ctx):
        _CACHE.drop(ctx.dataset.name)
        ctx.panel.state.curve = None
        ctx.panel.state.message = None
        self.on_load(ctx)

    def on_refresh(self, ctx):
        _CACHE.drop(ctx.dataset.name)
        ctx.panel.state.curve = None
        self.on_load(ctx)

    def on_change_setting(self, ctx):
        """Any control: the new value arrives in ``ctx.params['value']``."""
        path = ctx.params.get("path")
        state = ctx.panel.state
        if path:
            _set(state, path, ctx.params.get("value"))
        _set(state, "message", None)
        _set(state, "confirm_overwrite", False)

    def on_show_kept(self, ctx):
        kept, _ = self._selection(ctx)
        ctx.ops.set_view(view=ctx.view.select(kept))

    def on_show_pruned(self, ctx):
        _, pruned = self._selection(ctx)
        ctx.ops.set_view(view=ctx.view.select(pruned))

    def on_tag_kept(self, ctx):
        tag = (ctx.panel.state.get("tag") or "coreset").strip()
        kept, _ = self._selection(ctx)
        ctx.view.select(kept).tag_samples(tag)
        ctx.panel.state.message = f"Tagged {len(kept)} kept samples '{tag}'."
        ctx.ops.reload_samples()

    def on_save(self, ctx):
        state = ctx.panel.state
        name = (state.get("view_name") or "").strip()
        if not name:
            state.message = "Enter a name for the saved view."
            return
        taken = ctx.dataset.has_saved_view(name)
        if taken and not state.get("confirm_overwrite"):
            state.confirm_overwrite = True
            state.message = f"A saved view named '{name}' exists. Press 'Overwrite' to replace it."
            return
        summary = bridge.save_coreset_view(
            ctx.view,
            state.get("score_field"),
            state.get("prune_rate", 50) / 100.0,
            name,
            keep=state.get("keep", "highest"),
            stratify_by=state.get("label_field") if state.get("stratify") else None,
            selection=state.get("selection", "top"),
            embeddings_field=state.get("embeddings_field"),
            overwrite=taken,
        )
        state.confirm_overwrite = False
        state.message = f"Saved view '{name}': kept {summary['kept']}, pruned {summary['pruned']}."

    def on_compute_curve(self, ctx):
        state = ctx.panel.state
        curve = bridge.accuracy_curve(
            ctx.view,
            state.get("score_field"),
            state.get("embeddings_field"),
            state.get("label_field"),
            keep=state.get("keep", "highest"),
            selection=state.get("selection", "top"),
            stratify=bool(state.get("stratify")),
        )
        state.curve = curve

    # -- data ---------------------------------------------------------------

    def _table(self, ctx):
        state = ctx.panel.state
        key = (
            ctx.dataset.name,
            str(ctx.view._serialize()),
            state.get("score_field"),
            state.get("label_field"),
            state.get("selection", "top"),
            state.get("embeddings_field"),
        )
        return _CACHE.get(key, lambda: self._load_table(ctx))

    @staticmethod
    def _load_table(ctx):
        state = ctx.panel.state
        selection, embeddings_field = bridge.resolve_selection(
            ctx.view, state.get("score_field"), state.get("selection", "top"), state.get("embeddings_field")
        )
        table = bridge.load_scores(
            ctx.view,
            state.get("score_field"),
            label_field=state.get("label_field"),
            embeddings_field=embeddings_field,
        )
        table.selection = selection
        if table.labels is not None:  # once per table, so class bars cost one bincount per move
            table.classes, table.class_codes = np.unique(table.labels, return_inverse=True)
        return table

    def _kept_mask(self, ctx, table):
        state = ctx.panel.state
        kept = bridge.select_kept(
            table,
            state.get("prune_rate", 50) / 100.0,
            keep=state.get("keep", "highest"),
            selection=table.selection,
            stratify=bool(state.get("stratify")) and table.labels is not None,
        )
        mask = np.zeros(len(table.ids), dtype=bool)
        mask[kept] = True
        return mask

    def _selection(self, ctx):
        table = self._table(ctx)
        mask = self._kept_mask(ctx, table)
        return table.ids[mask].tolist(), table.ids[~mask].tolist()

    # -- render -------------------------------------------------------------

    def render(self, ctx):
        start = time.perf_counter()
        panel = types.Object()
        state = ctx.panel.state
        fields = bridge.numeric_fields(ctx.view)
        if not fields:
            panel.md(
                "### No score field yet\n"
                "Compute scores first: ZCore needs only an embeddings field "
                "(compute embeddings with the *Compute embeddings* operator if you have none).",
                name="empty",
            )
            panel.btn(
                "open_zcore",
                label="Compute ZCore scores",
                icon="calculate",
                variant="contained",
                on_click=f"{PLUGIN}/compute_zcore_scores",
                prompt=True,
            )
            return types.Property(panel, view=types.GridView(orientation="vertical", padding=2))

        self._controls(panel, ctx, fields)
        try:
            table = self._table(ctx)
            mask = self._kept_mask(ctx, table)
        except ValueError as error:
            panel.view("error", types.Error(label="Cannot build the coreset", description=str(error)))
            return types.Property(panel, view=types.GridView(orientation="vertical", padding=2))

        scores = table.scores
        kept_scores = scores[mask]
        threshold = (kept_scores.min() if state.get("keep") == "highest" else kept_scores.max()) if mask.any() else None
        summary = (
            f"**Kept {int(mask.sum()):,}** · pruned {int((~mask).sum()):,} of {len(scores):,} scored samples"
            + (f" · score threshold {threshold:.4f}" if threshold is not None else "")
            + (f" · {table.missing:,} without a score (ignored)" if table.missing else "")
        )
        panel.md(summary, name="summary")
        panel.plot("histogram", **_histogram(scores, mask, threshold, state.get("score_field")))
        if table.labels is not None:
            panel.plot("classes", **_class_bars(table.classes, table.class_codes, mask))
        self._map(panel, ctx, table, mask)
        self._curve(panel, ctx, table)
        self._actions(panel, state)
        if state.get("message"):
            panel.md(state.get("message"), name="message")
        if ctx.params.get("__method__") != "on_change_view":
            # Not on on_change_view: a state write there would fire on_change_view again, forever.
            ctx.panel.state.render_ms = round((time.perf_counter() - start) * 1000, 1)
        return types.Property(panel, view=types.GridView(orientation="vertical", padding=2, gap=2))

    def _controls(self, panel, ctx, fields):
        state = ctx.panel.state
        on_change = self.on_change_setting
        panel.enum(
            "score_field", fields, label="Score field", default=state.get("score_field"),
            view=types.DropdownView(), on_change=self.on_change_field,
        )
        panel.int(
            "prune_rate", label="Pruning rate (%)", default=state.get("prune_rate", 50), min=0, max=99,
            view=types.SliderView(
                label_position="top", value_precision=0,
                componentsProps={"slider": {"min": 0, "max": 99, "step": 1}},
            ),
            on_change=on_change,
        )
        panel.enum(
            "keep", ["highest", "lowest"], label="Keep", default=state.get("keep", "highest"),
            view=types.RadioView(orientation="horizontal"), on_change=on_change,
        )
        panel.enum(
            "selection", list(bridge.SELECTION_MODES), label="Selection", default=state.get("selection", "top"),
            view=types.DropdownView(), on_change=on_change,
        )
        labels = bridge.classification_fields(ctx.view)
        if labels:
            panel.enum(
                "label_field", labels, label="Label field", default=state.get("label_field"),
                view=types.DropdownView(), on_change=on_change,
            )
            panel.bool(
                "stratify", label="Stratify by class", default=bool(state.get("stratify")),
                view=types.SwitchView(), on_change=on_change,
            )
        vectors = bridge.vector_fields(ctx.view)
        if vectors:
            panel.enum(
                "embeddings_field", vectors, label="Embeddings (map, coverage modes, accuracy curve)",
                default=state.get("embeddings_field"), view=types.DropdownView(), on_change=on_change,
            )
            panel.bool(
                "show_map", label="Show 2-D map", default=bool(state.get("show_map")),
                view=types.SwitchView(), on_change=on_change,
            )

    def on_change_field(self, ctx):
        ctx.panel.state.score_field = ctx.params.get("value")
        ctx.panel.state.curve = None
        ctx.panel.state.message = None

    def _map(self, panel, ctx, table, mask):
        state = ctx.panel.state
        field = state.get("embeddings_field")
        if not (state.get("show_map") and field):
            return
        try:
            with _MAP_LOCK:
                points = _CACHE.get(
                    (ctx.dataset.name, "map", field),
                    lambda: bridge.embedding_map(ctx.dataset, field),
                )
        except Exception as error:  # a failed map must not take the histogram down with it
            panel.view("map_error", types.Warning(label="No 2-D map", description=f"{type(error).__name__}: {error}"))
            return
        ids = table.ids
        rows = np.array([points.index.get(i, -1) for i in ids])
        has = rows >= 0
        shown = np.flatnonzero(has)
        if len(shown) > _MAP_POINTS:
            shown = shown[np.linspace(0, len(shown) - 1, _MAP_POINTS).astype(int)]
        xy = points.xy[rows[shown]]
        kept = mask[shown]
        data = [
            dict(type="scattergl", mode="markers", name=name, x=xy[sel, 0].tolist(), y=xy[sel, 1].tolist(),
                 marker=dict(size=4, color=color, opacity=0.8))
            for name, sel, color in (("pruned", ~kept, _PRUNED), ("kept", kept, _KEPT))
        ]
        layout = dict(title=_title(f"2-D map of '{field}' ({points.method})"), height=360,
                      margin=dict(t=40, b=20, l=20, r=20), xaxis=dict(visible=False), yaxis=dict(visible=False),
                      **_LEGEND)
        panel.plot("map", data=data, layout=layout, config=dict(displayModeBar=False))

    def _curve(self, panel, ctx, table):
        state = ctx.panel.state
        if table.labels is None or not state.get("embeddings_field"):
            return
        curve = state.get("curve")
        if curve:
            data = [dict(type="scatter", mode="lines+markers", x=curve["rates"], y=curve["accuracy"], name="probe")]
            layout = dict(
                title=_title(f"Estimated accuracy vs pruning rate (linear probe, {curve['held_out']} held-out samples)"),
                height=260, margin=dict(t=40, b=40, l=50, r=20),
                xaxis=dict(title=dict(text="pruning rate (%)")), yaxis=dict(title=dict(text="accuracy")),
            )
            panel.plot("curve", data=data, layout=layout, config=dict(displayModeBar=False))
        panel.btn(
            "compute_curve", label="Estimate accuracy vs pruning rate", icon="show_chart",
            on_click=self.on_compute_curve,
        )

    def _actions(self, panel, state):
        actions = panel.h_stack("actions", align_x="left", gap=1)
        actions.btn("show_kept", label="Show kept", icon="visibility", on_click=self.on_show_kept)
        actions.btn("show_pruned", label="Show pruned", icon="visibility_off", on_click=self.on_show_pruned)
        actions.btn("tag_kept", label="Tag kept", icon="sell", on_click=self.on_tag_kept)
        actions.btn("refresh", label="Refresh", icon="refresh", on_click=self.on_refresh)
        panel.str("view_name", label="Saved view name", default=state.get("view_name"), on_change=self.on_change_setting)
        panel.str("tag", label="Tag for 'Tag kept'", default=state.get("tag") or "coreset", on_change=self.on_change_setting)
        label = "Overwrite" if state.get("confirm_overwrite") else "Save as view"
        panel.btn("save", label=label, icon="save", variant="contained", on_click=self.on_save)

def _histogram(scores, mask, threshold, field):
    edges = np.histogram_bin_edges(scores, bins=_BINS)
    centres = ((edges[:-1] + edges[1:]) / 2).tolist()
    kept_counts = np.histogram(scores[mask], bins=edges)[0].tolist()
    pruned_counts = np.histogram(scores[~mask], bins=edges)[0].tolist()
    shapes = []
    if threshold is not None:
        shapes.append(dict(type="line", x0=float(threshold), x1=float(threshold), yref="paper", y0=0, y1=1,
                           line=dict(color="#d32f2f", width=2, dash="dash")))
    return dict(
        data=[
            dict(type="bar", name="kept", x=centres, y=kept_counts, marker=dict(color=_KEPT)),
            dict(type="bar", name="pruned", x=centres, y=pruned_counts, marker=dict(color=_PRUNED)),
        ],
        layout=dict(title=_title(f"'{field}' histogram (cut dashed)"), barmode="stack", height=260, shapes=shapes,
                    margin=dict(t=40, b=30, l=40, r=20), bargap=0.05, **_LEGEND),
        config=dict(displayModeBar=False),
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
                    margin=dict(t=40, b=40, l=40, r=20), **_LEGEND),
        config=dict(displayModeBar=False),
    )
