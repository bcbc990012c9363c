"""Operator: delete the plugin's runs (their fields, tags and saved views) through the runs' cleanup."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .. import bridge
from .common import invalid

ROWS = (("deleted", "Runs deleted"), ("fields", "Fields removed"), ("saved_views", "Saved views removed"))
_PREFIX = "run__"


def _chosen(params):
    """Run keys from ``run_keys`` (SDK, execute_operator) and the form's ticked boxes (``run__<key>``)."""
    keys = params.get("run_keys") or []
    keys = [keys] if isinstance(keys, str) else list(keys)
    keys += [name[len(_PREFIX):] for name, value in params.items() if name.startswith(_PREFIX) and value is True]
    return list(dict.fromkeys(keys))


class DeleteCoresetRuns(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="delete_coreset_runs",
            label="Delete coreset runs",
            description="Delete this plugin's runs with the fields, tags and saved views they wrote",
            dynamic=True,
            allow_immediate_execution=True,
        )

    def __call__(self, sample_collection, run_keys):
        """Deletes these runs of ``sample_collection``'s dataset; returns the summary."""
        return bridge.delete_runs(sample_collection, run_keys)

    def resolve_input(self, ctx):
        inputs = types.Object()
        rows = bridge.run_table(ctx.dataset)
        if not rows:
            inputs.view("none", types.Notice(label="This dataset has no runs of the coreset plugin"))
            invalid(inputs.str("none_reason", default="nothing to delete", view=types.HiddenView()),
                    "nothing to delete")
            return types.Property(inputs, view=types.View(label="Delete coreset runs"))
        inputs.view("intro", types.Notice(label="Tick the runs to delete. Each takes the fields, tags and saved view "
                                          "it wrote with it; nothing else is touched."))
        for row in rows:
            inputs.bool(f"{_PREFIX}{row['run_key']}", default=False, label=bridge.describe_run(row),
                        view=types.CheckboxView())
        chosen = _chosen(ctx.params)
        if not chosen:
            invalid(inputs.str("choose", default="", view=types.HiddenView()), "Tick at least one run to delete")
        else:
            try:
                bridge.check_deletion(ctx.dataset, chosen)
            except ValueError as error:
                message = str(error).replace("run_keys: ", "").replace("choose those too", "tick those too")
                inputs.view("refused", types.Error(label="Cannot delete", description=message))
                invalid(inputs.str("refused_reason", default=message, view=types.HiddenView()), message)
        return types.Property(inputs, view=types.View(label="Delete coreset runs"))

    def execute(self, ctx):
        try:
            summary = bridge.delete_runs(ctx.dataset, _chosen(ctx.params))
        except ValueError as error:
            if "operator_uri" not in ctx.request_params:
                raise
            ctx.ops.notify(f"Delete coreset runs: {error}", variant="error")
            return dict(error=str(error))
        ctx.ops.reload_dataset()
        ctx.ops.notify(f"Deleted {summary['deleted']} run(s): {', '.join(summary['run_keys'])}", variant="success")
        return {k: (", ".join(v) if isinstance(v, list) else v) for k, v in summary.items()}

    def resolve_output(self, ctx):
        outputs = types.Object()
        for key, label in ROWS:
            outputs.str(key, label=label)
        return types.Property(outputs, view=types.View(label="Coreset runs deleted"))
