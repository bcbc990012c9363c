"""Operator: save the coreset of a score field as a saved view."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .. import bridge
from .common import choice


class SaveCoresetView(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="save_coreset_view",
            label="Save coreset view",
            description="Keep the best-scored samples at a pruning rate and save them as a view",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = ctx.target_view()
        scores = bridge.numeric_fields(view)
        if not scores:
            inputs.view(
                "no_scores",
                types.Warning(label="No score field", description="Compute ZCore or mimic scores first."),
            )
            return types.Property(inputs, view=types.View(label="Save coreset view"))
        choice(inputs, "score_field", scores, default=scores[0], required=True, label="Score field")
        inputs.float(
            "prune_rate",
            default=0.5,
            required=True,
            label="Pruning rate",
            description="Fraction of the scored samples to remove, in [0, 1)",
            view=types.SliderView(componentsProps={"slider": {"min": 0, "max": 0.99, "step": 0.01}}),
        )
        inputs.str("view_name", required=True, label="Saved view name")
        choice(inputs, "keep", ["highest", "lowest"], default="highest", label="Keep")
        choice(
            inputs,
            "selection",
            list(bridge.SELECTION_MODES),
            default="auto",
            label="Selection",
            description="'auto': the recommended coverage-aware mode when embeddings are known, else 'top' "
            "(the best scores, as in the paper)",
        )
        labels = bridge.classification_fields(view)
        if labels:
            choice(inputs, "stratify_by", labels, label="Stratify by (same rate in each class)")
        vectors = bridge.vector_fields(view)
        if vectors:
            choice(inputs, "embeddings_field", vectors, label="Embeddings (for coverage modes)")
        inputs.str("tag", label="Tag kept samples (optional)")
        inputs.bool("overwrite", default=False, label="Overwrite a saved view of that name")
        return types.Property(inputs, view=types.View(label="Save coreset view"))

    def execute(self, ctx):
        params = ctx.params
        prune_rate = params.get("prune_rate")
        if prune_rate is None:
            raise ValueError("prune_rate is required: the fraction of scored samples to remove, in [0, 1)")
        summary = bridge.save_coreset_view(
            ctx.target_view(),
            params.get("score_field"),
            prune_rate,
            params.get("view_name"),
            keep=params.get("keep", "highest"),
            stratify_by=params.get("stratify_by") or None,
            selection=params.get("selection", "auto"),
            embeddings_field=params.get("embeddings_field") or None,
            seed=params.get("seed", 0),
            tag=params.get("tag") or None,
            overwrite=params.get("overwrite", False),
        )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return summary

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("view_name", label="Saved view")
        outputs.int("kept", label="Kept")
        outputs.int("pruned", label="Pruned")
        outputs.str("selection", label="Selection used")
        return types.Property(outputs, view=types.View(label="Coreset saved"))
