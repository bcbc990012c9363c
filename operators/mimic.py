"""Operator: Grad-Mimic label-quality scores of a labelled dataset."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .. import bridge
from ..core.mimic import DEFAULTS, METHODS
from .common import choice
from .progress import add_stream_param, execute_with_progress, long_running_config

REFERENCE_HELP = {
    "trusted": "Train the reference on samples whose labels you checked (a tag or a saved view)",
    "zero_shot": "Use the class names with the text tower of the model that computed the embeddings",
    "checkpoint": "Load a reference head (C x D, rows in sorted label order) from a .npy or .pt file",
}


class ComputeMimicScores(foo.Operator):
    @property
    def config(self):
        return long_running_config(
            "compute_mimic_scores",
            "Compute mimic scores",
            "Grad-Mimic label quality: higher = label more likely correct; below 0 = likely error",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = ctx.target_view()
        vectors = bridge.vector_fields(view)
        labels = bridge.classification_fields(view)
        missing = []
        if not vectors:
            missing.append("a vector field (run Compute embeddings first)")
        if not labels:
            missing.append("a Classification label field")
        if missing:
            inputs.view(
                "missing_inputs",
                types.Warning(label="Cannot score labels yet", description="This dataset needs " + " and ".join(missing)),
            )
            return types.Property(inputs, view=types.View(label="Compute mimic scores"))

        choice(inputs, "embeddings_field", vectors, default=vectors[0], required=True, label="Embeddings field")
        choice(inputs, "label_field", labels, default=labels[0], required=True, label="Label field")
        reference = ctx.params.get("reference") or "trusted"
        choice(
            inputs,
            "reference",
            list(bridge.MIMIC_REFERENCES),
            default="trusted",
            label="Reference",
            description=REFERENCE_HELP.get(reference),
        )
        if reference == "trusted":
            dataset = ctx.dataset
            tags = sorted(dataset.distinct("tags"))
            saved = dataset.list_saved_views()
            choice(inputs, "trusted_tag", tags, label="Trusted tag", description="Samples with checked labels")
            if saved:
                choice(
                    inputs, "trusted_view", saved, label="Or a trusted saved view", description="Leave the tag empty"
                )
        elif reference == "checkpoint":
            inputs.str(
                "checkpoint_path",
                label="Head file",
                description="A .npy/.pt array (C, D) or (C, D + 1) with bias, or a dict with 'weight' and 'bias'",
            )
        else:
            inputs.view(
                "zero_shot_note",
                types.Notice(
                    label="The embeddings must come from Compute embeddings (its open_clip model is reloaded)"
                ),
            )
        inputs.str("score_field", default="mimic_score", label="Score field")
        inputs.str(
            "issue_tag",
            default="label_issue",
            label="Tag likely label errors (score < 0)",
            description="Leave empty to only write scores",
        )
        inputs.bool("advanced", default=False, label="Advanced parameters", view=types.SwitchView())
        if ctx.params.get("advanced", False):
            inputs.int("epochs", default=DEFAULTS["epochs"], label="Epochs")
            inputs.float("lr", default=DEFAULTS["lr"], label="Learning rate")
            inputs.int("batch_size", default=DEFAULTS["batch_size"], label="Batch size")
            choice(inputs, "method", list(METHODS), default=DEFAULTS["method"], label="Alignment")
            inputs.int("seed", label="Seed", description="Same seed, same scores (empty = random)")
            if reference == "zero_shot":
                choice(inputs, "device", ["auto", "cpu", "cuda"], default="auto", label="Device")
        add_stream_param(inputs, types)
        return types.Property(inputs, view=types.View(label="Compute mimic scores"))

    def execute(self, ctx):
        params = ctx.params
        view = ctx.target_view()
        kwargs = dict(
            reference=params.get("reference") or "trusted",
            trusted_tag=params.get("trusted_tag") or None,
            trusted_view=params.get("trusted_view") or None,
            checkpoint_path=params.get("checkpoint_path") or None,
            templates=params.get("templates") or None,
            score_field=params.get("score_field") or "mimic_score",
            issue_tag=params.get("issue_tag") or None,
            epochs=params.get("epochs", DEFAULTS["epochs"]),
            batch_size=params.get("batch_size", DEFAULTS["batch_size"]),
            lr=params.get("lr", DEFAULTS["lr"]),
            method=params.get("method") or DEFAULTS["method"],
            seed=params.get("seed"),
            device=params.get("device") or "auto",
        )
        embeddings_field = params.get("embeddings_field")
        label_field = params.get("label_field")
        return execute_with_progress(
            ctx,
            lambda progress: bridge.compute_mimic_scores(
                view, embeddings_field, label_field, progress=progress, **kwargs
            ),
            "Mimic",
        )

    def resolve_output(self, ctx):
        outputs = types.Object()
        for name, label in (
            ("scored", "Samples scored"),
            ("skipped_no_label", "Skipped (no label)"),
            ("skipped_no_embedding", "Skipped (no embedding)"),
            ("flagged", "Likely label errors (score < 0)"),
            ("tagged", "Tagged"),
            ("seconds", "Seconds"),
        ):
            outputs.str(name, label=label)
        return types.Property(outputs, view=types.View(label="Mimic scores written"))
