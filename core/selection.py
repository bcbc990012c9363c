"""Coreset selection at one pruning rate: a prefix of the coreset order.

Pure numpy / scikit-learn; no FiftyOne import.

The algorithm lives in :mod:`core.order`: :func:`core.order.coreset_order`
ranks every sample once, and the coreset at pruning rate ``p`` is the first
:func:`kept_count` ``(n, p)`` samples of that order, so coresets are nested
across rates. :func:`select_coreset` is that prefix, sorted, for callers that
ask for one rate at a time; a caller that needs several rates (a slider, a
probe curve) should compute the order once instead.

The modes (:data:`SELECTIONS`, the same as :data:`core.order.ORDERS`) and
the default (:data:`DEFAULT_SELECTION`) are described in :mod:`core.order`.
The per-rate selection this module used to run (one k-means per rate) is kept
for the benchmark as ``bench/selection_reference.py``.
"""

import numpy as np

from .order import DEFAULT_ORDER, EMBEDDING_ORDERS, ORDERS, class_counts, coreset_order, kept_count
from .order import _check_rate

__all__ = [
    "DEFAULT_SELECTION",
    "SELECTIONS",
    "EMBEDDING_SELECTIONS",
    "select_coreset",
    "kept_count",
    "class_budgets",
]

SELECTIONS = ORDERS
EMBEDDING_SELECTIONS = EMBEDDING_ORDERS
DEFAULT_SELECTION = DEFAULT_ORDER


def class_budgets(sizes, prune_rate):
    """Kept count per class of a stratified selection at ``prune_rate``.

    The stratified order gives every prefix of length ``k`` either
    ``floor(k * size / n)`` or ``ceil(k * size / n)`` samples of each class
    (the quota rule, see :mod:`core.order`); this is that split for
    ``k = kept_count(n, prune_rate)``. The total is exactly ``k`` and every
    class is less than one sample from its exact share ``k * size / n``.

    Args:
        sizes: class sizes (non-negative integers)
        prune_rate: in [0, 1)

    Returns:
        int64 array of kept counts, one per class
    """
    _check_rate(prune_rate)
    sizes = np.asarray(sizes, dtype=np.int64)
    return class_counts(sizes, kept_count(int(sizes.sum()), prune_rate))


def select_coreset(
    scores,
    prune_rate,
    *,
    keep="highest",
    selection="top",
    labels=None,
    stratify=False,
    embeddings=None,
    seed=None,
):
    """Returns the positions of the samples to keep at ``prune_rate``.

    ``np.sort(coreset_order(...)[:kept_count(n, prune_rate)])``: exactly
    ``n - floor(prune_rate * n)`` positions, nested across rates.

    Args:
        scores: array-like of shape (n,) of finite numbers (drop samples with
            missing / NaN scores before calling)
        prune_rate: fraction to prune, in [0, 1)
        keep: ``"highest"`` (higher score = keep first, ZCore) or
            ``"lowest"`` (inverts the role of the score)
        selection: one of :data:`SELECTIONS`; ``"cluster"``, ``"coverage"``
            and ``"prototype"`` need ``embeddings``
        labels: array-like of shape (n,) of class labels, used when
            ``stratify`` is True
        stratify: keep every class at the same rate (see :func:`class_budgets`)
        embeddings: array-like of shape (n, d) of finite numbers
        seed: integer seed of the randomised parts; None means 0, so every
            mode is deterministic for given inputs

    Returns:
        int64 array of kept positions, sorted ascending

    Raises:
        ValueError: on a bad ``prune_rate``, ``keep``, ``selection``, NaN or
            infinite scores, mismatched lengths, or missing embeddings/labels
    """
    _check_rate(prune_rate)
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if selection in EMBEDDING_SELECTIONS and embeddings is None:
        raise ValueError(
            f"selection={selection!r} needs embeddings (array of shape (n, d)); "
            "pass embeddings= or use selection='top' or 'ccs'"
        )
    order = coreset_order(
        scores,
        embeddings=embeddings,
        mode=selection,
        keep=keep,
        labels=labels,
        stratify=stratify,
        seed=seed,
    )
    return np.sort(order[: kept_count(len(order), prune_rate)])
