"""semantic_communities above ``spread_above`` (quality/spread.py, the local mapper): vectors
read from the embedding cache where they are used give the same kept and dropped records,
reasons included, as the search over every vector - through the cells and, for few distinct
rows under ``auto``, all pairs."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from synthloom.core.context import RunContext
from synthloom.core.records import make_record
from synthloom.quality import spread
from synthloom.quality.topics import SemanticCommunities


def near_copy_texts(n: int, seed: int = 3) -> list[str]:
    """A third new random texts, the rest copies of a recent one with 0-2 words changed
    (exact copies too: the collapse of identical vectors is exercised)."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(3000)]
    out: list[str] = []
    for i in range(n):
        if i % 3 == 0:
            words = [rng.choice(vocab) for _ in range(24)]
        else:
            words = rng.choice(out[-30:]).split()
            for _ in range(rng.choice([0, 1, 2])):
                words[rng.randrange(len(words))] = rng.choice(vocab)
        out.append(" ".join(words))
    return out


def results(records: list[dict], run_dir: Path, spread_above: int, ann: str) -> list[str]:
    step = SemanticCommunities(name="c", embedder="hashing", ann=ann,
                               spread_above=spread_above)
    ctx = RunContext(run_dir=run_dir)

    async def go() -> list[str]:
        await step.prepare(records, ctx)  # the cache filled, as on Ray before the barrier
        return [repr(r) for r in await step.process_all(records, ctx)]

    return asyncio.run(go())


@pytest.mark.parametrize(("ann", "searched"), [("cells", True), ("auto", False)])
def test_spread_communities_are_the_local_ones(tmp_path: Path, monkeypatch, ann: str,
                                               searched: bool) -> None:
    records = [make_record({"text": t}, step="x") for t in near_copy_texts(2_000)]
    records.append(make_record({"other": "no text"}, step="x"))  # a failure, as locally
    local = results(records, tmp_path, 10**9, ann)
    assert sum("semantic community of" in r for r in local) > 800
    calls: list[int] = []
    search = spread.spread_neighbours
    monkeypatch.setattr(spread, "spread_neighbours",
                        lambda rows, *a: calls.append(len(rows)) or search(rows, *a))
    assert results(records, tmp_path, 100, ann) == local
    assert bool(calls) == searched  # auto: fewer than CELLS_ABOVE distinct rows, all pairs
