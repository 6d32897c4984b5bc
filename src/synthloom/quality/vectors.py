"""Nearest neighbours and communities over L2-normalised embeddings.

Exact (blockwise numpy matmul) up to ``EXACT_LIMIT`` rows, an HNSW index from ``usearch``
beyond (extra ``embeddings``). ``communities`` is sentence-transformers' ``community_detection``
algorithm in numpy (same result, no torch needed for endpoint embeddings).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from synthloom.core.errors import SynthloomError

AnnMode = Literal["auto", "exact", "usearch"]
#: Above this many vectors ``auto`` switches from exact search to usearch.
EXACT_LIMIT = 20_000
_BLOCK = 1024


def _use_exact(n: int, ann: AnnMode) -> bool:
    if ann == "exact":
        return True
    if ann == "usearch":
        return False
    return n <= EXACT_LIMIT


def top_k(vectors: np.ndarray, k: int, ann: AnnMode = "auto") -> tuple[np.ndarray, np.ndarray]:
    """For each row, its ``k`` most similar other rows: (indices, cosine similarities), each
    (n, k), most similar first; padded with -1 / -inf when there are fewer than k others."""
    n = len(vectors)
    k = max(1, k)
    idx = np.full((n, k), -1, dtype=np.int64)
    sims = np.full((n, k), -np.inf, dtype=np.float32)
    if n < 2:
        return idx, sims
    kk = min(k, n - 1)
    if _use_exact(n, ann):
        for start in range(0, n, _BLOCK):
            scores = vectors[start : start + _BLOCK] @ vectors.T
            rows = np.arange(len(scores))
            scores[rows, rows + start] = -np.inf  # never one's own neighbour
            part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            part_s = np.take_along_axis(scores, part, axis=1)
            order = np.argsort(-part_s, axis=1, kind="stable")
            idx[start : start + _BLOCK, :kk] = np.take_along_axis(part, order, axis=1)
            sims[start : start + _BLOCK, :kk] = np.take_along_axis(part_s, order, axis=1)
        return idx, sims
    try:
        from usearch.index import Index
    except ImportError as exc:
        raise SynthloomError(
            f"approximate search over {n} vectors needs usearch ({exc}); run: "
            'pip install "synthloom[embeddings]" (or set ann: exact)') from None
    index = Index(ndim=vectors.shape[1], metric="cos", dtype="f32")
    index.add(np.arange(n, dtype=np.uint64), vectors.astype(np.float32))
    found = index.search(vectors.astype(np.float32), kk + 1)
    keys = np.asarray(found.keys, dtype=np.int64).reshape(n, -1)
    dist = np.asarray(found.distances, dtype=np.float32).reshape(n, -1)
    for i in range(n):
        row = [(int(j), 1.0 - float(d)) for j, d in zip(keys[i], dist[i], strict=True)
               if 0 <= j < n and j != i][:kk]
        for col, (j, s) in enumerate(row):
            idx[i, col], sims[i, col] = j, s
    return idx, sims


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


def communities(vectors: np.ndarray, threshold: float = 0.85, min_size: int = 2,
                ) -> list[list[int]]:
    """Non-overlapping groups whose members have cosine >= ``threshold`` to the group's
    centre (its first element), largest first; points in no group of ``min_size`` are outliers.

    The algorithm of ``sentence_transformers.util.community_detection``: every point with
    at least ``min_size`` neighbours (itself included) above the threshold proposes its
    neighbourhood, sorted by similarity; proposals are taken largest first, minus points
    already taken.
    """
    n = len(vectors)
    proposals: list[list[int]] = []
    for start in range(0, n, _BLOCK):
        scores = vectors[start : start + _BLOCK] @ vectors.T
        for r, row in enumerate(scores):
            hits = np.flatnonzero(row >= threshold)
            if len(hits) < min_size:
                continue
            order = np.argsort(-row[hits], kind="stable")
            members = hits[order].tolist()
            centre = start + r
            if members[0] != centre:  # float ties: the proposer leads its own group
                members.remove(centre)
                members.insert(0, centre)
            proposals.append(members)
    proposals.sort(key=len, reverse=True)
    taken: set[int] = set()
    groups: list[list[int]] = []
    for members in proposals:
        rest = [m for m in members if m not in taken]
        if len(rest) >= min_size:
            groups.append(rest)
            taken.update(rest)
    groups.sort(key=len, reverse=True)
    return groups
