"""A SQLite index of a run folder's JSONL files: one row per line with its byte offset, the
columns the records table filters on, and an FTS5 table for text search.

The index lives in ``RUN/review/index.db``; it is built incrementally (a file that only grew is
indexed from where the last build stopped; a rewritten one is indexed again) and reused across
restarts. Records are read back by seeking to their offset, so nothing loads the whole file.

The index follows the data: a file's identity (inode, size, mtime) and the bytes around what
was indexed (the first and the last block) say whether it only grew; a new ``summary.json``
(a rerun finished) with a changed file means it was rewritten. A row is read back only if the
line at its offset still carries the id the index has for it; otherwise the file is indexed
again. Rows dropped by a re-index are kept in ``gone`` (their id, step and parent), so a row
number from a page made before can be told apart from one that never existed.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from synthloom.core.jsonio import read_jsonl

#: Browsable files: key -> file name in the run folder. The sink file is found at open.
FILES = {"failed": "failed.jsonl", "dropped": "dropped.jsonl"}
HEAD_BYTES = 4096
BATCH = 10000
#: ``PRAGMA user_version`` of the index's layout; an index of another version is rebuilt.
VERSION = 3
#: The columns whose distinct values (with counts) the filters list: kept per file in
#: ``facets`` as rows are indexed (a GROUP BY over 1M rows on each page load took ~70 ms
#: per column), with ``ROWS`` as the file's row count.
FACETS = ("step", "topic", "reason")
ROWS = "*rows"
#: Columns whose names say "score" are the score filter's column (the report does the same).
SCORE_NAMES = ("score", "margin")

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (name TEXT PRIMARY KEY, path TEXT, size INTEGER,
                                  head TEXT, indexed INTEGER, inode INTEGER, mtime INTEGER,
                                  tail TEXT, summary TEXT);
CREATE TABLE IF NOT EXISTS rows (n INTEGER PRIMARY KEY, file TEXT NOT NULL, line INTEGER,
    offset INTEGER, length INTEGER, id TEXT, step TEXT, score REAL, topic TEXT, reason TEXT,
    preview TEXT, parent TEXT);
CREATE INDEX IF NOT EXISTS rows_file ON rows (file, n);
CREATE INDEX IF NOT EXISTS rows_step ON rows (file, step, n);
CREATE INDEX IF NOT EXISTS rows_score ON rows (file, score);
CREATE INDEX IF NOT EXISTS rows_topic ON rows (file, topic, n);
CREATE INDEX IF NOT EXISTS rows_reason ON rows (file, reason, n);
CREATE INDEX IF NOT EXISTS rows_id ON rows (id);
CREATE INDEX IF NOT EXISTS rows_parent ON rows (parent);
CREATE TABLE IF NOT EXISTS gone (n INTEGER PRIMARY KEY, file TEXT NOT NULL, id TEXT,
    step TEXT, parent TEXT);
CREATE TABLE IF NOT EXISTS facets (file TEXT NOT NULL, col TEXT NOT NULL, value TEXT NOT NULL,
    count INTEGER NOT NULL, PRIMARY KEY (file, col, value)) WITHOUT ROWID;
"""
#: One contentless FTS5 table per file (text is not stored twice; a rewritten file's table is
#: dropped and made again, since SQLite < 3.43 cannot delete from contentless tables).
FTS = "CREATE VIRTUAL TABLE IF NOT EXISTS fts_{key} USING fts5(text, content='')"



def sink_file(run_dir: Path) -> str:
    """The run's record file: ``data.jsonl`` (the default sink) or the first other sink file."""
    if (run_dir / "data.jsonl").is_file():
        return "data.jsonl"
    skip = set(FILES.values())
    found = sorted(p.name for p in run_dir.glob("*.jsonl") if p.name not in skip)
    return found[0] if found else "data.jsonl"


def record_of(row: dict[str, Any], file: str) -> dict[str, Any]:
    """The record inside a row (failed/dropped rows wrap it; a source failure has none)."""
    if file in FILES and isinstance(row.get("record"), dict):
        return row["record"]
    return row if file not in FILES else {}


def score_of(record: dict[str, Any]) -> float | None:
    for key, value in record.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and (
                key in SCORE_NAMES or key.endswith("_score")):
            return float(value)
        if isinstance(value, dict) and isinstance(value.get("total"), int | float) \
                and isinstance(value.get("criteria"), dict):
            return float(value["total"])
    return None


def text_of(record: dict[str, Any], row: dict[str, Any]) -> str:
    """What the text search sees: every string column, plus a failure's message / reason."""
    parts = [v for k, v in record.items() if k != "_meta" and isinstance(v, str)]
    parts += [str(row[k]) for k in ("reason", "message", "error_class") if row.get(k)]
    return "\n".join(parts)


def preview_of(record: dict[str, Any], row: dict[str, Any]) -> str:
    for key in ("instruction", "question", "prompt", "response", "answer", "text"):
        if isinstance(record.get(key), str):
            return record[key][:200]
    for key, value in record.items():
        if key != "_meta" and isinstance(value, str):
            return value[:200]
    return str(row.get("message") or row.get("reason") or "")[:200]


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass
class Filters:
    step: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    topic: str | None = None
    reason: str | None = None
    q: str | None = None
    ids: list[str] | None = field(default=None)  # a decision filter: these record ids
    #: "not reviewed yet": every row but these record ids (those with a decision).
    exclude_ids: list[str] | None = field(default=None)


class RunIndex:
    """The index of one run folder. ``refresh()`` brings it up to date with the files."""

    def __init__(self, run_dir: str | Path, db_path: str | Path | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.files = {"records": sink_file(self.run_dir), **FILES}
        path = Path(db_path) if db_path else self.run_dir / "review" / "index.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        if self.db.execute("PRAGMA user_version").fetchone()[0] != VERSION:
            self._drop_all()  # an index written by another version: made again
        self.db.executescript(SCHEMA)
        self.db.execute(f"PRAGMA user_version={VERSION}")
        for key in self.files:
            self.db.execute(FTS.format(key=key))

    def close(self) -> None:
        self.db.close()

    def _drop_all(self) -> None:
        tables = [name for (name,) in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND (name IN "
            "('rows', 'files', 'facets', 'gone') OR (name LIKE 'fts\\_%' ESCAPE '\\' "
            "AND sql LIKE 'CREATE VIRTUAL TABLE%'))")]
        with self.db:
            for name in tables:
                self.db.execute(f'DROP TABLE IF EXISTS "{name}"')

    # --- building ------------------------------------------------------------------------------

    def refresh(self) -> dict[str, int]:
        """Index what is new in each file; returns the lines indexed now per file key."""
        return {key: self._refresh_file(key, self.run_dir / name)
                for key, name in self.files.items()}

    def _refresh_file(self, key: str, path: Path) -> int:
        known = self.db.execute(
            "SELECT path, size, head, indexed, inode, mtime, tail, summary FROM files "
            "WHERE name=?", (key,)).fetchone()
        if not path.is_file():
            if known:
                self._forget(key)
            return 0
        st = path.stat()
        summary = self._summary_stamp()
        start = 0
        if known:
            k_path, k_size, k_head, k_indexed, k_inode, k_mtime, k_tail, k_summary = known
            same_file = k_path == str(path) and k_inode == st.st_ino
            if same_file and (st.st_size, st.st_mtime_ns) == (k_size, k_mtime):
                return 0  # untouched since it was indexed (a new summary alone changes nothing)
            # It only grew if it is the same file, no run finished since (a rerun rewrites
            # data.jsonl), and the bytes at both ends of what was indexed are still there.
            if same_file and summary == k_summary and st.st_size >= k_indexed \
                    and _marks(path, k_indexed) == (k_head, k_tail):
                start = k_indexed  # the file only grew: index the new lines
            else:
                self._forget(key)  # rewritten (a rerun): index it again
        return self._index_from(key, path, start, st, summary)

    def _summary_stamp(self) -> str:
        """The run's summary.json as it is now (mtime and size; '' when absent)."""
        try:
            st = (self.run_dir / "summary.json").stat()
        except OSError:
            return ""
        return f"{st.st_mtime_ns}:{st.st_size}"

    def _forget(self, key: str) -> None:
        with self.db:
            # The rows' ids stay known by row number (pages made before this point at them);
            # only the last re-index of a file is kept.
            self.db.execute("DELETE FROM gone WHERE file=?", (key,))
            self.db.execute("INSERT INTO gone SELECT n, file, id, step, parent FROM rows "
                            "WHERE file=?", (key,))
            self.db.execute(f"DROP TABLE IF EXISTS fts_{key}")
            self.db.execute(FTS.format(key=key))
            self.db.execute("DELETE FROM rows WHERE file=?", (key,))
            self.db.execute("DELETE FROM facets WHERE file=?", (key,))
            self.db.execute("DELETE FROM files WHERE name=?", (key,))

    def _index_from(self, key: str, path: Path, start: int, st: os.stat_result,
                    summary: str) -> int:
        line_no = self.db.execute("SELECT COALESCE(MAX(line), 0) FROM rows WHERE file=?",
                                  (key,)).fetchone()[0]
        count, offset, since = 0, start, start
        rows: list[tuple[Any, ...]] = []
        with path.open("rb") as handle:
            handle.seek(start)
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # a line still being written: the next refresh takes it
                line_no += 1
                length = len(raw)
                if raw.strip():
                    rows.append(self._row(key, raw, line_no, offset, length))
                offset += length
                if len(rows) >= BATCH:
                    if not self._insert(key, rows, since, self._done(key, path, st, offset,
                                                                     summary)):
                        return count  # another process is indexing this file
                    count, rows, since = count + len(rows), [], offset
        if self._insert(key, rows, since, self._done(key, path, st, offset, summary)):
            count += len(rows)
        return count

    @staticmethod
    def _done(key: str, path: Path, st: os.stat_result, offset: int, summary: str
              ) -> tuple[Any, ...]:
        """The ``files`` row of a file indexed up to byte ``offset``."""
        head, tail = _marks(path, offset)
        return (key, str(path), st.st_size, head, offset, st.st_ino, st.st_mtime_ns, tail,
                summary)

    def _row(self, key: str, raw: bytes, line: int, offset: int, length: int
             ) -> tuple[Any, ...]:
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            # A bad line stays browsable: the record page names the file, line and cause.
            return (key, line, offset, length, None, None, None, None,
                    f"not JSON: {exc}", raw[:200].decode("utf-8", "replace"), None, "")
        if not isinstance(row, dict):
            return (key, line, offset, length, None, None, None, None, "not an object", "",
                    None, "")
        record = record_of(row, self.files.get(key, ""))
        meta = record.get("_meta") if isinstance(record.get("_meta"), dict) else {}
        step = row.get("step") if key in FILES else meta.get("step")
        topic = record.get("topic_label")
        reason = row.get("reason") if key == "dropped" else \
            row.get("error_class") if key == "failed" else None
        parents = meta.get("parents")
        parent = parents[0] if isinstance(parents, list) and parents else None
        return (key, line, offset, length, _id_of(key, row), step, score_of(record),
                topic if isinstance(topic, str) else None, reason,
                preview_of(record, row), parent if isinstance(parent, str) else None,
                text_of(record, row))

    def _insert(self, key: str, rows: list[tuple[Any, ...]], since: int,
                done: tuple[Any, ...]) -> bool:
        """Insert a batch (the file's lines from byte ``since``), its facet counts and how far
        the file is indexed (``done``) in one transaction: a build stopped midway (Ctrl-C)
        goes on from there, nothing twice. False (nothing written) when the index no longer
        stops at ``since``: another process indexed these lines."""
        with self.db:
            # The write lock first: the check and the batch's n are then ours alone.
            self.db.execute("BEGIN IMMEDIATE")
            indexed = self.db.execute("SELECT indexed FROM files WHERE name=?",
                                      (key,)).fetchone()
            if (indexed[0] if indexed else 0) != since:
                return False
            if rows:
                # Past every row number given out, the gone ones too: an old page's row
                # number never names another record.
                first = self.db.execute(
                    "SELECT MAX(COALESCE((SELECT MAX(n) FROM rows), 0), "
                    "COALESCE((SELECT MAX(n) FROM gone), 0)) + 1").fetchone()[0]
                self.db.executemany(
                    "INSERT INTO rows (n, file, line, offset, length, id, step, score, topic, "
                    "reason, preview, parent) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(first + i, *r[:11]) for i, r in enumerate(rows)])
                self.db.executemany(f"INSERT INTO fts_{key} (rowid, text) VALUES (?, ?)",
                                    [(first + i, r[11]) for i, r in enumerate(rows)])
                counts: Counter[tuple[str, Any]] = Counter()
                for r in rows:  # step, topic, reason: r[5], r[7], r[8]
                    counts.update((col, v) for col, v in zip(FACETS, (r[5], r[7], r[8]),
                                                             strict=True) if v is not None)
                counts[(ROWS, "")] = len(rows)
                self.db.executemany(
                    "INSERT INTO facets VALUES (?,?,?,?) ON CONFLICT (file, col, value) "
                    "DO UPDATE SET count = count + excluded.count",
                    [(key, col, str(v), c) for (col, v), c in counts.items()])
            self.db.execute("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?)", done)
        return True

    # --- querying ------------------------------------------------------------------------------

    def _where(self, key: str, f: Filters) -> tuple[str, list[Any]]:
        """The WHERE clause of a filter over ``rows`` (the text search is not in it)."""
        if key not in self.files:  # the key names a table: only the known ones
            raise KeyError(key)
        # The rows of a text search or a decision filter come from its own index (few rows,
        # usually), so the other columns' indexes are kept out of the plan (unary +).
        plus = "+" if f.q or f.ids is not None else ""
        clauses, args = [f"{plus}file = ?"], [key]
        if f.step:
            clauses.append(f"{plus}step = ?")
            args.append(f.step)
        if f.topic:
            clauses.append(f"{plus}topic = ?")
            args.append(f.topic)
        if f.reason:
            clauses.append("reason LIKE ?")
            args.append(f"%{f.reason}%")
        if f.score_min is not None:
            clauses.append(f"{plus}score >= ?")
            args.append(f.score_min)
        if f.score_max is not None:
            clauses.append(f"{plus}score <= ?")
            args.append(f.score_max)
        if f.ids is not None:
            # One parameter, however many decisions (a list of ?s stops at 32766).
            clauses.append("id IN (SELECT value FROM json_each(?))")
            args.append(orjson.dumps(f.ids).decode())
        if f.exclude_ids:
            clauses.append("(id IS NULL OR id NOT IN (SELECT value FROM json_each(?)))")
            args.append(orjson.dumps(f.exclude_ids).decode())
        return " AND ".join(clauses), args

    def page(self, key: str, filters: Filters, page: int = 1, per_page: int = 50) -> Page:
        where, args = self._where(key, filters)
        page = max(1, page)
        offset = (page - 1) * per_page
        names = ("n", "line", "id", "step", "score", "topic", "reason", "preview")
        columns = ", ".join(f"rows.{c}" for c in names)
        if filters.q:
            # From the file's FTS table, in rowid (= n) order, each hit joined to its row by
            # primary key (``n IN (SELECT rowid ...)`` made a temp b-tree of every hit, and
            # the plan then sorted the rows again).
            fts = f"fts_{key}"
            source = (f"FROM {fts} CROSS JOIN rows ON rows.n = {fts}.rowid "
                      f"WHERE {fts} MATCH ? AND {where}")
            args = [fts_query(filters.q), *args]
            total = self.db.execute(f"SELECT COUNT(*) {source}", args).fetchone()[0]
            cur = self.db.execute(f"SELECT {columns} {source} ORDER BY {fts}.rowid "
                                  "LIMIT ? OFFSET ?", [*args, per_page, offset])
        else:
            unfiltered = where == "file = ?"
            total = self.count(key) if unfiltered else self.db.execute(
                f"SELECT COUNT(*) FROM rows WHERE {where}", args).fetchone()[0]
            first = self._first_n(key, total) if unfiltered else None
            if first is not None:  # the file's rows are n = first .. first + total - 1
                cur = self.db.execute(f"SELECT {columns} FROM rows WHERE file = ? AND n >= ? "
                                      "ORDER BY n LIMIT ?", [key, first + offset, per_page])
            else:
                # The page's n from an index alone (OFFSET skips index entries, not rows;
                # a filter's matches are sorted as bare n), then its rows by primary key.
                cur = self.db.execute(
                    f"SELECT {columns} FROM rows WHERE n IN (SELECT n FROM rows WHERE {where} "
                    "ORDER BY n LIMIT ? OFFSET ?) ORDER BY n", [*args, per_page, offset])
        return Page([dict(zip(names, r, strict=True)) for r in cur], total, page, per_page)

    def _first_n(self, key: str, total: int) -> int | None:
        """The file's first row ``n`` when its rows are contiguous (a file indexed in one go:
        a page is then a range of n), else None. Two index seeks."""
        if not total:
            return None
        low = self.db.execute("SELECT MIN(n) FROM rows WHERE file=?", (key,)).fetchone()[0]
        high = self.db.execute("SELECT MAX(n) FROM rows WHERE file=?", (key,)).fetchone()[0]
        return low if high - low + 1 == total else None

    def facets(self, key: str, column: str, most: int = 200) -> list[tuple[str, int]]:
        """Distinct values of ``step``/``topic``/``reason`` in a file with their counts."""
        assert column in FACETS
        return list(self.db.execute(
            "SELECT value, count FROM facets WHERE file=? AND col=? ORDER BY count DESC, value "
            "LIMIT ?", (key, column, most)))

    def count(self, key: str) -> int:
        hit = self.db.execute("SELECT count FROM facets WHERE file=? AND col=? AND value=''",
                              (key, ROWS)).fetchone()
        return hit[0] if hit else 0

    def neighbours(self, key: str, n: int) -> tuple[int | None, int | None]:
        """The index rows before and after ``n`` in the same file (record page's prev/next)."""
        before = self.db.execute("SELECT MAX(n) FROM rows WHERE file=? AND n<?",
                                 (key, n)).fetchone()[0]
        after = self.db.execute("SELECT MIN(n) FROM rows WHERE file=? AND n>?",
                                (key, n)).fetchone()[0]
        return before, after

    def get(self, n: int) -> tuple[str, int, dict[str, Any] | str] | None:
        """(file key, line, the parsed row — or the bad line's text) of index row ``n``; None
        when there is no such row, or when the line at its offset is no longer the one indexed
        (the file was rewritten since): the file is then indexed again, and ``stale_row(n)``
        says what the row was."""
        hit = self.db.execute("SELECT file, line, offset, length, id FROM rows WHERE n=?",
                              (n,)).fetchone()
        if hit is None:
            return None
        key, line, offset, length, rid = hit
        try:
            with (self.run_dir / self.files[key]).open("rb") as handle:
                handle.seek(max(0, offset - 1))
                raw = handle.read(length + (offset > 0))
        except OSError:
            raw = b""
        # The line must still start and end where it did, and carry the id it had.
        if offset > 0:
            before, raw = raw[:1], raw[1:]
        else:
            before = b"\n"
        row: dict[str, Any] | str
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            row = f"{self.files[key]}:{line}: not JSON ({exc})"
        same = before == b"\n" and len(raw) == length and raw.endswith(b"\n") and (
            rid is None or isinstance(row, dict) and _id_of(key, row) == rid)
        if not same:
            self._forget(key)
            self._refresh_file(key, self.run_dir / self.files[key])
            return None
        return key, line, row

    def stale_row(self, n: int) -> dict[str, Any] | None:
        """What row ``n`` was before its file was indexed again (a rerun rewrote it):
        ``{"file", "id"}``, plus ``step`` and ``parent`` where known; None if it never was."""
        hit = self.db.execute("SELECT file, id, step, parent FROM gone WHERE n=?",
                              (n,)).fetchone()
        if hit is None:
            return None
        out = {"file": hit[0], "id": hit[1]}
        out.update({k: v for k, v in (("step", hit[2]), ("parent", hit[3])) if v})
        return out

    def successors(self, step: str | None, parent: str | None, record_id: str
                   ) -> list[tuple[int, str]]:
        """Records of the sink file made by ``step`` from ``parent`` other than ``record_id``
        (``--regenerate`` keeps the step and the input; the new sample has a new id):
        (row, id) pairs."""
        if not step or not parent:
            return []
        return list(self.db.execute(
            "SELECT n, id FROM rows WHERE parent=? AND file='records' AND step=? "
            "AND id IS NOT ? ORDER BY n", (parent, step, record_id)))

    def missing(self, ids: list[str]) -> list[str]:
        """Those of ``ids`` that no file of the run holds now (decisions on records a rerun
        replaced)."""
        if not ids:
            return []
        return [i for (i,) in self.db.execute(
            "SELECT value FROM json_each(?) WHERE NOT EXISTS "
            "(SELECT 1 FROM rows WHERE rows.id = json_each.value)",
            (orjson.dumps(ids).decode(),))]

    def find(self, record_id: str) -> list[tuple[str, int]]:
        """Where a record id occurs: (file key, index row) pairs."""
        return list(self.db.execute("SELECT file, n FROM rows WHERE id=? ORDER BY n",
                                    (record_id,)))

    def iter_file(self, key: str) -> Iterator[dict[str, Any]]:
        for _, row in read_jsonl(self.run_dir / self.files[key]):
            yield row


def _id_of(key: str, row: dict[str, Any]) -> str | None:
    """The id the index keeps for a row: a failure's / drop's own, or the record's."""
    if key in FILES:
        rid = row.get("id")
    else:
        meta = row.get("_meta")
        rid = meta.get("id") if isinstance(meta, dict) else None
    return rid if isinstance(rid, str) else None


def _marks(path: Path, end: int) -> tuple[str, str]:
    """Hashes of the first and the last block of the file's first ``end`` bytes: an append
    leaves both as they were; a rewrite almost never does."""
    with path.open("rb") as handle:
        head = handle.read(min(HEAD_BYTES, end))
        handle.seek(max(0, end - HEAD_BYTES))
        tail = handle.read(min(HEAD_BYTES, end))
    return (hashlib.blake2b(head, digest_size=16).hexdigest(),
            hashlib.blake2b(tail, digest_size=16).hexdigest())


def fts_query(text: str) -> str:
    """User text as an FTS5 query: each word quoted (no operator syntax errors), all required."""
    words = [w.replace('"', '""') for w in text.split()]
    return " ".join(f'"{w}"' for w in words) or '""'
