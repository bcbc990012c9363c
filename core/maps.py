"""2-D maps of embeddings (UMAP) for the panel, and a warm-up of UMAP's compiled code."""

import threading
import warnings

import numpy as np

#: UMAP's optimisation epochs: its own choice above 10,000 points; the 500 it uses below cost 3x for a map to look at
EPOCHS = 200
# UMAP finds neighbours exactly below 4,096 points and with NNDescent above: the warm-up compiles both
_WARM_UP_POINTS = 4_200
_warm_up_lock = threading.Lock()
_warm_up_started = False


def umap_2d(vectors, *, seed=51, epochs=EPOCHS):
    """The (n, 2) float32 UMAP layout of ``vectors`` (same seed, same layout)."""
    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by setting random_state": a seeded map is wanted
        layout = umap.UMAP(n_components=2, random_state=seed, n_epochs=epochs).fit_transform(np.asarray(vectors))
    return np.asarray(layout, dtype=np.float32)


def warm_up():
    """Compiles UMAP's numba code once per process, in a background thread (~20 s of one core), so that the
    first map waits for its layout only."""
    global _warm_up_started
    with _warm_up_lock:
        if _warm_up_started:
            return
        _warm_up_started = True
    threading.Thread(target=_warm, name="coreset-umap-warm-up", daemon=True).start()


def _warm():
    try:
        umap_2d(np.random.default_rng(0).normal(size=(_WARM_UP_POINTS, 4)).astype(np.float32), epochs=2)
    except Exception:  # noqa: BLE001 - UMAP missing or failing: the map will say so when asked for
        pass
