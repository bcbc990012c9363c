"""Runs of this plugin scheduled in the background (delegated operations), as the panel shows them.

While a run of the plugin on the panel's dataset is queued or running, the
panel lists it with its progress and looks again every :data:`TICK_MS`; when
it lands, the panel says so next to that list, forgets what it had read, and
reloads the dataset, so the new field shows in the App and in the panel with
no reload by the user. FiftyOne tells a panel nothing about delegated
operations, so the panel asks :class:`DelegatedOperationService` (three small
queries per event: one per queued, scheduled and running state).
"""

import fiftyone.operators.types as types
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionRunState

from .. import bridge
from . import cache
from .state import say

#: how often the panel looks at the runs in the background (ms)
TICK_MS = 2000
#: where the panel's messages about them show
AT = "background"
_ACTIVE = (ExecutionRunState.QUEUED, ExecutionRunState.SCHEDULED, ExecutionRunState.RUNNING)


def active(dataset_name):
    """The plugin's delegated operations on this dataset that are queued or running, oldest first."""
    service = DelegatedOperationService()
    found = []
    for run_state in _ACTIVE:
        found += service.list_operations(dataset_name=dataset_name, run_state=run_state)
    found = [op for op in found if str(op.operator).startswith(f"{bridge.PLUGIN}/")]
    return sorted(found, key=lambda op: op.queued_at or op.scheduled_at or op.updated_at)


def render(panel, ctx, state, on_tick, on_cancel, *, watch=False):
    """One line per run in the background (a queued one can be cancelled), and the timer that follows them
    (always with ``watch``)."""
    runs = active(ctx.dataset.name)
    for i, op in enumerate(runs):
        row = panel.h_stack(f"background_row_{i}", align_x="left", align_y="center", gap=1)
        row.md(f"⏳ **{_name(op)}** in the background: {_progress(op)}", name=f"background_{i}")
        if op.run_state != ExecutionRunState.RUNNING:
            row.btn(f"cancel_background_{i}", label="Cancel", icon="cancel", on_click=on_cancel,
                    params=dict(run_id=str(op.id)))
    seen = [str(op.id) for op in runs]
    if seen and not set(seen) <= set(state.get("background") or []):
        state.background = sorted(set(state.get("background") or []) | set(seen))
    if runs or watch or state.get("background"):
        panel.view("background_timer", types.TimerView(interval=TICK_MS, on_interval=on_tick))
    if state.get("message_at") == AT and state.get("message"):
        panel.view("message", types.Notice(label=state.get("message")))


def tick(ctx, state):
    """The timer: says which of the runs the panel followed have landed; reloads the dataset if any did."""
    watched = state.get("background") or []
    if not watched:
        return False
    running = {str(op.id) for op in active(ctx.dataset.name)}
    landed = [i for i in watched if i not in running]
    if not landed:
        return False
    state.background = [i for i in watched if i in running]
    service = DelegatedOperationService()
    say(state, " ".join(_landed(service, i) for i in landed), AT)
    cache.drop(ctx.dataset.name)
    state.flush()
    ctx.ops.reload_dataset()
    return True


def cancel(ctx, state, run_id):
    """The Cancel button of a run that has not started: deletes it from the queue."""
    service = DelegatedOperationService()
    op = _get(service, run_id)
    if op is None:
        say(state, "That run is no longer in the background.", AT)
    elif op.run_state == ExecutionRunState.RUNNING:
        say(state, f"'{_name(op)}' has started: it runs to the end, and nothing is written if it fails "
            f"(`fiftyone delegated fail {run_id}` marks it failed).", AT)
    elif op.run_state in _ACTIVE:
        service.delete_operation(op.id)
        state.background = [i for i in state.get("background") or [] if i != run_id]
        say(state, f"Cancelled '{_name(op)}' before it started: nothing was written.", AT)


def _name(op):
    return op.label or op.operator.split("/")[-1]


def _progress(op):
    label = getattr(op.status, "label", None)  # what the run's ctx.set_progress said last
    return op.run_state + (f" · {label}" if label and op.run_state == ExecutionRunState.RUNNING else "")


def _get(service, op_id):
    """The delegated operation ``op_id``, or None when it is gone (deleted, or never was)."""
    from bson import ObjectId
    from bson.errors import InvalidId

    try:
        return service.get(ObjectId(op_id))
    except (InvalidId, TypeError, ValueError):
        return None


def _landed(service, op_id):
    op = _get(service, op_id)
    if op is None:
        return "A run in the background was removed."
    name = _name(op)
    if op.run_state == ExecutionRunState.FAILED:
        error = (getattr(op.result, "error", None) or "unknown error").strip().splitlines()
        return f"'{name}' failed in the background: {error[-1] if error else 'unknown error'}."
    result = getattr(op.result, "result", None) or {}
    what = ", ".join(f"{key} {value}" for key, value in result.items()
                     if key in ("score_field", "rank_field", "scored", "kept", "view_name") and value is not None)
    return f"'{name}' finished in the background" + (f" ({what})." if what else ".")
