"""Topics and communities at scale: identical rows collapsed before the neighbour search,
numeric libraries held to a thread limit."""

from __future__ import annotations

import numpy as np
import pytest

from synthloom.quality import vectors as vec


def all_pairs(vectors: np.ndarray, threshold: float, min_size: int) -> list[list[int]]:
    """sentence-transformers' community_detection on the full similarity matrix."""
    scores = vectors @ vectors.T
    proposals = []
    for centre, row in enumerate(scores):
        row = row.copy()
        row[centre] = np.inf  # the centre leads its own proposal
        hits = np.flatnonzero(row >= threshold)
        if len(hits) < min_size:
            continue
        proposals.append(hits[np.argsort(-row[hits], kind="stable")].tolist())
    proposals.sort(key=len, reverse=True)
    taken: set[int] = set()
    groups = []
    for members in proposals:
        rest = [m for m in members if m not in taken]
        if len(rest) >= min_size:
            groups.append(rest)
            taken.update(rest)
    groups.sort(key=len, reverse=True)
    return groups


def canon(groups: list[list[int]]) -> list[tuple[int, list[int]]]:
    """(kept record, members) per group, in the order returned."""
    return [(g[0], sorted(g)) for g in groups]


def unit(points: np.ndarray) -> np.ndarray:
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def with_copies(rng: np.random.Generator, base: int, copies: int, near: int, dims: int,
                ) -> np.ndarray:
    """``base`` random rows, ``copies`` exact copies of random ones, ``near`` near-copies of
    row 0, shuffled."""
    points = rng.normal(size=(base, dims))
    points = np.vstack([points, points[rng.integers(0, base, size=copies)],
                        points[:1] + rng.normal(scale=0.05, size=(near, dims))])
    return unit(points[rng.permutation(len(points))])


@pytest.mark.parametrize("seed", range(12))
def test_collapsed_copies_give_the_all_pairs_communities(seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = with_copies(rng, base=int(rng.integers(20, 80)), copies=int(rng.integers(5, 150)),
                          near=int(rng.integers(0, 40)), dims=16)
    threshold = [0.8, 0.9, 0.99][seed % 3]
    min_size = 2 + seed % 3
    expected = canon(all_pairs(vectors, threshold, min_size))
    # neighbours: fewer than the copies of a row (saturated, searched in its region) or all
    for neighbors in (4, 40, 500):
        assert canon(vec.communities(vectors, threshold, min_size, neighbors, "exact")) \
            == expected


def test_copies_are_searched_once() -> None:
    """The neighbour search sees each distinct vector once, weighted by its copies."""
    rng = np.random.default_rng(3)
    vectors = with_copies(rng, base=50, copies=400, near=0, dims=8)
    seen: list[int] = []
    real_top_k = vec.top_k

    def counting_top_k(v: np.ndarray, k: int, ann: vec.AnnMode = "auto", threads: int = 0,
                       ) -> tuple[np.ndarray, np.ndarray]:
        seen.append(len(v))
        return real_top_k(v, k, ann, threads)

    mp = pytest.MonkeyPatch()
    mp.setattr(vec, "top_k", counting_top_k)
    try:
        groups = vec.communities(vectors, 0.9, 2, 8, "exact")
    finally:
        mp.undo()
    assert seen == [len(np.unique(vectors, axis=0))] == [50]
    assert canon(groups) == canon(all_pairs(vectors, 0.9, 2))
    assert sum(len(g) for g in groups) >= 400  # every copied row is in its original's group


def test_all_rows_identical_are_one_community_kept_first() -> None:
    row = unit(np.random.default_rng(1).normal(size=(1, 12)))
    for n in (2, 3, 33, 5000):  # fewer rows than neighbours, and far more
        vectors = np.repeat(row, n, axis=0)
        assert vec.communities(vectors, 0.85, 2, 32) == [list(range(n))]
        # threshold 1.0: float rounding (0.99999994) does not split identical rows
        assert vec.communities(vectors, 1.0, 2, 32) == [list(range(n))]
    assert vec.communities(np.repeat(row, 3, axis=0), 0.85, 5, 32) == []  # below min_size
    assert vec.communities(row, 0.85, 2, 32) == []


def test_zero_vectors_are_not_a_community() -> None:
    """A zero vector (no text to embed) has cosine 0 to its copies: outliers, as before."""
    rng = np.random.default_rng(5)
    vectors = np.vstack([np.zeros((20, 8), dtype=np.float32),
                         with_copies(rng, base=10, copies=10, near=0, dims=8)])
    groups = vec.communities(vectors, 0.85, 2, 4, "exact")
    assert not any(i < 20 for g in groups for i in g)
    assert canon(groups) == canon(all_pairs(vectors, 0.85, 2))


def test_fewer_rows_than_neighbours_and_fewer_distinct_rows_than_min_size() -> None:
    rng = np.random.default_rng(6)
    base = unit(rng.normal(size=(3, 10)))
    vectors = base[[0, 1, 0, 2, 0, 1]]
    assert canon(vec.communities(vectors, 0.9, 2, 32, "exact")) == [(0, [0, 2, 4]), (1, [1, 5])]
    assert canon(vec.communities(vectors, 0.9, 3, 32, "exact")) == [(0, [0, 2, 4])]


# --- thread limit ------------------------------------------------------------------------------

def pool_threads() -> dict[str, int]:
    """Threads of every OpenMP/BLAS pool loaded in this process, by library."""
    from threadpoolctl import threadpool_info

    return {info["filepath"]: info["num_threads"] for info in threadpool_info()}


def openmp_threads() -> int:
    """What scikit-learn's k-means will use in this thread."""
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    return _openmp_effective_n_threads()


def test_cluster_topics_runs_its_numeric_work_under_the_thread_limit(tmp_path) -> None:
    import asyncio

    import sklearn.cluster  # noqa: F401 - loads the OpenMP runtime k-means uses

    from synthloom.core.context import RunContext
    from synthloom.core.records import make_record
    from synthloom.quality.topics import ClusterTopics

    seen: list[tuple[int, dict[str, int]]] = []

    class Observed(ClusterTopics):  # the real step, recording the pools while it clusters
        def cluster(self, vectors: np.ndarray) -> np.ndarray:
            seen.append((openmp_threads(), pool_threads()))
            return super().cluster(vectors)

    words = [f"w{i}" for i in range(60)]
    rng = np.random.default_rng(0)
    records = [make_record({"q": " ".join(rng.choice(words, size=8))}, step="x")
               for _ in range(80)]
    before = pool_threads()
    from synthloom.quality.threads import usable_cpus

    for threads in (1, 2) if usable_cpus() >= 2 else (1,):
        step = Observed(name="t", column="q", embedder="hashing:64", threads=threads)
        results = asyncio.run(step.process_all(records, RunContext(run_dir=tmp_path)))
        assert all(r.outputs for r in results)
        omp, pools = seen[-1]
        assert omp == threads
        assert pools and set(pools.values()) == {threads}
    assert pool_threads() == before  # restored after the step


def test_thread_limit_default_and_fingerprint() -> None:
    from synthloom.core.context import RunContext
    from synthloom.quality.threads import default_threads, limited, usable_cpus
    from synthloom.quality.topics import ClusterTopics, SemanticCommunities

    assert default_threads() == max(1, usable_cpus() // 2)
    with limited(None) as n:
        assert n == default_threads()
        assert set(pool_threads().values()) <= {n}
    ctx = RunContext(run_dir=__import__("pathlib").Path("."))
    for cls in (ClusterTopics, SemanticCommunities):
        # the limit changes speed, not results: caches stay valid when it changes
        assert cls(name="s", threads=1).fingerprint(ctx) == cls(name="s").fingerprint(ctx)
        with pytest.raises(ValueError):
            cls(name="s", threads=0)


def test_semantic_communities_passes_the_limit_to_the_search(tmp_path) -> None:
    import asyncio

    from synthloom.core.context import RunContext
    from synthloom.core.records import make_record
    from synthloom.quality.topics import SemanticCommunities

    calls: list[tuple[int, int]] = []
    real = vec.top_k

    def recording_top_k(v: np.ndarray, k: int, ann: vec.AnnMode = "auto", threads: int = 0,
                        ) -> tuple[np.ndarray, np.ndarray]:
        calls.append((threads, openmp_threads()))
        return real(v, k, ann, threads)

    texts = ["alpha beta gamma delta", "alpha beta gamma delta", "zeta eta theta iota"] * 5
    records = [make_record({"q": t, "n": i}, step="x") for i, t in enumerate(texts)]
    mp = pytest.MonkeyPatch()
    mp.setattr(vec, "top_k", recording_top_k)
    try:
        step = SemanticCommunities(name="c", column="q", embedder="hashing:64", threads=1)
        results = asyncio.run(step.process_all(records, RunContext(run_dir=tmp_path)))
    finally:
        mp.undo()
    assert calls == [(1, 1)]  # two distinct texts: one search, one thread
    assert [i for i, r in enumerate(results) if r.outputs] == [0, 2]
