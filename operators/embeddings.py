"""Operator: compute image embeddings with an open_clip model."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .. import bridge
from .common import choice
from .progress import long_running_config, run, summary_view

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
ROWS = (
    ("embedded", "Samples embedded"),
    ("skipped_existing", "Skipped (already embedded)"),
    ("failed", "Unreadable images (skipped)"),
    ("embedding_dim", "Embedding dimension"),
    ("seconds", "Seconds"),
)


def _engine():
    from ..core import embeddings  # torch + open_clip: imported when the form opens, not at plugin load

    return embeddings


def _pretrained_tags(engine, model):
    try:
        return engine.list_pretrained_tags(model)
    except ValueError:
        return []


class ComputeEmbeddings(foo.Operator):
    @property
    def config(self):
        return long_running_config(
            "compute_embeddings",
            "Compute embeddings",
            "Image embeddings with an open_clip model (a published tag or a local checkpoint)",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = ctx.target_view()
        if view.media_type == "video":
            inputs.view(
                "video",
                types.Warning(
                    label="Video dataset",
                    description=(
                        "Embeddings are computed on images. Convert the videos to frames "
                        "(dataset.to_frames(sample_frames=True)), open the frames view, and run this "
                        "operator there."
                    ),
                ),
            )
            return types.Property(inputs, view=types.View(label="Compute embeddings"))

        engine = _engine()
        choice(
            inputs,
            "model",
            engine.list_architectures(),
            default=DEFAULT_MODEL,
            required=True,
            label="Architecture",
            description="An open_clip architecture",
        )
        model = ctx.params.get("model") or DEFAULT_MODEL
        tags = _pretrained_tags(engine, model)
        default = DEFAULT_PRETRAINED if DEFAULT_PRETRAINED in tags else (tags[0] if tags else None)
        inputs.str(
            "pretrained",
            default=default,
            required=True,
            label="Pretrained weights",
            description=(
                "A published tag of this architecture (downloaded on first use, needs internet), "
                "or the path of a local checkpoint file (.pt/.pth/.bin/.safetensors)"
            ),
            view=types.AutocompleteView(
                choices=[types.Choice(t, label=t) for t in tags], allow_user_input=True
            ),
        )
        inputs.str(
            "embeddings_field",
            default=bridge.DEFAULT_EMBEDDINGS_FIELD,
            label="Embeddings field",
            description="The vector field to write",
        )
        inputs.bool(
            "skip_existing",
            default=True,
            label="Skip samples that already have embeddings",
            description="Resumes an interrupted run; off recomputes every sample of the view",
        )
        inputs.bool("normalize", default=True, label="L2-normalize the vectors")
        inputs.int("batch_size", default=32, label="Batch size")
        inputs.int("num_workers", default=2, label="Image-loading workers", description="0 loads in-process")
        choice(inputs, "device", ["auto", "cpu", "cuda"], default="auto", label="Device")
        return types.Property(inputs, view=types.View(label="Compute embeddings"))

    def execute(self, ctx):
        params = ctx.params
        view = ctx.target_view()
        kwargs = dict(
            embeddings_field=params.get("embeddings_field") or bridge.DEFAULT_EMBEDDINGS_FIELD,
            batch_size=params.get("batch_size", 32),
            num_workers=params.get("num_workers", 2),
            device=params.get("device") or "auto",
            skip_existing=params.get("skip_existing", True),
            normalize=params.get("normalize", True),
        )
        model = params.get("model") or DEFAULT_MODEL
        pretrained = params.get("pretrained", DEFAULT_PRETRAINED)
        return run(
            ctx,
            lambda progress: bridge.compute_embeddings(view, model, pretrained, progress=progress, **kwargs),
            label="Embeddings",
            outputs=lambda ctx, summary: summary_view("Embeddings written", ROWS, summary),
        )

    def resolve_output(self, ctx):
        return summary_view("Embeddings written", ROWS, {k: 1 for k, _ in ROWS})
