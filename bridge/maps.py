"""2-D maps of embeddings, stored as FiftyOne Brain visualization runs."""

import numpy as np

from ..core import maps as core_maps
from .reads import read_vectors

MAP_KEY_PREFIX = "coreset_map_"
#: most samples a map shows; a new map of a larger dataset is computed on a random subset of this size
MAP_POINTS = 5_000


class EmbeddingMap:
    """2-D points of a dataset's samples: ``xy[index[sample_id]]``."""

    def __init__(self, ids, xy, method):
        self.index = {sample_id: row for row, sample_id in enumerate(ids)}
        self.xy = np.asarray(xy, dtype=np.float32)
        self.method = method


def embedding_map(dataset, embeddings_field, *, seed=51, max_points=MAP_POINTS):
    """The 2-D map of ``embeddings_field``: a Brain visualization of it if there is one (of any size, e.g.
    one precomputed at 1M), else a UMAP of a random ``max_points`` of the samples that have the field, stored
    as a Brain visualization (``coreset_map_<field>``) for next time."""
    import fiftyone.brain as fob

    key = MAP_KEY_PREFIX + embeddings_field.replace(".", "_")
    for existing in dataset.list_brain_runs(type=fob.Visualization):
        config = dataset.get_brain_info(existing).config
        if existing == key:
            return _from_results(dataset.load_brain_results(existing), "umap")
        if getattr(config, "embeddings_field", None) == embeddings_field and getattr(config, "num_dims", 2) == 2:
            return _from_results(dataset.load_brain_results(existing), config.method)
    samples = dataset.exists(embeddings_field)
    if samples.count() > max_points:
        samples = samples.take(max_points, seed=seed)
    table = read_vectors(samples, [embeddings_field])
    points = core_maps.umap_2d(table.vectors, seed=seed)
    fob.compute_visualization(samples.select(table.ids, ordered=True), points=points, brain_key=key,
                              progress=False)
    return EmbeddingMap([str(i) for i in table.ids], points, "umap")


def _from_results(results, method):
    return EmbeddingMap(results.current_sample_ids, results.current_points, method)
