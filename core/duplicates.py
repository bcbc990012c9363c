"""Near-duplicates: the one rule for what counts as a copy of another sample.

Two samples are near-duplicates when their Euclidean embedding distance is
below a radius. The default radius is relative to the data, so the common
case needs no threshold: :data:`RADIUS_RATIO` times the typical neighbour
distance, the median over samples of the distance to the
:data:`REFERENCE_NEIGHBOR`-th nearest neighbour. Copies with small noise sit
far inside it; distinct samples of one tight group sit outside it.
"""

from dataclasses import dataclass

import numpy as np

from . import params

#: a pair closer than this fraction of the typical neighbour distance is a near-duplicate
RADIUS_RATIO = 0.2
#: the neighbour whose median distance is the typical neighbour distance
REFERENCE_NEIGHBOR = 10


def default_radius(reference_distances):
    """The default near-duplicate radius, from each sample's distance to its REFERENCE_NEIGHBOR-th neighbour."""
    d = np.asarray(reference_distances, dtype=np.float64).ravel()
    d = d[np.isfinite(d)]
    return float(RADIUS_RATIO * np.median(d)) if len(d) else 0.0


#: up to this many samples the search is exact (a flat index over the full vectors)
EXACT_MAX = 20_000
#: above EXACT_MAX: an inverted-file index on this many principal components
PCA_DIMS = 64
#: inverted lists probed per query (of about 2·sqrt(n) lists)
NPROBE = 8
#: neighbours searched per sample; a sample with all of them inside the radius is searched again with MORE_NEIGHBORS
NEIGHBORS = 16
MORE_NEIGHBORS = 256
#: samples whose neighbour distances estimate the default radius (all of them up to this many)
REFERENCE_SAMPLES = 20_000
_BLOCK = 16_384
_COMPRESS_EDGES = 4_000_000


@dataclass
class DuplicateGroups:
    """Near-duplicate groups of n samples.

    ``groups[i]`` is the group id of sample i (0, 1, ... in the order of the
    groups' first members) or -1 when it has no near-duplicate;
    ``representative[i]`` is True for the one sample kept of each group (its
    lowest index) and for every sample without a near-duplicate, False for
    the extra copies. ``radius`` is the Euclidean radius used.
    """

    groups: np.ndarray
    representative: np.ndarray
    radius: float

    def __iter__(self):
        return iter((self.groups, self.representative, self.radius))

    @property
    def num_groups(self):
        return int(self.groups.max()) + 1 if len(self.groups) and self.groups.max() >= 0 else 0

    @property
    def num_copies(self):
        return int((~self.representative).sum())


def near_duplicate_groups(embeddings, *, radius=None, num_threads=None, progress=None):
    """Groups of near-duplicates: connected components of the pairs closer than ``radius``.

    Args:
        embeddings: an (n, d) array (float32 C-order is used without a copy)
        radius: a Euclidean distance; None: :func:`default_radius` of the data
        num_threads: CPU threads for faiss (default: all cores)
        progress: None or a callable taking the fraction done; it may raise to cancel

    Up to :data:`EXACT_MAX` samples the neighbours are exact (faiss
    ``IndexFlatL2``). Above, candidates come from an ``IndexIVFFlat`` on the
    first :data:`PCA_DIMS` principal components (about 2·sqrt(n) lists,
    :data:`NPROBE` probed): a projected distance never exceeds the true one,
    so candidates outside the radius there are dropped safely and the others
    are checked on the full vectors. Each sample links to its near-duplicates
    among its :data:`NEIGHBORS` nearest (:data:`MORE_NEIGHBORS` when all of
    those are within the radius); memory stays O(n·k), never all pairs.

    Returns a :class:`DuplicateGroups` (unpacks as ``groups, representative, radius``).
    """
    import faiss

    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (samples x dimensions), got shape {x.shape}")
    radius, num_threads, progress = check_params(radius=radius, num_threads=num_threads, progress=progress).values()
    report = progress or (lambda fraction: None)
    n = len(x)
    if n == 0:
        return DuplicateGroups(np.empty(0, np.int64), np.empty(0, bool), float(radius or 0.0))
    if not np.isfinite(x).all():
        raise ValueError("embeddings hold NaN or inf values; recompute or exclude those samples")
    threads = faiss.omp_get_max_threads()
    if num_threads:
        faiss.omp_set_num_threads(num_threads)
    try:
        search = _Search(x, report)
        if radius is None:
            radius = _default_radius(x, search)
        report(0.3)
        edges = _Edges(n)
        r2 = float(radius) ** 2
        saturated = []
        for start in range(0, n, _BLOCK):
            rows = np.arange(start, min(n, start + _BLOCK))
            full = edges.add(x, rows, *search.knn(rows, min(NEIGHBORS, n)), r2)
            saturated.append(rows[full])
            report(0.3 + 0.6 * min(n, start + _BLOCK) / n)
        saturated = np.concatenate(saturated)
        k = min(MORE_NEIGHBORS, n)
        if k > NEIGHBORS:
            for start in range(0, len(saturated), _BLOCK // 16):
                rows = saturated[start : start + _BLOCK // 16]
                edges.add(x, rows, *search.knn(rows, k), r2)
        report(0.95)
        groups, representative = edges.groups()
    finally:
        faiss.omp_set_num_threads(threads)
    report(1.0)
    return DuplicateGroups(groups, representative, float(radius))


def check_params(*, radius=None, num_threads=None, progress=None):
    """The checked parameters of :func:`near_duplicate_groups` (a dict), or a ValueError naming the bad one."""
    return dict(
        radius=params.optional(params.number, "radius", radius, minimum=0.0),
        num_threads=params.optional(params.integer, "num_threads", num_threads, minimum=1,
                                    maximum=params.max_workers()),
        progress=params.callback("progress", progress),
    )


class _Search:
    """k nearest neighbours by a lower bound of the distance: exact (flat) or on principal components (IVF)."""

    def __init__(self, x, report):
        import faiss

        n, d = x.shape
        self.x = x
        if n <= EXACT_MAX or d <= PCA_DIMS:
            self.pca, self.y = None, x
            self.index = faiss.IndexFlatL2(d)
            self.index.add(x)
            return
        rng = np.random.default_rng(0)
        train = np.sort(rng.choice(n, size=min(n, 65_536), replace=False))
        self.pca = faiss.PCAMatrix(d, PCA_DIMS)
        self.pca.train(x[train])
        self.y = np.empty((n, PCA_DIMS), np.float32)
        for start in range(0, n, _BLOCK * 4):
            self.y[start : start + _BLOCK * 4] = self.pca.apply(x[start : start + _BLOCK * 4])
        report(0.05)
        nlist = int(min(max(16, 2 * np.sqrt(n)), n // 39))
        self.quantizer = faiss.IndexFlatL2(PCA_DIMS)
        self.index = faiss.IndexIVFFlat(self.quantizer, PCA_DIMS, nlist)
        self.index.cp.seed = 1234
        self.index.train(self.y[np.sort(rng.choice(n, size=min(n, 39 * nlist), replace=False))])
        report(0.1)
        for start in range(0, n, _BLOCK * 4):
            self.index.add(self.y[start : start + _BLOCK * 4])
        self.index.nprobe = NPROBE

    def knn(self, rows, k):
        """``(lower bounds of the squared distances, neighbour indices)`` of ``rows``, k each (-1: none)."""
        bounds, neighbors = self.index.search(self.y[rows], k)
        return bounds, neighbors


def _default_radius(x, search):
    """:func:`default_radius` from the exact distances to the REFERENCE_NEIGHBOR-th neighbour (of a sample above REFERENCE_SAMPLES)."""
    n = len(x)
    if n <= REFERENCE_NEIGHBOR:
        raise ValueError(
            f"radius: the automatic radius needs more than {REFERENCE_NEIGHBOR} samples, got {n}; pass a radius"
        )
    rows = np.arange(n) if n <= REFERENCE_SAMPLES else np.sort(
        np.random.default_rng(1).choice(n, size=REFERENCE_SAMPLES, replace=False))
    k = min(n, max(NEIGHBORS, 2 * (REFERENCE_NEIGHBOR + 1)))
    reference = np.empty(len(rows), np.float64)
    for start in range(0, len(rows), _BLOCK // 4):
        block = rows[start : start + _BLOCK // 4]
        _, neighbors = search.knn(block, k)
        exact = _sq_distances(x, np.repeat(block, k), neighbors.ravel()).reshape(len(block), k)
        exact[(neighbors < 0) | (neighbors == block[:, None])] = np.inf  # itself, or no neighbour
        exact.sort(axis=1)
        reference[start : start + len(block)] = np.sqrt(exact[:, REFERENCE_NEIGHBOR - 1])
    return default_radius(reference)


def _sq_distances(x, i, j):
    """Squared Euclidean distances of the pairs (x[i], x[j]) (j = -1 gives inf)."""
    out = np.full(len(i), np.inf, np.float32)
    ok = np.flatnonzero(j >= 0)
    for start in range(0, len(ok), 8192):
        sel = ok[start : start + 8192]
        diff = x[i[sel]] - x[j[sel]]
        out[sel] = np.einsum("ij,ij->i", diff, diff)
    return out


class _Edges:
    """The near-duplicate pairs found so far, compressed into components as they come (O(n) memory)."""

    def __init__(self, n):
        self.n = n
        self.parts = []
        self.count = 0

    def add(self, x, rows, bounds, neighbors, r2):
        """Keeps the pairs within the radius; returns which rows had all their neighbours within it."""
        inside = (bounds < r2) & (neighbors >= 0) & (neighbors != rows[:, None])
        full = (bounds < r2).all(axis=1) & (neighbors >= 0).all(axis=1)
        i = np.repeat(rows, neighbors.shape[1]).reshape(neighbors.shape)[inside]
        j = neighbors[inside]
        keep = _sq_distances(x, i, j) < r2
        if keep.any():
            self.parts.append(np.stack([i[keep], j[keep]]).astype(np.int64))
            self.count += int(keep.sum())
            if self.count > _COMPRESS_EDGES:
                self._compress()
        return full

    def _components(self):
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        pairs = np.concatenate(self.parts, axis=1) if self.parts else np.empty((2, 0), np.int64)
        graph = coo_matrix((np.ones(pairs.shape[1], np.int8), (pairs[0], pairs[1])), shape=(self.n, self.n))
        return connected_components(graph, directed=False)[1]

    def _compress(self):
        labels = self._components()
        first = np.full(labels.max() + 1, self.n, np.int64)
        np.minimum.at(first, labels, np.arange(self.n))
        members = np.flatnonzero(first[labels] != np.arange(self.n))
        self.parts = [np.stack([members, first[labels[members]]])]
        self.count = len(members)

    def groups(self):
        labels = self._components()
        order = np.arange(self.n)
        first = np.full(labels.max() + 1, self.n, np.int64)
        np.minimum.at(first, labels, order)
        size = np.bincount(labels)
        rep = first[labels] == order
        grouped = size[labels] > 1
        ids = np.full(labels.max() + 1, -1, np.int64)
        multi = np.flatnonzero(size > 1)
        ids[multi[np.argsort(first[multi], kind="stable")]] = np.arange(len(multi))
        groups = np.where(grouped, ids[labels], -1)
        return groups, rep
