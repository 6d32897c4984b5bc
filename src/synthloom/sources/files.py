"""Plain-file sources: a folder of text/Markdown files, and JSONL rows.

Richer readers (HTML, PDF, DOCX, Parquet, HF datasets) and chunkers build on the same shape:
yield column dicts (or :class:`Output` with provenance meta), and :class:`SourceFailure` for
input that cannot be read, naming the file and the cause, so the run goes on for the rest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from synthloom.core.context import RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import resolve_data_path
from synthloom.core.records import Output
from synthloom.core.registry import register_step
from synthloom.core.steps import SourceFailure, SourceStep, StepConfig
from synthloom.sources.document import DocumentError
from synthloom.sources.fsguard import Entry, refusal, root_refusal, safe_str, shown, walk_tree


class TextFilesConfig(StepConfig):
    #: A text file or a folder (searched recursively); ``pkg:`` names a shipped one.
    path: str
    #: File suffixes read from a folder (case-insensitive).
    extensions: list[str] = [".txt", ".md"]
    #: Files above this size are reported as failures instead of read (bytes).
    max_bytes: int = 20_000_000
    #: Text encoding of the files.
    encoding: str = "utf-8"
    #: Read symbolic links that lead out of the folder (never into /proc, /sys or /dev).
    follow_symlinks: bool = False


@register_step
class TextFiles(SourceStep):
    """Each file of a folder (recursive, sorted) or a single file becomes one document.

    Columns: ``text``, ``title`` (first non-empty line), ``path`` (relative to the folder).
    """

    type_name = "text_files"
    Config = TextFilesConfig
    config: TextFilesConfig

    def read(self, ctx: RunContext) -> Iterator[Output | SourceFailure]:
        root = resolve_data_path(self.config.path, ctx.recipe_dir)
        if not root.exists():
            raise RecipeError(f"source {self.name}: path not found: {shown(root)}")
        exts = {e.lower() for e in self.config.extensions}
        for path, refused in checked_inputs(root, self.config.follow_symlinks,
                                            lambda p: p.suffix.lower() in exts):
            if refused is not None:
                yield failure(path, refused)
                continue
            name = shown(path.relative_to(root)) if root.is_dir() else shown(path.name)
            too_large = self._check(path)
            if too_large:
                yield too_large
                continue
            try:
                text = path.read_text(encoding=self.config.encoding)
            except (UnicodeDecodeError, OSError) as exc:
                yield SourceFailure(shown(path), type(exc).__name__, _short(exc))
                continue
            # NUL is no whitespace to str.strip(): a file of NUL bytes (a preallocated or
            # truncated download) must not become a document, nor a lone byte-order mark.
            if not text.strip().strip("\x00\ufeff").strip():
                yield SourceFailure(shown(path), "EmptyDocument",
                                    "empty / binary file: no text (only whitespace or NUL bytes)")
                continue
            if "\x00" in text:
                yield SourceFailure(shown(path), "BinaryContent",
                                    f"content has NUL bytes ({text.count(chr(0))}): binary, "
                                    "not text")
                continue
            title = next((ln.strip().lstrip("# ") for ln in text.splitlines() if ln.strip()), "")
            yield Output(columns={"text": text.strip(), "title": title, "path": name},
                         meta={"path": shown(path)})

    def _check(self, path: Path) -> SourceFailure | None:
        size = path.stat().st_size
        if size > self.config.max_bytes:
            return SourceFailure(shown(path), "FileTooLarge",
                                 f"{size} bytes exceeds max_bytes={self.config.max_bytes}")
        return None


def checked_inputs(root: Path, follow_symlinks: bool, wanted: Callable[[Path], bool],
                   ) -> Iterator[Entry]:
    """The files of ``root`` (a folder, recursive and sorted, or one file) that ``wanted``
    keeps, each with None or why it must not be opened (a link out of the folder, into /proc,
    dangling; a FIFO, socket or device). Folder links refused up front are always listed."""
    refused = root_refusal(root)
    if refused is not None:
        yield root, refused
        return
    if not root.is_dir():
        yield root, refusal(root, None, follow_symlinks)
        return
    folder = os.path.realpath(root)
    for path, why in walk_tree(root, follow_symlinks=follow_symlinks):
        if why is not None:
            yield path, why
        elif wanted(path):
            yield path, refusal(path, folder, follow_symlinks)


def failure(where: Path | str, error: DocumentError) -> SourceFailure:
    """A failure row naming ``where`` (escaped) and the cause."""
    return SourceFailure(shown(where), type(error).__name__, safe_str(str(error)))


TABULAR_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}


class RowsConfig(StepConfig):
    #: A JSONL/CSV/Parquet file, a folder of them (recursive, sorted), or an HF dataset folder.
    path: str
    #: Keep only these fields (default: all); a JSON string line becomes column ``text``.
    columns: list[str] | None = None
    #: Rename fields: {old: new}.
    rename: dict[str, str] = {}
    #: Folders: read symbolic links that lead out of the folder (never into /proc, /sys, /dev).
    follow_symlinks: bool = False


@register_step
class TabularRows(SourceStep):
    """Each row becomes a record with all its fields; a broken row is a failure naming
    file:line (or file#row=N), and the run goes on. Streams: memory stays flat."""

    type_name = "rows"
    Config = RowsConfig
    config: RowsConfig

    def read(self, ctx: RunContext) -> Iterator[Output | SourceFailure]:
        from synthloom.sources.tabular import is_hf_dataset_dir, iter_rows

        root = resolve_data_path(self.config.path, ctx.recipe_dir)
        if not root.exists():
            raise RecipeError(f"source {self.name}: path not found: {shown(root)}")
        if is_hf_dataset_dir(root):
            files: Iterator[Entry] = iter([(root, root_refusal(root))])
        else:
            files = checked_inputs(root, self.config.follow_symlinks,
                                   lambda p: p.suffix.lower() in TABULAR_SUFFIXES)
        for path, refused in files:
            if refused is not None:
                yield failure(path, refused)
                continue
            fmt = "hf" if path == root and is_hf_dataset_dir(root) else \
                TABULAR_SUFFIXES.get(path.suffix.lower(), "jsonl")
            try:
                for where, row in iter_rows(path, fmt, self.config.columns or []):
                    if not isinstance(row, dict):  # a DocumentError for this row
                        yield SourceFailure(where, type(row).__name__, str(row))
                        continue
                    yield self._output(where, row, path)
            except (OSError, UnicodeDecodeError, DocumentError) as exc:
                # DocumentError: the file is binary or undecodable (found while sniffing).
                yield SourceFailure(shown(path), type(exc).__name__, _short(exc))

    def _output(self, where: str, row: dict[str, Any], path: Path) -> Output | SourceFailure:
        if self.config.columns is not None:
            missing = [c for c in self.config.columns if c not in row]
            if missing:
                return SourceFailure(where, "KeyError", f"missing field(s) {missing}")
            row = {c: row[c] for c in self.config.columns}
        row = {self.config.rename.get(k, k): v for k, v in row.items()}
        return Output(columns=row, meta={"path": shown(path), "where": where})


@register_step
class JsonlRows(TabularRows):
    """The same reader under its first name (any tabular file works)."""

    type_name = "jsonl"


def _short(exc: BaseException) -> str:
    return safe_str(str(exc).splitlines()[0][:300]) if str(exc) else type(exc).__name__
