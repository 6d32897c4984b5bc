"""A cache of parsed whole-file documents: ``RUN_DIR/parsed_documents.db`` (SQLite, WAL).

Parsing is the cost of reading a corpus (trafilatura takes ~20 ms per HTML page, pypdf more
per PDF): a resumed or repeated run of 1M documents would spend hours re-parsing files it
already parsed. Each whole-file document (text, Markdown, HTML, PDF, DOCX) is kept by

    key = hash(absolute path, size, mtime_ns, ctime_ns, inode, format, max_bytes, parser)

where ``parser`` is the hash of the reader modules' source and the parsing libraries' versions,
so an edited reader or an upgraded trafilatura parses again. The value is the parsed Document
or the parse error (class + message), replayed as the same failure on every run. A file that
changed (size, mtime, inode) is parsed again; a file modified in the last two seconds is not
cached (a write within the file system's timestamp tick could leave size and mtime unchanged).

Several processes (Ray read tasks) share the file: WAL, a busy timeout, and each reader
commits its own rows in batches (group commit). The cache is an optimisation only: if the
database cannot be opened or written (a read-only run folder, a network file system), the
source warns once and reads without it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sqlite3
import time
import unicodedata
import warnings
import zlib
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson

from synthloom.core.fingerprint import stable_hash
from synthloom.core.store import in_chunks
from synthloom.sources.document import Document

DB_NAME = "parsed_documents.db"
#: Rows committed per transaction, and the longest a parsed row waits for its commit.
COMMIT_ROWS, COMMIT_S = 256, 2.0
#: Files modified this recently are parsed but not cached (see the module's docstring).
RACY_NS = 2_000_000_000
#: The modules whose code decides a parse's result (their source enters the key).
READER_MODULES = ("decode", "document", "text_readers", "pdf_reader", "docx_reader",
                  "documents")
#: Libraries whose version changes what a format parses to (cryptography: AES-encrypted PDFs).
LIBRARIES = {"html": ("trafilatura", "lxml"), "pdf": ("pypdf", "cryptography"),
             "docx": ("python-docx", "lxml")}
_BUSY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ParseFailure:
    """A file that did not parse: replayed as the same SourceFailure on a cache hit."""

    error_class: str
    message: str


Parsed = Document | ParseFailure


@functools.cache
def parser_version(fmt: str) -> str:
    """Hash of the reader code and the ``fmt`` parser's library versions (once per process)."""
    digest = hashlib.blake2b(digest_size=16)
    # Text cleaning and PDF ligatures use the Unicode tables of this Python.
    digest.update(f"unicode={unicodedata.unidata_version}".encode())
    for name in READER_MODULES:
        module = import_module(f"synthloom.sources.{name}")
        try:
            digest.update(Path(module.__file__ or "").read_bytes())
        except OSError:  # no source shipped (bytecode only): the package version stands in
            from synthloom import __version__

            digest.update(f"{name}:{__version__}".encode())
    for library in LIBRARIES.get(fmt, ()):
        try:
            digest.update(f"{library}={version(library)}".encode())
        except PackageNotFoundError:
            digest.update(f"{library}=none".encode())
    return digest.hexdigest()


def file_key(path: Path, fmt: str, max_bytes: int, now_ns: int | None = None) -> str | None:
    """The cache key of a file as it is now, or None: not cacheable (cannot be examined, or
    modified within ``RACY_NS``)."""
    try:
        st = os.stat(path)
    except OSError:
        return None  # the reader reports why
    now = time.time_ns() if now_ns is None else now_ns
    if now - st.st_mtime_ns < RACY_NS:
        return None
    return stable_hash("parsed", os.path.abspath(path), st.st_size, st.st_mtime_ns,
                       st.st_ctime_ns, st.st_ino, st.st_dev, fmt, max_bytes,
                       parser_version(fmt))


def _encode(value: Parsed) -> bytes:
    if isinstance(value, ParseFailure):
        data: dict[str, Any] = {"error_class": value.error_class, "message": value.message}
    else:
        data = {"text": value.text, "title": value.title, "format": value.format,
                "page_spans": value.page_spans, "extra": value.extra}
    return zlib.compress(orjson.dumps(data), 1)


def _decode(blob: bytes) -> Parsed:
    data = orjson.loads(zlib.decompress(blob))
    if "error_class" in data:
        return ParseFailure(data["error_class"], data["message"])
    return Document(text=data["text"], title=data["title"], format=data["format"],
                    page_spans=data["page_spans"], extra=data["extra"])


class ParseCache:
    """One process's (one reader's) connection: ``get_many`` keys, ``put`` a parse, ``close``
    to commit what is pending. Used from one thread at a time (the source's generator may
    move between threads, hence ``check_same_thread=False``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.hits = self.misses = 0
        self._pending: list[tuple[str, bytes]] = []
        self._first_pending = 0.0
        self._db: sqlite3.Connection | None = None
        self._off = False  # could not be opened or written: warned, not tried again

    @property
    def enabled(self) -> bool:
        return not self._off

    def _conn(self) -> sqlite3.Connection | None:
        """The connection, opened on first use (a corpus of JSONL files never opens it)."""
        if self._db is None and not self._off:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                                     check_same_thread=False)
                self._db = db
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("CREATE TABLE IF NOT EXISTS parsed "
                           "(key TEXT PRIMARY KEY, value BLOB)")
            except (sqlite3.Error, OSError) as exc:
                self._disable("open", exc)
        return self._db

    def get_many(self, keys: list[str]) -> dict[str, Parsed]:
        """What the cache holds for ``keys`` (one query; counted as hits and misses)."""
        db = self._conn() if keys else None
        if db is None:
            return {}
        found: dict[str, Parsed] = {}
        try:
            for marks, chunk in in_chunks(keys):
                rows = db.execute(f"SELECT key, value FROM parsed WHERE key IN ({marks})",
                                  chunk)
                found.update((key, _decode(blob)) for key, blob in rows)
        except (sqlite3.Error, zlib.error, orjson.JSONDecodeError, KeyError) as exc:
            self._disable("read", exc)
            return {}
        self.hits += sum(1 for k in keys if k in found)
        self.misses += sum(1 for k in keys if k not in found)
        return found

    def put(self, key: str, value: Parsed) -> None:
        if self._off:
            return
        try:
            blob = _encode(value)
        except (TypeError, orjson.JSONEncodeError):
            return  # not JSON-able (the run would refuse the record too): just not cached
        if not self._pending:
            self._first_pending = time.monotonic()
        self._pending.append((key, blob))
        if len(self._pending) >= COMMIT_ROWS or \
                time.monotonic() - self._first_pending >= COMMIT_S:
            self.flush()

    def flush(self) -> None:
        """Commit the pending rows in one transaction."""
        db = self._conn() if self._pending else None
        if db is None:
            return
        rows, self._pending = self._pending, []
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO parsed VALUES (?, ?)", rows)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._disable("write", exc)

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _disable(self, what: str, exc: BaseException) -> None:
        warnings.warn(f"documents: cannot {what} the parse cache {self.path} "
                      f"({type(exc).__name__}: {exc}); reading without it", stacklevel=3)
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None
        self._pending = []
        self._off = True


def open_cache(run_dir: Path | None) -> ParseCache | None:
    """The run's parse cache (None without a run folder)."""
    return ParseCache(Path(run_dir) / DB_NAME) if run_dir is not None else None
