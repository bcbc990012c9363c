"""Near-duplicates: the one rule for what counts as a copy of another sample.

Two samples are near-duplicates when their Euclidean embedding distance is
below a radius. The default radius is relative to the data, so the common
case needs no threshold: :data:`RADIUS_RATIO` times the typical neighbour
distance, the median over samples of the distance to the
:data:`REFERENCE_NEIGHBOR`-th nearest neighbour. Copies with small noise sit
far inside it; distinct samples of one tight group sit outside it.
"""

import numpy as np

#: a pair closer than this fraction of the typical neighbour distance is a near-duplicate
RADIUS_RATIO = 0.2
#: the neighbour whose median distance is the typical neighbour distance
REFERENCE_NEIGHBOR = 10


def default_radius(reference_distances):
    """The default near-duplicate radius, from each sample's distance to its REFERENCE_NEIGHBOR-th neighbour."""
    d = np.asarray(reference_distances, dtype=np.float64).ravel()
    d = d[np.isfinite(d)]
    return float(RADIUS_RATIO * np.median(d)) if len(d) else 0.0
