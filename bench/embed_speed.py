"""Images/s of core.embeddings.iter_embeddings against FiftyOne's compute_embeddings.

Both pipelines embed the same PNGs (sklearn's digits, upscaled) with the same
open_clip model: a random-init checkpoint of a real architecture (ViT-S-32 by
default) saved to a file and loaded by each side from that path. FiftyOne
uses its "open-clip-torch" zoo wrapper. Same batch size, same workers; both
are warmed up, then timed in alternating rounds and the median is reported.

    .venv/bin/python bench/embed_speed.py [--arch ViT-S-32] [--n 160]

The last line printed is ``ratio: X`` (ours / fiftyone images per second).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import open_clip  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from core import embeddings as E  # noqa: E402


def write_images(folder, n, size):
    digits = load_digits().images  # 1797 x 8 x 8, values 0..16
    paths = []
    for i in range(n):
        arr = (digits[i % len(digits)] * (255 / 16)).astype(np.uint8)
        im = Image.fromarray(arr).resize((size, size), Image.BILINEAR).convert("RGB")
        path = os.path.join(folder, f"digit_{i:05d}.png")
        im.save(path)
        paths.append(path)
    return paths


def run_ours(paths, loaded, batch_size, workers):
    out = np.empty((len(paths), loaded.embedding_dim), dtype=np.float32)
    for pos, vec, failed in E.iter_embeddings(
        paths, loaded, batch_size=batch_size, num_workers=workers, normalize=False
    ):
        assert not failed, failed
        out[pos] = vec
    return out


def run_fiftyone(dataset, model, batch_size, workers):
    return dataset.compute_embeddings(
        model, batch_size=batch_size, num_workers=workers, progress=False
    )


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

    import fiftyone as fo
    import fiftyone.zoo as foz

    tmp = tempfile.TemporaryDirectory(prefix="embed_speed_")
    paths = write_images(tmp.name, args.n, args.image_size)
    torch.manual_seed(0)
    ckpt = os.path.join(tmp.name, f"{args.arch}-random.pt")
    torch.save(open_clip.create_model(args.arch, pretrained=None).state_dict(), ckpt)

    ours = E.load_model(args.arch, ckpt, device=args.device)
    theirs = foz.load_zoo_model(
        "open-clip-torch", clip_model=args.arch, pretrained=ckpt, device=args.device
    )
    dataset = fo.Dataset()
    dataset.add_samples([fo.Sample(filepath=p) for p in paths])
    warm = dataset.limit(args.batch_size)

    print(
        f"model {args.arch} (random init, loaded from a checkpoint file), "
        f"{args.n} PNGs {args.image_size}x{args.image_size}, batch {args.batch_size}, "
        f"workers {args.workers}, device {args.device}, torch threads {torch.get_num_threads()}"
    )
    run_ours(paths[: args.batch_size], ours, args.batch_size, args.workers)
    run_fiftyone(warm, theirs, args.batch_size, args.workers)

    rates = {"ours": [], "fiftyone": []}
    results = {}
    for r in range(args.rounds):
        for name in ("ours", "fiftyone") if r % 2 == 0 else ("fiftyone", "ours"):
            t0 = time.perf_counter()
            if name == "ours":
                emb = run_ours(paths, ours, args.batch_size, args.workers)
            else:
                emb = np.asarray(run_fiftyone(dataset, theirs, args.batch_size, args.workers))
            rates[name].append(args.n / (time.perf_counter() - t0))
            results[name] = emb

    a, b = results["ours"], results["fiftyone"]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    print(f"same embeddings: min cosine ours vs fiftyone = {cos.min():.6f}")
    for name, vals in rates.items():
        print(
            f"{name:9s} {statistics.median(vals):7.1f} images/s  "
            f"(rounds: {', '.join(f'{v:.1f}' for v in vals)})"
        )
    dataset.delete()
    tmp.cleanup()
    print(f"bench took {time.perf_counter() - start:.0f} s")
    print(f"ratio: {statistics.median(rates['ours']) / statistics.median(rates['fiftyone']):.3f}")


if __name__ == "__main__":
    main()
