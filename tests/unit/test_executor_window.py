"""The local executor's window of batches in flight (issue 27): a slow item at the head holds
its batch for in-order emission, but no longer stops the batches after it from starting."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.llm.types import LLMRequest, RawCompletion
from tests.support.runs import read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

RECIPE = """
name: window
sources:
  - {name: items, type: jsonl, path: ITEMS}
steps:
  - {name: answer, type: generate, template: echo.jinja, output: text, input: items}
sinks:
  - {type: jsonl, path: data.jsonl, from: answer}
"""
ITEMS = 40
#: Calls that must start while the first item waits (the old window allowed 6: 3 batches of 2).
WANTED = 16


class HeadWaits(ScriptedTestBackend):
    """The first item's call waits until WANTED calls have started (or 5 s)."""

    def __init__(self) -> None:
        super().__init__()
        self.started = 0
        self.enough: asyncio.Event | None = None
        self.head_released_by_others = False

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        if self.enough is None:
            self.enough = asyncio.Event()
        self.started += 1
        if last_user_text(request) == "item 0":
            try:
                await asyncio.wait_for(self.enough.wait(), 5)
                self.head_released_by_others = True
            except TimeoutError:
                pass
        elif self.started >= WANTED:
            self.enough.set()
        return await super().complete(request, seed=seed)


def test_a_slow_head_item_does_not_stop_later_batches(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"text": f"item {i}"}) + "\n" for i in range(ITEMS)))
    (tmp_path / "echo.jinja").write_text("{{ text }}")
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.replace("ITEMS", str(items)))
    backend = HeadWaits()
    # batch 2, concurrency 2: 3 batches running at most (``inflight``).
    run = run_recipe(Recipe.load(path), tmp_path / "run",
                     RunOptions(backend=backend, batch_size=2, concurrency=2))
    asyncio.run(asyncio.wait_for(run, timeout=60))
    assert backend.head_released_by_others, backend.started
    rows = read_jsonl(tmp_path / "run" / "data.jsonl")
    assert [r["text"] for r in rows] == [f"echo: item {i}" for i in range(ITEMS)]  # in order
