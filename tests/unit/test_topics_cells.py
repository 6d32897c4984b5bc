"""semantic_communities above 5,000 rows: neighbours from k-means cells (quality/cells.py)
against exact search, its tolerance, its determinism, and when ``auto`` uses it."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from synthloom.quality import cells
from synthloom.quality import vectors as vec


def canon(groups: list[list[int]]) -> list[tuple[int, list[int]]]:
    """(kept record, members) per group, in the order returned."""
    return [(g[0], sorted(g)) for g in groups]


def near_copies(rng: np.random.Generator, base: int, groups: int, dims: int) -> np.ndarray:
    """``base`` random unit rows, then ``groups`` groups of 2-12 noisy copies of random ones
    (cosine ~0.9-0.99 to their original), shuffled."""
    points = rng.normal(size=(base, dims))
    extra = [points[i] + rng.normal(scale=rng.uniform(0.05, 0.25), size=(int(size), dims))
             for i, size in zip(rng.integers(0, base, groups), rng.integers(2, 13, groups),
                                strict=True)]
    points = np.vstack([points, *extra])
    points = points[rng.permutation(len(points))]
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def above_pairs(idx: np.ndarray, sims: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    rows, cols = np.nonzero(sims >= threshold)
    return set(zip(rows.tolist(), idx[rows, cols].tolist(), strict=True))


def test_cell_neighbours_are_the_exact_ones_on_clustered_rows() -> None:
    rng = np.random.default_rng(11)
    vectors = near_copies(rng, base=5_000, groups=400, dims=48)
    assert round(len(vectors) / cells.CELL_SIZE) > cells.PROBES  # not every cell probed
    idx, sims = cells.threshold_neighbours(vectors, 32, 0.85)
    exact_idx, exact_sims = vec.top_k(vectors, 32, "exact")
    expected = above_pairs(exact_idx, exact_sims, 0.85)
    assert len(expected) > 2_000
    assert above_pairs(idx, sims, 0.85) == expected
    found = sims > -np.inf
    rows = np.nonzero(found)[0]
    cosines = np.einsum("ij,ij->i", vectors[rows], vectors[idx[found]])
    assert np.allclose(cosines, sims[found], atol=1e-5)  # exact cosines, not an index's
    assert (np.diff(np.where(found, sims, -2.0), axis=1) <= 0).all()  # most similar first
    assert not (idx == np.arange(len(vectors))[:, None]).any()  # never one's own neighbour
    # the communities: the same groups and kept records as all-pairs (exact) search
    assert canon(vec.communities(vectors, 0.85, 2, 32, "cells")) == \
        canon(vec.communities(vectors, 0.85, 2, 32, "exact"))


def test_near_copies_of_text_within_the_stated_tolerance(tmp_path) -> None:
    """Hashing vectors of short texts are nearly orthogonal (the hard case for any partition):
    at least 98 % of the pairs at >= 0.85 are found (99.6 % at 100k rows in
    benchmarks/flagship_scale.py), and at least 99 % of rows keep or drop as exact search."""
    from synthloom.llm.embeddings import resolve_embedder

    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(3_000)]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(8, 25)))) for _ in range(7_000)]
    for i in rng.choice(7_000, size=700, replace=False).tolist():  # one word changed
        tokens = texts[int(rng.integers(7_000))].split()
        tokens[int(rng.integers(len(tokens)))] = str(rng.choice(words))
        texts[i] = " ".join(tokens)
    vectors = np.asarray(asyncio.run(resolve_embedder("hashing:384").embed(texts)), np.float32)
    expected = above_pairs(*vec.top_k(vectors, 32, "exact"), 0.85)
    found = above_pairs(*cells.threshold_neighbours(vectors, 32, 0.85), 0.85)
    assert len(expected) > 500
    assert found <= expected  # nothing below the threshold, no invented pair
    assert len(found) >= 0.98 * len(expected)

    def fate(groups: list[list[int]]) -> np.ndarray:
        kept_as = np.arange(len(vectors))
        for group in groups:
            kept_as[group] = group[0]
        return kept_as

    same = fate(vec.communities(vectors, 0.85, 2, 32, "cells")) == \
        fate(vec.communities(vectors, 0.85, 2, 32, "exact"))
    assert same.mean() >= 0.99


def test_same_input_same_neighbours_and_communities() -> None:
    rng = np.random.default_rng(3)
    vectors = near_copies(rng, base=4_000, groups=300, dims=32)
    first = cells.threshold_neighbours(vectors, 16, 0.85)
    again = cells.threshold_neighbours(vectors.copy(), 16, 0.85)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert vec.communities(vectors, 0.85, 2, 16, "cells") == \
        vec.communities(vectors.copy(), 0.85, 2, 16, "cells")


def test_a_dense_cluster_is_searched_exactly_in_its_region() -> None:
    """More near-copies than neighbours: the saturated rows' region is searched exactly, as
    with the exact search, and becomes one community."""
    rng = np.random.default_rng(8)
    base = rng.normal(size=(6_000, 24))
    dense = base[:1] + rng.normal(scale=0.05, size=(300, 24))
    vectors = np.vstack([base, dense])
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    ours = vec.communities(vectors, 0.85, 2, 8, "cells")
    assert canon(ours) == canon(vec.communities(vectors, 0.85, 2, 8, "exact"))
    assert len(ours[0]) == 301


def test_auto_uses_cells_above_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[str] = []
    real_cells, real_top_k = vec.threshold_neighbours, vec.top_k

    def spy_cells(v: np.ndarray, k: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        used.append("cells")
        return real_cells(v, k, threshold)

    def spy_top_k(v: np.ndarray, k: int, ann: vec.AnnMode = "auto", threads: int = 0,
                  ) -> tuple[np.ndarray, np.ndarray]:
        used.append(ann)
        return real_top_k(v, k, ann, threads)

    monkeypatch.setattr(vec, "threshold_neighbours", spy_cells)
    monkeypatch.setattr(vec, "top_k", spy_top_k)
    rng = np.random.default_rng(1)
    small = near_copies(rng, base=300, groups=20, dims=16)
    monkeypatch.setattr(vec, "CELLS_ABOVE", len(small))
    vec.communities(small, 0.85, 2, 8)
    vec.communities(np.vstack([small, small[:1] * -1]), 0.85, 2, 8)  # one more distinct row
    vec.communities(np.vstack([small, small[:5]]), 0.85, 2, 8)  # copies: still at the limit
    assert used == ["auto", "cells", "auto"]


def test_identical_rows_are_checked_byte_for_byte_not_by_their_digest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows are grouped by a 16-byte digest, then compared: were every digest to collide,
    the rows themselves decide (the same communities as without copies collapsed)."""
    rng = np.random.default_rng(4)
    points = near_copies(rng, base=200, groups=20, dims=16)
    vectors = np.vstack([points, points[:30], -np.zeros((3, 16), np.float32),
                         np.zeros((3, 16), np.float32)])
    expected = vec.communities(vectors, 0.85, 2, 8, "exact")
    rows_of, weight = vec._collapse(vectors, 0.85)
    assert len(rows_of) == len(vectors) - 30  # the copies; zero vectors never merge
    monkeypatch.setattr(vec, "_digests", lambda v: np.zeros(len(v), dtype="V16"))
    assert vec._collapse(vectors, 0.85)[0] == rows_of
    assert vec.communities(vectors, 0.85, 2, 8, "exact") == expected


def test_a_dense_region_is_split_into_cells_of_about_cell_size() -> None:
    """Plain k-means leaves a dense region of near-copies in one cell of ~2.5x the target
    size (a search costs members x probing rows per cell, and that cell is probed most);
    ``balanced_centroids`` splits it, and each row's comparisons drop, not its pairs."""
    from synthloom.llm.embeddings import resolve_embedder

    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(3_000)]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(8, 25)))) for _ in range(6_000)]
    big = texts[0].split()
    for i in rng.choice(np.arange(1, 6_000), size=1_000, replace=False).tolist():
        tokens = list(big)
        tokens[int(rng.integers(len(tokens)))] = str(rng.choice(words))
        texts[i] = " ".join(tokens)
    vectors = np.asarray(asyncio.run(resolve_embedder("hashing:384").embed(texts)), np.float32)

    def work(centroids: np.ndarray) -> tuple[int, float]:
        """(largest cell, comparisons per row of a 6-probe search)"""
        home, (_rows, cell) = cells.probes(vectors, centroids, cells.PROBES)
        members = np.bincount(home, minlength=len(centroids))
        queries = np.bincount(cell, minlength=len(centroids))
        return int(members.max()), float(members @ queries) / len(vectors)

    plain = work(cells.spherical_kmeans(vectors, round(len(vectors) / cells.CELL_SIZE)))
    balanced = work(cells.balanced_centroids(vectors, cells.CELL_SIZE))
    assert plain[0] > 2 * cells.CELL_SIZE
    assert balanced[0] <= 1.7 * cells.CELL_SIZE
    assert balanced[1] < 0.9 * plain[1]
