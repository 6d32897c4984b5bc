"""A source read quickly stays on the event loop through one slow read; a slow one leaves it.

Reading a fast source (in memory, a local file) on the loop saves a thread hop per batch
(issue 27). Before, one read slower than 2 ms -- a single preemption on a loaded machine --
sent the source to a worker thread for good; now the median of its last reads decides
(core/batch.py ``TAKE_WINDOW``), so a source that blocks still leaves the loop within a few
reads.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synthloom.api import RunOptions, run_recipe
from synthloom.core.batch import TAKE_WINDOW
from synthloom.core.context import RunContext
from synthloom.core.recipe import Recipe
from synthloom.export.sinks import JsonlSink
from synthloom.sources.files import TabularRows
from tests.support.runs import read_jsonl

BATCH = 8
BATCHES = 24


class PacedRows(TabularRows):
    """``rows`` whose chosen batches are slow to read; notes the thread reading each batch."""

    slow: set[int] = set()
    readers: list[int] = []

    def read(self, ctx: RunContext) -> Iterator[Any]:
        for i, item in enumerate(super().read(ctx)):
            if i % BATCH == 0:
                PacedRows.readers.append(threading.get_ident())
                if i // BATCH in PacedRows.slow:
                    time.sleep(0.02)  # 10x the inline limit: slow under any load
            yield item


def run(tmp_path: Path, slow: set[int]) -> list[bool]:
    """Per batch: was it read on the event loop's thread (this one, under asyncio.run)?"""
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"row": i}) + "\n" for i in range(BATCH * BATCHES)))
    PacedRows.slow, PacedRows.readers = slow, []
    recipe = Recipe(name="paced", sources=[PacedRows(name="rows", path=str(rows))], steps=[],
                    sinks=[JsonlSink(path="data.jsonl")])
    out = tmp_path / f"run{len(slow)}"
    summary = asyncio.run(run_recipe(recipe, out, RunOptions(batch_size=BATCH))).to_json()
    assert summary["status"] == "ok"
    assert [r["row"] for r in read_jsonl(out / "data.jsonl")] == list(range(BATCH * BATCHES))
    loop = threading.get_ident()
    return [reader == loop for reader in PacedRows.readers[:BATCHES]]


def test_one_slow_read_keeps_a_fast_source_on_the_loop(tmp_path: Path) -> None:
    on_loop = run(tmp_path, {6})
    assert not on_loop[0]  # the first read opens the file: in a thread
    assert on_loop[6]  # the slow read itself was on the loop
    # After it the source stays there (a miss or two under load is allowed).
    assert sum(on_loop[7:]) >= len(on_loop[7:]) - 2


def test_a_source_that_turns_slow_leaves_the_loop_within_the_window(tmp_path: Path) -> None:
    on_loop = run(tmp_path, set(range(6, BATCHES)))
    slow_on_loop = sum(on_loop[6:])
    assert slow_on_loop <= TAKE_WINDOW // 2 + 1  # a few reads block the loop, then none
    assert not any(on_loop[6 + TAKE_WINDOW:])
