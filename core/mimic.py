"""Grad-Mimic: per-sample label quality from gradient alignment.

Huang et al., "Grad-Mimic" (arXiv 2501.06708). A linear softmax head is
trained on the embeddings with the given labels; at every step each sample's
negative gradient is compared with the task vector, the direction from the
current head to a trusted reference head. A sample whose gradient points away
from the reference (negative alignment) is likely mislabelled. The score of a
sample is the mean of its alignments over all the steps it took part in.

Conventions used throughout:

* The bias is treated as an extra input column of constant 1: ``x = [x, 1]``
  and ``W = [W | b]``, so gradients, task vectors and their norms cover the
  weights and the bias together.
* The training head starts at zero (no random init, so the seed only sets
  the batch order); at the first step a sample's alignment is its reference
  logit minus the mean reference logit, normalised.
* Embeddings are divided by their root-mean-square row norm before training
  and the reference weights are multiplied by it, which leaves the reference
  logits unchanged and makes ``lr`` independent of the embedding scale.
* Defaults (reweighting at temperature 0.01, lr 0.3, 20 epochs of batches of
  64) were chosen on sklearn digits with 10-40% symmetric label noise and a
  reference trained on 10 clean labels per class (``bench/mimic_quality.py``).

The training loop is compiled with numba (cached on disk after the first
call). Nothing here imports FiftyOne.
"""

import os
from dataclasses import dataclass, field

import numba
import numpy as np

from . import KERNEL_CACHE, params

METHODS = ("cos", "proj")
_ROWS = 65536

DEFAULT_TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a close-up photo of a {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a good photo of a {}.",
)

DEFAULTS = dict(
    epochs=20,
    batch_size=64,
    lr=0.3,
    method="cos",
    reweight=True,
    temperature=0.01,
)


@dataclass
class LinearHead:
    """A linear softmax classifier: logits = embeddings @ weight.T + bias."""

    weight: np.ndarray
    bias: np.ndarray
    classes: list = field(default=None)

    def __post_init__(self):
        weight = np.asarray(self.weight, dtype=np.float32)
        if weight.ndim != 2:
            raise ValueError(f"weight must have shape (C, D), got shape {weight.shape}")
        bias = np.zeros(weight.shape[0], np.float32) if self.bias is None else np.asarray(self.bias, dtype=np.float32)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"bias must have shape ({weight.shape[0]},) to match weight {weight.shape}, got {bias.shape}")
        if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
            raise ValueError("the head's weight or bias contains NaN or inf; retrain or reload it")
        if self.classes is not None:
            self.classes = [str(c) for c in self.classes]
            if len(self.classes) != weight.shape[0]:
                raise ValueError(f"classes has {len(self.classes)} names but the head has {weight.shape[0]} rows")
        self.weight = weight
        self.bias = bias

    @property
    def num_classes(self):
        return self.weight.shape[0]

    @property
    def dim(self):
        return self.weight.shape[1]

    def logits(self, embeddings):
        """Returns the (N, C) logits of ``embeddings``."""
        return _as_embeddings(embeddings, min_rows=1) @ self.weight.T + self.bias


def mimic_scores(
    embeddings,
    labels,
    reference_head,
    *,
    epochs=20,
    batch_size=64,
    lr=0.3,
    method="cos",
    reweight=True,
    temperature=0.01,
    seed=None,
    progress=None,
):
    """Returns Grad-Mimic scores as a float32 array of shape (N,); low = suspect.

    Args:
        embeddings: array-like of shape (N, D), finite values
        labels: integer array-like of shape (N,) with values in [0, C)
        reference_head: a :class:`LinearHead` or a ``(W, b)`` pair with ``W``
            of shape (C, D) and ``b`` of shape (C,) (or None for no bias)
        epochs: passes over the data
        batch_size: samples per SGD step
        lr: SGD learning rate (on embeddings scaled to unit RMS norm)
        method: ``"cos"`` (cosine similarity, in [-1, 1]) or ``"proj"``
            (projection of the negative gradient on the unit task vector)
        reweight: weight the samples of each step by the softmax of their
            alignments over ``temperature``, as in the paper; False uses the
            plain mean gradient
        temperature: softmax temperature used when ``reweight`` is True (with
            ``"cos"`` alignments in [-1, 1], 0.01 concentrates each step on
            the best-aligned samples)
        seed: integer seed of the batch order; None draws one
        progress: optional callable receiving the fraction done in [0, 1]

    Returns:
        the mean alignment of each sample over the steps it took part in
    """
    epochs = params.integer("epochs", epochs, minimum=1, maximum=params.MAX_EPOCHS)
    batch_size = params.integer("batch_size", batch_size, minimum=1)
    lr = params.number("lr", lr, above=0.0)
    temperature = params.number("temperature", temperature, above=0.0)
    cosine = _method(method)
    reweight = params.boolean("reweight", reweight)
    progress = params.callback("progress", progress)
    rng = np.random.default_rng(params.seed(seed))
    x = _as_embeddings(embeddings, min_rows=2)
    num, dim = x.shape
    w_ref, b_ref = _head_arrays(reference_head, dim)
    y = _as_labels(labels, num, w_ref.shape[0])
    batch_size = params.batch_size(batch_size, 8 * (w_ref.shape[0] + 1))  # one SGD step's buffers per sample

    # Inputs are scaled to unit RMS norm and get a constant-1 bias column,
    # x = [x / scale, 1] and W = [W | b], without copying the (N, D) matrix.
    sq_norms = _row_sq_norms(x)
    scale = float(np.sqrt(np.mean(sq_norms)))
    if not scale > 0:
        scale = 1.0
    inv_scale = 1.0 / scale
    ref = np.empty((w_ref.shape[0], dim + 1), np.float64)
    ref[:, :dim] = w_ref * scale
    ref[:, dim] = b_ref
    ref_logits = np.empty((num, ref.shape[0]), np.float64)
    for start in range(0, num, _ROWS):
        block = x[start : start + _ROWS].astype(np.float64) * inv_scale
        ref_logits[start : start + _ROWS] = block @ ref[:, :dim].T + ref[:, dim]
    x_norms = np.sqrt(sq_norms * inv_scale**2 + 1.0)
    head = np.zeros_like(ref)
    total = np.zeros(num, np.float64)
    if progress is not None:
        progress(0.0)
    for epoch in range(epochs):
        order = rng.permutation(num)
        _sgd_epoch(
            x, inv_scale, y, ref_logits, x_norms, ref, head, order, batch_size, lr, cosine, reweight, temperature,
            total,
        )
        if progress is not None:
            progress((epoch + 1) / epochs)
    return (total / epochs).astype(np.float32)


def _row_sq_norms(x):
    out = np.empty(len(x), np.float64)
    for start in range(0, len(x), _ROWS):
        block = x[start : start + _ROWS]
        out[start : start + _ROWS] = np.einsum("ij,ij->i", block, block, dtype=np.float64)
    return out


# fastmath without the no-NaN/no-inf assumptions
@numba.njit(nogil=True, cache=KERNEL_CACHE, fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})
def _sgd_epoch(
    x, inv_scale, y, ref_logits, x_norms, ref, head, order, batch_size, lr, cosine, reweight, temperature, total
):
    """One epoch of SGD on ``head`` in place; adds each sample's alignment to ``total``.

    Sample i's input is ``[x[i] * inv_scale, 1]``: the last column of ``head``
    and ``ref`` is the bias.
    """
    num, dim = x.shape
    classes = ref.shape[0]
    resid = np.empty((batch_size, classes))
    align = np.empty(batch_size)
    delta = np.empty(classes)
    grad = np.empty((classes, dim + 1))
    for start in range(0, num, batch_size):
        size = min(batch_size, num - start)
        task_sq = 0.0
        for c in range(classes):
            for k in range(dim + 1):
                t = ref[c, k] - head[c, k]
                task_sq += t * t
        task_norm = np.sqrt(task_sq)
        for j in range(size):
            i = order[start + j]
            top = -np.inf
            for c in range(classes):
                z = 0.0
                for k in range(dim):
                    z += head[c, k] * x[i, k]
                z = z * inv_scale + head[c, dim]
                resid[j, c] = z
                top = max(top, z)
            denom = 0.0
            for c in range(classes):
                # <-g_i, T> = -(p - e)^T (ref - head) x_i, with (ref - head) x_i = ref logits - logits
                delta[c] = ref_logits[i, c] - resid[j, c]
                resid[j, c] = np.exp(resid[j, c] - top)
                denom += resid[j, c]
            dot = 0.0
            resid_sq = 0.0
            for c in range(classes):
                r = resid[j, c] / denom - (1.0 if c == y[i] else 0.0)  # p - onehot(y)
                resid[j, c] = r
                dot -= r * delta[c]
                resid_sq += r * r
            # ||g_i|| = ||p - e|| ||x_i||
            norm = np.sqrt(resid_sq) * x_norms[i] * task_norm if cosine else task_norm
            a = dot / norm if norm > 0 else 0.0
            align[j] = a
            total[i] += a
        if reweight:
            top = -np.inf
            for j in range(size):
                top = max(top, align[j])
            denom = 0.0
            for j in range(size):
                align[j] = np.exp((align[j] - top) / temperature)
                denom += align[j]
            for j in range(size):
                align[j] /= denom
        else:
            for j in range(size):
                align[j] = 1.0 / size
        grad[:] = 0.0
        for j in range(size):
            i = order[start + j]
            for c in range(classes):
                coef = align[j] * resid[j, c]
                scaled = coef * inv_scale
                for k in range(dim):
                    grad[c, k] += scaled * x[i, k]
                grad[c, dim] += coef
        for c in range(classes):
            for k in range(dim + 1):
                head[c, k] -= lr * grad[c, k]


def gradient_alignment(embeddings, labels, head, reference_head, *, method="cos"):
    """Returns each sample's alignment for a fixed current ``head``, shape (N,).

    The alignment compares the sample's negative softmax cross-entropy
    gradient (weights and bias) with the task vector ``reference - head``, as
    one step of :func:`mimic_scores` does (without its input rescaling).
    """
    x = _as_embeddings(embeddings, min_rows=1)
    num, dim = x.shape
    w_ref, b_ref = _head_arrays(reference_head, dim)
    w_cur, b_cur = _head_arrays(head, dim)
    if w_cur.shape != w_ref.shape:
        raise ValueError(f"head has shape {w_cur.shape} but reference_head has {w_ref.shape}; they must match")
    y = _as_labels(labels, num, w_ref.shape[0])
    cosine = _method(method)
    xa = np.hstack([x.astype(np.float64), np.ones((num, 1))])
    ref = np.hstack([w_ref, b_ref[:, None]]).astype(np.float64)
    cur = np.hstack([w_cur, b_cur[:, None]]).astype(np.float64)
    logits = xa @ cur.T
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    probs[np.arange(num), y] -= 1.0
    norms = np.sqrt(np.einsum("ij,ij->i", xa, xa))
    return _alignment(probs, xa @ (ref - cur).T, norms, np.linalg.norm(ref - cur), cosine).astype(np.float32)


def _alignment(resid, delta, x_norms, task_norm, cosine):
    # <-g_i, T> = -(p_i - e_i)^T T x_i ; ||g_i|| = ||p_i - e_i|| ||x_i||
    dot = -np.einsum("ij,ij->i", resid, delta)
    if cosine:
        denom = np.sqrt(np.einsum("ij,ij->i", resid, resid)) * x_norms * task_norm
    else:
        denom = np.full(len(dot), task_norm)
    if (denom > 0).all():
        return dot / denom
    out = np.zeros_like(dot)
    np.divide(dot, denom, out=out, where=denom > 0)
    return out


def flag_label_issues(scores, labels, *, threshold=0.0):
    """Flags likely label errors: samples whose Grad-Mimic score is below ``threshold``.

    With the default 0, a sample is flagged when its gradient, on average over
    training, pushes the head away from the reference rather than towards it.
    On the digits benchmark (10-40% symmetric noise) this sign rule gave F1
    0.83-0.95 without knowing the noise rate; fixed cut-offs of +-0.02 or
    robust z-score (median - k MAD) cut-offs did worse or broke down at 40%.

    Args:
        scores: float array-like of shape (N,) from :func:`mimic_scores`
        labels: the (N,) labels the scores were computed with; checked to
            line up with ``scores``
        threshold: flag scores strictly below this value

    Returns:
        a boolean array of shape (N,)
    """
    s = np.asarray(scores)
    if s.ndim != 1:
        raise ValueError(f"scores must be a 1-D array of shape (N,), got shape {s.shape}")
    if not np.issubdtype(s.dtype, np.number) or not np.isfinite(s).all():
        raise ValueError("scores must be finite numbers; recompute them with mimic_scores")
    lab = np.asarray(labels)
    if lab.shape != s.shape:
        raise ValueError(f"labels have shape {lab.shape} but scores have {s.shape}; pass the labels the scores came from")
    threshold = float(threshold)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    return s < threshold


#: a reference head whose accuracy on its reference samples is within this share of the way from chance
#: (the majority class) to perfect is "near chance": its direction says little about the labels
NEAR_CHANCE = 0.25
#: flagging more than this share of the samples says more about the reference than about the labels
MAX_FLAGGED_SHARE = 0.5


def reference_accuracy(head, embeddings, labels, *, batch=65_536):
    """``(accuracy, chance)`` of a reference head on labelled samples; chance is the majority-class share."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return None, None
    correct = 0
    for start in range(0, len(labels), batch):
        logits = head.logits(embeddings[start:start + batch])
        correct += int((np.argmax(logits, axis=1) == labels[start:start + batch]).sum())
    chance = float(np.bincount(labels).max() / len(labels))
    return correct / len(labels), chance


def sanity_warning(accuracy, chance, flagged, scored, *, reference="the reference"):
    """One sentence when the scores are likely meaningless (a head near chance, most samples flagged), else None."""
    problems = []
    if accuracy is not None and accuracy < chance + NEAR_CHANCE * (1.0 - chance):
        problems.append(f"{reference} is near chance on its reference samples (accuracy {accuracy:.0%}, chance "
                        f"{chance:.0%})")
    if scored and flagged > MAX_FLAGGED_SHARE * scored:
        problems.append(f"{flagged:,} of {scored:,} samples ({flagged / scored:.0%}) are flagged as label errors")
    if not problems:
        return None
    return ("; ".join(problems) + ": the scores likely say more about the reference than about the labels. "
            "Check the reference (trusted samples, embeddings model, checkpoint) before acting on them")


def train_linear_head(embeddings, labels, num_classes, *, C=1.0, seed=None, classes=None, max_iter=2000):
    """Fits a reference head on a trusted subset with multinomial logistic regression.

    Every class must occur in the trusted subset: a head cannot say anything
    reliable about a class it never saw, so missing classes raise a ValueError
    that names them rather than producing a silently biased reference.

    Args:
        embeddings: array-like of shape (M, D) of the trusted samples
        labels: integer array-like of shape (M,) with values in [0, num_classes)
        num_classes: number of classes C (>= 2)
        C: inverse L2 regularisation strength of scikit-learn's LogisticRegression
        seed: random_state of the solver
        classes: optional list of C class names, used in messages and stored
        max_iter: solver iterations

    Returns:
        a :class:`LinearHead` with weight (C, D) and bias (C,)
    """
    num_classes = params.integer("num_classes", num_classes, minimum=1)
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if classes is not None and len(classes) != num_classes:
        raise ValueError(f"classes has {len(classes)} names but num_classes={num_classes}")
    arr = np.asarray(embeddings)
    if arr.size == 0 or (arr.ndim >= 1 and arr.shape[0] == 0):
        raise ValueError("the trusted set is empty; provide labelled embeddings for at least one sample per class")
    x = _as_embeddings(arr, min_rows=1)
    y = _as_labels(labels, len(x), num_classes)
    C = params.number("C", C, above=0.0)
    present = np.unique(y)
    missing = sorted(set(range(num_classes)) - set(present.tolist()))
    if missing:
        names = [classes[i] for i in missing] if classes is not None else missing
        raise ValueError(
            f"the trusted set has no samples of classes {names}; label at least one sample of every class "
            "(or drop those classes) before training a reference head"
        )
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=params.integer("max_iter", max_iter, minimum=1), random_state=params.seed(seed))
    with _blas_threads(1 if x.size <= 2_000_000 else None):
        model.fit(x.astype(np.float64), y)
    coef = np.asarray(model.coef_, np.float64)
    icpt = np.asarray(model.intercept_, np.float64)
    if num_classes == 2:
        # sklearn stores one logit difference for binary problems; split it symmetrically.
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        icpt = np.array([-icpt[0] / 2, icpt[0] / 2])
    return LinearHead(coef.astype(np.float32), icpt.astype(np.float32), classes)


def zero_shot_head(text_embeddings, logit_scale, *, classes=None):
    """Builds a zero-shot head: logit_scale times the L2-normalised class text embeddings.

    Args:
        text_embeddings: array-like of shape (C, D), one row per class (C >= 2)
        logit_scale: positive multiplier (CLIP's learned temperature, e.g. 100)
        classes: optional list of C class names

    Returns:
        a :class:`LinearHead` with zero bias
    """
    t = _as_embeddings(text_embeddings, min_rows=1, name="text_embeddings")
    if len(t) < 2:
        raise ValueError(f"text_embeddings needs one row per class and at least 2 classes, got {len(t)}")
    logit_scale = params.number("logit_scale", logit_scale, above=0.0)
    norms = np.linalg.norm(t.astype(np.float64), axis=1)
    if (norms == 0).any():
        raise ValueError(f"text_embeddings rows {np.where(norms == 0)[0].tolist()} are all zero; recompute them")
    weight = logit_scale * t / norms[:, None]
    return LinearHead(weight.astype(np.float32), np.zeros(len(t), np.float32), classes)


def text_prompts(class_name, templates=DEFAULT_TEMPLATES):
    """Returns the CLIP prompts of one class, one per template."""
    if not isinstance(class_name, str) or not class_name.strip():
        raise ValueError(f"class_name must be a non-empty string, got {class_name!r}")
    templates = params.strings("templates", templates, "prompt templates such as 'a photo of a {}.'")
    if not templates:
        raise ValueError("templates is empty; pass at least one template such as 'a photo of a {}.'")
    for tpl in templates:
        params.template("templates", tpl)
    return [tpl.format(class_name) for tpl in templates]


def load_head(path, num_classes, dim, *, classes=None):
    """Loads a reference head from ``.npy`` or ``.pt``/``.pth`` without running pickled code.

    Accepted contents: an array of shape (C, D), or (C, D + 1) whose last
    column is the bias; for torch files also a dict with ``"weight"`` (C, D)
    and an optional ``"bias"`` (C,). ``.npy`` files are read with
    ``allow_pickle=False`` and torch files with ``weights_only=True``, so
    files that hold arbitrary Python objects are refused with a ValueError.
    """
    num_classes = params.integer("num_classes", num_classes, minimum=1)
    dim = params.integer("dim", dim, minimum=1)
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if not os.path.isfile(path):
        raise ValueError(f"head file {path!r} does not exist")
    if ext == ".npy":
        try:
            obj = np.load(path, allow_pickle=False)
        except ValueError as err:
            if "pickle" not in str(err).lower():
                raise ValueError(f"checkpoint_path: {path!r} is not a valid .npy array file ({err})") from None
            raise ValueError(
                f"refusing to load {path!r}: it holds pickled Python objects, which could run code; "
                f"save the head as a plain numeric array ({err})"
            ) from None
        except (EOFError, OSError) as err:
            raise ValueError(
                f"checkpoint_path: {path!r} is empty or not a .npy array file ({type(err).__name__}); "
                "save the head with numpy.save"
            ) from None
    elif ext in (".pt", ".pth"):
        import pickle

        import torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(
                f"refusing to load {path!r}: it is not a plain tensor file and loading it with "
                f"weights_only=True failed (it may contain code); save only tensors ({first})"
            ) from None
    else:
        raise ValueError(f"head file must end in .npy, .pt or .pth, got {path!r}")

    bias = None
    if isinstance(obj, dict):
        if "weight" not in obj:
            raise ValueError(f"{path!r} holds a dict without a 'weight' entry; keys are {sorted(map(str, obj))}")
        weight = _to_numpy(obj["weight"], path)
        if obj.get("bias") is not None:
            bias = _to_numpy(obj["bias"], path)
    else:
        weight = _to_numpy(obj, path)
        if weight.ndim == 2 and weight.shape == (num_classes, dim + 1):
            weight, bias = weight[:, :dim], weight[:, dim]
    if weight.shape != (num_classes, dim):
        raise ValueError(
            f"head in {path!r} has weight shape {tuple(weight.shape)} but expected ({num_classes}, {dim})"
            + ("" if isinstance(obj, dict) else f" or ({num_classes}, {dim + 1}) with a bias column")
        )
    if bias is not None and bias.shape != (num_classes,):
        raise ValueError(f"head in {path!r} has bias shape {tuple(bias.shape)} but expected ({num_classes},)")
    return LinearHead(weight, bias, classes)


_CONTROLLER = []


def _blas_threads(limit):
    """Caps BLAS threads; on small problems threads only add synchronisation."""
    import contextlib

    if limit is None:
        return contextlib.nullcontext()
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
            return contextlib.nullcontext()
        _CONTROLLER.append(ThreadpoolController())  # scanning the libraries is the slow part
    return _CONTROLLER[0].limit(limits=limit, user_api="blas")


def _to_numpy(obj, path):
    if hasattr(obj, "detach"):
        obj = obj.detach().cpu().float().numpy()
    arr = np.asarray(obj)
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{path!r} must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float32)


def _as_embeddings(embeddings, min_rows, name="embeddings"):
    arr = np.asarray(embeddings)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (N, D), got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {arr.shape[0]}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} have no dimensions")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    for start in range(0, len(arr), _ROWS):
        finite = np.isfinite(arr[start : start + _ROWS]).all(axis=1)
        if not finite.all():
            bad = (start + np.where(~finite)[0][:5]).tolist()
            raise ValueError(f"{name} contain NaN or inf (rows {bad} ...); recompute or drop those rows")
    return arr


def _as_labels(labels, num, num_classes):
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of shape (N,), got shape {y.shape}")
    if len(y) != num:
        raise ValueError(f"labels has {len(y)} entries but embeddings has {num} rows; they must match")
    if y.dtype == bool or not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise ValueError("labels must be integer class indices; map class names to 0..C-1 first")
    y = y.astype(np.int64)
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        raise ValueError(
            f"labels must be in [0, {num_classes}); got {y[bad][:5].tolist()} at rows {np.where(bad)[0][:5].tolist()}"
        )
    return y


def _head_arrays(head, dim):
    if isinstance(head, LinearHead):
        weight, bias = head.weight, head.bias
    elif isinstance(head, (tuple, list)) and len(head) == 2:
        checked = LinearHead(head[0], head[1])
        weight, bias = checked.weight, checked.bias
    else:
        raise ValueError(f"reference_head must be a LinearHead or a (W, b) pair, got {type(head).__name__}")
    if weight.shape[0] < 2:
        raise ValueError(f"the head must have at least 2 classes, got {weight.shape[0]}")
    if weight.shape[1] != dim:
        raise ValueError(f"the head expects {weight.shape[1]}-D embeddings but embeddings are {dim}-D")
    return weight, bias


def _method(method):
    return params.choice("method", method, METHODS) == "cos"
