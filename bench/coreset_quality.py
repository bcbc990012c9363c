"""Coreset quality on sklearn digits: accuracy of a classifier trained on the kept set.

Protocol (clean benchmark): ``load_digits``; ``train_test_split(test_size=0.4,
random_state=0, stratify=y)``; embeddings = PCA(32) fitted on the train
pixels; ``LogisticRegression(max_iter=2000)`` on the kept train pixels / 16;
accuracy on the test split (all 1,078 train samples: .972). Pruning rates
30, 40, 50, 60, 70, 80, 85, 90 and 95 %. Rows (mean +- std over seeds):

* ZCore top: ``zcore_scores`` with the published defaults and seeds 0-2,
  highest scores kept. ``--zcore-samples`` sets the run length: ``auto``
  (the plugin's default: the converging engine until reliability 0.95 or
  300 s) or a number of iterations (1000000 is the published value). Scores are cached under ``--out``.
* random: 10 seeds.
* Brain representativeness / uniqueness: ``fiftyone.brain`` on a temporary
  dataset with dummy filepaths and the embeddings as a field; highest kept.
* k-center greedy: farthest-first traversal on the embeddings from a random
  start, 3 seeds.
* per-rate prototype (reference): the per-rate selection the plugin ran before
  the nested orders -- one k-means per pruning rate, seeded by k-center up to
  75 % and by facility location from 85 % (``bench/selection_reference.py``),
  ZCore scores and seed s, s = 0, 1, 2.
* every ``core.order`` mode: ``coreset_order(zcore scores of seed s,
  embeddings, mode, seed=s)`` once, the kept set at each rate its prefix.
  ``*`` marks :data:`core.order.DEFAULT_ORDER`.

Robustness benchmark: the same split with 5 % of the train images replaced by
uniform noise images (keeping their labels, so they are junk) and 20 % replaced
by copies of 10 other train images plus N(0, 0.1) pixel noise; PCA refitted on
the corrupted pixels; the test split is untouched. Same rows without Brain
(ZCore at ``--robust-zcore-samples``, default ``auto``),
and the share of the kept set that is planted noise / planted duplicates.

``--variants`` adds the orders that were tried for the default and not kept
(each a change of the default; the table shows the difference to the
per-rate prototype per rate): the facility-location gains weighted by the
ZCore rank, a ZCore bonus on them, squared distances (k-means-like),
facility location for other shares of the order, a Lloyd-style refinement
of nested levels (each level's new samples moved to the sample nearest their
cluster's centroid with the earlier levels fixed), and the default on
k-means blocks of at most 256 samples (as the blocked path runs at scale).

Long-tailed benchmarks (``--long-tail``; checked by ``bench/long_tail.py``),
shaped like curation data, seeds 0-2 (each seed a new draw of the data and
the corruption, ZCore at 10^5 iterations, the orders with that seed):

* ``digits``: the train split above with class sizes falling geometrically
  from 100 to 5 (digits 1, 2, 3, 4, 5, 7, 0, 8, 6, 9: the rare 0 and 6 are
  well separated, the rare 8 and 9 overlap 1 and 3/5); embeddings PCA-32 of
  the corrupted pixels, probe on the pixels / 16, test on the untouched
  balanced test split.
* ``synthetic``: 12 classes of 3 Gaussian sub-clusters in 32-d, sizes 400
  to 5; the rare classes 8 and 10 far from the rest, 9 and 11 centred inside
  classes 0 and 1 (overlapping); probe on the embeddings, 60 test samples per
  class.

Both get planted near-duplicates (20 % of the set: copies of random samples,
1-4 per source, with small noise), 5 % junk (uniform noise images / far
Gaussian points, random labels) and 3 % wrong labels. Per rate (50, 70, 90,
95 %) and row: probe accuracy (``LogisticRegression``), the smallest class's
kept count, and the extra duplicate copies kept (beyond one per planted
group). Random subsets (3 per seed) and k-center greedy are rows; with
``--variants`` also the score-steered variants of the default.

Writes ``bench/out/coreset_quality.png`` (matplotlib); ``--update-docs``
copies it to ``docs/coreset_quality.png``. The last line is
``default order: NAME; max shortfall vs per-rate prototype: X; margin vs
k-center/random at 90/95: Y``: X is the largest, over both benchmarks and all
rates, of the per-rate prototype's mean accuracy minus the default order's
(target: at most 0.005); Y is the smallest, over both benchmarks at 90 and
95 %, of the default order's mean minus the better of k-center greedy and
random (target: above 0).

Run: ``.venv/bin/python bench/coreset_quality.py`` (about 2 minutes on 2 quiet
cores once the ZCore scores are cached, 3 ZCore runs at 1e6 iterations add
about 30 s the first time, ``--variants`` adds about 1.5 minutes; 14 minutes
in all on a busy shared machine).
"""

import argparse
import math
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
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness import plugin_package  # noqa: E402

plugin_package()
from bench import selection_reference as reference  # noqa: E402
from coreset_curation.core.order import DEFAULT_ORDER, ORDERS, coreset_order, kept_count  # noqa: E402
from coreset_curation.core.zcore import zcore_scores  # noqa: E402

RATES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
SEEDS = (0, 1, 2)
RANDOM_SEEDS = tuple(range(10))
REFERENCE = "per-rate prototype (reference)"
WIDTH = 45


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
    """Farthest-first traversal from a random start (the k-center greedy baseline).

    Returns the first ``count`` samples of the traversal in traversal order
    (a nested order: k-center greedy at every rate is its prefix).
    """
    rng = np.random.default_rng(seed)
    sel = [int(rng.integers(len(emb)))]
    dist = np.linalg.norm(emb - emb[sel[0]], axis=1)
    for _ in range(count - 1):
        dist[sel[-1]] = -1.0
        j = int(np.argmax(dist))
        sel.append(j)
        dist = np.minimum(dist, np.linalg.norm(emb - emb[j], axis=1))
    return np.asarray(sel)


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


def run_length(value):
    """``--zcore-samples``: ``auto`` or a number of iterations."""
    return value if value == "auto" else int(float(value))


def _length_text(n_samples):
    return "auto (converging run)" if n_samples == "auto" else f"{n_samples:,} iterations"


def zcore_set(emb, n_samples, log, cache_dir=None, tag="clean"):
    """ZCore scores per seed, cached under ``cache_dir`` (keyed by the embeddings)."""
    import hashlib

    key = hashlib.sha1(np.ascontiguousarray(emb, dtype=np.float64).tobytes()).hexdigest()[:12]
    out = {}
    for s in SEEDS:
        path = None
        if cache_dir:
            path = os.path.join(cache_dir, f"zcore_{tag}_{key}_{n_samples}_{s}.npy")
            if os.path.exists(path):
                out[s] = np.load(path)
                log(f"  zcore seed {s}: {_length_text(n_samples)}, cached ({os.path.basename(path)})")
                continue
        t = time.perf_counter()
        out[s] = zcore_scores(emb, n_samples=n_samples, seed=s)
        log(f"  zcore seed {s}: {_length_text(n_samples)} in {time.perf_counter() - t:.1f} s")
        if path:
            os.makedirs(cache_dir, exist_ok=True)
            np.save(path, out[s])
    return out


def evaluate(data, order_or_select, seeds, extra=None, nested=True):
    """{rate: [accuracy per seed]} and, if ``extra``, {rate: [extra(kept) per seed]}.

    ``nested``: ``order_or_select(s)`` returns an order (the kept set at each
    rate is its prefix); otherwise ``order_or_select(r, s)`` returns the kept
    positions at rate r.
    """
    n = len(data[0])
    acc = {r: [] for r in RATES}
    ext = {r: [] for r in RATES}
    for s in seeds:
        order = order_or_select(s) if nested else None
        for r in RATES:
            kept = np.sort(order[: kept_count(n, r)]) if nested else order_or_select(r, s)
            assert len(kept) == kept_count(n, r) and len(np.unique(kept)) == len(kept)
            acc[r].append(accuracy(data, kept))
            if extra is not None:
                ext[r].append(extra(kept))
    return acc, ext


def fmt_row(name, acc, width):
    cells = []
    for r in RATES:
        v = acc.get(r) if acc else None
        cells.append("-" if not v else f"{np.mean(v):.3f}±{np.std(v):.3f}"[1:].replace("±0", "±"))
    return f"{name:<{width}}" + " ".join(f"{c:>10}" for c in cells)


def header(width):
    return f"{'':<{width}}" + " ".join(f"{f'{int(round(r * 100))} %':>10}" for r in RATES)


def print_table(title, rows, width=WIDTH):
    print(f"\n{title}")
    print(header(width))
    for name, acc in rows.items():
        print(fmt_row(name, acc, width))


def plot(rows, robust_rows, path, full):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    names = list(dict.fromkeys(list(rows) + list(robust_rows)))
    palette = plt.get_cmap("tab20").colors
    colors = {name: palette[i % len(palette)] for i, name in enumerate(names)}
    for ax, (title, table) in zip(
        axes, (("digits", rows), ("digits + 5 % noise images + 20 % near-duplicates", robust_rows))
    ):
        for name, acc in table.items():
            rates = [r for r in RATES if acc.get(r)]
            means = np.array([np.mean(acc[r]) for r in rates])
            stds = np.array([np.std(acc[r]) for r in rates])
            x = [100 * r for r in rates]
            bold = "*" in name
            ls = "--" if name.startswith("per-rate") else "-"
            ax.plot(x, means, marker="o", ls=ls, lw=2.6 if bold else 1.2, label=name, color=colors[name])
            ax.fill_between(x, means - stds, means + stds, color=colors[name], alpha=0.12)
        if full is not None and table is rows:
            ax.axhline(full, color="k", ls=":", lw=1, label=f"all data ({full:.3f})")
        ax.set_title(title)
        ax.set_xlabel("pruning rate (%)")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0.5, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


ORDER_LABELS = {
    "top": "order top (ZCore score)",
    "ccs": "order ccs (ZCore score strata)",
    "cluster": "order cluster (k-means; ZCore in cluster)",
    "coverage": "order coverage (embeddings; ties: score)",
    "prototype": "order prototype (embeddings; ties: score)",
}


def order_label(mode):
    return ORDER_LABELS[mode] + (" *" if mode == DEFAULT_ORDER else "")


def method_rows(data, zs, brain=None):
    """Every row of one benchmark: name -> (nested, fn, seeds)."""
    emb = data[4]
    n = len(emb)
    methods = {
        "ZCore top (score order)": (True, lambda s: np.argsort(-zs[s], kind="stable"), SEEDS),
        "random": (True, lambda s: np.random.default_rng(s).permutation(n), RANDOM_SEEDS),
    }
    for name, sc in (brain or {}).items():
        methods[name] = (True, lambda s, sc=sc: np.argsort(-sc, kind="stable"), (0,))
    methods["k-center greedy (random start)"] = (True, lambda s: kcenter_greedy(emb, n, s), SEEDS)
    methods[REFERENCE] = (
        False,
        lambda r, s: reference.select_coreset(zs[s], r, selection="prototype", embeddings=emb, seed=s),
        SEEDS,
    )
    for mode in ORDERS:
        methods[order_label(mode)] = (
            True,
            lambda s, m=mode: coreset_order(zs[s], embeddings=emb, mode=m, seed=s),
            SEEDS,
        )
    return methods


def run_rows(data, methods, log, extra=None):
    rows, shares = {}, {}
    for name, (nested, fn, seeds) in methods.items():
        t = time.perf_counter()
        rows[name], shares[name] = evaluate(data, fn, seeds, extra=extra, nested=nested)
        log(f"  {name}: {time.perf_counter() - t:.1f} s ({len(seeds)} seed(s), {len(RATES)} rates)")
    return rows, shares


# ------------------------------------------------------------- variants


def _variant_order(emb, zscores, kind, **kw):
    """The default order with one change (see the module docstring)."""
    from core import order as co

    x = emb - emb.mean(0)
    dist = co._distances(np.asarray(x, dtype=np.float64))
    n = len(dist)
    pri = co.ranks_from_order(np.argsort(-zscores, kind="stable"))
    good = 1.0 - pri / n
    inlier = ~co._outlier_mask(dist)
    count = int(math.ceil(kw.get("fraction", co.PROTOTYPE_FRACTION) * n))
    if kind == "squared":
        d2 = dist**2
        prefix = co._facility_location(d2.max() - d2, count, inlier, pri)
    elif kind in ("weighted", "bonus"):
        sim = dist.max() - dist
        w = 1.0 + kw["lam"] * (good - 0.5) if kind == "weighted" else np.ones(n)
        bonus = kw["lam"] * np.median(sim) * 0.01 * n * good if kind == "bonus" else np.zeros(n)
        prefix = _weighted_facility_location(sim, count, w, bonus)
    elif kind == "levels":
        prefix = _levelled_prefix(x, dist, count, kw["ratio"], pri)
    else:
        prefix = co._facility_location(dist.max() - dist, count, inlier, pri)
    return co._farthest_first(dist, prefix, np.ones(n, bool), pri)


def _weighted_facility_location(sim, count, w, bonus):
    n = len(sim)
    gain = (sim * w[None, :]).sum(1) + bonus
    cover = np.zeros(n)
    taken = np.zeros(n, bool)
    sel = []
    for _ in range(count):
        j = int(np.argmax(np.where(taken, -np.inf, gain)))
        sel.append(j)
        taken[j] = True
        new = np.maximum(cover, sim[j])
        ch = np.flatnonzero(new > cover)
        if len(ch):
            s = sim[:, ch]
            gain -= ((np.maximum(s - cover[ch], 0) - np.maximum(s - new[ch], 0)) * w[ch]).sum(1)
        cover = new
    return np.asarray(sel, dtype=np.int64)


def _levelled_prefix(x, dist, count, ratio, pri):
    """Nested levels of sizes growing by ``ratio``: greedy facility location adds each
    level's samples, Lloyd iterations with the earlier levels fixed move them to the
    sample nearest their cluster's centroid, and greedy facility location orders them."""
    n = len(dist)
    sim = dist.max() - dist
    d2 = dist**2
    chosen = np.zeros(0, dtype=np.int64)
    while len(chosen) < count:
        k = min(count, max(len(chosen) + 1, int(math.ceil(len(chosen) * ratio))))
        cover = sim[chosen].max(0) if len(chosen) else np.zeros(n)
        new = _fl_given(sim, cover, k - len(chosen), chosen, None)
        for _ in range(10):
            centres = np.concatenate([chosen, new])
            lab = np.argmin(d2[centres], axis=0)
            taken = np.zeros(n, bool)
            taken[centres] = True
            moved = False
            for i in range(len(chosen), len(centres)):
                members = np.flatnonzero(lab == i)
                if not len(members):
                    continue
                j = members[np.argmin(((x[members] - x[members].mean(0)) ** 2).sum(1))]
                if not taken[j]:
                    taken[new[i - len(chosen)]] = False
                    taken[j] = True
                    new[i - len(chosen)] = j
                    moved = True
            if not moved:
                break
        new = _fl_given(sim, cover, len(new), chosen, new)
        chosen = np.concatenate([chosen, new])
    return chosen


def _fl_given(sim, cover, count, fixed, candidates):
    n = len(sim)
    cover = cover.copy()
    taken = np.zeros(n, bool)
    taken[fixed] = True
    allowed = np.ones(n, bool)
    if candidates is not None:
        allowed[:] = False
        allowed[candidates] = True
    gain = np.maximum(sim - cover[None, :], 0).sum(1)
    sel = []
    for _ in range(count):
        j = int(np.argmax(np.where(taken | ~allowed, -np.inf, gain)))
        sel.append(j)
        taken[j] = True
        new = np.maximum(cover, sim[j])
        ch = np.flatnonzero(new > cover)
        if len(ch):
            s = sim[:, ch]
            gain -= (np.maximum(s - cover[ch], 0) - np.maximum(s - new[ch], 0)).sum(1)
        cover = new
    return np.asarray(sel, dtype=np.int64)


def _blocked_default(zscores, emb, seed, block):
    from core import order as co

    saved = co.BLOCK_SIZE
    co.BLOCK_SIZE = block
    try:
        return coreset_order(zscores, embeddings=emb, seed=seed)
    finally:
        co.BLOCK_SIZE = saved


def variants(benchmarks, references, log):
    specs = {
        "FL gains weighted by ZCore (lam 0.5)": dict(kind="weighted", lam=0.5),
        "FL gains weighted by ZCore (lam 1)": dict(kind="weighted", lam=1.0),
        "FL gains weighted by ZCore (lam 1.9)": dict(kind="weighted", lam=1.9),
        "FL + ZCore bonus (lam 0.1)": dict(kind="bonus", lam=0.1),
        "FL + ZCore bonus (lam 1)": dict(kind="bonus", lam=1.0),
        "FL on squared distances": dict(kind="squared"),
        "FL for the first 10 %": dict(kind="plain", fraction=0.1),
        "FL for the first 20 %": dict(kind="plain", fraction=0.2),
        "FL for the first 50 %": dict(kind="plain", fraction=0.5),
        "FL for the whole order": dict(kind="plain", fraction=1.0),
        "nested Lloyd levels (x1.5)": dict(kind="levels", ratio=1.5),
        "nested Lloyd levels (x2)": dict(kind="levels", ratio=2.0),
    }
    print("\nVariants of the default order (accuracy minus per-rate prototype; mean over seeds)")
    for title, (data, zs) in benchmarks.items():
        print(f"{title}")
        print(header(WIDTH) + "    mean")
        ref = references[title]
        rows = {"default order": lambda s: coreset_order(zs[s], embeddings=data[4], seed=s)}
        for name, kw in specs.items():
            rows[name] = lambda s, kw=kw: _variant_order(data[4], zs[s], **kw)
        rows["default, k-means blocks of <= 256"] = lambda s: _blocked_default(zs[s], data[4], s, 256)
        rows["default, k-means blocks of <= 512"] = lambda s: _blocked_default(zs[s], data[4], s, 512)
        for name, fn in rows.items():
            acc, _ = evaluate(data, fn, SEEDS)
            diff = [np.mean(acc[r]) - np.mean(ref[r]) for r in RATES]
            print(f"{name:<{WIDTH}}" + " ".join(f"{d:>+10.3f}" for d in diff) + f" {np.mean(diff):+7.4f}", flush=True)


# ------------------------------------------------------------ long tail

LT_RATES = (0.5, 0.7, 0.9, 0.95)
LT_SEEDS = (0, 1, 2)
LT_RANDOM_DRAWS = 3  # random subsets per seed
LT_ZCORE_SAMPLES = 100_000  # the README's long-tail tables were measured with it
LT_DUP_SHARE, LT_JUNK_SHARE, LT_WRONG_SHARE = 0.20, 0.05, 0.03
#: digits: the digit given each class size (most to fewest); 0 and 6 are well separated, 8 and 9 overlap others
LT_DIGITS = (1, 2, 3, 4, 5, 7, 0, 8, 6, 9)
LT_VARIANTS = ("digits", "synthetic")
KCENTER = "k-center greedy (random start)"


def geometric_sizes(largest, smallest, count):
    """Class sizes falling geometrically from ``largest`` to ``smallest``."""
    return [int(round(largest * (smallest / largest) ** (k / (count - 1)))) for k in range(count)]


def _corrupt(x, y, rng, copy_noise, junk):
    """Adds planted near-duplicate groups and junk, and flips some labels.

    Returns x, y (noisy labels), true class (-1 for junk), duplicate group id
    (-1 outside a planted group; the source sample belongs to its group).
    """
    n_clean = len(x)
    n = int(round(n_clean / (1 - LT_DUP_SHARE - LT_JUNK_SHARE)))
    n_dup, n_junk = int(round(LT_DUP_SHARE * n)), n - n_clean - int(round(LT_DUP_SHARE * n))
    group = np.full(n_clean, -1)
    src, copies = [], []
    while len(copies) < n_dup:  # sources of 1-4 copies each, drawn without replacement
        s = int(rng.choice(np.flatnonzero(group == -1)))
        group[s] = len(src)
        src.append(s)
        copies += [s] * min(int(rng.integers(1, 5)), n_dup - len(copies))
    copies = np.asarray(copies)
    xd = copy_noise(x[copies])
    xj, yj = junk(n_junk), rng.integers(0, y.max() + 1, n_junk)
    xs = np.concatenate([x, xd, xj])
    true = np.concatenate([y, y[copies], np.full(n_junk, -1)])
    ys = np.concatenate([y, y[copies], yj])
    groups = np.concatenate([group, group[copies], np.full(n_junk, -1)])
    wrong = rng.choice(np.flatnonzero(true >= 0), int(round(LT_WRONG_SHARE * n)), replace=False)
    ys[wrong] = (ys[wrong] + rng.integers(1, y.max() + 1, len(wrong))) % (y.max() + 1)
    perm = rng.permutation(n)
    return xs[perm], ys[perm], true[perm], groups[perm]


def long_tail_data(variant, seed):
    """One long-tailed benchmark: dict with train/test features, embeddings and the planted truth."""
    rng = np.random.default_rng([seed, LT_VARIANTS.index(variant)])
    if variant == "digits":
        X, y = load_digits(return_X_y=True)
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.4, random_state=0, stratify=y)
        sizes = geometric_sizes(100, 5, 10)
        keep = np.concatenate(
            [rng.choice(np.flatnonzero(ytr == d), s, replace=False) for d, s in zip(LT_DIGITS, sizes)]
        )
        x, yy = Xtr[keep], ytr[keep]
        x, ys, true, groups = _corrupt(
            x, yy, rng,
            copy_noise=lambda v: np.clip(v + rng.normal(0, 0.25, v.shape), 0, 16),
            junk=lambda m: rng.uniform(0, 16, (m, x.shape[1])),
        )
        emb = PCA(32, random_state=0).fit(x).transform(x)
        return dict(x=x / 16, y=ys, true=true, groups=groups, emb=emb, xte=Xte / 16, yte=yte,
                    sizes=dict(zip(LT_DIGITS, sizes)))
    # synthetic clustered embeddings: 12 classes of 3 sub-clusters in 32-d; classes 8 and 10 far away
    # from the rest (well separated), 9 and 11 centred 2 units from classes 0 and 1 (overlapping)
    d, k = 32, 12
    sizes = geometric_sizes(400, 5, k)
    centre = rng.normal(0, 0.45, (k, d))
    for c, far in ((8, 10.0), (10, 10.0)):
        v = rng.normal(size=d)
        centre[c] = far * v / np.linalg.norm(v)
    for c, near in ((9, 0), (11, 1)):
        v = rng.normal(size=d)
        centre[c] = centre[near] + 2.0 * v / np.linalg.norm(v)
    sub = centre[:, None, :] + rng.normal(0, 0.3, (k, 3, d))

    def draw(counts):
        lab = np.repeat(np.arange(k), counts)
        pick = rng.integers(0, 3, len(lab))
        return sub[lab, pick] + rng.normal(0, 1.0, (len(lab), d)), lab

    x, yy = draw(sizes)
    xte, yte = draw([60] * k)
    x, ys, true, groups = _corrupt(
        x, yy, rng,
        copy_noise=lambda v: v + rng.normal(0, 0.05, v.shape),
        junk=lambda m: rng.normal(0, 4.0, (m, d)),
    )
    return dict(x=x, y=ys, true=true, groups=groups, emb=x, xte=xte, yte=yte, sizes=dict(enumerate(sizes)))


def lt_accuracy(data, kept):
    y = data["y"][kept]
    if len(np.unique(y)) < 2:
        return float(np.mean(data["yte"] == y[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(max_iter=2000).fit(data["x"][kept], y)
    return model.score(data["xte"], data["yte"])


def lt_measures(data, kept):
    """Probe accuracy, kept count per class (true class), kept extra copies, largest kept share of a group."""
    true, groups = data["true"][kept], data["groups"][kept]
    per_group = np.bincount(groups[groups >= 0], minlength=data["groups"].max() + 1)
    return dict(
        acc=lt_accuracy(data, kept),
        classes={c: int((true == c).sum()) for c in data["sizes"]},
        dups=int(np.maximum(per_group - 1, 0).sum()),
        max_group=int(per_group.max()) if len(per_group) else 0,
        junk=int((true == -1).sum()),
    )


def long_tail_methods(data, zs, seed, extra_variants=False):
    """name -> list of orders (one per draw) for one seed of one variant."""
    emb = data["emb"]
    n = len(emb)
    rng = np.random.default_rng([seed, 99])
    methods = {
        "random": [rng.permutation(n) for _ in range(LT_RANDOM_DRAWS)],
        KCENTER: [kcenter_greedy(emb, n, seed)],
    }
    for mode in ORDERS:
        methods[order_label(mode)] = [coreset_order(zs, embeddings=emb, mode=mode, seed=seed)]
    if extra_variants:
        import coreset_curation.core.order as co

        tries = {f"default, ZCore decides FL gains within {tol:g}": ("SCORE_TOLERANCE", tol)
                 for tol in (0.001, 0.01, 0.05)}
        tries["default, FL weighs copies (group size)"] = ("COPIES_WEIGHT", not co.COPIES_WEIGHT)
        for name, (attr, value) in tries.items():
            saved = getattr(co, attr)
            setattr(co, attr, value)
            try:
                methods[name] = [coreset_order(zs, embeddings=emb, seed=seed)]
            finally:
                setattr(co, attr, saved)
    return methods


def long_tail_results(log, seeds=LT_SEEDS, extra_variants=False):
    """{variant: {method: {rate: [measures per seed (draws averaged)]}}}, and data facts per variant."""
    results, facts = {}, {}
    for variant in LT_VARIANTS:
        results[variant] = {}
        for seed in seeds:
            t = time.perf_counter()
            data = long_tail_data(variant, seed)
            n = len(data["y"])
            if seed == seeds[0]:
                full = lt_accuracy(data, np.arange(n))
                facts[variant] = dict(n=n, sizes=data["sizes"], full=full, junk=int((data["true"] == -1).sum()),
                                      dups=int((data["groups"] >= 0).sum()), groups=int(data["groups"].max() + 1))
            zs = zcore_scores(data["emb"], n_samples=LT_ZCORE_SAMPLES, seed=seed)
            for name, orders in long_tail_methods(data, zs, seed, extra_variants).items():
                cell = results[variant].setdefault(name, {r: [] for r in LT_RATES})
                for r in LT_RATES:
                    got = [lt_measures(data, np.sort(o[: kept_count(n, r)])) for o in orders]
                    cell[r].append(dict(
                        acc=float(np.mean([g["acc"] for g in got])),
                        classes={c: min(g["classes"][c] for g in got) for c in data["sizes"]},
                        dups=float(np.mean([g["dups"] for g in got])),
                        max_group=max(g["max_group"] for g in got),
                        junk=float(np.mean([g["junk"] for g in got])),
                    ))
            log(f"  {variant} seed {seed}: {n} samples, {time.perf_counter() - t:.1f} s")
    return results, facts


def print_long_tail(results, facts):
    for variant, rows in results.items():
        f = facts[variant]
        smallest = min(f["sizes"], key=f["sizes"].get)
        print(f"\nLong-tailed {variant}: {f['n']} samples (class sizes {sorted(f['sizes'].values(), reverse=True)}; "
              f"{f['dups']} in {f['groups']} planted near-duplicate groups, {f['junk']} junk, "
              f"{LT_WRONG_SHARE:.0%} wrong labels); all data: {f['full']:.3f}")
        print(f"cells: probe accuracy / smallest class ({f['sizes'][smallest]} samples) kept / extra duplicate "
              f"copies kept; mean over seeds {LT_SEEDS}")
        print(f"{'':<{WIDTH}}" + " ".join(f"{f'{int(round(r * 100))} %':>17}" for r in LT_RATES))
        for name, cell in rows.items():
            cells = []
            for r in LT_RATES:
                m = cell[r]
                cells.append(f"{np.mean([v['acc'] for v in m]):.3f} / "
                             f"{np.mean([v['classes'][smallest] for v in m]):.1f} / "
                             f"{np.mean([v['dups'] for v in m]):.0f}")
            print(f"{name:<{WIDTH}}" + " ".join(f"{c:>17}" for c in cells))
        print(f"junk kept (of {f['junk']}), mean over seeds")
        for name, cell in rows.items():
            print(f"{name:<{WIDTH}}" + " ".join(f"{np.mean([v['junk'] for v in cell[r]]):>17.1f}" for r in LT_RATES))


# ----------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zcore-samples", type=run_length, default="auto")
    parser.add_argument("--robust-zcore-samples", type=run_length, default="auto")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "out"))
    parser.add_argument("--no-brain", action="store_true", help="skip the FiftyOne Brain rows")
    parser.add_argument("--variants", action="store_true", help="also run the orders tried and not kept")
    parser.add_argument("--update-docs", action="store_true", help="copy the plot to docs/coreset_quality.png")
    parser.add_argument("--long-tail", action="store_true",
                        help="run only the long-tailed benchmarks (bench/long_tail.py checks them)")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    def log(msg):
        print(msg, flush=True)

    if args.long_tail:
        print_long_tail(*long_tail_results(log, extra_variants=args.variants))
        log(f"total {time.perf_counter() - start:.0f} s")
        return

    # ------------------------------------------------------------ clean
    data = load()
    emb = data[4]
    full = accuracy(data, np.arange(len(data[0])))
    log(f"digits: {len(data[0])} train / {len(data[2])} test, full-data accuracy {full:.3f}")
    zs = zcore_set(emb, args.zcore_samples, log, args.out, "clean")
    brain = {}
    if not args.no_brain:
        t = time.perf_counter()
        got = brain_scores(emb)
        if isinstance(got, str):
            log(f"  FiftyOne Brain failed: {got}")
        else:
            log(f"  FiftyOne Brain scores in {time.perf_counter() - t:.1f} s")
            brain = dict(zip(("Brain representativeness", "Brain uniqueness"), got))
    rows, _ = run_rows(data, method_rows(data, zs, brain), log)
    print_table(
        f"Clean digits: test accuracy (mean ± std over seeds); ZCore {_length_text(args.zcore_samples)}", rows
    )

    # ------------------------------------------------------- robustness
    rdata = load(corrupt=True)
    remb, noise, dup = rdata[4], rdata[5], rdata[6]
    rfull = accuracy(rdata, np.arange(len(rdata[0])))
    log(f"\ncorrupted digits: {noise.sum()} noise images, {dup.sum()} near-duplicates of 10 images; "
        f"full-data accuracy {rfull:.3f}")
    rzs = zcore_set(remb, args.robust_zcore_samples, log, args.out, "corrupt")

    def planted(kept):
        return noise[kept].mean(), dup[kept].mean()

    robust_rows, shares = run_rows(rdata, method_rows(rdata, rzs), log, extra=planted)
    print_table(
        f"Corrupted digits: test accuracy; ZCore {_length_text(args.robust_zcore_samples)}", robust_rows
    )
    print("\nShare of the kept set that is planted noise / planted duplicates (mean over seeds)")
    print(header(WIDTH))
    for name, sh in shares.items():
        cells = [f"{np.mean([a for a, _ in sh[r]]):.2f}/{np.mean([b for _, b in sh[r]]):.2f}" for r in RATES]
        print(f"{name:<{WIDTH}}" + " ".join(f"{c:>10}" for c in cells))
    print(f"(whole corrupted train set: {noise.mean():.2f} / {dup.mean():.2f})")

    # ------------------------------------------------------------ output
    png = os.path.join(args.out, "coreset_quality.png")
    plot(rows, robust_rows, png, full)
    if args.update_docs:
        docs = os.path.join(ROOT, "docs")
        os.makedirs(docs, exist_ok=True)
        shutil.copyfile(png, os.path.join(docs, "coreset_quality.png"))
    log(f"\nwrote {png}{' and docs/coreset_quality.png' if args.update_docs else ''}")

    if args.variants:
        variants(
            {"clean": (data, zs), "corrupted": (rdata, rzs)},
            {"clean": rows[REFERENCE], "corrupted": robust_rows[REFERENCE]},
            log,
        )

    def mean(v):  # rounded so that equal accuracies compare equal
        return round(float(np.mean(v)), 9)

    default = order_label(DEFAULT_ORDER)
    shortfall, margin = [], []
    for title, table in (("clean", rows), ("corrupted", robust_rows)):
        sf = [mean(table[REFERENCE][r]) - mean(table[default][r]) for r in RATES]
        mg = [
            mean(table[default][r]) - max(mean(table["k-center greedy (random start)"][r]), mean(table["random"][r]))
            for r in (0.9, 0.95)
        ]
        print(f"{title}: per-rate prototype minus default order: "
              + ", ".join(f"{int(round(100 * r))} %: {x:+.3f}" for r, x in zip(RATES, sf))
              + f"; default minus max(k-center, random): 90 %: {mg[0]:+.3f}, 95 %: {mg[1]:+.3f}")
        shortfall += sf
        margin += mg
    log(f"total {time.perf_counter() - start:.0f} s (timings on a shared 2-core machine are noisy)")
    print(f"default order: {DEFAULT_ORDER}; max shortfall vs per-rate prototype: {max(shortfall):+.3f}; "
          f"margin vs k-center/random at 90/95: {min(margin):+.3f}")


if __name__ == "__main__":
    main()
