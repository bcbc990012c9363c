"""The Coreset Explorer's state: keys, the pruning rate as a percent, control revisions, one patch per event.

The App shows the pruning rate as a percent (0.7 means 0.7 %); the SDK and the
bridge take fractions: :func:`to_fraction` is the one conversion.
"""

import threading
import time
import weakref
from collections import OrderedDict

import pydash
from bson import json_util

from ..bridge import internals
from ..core import order as core_order

#: the slider's range, in percent (the largest rate keeps 1 % of the samples)
MIN_PERCENT, MAX_PERCENT = 0, 99
DEFAULT_PERCENT = 50

#: rows of controls: the App reports a control in a row as "<row>.<name>" and keeps its value there
RATES, TAGGING, SAVING, SHOW = "rates", "tagging", "saving", "show"

#: what a text box shows before the panel stores a value for it
CONTROL_DEFAULTS = dict(tag="coreset", view_name="", keep_count="")

#: settings that change the order (and so drop the accuracy curve)
ORDER_SETTINGS = ("score_field", "selection", "keep", "stratify", "label_field", "embeddings_field")


# -- one unit -------------------------------------------------------------------------


def to_fraction(percent):
    """A pruning rate in percent (the App's unit) as the fraction the SDK takes."""
    return float(percent) / 100.0


def to_percent(fraction):
    """A fraction (the SDK's unit) as the percent the App shows."""
    return float(fraction) * 100.0


def parse_percent(value, *, label="Pruning rate (%)"):
    """``(percent, message)`` of a typed rate: clamped to [0, 99] with a message saying so, or ``(None, message)``.

    ``0.7`` is 0.7 %, not 70 %: the App's unit is the percent everywhere.
    """
    try:
        percent = float(str(value).strip().rstrip("%"))
    except (TypeError, ValueError):
        return None, f"{label}: enter a number from {MIN_PERCENT} to {MAX_PERCENT}, e.g. 70"
    if percent != percent or percent in (float("inf"), float("-inf")):
        return None, f"{label}: enter a number from {MIN_PERCENT} to {MAX_PERCENT}, e.g. 70"
    if percent > MAX_PERCENT:
        return float(MAX_PERCENT), f"{label}: {value} is above {MAX_PERCENT} %, the largest rate; used {MAX_PERCENT} %."
    if percent < MIN_PERCENT:
        return float(MIN_PERCENT), f"{label}: {value} is below {MIN_PERCENT} %; used {MIN_PERCENT} % (keep all)."
    return percent, None


def percent_for_kept(value, scored, *, label="or keep N samples"):
    """``(percent, message)`` that keeps ``value`` of ``scored`` samples exactly, clamped to what the slider allows."""
    try:
        kept = int(round(float(str(value).strip().replace(",", "").replace("_", ""))))
    except (TypeError, ValueError, OverflowError):
        return None, f"{label}: enter a whole number of samples to keep, from 1 to {scored:,}"
    least = core_order.kept_count(scored, MAX_PERCENT / 100.0)
    message = None
    if kept > scored:
        kept, message = scored, f"{label}: only {scored:,} samples are scored; keeping all of them."
    elif kept < least:
        kept, message = least, f"{label}: at most {MAX_PERCENT} % is pruned, so at least {least:,} are kept."
    return (100.0 * (scored - kept) / scored if scored else 0.0), message


def kept_count(scored, percent):
    """Samples kept out of ``scored`` at a rate in percent."""
    return core_order.kept_count(scored, to_fraction(percent))


def format_percent(percent):
    """``70`` for 70.0, ``0.7`` for 0.7: a rate as the user typed it."""
    return f"{percent:g}"


# -- control revisions ------------------------------------------------------------------


def set_rate(state, percent, source="slider"):
    """Sets the pruning rate; the other control (slider or typed box) is replaced by a new one.

    The App keeps each control's value at the control's path in the panel state and
    reports a value written there as a change of that control, often late and with a
    panel state from before the write; it also puts a box the user has typed into
    back to the typed value. So the panel never writes there: a control that must
    show a new value is replaced by one of a new name (``rates.rate_typed_3``) whose
    default is the new value, and events of replaced controls are ignored.
    """
    others = {"slider": ("typed_rev", "count_rev"), "typed": ("slider_rev", "count_rev"),
              "count": ("slider_rev", "typed_rev")}[source]
    changes = {"prune_rate": percent}
    for other in others:
        changes[other] = int(state.get(other) or 0) + 1
    state.set(changes)


_REVISIONED = {"prune_rate": "slider_rev", "rate_typed": "typed_rev", "keep_count": "count_rev"}


def control(path):
    """``(name, revision)`` of a control path: ``rates.rate_typed_3`` -> ``("rate_typed", 3)``."""
    name = (path or "").rsplit(".", 1)[-1]
    for base in _REVISIONED:
        if name.startswith(base + "_") and name[len(base) + 1:].isdigit():
            return base, int(name[len(base) + 1:])
    return name, None


def ignored(ctx):
    """True for a control event that changes nothing: from a replaced control, or the App
    reporting the value a control was created with (it does so for every new control)."""
    path = ctx.params.get("path") or ""
    name, revision = control(path)
    state = ctx.panel.state
    value = ctx.params.get("value")
    if name in CONTROL_DEFAULTS and revision is None and "." in path:  # a text box in a row: the flat name
        current = state.get(name)
        return (value or "") == (CONTROL_DEFAULTS[name] if current is None else current)
    if revision is None:
        return False
    if revision < int(state.get(_REVISIONED[name]) or 0):
        return True
    if value in (None, ""):
        return True  # a cleared box: keep the current rate
    if name == "keep_count":  # a new box reports the kept count it shows (render keeps it as "kept")
        return str(value).strip() == str(state.get("kept"))
    percent, message = parse_percent(value)
    current = state.get("prune_rate")
    if name == "prune_rate" and current is not None:
        current = round(current)  # the slider shows whole percents: 0.7 % is drawn at 1
    return message is None and percent == current


def text(state, row, name, default=""):
    """A text box's value: the App's own copy (``<row>.<name>``, current even when a button
    click overtakes the box's debounced change event), else the panel's, else ``default``."""
    for key in (f"{row}.{name}", name):
        value = state.get(key)
        if value is not None:
            return str(value).strip()
    return default


def say(state, message, at=None):
    """Shows ``message`` next to the control ``at`` (a row or control name; None: at the top)."""
    state.set(dict(message=message, message_at=at if message else None))


# -- the view being swept ---------------------------------------------------------------


def serialize(view):
    return json_util.dumps(internals.stage_dicts(view, include_uuids=True) or [])


def describe(view):
    if not internals.own_stages(view):
        return f"the whole dataset ({view.count():,} samples)"
    stages = ", ".join(type(s).__name__ for s in internals.own_stages(view))
    return f"the view it was opened on ({view.count():,} samples: {stages})"


def base_of(ctx, state):
    """The view the panel sweeps (its *base*): the App's view when the panel was opened or re-based."""
    stages = state.get("base_view")
    if stages is None:
        return ctx.view
    return internals.view_of_stage_dicts(ctx.dataset, json_util.loads(stages)) if stages != "[]" else ctx.dataset


def rebase(ctx, state):
    """Sweeps the App's current view from now on."""
    state.set(dict(base_view=serialize(ctx.view), view_key=serialize(ctx.view), base_label=describe(ctx.view),
                   shown_view=None, shown=None))


# -- one patch per event ---------------------------------------------------------------


class BufferedState:
    """The panel state of one event, sent to the App as one ``patch_panel_state``.

    The hook FiftyOne lacks: ``ctx.panel.state.set`` sends a ``patch_panel_state``
    per write, and the App applies each in a task of its own and redraws the whole
    panel for each; FiftyOne has no way to group the writes of one event. An event
    writes several keys (a slider move: the rate, the typed box's revision, the
    last control), so the panel writes through this object: reads and writes go to
    the event's state at once, and :meth:`flush` sends the writes as one patch. The
    panel flushes before any other operation it triggers (the panel output, a view
    change, a dataset reload), so the App sees the writes in the same order
    relative to those. This is the only place that works around it.
    """

    _ctx = _pending = None  # set per instance in __init__ (attribute writes are state writes)

    def __init__(self, ctx):
        object.__setattr__(self, "_ctx", ctx)
        object.__setattr__(self, "_pending", {})

    def get(self, key, default=None):
        return pydash.get(self._ctx.panel_state, key, default)

    def set(self, key, value=None):
        changes = key if isinstance(key, dict) else {key: value}
        for k, v in changes.items():
            pydash.set_(self._ctx.panel_state, k, v)
        self._pending.update(changes)

    def flush(self):
        """Sends the writes not sent yet as one patch; returns how many keys it sent."""
        pending = dict(self._pending)
        if pending:
            self._ctx.ops.patch_panel_state(pending)
            self._pending.clear()
        return len(pending)

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        return self.get(key)

    def __setattr__(self, key, value):
        self.set(key, value)


_BUFFERS = weakref.WeakKeyDictionary()


def state_of(ctx):
    """The event's :class:`BufferedState` (one per execution context)."""
    buffered = _BUFFERS.get(ctx)
    if buffered is None:
        buffered = _BUFFERS[ctx] = BufferedState(ctx)
    return buffered


class Repeats:
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
