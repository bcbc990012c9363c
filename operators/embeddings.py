"""Operator: embeddings from FiftyOne zoo models, several at once, of images or of a patches view's objects."""

import re

import fiftyone.operators as foo
import fiftyone.operators.types as types
import fiftyone.zoo as foz

from .. import bridge
from ..bridge import embeddings as E
from .common import as_list, choice, defaults_of, invalid, resolve, work
from .progress import call, long_running_config, run, summary_view

DEFAULTS = defaults_of(bridge.compute_embeddings)
FORM_ONLY = ("patches",)
PLAN = set(defaults_of(E.plan))
ROWS = (("embeddings_fields", "Fields written"), ("models", "Models"), ("embedded", "Vectors written"),
        ("skipped_existing", "Skipped (already embedded)"), ("skipped_unreadable", "Skipped (not a regular file)"),
        ("embedding_dims", "Dimensions"),
        ("failed", "Not embedded (unreadable images; a rerun retries them)"), ("seconds", "Seconds"))


class ComputeEmbeddings(foo.Operator):
    @property
    def config(self):
        return long_running_config("compute_embeddings", "Compute embeddings", "Embeddings from FiftyOne zoo models "
                                   "(open_clip with a tag or a local checkpoint, DINOv2, ResNet, ...)")

    def __call__(self, sample_collection, model=DEFAULTS["model"], embeddings_field=None, *, delegate=False, **kwargs):
        """``bridge.compute_embeddings`` of ``sample_collection``; ``delegate=True`` queues it (zoo models only)."""
        given = dict(model=model, embeddings_field=embeddings_field, **kwargs)
        return call(self, bridge.compute_embeddings, sample_collection, given, delegate, queueable=_queueable)

    def resolve_input(self, ctx):
        inputs, view, params = types.Object(), ctx.target_view(), ctx.params
        bridge.recover(ctx.dataset)
        models = as_list(params.get("model")) or [DEFAULTS["model"]]
        zoo = [types.Choice(n, label=n) for n in foz.list_zoo_models(tags="embeddings")]
        props = dict(model=inputs.list("model", types.String(), default=[DEFAULTS["model"]], label="Models",
                                       description="Zoo models with embeddings; each writes its own field",
                                       view=types.AutocompleteView(choices=zoo)))
        if E.OPEN_CLIP in models:
            import open_clip

            arch = params.get("clip_model") or DEFAULTS["clip_model"]
            tags = open_clip.list_pretrained_tags_by_model(arch) if arch in open_clip.list_models() else []
            props["clip_model"] = choice(inputs, "clip_model", open_clip.list_models(), default=DEFAULTS["clip_model"],
                                         label="open_clip architecture")
            props["pretrained"] = inputs.str(
                "pretrained", default=DEFAULTS["pretrained"], label="Pretrained weights",
                description="A tag of this architecture (downloaded on first use), or the path of a local checkpoint",
                view=types.AutocompleteView(choices=[types.Choice(t, label=t) for t in tags], allow_user_input=True))
        props["embeddings_field"] = inputs.list("embeddings_field", types.String(), label="Embeddings fields",
                                                default=[E.default_field(m) for m in models],
                                                description="One per model, in the same order")
        if hasattr(view, "patches_field"):
            inputs.view("patches", types.Notice(label=f"One vector per object of '{view.patches_field}', on its label"))
        else:
            props["patches_field"] = choice(inputs, "patches_field", sorted(view.get_field_schema(
                embedded_doc_type=E.LABEL_TYPES)), label="Objects (optional)", description="Embed the objects of "
                "this label field instead of the images")
        inputs.bool("skip_existing", default=DEFAULTS["skip_existing"], label="Skip items that already have a vector",
                    description="Resumes an interrupted run; off recomputes the view with the same model")
        inputs.bool("normalize", default=DEFAULTS["normalize"], label="L2-normalize the vectors")
        inputs.int("batch_size", default=DEFAULTS["batch_size"], label="Batch size")
        inputs.int("num_workers", label="Image-loading workers", description="Empty: FiftyOne's choice; 0 in-process")
        choice(inputs, "device", ["auto", "cpu", "cuda", "mps"], default=DEFAULTS["device"], label="Device")
        try:  # what can be known before running marks its field invalid, and Execute is disabled
            kwargs = resolve(bridge.compute_embeddings, params, form_only=FORM_ONLY)
            plans = E.plan(view, models, **{k: v for k, v in kwargs.items() if k in PLAN and k != "model"})[1]
            for problem in filter(None, map(E.offline_problem, plans)):
                raise ValueError(problem)
        except ValueError as error:
            invalid(props.get(re.match(r"\w*", str(error)).group(), props["model"]), str(error))
        return types.Property(inputs, view=types.View(label="Compute embeddings"))

    def execute(self, ctx):
        return run(ctx, work(bridge.compute_embeddings, ctx.target_view(), ctx.params, form_only=FORM_ONLY),
                   label="Embeddings", outputs=lambda ctx, summary: summary_view("Embeddings written", ROWS, summary))

    def resolve_output(self, ctx):
        return summary_view("Embeddings written", ROWS, {k: 1 for k, _ in ROWS})


def _queueable(kwargs):
    models = kwargs.get("model", DEFAULTS["model"])
    if not all(isinstance(m, (str, dict)) for m in (models if isinstance(models, (list, tuple)) else [models])):
        raise ValueError("delegate=True needs zoo model names: a Model object cannot be queued")
