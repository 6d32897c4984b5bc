"""select_per_topic through the engine (accounting), clustering on synthetic vectors, and the
scaled versions (sparse labels, mini-batch k-means, sorted round robin) against the originals."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.quality.topics import ClusterTopics, auto_topics


def run_select(tmp_path: Path, rows: list[dict], **config) -> tuple[dict, list[dict], list[dict]]:
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = Recipe.from_dict({
        "name": "select",
        "sources": [{"name": "rows", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}],
        "steps": [{"name": "pick", "type": "select_per_topic", **config}],
    })
    out = tmp_path / "out"
    summary = asyncio.run(run_recipe(recipe, out, RunOptions())).to_json()
    read = lambda name: [json.loads(x) for x in (out / name).read_text().splitlines()]  # noqa: E731
    return next(s for s in summary["steps"] if s["name"] == "pick"), read("data.jsonl"), \
        read("dropped.jsonl")


def test_round_robin_hits_target_and_accounts_for_every_input(tmp_path: Path) -> None:
    # Topic 0 is big and high-scoring; topics 1 and 2 are small: round-robin still picks them.
    rows = [{"id": f"a{i}", "topic": 0, "score": 9 - i * 0.1} for i in range(10)]
    rows += [{"id": f"b{i}", "topic": 1, "score": 5 - i} for i in range(3)]
    rows += [{"id": "b3", "topic": 1}, {"id": "c0", "topic": 2, "score": 1}]  # b3: no score
    stats, kept, dropped = run_select(tmp_path, rows, score_column="score", target=7)
    assert stats["in"] == 15 and stats["kept"] == 7 and stats["dropped"] == 8
    assert stats["in"] == stats["kept"] + stats["dropped"] + stats["failed"]
    assert sorted(r["id"] for r in kept) == ["a0", "a1", "a2", "b0", "b1", "b2", "c0"]
    reasons = {d["record"]["id"]: d["reason"] for d in dropped}
    assert "topic 0" in reasons["a3"] and "rank 4 of 10" in reasons["a3"]
    assert "no score" in reasons["b3"] and "topic 1" in reasons["b3"]


def test_target_larger_than_input_keeps_all_and_lower_is_better(tmp_path: Path) -> None:
    rows = [{"topic": t, "ppl": p} for t, p in [(0, 3.0), (0, 1.0), (1, 2.0)]]
    stats, kept, _ = run_select(tmp_path, rows, score_column="ppl", target=99)
    assert stats["kept"] == 3
    stats, kept, dropped = run_select(tmp_path, rows, score_column="ppl", target=2,
                                      higher_is_better=False)
    assert sorted(r["ppl"] for r in kept) == [1.0, 2.0] and dropped[0]["record"]["ppl"] == 3.0


def test_missing_topic_is_a_counted_failure(tmp_path: Path) -> None:
    stats, kept, _ = run_select(tmp_path, [{"topic": 0, "s": 1}, {"s": 2}], score_column="s",
                                target=1)
    assert (stats["kept"], stats["failed"]) == (1, 1)


def test_cluster_renumbers_largest_first() -> None:
    pytest.importorskip("sklearn", reason="cluster_topics needs synthloom[quality]")
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3]
    sizes = [5, 20, 10]
    vectors = np.vstack([np.repeat(c[None], n, axis=0) + rng.normal(scale=0.05, size=(n, 8))
                         for c, n in zip(centres, sizes, strict=True)])
    for algorithm in ("kmeans", "agglomerative"):
        topics = ClusterTopics(name="t", n_topics=3, algorithm=algorithm).cluster(vectors)
        assert Counter(topics.tolist()) == {0: 20, 1: 10, 2: 5}
        assert len(set(topics[5:25].tolist())) == 1  # one true cluster, one topic
    assert auto_topics(1) == 1 and auto_topics(200) == 10 and auto_topics(10**6) == 707  # no cap of 50


def test_select_per_topic_reads_a_nested_score() -> None:
    import asyncio

    from synthloom.core.context import RunContext
    from synthloom.core.records import make_record
    from synthloom.quality.topics import SelectPerTopic

    rows = [make_record({"topic": t, "scores": {"total": s}}, step="x")
            for t, s in [(0, 3), (0, 7), (1, 5), (1, 1)]]
    step = SelectPerTopic(name="sel", score_column="scores.total", target=2)
    results = asyncio.run(step.process_all(rows, RunContext(run_dir=__import__("pathlib").Path("."))))
    kept = [i for i, r in enumerate(results) if r.outputs]
    assert kept == [1, 2]  # the best of each topic
    assert "score 3" in results[0].dropped and step.reads() == ["topic", "scores"]


# --- at scale: the same answers as the all-pairs / quadratic versions, in bounded memory ---------

def reference_select(topics: list[int], scores: list[float | None], target: int,
                     ties: np.ndarray) -> set[int]:
    """The round robin as it was written first (quadratic), with the seeded tie order."""
    by_topic: dict[int, list[int]] = {}
    for i, t in enumerate(topics):
        by_topic.setdefault(t, []).append(i)

    def key(i: int) -> tuple[bool, float, int]:
        return (scores[i] is None, -(scores[i] or 0.0), int(ties[i]))

    for members in by_topic.values():
        members.sort(key=key)
    selected: set[int] = set()
    depth = 0
    while len(selected) < target:
        round_ = [m[depth] for m in by_topic.values() if depth < len(m)]
        if not round_:
            break
        selected.update(sorted(round_, key=key)[: target - len(selected)])
        depth += 1
    return selected


def select_rows(step, rows: list[dict]) -> list:
    from synthloom.core.records import make_record

    return step.select([make_record(r, step="x") for r in rows])


def test_select_per_topic_matches_the_round_robin_on_thousands_of_rows() -> None:
    from synthloom.quality.topics import SelectPerTopic

    rng = np.random.default_rng(5)
    n = 4000
    topics = np.where(rng.random(n) < 0.5, 0, rng.integers(1, 40, size=n)).tolist()
    scores: list[float | None] = [None if rng.random() < 0.05 else float(s)
                                  for s in rng.integers(0, 8, size=n)]
    rows = [{"topic": t, "s": s} for t, s in zip(topics, scores, strict=True)]
    for target in (0, 37, 1000, 3999, 5000):
        step = SelectPerTopic(name="sel", score_column="s", target=target, seed=3)
        results = select_rows(step, rows)
        kept = {i for i, r in enumerate(results) if r.outputs}
        ties = np.random.default_rng(3).permutation(n)
        assert kept == reference_select(topics, scores, target, ties)
        if target == 1000:  # reasons count a topic's selected records and rank in it
            reasons = [r.dropped for r in results if r.dropped and "topic 0 " in r.dropped]
            sizes = Counter(topics)
            assert all(f"of {sizes[0]} in its topic" in x for x in reasons)
            kept0 = sum(1 for i in kept if topics[i] == 0)
            assert all(f"has {kept0} higher-ranked" in x for x in reasons)


def test_select_per_topic_breaks_ties_by_a_seeded_order_not_input_order() -> None:
    from synthloom.quality.topics import SelectPerTopic

    rows = [{"topic": 0, "s": 5} for _ in range(200)]  # all tied

    def kept(seed: int) -> list[int]:
        step = SelectPerTopic(name="sel", score_column="s", target=20, seed=seed)
        return [i for i, r in enumerate(select_rows(step, rows)) if r.outputs]

    assert kept(0) == kept(0)  # deterministic
    assert kept(0) != list(range(20))  # not the first rows of the corpus
    assert kept(0) != kept(1)
    assert max(kept(0)) > 100  # spread over the input


def test_minibatch_kmeans_above_the_limit_finds_separated_topics() -> None:
    pytest.importorskip("sklearn", reason="cluster_topics needs synthloom[quality]")
    from synthloom.quality.topics import MINIBATCH_ABOVE

    rng = np.random.default_rng(1)
    centres = np.eye(16)[:5]
    sizes = [2400, 1500, 900, 600, 300]
    truth = np.repeat(np.arange(5), sizes)
    vectors = np.vstack([np.repeat(c[None], n, axis=0) + rng.normal(scale=0.05, size=(n, 16))
                         for c, n in zip(centres, sizes, strict=True)]).astype(np.float32)
    assert len(vectors) > MINIBATCH_ABOVE
    step = ClusterTopics(name="t", n_topics=5, seed=2)
    topics = step.cluster(vectors)
    assert np.array_equal(topics, truth)  # renumbered largest first: the true sizes' order
    assert np.array_equal(step.cluster(vectors), topics)  # seeded


def dense_c_tf_idf(texts: list[str], groups: list[int], top: int) -> dict[int, list[str]]:
    """The dense groups x vocabulary computation it replaced."""
    from sklearn.feature_extraction.text import CountVectorizer

    labels = sorted(set(groups))
    joined = [" ".join(t for t, g in zip(texts, groups, strict=True) if g == label)
              for label in labels]
    vectorizer = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_]{2,}\b")
    counts = vectorizer.fit_transform(joined).toarray().astype(np.float64)
    vocab = vectorizer.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    scores = tf * np.log(1 + counts.sum() / len(labels) / np.maximum(counts.sum(axis=0), 1))
    return {g: [str(vocab[i]) for i in np.argsort(-scores[r], kind="stable")[:top]
                if scores[r, i] > 0] for r, g in enumerate(labels)}


def test_sparse_c_tf_idf_labels_equal_the_dense_ones() -> None:
    pytest.importorskip("sklearn", reason="topic labels need synthloom[quality]")
    from synthloom.quality.diversity import c_tf_idf_labels

    rng = np.random.default_rng(8)
    vocab = [f"w{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}x" for i in range(300)]
    texts = [" ".join(vocab[j] for j in rng.zipf(1.3, size=12) % 300) for _ in range(2000)]
    texts += ["the and of", "1234 5678"]  # stop words only, no letters
    groups = rng.integers(0, 30, size=len(texts)).tolist()
    assert c_tf_idf_labels(texts, groups, 5) == dense_c_tf_idf(texts, groups, 5)


def reference_communities(vectors: np.ndarray, threshold: float, min_size: int,
                          ) -> list[list[int]]:
    """The all-pairs version it replaced (every neighbourhood in full: memory S^2)."""
    scores = vectors @ vectors.T
    proposals = []
    for centre, row in enumerate(scores):
        hits = np.flatnonzero(row >= threshold)
        if len(hits) < min_size:
            continue
        members = hits[np.argsort(-row[hits], kind="stable")].tolist()
        members.remove(centre)
        proposals.append([centre, *members])
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


def clustered(rng: np.random.Generator, sizes: list[int], dims: int, noise: float,
              copies: int = 0) -> np.ndarray:
    centres = rng.normal(size=(len(sizes), dims))
    rows = [c + rng.normal(scale=noise, size=(n, dims)) for c, n in zip(centres, sizes,
                                                                        strict=True)]
    points = np.vstack(rows)
    if copies:  # exact copies of one row: float ties everywhere
        points = np.vstack([points, np.repeat(points[:1], copies, axis=0)])
    points = points[rng.permutation(len(points))]
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def same_groups(ours: list[list[int]], theirs: list[list[int]]) -> None:
    assert [sorted(g) for g in ours] == [sorted(g) for g in theirs]
    assert [g[0] for g in ours] == [g[0] for g in theirs]  # same centre: the same kept record


def test_communities_on_a_neighbour_graph_equal_the_all_pairs_result() -> None:
    from synthloom.quality.vectors import communities

    rng = np.random.default_rng(6)
    sizes = [1, 1, 2, 3, 5, 8, 13, 40, 90, *([1] * 200)]
    vectors = clustered(rng, sizes, dims=24, noise=0.05, copies=30)
    expected = reference_communities(vectors, 0.8, 2)
    # k = 8: the 13-, 40- and 90-point clusters and the copies saturate their lists and are
    # searched exactly in their region; k = 500 holds every neighbourhood.
    for k in (8, 500):
        same_groups(communities(vectors, 0.8, 2, neighbors=k, ann="exact"), expected)
    same_groups(communities(vectors, 0.8, 5, neighbors=8, ann="exact"),
                reference_communities(vectors, 0.8, 5))


def test_a_dense_cluster_of_thousands_stays_in_n_times_k_memory() -> None:
    import tracemalloc

    from synthloom.quality.vectors import communities

    rng = np.random.default_rng(7)
    vectors = clustered(rng, [1] * 1000, dims=16, noise=0.05, copies=2500)
    expected = reference_communities(vectors, 0.85, 2)
    tracemalloc.start()
    try:
        ours = communities(vectors, 0.85, 2, neighbors=16, ann="exact")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    same_groups(ours, expected)
    assert len(ours[0]) == 2501  # one community, one record kept
    # The all-pairs version held 2,500 neighbourhoods of 2,500 ids (231 MB traced); here:
    # n x k neighbours and blocks of scores (~35 MB).
    assert peak < 60 * 2**20


def test_semantic_communities_step_keeps_the_centre_and_names_it(tmp_path: Path) -> None:
    from synthloom.core.context import RunContext
    from synthloom.core.records import make_record, rid
    from synthloom.llm.embeddings import resolve_embedder
    from synthloom.quality.topics import SemanticCommunities

    rng = np.random.default_rng(9)
    words = [f"w{i}" for i in range(400)]
    base = [" ".join(rng.choice(words, size=14)) for _ in range(300)]
    texts = list(base)
    for i in rng.choice(300, size=80).tolist():  # near copies: one word changed
        tokens = base[i].split()
        tokens[int(rng.integers(14))] = str(rng.choice(words))
        texts.append(" ".join(tokens))
    texts += [base[0]] * 50  # a dense group: more copies than neighbours
    records = [make_record({"q": t, "n": i}, step="x") for i, t in enumerate(texts)]
    step = SemanticCommunities(name="c", column="q", embedder="hashing:256", neighbors=10)
    results = asyncio.run(step.process_all(records, RunContext(run_dir=tmp_path)))
    vectors = asyncio.run(resolve_embedder("hashing:256").embed(texts))
    groups = reference_communities(vectors, 0.85, 2)
    kept = {i for i, r in enumerate(results) if r.outputs}
    assert kept == set(range(len(texts))) - {m for g in groups for m in g[1:]}
    for group in groups:
        for member in group[1:]:
            reason = results[member].dropped
            assert reason.startswith(f"semantic community of {rid(records[group[0]])} "
                                     f"({len(group)} members, cosine≈")
            assert reason.endswith("; threshold 0.85)")


def test_without_usearch_auto_search_stays_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from synthloom.core.errors import SynthloomError
    from synthloom.quality import vectors as vec

    rng = np.random.default_rng(2)
    points = clustered(rng, [1] * 300 + [20, 30], dims=16, noise=0.05)
    monkeypatch.setattr(vec, "EXACT_LIMIT", 100)  # 350 rows: past the limit
    monkeypatch.setitem(sys.modules, "usearch.index", None)  # as if not installed
    with pytest.warns(UserWarning, match="exact search over 350 vectors"):
        groups = vec.communities(points, 0.8, 2, neighbors=8)
    same_groups(groups, reference_communities(points, 0.8, 2))
    with pytest.raises(SynthloomError, match="needs usearch"):
        vec.top_k(points, 4, "usearch")
