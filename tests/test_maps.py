"""2-D maps: a UMAP of at most MAP_POINTS samples, stored as a Brain visualization and reused."""

import numpy as np


def test_a_map_of_a_larger_dataset_is_a_seeded_subset_stored_and_reused(fo, bridge, make_dataset):
    dataset = make_dataset(300, dim=8)
    first = bridge.embedding_map(dataset, "emb", max_points=120)
    assert len(first.index) == 120 and first.xy.shape == (120, 2) and np.isfinite(first.xy).all()
    assert "coreset_map_emb" in dataset.list_brain_runs()
    results = dataset.load_brain_results("coreset_map_emb")
    stored = dict(zip(results.current_sample_ids, np.asarray(results.current_points)))
    assert set(stored) == set(first.index)
    for sample_id, row in first.index.items():  # each point belongs to its sample
        assert np.allclose(stored[sample_id], first.xy[row])
    again = bridge.embedding_map(fo.load_dataset(dataset.name), "emb", max_points=120)  # read back, not recomputed
    assert again.index.keys() == first.index.keys() and again.method == "umap"
    assert all(np.allclose(again.xy[again.index[i]], first.xy[first.index[i]]) for i in first.index)

