"""Above-threshold nearest neighbours from k-means cells (an inverted file, multi-probe).

``semantic_communities`` needs, per row, only its neighbours at cosine >= a high threshold
(0.85). Each row lives in the cell of its nearest spherical k-means centroid (cells of
~``CELL_SIZE`` rows) and is compared exactly (blockwise matmul) with the rows of its
``PROBES`` nearest cells; a pair is kept when either row reaches the other's cell. The work
is ~n x PROBES x CELL_SIZE x dims, linear in n; assigning rows to centroids adds
~n x (n / CELL_SIZE) x dims (two thirds of the search's dot products at 1M rows), the fit on
at most ``SAMPLE_MAX`` rows ~SAMPLE_MAX x (n / CELL_SIZE) x dims x ``KMEANS_ITERS``.

Why not usearch's HNSW (the path above 20k rows before): on the flagship benchmark's 100k
rows it cost 265.8 CPU s (f16 defaults; 96 CPU s with i8 and connectivity 16 at 91 % recall),
and exact search below 20k made the growth 10k -> 100k 88x. The cosines here are exact; a
pair can be missed only when neither row probes the other's cell (``ann: exact`` compares
all pairs). Deterministic: the k-means sample and start are drawn with a fixed seed, from
the rows in their order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

#: Target rows per cell: balances the centroid assignment (n / CELL_SIZE centroids per row)
#: against the search (CELL_SIZE x PROBES rows per row).
CELL_SIZE = 500
#: Cells each row is compared with: its nearest centroids' (recall 99.6 % of the pairs at
#: >= 0.85 on the benchmark's 100k rows with 6; 98.2 % with 3 cells of 1,000).
PROBES = 6
#: Lloyd iterations of the spherical k-means, fitted on ``SAMPLE_PER_CELL`` rows per cell.
KMEANS_ITERS = 10
SAMPLE_PER_CELL = 100
#: ... and at most this many rows: the fit would otherwise grow as n^2 (2,000 cells at 1M).
SAMPLE_MAX = 50_000
#: A cell estimated to hold more than this many times ``cell_size`` rows is split
#: (``balanced_centroids``).
SPLIT = 1.5
#: Most similarity scores held at once (16 MB of float32).
_SCORES = 1 << 22


def _rows_per_block(width: int) -> int:
    return max(1, min(4_096, _SCORES // max(width, 1)))


def spherical_kmeans(vectors: np.ndarray, k: int, seed: int = 0,
                     iters: int = KMEANS_ITERS) -> np.ndarray:
    """``k`` unit centroids (cosine k-means, Lloyd) fitted on a seeded sample of
    ``SAMPLE_PER_CELL * k`` rows (at most ``SAMPLE_MAX``, at least ``k``); a centroid that
    loses all its rows keeps its place."""
    rng = np.random.default_rng(seed)
    fit = _fit_rows(len(vectors), k, rng)
    sample = vectors if fit is None else vectors[fit]
    return _lloyd(sample, sample[np.sort(rng.choice(len(sample), k, replace=False))], iters)


def balanced_centroids(vectors: np.ndarray, cell_size: int = CELL_SIZE, seed: int = 0,
                       iters: int = KMEANS_ITERS) -> np.ndarray:
    """Centroids of cells of about ``cell_size`` rows: ``spherical_kmeans`` with
    ``n / cell_size`` centroids, then each cell that would hold more than ``SPLIT`` x
    ``cell_size`` rows split by k-means on its rows into cells of ``cell_size``. A search
    costs the sum over cells of members x probing rows, and a big cell is also probed by
    more rows: on the flagship benchmark's 100k rows cells of up to 1,444 rows (a dense
    region of near-copies) made it ~4,400 comparisons per row instead of ~3,000.

    Cell sizes are estimated on up to ``SAMPLE_MAX`` rows outside the fit sample: the rows
    a centroid was fitted on sit closer to it than the rest (nearly orthogonal hashing
    vectors: a dense region's cell held 1.3x its share of the fit sample, 1.7x of all rows)."""
    n = len(vectors)
    k = max(1, round(n / cell_size))
    rng = np.random.default_rng(seed)
    fit = _fit_rows(n, k, rng)
    sample = vectors[:] if fit is None else vectors[fit]  # [:]: an array of rows read lazily
    centroids = (_lloyd(sample, sample[np.sort(rng.choice(len(sample), k, replace=False))],
                        iters) if k > 1 else vectors[:1].astype(np.float32))
    del sample
    held = np.arange(n) if fit is None else np.setdiff1d(np.arange(n), fit)
    if len(held) > SAMPLE_MAX:
        held = np.sort(rng.choice(held, SAMPLE_MAX, replace=False))
    if not len(held):
        return centroids
    nearest = _nearest(vectors, centroids, held)
    sizes = np.bincount(nearest, minlength=k) * (n / len(held))
    parts = []
    for cell in range(k):
        rows = held[nearest == cell]
        m = min(len(rows), math.ceil(sizes[cell] / cell_size))
        if sizes[cell] <= SPLIT * cell_size or m < 2:
            parts.append(centroids[cell : cell + 1])
            continue
        own = vectors[rows]
        parts.append(_lloyd(own, own[np.sort(rng.choice(len(own), m, replace=False))], iters))
    return np.concatenate(parts)


def _fit_rows(n: int, k: int, rng: np.random.Generator) -> np.ndarray | None:
    """The fit sample's rows, ascending (None: all)."""
    size = min(n, max(k, min(SAMPLE_PER_CELL * k, SAMPLE_MAX)))
    return None if size == n else np.sort(rng.choice(n, size, replace=False))


def _lloyd(sample: np.ndarray, centroids: np.ndarray, iters: int) -> np.ndarray:
    """Spherical Lloyd iterations from ``centroids`` (rows of ``sample``)."""
    from scipy.sparse import coo_matrix  # on use: vectors.py (and dedup) import this module

    k = len(centroids)
    centroids = centroids.copy()
    ones = np.ones(len(sample), dtype=np.float32)
    for _ in range(iters):
        nearest = _nearest(sample, centroids)
        # each centroid's rows summed: a sparse one-hot product (np.add.at took 10x longer)
        sums = coo_matrix((ones, (nearest, np.arange(len(sample)))),
                          shape=(k, len(sample))).tocsr() @ sample
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = np.where(norms > 0, sums / np.maximum(norms, 1e-12), centroids)
    return centroids.astype(np.float32)


def _nearest(vectors: np.ndarray, centroids: np.ndarray,
             rows: np.ndarray | None = None) -> np.ndarray:
    """Each row's (of ``rows``: gathered block by block, not copied whole) nearest centroid."""
    block = _rows_per_block(len(centroids))
    count = len(vectors) if rows is None else len(rows)
    return np.concatenate([
        np.argmax((vectors[s : s + block] if rows is None else vectors[rows[s : s + block]])
                  @ centroids.T, axis=1)
        for s in range(0, count, block)])


def probes(vectors: np.ndarray, centroids: np.ndarray, count: int,
           ) -> tuple[np.ndarray, np.ndarray]:
    """(each row's home cell: its nearest centroid; (row, cell) pairs of its ``count`` nearest
    cells, sorted by cell then row)."""
    home, near = near_cells(vectors, centroids, count)
    return home, probe_pairs(near)


def near_cells(vectors: np.ndarray, centroids: np.ndarray, count: int,
               ) -> tuple[np.ndarray, np.ndarray]:
    """(each row's home cell, its ``count`` nearest cells as an (n, count) table), in blocks of
    ``_rows_per_block(len(centroids))`` rows (a spread search sends the same blocks)."""
    m = min(count, len(centroids))
    n = len(vectors)
    home = np.empty(n, dtype=np.int64)
    near = np.empty((n, m), dtype=np.int64)
    block = _rows_per_block(len(centroids))
    for start in range(0, n, block):
        scores = vectors[start : start + block] @ centroids.T
        home[start : start + block] = np.argmax(scores, axis=1)
        # written into one (n, m) table: a slice of each block's full argpartition kept
        # every block's n_cells-wide result alive (~210 MB at 100k rows)
        near[start : start + block] = (np.argpartition(scores, -m, axis=1)[:, -m:]
                                       if m < scores.shape[1] else np.arange(m))
    return home, near


def probe_pairs(near: np.ndarray) -> np.ndarray:
    """(row, cell) pairs of ``near_cells``' table, sorted by cell then row."""
    n, m = near.shape
    cell = near.ravel()
    row = np.repeat(np.arange(n), m)
    order = np.lexsort((row, cell))
    return np.stack([row[order], cell[order]])


def empty_neighbours(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The neighbour-table shape every search here returns: (indices, cosines), each (n, k),
    all slots empty (-1 / -inf)."""
    return (np.full((n, k), -1, dtype=np.int64), np.full((n, k), -np.inf, dtype=np.float32))


def threshold_neighbours(vectors: np.ndarray, k: int, threshold: float,
                         cell_size: int = CELL_SIZE, n_probes: int = PROBES, seed: int = 0,
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's (up to) ``k`` most similar other rows at cosine >= ``threshold`` among the
    rows of its ``n_probes`` nearest cells and the rows probing its own cell: (indices,
    cosines), each (n, k), most similar first (ties: lower index), padded with -1 / -inf:
    ``vectors.top_k``'s shape, below-threshold slots left empty. ``vectors``: L2-normalised
    rows."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    k = max(1, k)
    idx, sims = empty_neighbours(n, k)
    if n < 2:
        return idx, sims
    centroids = balanced_centroids(vectors, cell_size, seed)
    home, pairs = probes(vectors, centroids, n_probes)
    for cell, members, queries in cell_rows(home, pairs, len(centroids)):
        for rows, new_idx, new_sims in cell_folds(vectors[queries], queries,
                                                  home[queries] == cell, vectors[members],
                                                  members, k, threshold):
            _merge(idx, sims, rows, new_idx, new_sims)
    return idx, sims


def cell_rows(home: np.ndarray, pairs: np.ndarray, n_cells: int,
              ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(cell, its members ascending, the rows probing it) for each cell with both, in order."""
    probe_row, probe_cell = pairs
    by_home = np.argsort(home, kind="stable")  # each cell's rows, ascending
    home_at = np.searchsorted(home[by_home], np.arange(n_cells + 1))
    probe_at = np.searchsorted(probe_cell, np.arange(n_cells + 1))
    for cell in range(n_cells):
        members = by_home[home_at[cell] : home_at[cell + 1]]
        queries = probe_row[probe_at[cell] : probe_at[cell + 1]]
        if len(members) and len(queries):
            yield cell, members, queries


def cell_folds(query_vectors: np.ndarray, queries: np.ndarray, at_home: np.ndarray,
               sub: np.ndarray, members: np.ndarray, k: int, threshold: float,
               ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One cell's exact search: its probing rows (``queries``, their vectors, whether the
    cell is their home) against its ``members`` (ascending; vectors ``sub``). The candidates
    to ``_merge`` into the neighbour table, in order: (rows, indices, cosines) per fold. Pure:
    a spread search runs it in actors and merges in the driver, in cell order."""
    out = []
    block = _rows_per_block(len(members))
    for start in range(0, len(queries), block):
        rows = queries[start : start + block]
        scores = query_vectors[start : start + block] @ sub.T
        own = np.flatnonzero(at_home[start : start + block])  # never one's own neighbour
        scores[own, np.searchsorted(members, rows[own])] = -np.inf
        above = scores >= threshold
        hit = np.flatnonzero(above.any(axis=1))
        if not len(hit):  # most rows: no neighbour at the threshold, no partition
            continue
        # both directions: a pair is found when either row probes the other's cell
        out.append(_fold(k, rows[hit], members, scores[hit], threshold))
        cols = np.flatnonzero(above.any(axis=0))
        out.append(_fold(k, members[cols], rows, scores[:, cols].T, threshold))
    return out


def _fold(k: int, rows: np.ndarray, columns: np.ndarray, scores: np.ndarray,
          threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each of ``rows``' best ``k`` above-threshold ``columns`` (its ``scores``), to merge."""
    kk = min(k, scores.shape[1])
    part = np.argpartition(scores, -kk, axis=1)[:, -kk:]
    found = np.take_along_axis(scores, part, axis=1)
    found[found < threshold] = -np.inf
    return rows, np.where(np.isfinite(found), columns[part], -1), found


def _merge(idx: np.ndarray, sims: np.ndarray, rows: np.ndarray, new_idx: np.ndarray,
           new_sims: np.ndarray) -> None:
    """Fold candidates into ``rows``' lists: a row met again in another cell is one
    candidate (by index), the best ``k`` kept, most similar first (ties: lower index)."""
    k = idx.shape[1]
    cand = np.concatenate([idx[rows], new_idx], axis=1)
    score = np.concatenate([sims[rows], new_sims], axis=1)
    # by index first: a pair scored in two cells may differ in the last bit
    order = np.argsort(np.where(cand < 0, np.iinfo(np.int64).max, cand), axis=1, kind="stable")
    cand = np.take_along_axis(cand, order, axis=1)
    score = np.take_along_axis(score, order, axis=1)
    repeat = np.zeros(cand.shape, dtype=bool)
    repeat[:, 1:] = (cand[:, 1:] == cand[:, :-1]) & (cand[:, 1:] >= 0)
    score[repeat] = -np.inf
    cand[repeat] = -1
    best = np.argsort(-score, axis=1, kind="stable")[:, :k]  # ties: lower index first
    idx[rows] = np.take_along_axis(cand, best, axis=1)
    sims[rows] = np.take_along_axis(score, best, axis=1)
