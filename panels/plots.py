"""The panel's plots as plotly specs: score histogram, class balance, 2-D map, accuracy curve.

The map draws the pruned points first and muted, the kept ones on top, and a
lasso on it selects those samples in the grid (:class:`PlotEvents`); the
accuracy curve has the random-subset baseline, a marker at the current rate
and a fixed y range that includes the full-data accuracy.
"""

import math

import fiftyone.operators.types as types
import numpy as np

from .. import bridge
from .orders import BINS
from .state import say, state_of

#: points drawn on the 2-D map at most
MAP_POINTS = bridge.MAP_POINTS
KEPT, PRUNED, RANDOM, CUT = "#ff6d04", "#9e9e9e", "#1e88e5", "#d32f2f"
#: layout keys of the map: a drag draws a lasso (the App sends the points to ``on_map_selected``)
MAP_LAYOUT = dict(dragmode="lasso")
# The App's plotly.js (3.x) ignores string titles and hides legends unless asked.
LEGEND = dict(showlegend=True, legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"))
CONFIG = dict(displayModeBar=False, scrollZoom=False)


def title(text):
    return dict(text=text, x=0.01, xanchor="left", font=dict(size=14))


def histogram(table, mask, threshold, field):
    """Kept and pruned scores, stacked; the score cut dashed (``threshold``, for the *top* selection)."""
    kept_counts = np.bincount(table.bins[mask], minlength=BINS).tolist()
    pruned_counts = np.bincount(table.bins[~mask], minlength=BINS).tolist()
    centres = ((table.edges[:-1] + table.edges[1:]) / 2).tolist()
    shapes = []
    if threshold is not None:
        shapes.append(dict(type="line", x0=threshold, x1=threshold, yref="paper", y0=0, y1=1,
                           line=dict(color="#d32f2f", width=2, dash="dash")))
    text = f"'{field}' histogram" + (" (cut dashed)" if threshold is not None else "")
    return dict(
        data=[
            dict(type="bar", name="kept", x=centres, y=kept_counts, marker=dict(color=KEPT)),
            dict(type="bar", name="pruned", x=centres, y=pruned_counts, marker=dict(color=PRUNED)),
        ],
        layout=dict(title=title(text), barmode="stack", height=260, shapes=shapes,
                    margin=dict(t=40, b=30, l=40, r=20), bargap=0.05, **LEGEND),
        config=CONFIG,
    )


def class_bars(classes, codes, mask):
    """Samples per class: all, and kept at the current rate."""
    totals = np.bincount(codes, minlength=len(classes))
    kept = np.bincount(codes[mask], minlength=len(classes))
    names = [c if c else "(no label)" for c in classes.tolist()]
    return dict(
        data=[
            dict(type="bar", name="all", x=names, y=totals.tolist(), marker=dict(color=PRUNED)),
            dict(type="bar", name="kept", x=names, y=kept.tolist(), marker=dict(color=KEPT)),
        ],
        layout=dict(title=title("Class balance: kept vs all"), barmode="overlay", height=240,
                    margin=dict(t=40, b=40, l=40, r=20), xaxis=dict(type="category"), **LEGEND),
        config=CONFIG,
    )


def embedding_map(table, points, mask, field):
    """The 2-D map of the ranked samples (at most :data:`MAP_POINTS`), kept over pruned."""
    rows = table.map_rows.get(field)
    if rows is None:  # once per table and field
        rows = np.fromiter((points.index.get(str(i), -1) for i in table.ids), dtype=np.int64, count=len(table.ids))
        table.map_rows[field] = rows
    shown = np.flatnonzero(rows >= 0)
    if len(shown) > MAP_POINTS:
        shown = shown[np.linspace(0, len(shown) - 1, MAP_POINTS).astype(int)]
    xy = points.xy[rows[shown]]
    kept = mask[shown]
    data = map_traces(xy, kept, table.ids[shown])
    layout = dict(title=title(f"2-D map of '{field}' ({points.method})"), height=360,
                  margin=dict(t=40, b=20, l=20, r=20), xaxis=dict(visible=False), yaxis=dict(visible=False),
                  **LEGEND, **MAP_LAYOUT)
    return dict(data=data, layout=layout, config=CONFIG)


def accuracy_curve(curve, percent):
    """Linear-probe accuracy against the pruning rate (percent), the random baseline, ``percent`` marked."""
    text = f"Estimated accuracy vs pruning rate (linear probe, {curve['held_out']} held-out samples)"
    return dict(**accuracy_plot(curve, round(percent), text), config=CONFIG)


def map_traces(xy, kept, ids):
    """The map's two traces: pruned (muted, drawn first), kept (on top); ``ids`` let a lasso name samples."""
    ids = np.asarray([str(i) for i in ids], dtype=object)
    traces = []
    for name, sel, marker in (
        # larger and muted under smaller kept points: a pruned point shows as a grey rim where they overlap
        ("pruned", ~kept, dict(size=7, color="#bdbdbd", opacity=0.55)),
        ("kept", kept, dict(size=3.5, color=KEPT, opacity=0.9)),
    ):
        traces.append(dict(type="scattergl", mode="markers", name=name, x=xy[sel, 0].tolist(),
                           y=xy[sel, 1].tolist(), ids=ids[sel].tolist(), marker=marker))
    return traces


def accuracy_plot(curve, rate, title):
    """The accuracy curve with its random baseline, the current rate marked and a fixed y range."""
    rates = curve["rates"]
    data = [dict(type="scatter", mode="lines+markers", x=rates, y=curve["accuracy"], name="coreset (linear probe)",
                 line=dict(color=KEPT))]
    if curve.get("random"):
        data.append(dict(type="scatter", mode="lines+markers", x=rates, y=curve["random"],
                         name="random subset of the same size", line=dict(color=RANDOM, dash="dot")))
    full = curve.get("full")
    if full is None and 0 in rates:
        full = curve["accuracy"][rates.index(0)]
    values = [v for v in list(curve["accuracy"]) + list(curve.get("random") or []) + [full] if v is not None]
    low = min(values) if values else 0.0
    # Fixed: from a round tenth below everything shown (at most 0.5) to 1, whatever the noise.
    y_range = [min(0.5, math.floor(low * 10 - 1e-9) / 10), 1.0]
    shapes = [dict(type="line", x0=rate, x1=rate, yref="paper", y0=0, y1=1, line=dict(color=CUT, width=2, dash="dash"))]
    annotations = [dict(x=rate, y=1, yref="paper", text=f"{rate} %", showarrow=False, yanchor="bottom",
                        font=dict(color=CUT, size=12))]
    if full is not None:
        shapes.append(dict(type="line", xref="paper", x0=0, x1=1, y0=full, y1=full,
                           line=dict(color="#757575", width=1, dash="dot")))
        annotations.append(dict(xref="paper", x=1, y=full, text=f"all data {full:.3f}", showarrow=False,
                                xanchor="right", yanchor="bottom", font=dict(size=11)))
    layout = dict(
        title=dict(text=title, x=0.01, xanchor="left", font=dict(size=14)), height=320,
        margin=dict(t=56, b=90, l=50, r=20), shapes=shapes, annotations=annotations,
        xaxis=dict(title=dict(text="pruning rate (%)"), range=[-2, 101]),
        yaxis=dict(title=dict(text="accuracy"), range=y_range, autorange=False, fixedrange=True),
        showlegend=True, legend=dict(orientation="h", x=0, xanchor="left", y=-0.3, yanchor="top"),
    )
    return dict(data=data, layout=layout)


class PlotEvents:
    """The plots' panel methods (mixed into the panel class)."""

    def on_map_selected(self, ctx):
        """A lasso (or box) on the map: those samples become the grid's selection.

        An empty selection changes nothing: plotly reports one when the redrawn
        map drops its lasso, which must not clear the selection just made.
        """
        points = ctx.params.get("data") or []
        ids = list(dict.fromkeys(p.get("id") for p in points if p.get("id")))
        if not ids:
            return
        state = state_of(ctx)
        say(state, f"Selected {len(ids):,} samples of the map in the grid.", "map")
        state.flush()  # the panel's redraw first: the selection is the App's last operation of the event
        ctx.ops.set_selected_samples(ids)

    def on_map_clicked(self, ctx):
        """A click on a map point: the panel shows that sample's image and where it stands, under the map.

        (FiftyOne's plotly view forwards clicks and selections, not hovers: a click stands in for the hover.)
        """
        sample_id = ctx.params.get("id")  # the App sends the clicked point's id, idx and trace at the top level
        if sample_id:
            state_of(ctx).map_preview = str(sample_id)


def map_preview(panel, dataset, table, mask, sample_id, percent):
    """The clicked sample under the map: its image, class, score and whether the rate keeps it."""
    from urllib.parse import quote

    from bson import ObjectId

    try:
        filepath = dataset.select(sample_id).first().filepath
    except Exception:  # noqa: BLE001 - the sample is gone (or the id is not one): nothing to show
        return
    rows = np.flatnonzero(table.ids == ObjectId(sample_id))  # the table's ids are ObjectIds: no str per sample
    where = "not ranked"
    if len(rows):
        row = rows[0]
        label = f" · {table.classes[table.codes[row]]}" if table.codes is not None else ""
        where = (f"{'kept' if mask[row] else 'pruned'} at {percent:g} % (rank {int(table.ranks[row]) + 1:,} of "
                 f"{len(table.ranks):,}) · score {float(table.scores[row]):.4f}{label}")
    panel.md(f"**Clicked on the map**: sample `{sample_id}` · {where}", name="map_preview_text")
    panel.str("map_preview_image", default=f"/media?filepath={quote(filepath, safe='')}",
              view=types.ImageView(height=160, alt=f"sample {sample_id}"))
