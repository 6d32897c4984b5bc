"""Run model-written SQL safely against SQLite, and compare results.

A query is first parsed with sqlglot (SQLite dialect): exactly one statement, and it must be a
query (SELECT / WITH / UNION ...); anything else is rejected before SQLite sees it. Execution
happens on a private copy of the database (made with SQLite's backup API, so a database in WAL
mode copies consistently), opened read-only (``file:...?mode=ro``), with an authorizer that
allows only reading, a time limit (progress handler) and a row cap. Results are normalised for
comparison: floats rounded, integral floats as ints, order ignored unless the query orders.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlglot import exp

#: Authorizer actions a read-only query needs; everything else is denied.
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                    getattr(sqlite3, "SQLITE_RECURSIVE", 33)}


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
        self._conn = sqlite3.connect(f"file:{self.copy}?mode=ro", uri=True,
                                     check_same_thread=False)
        self._conn.set_authorizer(_authorize)
        self._lock = threading.Lock()

    def __enter__(self) -> SQLiteDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()
        shutil.rmtree(self._dir, ignore_errors=True)

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
            deadline = began + deadline_s
            self._conn.set_progress_handler(lambda: time.perf_counter() > deadline, 1000)
            try:
                cursor = self._conn.execute(sql)
                rows = cursor.fetchmany(limit + 1)
                columns = [d[0] for d in cursor.description or []]
                cursor.close()
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc):
                    raise SQLTimeout(f"query ran past {deadline_s:g}s and was interrupted") \
                        from None
                raise SQLExecutionError(str(exc)) from None
            except sqlite3.DatabaseError as exc:
                raise SQLExecutionError(str(exc)) from None
            finally:
                self._conn.set_progress_handler(None, 0)
            seconds = time.perf_counter() - began
        return QueryResult(columns=columns, rows=rows[:limit], truncated=len(rows) > limit,
                           seconds=seconds, ordered=tree.args.get("order") is not None)

    async def execute_async(self, sql: str, **kwargs: Any) -> QueryResult:
        return await asyncio.to_thread(self.execute, sql, **kwargs)


def _authorize(action: int, *args: Any) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY
