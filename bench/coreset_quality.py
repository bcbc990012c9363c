"""Coreset quality on sklearn digits: accuracy of a classifier trained on the kept set.

Protocol (clean benchmark): ``load_digits``; ``train_test_split(test_size=0.4,
random_state=0, stratify=y)``; embeddings = PCA(32) fitted on the train
pixels; ``LogisticRegression(max_iter=2000)`` on the kept train pixels / 16;
accuracy on the test split (all 1,078 train samples: .972). Pruning rates
30/50/70/90/95 %. Rows (mean +- std over seeds):

* zcore top: ``zcore_scores`` with the published defaults and seeds 0-2,
  highest scores kept. ``--zcore-samples`` sets the iterations (default
  1,000,000, the published value).
* random: 10 seeds.
* brain representativeness / uniqueness: ``fiftyone.brain`` on a temporary
  dataset with dummy filepaths and the embeddings as a field; highest kept.
* k-center greedy: farthest-first traversal on the embeddings from a random
  start, 3 seeds.
* every ``core.selection`` mode with the ZCore scores of seed s and seed s
  (s = 0, 1, 2). ``*`` marks :data:`core.selection.DEFAULT_SELECTION`.

Robustness benchmark: the same split with 5 % of the train images replaced by
uniform noise images (keeping their labels, so they are junk) and 20 % replaced
by copies of 10 other train images plus N(0, 0.1) pixel noise; PCA refitted on
the corrupted pixels; the test split is untouched. Rows: random (10 seeds),
k-center greedy (3), ZCore top (3 seeds, ``--robust-zcore-samples``, default
100,000 to keep the run short), the default selection and ``coverage`` (3).
Besides accuracy it prints the share of the kept set that is planted noise and
planted duplicates.

Writes ``bench/out/coreset_quality.png`` (matplotlib) and copies it to
``docs/coreset_quality.png``. The last line is
``default selection: NAME; min margin vs best baseline: X``: the smallest,
over the pruning rates, of the default's mean accuracy minus the best mean of
the baseline rows (zcore top, random, brain, k-center greedy) on the clean
benchmark.

Run: ``.venv/bin/python bench/coreset_quality.py`` (about 3-4 minutes on 2
cores, most of it the 3 ZCore runs at 1e6 iterations; ``--zcore-samples
100000`` takes about 1.5).
"""

import argparse
import os
import shutil
import sys
import time
import uuid
import warnings

os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from core.selection import DEFAULT_SELECTION, SELECTIONS, kept_count, select_coreset  # noqa: E402
from core.zcore import zcore_scores  # noqa: E402

RATES = (0.3, 0.5, 0.7, 0.9, 0.95)
SEEDS = (0, 1, 2)
RANDOM_SEEDS = tuple(range(10))
BASELINES = ("zcore top", "random", "brain representativeness", "brain uniqueness", "k-center greedy")


def load(corrupt=False, seed=123):
    """Train/test split, train embeddings, and masks of planted noise/duplicates."""
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.4, random_state=0, stratify=y)
    n = len(Xtr)
    noise = np.zeros(n, bool)
    dup = np.zeros(n, bool)
    if corrupt:
        rng = np.random.default_rng(seed)
        perm = rng.permutation(n)
        n_noise, n_dup = int(0.05 * n), int(0.2 * n)
        out, dups, src = perm[:n_noise], perm[n_noise : n_noise + n_dup], perm[-10:]
        Xtr = Xtr.copy()
        ytr = ytr.copy()
        Xtr[out] = rng.uniform(0, 16, (n_noise, Xtr.shape[1]))
        pick = src[rng.integers(0, len(src), n_dup)]
        Xtr[dups] = np.clip(Xtr[pick] + rng.normal(0, 0.1, (n_dup, Xtr.shape[1])), 0, 16)
        ytr[dups] = ytr[pick]
        noise[out] = True
        dup[dups] = True
    emb = PCA(32).fit(Xtr).transform(Xtr)
    return Xtr, ytr, Xte, yte, emb, noise, dup


def accuracy(data, kept):
    Xtr, ytr, Xte, yte = data[:4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(max_iter=2000).fit(Xtr[kept] / 16, ytr[kept])
    return model.score(Xte / 16, yte)


def kcenter_greedy(emb, count, seed):
    """Farthest-first traversal from a random start (the k-center greedy baseline)."""
    rng = np.random.default_rng(seed)
    sel = [int(rng.integers(len(emb)))]
    dist = np.linalg.norm(emb - emb[sel[0]], axis=1)
    for _ in range(count - 1):
        j = int(np.argmax(dist))
        sel.append(j)
        dist = np.minimum(dist, np.linalg.norm(emb - emb[j], axis=1))
    return np.sort(np.asarray(sel))


def top(scores, rate):
    return np.sort(np.argsort(-np.asarray(scores), kind="stable")[: kept_count(len(scores), rate)])


def brain_scores(emb):
    """FiftyOne Brain representativeness and uniqueness (or an error string)."""
    try:
        import fiftyone as fo
        import fiftyone.brain as fob

        ds = fo.Dataset(f"coreset-quality-{uuid.uuid4().hex[:8]}")
        try:
            ds.add_samples(
                [fo.Sample(filepath=f"/nonexistent/{i}.png", emb=e.tolist()) for i, e in enumerate(emb)]
            )
            fob.compute_representativeness(ds, embeddings="emb", progress=False)
            fob.compute_uniqueness(ds, embeddings="emb", progress=False)
            return np.asarray(ds.values("representativeness")), np.asarray(ds.values("uniqueness"))
        finally:
            ds.delete()
    except Exception as e:  # pragma: no cover - reported in the table
        return f"{type(e).__name__}: {e}"


def zcore_set(emb, n_samples, log):
    out = {}
    for s in SEEDS:
        t = time.perf_counter()
        out[s] = zcore_scores(emb, n_samples=n_samples, seed=s)
        log(f"  zcore seed {s}: {n_samples:,} iterations in {time.perf_counter() - t:.1f} s")
    return out


def evaluate(data, select, seeds, extra=None):
    """{rate: [accuracy per seed]} and, if ``extra``, {rate: [extra(kept) per seed]}."""
    acc, ext = {}, {}
    for r in RATES:
        acc[r], ext[r] = [], []
        for s in seeds:
            kept = select(r, s)
            assert len(kept) == kept_count(len(data[0]), r)
            acc[r].append(accuracy(data, kept))
            if extra is not None:
                ext[r].append(extra(kept))
    return acc, ext


def fmt_row(name, acc, width):
    cells = []
    for r in RATES:
        v = acc.get(r) if acc else None
        cells.append("       -      " if not v else f"{np.mean(v):.3f} ± {np.std(v):.3f} ")
    return f"{name:<{width}}" + " ".join(f"{c:>14}" for c in cells)


def print_table(title, rows, width=34):
    print(f"\n{title}")
    print(f"{'':<{width}}" + " ".join(f"{f'{int(r * 100)} %':>14}" for r in RATES))
    for name, acc in rows.items():
        print(fmt_row(name, acc, width))


def plot(rows, robust_rows, path, full):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    names = list(dict.fromkeys(list(rows) + list(robust_rows)))
    palette = plt.get_cmap("tab10").colors
    colors = {name: palette[i % len(palette)] for i, name in enumerate(names)}
    for ax, (title, table) in zip(
        axes, (("digits", rows), ("digits + 5 % noise images + 20 % near-duplicates", robust_rows))
    ):
        for name, acc in table.items():
            rates = [r for r in RATES if acc.get(r)]
            means = np.array([np.mean(acc[r]) for r in rates])
            stds = np.array([np.std(acc[r]) for r in rates])
            x = [100 * r for r in rates]
            bold = name.endswith("*")
            ax.plot(x, means, marker="o", lw=2.6 if bold else 1.2, label=name, color=colors[name])
            ax.fill_between(x, means - stds, means + stds, color=colors[name], alpha=0.12)
        if full is not None and table is rows:
            ax.axhline(full, color="k", ls=":", lw=1, label=f"all data ({full:.3f})")
        ax.set_title(title)
        ax.set_xlabel("pruning rate (%)")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0.5, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zcore-samples", type=int, default=1_000_000)
    parser.add_argument("--robust-zcore-samples", type=int, default=100_000)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "out"))
    parser.add_argument("--no-brain", action="store_true", help="skip the FiftyOne Brain rows")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    def log(msg):
        print(msg, flush=True)

    # ------------------------------------------------------------ clean
    data = load()
    emb = data[4]
    full = accuracy(data, np.arange(len(data[0])))
    log(f"digits: {len(data[0])} train / {len(data[2])} test, full-data accuracy {full:.3f}")
    zs = zcore_set(emb, args.zcore_samples, log)

    rows = {}
    rows["zcore top"], _ = evaluate(data, lambda r, s: top(zs[s], r), SEEDS)
    rows["random"], _ = evaluate(
        data,
        lambda r, s: np.sort(np.random.default_rng(s).permutation(len(emb))[: kept_count(len(emb), r)]),
        RANDOM_SEEDS,
    )
    if not args.no_brain:
        t = time.perf_counter()
        brain = brain_scores(emb)
        if isinstance(brain, str):
            log(f"  FiftyOne Brain failed: {brain}")
        else:
            log(f"  FiftyOne Brain scores in {time.perf_counter() - t:.1f} s")
            for name, sc in zip(("brain representativeness", "brain uniqueness"), brain):
                rows[name], _ = evaluate(data, lambda r, s, sc=sc: top(sc, r), (0,))
    rows["k-center greedy"], _ = evaluate(
        data, lambda r, s: kcenter_greedy(emb, kept_count(len(emb), r), s), SEEDS
    )
    for mode in SELECTIONS:
        t = time.perf_counter()
        name = f"zcore + {mode}" + (" *" if mode == DEFAULT_SELECTION else "")
        rows[name], _ = evaluate(
            data,
            lambda r, s, m=mode: select_coreset(zs[s], r, selection=m, embeddings=emb, seed=s),
            SEEDS,
        )
        log(f"  {mode}: {time.perf_counter() - t:.1f} s for {len(RATES) * len(SEEDS)} selections")
    print_table(
        f"Clean digits: test accuracy (mean ± std over seeds); ZCore {args.zcore_samples:,} iterations",
        rows,
    )

    # ------------------------------------------------------- robustness
    rdata = load(corrupt=True)
    remb, noise, dup = rdata[4], rdata[5], rdata[6]
    rfull = accuracy(rdata, np.arange(len(rdata[0])))
    log(f"\ncorrupted digits: {noise.sum()} noise images, {dup.sum()} near-duplicates of 10 images; "
        f"full-data accuracy {rfull:.3f}")
    rzs = zcore_set(remb, args.robust_zcore_samples, log)

    def planted(kept):
        return noise[kept].mean(), dup[kept].mean()

    methods = {
        "random": (
            lambda r, s: np.sort(np.random.default_rng(s).permutation(len(remb))[: kept_count(len(remb), r)]),
            RANDOM_SEEDS,
        ),
        "k-center greedy": (lambda r, s: kcenter_greedy(remb, kept_count(len(remb), r), s), SEEDS),
        "zcore top": (lambda r, s: top(rzs[s], r), SEEDS),
    }
    for mode in dict.fromkeys([DEFAULT_SELECTION, "coverage"]):
        name = f"zcore + {mode}" + (" *" if mode == DEFAULT_SELECTION else "")
        methods[name] = (
            lambda r, s, m=mode: select_coreset(rzs[s], r, selection=m, embeddings=remb, seed=s),
            SEEDS,
        )
    robust_rows, shares = {}, {}
    for name, (fn, seeds) in methods.items():
        robust_rows[name], shares[name] = evaluate(rdata, fn, seeds, extra=planted)
    print_table(
        f"Corrupted digits: test accuracy; ZCore {args.robust_zcore_samples:,} iterations", robust_rows
    )
    print("\nShare of the kept set that is planted noise / planted duplicates (mean over seeds)")
    print(f"{'':<34}" + " ".join(f"{f'{int(r * 100)} %':>14}" for r in RATES))
    for name, sh in shares.items():
        cells = [f"{np.mean([a for a, _ in sh[r]]):.2f} / {np.mean([b for _, b in sh[r]]):.2f}" for r in RATES]
        print(f"{name:<34}" + " ".join(f"{c:>14}" for c in cells))
    print(f"(whole corrupted train set: {noise.mean():.2f} / {dup.mean():.2f})")

    # ------------------------------------------------------------ output
    png = os.path.join(args.out, "coreset_quality.png")
    plot(rows, robust_rows, png, full)
    docs = os.path.join(ROOT, "docs")
    os.makedirs(docs, exist_ok=True)
    shutil.copyfile(png, os.path.join(docs, "coreset_quality.png"))
    log(f"\nwrote {png} and docs/coreset_quality.png in {time.perf_counter() - start:.0f} s total")

    default = next(k for k in rows if k.endswith("*"))

    def mean(v):  # rounded so that equal accuracies give a margin of exactly 0
        return round(float(np.mean(v)), 9)

    margins = [
        mean(rows[default][r]) - max(mean(rows[b][r]) for b in BASELINES if rows.get(b))
        for r in RATES
    ]
    own = [
        mean(rows[default][r]) - max(mean(v[r]) for k, v in rows.items() if k != default)
        for r in RATES
    ]
    print("margin of the default per rate vs best baseline: "
          + ", ".join(f"{int(100 * r)} %: {m:+.3f}" for r, m in zip(RATES, margins)))
    print("margin of the default per rate vs every other row: "
          + ", ".join(f"{int(100 * r)} %: {m:+.3f}" for r, m in zip(RATES, own)))
    print(f"default selection: {DEFAULT_SELECTION}; min margin vs best baseline: {min(margins):+.3f}")


if __name__ == "__main__":
    main()
