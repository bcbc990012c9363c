"""Operator: compute ZCore scores from one or more embedding fields."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .. import bridge
from ..core.zcore import DEFAULTS
from .common import as_list, choice
from .progress import add_stream_param, execute_with_progress, long_running_config


class ComputeZCoreScores(foo.Operator):
    @property
    def config(self):
        return long_running_config(
            "compute_zcore_scores",
            "Compute ZCore scores",
            "Zero-shot coreset scores: coverage minus redundancy of every sample",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = ctx.target_view()
        fields = bridge.vector_fields(view)
        if not fields:
            inputs.view(
                "no_embeddings",
                types.Warning(
                    label="No vector field",
                    description="Compute embeddings first (Compute embeddings operator), then score.",
                ),
            )
            return types.Property(inputs, view=types.View(label="Compute ZCore scores"))
        label = "Embeddings field(s)"
        description = "One or more vector fields; several are concatenated in this order"
        if isinstance(ctx.params.get("embeddings_field"), str):
            # The SDK may pass a single field name.
            choice(inputs, "embeddings_field", fields, label=label, description=description, required=True)
        else:
            inputs.list(
                "embeddings_field",
                types.String(),
                label=label,
                description=description,
                required=True,
                default=[fields[0]],
                view=types.AutocompleteView(choices=[types.Choice(f, label=f) for f in fields]),
            )
        inputs.str("score_field", default="zcore_score", label="Score field")
        inputs.int("seed", label="Seed", description="Same seed, same scores (empty = random)")
        inputs.bool("advanced", default=False, label="Advanced parameters", view=types.SwitchView())
        if ctx.params.get("advanced", False):
            inputs.str(
                "n_samples",
                default=str(DEFAULTS["n_samples"]),
                label="Sampling iterations",
                description="An integer, or 'auto' to sample until the target reliability or time budget",
            )
            inputs.float("target_reliability", default=0.9, label="Target reliability ('auto' only)")
            inputs.float("time_budget", label="Time budget in seconds ('auto' only)")
            inputs.int("sample_dim", default=DEFAULTS["sample_dim"], label="Dimensions per iteration")
            inputs.int("redundancy_nn", default=DEFAULTS["redundancy_nn"], label="Redundancy neighbours")
            inputs.float("redundancy_exp", default=DEFAULTS["redundancy_exp"], label="Redundancy exponent")
            inputs.bool("random_init", default=DEFAULTS["random_init"], label="Random initialisation")
            inputs.bool(
                "standardize",
                default=len(fields) > 1,
                label="Standardize each field",
                description="Centre and scale each embeddings field so no model's scale dominates",
            )
            choice(inputs, "device", ["auto", "cpu", "cuda"], default="auto", label="Device")
        add_stream_param(inputs, types)
        return types.Property(inputs, view=types.View(label="Compute ZCore scores"))

    def execute(self, ctx):
        params = ctx.params
        view = ctx.target_view()
        n_samples = params.get("n_samples", DEFAULTS["n_samples"])
        if isinstance(n_samples, str) and n_samples.strip().lower() != "auto":
            try:
                n_samples = int(float(n_samples))
            except ValueError:
                raise ValueError(f"n_samples must be a positive integer or 'auto', got {n_samples!r}") from None
        elif isinstance(n_samples, str):
            n_samples = "auto"
        fields = as_list(params.get("embeddings_field"))
        kwargs = dict(
            score_field=params.get("score_field") or "zcore_score",
            standardize=params.get("standardize", "auto"),
            n_samples=n_samples,
            sample_dim=params.get("sample_dim", DEFAULTS["sample_dim"]),
            redundancy_nn=params.get("redundancy_nn", DEFAULTS["redundancy_nn"]),
            redundancy_exp=params.get("redundancy_exp", DEFAULTS["redundancy_exp"]),
            random_init=params.get("random_init", DEFAULTS["random_init"]),
            seed=params.get("seed"),
            target_reliability=params.get("target_reliability", 0.9),
            time_budget=params.get("time_budget"),
            device=params.get("device", "auto"),
        )
        return execute_with_progress(
            ctx,
            lambda progress: bridge.compute_zcore_scores(view, fields, progress=progress, **kwargs),
            "ZCore",
        )

    def resolve_output(self, ctx):
        outputs = types.Object()
        for name, label in (
            ("scored", "Samples scored"),
            ("skipped", "Skipped (no embedding)"),
            ("seconds", "Seconds"),
            ("reliability", "Split-half reliability"),
            ("n_samples_used", "Iterations"),
        ):
            outputs.str(name, label=label)
        return types.Property(outputs, view=types.View(label="ZCore scores written"))
