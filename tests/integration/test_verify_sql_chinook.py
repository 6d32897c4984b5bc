"""SQL verification on the real Chinook database (../shared/data/sql/chinook.sqlite)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from synthloom.verify.sql import SQLiteDatabase, SQLRejected, SQLTimeout, results_match

pytestmark = pytest.mark.integration


@pytest.fixture
def chinook(shared_data: Path):
    with SQLiteDatabase(shared_data / "sql" / "chinook.sqlite", timeout_s=1.0) as db:
        yield db


def test_real_queries(chinook: SQLiteDatabase) -> None:
    assert chinook.execute("SELECT count(*) FROM Track").rows == [(3503,)]
    top = chinook.execute(
        "SELECT ar.Name, count(*) AS n FROM Track t JOIN Album al ON t.AlbumId = al.AlbumId "
        "JOIN Artist ar ON al.ArtistId = ar.ArtistId GROUP BY ar.ArtistId ORDER BY n DESC "
        "LIMIT 3")
    assert top.ordered and [r[0] for r in top.rows] == ["Iron Maiden", "U2", "Led Zeppelin"]


def test_runaway_cross_join_times_out(chinook: SQLiteDatabase) -> None:
    with pytest.raises(SQLTimeout):
        chinook.execute("SELECT count(*) FROM Track a, Track b, Track c", timeout_s=0.5)
    # The connection stays usable after the interrupt.
    assert chinook.execute("SELECT count(*) FROM Genre").rows == [(25,)]


def test_write_attempts_are_refused(chinook: SQLiteDatabase, shared_data: Path) -> None:
    for sql in ("DELETE FROM Track", "UPDATE Track SET Name = 'x'",
                "CREATE TABLE evil(x)", "SELECT 1; DROP TABLE Track"):
        with pytest.raises(SQLRejected):
            chinook.execute(sql)
    original = sqlite3.connect(f"file:{shared_data / 'sql' / 'chinook.sqlite'}?mode=ro",
                               uri=True)
    assert original.execute("SELECT count(*) FROM Track").fetchone() == (3503,)


def test_equivalent_queries_match(chinook: SQLiteDatabase) -> None:
    join = chinook.execute(
        "SELECT g.Name, COUNT(*) FROM Track t JOIN Genre g ON t.GenreId = g.GenreId "
        "GROUP BY g.Name")
    subquery = chinook.execute(
        "SELECT (SELECT Name FROM Genre WHERE GenreId = t.GenreId), COUNT(t.TrackId) "
        "FROM Track t GROUP BY t.GenreId")
    assert len(join.rows) == 25 and results_match(join, subquery)
    rock_only = chinook.execute(
        "SELECT g.Name, COUNT(*) FROM Track t JOIN Genre g ON t.GenreId = g.GenreId "
        "WHERE g.Name = 'Rock' GROUP BY g.Name")
    assert not results_match(join, rock_only)
    avg_a = chinook.execute("SELECT avg(Total) FROM Invoice")
    avg_b = chinook.execute("SELECT sum(Total) * 1.0 / count(*) FROM Invoice")
    assert results_match(avg_a, avg_b)
