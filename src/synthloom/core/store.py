"""The run store: SQLite (WAL) in the run directory, holding the per-item and LLM caches.

Every finished item and every finished LLM call is committed before the run goes on with it:
on an event loop, at the end of the loop's current turn, in one transaction with everything
else that finished in the same turn (a group commit: at 256 requests in flight, ~20 results
share a commit); outside one, at once. WAL with synchronous=NORMAL: a commit is a write to the
OS, so a kill -9 of the process loses at most the calls in flight, never a committed one.

A cache row that cannot be decoded (a damaged file, a row written by hand) is a cache miss:
counted in ``bad_rows`` (summary.json ``cache_bad_rows``), logged, recomputed and overwritten;
it no longer aborts the run. An SQLite error is a ``StoreError`` naming run.db and a remedy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synthloom.core import jsonio
from synthloom.core.errors import SynthloomError

log = logging.getLogger(__name__)


class StoreError(SynthloomError, sqlite3.OperationalError):
    """The run store (OUT/run.db) cannot be opened, read or written. Still an
    ``sqlite3.OperationalError`` for code that catches those."""


def remedy(exc: sqlite3.Error) -> str:
    """What the user can do about an SQLite error, by its message."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return ("another process has the file open (a run, or a tool such as the sqlite3 "
                "shell); close it and rerun")
    if "malformed" in text or "not a database" in text or "disk i/o" in text:
        return ("the file is damaged: move it aside (e.g. mv run.db run.db.bad) and rerun; "
                "the cache starts afresh, so finished items are computed again")
    if "full" in text:
        return "the disk is full: free some space and rerun (finished items are cached)"
    if "readonly" in text or "unable to open" in text or "permission" in text:
        return "check that the run folder and run.db are writable by this user"
    return "if it happens again, move run.db aside and rerun (the cache starts afresh)"

SCHEMA = """
CREATE TABLE IF NOT EXISTS item_cache (key TEXT PRIMARY KEY, step TEXT, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS llm_cache (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    started REAL, finished REAL, recipe TEXT, status TEXT, summary TEXT
);
"""


def in_chunks(keys: list[str], most: int = 512) -> list[tuple[str, list[str]]]:
    """``(marks, params)`` for ``... IN (marks)`` over ``keys``, at most ``most`` per query.

    Each chunk is padded to a power of two by repeating its last key (a repeated value changes
    nothing in IN), so a connection prepares at most log2(most) + 1 distinct SQL texts. One
    text per batch length filled sqlite3's statement cache (128 entries per connection) with
    prepared statements of ~80 KB each: ~10 MB of native memory that grew with the run as new
    batch lengths turned up (benchmarks/memory.py --trace).
    """
    out: list[tuple[str, list[str]]] = []
    for start in range(0, len(keys), most):
        chunk = keys[start : start + most]
        size = 1 << (len(chunk) - 1).bit_length()
        out.append((",".join("?" * size), chunk + chunk[-1:] * (size - len(chunk))))
    return out


class _KeyFilter:
    """The LLM cache keys that may be in the table: a Bloom filter (2^25 bits, 4 MiB, two
    probes from the key's ``hash``) over every key present when it was loaded or written
    since. Never a false negative; a false positive (~0.4% at 1M keys, ~5% at 4M) only costs
    the SELECT it would have cost anyway. A fresh run's misses then cost no SQL statement."""

    BITS = 1 << 25
    #: Above this many rows at load, no filter: the scan would cost more than it saves.
    MAX_LOAD = 2_000_000

    def __init__(self) -> None:
        self._bits = bytearray(self.BITS >> 3)

    def add(self, key: str) -> None:
        h = hash(key)  # str hashes are cached on the object: no rehashing of the text
        a, b = h & (self.BITS - 1), (h >> 32) & (self.BITS - 1)
        self._bits[a >> 3] |= 1 << (a & 7)
        self._bits[b >> 3] |= 1 << (b & 7)

    def __contains__(self, key: str) -> bool:
        h = hash(key)
        a, b = h & (self.BITS - 1), (h >> 32) & (self.BITS - 1)
        return bool(self._bits[a >> 3] >> (a & 7) & 1 and self._bits[b >> 3] >> (b & 7) & 1)


class RunStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        #: Cache rows that failed to decode (each a miss, recomputed and overwritten).
        self.bad_rows = 0
        with self._sql("opening"):
            # Autocommit mode: every statement is its own transaction unless we open one.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        # Steps may run sync code in threads; sqlite3 connections need serialised use.
        self._lock = threading.Lock()
        # Written, not yet committed (see the module docstring); reads look here first.
        self._pending_items: dict[str, tuple[str, str, str]] = {}
        self._pending_llm: dict[str, str] = {}
        #: The thread whose event loop has a commit scheduled (0: none).
        self._flush_scheduled = 0
        self._flush_error: BaseException | None = None
        # Built at the first get_llm (a store with no LLM step never scans its table);
        # False: the table was too large to load, every lookup asks SQLite.
        self._llm_filter: _KeyFilter | None | bool = None

    @contextlib.contextmanager
    def _sql(self, what: str) -> Iterator[None]:
        """SQLite errors as one line that names this file and what to do about it."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"run store {self.path}: {what} failed "
                             f"({type(exc).__name__}: {exc}); {remedy(exc)}") from exc

    def _decode(self, key: str, value: Any) -> dict[str, Any] | None:
        """A cache row's value, or None (a miss) when it cannot be read back."""
        try:
            decoded = jsonio.loads(value)
            if not isinstance(decoded, dict):
                raise TypeError(f"a JSON {type(decoded).__name__}, not an object")
        except (ValueError, TypeError) as exc:
            self.bad_rows += 1
            log.warning("run store %s: cache row %s cannot be read (%s); treated as a miss, "
                        "recomputed and overwritten", self.path, key[:16], exc)
            return None
        return decoded

    # --- group commit ---------------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if self._flush_scheduled == threading.get_ident():
            # This thread's loop commits at the end of its turn already (asking for the
            # running loop first cost a getpid() system call per write on Python 3.11).
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop in this thread: commit now
            self.flush()
            return
        self._flush_scheduled = threading.get_ident()
        loop.call_soon(self._flush_from_loop)

    def _flush_from_loop(self) -> None:
        self._flush_scheduled = 0
        try:
            self.flush()
        except BaseException as exc:  # no caller here: the next store call raises it
            self._flush_error = exc

    def _raise_flush_error(self) -> None:
        if self._flush_error is not None:
            exc, self._flush_error = self._flush_error, None
            raise exc

    def flush(self) -> None:
        """Commit everything written so far."""
        # A scheduled commit whose loop ended before it ran must not stop later ones.
        self._flush_scheduled = 0
        if not (self._pending_items or self._pending_llm or self._flush_error):
            return
        with self._lock:
            self._flush_locked()
        self._raise_flush_error()

    def _flush_locked(self) -> None:
        if not self._pending_items and not self._pending_llm:
            return
        items, self._pending_items = list(self._pending_items.values()), {}
        calls, self._pending_llm = list(self._pending_llm.items()), {}
        self._write_locked(items, calls, "REPLACE")

    def _write_locked(self, items: list[tuple[str, str, str]], calls: list[tuple[str, str]],
                      on_conflict: str) -> None:
        """Serialised rows in one transaction; ``on_conflict``: REPLACE or IGNORE."""
        with self._sql("writing the cache"):
            self._db.execute("BEGIN")
            try:
                self._db.executemany(f"INSERT OR {on_conflict} INTO item_cache (key, step, value)"
                                     " VALUES (?, ?, ?)", items)
                self._db.executemany(
                    f"INSERT OR {on_conflict} INTO llm_cache (key, value) VALUES (?, ?)", calls)
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # the first error is the one to tell
                    self._db.execute("ROLLBACK")
                raise

    # --- per-item step cache -------------------------------------------------------------------

    def get_items(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        self._raise_flush_error()
        found: dict[str, dict[str, Any]] = {}
        with self._lock, self._sql("reading the item cache"):
            for marks, chunk in in_chunks(keys):  # few distinct SQL texts: see in_chunks
                rows = self._db.execute(
                    f"SELECT key, value FROM item_cache WHERE key IN ({marks})", chunk
                ).fetchall()
                for key, value in rows:
                    if (decoded := self._decode(key, value)) is not None:
                        found[key] = decoded
            for key in keys:  # written but not yet committed: newer than the table
                if (pending := self._pending_items.get(key)) is not None:
                    found[key] = jsonio.loads(pending[2])
        return found

    def put_item(self, key: str, step: str, value: dict[str, Any]) -> None:
        self._raise_flush_error()
        text = jsonio.dumps(value)
        with self._lock:
            self._pending_items[key] = (key, step, text)
        self._schedule_flush()

    def put_items(self, rows: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Several items in one transaction (a sync batch finishes all at once)."""
        if not rows:
            return
        data = [(key, step, jsonio.dumps(value)) for key, step, value in rows]
        with self._lock:
            self._flush_locked()  # an older pending value must not overwrite these later
            self._write_locked(data, [], "REPLACE")

    def put_rows(self, items: list[tuple[str, str, str]], calls: list[tuple[str, str]]) -> None:
        """Raw cache rows (already serialised) from another store, kept where already present."""
        with self._lock:
            self._flush_locked()
            self._write_locked(items, calls, "IGNORE")
            self._note_llm_keys_locked(key for key, _ in calls)

    # --- LLM response cache --------------------------------------------------------------------

    def _load_llm_filter_locked(self) -> _KeyFilter | bool:
        """A filter of every key in the table and pending (False: too many to load)."""
        keys = _KeyFilter()
        with self._sql("reading the LLM cache"):
            rows = self._db.execute("SELECT key FROM llm_cache LIMIT ?",
                                    (_KeyFilter.MAX_LOAD + 1,))
            for count, (key,) in enumerate(rows, 1):
                if count > _KeyFilter.MAX_LOAD:
                    return False
                keys.add(key)
        for key in self._pending_llm:
            keys.add(key)
        return keys

    def _note_llm_keys_locked(self, keys: Any) -> None:
        if isinstance(self._llm_filter, _KeyFilter):
            for key in keys:
                self._llm_filter.add(key)

    def get_llm(self, key: str) -> dict[str, Any] | None:
        self._raise_flush_error()
        with self._lock:
            pending = self._pending_llm.get(key)
            if pending is not None:
                return jsonio.loads(pending)
            if self._llm_filter is None:
                self._llm_filter = self._load_llm_filter_locked()
            if self._llm_filter is not False and key not in self._llm_filter:
                # Never written: a miss without an SQL statement (issue 27: one SELECT per
                # call was the run's most frequent statement, a few % of its CPU).
                return None
            with self._sql("reading the LLM cache"):
                row = self._db.execute("SELECT value FROM llm_cache WHERE key = ?",
                                       (key,)).fetchone()
        return self._decode(key, row[0]) if row else None

    def put_llm(self, key: str, value: dict[str, Any]) -> None:
        self._raise_flush_error()
        text = jsonio.dumps(value)
        with self._lock:
            self._pending_llm[key] = text
            self._note_llm_keys_locked((key,))
        self._schedule_flush()

    # --- run history ---------------------------------------------------------------------------

    def record_run(self, started: float, finished: float, recipe: str, status: str,
                   summary: dict[str, Any]) -> None:
        self.flush()
        with self._lock, self._sql("recording the run"):
            self._db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?)",
                (started, finished, recipe, status, jsonio.dumps(summary)),
            )

    def counts(self) -> dict[str, int]:
        self.flush()
        with self._lock, self._sql("counting the cache"):
            items = self._db.execute("SELECT COUNT(*) FROM item_cache").fetchone()[0]
            llm = self._db.execute("SELECT COUNT(*) FROM llm_cache").fetchone()[0]
        return {"item_cache": items, "llm_cache": llm}

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with self._lock:
                self._db.close()
