"""The panel's plots as plotly specs: score histogram, class balance, 2-D map, accuracy curve."""

import numpy as np

from .orders import BINS

#: points drawn on the 2-D map at most
MAP_POINTS = 5_000
KEPT, PRUNED = "#ff6d04", "#9e9e9e"
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
    data = [
        dict(type="scattergl", mode="markers", name=name, x=xy[sel, 0].tolist(), y=xy[sel, 1].tolist(),
             marker=dict(size=4, color=color, opacity=0.8))
        for name, sel, color in (("pruned", ~kept, PRUNED), ("kept", kept, KEPT))
    ]
    layout = dict(title=title(f"2-D map of '{field}' ({points.method})"), height=360,
                  margin=dict(t=40, b=20, l=20, r=20), xaxis=dict(visible=False), yaxis=dict(visible=False),
                  **LEGEND)
    return dict(data=data, layout=layout, config=CONFIG)


def accuracy_curve(curve):
    """Linear-probe accuracy against the pruning rate (percent)."""
    data = [dict(type="scatter", mode="lines+markers", x=curve["rates"], y=curve["accuracy"], name="linear probe")]
    layout = dict(
        title=title(f"Estimated accuracy vs pruning rate (linear probe, {curve['held_out']} held-out samples)"),
        height=260, margin=dict(t=40, b=40, l=50, r=20),
        xaxis=dict(title=dict(text="pruning rate (%)")), yaxis=dict(title=dict(text="accuracy")),
    )
    return dict(data=data, layout=layout, config=CONFIG)
