"""The run's progress display hears from the local executor while a barrier computes.

A global step that computes for minutes (``semantic_communities`` at 100k documents) emits
nothing meanwhile; progress was reported only on emission, so a log without a terminal (one
line per 30 s) went silent for as long (issue 28 item 5). The executor now reports every
``HEARTBEAT_S`` while the graph runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from synthloom.api import RunOptions, run_recipe
from synthloom.core import executor
from synthloom.core.context import RunContext
from synthloom.core.recipe import Recipe
from synthloom.core.records import ItemResult, Output
from synthloom.core.steps import GlobalStep
from synthloom.export.sinks import JsonlSink
from synthloom.sources.files import TabularRows
from tests.support.scripted_backend import ScriptedTestBackend

BARRIER_S = 1.5


class SlowBarrier(GlobalStep):
    """Keeps every record after computing for ``BARRIER_S`` (off the event loop)."""

    type_name = "test_slow_barrier"

    async def process_all(self, records: list[dict[str, Any]], ctx: RunContext
                          ) -> list[ItemResult]:
        await asyncio.to_thread(time.sleep, BARRIER_S)
        return [ItemResult(outputs=[Output(columns={})]) for _ in records]


def test_progress_is_reported_while_a_barrier_computes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(executor, "HEARTBEAT_S", 0.1, raising=False)
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(5)))
    recipe = Recipe(name="heartbeat", sources=[TabularRows(name="rows", path=str(rows))],
                    steps=[SlowBarrier(name="slow")], sinks=[JsonlSink(path="data.jsonl")])
    seen: list[tuple[float, bool]] = []  # (time, the barrier done) per progress call

    def on_progress(steps: list[Any]) -> None:
        seen.append((time.monotonic(), next(s for s in steps if s.name == "slow").done))

    options = RunOptions(backend=ScriptedTestBackend(), on_progress=on_progress)
    summary = asyncio.run(run_recipe(recipe, tmp_path / "out", options)).to_json()
    assert summary["records"] == 5
    waiting = [t for t, done in seen if not done]
    # Calls all through the barrier's compute, not only when the source and the barrier emit:
    # no gap between two of them much longer than the heartbeat.
    gaps = [b - a for a, b in zip(waiting, waiting[1:], strict=False)]
    assert waiting[-1] - waiting[0] >= BARRIER_S * 0.8
    assert max(gaps) < BARRIER_S / 2, f"progress went silent for {max(gaps):.2f} s"
