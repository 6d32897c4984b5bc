"""The run store's group commit: rows written on an event loop are readable at once, committed
together at the end of the loop's turn, and never lost on close; outside a loop, at once."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from synthloom.core.store import RunStore


def committed(path: Path) -> tuple[int, int]:
    """Rows another connection sees (what survives a kill -9 of the writer)."""
    conn = sqlite3.connect(path)
    try:
        return (conn.execute("SELECT COUNT(*) FROM item_cache").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM llm_cache").fetchone()[0])
    finally:
        conn.close()


def test_writes_on_a_loop_are_readable_at_once_and_committed_after_the_turn(
        tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.db")

    async def go() -> None:
        for i in range(5):
            store.put_item(f"item{i}", "step", {"i": i})
            store.put_llm(f"call{i}", {"text": str(i)})
        # Same turn: not committed yet, but this store reads its own writes (newest wins).
        assert committed(tmp_path / "run.db") == (0, 0)
        store.put_item("item0", "step", {"i": "newer"})
        assert store.get_items(["item0", "item4"]) == {"item0": {"i": "newer"}, "item4": {"i": 4}}
        assert store.get_llm("call3") == {"text": "3"}
        await asyncio.sleep(0)  # the turn ends: one transaction for all of them
        assert committed(tmp_path / "run.db") == (5, 5)

    asyncio.run(go())
    assert store.get_items(["item0"]) == {"item0": {"i": "newer"}}
    store.close()


def test_outside_a_loop_a_write_is_committed_at_once(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.db")
    store.put_item("a", "step", {"x": 1})
    store.put_llm("k", {"text": "t"})
    assert committed(tmp_path / "run.db") == (1, 1)
    store.close()


def test_close_and_flush_commit_what_is_pending(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.db")

    async def go() -> None:
        store.put_llm("k", {"text": "t"})
        store.flush()  # what LLMClient does before it starts the next call
        assert committed(tmp_path / "run.db") == (0, 1)
        store.put_item("a", "step", {"x": 1})
        store.close()  # before the turn ends

    asyncio.run(go())
    assert committed(tmp_path / "run.db") == (1, 1)


def test_a_failed_group_commit_is_raised_by_the_next_store_call(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.db")

    async def go() -> None:
        store.put_item("a", "step", {"x": 1})
        store._db.execute("DROP TABLE item_cache")  # the commit at the end of the turn fails
        await asyncio.sleep(0)
        with pytest.raises(sqlite3.OperationalError, match="item_cache"):
            store.get_llm("anything")
        store.close()

    asyncio.run(go())
