"""Offline demo: digits as PNGs -> embeddings -> ZCore scores -> a 70 % pruned coreset view.

Usage: .venv/bin/python demo.py [--app] [--n-samples N]
Needs no network and no model weights (embeddings are a PCA of the pixels).
Runs the operators through their SDK calls, ``foo.get_operator(uri)(dataset, ...)``.
"""

import argparse
import os
import pathlib
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent
DATASET = "coreset-digits-demo"


def _environment():
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    if "FIFTYONE_PLUGINS_DIR" not in os.environ:
        plugins = pathlib.Path(tempfile.gettempdir()) / "coreset-curation-demo-plugins"
        plugins.mkdir(exist_ok=True)
        link = plugins / "coreset-curation"
        if not link.exists():
            link.symlink_to(ROOT, target_is_directory=True)
        os.environ["FIFTYONE_PLUGINS_DIR"] = str(plugins)


def build_dataset(fo, image_dir):
    """A persistent dataset of the 1,797 scikit-learn digits written as PNGs."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    image_dir.mkdir(parents=True, exist_ok=True)
    train, _ = train_test_split(
        np.arange(len(digits.target)), test_size=0.4, random_state=0, stratify=digits.target
    )
    train = set(train.tolist())
    if fo.dataset_exists(DATASET):
        fo.delete_dataset(DATASET)
    dataset = fo.Dataset(DATASET, persistent=True)
    samples = []
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        path = image_dir / f"digit_{i:04d}.png"
        if not path.exists():
            pixels = (image * (255 / 16)).astype(np.uint8)
            Image.fromarray(pixels).resize((64, 64), Image.NEAREST).save(path)
        samples.append(
            fo.Sample(
                filepath=str(path),
                ground_truth=fo.Classification(label=str(label)),
                tags=["train" if i in train else "test"],
            )
        )
    dataset.add_samples(samples, progress=False)
    embeddings = PCA(n_components=32, random_state=0).fit_transform(digits.data / 16.0)
    dataset.set_values("pca_embeddings", list(embeddings.astype(np.float32)))
    return dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", action="store_true", help="launch the App on the dataset afterwards")
    parser.add_argument("--n-samples", default="auto",
                        help="ZCore run length: 'auto' (until reliable) or a number of iterations (the paper: 1000000)")
    parser.add_argument("--prune-rate", type=float, default=0.7)
    args = parser.parse_args()

    _environment()
    import fiftyone as fo
    import fiftyone.operators as foo

    start = time.perf_counter()
    dataset = build_dataset(fo, ROOT / "demo_data" / "digits")
    print(f"dataset '{dataset.name}': {len(dataset)} digit images, embeddings 'pca_embeddings' (PCA-32)")

    zcore = foo.get_operator("@coreset/curation/compute_zcore_scores")
    n_samples = args.n_samples if args.n_samples == "auto" else int(args.n_samples)
    scores = zcore(dataset, "pca_embeddings", n_samples=n_samples, seed=0)
    print(
        f"ZCore: scored {scores['scored']} samples in {scores['seconds']:.1f} s, split-half reliability "
        f"{scores['reliability']} (stopped by {scores['stopped_by']}; {scores['n_samples_used']:,} draws)"
    )
    if scores["warning"]:
        print(f"  warning: {scores['warning']}")

    view_name = f"coreset-{round(args.prune_rate * 100)}"
    save = foo.get_operator("@coreset/curation/save_coreset_view")
    saved = save(dataset, "zcore_score", args.prune_rate, view_name, overwrite=True)
    coreset = dataset.load_saved_view(view_name)
    balance = coreset.count_values("ground_truth.label")
    print(f"saved view '{view_name}': kept {saved['kept']}, pruned {saved['pruned']} (selection '{saved['selection']}', "
          f"order '{saved['rank_field']}')")
    print("kept per class: " + ", ".join(f"{k}:{balance[k]}" for k in sorted(balance)))
    print(f"done in {time.perf_counter() - start:.1f} s")

    if args.app:
        session = fo.launch_app(dataset)
        session.wait()


if __name__ == "__main__":
    main()
