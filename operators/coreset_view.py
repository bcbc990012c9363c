"""Operators: compute a coreset order, and save the coreset at a pruning rate as a view."""

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from .. import bridge
from ..core import order as core_order
from .common import blocked, choice, defaults_of, flag, invalid, work
from .progress import call, long_running_config, run, summary_view

SAVE_DEFAULTS = defaults_of(bridge.save_coreset_view)
PERCENT_LABEL, COUNT_LABEL, NAME_LABEL = "Pruning rate (%)", "or keep N samples", "Saved view name"
#: work expected to take longer than this is offered as Schedule (delegated) by default
SCHEDULE_ABOVE_S = 30.0
#: seconds per scored sample of a coreset order, measured at 20k samples on a loaded 2-core machine
#: (top 5.8 s, coverage 13.3 s, cluster 11.5 s; prototype and ccs taken as coverage)
_ORDER_S_PER_SAMPLE = dict(top=5.8 / 20_000, ccs=13.3 / 20_000, cluster=11.5 / 20_000, coverage=13.3 / 20_000,
                           prototype=13.3 / 20_000)
ORDER_DEFAULTS = defaults_of(bridge.compute_coreset_order)
FORM_ONLY = ("no_scores", "no_scores_reason", "preview")
SELECTION_HELP = (
    f"'auto' (default): '{bridge.DEFAULT_SELECTION}' (coverage-aware, from the embeddings the score was computed "
    "on), or 'top' when no embeddings are known; 'top': the best scores, as in the ZCore paper"
)
SAVE_ROWS = (
    ("view_name", "Saved view"),
    ("kept", "Kept"),
    ("pruned", "Pruned"),
    ("selection", "Selection used"),
    ("note", "Note"),
    ("rank_field", "Coreset order (rank field)"),
    ("seconds", "Seconds"),
)
ORDER_ROWS = (
    ("rank_field", "Rank field"),
    ("scored", "Samples ranked"),
    ("unscored", "Without a score (not ranked)"),
    ("selection", "Selection"),
    ("note", "Note"),
    ("seconds", "Seconds"),
)


def _coreset_form(ctx):
    """``(inputs, view, ready)``: the shared form, or a blocked one when nothing is scored yet."""
    inputs = types.Object()
    view = ctx.target_view()
    bridge.recover(ctx.dataset)
    if not bridge.score_fields(view):
        blocked(inputs, "no_scores", "No score field", "Compute ZCore scores first")
        return inputs, view, False
    _coreset_inputs(ctx, inputs, view)
    return inputs, view, True


def _coreset_inputs(ctx, inputs, view):
    """The shared form: score field, keep, selection, stratification, embeddings."""
    scores = bridge.score_fields(view)
    default = bridge.default_score_field(view)
    choice(inputs, "score_field", scores, default=default, label="Score field",
           description="The latest ZCore scores by default")
    choice(inputs, "keep", list(bridge.KEEP), default=SAVE_DEFAULTS["keep"], label="Keep")
    choice(inputs, "selection", ["auto", *bridge.SELECTIONS], default=SAVE_DEFAULTS["selection"], label="Selection",
           description=SELECTION_HELP)
    labels = bridge.classification_fields(view)
    if labels:
        choice(inputs, "stratify_by", labels, label="Stratify by (same rate in each class)")
    vectors = bridge.vector_fields(view)
    if vectors:
        score_field = ctx.params.get("score_field") or default
        recorded = bridge.recorded_embeddings_fields(view, score_field) if score_field else None
        choice(inputs, "embeddings_field", vectors, default=(recorded or [None])[0],
               label="Embeddings (coverage-aware selections)",
               description="Default: the field(s) the score was computed from")


class ComputeCoresetOrder(foo.Operator):
    @property
    def config(self):
        return long_running_config(
            "compute_coreset_order",
            "Compute coreset order",
            "Rank the scored samples once, so that the coreset at every pruning rate is a prefix",
        )

    def __call__(self, sample_collection, score_field, *, delegate=False, **kwargs):
        """Computes a coreset order of ``sample_collection``; returns the summary."""
        given = dict(score_field=score_field, **kwargs)
        return call(self, bridge.compute_coreset_order, sample_collection, given, delegate)

    def resolve_input(self, ctx):
        inputs, _, _ = _coreset_form(ctx)
        return types.Property(inputs, view=types.View(label="Compute coreset order"))

    def resolve_execution_options(self, ctx):
        return _execution_options(ctx, _order_seconds(ctx.target_view(), ctx.params))

    def execute(self, ctx):
        return run(
            ctx,
            work(bridge.compute_coreset_order, ctx.target_view(), ctx.params, form_only=FORM_ONLY),
            label="Coreset order",
            outputs=lambda ctx, summary: summary_view("Coreset order computed", ORDER_ROWS, summary),
        )

    def resolve_output(self, ctx):
        return summary_view("Coreset order computed", ORDER_ROWS, {k: 1 for k, _ in ORDER_ROWS})


class SaveCoresetView(foo.Operator):
    @property
    def config(self):
        return long_running_config(
            "save_coreset_view",
            "Save coreset view",
            "Keep a coreset at a pruning rate and save it as a frozen view",
        )

    def __call__(self, sample_collection, score_field, prune_rate=SAVE_DEFAULTS["prune_rate"], view_name=None, *,
                 delegate=False, **kwargs):
        """Saves the coreset of ``sample_collection`` at ``prune_rate``; returns the summary."""
        given = dict(score_field=score_field, prune_rate=prune_rate, view_name=view_name, **kwargs)
        return call(self, bridge.save_coreset_view, sample_collection, given, delegate)

    def resolve_input(self, ctx):
        inputs, view, ready = _coreset_form(ctx)
        if not ready:
            return types.Property(inputs, view=types.View(label="Save coreset view"))
        score_field = ctx.params.get("score_field") or bridge.default_score_field(view)
        scored = view.exists(score_field).count() if score_field in bridge.score_fields(view) else 0
        percent_prop = inputs.float(
            "prune_percent",
            default=100 * SAVE_DEFAULTS["prune_rate"],
            label=PERCENT_LABEL,
            description="Percent of the scored samples to remove, from 0 to 99 (0.7 means 0.7 %)",
            view=types.FieldView(),
        )
        count_prop = inputs.int("keep_count", label=COUNT_LABEL,
                                description="Instead of a rate: how many of the scored samples to keep",
                                view=types.FieldView())
        name = (ctx.params.get("view_name") or "").strip()
        prop = inputs.str("view_name", label=NAME_LABEL)
        overwrite = flag(ctx.params, "overwrite")
        if not name:
            invalid(prop, f"{NAME_LABEL}: enter a name for the saved view")
        else:
            try:
                bridge.check_view_name(ctx.dataset, name, overwrite=overwrite)
            except ValueError as error:
                invalid(prop, _labelled(str(error)).replace("pass overwrite=True", "tick Overwrite"))
        try:
            kept = _kept(ctx.params, scored)
        except ValueError as error:
            invalid(count_prop if ctx.params.get("keep_count") not in (None, "") else percent_prop, str(error))
        else:
            if scored:
                inputs.view("preview", types.Notice(
                    label=f"Keeps {kept:,} of the {scored:,} samples scored in '{score_field}' "
                    f"(prunes {scored - kept:,})"))
        inputs.str("tag", label="Tag kept samples (optional)",
                   description="Added to the kept samples; a re-save or deleting the run removes it only from the "
                   "samples this save added it to")
        inputs.bool("overwrite", default=SAVE_DEFAULTS["overwrite"], label="Overwrite a saved view of that name")
        return types.Property(inputs, view=types.View(label="Save coreset view"))

    def resolve_execution_options(self, ctx):
        return _execution_options(ctx, _save_seconds(ctx))

    def execute(self, ctx):
        return run(
            ctx,
            work(bridge.save_coreset_view, ctx.target_view(), _sdk_params(ctx.params), form_only=FORM_ONLY),
            label="Coreset view",
            outputs=lambda ctx, summary: summary_view("Coreset saved", SAVE_ROWS, summary),
        )

    def resolve_output(self, ctx):
        return summary_view("Coreset saved", SAVE_ROWS, {k: 1 for k, _ in SAVE_ROWS})


def _labelled(message):
    """A bridge message in the save form's words: its labels instead of the Python parameter names."""
    for param, label in (("view_name", NAME_LABEL), ("prune_rate", PERCENT_LABEL), ("kept", COUNT_LABEL)):
        if message.startswith(param + ":") or message.startswith(param + " "):
            return label + (":" if message.startswith(param + " ") else "") + message[len(param):]
    return message


def _kept(params, scored):
    """The kept count the form's rate (percent) or keep-N gives, or a ValueError in the form's words."""
    count = params.get("keep_count")
    if count not in (None, ""):
        try:
            count = float(count)
        except (TypeError, ValueError):
            count = None
        if count is None or count != int(count) or not 1 <= count <= max(scored, 1):
            raise ValueError(f"{COUNT_LABEL}: enter a whole number from 1 to {scored:,}, or clear it to use the rate")
        return int(count)
    percent = params.get("prune_percent")
    percent = 100 * SAVE_DEFAULTS["prune_rate"] if percent in (None, "") else percent
    try:
        percent = float(percent)
    except (TypeError, ValueError):
        percent = None
    if percent is None or not 0 <= percent < 100:
        raise ValueError(f"{PERCENT_LABEL}: enter a percent from 0 to below 100 (0.7 means 0.7 %), "
                         f"got {params.get('prune_percent')!r}")
    return core_order.kept_count(scored, percent / 100.0)


def _sdk_params(params):
    """The form's percent and keep-N as the SDK's ``prune_rate`` (a fraction) and ``kept``."""
    params = dict(params)
    percent, count = params.pop("prune_percent", None), params.pop("keep_count", None)
    if count not in (None, ""):
        params["kept"] = count
    elif percent not in (None, ""):
        try:
            params["prune_rate"] = float(percent) / 100.0
        except (TypeError, ValueError):
            raise ValueError(f"{PERCENT_LABEL}: enter a percent from 0 to below 100, got {percent!r}") from None
    return params


def _order_seconds(view, params):
    """Expected seconds of a coreset order of ``view`` with these settings (0 when a stored one is up to date)."""
    score_field = params.get("score_field") or bridge.default_score_field(view)
    if not score_field:
        return 0.0
    try:
        selection, _, _ = bridge.resolve_selection(view, score_field, params.get("selection"),
                                                   params.get("embeddings_field"))
        if params.get("rank_field") is None and bridge.find_order(
                view, score_field, selection=selection, keep=params.get("keep") or "highest",
                stratify_by=params.get("stratify_by"), embeddings_field=params.get("embeddings_field")):
            return 0.0
    except ValueError:
        return 0.0  # the form shows the error; nothing runs
    return view.exists(score_field).count() * _ORDER_S_PER_SAMPLE.get(selection, max(_ORDER_S_PER_SAMPLE.values()))


def _save_seconds(ctx):
    return _order_seconds(ctx.target_view(), dict(ctx.params, rank_field=None))


def _execution_options(ctx, seconds):
    """Schedule (delegated) by default only for work expected to take more than :data:`SCHEDULE_ABOVE_S`."""
    return foo.ExecutionOptions(
        allow_immediate_execution=True,
        allow_delegated_execution=True,
        default_choice_to_delegated=bool(fo.config.allow_legacy_orchestrators) and seconds > SCHEDULE_ABOVE_S,
    )
