"""Operator: Grad-Mimic label-quality scores of a labelled dataset."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .. import bridge
from ..core.mimic import METHODS
from .common import blocked, choice, defaults_of, invalid, output_field_input, work
from .progress import call, long_running_config, run, summary_view

DEFAULTS = defaults_of(bridge.compute_mimic_scores)
FORM_ONLY = ("advanced", "missing_inputs", "missing_inputs_reason", "zero_shot_note")
REFERENCE_HELP = {
    "trusted": "Train the reference on samples whose labels you checked (a tag or a saved view)",
    "zero_shot": "Use the class names with the text tower of the model that computed the embeddings",
    "checkpoint": "Load a reference head (C x D, rows in sorted label order) from a .npy or .pt file",
}
ROWS = (
    ("scored", "Samples scored"),
    ("skipped_no_label", "Skipped (no label)"),
    ("skipped_no_embedding", "Skipped (no embedding)"),
    ("flagged", "Likely label errors (score < 0)"),
    ("reference_accuracy", "Reference head accuracy on its reference samples"),
    ("chance_accuracy", "Chance (majority class)"),
    ("tagged", "Tagged"),
    ("issue_tag", "Tag"),
    ("seconds", "Seconds"),
    ("score_field", "Score field"),
)


class ComputeMimicScores(foo.Operator):
    @property
    def config(self):
        return long_running_config(
            "compute_mimic_scores",
            "Compute mimic scores",
            "Grad-Mimic label quality: higher = label more likely correct; below 0 = likely error",
        )

    def __call__(self, sample_collection, embeddings_field, label_field, *, delegate=False, **kwargs):
        """Computes mimic scores of ``sample_collection``; returns the summary.

        Keyword arguments are those of ``bridge.compute_mimic_scores`` (the
        same defaults as the App form); ``delegate=True`` queues the run.
        """
        given = dict(embeddings_field=embeddings_field, label_field=label_field, **kwargs)
        return call(self, bridge.compute_mimic_scores, sample_collection, given, delegate)

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = ctx.target_view()
        bridge.recover(ctx.dataset)
        vectors = bridge.vector_fields(view)
        labels = bridge.classification_fields(view)
        missing = []
        if not vectors:
            missing.append("a vector field (run 'Compute embeddings' first)")
        if not labels:
            missing.append("a Classification label field")
        if missing:
            blocked(inputs, "missing_inputs", "Cannot score labels yet", "This view needs " + " and ".join(missing))
            return types.Property(inputs, view=types.View(label="Compute mimic scores"))

        choice(inputs, "embeddings_field", vectors, default=vectors[0], label="Embeddings field")
        choice(inputs, "label_field", labels, default=labels[0], label="Label field")
        reference = ctx.params.get("reference") or DEFAULTS["reference"]
        choice(
            inputs,
            "reference",
            list(bridge.MIMIC_REFERENCES),
            default=DEFAULTS["reference"],
            label="Reference",
            description=REFERENCE_HELP.get(reference),
        )
        if reference == "trusted":
            self._trusted_inputs(ctx, inputs)
        elif reference == "checkpoint":
            prop = inputs.str(
                "checkpoint_path",
                label="Head file",
                description="A .npy/.pt array (C, D) or (C, D + 1) with bias, or a dict with 'weight' and 'bias'",
            )
            if not ctx.params.get("checkpoint_path"):
                invalid(prop, "checkpoint_path: enter the path of the reference head file")
        else:
            inputs.view(
                "zero_shot_note",
                types.Notice(label="The embeddings must come from 'Compute embeddings' (its model's text tower is used)"),
            )
        output_field_input(inputs, ctx, view, bridge.MIMIC, DEFAULTS["score_field"])
        inputs.str(
            "issue_tag",
            default=DEFAULTS["issue_tag"],
            label="Tag likely label errors (score < 0)",
            description="E.g. label_issue: added to the flagged samples; a rerun or deleting the run removes it only from the samples "
            "this run added it to; empty: only write scores",
        )
        inputs.bool("advanced", default=False, label="Advanced parameters", view=types.SwitchView())
        if ctx.params.get("advanced", False):
            inputs.int("epochs", default=DEFAULTS["epochs"], label="Epochs")
            inputs.float("lr", default=DEFAULTS["lr"], label="Learning rate")
            inputs.int("batch_size", default=DEFAULTS["batch_size"], label="Batch size")
            choice(inputs, "method", list(METHODS), default=DEFAULTS["method"], label="Alignment")
            inputs.int("seed", label="Seed", description="Same seed, same scores (empty = random)")
            if reference == "zero_shot":
                choice(inputs, "device", ["auto", "cpu", "cuda"], default=DEFAULTS["device"], label="Device")
        return types.Property(inputs, view=types.View(label="Compute mimic scores"))

    @staticmethod
    def _trusted_inputs(ctx, inputs):
        dataset = ctx.dataset
        tags = sorted(dataset.distinct("tags"))
        saved = dataset.list_saved_views()
        default_tag = DEFAULTS["trusted_tag"]
        tag_prop = choice(
            inputs, "trusted_tag", tags, default=default_tag, label="Trusted tag",
            description="Samples whose labels you checked",
        )
        if saved:
            choice(inputs, "trusted_view", saved, label="Or a trusted saved view", description="Leave the tag empty")
        if not (ctx.params.get("trusted_tag") or default_tag) and not ctx.params.get("trusted_view"):
            invalid(
                tag_prop,
                "trusted_tag: pick the tag of samples whose labels you checked (or a trusted saved view); "
                + ("no sample has a tag yet" if not tags else f"tags: {', '.join(tags)}"),
            )

    def execute(self, ctx):
        return run(
            ctx,
            work(bridge.compute_mimic_scores, ctx.target_view(), ctx.params, form_only=FORM_ONLY),
            label="Mimic",
            outputs=lambda ctx, summary: summary_view("Mimic scores written", ROWS, summary),
        )

    def resolve_output(self, ctx):
        return summary_view("Mimic scores written", ROWS, {k: 1 for k, _ in ROWS})
