"""select_per_topic through the engine (accounting), and clustering on synthetic vectors."""

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
