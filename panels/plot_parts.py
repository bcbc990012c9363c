"""Parts of the panel's plots that answer the question (issue 21, item 5).

The map draws the pruned points first and muted, the kept ones on top, and a
lasso on it selects those samples in the grid; the accuracy curve has the
random-subset baseline, a marker at the current rate and a fixed y range that
includes the full-data accuracy.
"""

import math

import numpy as np

KEPT, PRUNED, RANDOM, CUT = "#ff6d04", "#bdbdbd", "#1e88e5", "#d32f2f"


def map_traces(xy, kept, ids):
    """The map's two traces: pruned (muted, drawn first), kept (on top); ``ids`` let a lasso name samples."""
    ids = np.asarray([str(i) for i in ids], dtype=object)
    traces = []
    for name, sel, marker in (
        # larger and muted under smaller kept points: a pruned point shows as a grey rim where they overlap
        ("pruned", ~kept, dict(size=7, color=PRUNED, opacity=0.55)),
        ("kept", kept, dict(size=3.5, color=KEPT, opacity=0.9)),
    ):
        traces.append(dict(type="scattergl", mode="markers", name=name, x=xy[sel, 0].tolist(),
                           y=xy[sel, 1].tolist(), ids=ids[sel].tolist(), marker=marker))
    return traces


#: layout keys of the map: a drag draws a lasso (the App sends the points to ``on_map_selected``)
MAP_LAYOUT = dict(dragmode="lasso")


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
        """A lasso (or box) on the map: those samples become the grid's selection."""
        points = ctx.params.get("data") or []
        ids = list(dict.fromkeys(p.get("id") for p in points if p.get("id")))
        ctx.ops.set_selected_samples(ids)
        ctx.panel.state.set("message", f"Selected {len(ids):,} samples of the map in the grid." if ids else None)
