"""Long-running operators: live progress in the App, delegation, cancellation, SDK calls.

* From the App (immediate execution), ``execute`` returns a generator that
  runs the work in a worker thread and streams ``set_progress`` messages,
  then shows the result with ``show_output`` and reloads the dataset so new
  fields and tags appear. Expected errors (bad input) are shown as one
  sentence instead of a traceback.
* Scheduled (delegated) runs report with ``ctx.set_progress`` and return the
  summary, which the delegated operation stores.
* ``foo.get_operator(uri)(dataset, ...)`` calls the bridge in the calling
  thread and returns the summary (no operator timeout applies).

Closing the generator (App cancel), Ctrl-C or a failure stops the worker at
its next progress report: nothing is written, since results are committed
only after the computation finishes.
"""

import logging
import threading

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from .. import bridge
from ..core import params as P
from .common import resolve

logger = logging.getLogger(__name__)

_POLL_S = 0.5
_JOIN_S = 60.0


class Cancelled(Exception):
    """Raised inside a run whose caller went away (App cancel, Ctrl-C)."""


def long_running_config(name, label, description):
    """The config of an operator that reports progress and may be scheduled."""
    return foo.OperatorConfig(
        name=name,
        label=label,
        description=description,
        dynamic=True,
        execute_as_generator=True,
        allow_immediate_execution=True,
        allow_delegated_execution=True,
        # Schedule is offered by default where FiftyOne can run it (see README "Run in the background").
        default_choice_to_delegated=bool(fo.config.allow_legacy_orchestrators),
        disable_schema_validation=True,
    )


def run(ctx, work, *, label, outputs):
    """Runs ``work(progress)`` for an operator's ``execute``.

    Args:
        ctx: the execution context
        work: a callable taking a progress callback, returning a summary dict
        label: what the progress bar says, e.g. "ZCore"
        outputs: a callable ``(ctx, summary) -> types.Property`` for the result view
    """
    if ctx.delegated:
        return work(_delegated_progress(ctx, label))
    return _stream(ctx, work, label, outputs)


def _delegated_progress(ctx, label):
    last = [None]

    def progress(fraction):
        value = round(float(fraction), 2)
        if value != last[0]:
            last[0] = value
            ctx.set_progress(progress=value, label=f"{label}: {value:.0%}")

    return progress


def _stream(ctx, work, label, outputs):
    state = dict(fraction=0.0, cancel=False)
    outcome = {}

    def progress(fraction):
        if state["cancel"]:
            raise Cancelled(f"{label} was cancelled")
        state["fraction"] = float(fraction)

    def target():
        try:
            outcome["result"] = work(progress)
        except BaseException as error:  # reported by the generator
            outcome["error"] = error

    thread = threading.Thread(target=target, name=f"coreset-{label.lower()}", daemon=True)
    thread.start()
    try:
        last = None
        yield ctx.ops.set_progress(progress=0.0, label=f"{label}: starting")
        while thread.is_alive():
            thread.join(_POLL_S)
            value = round(state["fraction"], 3)
            if value != last:
                last = value
                yield ctx.ops.set_progress(progress=value, label=f"{label}: {value:.0%}")
    finally:
        if thread.is_alive():  # the App went away, or the generator was interrupted
            state["cancel"] = True
            thread.join(_JOIN_S)
    error = outcome.get("error")
    if error is not None and not _from_app(ctx):
        raise error  # foo.execute_operator: its ExecutionResult carries the error (the one sentence)
    if isinstance(error, ValueError):
        yield ctx.ops.set_progress(progress=1.0, label=f"{label}: stopped")
        yield ctx.ops.show_output(_error_view(label, error).to_json(), dict(error=str(error)))
        yield ctx.ops.notify(f"{label}: {error}", variant="error")
        return
    if isinstance(error, Exception) and not isinstance(error, Cancelled):
        # Not a bad input: a bug or a broken environment. The App would show its own dialog
        # (the result view with "No value provided" everywhere, then the traceback); one
        # sentence instead, the traceback in the App server's log.
        logger.error("%s failed", label, exc_info=error)
        sentence = f"{type(error).__name__}: {error}"
        yield ctx.ops.set_progress(progress=1.0, label=f"{label}: failed")
        yield ctx.ops.show_output(_failure_view(label, sentence).to_json(), dict(error=sentence))
        yield ctx.ops.notify(f"{label} failed: {sentence}", variant="error")
        return
    if error is not None:
        raise error
    summary = outcome["result"]
    yield ctx.ops.set_progress(progress=1.0, label=f"{label}: done")
    yield ctx.ops.show_output(outputs(ctx, summary).to_json(), _displayable(summary))
    yield ctx.ops.reload_dataset()
    yield ctx.ops.notify(_headline(label, summary), variant="warning" if summary.get("warning") else "success")


def _from_app(ctx):
    """Whether the App runs this generator: its requests name the operator, ``foo.execute_operator``'s do not.

    The App streams the generator, and an exception would cut the stream (the
    App would then show a network error): it is shown the error as one
    sentence instead. ``foo.execute_operator`` only exhausts the generator, so
    there the error is raised and lands in the ``ExecutionResult``.
    """
    return "operator_uri" in ctx.request_params


def _error_view(label, error):
    outputs = types.Object()
    outputs.view("error", types.Error(label=f"{label} did not run", description=str(error)))
    return types.Property(outputs, view=types.View(label=f"{label}: nothing was written"))


def _failure_view(label, sentence):
    outputs = types.Object()
    outputs.view("error", types.Error(
        label=f"{label} failed: {sentence}",
        description="Nothing was written. The traceback is in the log of the App's server (the terminal that "
        "runs the App); please add it to a bug report.",
    ))
    return types.Property(outputs, view=types.View(label=f"{label} failed"))


def _displayable(summary):
    return {k: (", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v) for k, v in summary.items()}


def _headline(label, summary):
    if summary.get("warning"):
        return f"{label}: {summary['warning']}"
    parts = [f"{k.replace('_', ' ')} {summary[k]}" for k in ("scored", "embedded", "kept", "flagged") if k in summary]
    return f"{label} finished: " + ", ".join(parts) if parts else f"{label} finished"


def summary_view(title, rows, summary):
    """A result view: one read-only line per ``(key, label)`` present in ``summary``, warnings first."""
    outputs = types.Object()
    # The App shows no title over a result view: the first line says what happened.
    outputs.view("result_title", types.Header(label=title, divider=True))
    if summary.get("warning"):
        outputs.view("warning", types.Warning(label="Warning", description=summary["warning"]))
    for key, label in rows:
        if summary.get(key) is not None:
            outputs.str(key, label=label)
    return types.Property(outputs, view=types.View(label=title))


def call(operator, function, collection, given, delegate, *, queueable=None):
    """An operator's SDK call: ``function(collection, ...)`` with ``given`` resolved, or queued when ``delegate``.

    A ``progress`` callback is the SDK's own (the App's runs report through ``run``).
    """
    progress = given.pop("progress", None)
    kwargs = resolve(function, given)
    if not P.boolean("delegate", delegate):
        return function(collection, progress=progress, **kwargs)
    if queueable is not None:
        queueable(kwargs)
    return queue(operator, collection, kwargs)


def queue(operator, collection, params):
    """Queues a run of ``operator`` on ``collection`` (a delegated operation); returns it."""
    collection = bridge.check_collection(collection)
    view = collection.view() if hasattr(collection, "view") else collection
    return foo.execute_operator(operator.uri, ctx=dict(view=view, params=params), request_delegation=True)
