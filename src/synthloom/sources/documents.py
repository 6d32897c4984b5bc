"""The ``documents`` source: a file or a folder (recursive) of TXT, Markdown, HTML, PDF, DOCX,
JSONL, CSV, Parquet and HF datasets saved to disk, dispatched by extension and checked by content.

Each document is one record: ``text, title, path, format, doc_id`` (+ ``n_pages, page_spans``
for PDFs, + ``keep_columns`` for tabular rows). A file or row that cannot be read becomes a
SourceFailure naming it and the cause; the run goes on with the rest.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from synthloom.core.context import RunContext
from synthloom.core.errors import RecipeError, SynthloomError
from synthloom.core.recipe import resolve_data_path
from synthloom.core.records import Output
from synthloom.core.registry import register_step
from synthloom.core.scaleout import PARTS_PER_TASK, read_in_order, read_parts_task
from synthloom.core.steps import SourceFailure, SourceStep, StepConfig
from synthloom.sources.decode import sniff_magic
from synthloom.sources.document import (
    CorruptDocument,
    Document,
    DocumentError,
    EmptyDocument,
    FileTooLarge,
    MissingColumn,
    first_line_title,
)
from synthloom.sources.docx_reader import read_docx
from synthloom.sources.fsguard import Entry, refusal, root_refusal, safe_str, shown, walk_tree
from synthloom.sources.parse_cache import ParseCache, Parsed, ParseFailure, file_key, open_cache
from synthloom.sources.pdf_reader import read_pdf
from synthloom.sources.tabular import is_hf_dataset_dir, iter_rows
from synthloom.sources.text_readers import read_html, read_plain

log = logging.getLogger(__name__)
#: Files looked up in the parse cache per query.
LOOKUP_FILES = 64
#: Default ``read_workers`` cap, and read tasks (of PARTS_PER_TASK files) in flight per worker.
MAX_READ_WORKERS, READS_PER_WORKER = 8, 2

#: Extension -> format. Folders written by ``datasets.save_to_disk`` are format ``hf``.
FORMATS: dict[str, str] = {
    ".txt": "text", ".text": "text", ".rst": "text", ".log": "text",
    ".md": "markdown", ".markdown": "markdown",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".csv": "csv", ".tsv": "csv",
    ".parquet": "parquet",
}
TABULAR = {"jsonl", "csv", "parquet", "hf"}
#: Whole-file readers: these formats are size-capped (tabular ones stream row by row).
WHOLE_FILE: dict[str, Callable[[bytes], Document]] = {
    "text": read_plain,
    "markdown": lambda data: read_plain(data, "markdown"),
    "html": read_html,
    "pdf": read_pdf,
    "docx": read_docx,
}


class DocumentsConfig(StepConfig):
    #: A file or a folder (read recursively, sorted; hidden files and folders are skipped).
    path: str
    #: Only files with these extensions (default: every supported one; "hf" for HF folders).
    extensions: list[str] | None = None
    #: Tabular formats: the column holding the document text.
    text_column: str = "text"
    #: Tabular formats: the column holding a title (default: the text's first line).
    title_column: str | None = None
    #: Tabular formats: other columns copied onto each document record.
    keep_columns: list[str] = []
    #: Whole-file formats above this size fail as FileTooLarge (tabular files stream).
    max_bytes: int = 20_000_000
    #: Read symbolic links that lead out of the folder (never into /proc, /sys or /dev).
    follow_symlinks: bool = False
    #: Keep parsed whole-file documents (and parse errors) in RUN_DIR/parsed_documents.db,
    #: keyed by path, size and mtime: a rerun or resume parses only new or changed files.
    cache: bool = True
    #: Processes that parse files at once in a local run (default: the CPUs, at most 8; 1: in
    #: the run's own process). Records, failures and their order are those of a serial read;
    #: a folder of fewer than 32 files (one part) is read serially.
    read_workers: int | None = Field(default=None, ge=1)

    #: Neither changes what is read: toggling them keeps every downstream cache.
    wiring: ClassVar[frozenset[str]] = StepConfig.wiring | {"cache", "read_workers"}


@register_step
class Documents(SourceStep):
    """One record per document (file, or row of a tabular file); failures name the file."""

    type_name = "documents"
    Config = DocumentsConfig
    config: DocumentsConfig
    #: Whole-file documents this step object took from the parse cache / parsed and cached.
    cache_hits: int = 0
    cache_misses: int = 0

    def read(self, ctx: RunContext) -> Iterator[Output | SourceFailure]:
        parts = iter(self.parts(ctx))
        head = list(itertools.islice(parts, PARTS_PER_TASK + 1))
        workers = self.reader_processes()
        if workers <= 1 or len(head) <= PARTS_PER_TASK:
            # One part at most: starting a pool costs more than it saves.
            yield from self.read_parts(itertools.chain(head, parts), ctx)
            return
        yield from self._read_in_pool(itertools.chain(head, parts), ctx, workers)

    def reader_processes(self) -> int:
        """Processes a local ``read`` parses in (core/scaleout.py ``ReadsInProcesses``)."""
        return self.config.read_workers or min(os.cpu_count() or 1, MAX_READ_WORKERS)

    def _read_in_pool(self, parts: Iterator[Any], ctx: RunContext, workers: int,
                      ) -> Iterator[Output | SourceFailure]:
        """Parts read by worker processes (each with its own parse-cache connection; the
        cache is SQLite WAL), ``READS_PER_WORKER`` parts per worker in flight, merged in the
        parts' order by the code the Ray executor uses (scaleout.read_in_order)."""
        # What a worker needs, picklable: the step's settings, not the run's clients/context.
        copy = type(self)(config=self.config)
        slim = RunContext(run_dir=ctx.run_dir, seed=ctx.seed, recipe_dir=ctx.recipe_dir)
        # forkserver: this runs in a thread of a process with others (fork would copy locks).
        with ProcessPoolExecutor(max_workers=workers,
                                 mp_context=multiprocessing.get_context("forkserver")) as pool:
            yield from read_in_order(
                parts, lambda chunk: pool.submit(_read_task, copy, slim, chunk), self._counted,
                lambda future: future.cancel(), READS_PER_WORKER * workers)
        if self.cache_hits or self.cache_misses:
            log.info("source %s: %d files from the parse cache, %d parsed", self.name,
                     self.cache_hits, self.cache_misses)

    def _counted(self, task: Future[tuple[list[Any], int, int]]) -> list[Any]:
        """A worker's items; its parse-cache hits and misses added to this step's."""
        items, hits, misses = task.result()
        self.cache_hits += hits
        self.cache_misses += misses
        return items

    def parts(self, ctx: RunContext) -> Iterator[tuple[Path, str, str] | SourceFailure]:
        """Each input file as ``(path, format, name)`` in read order, or the failure of a file
        that must not be opened: the Ray executor reads the parts in parallel
        (core/scaleout.py ``ReadsInParts``)."""
        root = resolve_data_path(self.config.path, ctx.recipe_dir)
        if not root.exists():
            raise RecipeError(f"source {self.name}: path not found: {shown(root)}")
        for path, fmt, refused in self._inputs(root):
            if refused is not None:
                yield SourceFailure(shown(path), type(refused).__name__, safe_str(str(refused)))
                continue
            name = shown(path.relative_to(root)) if root.is_dir() and path != root \
                else shown(path.name)
            yield path, fmt, name

    def read_parts(self, parts: Iterable[tuple[Path, str, str] | SourceFailure],
                   ctx: RunContext) -> Iterator[Output | SourceFailure]:
        """Some parts' documents, in order: the whole read, or one Ray task's share. One
        parse-cache connection for all of them: files are looked up ``LOOKUP_FILES`` at a
        time, parsed rows commit in batches and at the end."""
        cache = open_cache(ctx.run_dir) if self.config.cache and \
            not _inside(ctx.run_dir, resolve_data_path(self.config.path, ctx.recipe_dir)) \
            else None
        it = iter(parts)
        try:
            while chunk := list(itertools.islice(it, LOOKUP_FILES)):
                cached = self._lookup(chunk, cache)
                for part, (key, hit) in zip(chunk, cached, strict=True):
                    yield from self._read_part(part, cache, key, hit)
        finally:
            if cache is not None:
                cache.close()
                self.cache_hits += cache.hits
                self.cache_misses += cache.misses
                if cache.hits or cache.misses:
                    log.info("source %s: %d files from the parse cache, %d parsed", self.name,
                             cache.hits, cache.misses)

    def read_part(self, part: tuple[Path, str, str] | SourceFailure, ctx: RunContext,
                  ) -> Iterator[Output | SourceFailure]:
        """One part's documents (one file, or a tabular file's rows)."""
        return self.read_parts([part], ctx)

    def _lookup(self, chunk: list[tuple[Path, str, str] | SourceFailure],
                cache: ParseCache | None) -> list[tuple[str | None, Parsed | None]]:
        """Per part: its cache key (None: a row file, a failure, not cacheable, no cache) and
        what the cache holds for it, all found in one query."""
        if cache is None or not cache.enabled:
            return [(None, None)] * len(chunk)
        keys = [file_key(part[0], part[1], self.config.max_bytes)
                if not isinstance(part, SourceFailure) and part[1] not in TABULAR else None
                for part in chunk]
        found = cache.get_many([k for k in keys if k is not None])
        return [(k, found.get(k) if k is not None else None) for k in keys]

    def _read_part(self, part: tuple[Path, str, str] | SourceFailure, cache: ParseCache | None,
                   key: str | None, hit: Parsed | None) -> Iterator[Output | SourceFailure]:
        if isinstance(part, SourceFailure):
            yield part
            return
        path, fmt, name = part
        if fmt in TABULAR:
            yield from self._rows(path, fmt, name)
            return
        parsed = hit if hit is not None else self._parse(path, fmt, cache, key)
        if isinstance(parsed, ParseFailure):
            yield SourceFailure(shown(path), parsed.error_class, parsed.message)
            return
        yield Output(columns=parsed.columns(name), meta={"path": shown(path)})

    def _parse(self, path: Path, fmt: str, cache: ParseCache | None, key: str | None,
               ) -> Parsed:
        """The file's Document or why it has none, kept in the cache under ``key`` unless
        the error may pass (an OS error, memory)."""
        keep = True
        parsed: Parsed
        try:
            parsed = read_document(path, fmt, self.config.max_bytes)
        except SynthloomError:
            raise  # a missing library stops the run with one line
        except DocumentError as exc:
            parsed = ParseFailure(type(exc).__name__, safe_str(str(exc)))
        except Exception as exc:  # noqa: BLE001 - a parser bug on one file is that file's
            parsed = ParseFailure(type(exc).__name__, safe_str(f"{fmt} reader: {exc}"))
            keep = not isinstance(exc, (OSError, MemoryError))
        if cache is not None and key is not None and keep:
            cache.put(key, parsed)
        return parsed

    # --- which files ---------------------------------------------------------------------------

    def _inputs(self, root: Path) -> Iterator[tuple[Path, str, DocumentError | None]]:
        """``(path, format, None or why it is not opened)``: links out of the folder (unless
        ``follow_symlinks``), into /proc, /sys, /dev, dangling; FIFOs, sockets, devices."""
        wanted = {e.lower() if e.startswith(".") or e == "hf" else f".{e.lower()}"
                  for e in self.config.extensions} if self.config.extensions else None
        follow = self.config.follow_symlinks
        refused = root_refusal(root)
        if refused is not None:
            yield root, "", refused
            return
        if is_hf_dataset_dir(root):
            yield root, "hf", None
            return
        if not root.is_dir():
            yield root, format_of(root), refusal(root, None, follow)
            return
        folder = os.path.realpath(root)
        for path, why in walk_tree(root, follow_symlinks=follow, skip_hidden=True,
                                   unit_dir=is_hf_dataset_dir):
            if why is not None:
                yield path, "", why
            elif path.is_dir():  # an HF dataset folder
                if wanted is None or "hf" in wanted:
                    yield path, "hf", None
            elif path.suffix.lower() in FORMATS and (wanted is None or
                                                    path.suffix.lower() in wanted):
                yield path, FORMATS[path.suffix.lower()], refusal(path, folder, follow)

    # --- tabular rows --------------------------------------------------------------------------

    def _rows(self, path: Path, fmt: str, label: str) -> Iterator[Output | SourceFailure]:
        cfg = self.config
        name = shown(path)
        wanted = [cfg.text_column, *filter(None, [cfg.title_column]), *cfg.keep_columns]
        try:
            rows = iter_rows(path, fmt, wanted)
            for where, row in rows:
                if isinstance(row, DocumentError):
                    yield SourceFailure(where, type(row).__name__, str(row))
                    continue
                try:
                    document = document_from_row(row, fmt, cfg.text_column, cfg.title_column,
                                                 cfg.keep_columns)
                except DocumentError as exc:
                    yield SourceFailure(where, type(exc).__name__, str(exc))
                    continue
                yield Output(columns=document.columns(label), meta={"path": name,
                                                                    "where": where})
        except SynthloomError:
            raise
        except DocumentError as exc:  # the file as a whole (binary, undecodable)
            yield SourceFailure(name, type(exc).__name__, safe_str(str(exc)))
        except (OSError, UnicodeError, ValueError) as exc:
            yield SourceFailure(name, type(exc).__name__, safe_str(f"{fmt} reader: {exc}"))


def _read_task(step: Documents, ctx: RunContext, parts: list[Any],
               ) -> tuple[list[Any], int, int]:
    """A pool worker's read task (scaleout.read_parts_task) and the step's cache counts."""
    items = read_parts_task(step, ctx, parts)
    return items, step.cache_hits, step.cache_misses


def walk(root: Path, follow_symlinks: bool = False) -> list[Path]:
    """Entries under ``root``, sorted by path, hidden ones skipped; an HF dataset folder is
    listed whole (see :func:`fsguard.walk_tree` for links)."""
    entries: list[Entry] = walk_tree(root, follow_symlinks=follow_symlinks, skip_hidden=True,
                                     unit_dir=is_hf_dataset_dir)
    return [path for path, _ in entries]


def _inside(run_dir: Path | None, root: Path) -> bool:
    """The run folder is the source's file or folder, or under it: the source never writes
    its cache into what it reads (a read of a shared, read-only corpus stays a read)."""
    if run_dir is None:
        return False
    run, top = os.path.realpath(run_dir), os.path.realpath(root)
    return run == top or run.startswith(top.rstrip(os.sep) + os.sep)


def format_of(path: Path) -> str:
    if is_hf_dataset_dir(path):
        return "hf"
    # An unknown extension is read as text: the decoder refuses binary content clearly.
    return FORMATS.get(path.suffix.lower(), "text")


def read_document(path: Path, fmt: str, max_bytes: int) -> Document:
    """Read one whole-file document; raises a DocumentError subclass naming the cause."""
    size = path.stat().st_size
    if size == 0:
        raise EmptyDocument("file is empty (0 bytes)")
    if size > max_bytes:
        raise FileTooLarge(f"{size} bytes exceeds max_bytes={max_bytes}")
    data = path.read_bytes()
    if not data.strip(b"\x00"):  # a preallocated or zeroed file: no format has only NULs
        raise EmptyDocument(f"empty / binary file: all {len(data)} bytes are NUL")
    if fmt == "pdf" and b"%PDF" not in data[:1024]:
        what = sniff_magic(data) or f"no %PDF header (starts with {data[:16]!r})"
        raise CorruptDocument(f"not a PDF file: content is {what}")
    return WHOLE_FILE[fmt](data)


def document_from_row(row: dict[str, Any], fmt: str, text_column: str, title_column: str | None,
                      keep_columns: list[str]) -> Document:
    if text_column not in row:
        raise MissingColumn(f"no column {text_column!r} (columns: {sorted(row)[:20]})")
    value = row[text_column]
    if not isinstance(value, str):
        raise MissingColumn(f"column {text_column!r} holds {type(value).__name__}, not text")
    text = value.strip()
    if not text:
        raise EmptyDocument(f"column {text_column!r} is empty")
    title = row.get(title_column) if title_column else None
    extra = {c: row.get(c) for c in keep_columns}
    return Document(text=text, title=str(title) if title else first_line_title(text, 120),
                    format=fmt, extra=extra)
