"""``semantic_communities`` with its per-row work spread by ``scaleout.map_batches`` (actors on
Ray, in process locally), for inputs above its ``spread_above`` setting.

The driver never holds every vector: actors read them from the run's embedding cache (filled
before the barrier by ``prepare``) by their texts. Per pass:

1. actors: each row's digest and self-similarity -> the driver collapses byte-identical rows
   (``vectors.communities``' first step; 20 bytes per row);
2. driver: the cells (``cells.balanced_centroids``) fitted on rows read from the cache
   (the same seeded sample as locally: at most 2 x ``cells.SAMPLE_MAX`` rows);
3. actors: each block's nearest cells (``cells.near_cells``, the local blocks);
4. actors: each cell's exact search (``cells.cell_folds``); the driver merges the candidates
   into the neighbour table in cell order, as ``cells.threshold_neighbours`` does;
5. driver: the communities (``vectors._weighted_communities``), reading only the dense
   regions' rows from the cache.

Same code, same blocks, same order as the local search: the same communities. Not checked
here: a collision of two rows' 16-byte digests (the local collapse compares bytes too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from synthloom.core.scaleout import map_batches
from synthloom.llm.embeddings import EmbedderConfig, resolve_embedder
from synthloom.quality import cells
from synthloom.quality.vectors import (
    CELLS_ABOVE,
    CommunityAnn,
    _digests,
    _distinct,
    _weighted_communities,
    collapse,
    representatives_of,
    self_similarity,
)

#: Rows per batch of the digest pass.
BATCH = 4_096
Texts = Callable[[np.ndarray], list[str]]


class CacheReader:
    """Vectors of texts from the run's embedding cache; picklable (runs in actors), the
    embedder and its event loop made on first use where it runs."""

    def __init__(self, embedder: EmbedderConfig, run_dir: str) -> None:
        self.embedder, self.run_dir = embedder, run_dir
        self._model: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None, "_loop": None}

    def vectors(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            self._model = resolve_embedder(self.embedder, self.run_dir)
            self._loop = asyncio.new_event_loop()
        assert self._loop is not None
        out = self._loop.run_until_complete(self._model.embed(texts))
        return np.ascontiguousarray(out, dtype=np.float32)

    def close(self) -> None:
        if self._model is not None and self._loop is not None:
            self._loop.run_until_complete(self._model.aclose())
            self._loop.close()
        self._model = self._loop = None


class CachedRows(CacheReader):
    """Rows ``0..n`` read from the cache on indexing (an int, a slice or an index array):
    enough of an array for ``cells.balanced_centroids`` and ``_weighted_communities``."""

    def __init__(self, texts: Texts, n: int, embedder: EmbedderConfig, run_dir: str) -> None:
        super().__init__(embedder, run_dir)
        self.texts, self.n, self.dims = texts, n, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, int | np.integer):
            return self[np.array([int(key)])][0]
        rows = np.arange(self.n)[key] if isinstance(key, slice) else np.asarray(key)
        if not len(rows):
            return np.zeros((0, self.dims), dtype=np.float32)
        out = self.vectors(self.texts(rows))
        self.dims = out.shape[1]
        return out


class _Digest(CacheReader):
    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        vectors = self.vectors(texts)
        return _digests(vectors), self_similarity(vectors)


class _NearCells(CacheReader):
    def __init__(self, centroids: np.ndarray, count: int, embedder: EmbedderConfig,
                 run_dir: str) -> None:
        super().__init__(embedder, run_dir)
        self.centroids, self.count = centroids, count

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return cells.near_cells(self.vectors(texts), self.centroids, self.count)


class _CellSearch(CacheReader):
    def __init__(self, k: int, threshold: float, embedder: EmbedderConfig,
                 run_dir: str) -> None:
        super().__init__(embedder, run_dir)
        self.k, self.threshold = k, threshold

    def __call__(self, batch: tuple[Any, ...]) -> list[tuple[np.ndarray, ...]]:
        members, queries, at_home, member_texts, query_texts = batch
        return cells.cell_folds(self.vectors(query_texts), queries, at_home,
                                self.vectors(member_texts), members, self.k, self.threshold)


def _mapped(fn: Any, batches: Iterator[Any]) -> Iterator[Any]:
    try:
        yield from map_batches(fn, batches)
    finally:
        fn.close()  # in this thread: its event loop, if it ran here, is this one's


def spread_neighbours(rows: CachedRows, k: int, threshold: float,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``cells.threshold_neighbours`` over ``rows`` (default cells), its per-row work in
    ``map_batches``: the same table."""
    m = len(rows)
    k = max(1, k)
    idx, sims = cells.empty_neighbours(m, k)
    if m < 2:
        return idx, sims
    centroids = cells.balanced_centroids(rows, cells.CELL_SIZE, 0)
    block = cells._rows_per_block(len(centroids))  # the local blocks: the same scores
    found = list(_mapped(_NearCells(centroids, cells.PROBES, rows.embedder, rows.run_dir),
                         (rows.texts(np.arange(s, min(s + block, m)))
                          for s in range(0, m, block))))
    home = np.concatenate([h for h, _ in found])
    pairs = cells.probe_pairs(np.concatenate([near for _, near in found]))
    del found

    def batches() -> Iterator[tuple[Any, ...]]:  # read lazily: a window in flight
        for cell, members, queries in cells.cell_rows(home, pairs, len(centroids)):
            yield (members, queries, home[queries] == cell, rows.texts(members),
                   rows.texts(queries))

    for folds in _mapped(_CellSearch(k, threshold, rows.embedder, rows.run_dir), batches()):
        for found_rows, new_idx, new_sims in folds:
            cells._merge(idx, sims, found_rows, new_idx, new_sims)
    return idx, sims


def spread_communities(rows: CachedRows, threshold: float, min_size: int, neighbors: int,
                       ann: CommunityAnn) -> list[list[int]]:
    """``vectors.communities`` over ``rows`` (``ann``: auto or cells), the same groups."""
    n = len(rows)
    if n < 2:
        return []
    found = list(_mapped(_Digest(rows.embedder, rows.run_dir),
                         (rows.texts(np.arange(s, min(s + BATCH, n)))
                          for s in range(0, n, BATCH))))
    first, inverse, counts = _distinct(np.concatenate([d for d, _ in found]))
    self_sim = np.concatenate([s for _, s in found])
    del found
    rep = (None if counts.max(initial=1) == 1 else
           representatives_of(first, inverse, self_sim[first], threshold))
    rows_of, weight = collapse(rep, n)
    firsts = np.fromiter((r[0] for r in rows_of), dtype=np.int64, count=len(rows_of))
    distinct = CachedRows(lambda r: rows.texts(firsts[r]), len(firsts), rows.embedder,
                          rows.run_dir)
    try:
        if ann == "auto" and len(firsts) <= CELLS_ABOVE:  # all pairs, as locally: few rows
            groups = _weighted_communities(distinct[:], weight, threshold, min_size,
                                           neighbors, ann)
        else:
            table = spread_neighbours(distinct, neighbors, threshold)
            groups = _weighted_communities(distinct, weight, threshold, min_size, neighbors,
                                           ann, table=table)
    finally:
        distinct.close()
    expanded = [[row for u in group for row in rows_of[u]] for group in groups]
    expanded.sort(key=len, reverse=True)  # stable: the order of creation for equal sizes
    return expanded
