"""The model's strategies in a run: spectral relevance analysis (SpRAy; Lapuschkin et al., "Unmasking Clever Hans
predictors and assessing what machines really learn", Nat. Commun. 10, 1096, 2019).

For the maps of one method on the images of one class: each map is downsampled (block means), made a distribution
of relevance mass (absolute values, summing to 1: two maps that look at the same place are close whatever their
scale or sign), joined to its nearest neighbours in a symmetric k-NN graph, and embedded with the graph's
Laplacian eigenvectors. The eigengap of that Laplacian suggests the number of clusters; k-means in the embedding
finds them. The graph, the embedding and k-means are scikit-learn's (``kneighbors_graph``, ``spectral_embedding``,
``KMeans``); only the eigengap (a few lines over SciPy's eigen-solver) is ours, because scikit-learn does not return
the Laplacian's eigenvalues.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import ParameterError

#: side of the downsampled maps that are clustered
GRID = 16
MAX_CLUSTERS = 8


def downsample(maps: np.ndarray, grid: int = GRID) -> np.ndarray:
    """(N, H, W) -> (N, grid*grid) relevance-mass distributions: block means of |map|, each row summing to 1."""
    from skimage.transform import resize

    a = np.abs(np.asarray(maps, dtype=np.float32))
    if a.shape[1] != grid or a.shape[2] != grid:
        a = np.stack([resize(m, (grid, grid), order=1, anti_aliasing=True, preserve_range=True) for m in a])
    flat = a.reshape(len(a), -1).astype(np.float64)
    total = flat.sum(axis=1, keepdims=True)
    return np.divide(flat, total, out=np.full_like(flat, 1.0 / flat.shape[1]), where=total > 0)


def mass(maps: np.ndarray) -> np.ndarray:
    """Maps at native resolution as relevance-mass distributions (|map| / sum): (N, H, W), each summing to 1."""
    a = np.abs(np.asarray(maps, dtype=np.float64))
    total = a.sum(axis=(1, 2), keepdims=True)
    return np.divide(a, total, out=np.full_like(a, 1.0 / a[0].size if len(a) else 0.0), where=total > 0)


@dataclass
class Clustering:
    """The clusters of one set of maps. ``labels[i]`` is the cluster of map ``i``; ``embedding`` is the 2-D view."""

    labels: np.ndarray
    k: int
    suggested_k: int
    eigenvalues: np.ndarray
    embedding: np.ndarray
    distance: np.ndarray  # each map's distance to its cluster's centre, in the spectral embedding
    params: dict[str, Any] = field(default_factory=dict)

    def nearest(self, cluster: int, n: int = 6) -> np.ndarray:
        """Positions of the ``n`` maps nearest the centre of ``cluster``."""
        members = np.flatnonzero(self.labels == cluster)
        return members[np.argsort(self.distance[members], kind="stable")[:n]]


def _graph(features: np.ndarray, n_neighbors: int):
    from sklearn.neighbors import kneighbors_graph

    a = kneighbors_graph(features, n_neighbors=n_neighbors, mode="connectivity", include_self=False)
    return 0.5 * (a + a.T)


def laplacian_eigenvalues(adjacency, n: int) -> np.ndarray:
    """The ``n`` smallest eigenvalues of the normalised graph Laplacian (ascending), from the largest of
    ``D^-1/2 A D^-1/2`` (SciPy's Lanczos solver converges fast at that end)."""
    from scipy.sparse import diags
    from scipy.sparse.linalg import eigsh

    deg = np.asarray(adjacency.sum(axis=1)).ravel()
    d = diags(1.0 / np.sqrt(np.maximum(deg, 1e-12)))
    m = d @ adjacency @ d
    size = adjacency.shape[0]
    n = min(n, size - 1)
    if size <= 400:
        mu = np.linalg.eigvalsh(m.toarray())[::-1][:n]
    else:
        mu = np.sort(eigsh(m, k=n, which="LA", v0=np.ones(size), return_eigenvectors=False))[::-1]
    return np.clip(1.0 - mu, 0.0, 2.0)


def suggest_k(eigenvalues: np.ndarray, max_k: int = MAX_CLUSTERS) -> int:
    """The eigengap heuristic: the ``k`` (2..max_k) after which the next eigenvalue jumps most."""
    vals = np.asarray(eigenvalues)[: max_k + 1]
    if len(vals) < 3:
        return max(1, len(vals) - 1)
    gaps = np.diff(vals)[1:]  # gap after k = 2, 3, ...
    return int(np.argmax(gaps)) + 2


def cluster_maps(maps: np.ndarray, k: int | None = None, *, seed: int = 0, n_neighbors: int | None = None,
                 grid: int = GRID, max_k: int = MAX_CLUSTERS) -> Clustering:
    """Spectral clustering of (N, H, W) maps (see the module docstring); ``k=None``: the eigengap's suggestion."""
    from sklearn.cluster import KMeans
    from sklearn.manifold import spectral_embedding

    n = len(maps)
    if n < 4:
        raise ParameterError(f"clustering needs at least 4 maps, got {n}")
    if k is not None and not 1 <= int(k) <= min(n - 1, 20):
        raise ParameterError(f"the number of clusters must be in [1, {min(n - 1, 20)}], got {k}")
    features = downsample(maps, grid)
    nn = int(n_neighbors or max(5, min(30, round(np.log(n) * 2))))
    nn = min(nn, n - 1)
    adjacency = _graph(features, nn)
    eigenvalues = laplacian_eigenvalues(adjacency, max_k + 1)
    suggested = suggest_k(eigenvalues, max_k)
    k = int(k or suggested)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Graph is not fully connected": the embedding still works
        emb = spectral_embedding(adjacency, n_components=max(k, 2), drop_first=False, random_state=seed)
        view = spectral_embedding(adjacency, n_components=2, drop_first=True, random_state=seed)
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(emb[:, :k] if k > 1 else emb[:, :1])
    centres = km.cluster_centers_[km.labels_]
    distance = np.linalg.norm((emb[:, :k] if k > 1 else emb[:, :1]) - centres, axis=1)
    return Clustering(labels=km.labels_.astype(np.int64), k=k, suggested_k=suggested, eigenvalues=eigenvalues,
                      embedding=view, distance=distance, params={"grid": grid, "n_neighbors": nn, "seed": seed})


def summarise(groups: np.ndarray, labels: np.ndarray, predictions: np.ndarray, maps: np.ndarray,
              classes: tuple[str, ...] | list[str], region: np.ndarray | None = None,
              region_lies: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per group (a cluster or a cohort): size, accuracy, label mix, the mean relevance-mass map, and where a region
    mask is given (e.g. the spurious marker), the mean share of each map's positive relevance on it (the
    ``marker_mass`` quality metric's measure); with ``region_lies`` (the region points at a wrong class), the accuracy
    on the images where it lies."""
    out = []
    right = labels == predictions
    masses = mass(maps) if len(maps) else maps
    for g in sorted(set(int(v) for v in groups)):
        sel = groups == g
        row: dict[str, Any] = {"group": g, "size": int(sel.sum()), "accuracy": float(right[sel].mean()),
                               "labels": {classes[c]: int((labels[sel] == c).sum()) for c in np.unique(labels[sel])},
                               "mean_map": masses[sel].mean(axis=0)}
        if region is not None:  # the share of positive relevance, as the marker_mass quality metric measures it
            from core.quality.relevance_mass import relevance_mass

            share = relevance_mass(maps[sel], region[sel])
            row["region_mass"] = float(np.nanmean(share)) if np.isfinite(share).any() else None
        if region_lies is not None:
            lies = sel & region_lies
            row["lies"] = int(lies.sum())
            row["accuracy_when_region_lies"] = float(right[lies].mean()) if lies.any() else None
        out.append(row)
    return out


def confidence_bins(probability: np.ndarray, edges: tuple[float, ...] = (0.5, 0.8, 0.95)) -> np.ndarray:
    """Bin index of each probability: 0 = below the first edge, ..."""
    return np.searchsorted(np.asarray(edges), np.asarray(probability), side="right")


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index between two clusterings of the same images (1: the same partition, ~0: chance)."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a, b))


@dataclass
class ClassStrategies:
    """The strategies of one method on the images of one class of a run (what the Dataset page shows)."""

    method: str
    by: str
    cls: int
    ids: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    probability: np.ndarray
    maps: np.ndarray
    clustering: Clustering
    clusters: list[dict[str, Any]]


def select(table: Any, by: str, cls: int | None) -> np.ndarray:
    """Row mask of a run's table for the images of class ``cls`` by ``by`` ("predicted" or "label"); errors dropped."""
    if by not in ("predicted", "label"):
        raise ParameterError(f"group by 'predicted' or 'label', got {by!r}")
    col = np.asarray(table.column("prediction" if by == "predicted" else "label"))
    ok = np.asarray(table.column("error").is_null())
    return ok & (col == cls) if cls is not None else ok


def class_strategies(table: Any, method: str, by: str, cls: int, classes: tuple[str, ...] | list[str], *,
                     k: int | None = None, seed: int = 0, region: np.ndarray | None = None,
                     region_class: np.ndarray | None = None) -> ClassStrategies:
    """Cluster ``method``'s maps of class ``cls`` in a run's table (:func:`core.runs.store.load_table`).

    ``region``: (N_split, H, W) masks by image id (e.g. ``shapes_spurious``'s marker), and ``region_class``: the
    class each region points at, for the "mass on the region" and "accuracy where it lies" columns.
    """
    from core.runs.store import maps_of

    t = table.filter(np.asarray(table.column("method")) == method)
    t = t.filter(select(t, by, cls))
    if t.num_rows < 4:
        raise ParameterError(f"{t.num_rows} {method} map(s) of class {classes[cls]!r} ({by}): too few to cluster (4 or more)")
    ids = np.asarray(t.column("image_id"))
    labels, preds = np.asarray(t.column("label")), np.asarray(t.column("prediction"))
    maps = maps_of(t)
    c = cluster_maps(maps, k, seed=seed)
    reg = None if region is None else np.asarray(region)[ids]
    lies = None if region_class is None else np.asarray(region_class)[ids] != labels
    return ClassStrategies(method=method, by=by, cls=int(cls), ids=ids, labels=labels, predictions=preds,
                           probability=np.asarray(t.column("probability")), maps=maps, clustering=c,
                           clusters=summarise(c.labels, labels, preds, maps, classes, reg, lies))
