"""The Coreset Explorer's near-duplicates line: how many extra copies there are, and "Show duplicates".

The numbers come from the newest sample-level ``find_near_duplicates`` run
of the dataset (its run record: no query per render). "Show duplicates" sets
the App's view to the samples in a group, sorted by group with the
representative first, so each group's copies sit side by side in the grid.
"""

from .. import bridge
from .state import say, serialize

PLUGIN = bridge.PLUGIN


def _latest(base):
    """``(run key, config dict)`` of the newest near-duplicate run whose group field exists, or None."""
    for key, config in bridge.duplicate_runs(base):
        if base.has_field(config.get("group_field") or ""):
            return key, config
    return None


def render(panel, base, on_show):
    """Adds the near-duplicates line and its buttons to the panel."""
    found = _latest(base)
    row = panel.h_stack("duplicates", align_x="left", align_y="center", gap=1)
    if found is None:
        row.md("**Near-duplicates:** not searched yet.", name="duplicates_summary")
        row.btn("find_duplicates", label="Find near-duplicates", icon="content_copy",
                on_click=f"{PLUGIN}/find_near_duplicates", prompt=True)
        return
    key, config = found
    row.md(f"**Near-duplicates:** {config.get('copies', 0):,} extra copies in {config.get('groups', 0):,} groups "
           f"(radius {config.get('radius_used', 0):.4g}, run '{key}').", name="duplicates_summary")
    row.btn("show_duplicates", label="Show duplicates", icon="content_copy", on_click=on_show)


def show(ctx, base, state):
    """Sets the App's view to the base's duplicates, groups side by side; the panel keeps sweeping its base."""
    found = _latest(base)
    if found is None:
        say(state, "No near-duplicate groups yet: run 'Find near-duplicates' first.", "duplicates")
        return
    view = bridge.duplicates_view(base, found[1]["group_field"])
    # Not a kept/pruned grid: slider moves must not replace it (actions.follow).
    state.set(dict(shown_view=serialize(view), shown=None))
    ctx.ops.set_view(view=view)
