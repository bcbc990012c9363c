"""Operator: compute ZCore scores from one or more embedding fields."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .. import bridge
from .common import as_list, blocked, choice, defaults_of, invalid, output_field_input, work
from .progress import call, long_running_config, run, summary_view

DEFAULTS = defaults_of(bridge.compute_zcore_scores)
FORM_ONLY = ("advanced", "no_embeddings", "no_embeddings_reason")
ROWS = (
    ("scored", "Samples scored"),
    ("skipped", "Skipped (no embedding)"),
    ("seconds", "Seconds"),
    ("reliability", "Split-half reliability"),
    ("reliability_note", "What the reliability means"),
    ("n_samples_used", "Iterations"),
    ("iterations_per_sample", "Iterations per sample"),
    ("stopped_by", "Stopped by"),
    ("seed", "Seed"),
    ("score_field", "Score field"),
)


class ComputeZCoreScores(foo.Operator):
    @property
    def config(self):
        return long_running_config(
            "compute_zcore_scores",
            "Compute ZCore scores",
            "Zero-shot coreset scores: coverage minus redundancy of every sample",
        )

    def __call__(self, sample_collection, embeddings_field, *, delegate=False, **kwargs):
        """Computes ZCore scores of ``sample_collection``; returns the summary.

        Keyword arguments are those of ``bridge.compute_zcore_scores`` (the
        same defaults as the App form). With ``delegate=True`` the run is
        queued as a delegated operation instead, which is returned.
        """
        given = dict(embeddings_field=embeddings_field, **kwargs)
        return call(self, bridge.compute_zcore_scores, sample_collection, given, delegate)

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = ctx.target_view()
        bridge.recover(ctx.dataset)
        fields = bridge.vector_fields(view)
        if not fields:
            blocked(
                inputs,
                "no_embeddings",
                "No vector field",
                "This view has no embeddings: run 'Compute embeddings' first, then score",
            )
            return types.Property(inputs, view=types.View(label="Compute ZCore scores"))
        chosen = as_list(ctx.params.get("embeddings_field")) or [fields[0]]
        prop = inputs.list(
            "embeddings_field",
            types.String(),
            label="Embeddings field(s)",
            description="One or more vector fields; several are concatenated in this order, each centred "
            "and divided by its RMS, so each field weighs in proportion to its dimension",
            default=[fields[0]],
            view=types.AutocompleteView(choices=[types.Choice(f, label=f) for f in fields]),
        )
        unknown = [f for f in chosen if f not in fields]
        if unknown:
            invalid(prop, f"embeddings_field: {unknown} are not vector fields of this view")
        output_field_input(inputs, ctx, view, bridge.ZCORE, DEFAULTS["score_field"])
        inputs.bool("overwrite", default=DEFAULTS["overwrite"], label="Overwrite a field this plugin did not write")
        inputs.int("seed", label="Seed", description="Same seed, same scores (empty = random)")
        inputs.bool("advanced", default=False, label="Advanced parameters", view=types.SwitchView())
        if ctx.params.get("advanced", False):
            inputs.str(
                "n_samples",
                default=str(DEFAULTS["n_samples"]),
                label="Sampling iterations",
                description="An integer (the paper: 1000000), or 'auto' to sample until the target reliability "
                "or the time budget",
            )
            inputs.float("target_reliability", default=DEFAULTS["target_reliability"], label="Target reliability ('auto')")
            inputs.float("time_budget", label="Time budget in seconds ('auto')")
            inputs.int("sample_dim", default=DEFAULTS["sample_dim"], label="Dimensions per iteration")
            inputs.int("redundancy_nn", default=DEFAULTS["redundancy_nn"], label="Redundancy neighbours")
            inputs.float("redundancy_exp", default=DEFAULTS["redundancy_exp"], label="Redundancy exponent")
            inputs.bool("random_init", default=DEFAULTS["random_init"], label="Random initialisation")
            choice(
                inputs, "standardize", ["auto", "true", "false"], default=str(DEFAULTS["standardize"]),
                label="Standardize each field", description="'auto': only when several fields are given",
            )
            choice(inputs, "device", ["auto", "cpu", "cuda"], default=DEFAULTS["device"], label="Device")
        return types.Property(inputs, view=types.View(label="Compute ZCore scores"))

    def execute(self, ctx):
        return run(
            ctx,
            work(bridge.compute_zcore_scores, ctx.target_view(), ctx.params, form_only=FORM_ONLY),
            label="ZCore",
            outputs=lambda ctx, summary: summary_view("ZCore scores written", ROWS, summary),
        )

    def resolve_output(self, ctx):
        return summary_view("ZCore scores written", ROWS, {k: 1 for k, _ in ROWS})
