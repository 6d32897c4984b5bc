"""Executing a candidate query for a text2sql record, and re-checking a record later.

The record's ``result`` is computed here and only here, so a checker that calls
:func:`recheck` (or repeats :func:`query_result` on a fresh copy of ``database``) compares like
with like: the same private read-only copy (``verify/sql.py``), the same row cap, raw values
(blobs as hex) in SQLite's own execution order, which a fresh copy repeats exactly.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthloom.verify.answers import code_block, strip_reasoning
from synthloom.verify.sql import QueryResult, SQLiteDatabase, parse_query

if TYPE_CHECKING:
    from sqlglot import exp

#: OmniSQL's four complexity levels, easiest first.
COMPLEXITIES = ("simple", "moderate", "complex", "highly-complex")


def sql_features(tree: exp.Expression) -> list[str]:
    """Which of joins / aggregation / nested / window the parsed query uses."""
    from sqlglot import exp

    features = []
    if tree.find(exp.Join) is not None or len(list(tree.find_all(exp.Table))) > 1:
        features.append("joins")
    if tree.find(exp.AggFunc) is not None or tree.find(exp.Group) is not None:
        features.append("aggregation")
    selects = list(tree.find_all(exp.Select))
    if len(selects) > 1 or tree.find(exp.Subquery) is not None or tree.find(exp.CTE) is not None:
        features.append("nested")
    if tree.find(exp.Window) is not None:
        features.append("window")
    return features


def complexity_matches(level: str, features: list[str]) -> bool:
    """A rough check of OmniSQL's criteria: ``simple`` reads one table without subqueries
    or windows (aggregates allowed); ``moderate`` joins, aggregates or nests; ``complex``
    nests (subquery, CTE) or uses a window; ``highly-complex`` nests and also joins or uses
    a window."""
    found = set(features)
    if level == "simple":
        return not found & {"joins", "nested", "window"}
    if level == "moderate":
        return bool(found)
    if level == "complex":
        return bool(found & {"nested", "window"})
    return "nested" in found and bool(found & {"joins", "window"})


def clean_sql(text: str) -> str:
    """The query: the first fenced SQL (or untagged) block where the reply has one (the shared
    reader, :func:`synthloom.verify.answers.code_block`), without trailing semicolons."""
    block = code_block(text, SQL_FENCES)
    sql = (block if block is not None else strip_reasoning(text)).strip()
    if sql.startswith("```"):  # a lone opening fence: "```sql SELECT ..."
        sql = sql.strip("`").strip()
        if sql[:3].lower() == "sql":
            sql = sql[3:]
    sql = sql.strip().rstrip(";").strip()
    return sql


SQL_FENCES = ("sql", "sqlite")


def result_json(result: QueryResult, result_rows: int, row_cap: int) -> dict[str, Any]:
    """The record's ``result``: the first ``result_rows`` rows exactly as SQLite returns them
    (raw values, execution order: a fresh copy returns the same, so a plain ``fetchall()``
    matches, and a checker that normalises can sort both sides), how many rows there were, and
    the caps used (so a checker can repeat it exactly)."""
    rows = [[_jsonable(v) for v in row] for row in result.rows[:result_rows]]
    return {"columns": list(result.columns), "rows": rows,
            "row_count": len(result.rows), "ordered": result.ordered,
            "row_cap": row_cap, "rows_shown_cap": result_rows}


def _jsonable(value: Any) -> Any:
    # BLOBs are the one SQLite type JSON cannot hold.
    return value.hex() if isinstance(value, bytes | bytearray | memoryview) else value


def query_result(database: str | Path, sql: str, *, timeout_s: float = 2.0,
                 max_rows: int = 1000, result_rows: int = 10) -> tuple[QueryResult, dict]:
    """Run ``sql`` on a fresh private copy of ``database``; the raw result and ``result_json``."""
    with SQLiteDatabase(database, timeout_s=timeout_s, max_rows=max_rows) as db:
        raw = db.execute(sql)
    return raw, result_json(raw, result_rows, max_rows)


class DatabasePool:
    """One private read-only copy (and one query worker) per database file, for a step's run.

    Opening a ``SQLiteDatabase`` copies the whole file and its first query starts a worker
    process (~0.3 s together on a small database, more on a large one): per item, that made
    ``text2sql_sql`` linear in items x database size. Queries are read-only (``parse_query``,
    the authorizer, a read-only copy), so one copy answers every query of a run exactly as a
    fresh copy would; ``execute`` serialises a database's queries on its worker.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, SQLiteDatabase] = {}
        self._samples: dict[tuple[str, int], str] = {}

    def get(self, database: str | Path) -> SQLiteDatabase:
        key = str(Path(database).resolve())
        with self._lock:
            db = self._open.get(key)
            if db is None:
                db = self._open[key] = SQLiteDatabase(key)
            return db

    def query_result(self, database: str | Path, sql: str, *, timeout_s: float = 2.0,
                     max_rows: int = 1000, result_rows: int = 10
                     ) -> tuple[QueryResult, dict]:
        """As :func:`query_result`, on this pool's copy of ``database``."""
        raw = self.get(database).execute(sql, timeout_s=timeout_s, max_rows=max_rows)
        return raw, result_json(raw, result_rows, max_rows)

    def query_plan(self, database: str | Path, sql: str, *, timeout_s: float = 2.0
                   ) -> list[tuple]:
        """``EXPLAIN QUERY PLAN`` rows of ``sql`` on this pool's copy of ``database``."""
        return self.get(database).query_plan(sql, timeout_s=timeout_s)

    def memo(self, key: tuple[str, int], make: Any) -> str:
        """``make()`` once per key (prompt context that depends only on the database)."""
        with self._lock:
            if key in self._samples:
                return self._samples[key]
        text = make()
        with self._lock:
            return self._samples.setdefault(key, text)

    def close(self) -> None:
        with self._lock:
            dbs, self._open = list(self._open.values()), {}
        for db in dbs:
            db.close()


def recheck(record: dict[str, Any], *, timeout_s: float = 10.0) -> bool:
    """Whether ``record['sql']`` run again on a fresh copy of ``record['database']`` gives
    exactly ``record['result']`` (same row cap and number of rows shown as when it was made)."""
    import orjson

    result = record["result"]
    raw, again = query_result(record["database"], record["sql"], timeout_s=timeout_s,
                              max_rows=int(result["row_cap"]),
                              result_rows=int(result["rows_shown_cap"]))
    if raw.truncated:
        return False
    # Through JSON, as the record was: tuples become lists, keys compare as written.
    return orjson.loads(orjson.dumps(again)) == result


def parse_sql(sql: str) -> exp.Expression:
    """sqlglot parse (SQLite dialect), one read-only query; raises ``SQLRejected``."""
    return parse_query(sql)


def query_tables(sql: str) -> set[str]:
    """Names of the database tables the query reads (CTE names excluded)."""
    from sqlglot import exp

    tree = parse_sql(sql)
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return {t.name for t in tree.find_all(exp.Table) if t.name and t.name.lower() not in ctes}
