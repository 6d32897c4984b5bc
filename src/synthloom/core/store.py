"""The run store: SQLite (WAL) in the run directory, holding the per-item and LLM caches.

Every finished item and every finished LLM call is committed at once (WAL with
synchronous=NORMAL: a commit is a write to the OS, so a kill -9 of the process loses at most
the calls in flight, never a committed one).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from synthloom.core import jsonio

SCHEMA = """
CREATE TABLE IF NOT EXISTS item_cache (key TEXT PRIMARY KEY, step TEXT, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS llm_cache (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    started REAL, finished REAL, recipe TEXT, status TEXT, summary TEXT
);
"""


class RunStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: every statement is its own transaction unless we open one.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        # Steps may run sync code in threads; sqlite3 connections need serialised use.
        self._lock = threading.Lock()

    # --- per-item step cache -------------------------------------------------------------------

    def get_items(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, value FROM item_cache WHERE key IN ({marks})", chunk
                )
                for key, value in rows:
                    found[key] = jsonio.loads(value)
        return found

    def put_item(self, key: str, step: str, value: dict[str, Any]) -> None:
        text = jsonio.dumps(value)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO item_cache (key, step, value) VALUES (?, ?, ?)",
                (key, step, text),
            )

    def put_items(self, rows: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Several items in one transaction (a sync batch finishes all at once)."""
        if not rows:
            return
        data = [(key, step, jsonio.dumps(value)) for key, step, value in rows]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO item_cache (key, step, value) VALUES (?, ?, ?)", data)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def put_rows(self, items: list[tuple[str, str, str]], calls: list[tuple[str, str]]) -> None:
        """Raw cache rows (already serialised) from another store, kept where already present."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO item_cache (key, step, value) VALUES (?, ?, ?)", items)
                self._db.executemany(
                    "INSERT OR IGNORE INTO llm_cache (key, value) VALUES (?, ?)", calls)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # --- LLM response cache --------------------------------------------------------------------

    def get_llm(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM llm_cache WHERE key = ?", (key,)).fetchone()
        return jsonio.loads(row[0]) if row else None

    def put_llm(self, key: str, value: dict[str, Any]) -> None:
        text = jsonio.dumps(value)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO llm_cache (key, value) VALUES (?, ?)", (key, text)
            )

    # --- run history ---------------------------------------------------------------------------

    def record_run(self, started: float, finished: float, recipe: str, status: str,
                   summary: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?)",
                (started, finished, recipe, status, jsonio.dumps(summary)),
            )

    def counts(self) -> dict[str, int]:
        with self._lock:
            items = self._db.execute("SELECT COUNT(*) FROM item_cache").fetchone()[0]
            llm = self._db.execute("SELECT COUNT(*) FROM llm_cache").fetchone()[0]
        return {"item_cache": items, "llm_cache": llm}

    def close(self) -> None:
        with self._lock:
            self._db.close()
