"""Images/s of the plugin's compute_embeddings against plain FiftyOne compute_embeddings.

Both sides embed the same PNGs (sklearn's digits, upscaled) with the same
open_clip model, a random-init checkpoint of a real architecture (ViT-S-32 by
default) saved to a file. Both load it from that path through FiftyOne's
"open-clip-torch" zoo model and write a vector field: the plugin with
``bridge.compute_embeddings`` (run records, resumable writes, float32 unit
vectors, failure counts), FiftyOne with ``foz.load_zoo_model`` +
``dataset.compute_embeddings``. Same batch size and workers; one warm-up each,
then alternating timed rounds; medians are reported.

    .venv/bin/python bench/embed_speed.py [--arch ViT-S-32] [--n 160]

The last line printed is ``ratio: X`` (plugin / FiftyOne images per second).
"""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

from harness import configure_environment, plugin_package  # noqa: E402

configure_environment(os.environ.get("CORESET_BENCH_STATE") or pathlib.Path(tempfile.gettempdir()) / "coreset-bench")

import numpy as np  # noqa: E402
import open_clip  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import fiftyone as fo  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402


def write_images(folder, n, size):
    digits = load_digits().images  # 1797 x 8 x 8, values 0..16
    paths = []
    for i in range(n):
        arr = (digits[i % len(digits)] * (255 / 16)).astype(np.uint8)
        path = os.path.join(folder, f"digit_{i:05d}.png")
        Image.fromarray(arr).resize((size, size), Image.BILINEAR).convert("RGB").save(path)
        paths.append(path)
    return paths


def main():
    start = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="ViT-S-32", help="open_clip architecture")
    ap.add_argument("--n", type=int, default=160, help="number of images")
    ap.add_argument("--image-size", type=int, default=64, help="side of the PNGs")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    bridge = __import__(plugin_package().__name__ + ".bridge", fromlist=["bridge"])

    tmp = tempfile.TemporaryDirectory(prefix="embed_speed_")
    paths = write_images(tmp.name, args.n, args.image_size)
    torch.manual_seed(0)
    ckpt = os.path.join(tmp.name, f"{args.arch}-random.pt")
    torch.save(open_clip.create_model(args.arch, pretrained=None).state_dict(), ckpt)
    dataset = fo.Dataset(f"embed-speed-{uuid.uuid4().hex[:8]}")
    dataset.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)
    kwargs = dict(batch_size=args.batch_size, num_workers=args.workers)

    def plugin(view):
        bridge.compute_embeddings(view, clip_model=args.arch, pretrained=ckpt, embeddings_field="plugin",
                                  device=args.device, skip_existing=False, **kwargs)

    def fiftyone(view):
        model = foz.load_zoo_model("open-clip-torch", clip_model=args.arch, pretrained=ckpt, device=args.device,
                                   cache=False)
        view.compute_embeddings(model, embeddings_field="fiftyone", progress=False, **kwargs)

    print(
        f"model {args.arch} (random init, loaded from a checkpoint file by both), {args.n} PNGs "
        f"{args.image_size}x{args.image_size}, batch {args.batch_size}, workers {args.workers}, device "
        f"{args.device}, torch threads {torch.get_num_threads()}; both sides load the model in every round"
    )
    warm = dataset.limit(args.batch_size)
    plugin(warm)
    fiftyone(warm)
    rates = {"plugin": [], "fiftyone": []}
    for r in range(args.rounds):
        for name in ("plugin", "fiftyone") if r % 2 == 0 else ("fiftyone", "plugin"):
            t0 = time.perf_counter()
            (plugin if name == "plugin" else fiftyone)(dataset)
            rates[name].append(args.n / (time.perf_counter() - t0))

    a, b = np.stack(dataset.values("plugin")), np.stack(dataset.values("fiftyone")).astype(np.float32)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    print(f"same embeddings: min cosine plugin vs fiftyone = {cos.min():.6f}")
    for name, vals in rates.items():
        print(f"{name:9s} {statistics.median(vals):7.1f} images/s  (rounds: {', '.join(f'{v:.1f}' for v in vals)})")
    dataset.delete()
    tmp.cleanup()
    print(f"bench took {time.perf_counter() - start:.0f} s")
    print(f"ratio: {statistics.median(rates['plugin']) / statistics.median(rates['fiftyone']):.3f}")


if __name__ == "__main__":
    main()
