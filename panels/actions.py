"""The panel's actions: show kept/pruned in the grid, tag the kept samples, save the view, compute.

Each takes the execution context and the event's :class:`.state.BufferedState`,
says what it did next to the control that caused it (:func:`.state.say`), and
flushes the state before any operation it triggers in the App.
"""

import threading

from .. import bridge
from . import cache, orders
from .state import SAVING, SHOW, TAGGING, base_of, format_percent, say, serialize, text, to_fraction

_MAP_LOCK = threading.Lock()


def _table(ctx, state, wait=None):
    return orders.table(ctx.dataset.name, base_of(ctx, state), state, wait=wait)


def show(ctx, state, kept):
    """Shows the kept (or pruned) samples in the grid; later slider releases update it (:func:`follow`)."""
    table = _table(ctx, state)
    if table is None:
        say(state, "Compute the coreset order first.", SHOW)
        return
    view = orders.shown_view(base_of(ctx, state), table, state.get("prune_rate"), kept=kept)
    state.set(dict(shown_view=serialize(view), shown="kept" if kept else "pruned"))
    state.flush()
    ctx.ops.set_view(view=view)


def follow(ctx, state):
    """After a rate or order change: the grid follows when it shows the kept or pruned samples
    (once the order is ready: the panel's progress ticks call this again while it is busy)."""
    if state.get("shown") and state.get("shown_view") and state.get("view_key") == state.get("shown_view"):
        if isinstance(_table(ctx, state, wait=orders.BUSY_AFTER_S), orders.Busy):
            state.follow_pending = True
            return
        state.follow_pending = False
        show(ctx, state, kept=state.get("shown") == "kept")


def tag_kept(ctx, state):
    tag = text(state, TAGGING, "tag", default="coreset")
    if not tag:
        say(state, "Tag: enter a tag for the kept samples first.", TAGGING)
        return
    base = base_of(ctx, state)
    table = _table(ctx, state)
    if table is None:
        say(state, "Compute the coreset order first.", TAGGING)
        return
    count = table.kept_count(state.get("prune_rate"))
    try:
        rank_field = orders.stored_rank_field(ctx.dataset.name, base, state, table)
        done = bridge.tag_coreset(base, rank_field, tag, kept=count)
    except ValueError as error:
        say(state, f"Tag: {error}", TAGGING)
        return
    say(state, f"Tagged the {count:,} kept samples '{done['tag']}' ({done['added']:,} did not have it); "
        f"undo with dataset.delete_run('{done['run_key']}') or Delete coreset runs.", TAGGING)
    state.flush()
    ctx.ops.reload_dataset()


def save(ctx, state):
    name = text(state, SAVING, "view_name")
    if not name:
        say(state, "Saved view name: enter a name for the saved view.", SAVING)
        return
    taken = ctx.dataset.has_saved_view(name)
    if taken and not state.get("confirm_overwrite"):
        state.confirm_overwrite = True
        say(state, f"A saved view named '{name}' exists. Press 'Overwrite' to replace it.", SAVING)
        return
    base = base_of(ctx, state)
    percent = state.get("prune_rate")
    try:
        table = _table(ctx, state)
        if table is None:
            raise ValueError("compute the coreset order first")
        orders.stored_rank_field(ctx.dataset.name, base, state, table)
        kwargs = orders.order_kwargs(state)
        summary = bridge.save_coreset_view(base, state.get("score_field"), to_fraction(percent), name,
                                           overwrite=taken, **kwargs)
    except ValueError as error:
        say(state, f"Not saved: {str(error).replace('view_name:', 'Saved view name:')}", SAVING)
        return
    state.confirm_overwrite = False
    say(state, f"Saved view '{name}': kept {summary['kept']:,}, pruned {summary['pruned']:,} at "
        f"{format_percent(percent)} % (frozen).", SAVING)
    state.flush()
    ctx.ops.reload_dataset()


def compute_order(ctx, state):
    """Computes and stores the order of the current settings here (the panel's button on large collections)."""
    base = base_of(ctx, state)
    try:
        bridge.compute_coreset_order(base, state.get("score_field"), rank_field=orders.rank_field_for(base, state),
                                     **orders.order_kwargs(state))
    except ValueError as error:
        say(state, f"No coreset order: {error}", "order")
        return
    cache.drop(ctx.dataset.name, "order")
    say(state, None)


def compute_curve(ctx, state):
    state.curve_pending = False
    base = base_of(ctx, state)
    table = _table(ctx, state)
    try:
        if table is None:
            raise ValueError("compute the coreset order first")
        order = table.order if table.rank_field is None else table.rank_field  # in memory, or stored
        state.accuracy = bridge.accuracy_curve(base, order, state.get("embeddings_field"), state.get("label_field"))
    except ValueError as error:
        say(state, f"No accuracy curve: {error}", "curve")


def compute_map(ctx, state):
    field = state.get("embeddings_field")
    try:
        with _MAP_LOCK:
            cache.CACHE.get((ctx.dataset.name, "map", field), lambda: bridge.embedding_map(ctx.dataset, field))
    except Exception as error:  # noqa: BLE001 - a failed map must not take the panel down with it
        say(state, f"No 2-D map: {type(error).__name__}: {error}", "map")
        state.show_map = False
    state.map_pending = False
