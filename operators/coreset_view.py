"""Operators: compute a coreset order, and save the coreset at a pruning rate as a view."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .. import bridge
from .common import blocked, choice, defaults_of, flag, invalid, work
from .progress import call, long_running_config, run, summary_view

SAVE_DEFAULTS = defaults_of(bridge.save_coreset_view)
ORDER_DEFAULTS = defaults_of(bridge.compute_coreset_order)
FORM_ONLY = ("no_scores", "no_scores_reason")
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
        inputs.float(
            "prune_rate",
            default=SAVE_DEFAULTS["prune_rate"],
            label="Pruning rate",
            description="Fraction of the scored samples to remove, in [0, 1); type a value or use the slider",
            view=types.FieldView(),
        )
        rate = ctx.params.get("prune_rate")
        name = (ctx.params.get("view_name") or "").strip()
        prop = inputs.str("view_name", label="Saved view name")
        overwrite = flag(ctx.params, "overwrite")
        if not name:
            invalid(prop, "view_name: enter a name for the saved view")
        else:
            try:
                bridge.check_view_name(ctx.dataset, name, overwrite=overwrite)
            except ValueError as error:
                invalid(prop, str(error).replace("pass overwrite=True", "tick Overwrite"))
        if rate is not None:
            try:
                bridge_rate = float(rate)
                if not 0 <= bridge_rate < 1:
                    raise ValueError
            except (TypeError, ValueError):
                invalid(inputs.properties["prune_rate"], "prune_rate: enter a number in [0, 1), e.g. 0.7")
        inputs.str("tag", label="Tag kept samples (optional)",
                   description="Added to the kept samples; a re-save or deleting the run removes it only from the "
                   "samples this save added it to")
        inputs.bool("overwrite", default=SAVE_DEFAULTS["overwrite"], label="Overwrite a saved view of that name")
        return types.Property(inputs, view=types.View(label="Save coreset view"))

    def execute(self, ctx):
        return run(
            ctx,
            work(bridge.save_coreset_view, ctx.target_view(), ctx.params, form_only=FORM_ONLY),
            label="Coreset view",
            outputs=lambda ctx, summary: summary_view("Coreset saved", SAVE_ROWS, summary),
        )

    def resolve_output(self, ctx):
        return summary_view("Coreset saved", SAVE_ROWS, {k: 1 for k, _ in SAVE_ROWS})
