"""SQL verification on a small database built here: validation, read-only copy, row cap,
normalisation and order-(in)sensitive comparison."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from synthloom.verify.sql import (
    SQLExecutionError,
    SQLiteDatabase,
    SQLRejected,
    is_ordered,
    normalize_rows,
    parse_query,
    results_match,
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price REAL, stock INTEGER);
        INSERT INTO item VALUES (1, 'pen', 1.5, 10), (2, 'book', 12.0, NULL),
                                (3, 'lamp', 20.25, 3), (4, 'cup', 3.1, 0);
    """)
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("sql, why", [
    ("DELETE FROM item", "DELETE"),
    ("UPDATE item SET price = 0", "UPDATE"),
    ("INSERT INTO item VALUES (9, 'x', 1, 1)", "INSERT"),
    ("DROP TABLE item", "DROP"),
    ("PRAGMA writable_schema = 1", "PRAGMA"),
    ("ATTACH DATABASE '/tmp/other.db' AS other", "ATTACH"),
    ("SELECT 1; DELETE FROM item", "exactly one statement"),
    ("SELEC name FRM item", "does not parse|only queries"),
])
def test_non_queries_are_rejected(sql: str, why: str) -> None:
    with pytest.raises(SQLRejected, match=why):
        parse_query(sql)


def test_queries_run_on_a_read_only_copy(db_path: Path) -> None:
    with SQLiteDatabase(db_path) as db:
        assert db.copy != db_path and db.copy.exists()
        result = db.execute("SELECT name FROM item WHERE stock > 0 ORDER BY name")
        assert result.rows == [("lamp",), ("pen",)] and result.ordered
        assert result.columns == ["name"]
        # Defence in depth below the parser: the connection itself refuses writes.
        with pytest.raises(sqlite3.DatabaseError):
            db._conn.execute("DELETE FROM item")
        with pytest.raises(SQLExecutionError, match="no such column"):
            db.execute("SELECT colour FROM item")
        assert "CREATE TABLE item" in db.schema()
        copy = db.copy
    assert not copy.exists()
    assert sqlite3.connect(db_path).execute("SELECT count(*) FROM item").fetchone() == (4,)


def test_row_cap_marks_truncation(db_path: Path) -> None:
    with SQLiteDatabase(db_path, max_rows=2) as db:
        capped = db.execute("SELECT id FROM item")
        assert len(capped.rows) == 2 and capped.truncated
        assert not db.execute("SELECT id FROM item", max_rows=10).truncated
        assert not results_match(capped, capped)  # a truncated result proves nothing


def test_normalisation_and_order(db_path: Path) -> None:
    assert normalize_rows([(2.0000001, None), (1, "a")], ordered=False) == [(1, "a"), (2, None)]
    assert is_ordered("SELECT id FROM item ORDER BY id")
    assert not is_ordered("SELECT * FROM (SELECT id FROM item ORDER BY id)")
    with SQLiteDatabase(db_path) as db:
        a = db.execute("SELECT name, price * 2 FROM item")
        b = db.execute("SELECT name, price + price FROM item ORDER BY price DESC")
        c = db.execute("SELECT name, price * 2 FROM item ORDER BY price ASC")
        assert results_match(a, b, ordered=False)
        assert not results_match(b, c)  # both ordered, opposite orders
        assert results_match(a, db.execute("SELECT name, round(price * 2, 9) FROM item"))
        assert not results_match(a, db.execute("SELECT name, price FROM item"))
