"""A global step sees its inputs in one order whatever order they arrived in.

After a resume cached batches arrive first, and on Ray batches arrive as actors finish: a
barrier (clustering, selection ties) fed in arrival order gave a resumed run other records
than an uninterrupted one, and missed its own cache (the key hashed the arrival order).
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from synthloom.core.batch import BatchRunner
from synthloom.core.context import RunContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.runlog import FileRunLog
from synthloom.core.steps import GlobalStep, StepConfig
from synthloom.core.store import RunStore


class FirstSeenWins(GlobalStep):
    """Keeps only the first record it sees: its output depends on the order it is given."""

    type_name = "test_first_seen_wins"
    Config = StepConfig
    calls = 0

    async def process_all(self, records: list[dict[str, Any]], ctx: RunContext
                          ) -> list[ItemResult]:
        type(self).calls += 1
        return [ItemResult(outputs=[Output(columns={"n": r["n"]})]) if i == 0 else ItemResult.drop("not first")
                for i, r in enumerate(records)]


def _records(count: int) -> list[dict[str, Any]]:
    return [{"n": n, "_meta": {"id": f"id-{n:04d}"}} for n in range(count)]


def test_global_step_input_order_does_not_follow_arrival(tmp_path: Path) -> None:
    run = RunContext(run_dir=tmp_path)
    runner = BatchRunner(run=run, store=RunStore(tmp_path / "cache.sqlite"),
                         log=FileRunLog(tmp_path))
    step = FirstSeenWins(config=StepConfig(name="pick"))
    kept_n: list[int] = []
    for attempt in range(4):
        arrived = _records(50)
        random.Random(attempt).shuffle(arrived)
        results, hits = asyncio.run(runner.global_results(step, arrived, "ctx"))
        runner.store.flush()
        assert len(results) == len(arrived)
        kept = [r["n"] for r, res in zip(arrived, results, strict=True) if res.dropped is None]
        kept_n.extend(kept)
        assert hits == [attempt > 0] * len(arrived)  # one cache entry, whatever the arrival
    assert kept_n == [0, 0, 0, 0]  # results follow the caller's records
    assert FirstSeenWins.calls == 1
