"""Run model-written SQL safely against SQLite, and compare results.

A query is first parsed with sqlglot (SQLite dialect): exactly one statement, and it must be a
query (SELECT / WITH / UNION ...); anything else is rejected before SQLite sees it. Execution
happens on a private copy of the database (made with SQLite's backup API, so a database in WAL
mode copies consistently), opened read-only (``file:...?mode=ro``), with an authorizer that
allows only reading, a time limit (progress handler) and a row cap. Results are normalised for
comparison: floats rounded, integral floats as ints, order ignored unless the query orders.

The query runs in a worker process (one per :class:`SQLiteDatabase`, started on first use and
again after a kill), never in the caller's: one SQLite opcode can build a gigabyte string
(``printf('%.*c', 900000000, 'x')``) or a result can hold thousands of large blobs, and the
progress handler cannot interrupt either. In the worker SQLite's longest string or blob is
:data:`MAX_VALUE_BYTES` (``SQLITE_LIMIT_LENGTH``), its heap is capped (``hard_heap_limit``)
under the worker's address space (:data:`WORKER_MEMORY_MB`, ``RLIMIT_AS``), the result sent
back is at most :data:`MAX_RESULT_BYTES`, and the caller kills the worker one second after the
time limit if the progress handler did not stop the query. Each breach is that query's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import marshal
import math
import os
import select
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from sqlglot import exp

#: Authorizer actions a read-only query needs; everything else is denied.
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                    getattr(sqlite3, "SQLITE_RECURSIVE", 33)}


#: Longest string or blob a query may make (SQLite's SQLITE_LIMIT_LENGTH, in the worker).
MAX_VALUE_BYTES = 16 * 1024 * 1024
#: The worker's address space; SQLite's own heap is capped at 3/4 of it.
WORKER_MEMORY_MB = 512
#: Largest result (sum of the values' sizes) sent back from the worker.
MAX_RESULT_BYTES = 64 * 1024 * 1024
#: How long after the time limit the caller waits before it kills the worker.
KILL_GRACE_S = 1.0

#: The worker (stdlib only, ``python -I -S -c``): reads length-prefixed marshal requests
#: ``(sql, max_rows, timeout_s)`` on stdin, answers ``("ok", columns, rows)`` or
#: ``("error", kind, message)`` on stdout. The SQL was parsed and checked by the caller.
_WORKER = r"""
import marshal, resource, sqlite3, struct, sys, time

uri, memory_mb, value_bytes, result_bytes = sys.argv[1], *map(int, sys.argv[2:5])
limit = memory_mb * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
conn = sqlite3.connect(uri, uri=True)
conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, value_bytes)
conn.execute(f"PRAGMA hard_heap_limit={limit * 3 // 4}")
allowed = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
           getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
conn.set_authorizer(lambda action, *a: sqlite3.SQLITE_OK if action in allowed
                    else sqlite3.SQLITE_DENY)
stdin, stdout = sys.stdin.buffer, sys.stdout.buffer


def run(sql, max_rows, timeout_s):
    deadline = time.perf_counter() + timeout_s
    conn.set_progress_handler(lambda: time.perf_counter() > deadline, 1000)
    try:
        cursor = conn.execute(sql)
        rows, size = [], 0
        for row in cursor:
            size += sum(len(v) if isinstance(v, (str, bytes)) else 8 for v in row)
            if size > result_bytes:
                return ("error", "size", f"result over {result_bytes // 2 ** 20} MB")
            rows.append(row)
            if len(rows) > max_rows:
                break
        columns = [d[0] for d in cursor.description or []]
        cursor.close()
        return ("ok", columns, rows)
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "interrupted" in text:
            return ("error", "timeout", text)
        return ("error", "memory" if "out of memory" in text else "sql", text)
    except sqlite3.DatabaseError as exc:
        return ("error", "sql", str(exc))
    except MemoryError:
        return ("error", "memory", "out of memory")
    finally:
        conn.set_progress_handler(None, 0)


while len(head := stdin.read(4)) == 4:
    request = marshal.loads(stdin.read(struct.unpack("<I", head)[0]))
    reply = run(*request)
    try:
        data = marshal.dumps(reply)
    except MemoryError:
        data = marshal.dumps(("error", "memory", "out of memory"))
    stdout.write(struct.pack("<I", len(data)) + data)
    stdout.flush()
"""


@lru_cache(maxsize=1)
def _write_nodes() -> tuple[type, ...]:
    from sqlglot import exp

    return (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Alter, exp.Command,
            exp.Pragma, exp.Merge, exp.Attach, exp.Detach, exp.Set)


class SQLRejected(ValueError):
    """Not exactly one read-only query (a write, a PRAGMA, two statements, a parse error)."""


class SQLTimeout(RuntimeError):
    """The query ran past its time limit and was interrupted."""


class SQLExecutionError(RuntimeError):
    """SQLite refused or failed the query (unknown column, type error, ...)."""


def parse_query(sql: str) -> exp.Expression:
    """The parsed query, or :class:`SQLRejected` saying why it cannot run."""
    import sqlglot  # imported here: 0.1 s that `synthloom --help` should not pay
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        statements = [s for s in sqlglot.parse(sql, read="sqlite") if s is not None]
    except SqlglotError as exc:
        raise SQLRejected(f"SQL does not parse: {str(exc).splitlines()[0][:200]}") from None
    if len(statements) != 1:
        raise SQLRejected(f"expected exactly one statement, got {len(statements)}")
    [tree] = statements
    if not isinstance(tree, exp.Query):
        raise SQLRejected(f"only queries (SELECT) may run, not {tree.key.upper()}")
    write = next(tree.find_all(*_write_nodes()), None)
    if write is not None:
        raise SQLRejected(f"only queries (SELECT) may run; found {write.key.upper()}")
    return tree


def is_ordered(sql: str | exp.Expression) -> bool:
    """Whether the outermost query has ORDER BY (then row order matters in comparisons)."""
    tree = parse_query(sql) if isinstance(sql, str) else sql
    return tree.args.get("order") is not None


def normalize_value(value: Any, digits: int = 6) -> Any:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        value = round(value, digits)
        return int(value) if value.is_integer() else value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


def _sort_key(row: tuple) -> tuple:
    # Mixed types (NULL, numbers, text) must sort without TypeError.
    return tuple((0, 0, "") if v is None else (1, v, "") if isinstance(v, int | float)
                 else (2, 0, str(v)) for v in row)


def normalize_rows(rows: list[tuple], ordered: bool, digits: int = 6) -> list[tuple]:
    normal = [tuple(normalize_value(v, digits) for v in row) for row in rows]
    return normal if ordered else sorted(normal, key=_sort_key)


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool
    seconds: float
    ordered: bool

    def normalized(self, digits: int = 6) -> list[tuple]:
        return normalize_rows(self.rows, self.ordered, digits)

    def to_json(self, max_rows: int | None = None) -> dict[str, Any]:
        rows = self.rows if max_rows is None else self.rows[:max_rows]
        return {"columns": self.columns,
                "rows": [[normalize_value(v) for v in row] for row in rows],
                "row_count": len(self.rows), "truncated": self.truncated}


def results_match(a: QueryResult, b: QueryResult, *, ordered: bool | None = None,
                  digits: int = 6) -> bool:
    """Same rows (as multisets, or as sequences when ``ordered``; default: either query's
    ORDER BY). Column names are ignored; column order is not. Truncated results never match."""
    if a.truncated or b.truncated:
        return False
    order = (a.ordered or b.ordered) if ordered is None else ordered
    return normalize_rows(a.rows, order, digits) == normalize_rows(b.rows, order, digits)


class SQLiteDatabase:
    """A read-only private copy of a SQLite database for running untrusted queries.

    >>> with SQLiteDatabase("chinook.sqlite") as db:
    ...     db.execute("SELECT count(*) FROM Track").rows
    """

    def __init__(self, path: str | Path, *, timeout_s: float = 2.0, max_rows: int = 1000) -> None:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"SQLite database not found: {source}")
        self.source = source
        self.timeout_s = timeout_s
        self.max_rows = max_rows
        self._dir = tempfile.mkdtemp(prefix="synthloom-sql-")
        self.copy = Path(self._dir) / source.name
        original = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            target = sqlite3.connect(self.copy)
            original.backup(target)
            target.close()
        finally:
            original.close()
        self.copy.chmod(0o444)
        self._uri = f"file:{quote(str(self.copy))}?mode=ro"
        # In-process only for the schema (trusted SQL); queries go to the worker.
        self._conn = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
        self._conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        self._conn.set_authorizer(_authorize)
        self._lock = threading.Lock()
        self._worker: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SQLiteDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._stop_worker(gently=True)
        self._conn.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _start_worker(self) -> subprocess.Popen[bytes]:
        if self._worker is None or self._worker.poll() is not None:
            self._worker = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WORKER, self._uri, str(WORKER_MEMORY_MB),
                 str(MAX_VALUE_BYTES), str(MAX_RESULT_BYTES)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                cwd=self._dir, env={"LANG": "C.UTF-8"})
        return self._worker

    def _stop_worker(self, gently: bool = False) -> None:
        proc, self._worker = self._worker, None
        if proc is None:
            return
        if gently and proc.stdin is not None:
            try:
                proc.stdin.close()  # end of input: the worker exits
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def _ask_worker(self, sql: str, limit: int, deadline_s: float) -> tuple:
        """The worker's reply; kills it (and raises SQLTimeout) past the deadline + grace."""
        proc = self._start_worker()
        assert proc.stdin is not None and proc.stdout is not None
        request = marshal.dumps((sql, limit, deadline_s))
        end = time.monotonic() + deadline_s + KILL_GRACE_S
        try:
            proc.stdin.write(struct.pack("<I", len(request)) + request)
            proc.stdin.flush()
            head = _read_exactly(proc.stdout.fileno(), 4, end)
            body = _read_exactly(proc.stdout.fileno(), struct.unpack("<I", head)[0], end)
        except TimeoutError:
            self._stop_worker()
            raise SQLTimeout(f"query ran past {deadline_s:g}s and was killed") from None
        except (OSError, EOFError):
            code = proc.wait()
            self._stop_worker()
            raise SQLExecutionError(
                f"the query's worker process ended ({_exit_text(code)}; memory limit "
                f"{WORKER_MEMORY_MB} MB)") from None
        return tuple(marshal.loads(body))

    def schema(self) -> str:
        """CREATE statements of the tables and views (for prompts)."""
        with self._lock:
            self._conn.set_authorizer(None)
            try:
                rows = self._conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type IN ('table', 'view') "
                    "AND sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
            finally:
                self._conn.set_authorizer(_authorize)
        return "\n\n".join(r[0].strip() + ";" for r in rows)

    def execute(self, sql: str, *, timeout_s: float | None = None,
                max_rows: int | None = None) -> QueryResult:
        tree = parse_query(sql)
        limit = self.max_rows if max_rows is None else max_rows
        deadline_s = self.timeout_s if timeout_s is None else timeout_s
        with self._lock:
            began = time.perf_counter()
            reply = self._ask_worker(sql, limit, deadline_s)
            seconds = time.perf_counter() - began
        if reply[0] != "ok":
            _, kind, message = reply
            if kind == "timeout":
                raise SQLTimeout(f"query ran past {deadline_s:g}s and was interrupted")
            if kind == "memory":
                raise SQLExecutionError(f"{message} (the query's memory limit is "
                                        f"{WORKER_MEMORY_MB} MB)")
            if "too big" in message:
                message += f" (the limit is {MAX_VALUE_BYTES // 2 ** 20} MB per value)"
            raise SQLExecutionError(message)
        _, columns, rows = reply
        return QueryResult(columns=columns, rows=rows[:limit], truncated=len(rows) > limit,
                           seconds=seconds, ordered=tree.args.get("order") is not None)

    async def execute_async(self, sql: str, **kwargs: Any) -> QueryResult:
        return await asyncio.to_thread(self.execute, sql, **kwargs)

    def query_plan(self, sql: str, *, timeout_s: float | None = None) -> list[tuple]:
        """``EXPLAIN QUERY PLAN`` rows ``(id, parent, notused, detail)`` of one read-only
        query (checked as ``execute`` checks it), planned in the worker."""
        parse_query(sql)
        with self._lock:
            reply = self._ask_worker(f"EXPLAIN QUERY PLAN {sql}", 10_000,
                                     self.timeout_s if timeout_s is None else timeout_s)
        if reply[0] != "ok":
            raise SQLExecutionError(str(reply[2]))
        return [tuple(r) for r in reply[2]]


def _read_exactly(fd: int, size: int, end: float) -> bytes:
    """``size`` bytes from ``fd`` by ``end`` (monotonic): TimeoutError, or EOFError if the
    writer ended."""
    chunks, left = [], size
    while left:
        remaining = end - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _exit_text(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


def _authorize(action: int, *args: Any) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY
