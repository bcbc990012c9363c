"""2-D maps of embeddings (UMAP) for the panel, and a warm-up of UMAP's compiled code."""

import threading
import warnings

import numpy as np

#: UMAP's optimisation epochs: its own choice above 10,000 points; the 500 it uses below cost 3x for a map to look at
EPOCHS = 200
#: neighbours of each point in the UMAP graph (UMAP's default)
NEIGHBOURS = 15
_WARM_UP_POINTS = 300
_warm_up_lock = threading.Lock()
_warm_up_started = False


def umap_2d(vectors, *, seed=51, epochs=EPOCHS):
    """The (n, 2) float32 UMAP layout of ``vectors`` (same seed, same layout).

    The neighbour graph is exact (scikit-learn, milliseconds at the panel's 5,000 points) and handed to
    UMAP, which then skips NNDescent: its numba code is most of the ~25 s UMAP compiles on first use.
    """
    import umap
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(vectors, dtype=np.float32)
    if len(x) < 3:
        return np.zeros((len(x), 2), dtype=np.float32)
    k = min(NEIGHBOURS, len(x) - 1)
    distances, indices = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seeded (single-threaded) and no index kept for transform: both wanted
        layout = umap.UMAP(n_components=2, n_neighbors=k, random_state=seed, n_epochs=epochs,
                           precomputed_knn=(indices, distances, None)).fit_transform(x)
    return np.asarray(layout, dtype=np.float32)


def warm_up():
    """Compiles UMAP's numba code once per process, in a background thread (~6 s of one core), so that the
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
