"""2-D maps of embeddings, stored as FiftyOne Brain visualization runs."""

import numpy as np

MAP_KEY_PREFIX = "coreset_map_"


class EmbeddingMap:
    """2-D points of a dataset's samples: ``xy[index[sample_id]]``."""

    def __init__(self, ids, xy, method):
        self.index = {sample_id: row for row, sample_id in enumerate(ids)}
        self.xy = np.asarray(xy, dtype=np.float32)
        self.method = method


def embedding_map(dataset, embeddings_field, *, method="umap", seed=51):
    """Reuses a Brain visualization of ``embeddings_field`` or computes one with UMAP."""
    import fiftyone.brain as fob

    for key in dataset.list_brain_runs(type=fob.Visualization):
        config = dataset.get_brain_info(key).config
        if getattr(config, "embeddings_field", None) == embeddings_field and getattr(config, "num_dims", 2) == 2:
            return _from_results(dataset.load_brain_results(key), config.method)
    key = MAP_KEY_PREFIX + embeddings_field.replace(".", "_")
    results = fob.compute_visualization(
        dataset, embeddings=embeddings_field, method=method, brain_key=key, seed=seed, progress=False
    )
    return _from_results(results, method)


def _from_results(results, method):
    return EmbeddingMap(results.current_sample_ids, results.current_points, method)
