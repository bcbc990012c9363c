"""Coreset selection from scores (interim: 'top' only; the full module replaces this)."""

import math

import numpy as np

SELECTION_MODES = ("top",)
DEFAULT_SELECTION = "top"


def select_coreset(scores, prune_rate, *, keep="highest", selection="top", labels=None, stratify=False, embeddings=None, seed=None):
    scores = np.asarray(scores, dtype=np.float64)
    if not (isinstance(prune_rate, (int, float)) and 0 <= prune_rate < 1):
        raise ValueError(f"prune_rate must be in [0, 1), got {prune_rate!r}")
    order = np.argsort(-scores if keep == "highest" else scores, kind="stable")
    n = len(scores)
    if not stratify:
        return np.sort(order[: n - math.floor(prune_rate * n)])
    labels = np.asarray(labels)
    kept = []
    for label in np.unique(labels):
        members = order[labels[order] == label]
        kept.extend(members[: len(members) - math.floor(prune_rate * len(members))])
    return np.sort(np.array(kept, dtype=np.int64))
