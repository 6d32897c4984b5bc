"""Nearest neighbours and communities over L2-normalised embeddings.

Exact (blockwise numpy matmul, blocks of at most ``_CELLS`` scores) up to ``EXACT_LIMIT``
rows, an HNSW index from ``usearch`` beyond (extra ``embeddings``; without it ``auto`` stays
exact, with a warning): its candidates' cosines are recomputed exactly. ``communities`` is
sentence-transformers' ``community_detection`` algorithm in numpy (no torch needed for endpoint
embeddings), built on a k-nearest-neighbour graph so its memory is n x k, not n^2.
``neighbours_above`` (communities, ``dedup_semantic``) needs only neighbours at or above a
threshold: above ``CELLS_ABOVE`` rows they come from k-means cells (quality/cells.py), not
usearch.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any, Literal

import numpy as np

from synthloom.core.errors import SynthloomError
from synthloom.quality import cells
from synthloom.quality.cells import empty_neighbours, threshold_neighbours

AnnMode = Literal["auto", "exact", "usearch"]
#: ``neighbours_above`` also takes ``cells``: k-means cells searched exactly (quality/cells.py).
ThresholdAnn = Literal["auto", "exact", "usearch", "cells"]
CommunityAnn = ThresholdAnn
EMBEDDINGS_HINT = 'pip install "synthloom[embeddings]" for usearch'
#: Above this many vectors ``auto`` switches from exact search to usearch.
EXACT_LIMIT = 20_000
#: Above this many (distinct) vectors ``neighbours_above`` under ``auto`` searches within
#: k-means cells (linear in n) instead of all pairs or usearch (88x the time for 10x the rows).
CELLS_ABOVE = 5_000
_BLOCK = 512
#: Most similarity scores held at once by a blockwise search (16 MB of float32).
_CELLS = 1 << 22
#: float32 rounding of a unit vector's cosine to itself.
_ROUNDING = 1e-6


def _block_rows(n: int) -> int:
    """Rows per block of a search against ``n`` vectors (1024 x 1M scores were 4 GB)."""
    return max(1, min(_BLOCK, _CELLS // max(n, 1)))


def _use_exact(n: int, ann: AnnMode) -> bool:
    if ann == "exact":
        return True
    if ann == "usearch":
        return False
    return n <= EXACT_LIMIT


def top_k(vectors: np.ndarray, k: int, ann: AnnMode = "auto", threads: int = 0,
          ) -> tuple[np.ndarray, np.ndarray]:
    """For each row, its ``k`` most similar other rows: (indices, cosine similarities), each
    (n, k), most similar first; padded with -1 / -inf when there are fewer than k others.
    ``threads``: usearch's build and search threads (0: all cores)."""
    n = len(vectors)
    k = max(1, k)
    idx, sims = empty_neighbours(n, k)
    if n < 2:
        return idx, sims
    kk = min(k, n - 1)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index_cls = None if _use_exact(n, ann) else _usearch_index(n, ann)
    if index_cls is None:
        block = _block_rows(n)
        for start in range(0, n, block):
            scores = vectors[start : start + block] @ vectors.T
            rows = np.arange(len(scores))
            scores[rows, rows + start] = -np.inf  # never one's own neighbour
            part = np.argpartition(scores, -kk, axis=1)[:, -kk:]  # no negated copy
            part_s = np.take_along_axis(scores, part, axis=1)
            order = np.argsort(-part_s, axis=1, kind="stable")
            idx[start : start + block, :kk] = np.take_along_axis(part, order, axis=1)
            sims[start : start + block, :kk] = np.take_along_axis(part_s, order, axis=1)
        return idx, sims
    # Half-precision graph: half the distance work of f32 at the same recall; the cosines
    # of the candidates it finds are recomputed exactly below.
    index = index_cls(ndim=vectors.shape[1], metric="cos", dtype="f16")
    index.add(np.arange(n, dtype=np.uint64), vectors, threads=threads)
    found = index.search(vectors, kk + 1, threads=threads)
    keys = np.asarray(found.keys, dtype=np.int64).reshape(n, -1)
    # Each row's own key and invalid slots are left out (vectorised: a Python loop over rows
    # cost seconds at 100k).
    valid = (keys >= 0) & (keys < n) & (keys != np.arange(n)[:, None])
    keys = np.where(valid, keys, 0)
    exact = np.full(keys.shape, -np.inf, dtype=np.float32)
    block = max(1, _CELLS // (keys.shape[1] * vectors.shape[1]))
    for start in range(0, n, block):
        rows = vectors[start : start + block, :, None]
        exact[start : start + block] = np.matmul(vectors[keys[start : start + block]], rows)[..., 0]
    exact[~valid] = -np.inf
    order = np.argsort(-exact, axis=1, kind="stable")[:, :kk]
    best = np.take_along_axis(exact, order, axis=1)
    idx[:, :kk] = np.where(best > -np.inf, np.take_along_axis(keys, order, axis=1), -1)
    sims[:, :kk] = best
    return idx, sims


def neighbours_above(vectors: np.ndarray, k: int, threshold: float, ann: ThresholdAnn = "auto",
                     threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each row's (up to) ``k`` most similar other rows at cosine >= ``threshold``: ``top_k``'s
    (indices, cosines), below-threshold slots left empty (-1 / -inf). ``auto``: all pairs up
    to ``CELLS_ABOVE`` rows, k-means cells above (cosines exact; a pair is missed only when
    neither row probes the other's cell; deterministic)."""
    if ann == "cells" or (ann == "auto" and len(vectors) > CELLS_ABOVE):
        return threshold_neighbours(vectors, k, threshold)
    idx, sims = top_k(vectors, k, ann, threads)  # type: ignore[arg-type]
    below = sims < threshold
    idx[below], sims[below] = -1, -np.inf
    return idx, sims


def nearest_in_cells(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each row's highest cosine to another row among the rows of its ``cells.PROBES`` nearest
    k-means cells (-inf for none): the nearest neighbour at any distance, or a farther one
    when it lies in no probed cell. A max per block, no neighbour lists: on 100k rows half
    the time of ``threshold_neighbours`` at threshold -1, which folds every block."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    best = np.full(n, -np.inf, dtype=np.float32)
    if n < 2:
        return best
    centroids = cells.balanced_centroids(vectors, cells.CELL_SIZE, seed)  # threshold_neighbours'
    n_cells = len(centroids)
    home, (probe_row, probe_cell) = cells.probes(vectors, centroids, cells.PROBES)
    by_home = np.argsort(home, kind="stable")  # each cell's rows, ascending
    home_at = np.searchsorted(home[by_home], np.arange(n_cells + 1))
    probe_at = np.searchsorted(probe_cell, np.arange(n_cells + 1))
    for cell in range(n_cells):
        members = by_home[home_at[cell] : home_at[cell + 1]]
        queries = probe_row[probe_at[cell] : probe_at[cell + 1]]  # distinct rows
        if not len(members) or not len(queries):
            continue
        sub = vectors[members]
        block = _block_rows(len(members))
        for start in range(0, len(queries), block):
            rows = queries[start : start + block]
            scores = vectors[rows] @ sub.T
            own = np.flatnonzero(home[rows] == cell)  # never one's own neighbour
            scores[own, np.searchsorted(members, rows[own])] = -np.inf
            best[rows] = np.maximum(best[rows], scores.max(axis=1))
    return best


def _usearch_index(n: int, ann: AnnMode) -> Any:
    """usearch's Index class; for ``auto`` without usearch, None (exact search instead)."""
    try:
        from usearch.index import Index
    except ImportError as exc:
        if ann == "auto":
            warnings.warn(f"usearch is not installed: exact search over {n} vectors (time "
                          f"grows with n^2; {EMBEDDINGS_HINT})", stacklevel=3)
            return None
        raise SynthloomError(
            f"approximate search over {n} vectors needs usearch ({exc}); run: "
            'pip install "synthloom[embeddings]" (or set ann: exact)') from None
    return Index


def greedy_duplicates(idx: np.ndarray, sims: np.ndarray, threshold: float, seeded: int = 0,
                      ) -> list[tuple[int, float] | None]:
    """In row order: a row whose most similar *earlier kept* neighbour has cosine >=
    ``threshold`` is a duplicate of it; the first ``seeded`` rows are kept and not judged."""
    n = len(idx)
    kept = np.zeros(n, dtype=bool)
    kept[:seeded] = True
    out: list[tuple[int, float] | None] = []
    for i in range(seeded, n):
        match = None
        for j, s in zip(idx[i].tolist(), sims[i].tolist(), strict=True):
            if s < threshold:
                break  # sorted: the rest are less similar
            if 0 <= j < i and kept[j]:
                match = (j, float(s))
                break
        if match is None:
            kept[i] = True
        out.append(match)
    return out


def duplicates(vectors: np.ndarray, threshold: float, neighbors: int,
               ann: ThresholdAnn = "auto", seeded: int = 0) -> list[tuple[int, float] | None]:
    """``greedy_duplicates`` over ``neighbours_above``, byte-identical rows searched once: a
    later copy shares its first copy's fate (a duplicate of it when it was kept, of its match
    when not), so a cluster of more copies than ``neighbors`` cannot hide its kept row."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    rep = _representatives(vectors, threshold) if n > 1 else None
    if rep is None:
        return greedy_duplicates(*neighbours_above(vectors, neighbors, threshold, ann),
                                 threshold, seeded)
    firsts = np.flatnonzero(rep == np.arange(n))
    idx, sims = neighbours_above(vectors[firsts], neighbors, threshold, ann)
    own_seeded = int(np.searchsorted(firsts, seeded))
    fate = greedy_duplicates(idx, sims, threshold, own_seeded)
    position = np.searchsorted(firsts, rep)  # each row's first copy among ``firsts``
    out: list[tuple[int, float] | None] = []
    for i in range(seeded, n):
        p = int(position[i])
        match = fate[p - own_seeded] if p >= own_seeded else None  # seeds are kept
        if match is not None:  # its first copy (this row or an earlier one) is a duplicate
            out.append((int(firsts[match[0]]), match[1]))
        elif rep[i] == i:
            out.append(None)
        else:  # a copy of a kept row
            out.append((int(rep[i]), float(vectors[i] @ vectors[rep[i]])))
    return out


def communities(vectors: np.ndarray, threshold: float = 0.85, min_size: int = 2,
                neighbors: int = 32, ann: CommunityAnn = "auto", threads: int = 0,
                ) -> list[list[int]]:
    """Non-overlapping groups whose members have cosine >= ``threshold`` to the group's
    centre (its first element), largest first; points in no group of ``min_size`` are outliers.

    The algorithm of ``sentence_transformers.util.community_detection``: every point with
    at least ``min_size`` neighbours (itself included) above the threshold proposes its
    neighbourhood, sorted by similarity; proposals are taken largest first (ties: lower
    index first), minus points already taken.

    Byte-identical rows are collapsed first (an HNSW graph over thousands of identical
    vectors degenerates: 100k rows did not finish in 600 s): the search runs on the distinct
    vectors, each weighted by its copies, and groups are expanded back to rows. Copies are
    in or out of every neighbourhood together, so this is the same result (a copy after the
    first never proposes a new group). Rows whose self-similarity is below the threshold (a
    zero vector; ``threshold`` 1.0 with rounding) are not collapsed: their copies are not
    each other's neighbours.

    Neighbourhoods come from the ``neighbors`` nearest neighbours of each point (memory n x
    k). A point whose k-th neighbour is still above the threshold is *saturated*: its
    neighbourhood may be larger, so it is searched exactly within its connected component
    of the above-threshold neighbour graph (a dense region of near-copies), in blocks.
    Without saturated points the result is the exact all-pairs one.
    """
    n = len(vectors)
    if n < 2:
        return []
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    rows_of, weight = _collapse(vectors, threshold)
    if len(rows_of) == n:  # no copies
        expanded = _weighted_communities(vectors, weight, threshold, min_size, neighbors, ann,
                                         threads)
    else:
        firsts = np.fromiter((r[0] for r in rows_of), dtype=np.int64, count=len(rows_of))
        groups = _weighted_communities(vectors[firsts], weight, threshold, min_size,
                                       neighbors, ann, threads)
        expanded = [[row for u in group for row in rows_of[u]] for group in groups]
    expanded.sort(key=len, reverse=True)  # stable: the order of creation for equal sizes
    return expanded


def _collapse(vectors: np.ndarray, threshold: float) -> tuple[list[list[int]], np.ndarray]:
    """Distinct rows in order of first occurrence: (each one's rows, ascending; its weight).
    Only rows at cosine >= ``threshold`` to themselves (not a zero vector) are merged."""
    return collapse(_representatives(vectors, threshold), len(vectors))


def collapse(rep: np.ndarray | None, n: int) -> tuple[list[list[int]], np.ndarray]:
    """``_collapse`` from each row's representative (None: all distinct)."""
    if rep is None:
        return [[i] for i in range(n)], np.ones(n, dtype=np.int64)
    reps, new_index = np.unique(rep, return_inverse=True)  # sorted: first occurrence order
    order = np.argsort(new_index, kind="stable")  # rows grouped by representative, ascending
    bounds = np.flatnonzero(np.diff(new_index[order])) + 1
    rows_of = [g.tolist() for g in np.split(order, bounds)]
    weight = np.bincount(new_index.ravel(), minlength=len(reps)).astype(np.int64)
    return rows_of, weight


def _representatives(vectors: np.ndarray, threshold: float) -> np.ndarray | None:
    """Each row's first byte-identical copy (itself for the first and for rows at cosine <
    ``threshold`` to themselves: a zero vector); None when every row is distinct."""
    n, dims = vectors.shape
    first, inverse, counts = _distinct(_digests(vectors))
    words = vectors.view(np.uint32)  # bytes, as the rows' own keys: 0.0 and -0.0 differ
    block = _block_rows(dims)
    if any(not np.array_equal(words[s : s + block], words[first[inverse[s : s + block]]])
           for s in range(0, n, block)):  # a digest collision (never seen): the rows as keys
        first, inverse, counts = _distinct(
            vectors.view(np.dtype((np.void, dims * vectors.itemsize))).ravel())
    if counts.max(initial=1) == 1:
        return None
    return representatives_of(first, inverse, self_similarity(vectors, first), threshold)


def self_similarity(vectors: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Each row's cosine to itself (1.0 up to rounding for a unit vector, 0 for a zero one);
    of ``rows`` only when given, a block at a time (``vectors[rows]`` whole was one more copy of
    the distinct rows: ~700 MB of 100k seeds at 2,048 dims, the communities step's peak)."""
    if rows is None:
        return np.einsum("ij,ij->i", vectors, vectors)
    out = np.empty(len(rows), dtype=vectors.dtype)
    block = _block_rows(vectors.shape[1])
    for start in range(0, len(rows), block):
        part = vectors[rows[start : start + block]]
        out[start : start + block] = np.einsum("ij,ij->i", part, part)
    return out


def representatives_of(first: np.ndarray, inverse: np.ndarray, self_sim: np.ndarray,
                       threshold: float) -> np.ndarray:
    """``_representatives`` from ``_distinct``'s (first, inverse) and each distinct row's
    ``self_similarity``."""
    # identical unit vectors are at cosine 1.0: the tolerance keeps rounding (0.99999994)
    # from splitting them at threshold 1.0
    mergeable = self_sim >= min(threshold, 1.0 - _ROUNDING)
    return np.where(mergeable[inverse], first[inverse], np.arange(len(inverse)))


def _digests(vectors: np.ndarray) -> np.ndarray:
    """A 16-byte blake2b digest of each row's bytes: sorting these instead of the rows saves
    a sorted copy of every vector (154 MB at 100k x 384) and most of the time."""
    rows = np.ascontiguousarray(vectors)
    joined = b"".join(hashlib.blake2b(row.data, digest_size=16).digest() for row in rows)
    return np.frombuffer(joined, dtype="V16")


def _distinct(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first row of each distinct key, each row's key number, copies per key)."""
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True,
                                          return_counts=True)
    return first, inverse.ravel(), counts


def _weighted_communities(vectors: Any, weight: np.ndarray, threshold: float,
                          min_size: int, neighbors: int, ann: CommunityAnn, threads: int = 0,
                          table: tuple[np.ndarray, np.ndarray] | None = None,
                          ) -> list[list[int]]:
    """``communities`` over distinct points, each standing for ``weight`` identical rows:
    sizes and counts are sums of weights. Groups hold point indices, unsorted by size.
    ``table``: the neighbours, searched elsewhere (a spread search); ``vectors`` then needs
    only indexing by rows (the dense regions' rows are read)."""
    n = len(vectors)
    idx, sims = table if table is not None else neighbours_above(vectors, neighbors,
                                                                 threshold, ann, threads)
    above = sims >= threshold  # each row is sorted, so a prefix
    counts = weight + np.where(above, weight[idx], 0).sum(axis=1)
    saturated = above[:, -1] & (idx.shape[1] < n - 1)
    comp = np.zeros(n, dtype=np.int64)
    regions: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # dense region: (rows, vectors)
    if saturated.any():
        comp = _components(idx, above, n)
        dense = np.isin(comp, np.unique(comp[saturated]))
        rows_dense = np.flatnonzero(dense)
        rows_dense = rows_dense[np.argsort(comp[rows_dense], kind="stable")]
        bounds = np.flatnonzero(np.diff(comp[rows_dense])) + 1
        for region in np.split(rows_dense, bounds):  # each sorted by index
            regions[int(comp[region[0]])] = (region, vectors[region])
        for region, sub in regions.values():
            rows = region[saturated[region]]
            block = _block_rows(len(region))
            w_region = weight[region]
            for start in range(0, len(rows), block):
                chunk = rows[start : start + block]
                scores = vectors[chunk] @ sub.T
                scores[np.arange(len(chunk)), np.searchsorted(region, chunk)] = np.inf  # self
                counts[chunk] = (scores >= threshold) @ w_region
    proposers = np.flatnonzero(counts >= min_size)
    proposers = proposers[np.lexsort((proposers, -counts[proposers]))]
    taken = np.zeros(n, dtype=bool)
    # untaken weight, per region
    free = {c: int(weight[region].sum()) for c, (region, _) in regions.items()}
    groups: list[list[int]] = []
    for p in proposers.tolist():
        if saturated[p]:
            c = int(comp[p])
            if free[c] < min_size:
                continue  # the region is (nearly) all taken: this proposal would be too small
            region, sub = regions[c]
            row = sub @ vectors[p]
            row[np.searchsorted(region, p)] = np.inf  # the proposer leads its own group
            hits = np.flatnonzero(row >= threshold)
            members = region[hits[np.argsort(-row[hits], kind="stable")]]
        else:
            members = np.concatenate(([p], idx[p][above[p]]))
        rest = members[~taken[members]]
        if int(weight[rest].sum()) >= min_size:
            groups.append(rest.tolist())
            taken[rest] = True
            if regions:
                in_region = comp[rest]
                for c in np.unique(in_region).tolist():
                    if c in free:
                        free[c] -= int(weight[rest[in_region == c]].sum())
    return groups


def _components(idx: np.ndarray, above: np.ndarray, n: int) -> np.ndarray:
    """Connected component of each point in the graph of above-threshold neighbour edges."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows, cols = np.nonzero(above)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, idx[rows, cols])),
                       shape=(n, n))
    return connected_components(graph, directed=True, connection="weak")[1]
