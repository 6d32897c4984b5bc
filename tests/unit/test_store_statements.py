"""RunStore lookups use a bounded set of SQL texts (no LLM: no scripted test backend needed).

sqlite3 caches one prepared statement per distinct SQL text (128 per connection, ~80 KB each
for a 500-key IN list); a text per batch length made a long run's memory grow with the number
of batch lengths seen. ``in_chunks`` pads each IN list to a power of two.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from synthloom.core.store import RunStore, in_chunks


class _Recording:
    """A connection stand-in that records the SQL texts it was given."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.texts: set[str] = set()

    def execute(self, sql: str, *args: Any) -> Any:
        self.texts.add(sql)
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_in_chunks_pads_to_powers_of_two_and_keeps_every_key() -> None:
    keys = [f"k{i}" for i in range(1300)]
    chunks = in_chunks(keys)
    assert [len(params) for _, params in chunks] == [512, 512, 512]  # 512 + 512 + 276 -> 512
    assert [marks.count("?") for marks, _ in chunks] == [512, 512, 512]
    assert [k for _, params in chunks for k in params if k != "k1299"] == keys[:-1]
    assert in_chunks([]) == []
    assert in_chunks(["a"]) == [("?", ["a"])]
    assert in_chunks(["a", "b", "c"]) == [("?,?,?,?", ["a", "b", "c", "c"])]


def test_get_items_uses_few_sql_texts_and_finds_exactly_the_stored_keys(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.db")
    try:
        store.put_items([(f"k{i}", "s", {"v": i}) for i in range(0, 700, 3)])
        recording = _Recording(store._db)
        store._db = recording  # type: ignore[assignment]
        for n in range(1, 700, 7):  # 100 different batch lengths
            keys = [f"k{i}" for i in range(n)]
            found = store.get_items(keys)
            assert found == {f"k{i}": {"v": i} for i in range(0, n, 3)}
        selects = {t for t in recording.texts if t.startswith("SELECT key, value")}
        assert 1 < len(selects) <= 10  # one per power of two up to 512, not one per length
    finally:
        store._db = getattr(store._db, "db", store._db)  # type: ignore[assignment]
        store.close()


def test_llm_misses_cost_no_select_and_every_written_key_is_found(tmp_path: Path) -> None:
    """A key never written is a miss without SQL (issue 27); keys committed in an earlier
    session, pending, committed in this one or merged by put_rows are all found."""
    path = tmp_path / "run.db"
    first = RunStore(path)
    first.put_llm("old", {"text": "from the first run"})
    first.close()
    store = RunStore(path)
    try:
        recording = _Recording(store._db)
        store._db = recording  # type: ignore[assignment]
        assert store.get_llm("old") == {"text": "from the first run"}  # loaded at first use
        recording.texts.clear()
        assert [store.get_llm(f"new{i}") for i in range(200)] == [None] * 200
        assert not any(t.startswith("SELECT value") for t in recording.texts)
        store.put_llm("pending", {"text": "p"})
        assert store.get_llm("pending") == {"text": "p"}
        store.flush()
        assert store.get_llm("pending") == {"text": "p"}  # committed: through the SELECT
        store.put_rows([], [("merged", '{"text": "m"}')])
        assert store.get_llm("merged") == {"text": "m"}
    finally:
        store._db = getattr(store._db, "db", store._db)  # type: ignore[assignment]
        store.close()
