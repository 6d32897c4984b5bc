"""A run store for many worker processes: each writes its own shard, all read every shard.

On a cluster the run directory sits on a shared filesystem. SQLite is safe for one writer per
file there, not for many writers on one file, so each worker owns ``OUT/cache/shard-*.db`` and
looks up keys in its own shard, then in every other shard and in ``OUT/run.db`` (read-only).
A worker killed mid-run leaves its committed items in its shard; the retry, in a new worker,
finds them there. At the end of a run the driver folds the shards into ``run.db``
(:func:`merge_shards`), so the next run, local or on Ray, starts from one file.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

from synthloom.core import jsonio
from synthloom.core.store import RunStore, in_chunks

SHARD_DIR = "cache"


class ShardedStore(RunStore):
    """Writes go to this worker's shard; reads fall back to the other shards and run.db."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        shard = self.run_dir / SHARD_DIR / f"shard-{uuid.uuid4().hex[:12]}.db"
        super().__init__(shard)
        self._readers: dict[Path, sqlite3.Connection] = {}

    def _other_readers(self) -> list[sqlite3.Connection]:
        # Shards appear while the run goes on (new or restarted workers): rescan each time.
        paths = [self.run_dir / "run.db", *sorted((self.run_dir / SHARD_DIR).glob("shard-*.db"))]
        for path in paths:
            if path == self.path or path in self._readers or not path.exists():
                continue
            try:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                       check_same_thread=False)
                conn.execute("PRAGMA query_only=ON")
            except sqlite3.Error:
                continue  # a shard being created right now: next lookup sees it
            self._readers[path] = conn
        return list(self._readers.values())

    def get_items(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found = super().get_items(keys)
        missing = [k for k in keys if k not in found]
        if not missing:
            return found
        with self._lock:
            for conn in self._other_readers():
                for marks, chunk in in_chunks(missing):  # few distinct SQL texts
                    try:
                        rows = conn.execute(
                            f"SELECT key, value FROM item_cache WHERE key IN ({marks})", chunk
                        ).fetchall()
                    except sqlite3.Error:
                        continue  # table not created yet in a fresh shard
                    for key, value in rows:
                        found[key] = jsonio.loads(value)
                missing = [k for k in missing if k not in found]
                if not missing:
                    break
        return found

    def get_llm(self, key: str) -> dict[str, Any] | None:
        own = super().get_llm(key)
        if own is not None:
            return own
        with self._lock:
            for conn in self._other_readers():
                try:
                    row = conn.execute("SELECT value FROM llm_cache WHERE key = ?",
                                       (key,)).fetchone()
                except sqlite3.Error:
                    continue
                if row:
                    return jsonio.loads(row[0])
        return None

    def close(self) -> None:
        with self._lock:
            for conn in self._readers.values():
                conn.close()
            self._readers.clear()
        super().close()


def merge_shards(store: RunStore, run_dir: str | Path) -> int:
    """Fold every worker shard into ``store`` (run.db) and delete it; returns rows merged."""
    merged = 0
    for shard in sorted((Path(run_dir) / SHARD_DIR).glob("shard-*.db")):
        try:
            source = sqlite3.connect(f"file:{shard}?mode=ro", uri=True)
            items = source.execute("SELECT key, step, value FROM item_cache").fetchall()
            calls = source.execute("SELECT key, value FROM llm_cache").fetchall()
            source.close()
        except sqlite3.Error:
            continue  # unreadable shard: leave it for the next run's readers
        store.put_rows(items, calls)
        merged += len(items) + len(calls)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{shard}{suffix}").unlink(missing_ok=True)
    return merged
