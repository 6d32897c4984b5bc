"""Model-written SQL cannot exhaust the synthloom process (issue 22, item 12): queries run in a
worker process with SQLite's length limit, a capped heap and address space, a result-size cap
and a deadline the caller enforces by killing the worker.

The recipe test uses the scripted test backend (tests/support/scripted_backend.py), a test
double for the model; the SQL runs for real.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from synthloom.core.recipe import Recipe
from synthloom.verify import sql as sqlmod
from synthloom.verify.sql import SQLExecutionError, SQLiteDatabase, SQLTimeout
from tests.support.runs import read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend
from tests.unit.test_sqlcode_text2sql import responder, run

#: One opcode building a 900 MB string (2.6 GB before), and 400 rows of 10 MB blobs fetched
#: into the caller (3.3 GB in 8.3 s despite a 2 s limit before).
PRINTF = "SELECT printf('%.*c', 900000000, 'x')"
BLOBS = ("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 400) "
         "SELECT zeroblob(10000000) FROM r")
BIG_VALUE = ("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 33) "
             "SELECT i, zeroblob(100000000) FROM r")
FOREVER = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2);")
    conn.commit()
    conn.close()
    return path


def test_hostile_queries_fail_with_a_clear_message_and_the_next_query_runs(
        db_path: Path) -> None:
    with SQLiteDatabase(db_path, timeout_s=1) as db:
        with pytest.raises(SQLTimeout, match=r"ran past 1s"):
            db.execute(PRINTF)  # SQLite's length limit makes it NULL, slowly: the kill holds
        with pytest.raises(SQLExecutionError, match=r"result over 64 MB"):
            db.execute(BLOBS)
        with pytest.raises(SQLExecutionError, match=r"too big \(the limit is 16 MB per value\)"):
            db.execute(BIG_VALUE)
        with pytest.raises(SQLTimeout, match=r"ran past 1s and was interrupted"):
            db.execute(FOREVER)
        assert db.execute("SELECT a FROM t ORDER BY a").rows == [(1,), (2,)]


def test_the_worker_s_memory_is_capped(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlmod, "MAX_VALUE_BYTES", 1_000_000_000)
    monkeypatch.setattr(sqlmod, "MAX_RESULT_BYTES", 2_000_000_000)
    monkeypatch.setattr(sqlmod, "WORKER_MEMORY_MB", 256)
    with SQLiteDatabase(db_path, timeout_s=10) as db:
        with pytest.raises(SQLExecutionError, match=r"memory"):
            db.execute("SELECT length(zeroblob(400000000) || 'x')")
        assert db.execute("SELECT count(*) FROM t").rows == [(2,)]


MEASURE = """
import json, resource, sys
from synthloom.verify.sql import SQLiteDatabase
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
errors = []
with SQLiteDatabase(sys.argv[1], timeout_s=2) as db:
    db.execute("SELECT 1")  # the parser and the worker warm, so only the queries count
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for sql in sys.argv[2:]:
        try:
            db.execute(sql)
            errors.append("")
        except Exception as exc:
            errors.append(type(exc).__name__ + ": " + str(exc))
print(json.dumps({"growth_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before,
                  "worker_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "errors": errors}))
"""


def test_peak_memory_stays_bounded(db_path: Path) -> None:
    """Measured in a fresh process (ru_maxrss is a high-water mark): the caller grows by far
    less than 1 GB, and no worker got near it."""
    done = subprocess.run([sys.executable, "-c", MEASURE, str(db_path), PRINTF, BLOBS,
                           BIG_VALUE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert all(seen["errors"]), seen
    assert seen["growth_kb"] < 1024 * 1024, seen
    assert seen["worker_kb"] < 1024 * 1024, seen


def test_a_hostile_query_in_a_text2sql_run_is_one_item_s_drop(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(responder({"simple": BLOBS, "moderate": PRINTF,
                                             "complex": "SELECT COUNT(*) FROM books"}))
    recipe = Recipe.load("text2sql", {"complexities": "[simple, moderate, complex]",
                                      "count": "3", "embedder": "hashing"})
    summary = run(recipe, tmp_path / "out", backend, limit=3)
    sql = next(s for s in summary["steps"] if s["name"] == "sql")
    assert (sql["in"], sql["out"], sql["dropped"]) == (3, 1, 2), sql
    reasons = sorted(d["reason"] for d in read_jsonl(tmp_path / "out" / "dropped.jsonl")
                     if d["step"] == "sql")
    assert reasons[0].startswith("SQL failed: result over 64 MB"), reasons
    assert reasons[1].startswith("SQL timed out: query ran past"), reasons
