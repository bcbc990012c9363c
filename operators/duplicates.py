"""Operator: near-duplicate groups from an embeddings field."""

import fiftyone.core.fields as fof
import fiftyone.operators as foo
import fiftyone.operators.types as types

from .. import bridge
from ..core.duplicates import RADIUS_RATIO, REFERENCE_NEIGHBOR
from .common import blocked, choice, defaults_of, flag, invalid, work
from .progress import call, long_running_config, run, summary_view

DEFAULTS = defaults_of(bridge.find_near_duplicates)
FORM_ONLY = ("no_embeddings", "no_embeddings_reason")
ROWS = (
    ("message", "Result"),
    ("groups", "Near-duplicate groups"),
    ("copies", "Extra copies (in a group, not its representative)"),
    ("in_groups", "Samples in groups"),
    ("radius", "Radius"),
    ("radius_rule", "Radius rule"),
    ("samples", "Samples searched"),
    ("skipped", "Skipped (no embedding)"),
    ("seconds", "Seconds"),
    ("group_field", "Group field"),
    ("representative_field", "Representative field"),
)
RADIUS_HELP = (
    f"Leave empty for the automatic radius: {RADIUS_RATIO} x the median distance of a sample to its "
    f"{REFERENCE_NEIGHBOR}th nearest neighbour (copies with small noise fall far inside it, distinct samples "
    "outside it); or a Euclidean distance in the embedding space"
)


class FindNearDuplicates(foo.Operator):
    @property
    def config(self):
        return long_running_config(
            "find_near_duplicates",
            "Find near-duplicates",
            "Groups of near-duplicate samples (or objects of a patches view), one representative each",
        )

    def __call__(self, sample_collection, embeddings_field, *, delegate=False, **kwargs):
        """Finds near-duplicate groups in ``sample_collection``; returns the summary.

        Keyword arguments are those of ``bridge.find_near_duplicates`` (the
        same defaults as the App form); ``delegate=True`` queues the run.
        """
        given = dict(embeddings_field=embeddings_field, **kwargs)
        return call(self, bridge.find_near_duplicates, sample_collection, given, delegate)

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = ctx.target_view()
        bridge.recover(ctx.dataset)
        fields = bridge.duplicates_vector_fields(view)
        if not fields:
            blocked(inputs, "no_embeddings", "No vector field",
                    "This view has no embeddings: run 'Compute embeddings' first, then find near-duplicates")
            return types.Property(inputs, view=types.View(label="Find near-duplicates"))
        prop = choice(inputs, "embeddings_field", fields, label="Embeddings field", default=fields[0], required=True)
        chosen = ctx.params.get("embeddings_field") or fields[0]
        if chosen not in fields:
            invalid(prop, f"Embeddings field: '{chosen}' is not a vector field of this view; choose one of {fields}")
        inputs.float("radius", label="Radius (optional)", description=RADIUS_HELP)
        for name, label in (("group_field", "Group field"), ("representative_field", "Representative field")):
            box = inputs.str(name, default=DEFAULTS[name], label=label)
            method_ftype = dict(group_field=fof.IntField, representative_field=fof.BooleanField)[name]
            try:
                bridge.check_output_field(view, ctx.params.get(name) or DEFAULTS[name], bridge.DUPLICATES,
                                          param=label, ftype=method_ftype, overwrite=flag(ctx.params, "overwrite"),
                                          patches=True)
            except ValueError as error:
                invalid(box, str(error))
        inputs.bool("overwrite", default=DEFAULTS["overwrite"], label="Overwrite a field this plugin did not write")
        return types.Property(inputs, view=types.View(label="Find near-duplicates"))

    def execute(self, ctx):
        return run(
            ctx,
            work(bridge.find_near_duplicates, ctx.target_view(), ctx.params, form_only=FORM_ONLY),
            label="Near-duplicates",
            outputs=lambda ctx, summary: summary_view("Near-duplicate groups written", ROWS, summary),
        )

    def resolve_output(self, ctx):
        return summary_view("Near-duplicate groups written", ROWS, {k: 1 for k, _ in ROWS})
