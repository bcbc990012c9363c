"""Runs a long computation while reporting progress the way FiftyOne expects.

Immediate App runs stream ``set_progress`` messages from a generator; delegated
runs call ``ctx.set_progress``; SDK runs (``foo.execute_operator``) get the
summary dict back as the operator's result.
"""

import threading

import fiftyone.operators as foo

# A hidden form field: the App sends its default, the SDK does not.
STREAM_PARAM = "_stream_progress"


def long_running_config(name, label, description):
    """The config of an operator that reports progress and may be delegated."""
    return foo.OperatorConfig(
        name=name,
        label=label,
        description=description,
        dynamic=True,
        execute_as_generator=True,
        allow_immediate_execution=True,
        allow_delegated_execution=True,
    )


def add_stream_param(inputs, types):
    """Adds the hidden field that tells an App run apart from an SDK run."""
    inputs.bool(STREAM_PARAM, default=True, view=types.HiddenView())


def execute_with_progress(ctx, work, label):
    """Runs ``work(progress)`` in a worker thread and returns its result.

    Returns a generator of progress messages (ending in ``finish(result)``
    messages) when the App asked to stream, else the result itself.
    """
    if ctx.params.get(STREAM_PARAM, False) and not ctx.delegated:
        return _stream(ctx, work, label)
    return _drain(_poll(ctx, work, label, stream=False))


def _drain(generator):
    try:
        while True:
            next(generator)
    except StopIteration as stop:
        return stop.value


def _stream(ctx, work, label):
    result = yield from _poll(ctx, work, label, stream=True)
    yield ctx.ops.set_progress(progress=1.0, label="done")
    yield ctx.ops.notify(_describe(result), variant="success")
    yield ctx.ops.reload_dataset()


def _describe(result):
    if not isinstance(result, dict):
        return str(result)
    return ", ".join(f"{k}: {v}" for k, v in result.items() if not isinstance(v, (list, dict)))


def _poll(ctx, work, label, stream):
    state = {"progress": 0.0}
    outcome = {}

    def progress(fraction):
        state["progress"] = float(fraction)

    def target():
        try:
            outcome["result"] = work(progress)
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, name="coreset-worker", daemon=True)
    thread.start()
    last = None
    while thread.is_alive():
        thread.join(0.5)
        value = round(state["progress"], 3)
        if value == last:
            continue
        last = value
        text = f"{label}: {value:.0%}"
        if ctx.delegated:
            ctx.set_progress(progress=value, label=text)
        elif stream:
            yield ctx.ops.set_progress(progress=value, label=text)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
