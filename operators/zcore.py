"""Operator: compute ZCore scores from one or more embedding fields."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .. import bridge
from ..core.zcore import PAPER_N_SAMPLES
from ..core.zcore_ray import BACKENDS
from .common import as_list, blocked, choice, defaults_of, invalid, output_field_input, work
from .progress import call, long_running_config, run, summary_view

DEFAULTS = defaults_of(bridge.compute_zcore_scores)
FORM_ONLY = ("advanced", "no_embeddings", "no_embeddings_reason")
ROWS = (
    ("scored", "Samples scored"),
    ("skipped", "Skipped (no embedding)"),
    ("seconds", "Seconds"),
    ("reliability", "Split-half reliability"),
    ("target_reliability", "Target reliability"),
    ("time_budget", "Time budget (seconds)"),
    ("reliability_note", "What the reliability means"),
    ("n_samples_used", "Draws (iterations, or lattice points of the converging engine)"),
    ("iterations_per_sample", "Draws per sample"),
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
        run_length_inputs(inputs, ctx.params)
        inputs.int("seed", label="Seed", description="Same seed, same scores (empty = random)")
        inputs.bool("advanced", default=False, label="Advanced parameters", view=types.SwitchView())
        if ctx.params.get("advanced", False):
            inputs.int("sample_dim", default=DEFAULTS["sample_dim"], label="Dimensions per iteration")
            inputs.int("redundancy_nn", default=DEFAULTS["redundancy_nn"], label="Redundancy neighbours")
            inputs.float("redundancy_exp", default=DEFAULTS["redundancy_exp"], label="Redundancy exponent")
            inputs.bool("random_init", default=DEFAULTS["random_init"], label="Random initialisation")
            choice(
                inputs, "standardize", ["auto", "true", "false"], default=str(DEFAULTS["standardize"]),
                label="Standardize each field", description="'auto': only when several fields are given",
            )
            choice(inputs, "device", ["auto", "cpu", "cuda"], default=DEFAULTS["device"], label="Device")
            choice(
                inputs, "backend", list(BACKENDS), default=DEFAULTS["backend"], label="Backend",
                description="'ray': the converging engine's pair visits as tasks on a Ray cluster "
                "(pip install -r requirements-ray.txt)",
            )
            if ctx.params.get("backend") == "ray":
                inputs.str("ray_address", label="Ray address", description="Empty: RAY_ADDRESS, else a local Ray")
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


def run_length_inputs(inputs, params):
    """How long the run goes: until reliable within a time budget (default), or the paper's fixed iterations."""
    inputs.str(
        "n_samples",
        default=str(DEFAULTS["n_samples"]),
        label="Run length",
        description="'auto': until the target reliability or the time budget, whichever comes first (with 2 "
        f"dimensions per iteration, the converging engine); {PAPER_N_SAMPLES}: the paper's setting, a fixed "
        "number of sampling iterations (noisy beyond ~10,000 samples); or another number of iterations",
        view=types.AutocompleteView(choices=[
            types.Choice("auto", label="auto: until reliable (recommended)"),
            types.Choice(str(PAPER_N_SAMPLES), label=f"{PAPER_N_SAMPLES}: the paper's setting"),
        ]),
    )
    if str(params.get("n_samples") or DEFAULTS["n_samples"]).strip().lower() != "auto":
        return
    inputs.float(
        "time_budget",
        default=DEFAULTS["time_budget"],
        label="Time budget (seconds)",
        description="The run stops here if it has not reached the target reliability, and says so",
    )
    inputs.float(
        "target_reliability",
        default=DEFAULTS["target_reliability"],
        label="Target reliability",
        description="Split-half reliability at which the run stops (1 = the ranking would not change with a "
        "longer run)",
    )
