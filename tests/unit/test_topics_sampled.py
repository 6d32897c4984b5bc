"""cluster_topics above its sample size: fitted on a seeded sample chosen by record id,
every record assigned to its nearest centroid in batches (scaleout.map_batches)."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core import scaleout
from synthloom.core.context import RunContext
from synthloom.core.recipe import Recipe
from synthloom.core.records import META
from synthloom.quality.topics import ClusterTopics, id_hash

pytest.importorskip("sklearn", reason="cluster_topics needs scikit-learn")

THEMES = [["bread", "flour", "yeast", "oven", "crust"], ["engine", "piston", "fuel", "gear"],
          ["violin", "melody", "chord", "tempo"], ["tomato", "soil", "seed", "garden"]]


def texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = THEMES[(i * 7) % len(THEMES)]
        out.append(" ".join(rng.choice(words) for _ in range(8)) + f" note{i % 13}")
    return out


def records(n: int) -> list[dict]:
    return [{META: {"id": f"r{i:05d}"}, "text": t} for i, t in enumerate(texts(n))]


def run(step: ClusterTopics, rows: list[dict], ctx: RunContext, **kw) -> list[tuple]:
    results = asyncio.run(step.sampled(rows, ctx, **kw) if kw else step.process_all(rows, ctx))
    return [(r.outputs[0].columns["topic"], r.outputs[0].columns["topic_label"])
            for r in results]


@pytest.mark.parametrize("algorithm", ["kmeans"])
def test_a_sample_of_every_row_gives_the_unsampled_topics_and_labels(tmp_path: Path,
                                                                     algorithm: str) -> None:
    rows = records(300)
    ctx = RunContext(run_dir=tmp_path)
    step = ClusterTopics(name="t", algorithm=algorithm, embedder="hashing", seed=3)
    exact = run(step, rows, ctx)  # 300 <= sample_size: every row clustered
    assert len(set(exact)) > 3  # several topics, labelled
    assert run(step, rows, ctx, sample=np.arange(len(rows))) == exact


def test_above_the_sample_size_topics_come_from_the_sample_and_cover_every_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = records(400)
    ctx = RunContext(run_dir=tmp_path)
    step = ClusterTopics(name="t", embedder="hashing", n_topics=4, sample_size=60, seed=1)
    batches: list[int] = []
    real = scaleout._in_process

    def counting(fn, items):  # the executor's hook is what runs the assignment
        for batch in items:
            batches.append(len(batch))
            yield from real(fn, [batch])

    monkeypatch.setattr("synthloom.quality.topics.ASSIGN_BATCH", 128)
    with scaleout.batches_mapped_by(counting):
        got = run(step, rows, ctx)
    assert batches == [128, 128, 128, 16]  # every row assigned, one batch at a time
    topics = [t for t, _ in got]
    assert Counter(topics).most_common(1)[0][0] == 0 and set(topics) == {0, 1, 2, 3}
    # The themes separate: every text of one theme lands in one topic.
    for theme in range(len(THEMES)):
        assert len({topics[i] for i in range(len(rows)) if (i * 7) % len(THEMES) == theme}) == 1
    assert run(step, rows, ctx) == got  # seeded: the same again
    # The sample is chosen by id hash: the fit sees the 60 smallest hashes, not the first 60.
    smallest = sorted(range(len(rows)), key=lambda i: id_hash(1, f"r{i:05d}"))[:60]
    assert sorted(smallest) != list(range(60))


def test_sampled_topics_do_not_depend_on_the_input_order(tmp_path: Path) -> None:
    """Through the engine (global steps see records sorted by id): shuffled rows, same topics."""
    lines = [{"id": f"q{i:04d}", "text": t} for i, t in enumerate(texts(240, seed=5))]
    got = []
    for run_no, order in enumerate([lines, random.Random(9).sample(lines, len(lines))]):
        src = tmp_path / f"in{run_no}.jsonl"
        src.write_text("".join(json.dumps(r) + "\n" for r in order))
        recipe = Recipe.from_dict({
            "name": "topics",
            "sources": [{"name": "rows", "type": "jsonl", "path": str(src)}],
            "steps": [{"name": "topics", "type": "cluster_topics", "embedder": "hashing",
                       "sample_size": 50}],
        })
        out = tmp_path / f"out{run_no}"
        asyncio.run(run_recipe(recipe, out, RunOptions()))
        data = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
        got.append({r["id"]: (r["topic"], r["topic_label"]) for r in data})
    assert len(got[0]) == 240 and got[0] == got[1]
    assert len({t for t, _ in got[0].values()}) > 2
