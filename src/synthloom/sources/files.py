"""Plain-file sources: a folder of text/Markdown files, and JSONL rows.

Richer readers (HTML, PDF, DOCX, Parquet, HF datasets) and chunkers build on the same shape:
yield column dicts (or :class:`Output` with provenance meta), and :class:`SourceFailure` for
input that cannot be read, naming the file and the cause, so the run goes on for the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synthloom.core.context import RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import resolve_data_path
from synthloom.core.records import Output
from synthloom.core.registry import register_step
from synthloom.core.steps import SourceFailure, SourceStep, StepConfig


class TextFilesConfig(StepConfig):
    path: str
    extensions: list[str] = [".txt", ".md"]
    #: Files above this size are reported as failures instead of read (bytes).
    max_bytes: int = 20_000_000
    encoding: str = "utf-8"


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
            raise RecipeError(f"source {self.name}: path not found: {root}")
        exts = {e.lower() for e in self.config.extensions}
        files = [root] if root.is_file() else sorted(
            p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)
        for path in files:
            shown = str(path.relative_to(root)) if root.is_dir() else path.name
            failure = self._check(path, shown)
            if failure:
                yield failure
                continue
            try:
                text = path.read_text(encoding=self.config.encoding)
            except (UnicodeDecodeError, OSError) as exc:
                yield SourceFailure(str(path), type(exc).__name__, _short(exc))
                continue
            if not text.strip():
                yield SourceFailure(str(path), "EmptyDocument", "file has no text")
                continue
            title = next((ln.strip().lstrip("# ") for ln in text.splitlines() if ln.strip()), "")
            yield Output(columns={"text": text.strip(), "title": title, "path": shown},
                         meta={"path": str(path)})

    def _check(self, path: Path, shown: str) -> SourceFailure | None:
        size = path.stat().st_size
        if size > self.config.max_bytes:
            return SourceFailure(str(path), "FileTooLarge",
                                 f"{size} bytes exceeds max_bytes={self.config.max_bytes}")
        return None


TABULAR_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}


class RowsConfig(StepConfig):
    #: A JSONL/CSV/Parquet file, a folder of them (recursive, sorted), or an HF dataset folder.
    path: str
    #: Keep only these fields (default: all); a JSON string line becomes column ``text``.
    columns: list[str] | None = None
    #: Rename fields: {old: new}.
    rename: dict[str, str] = {}


@register_step
class TabularRows(SourceStep):
    """Each row becomes a record with all its fields; a broken row is a failure naming
    file:line (or file#row=N), and the run goes on. Streams: memory stays flat."""

    type_name = "rows"
    Config = RowsConfig
    config: RowsConfig

    def read(self, ctx: RunContext) -> Iterator[Output | SourceFailure]:
        from synthloom.sources.document import DocumentError
        from synthloom.sources.tabular import is_hf_dataset_dir, iter_rows

        root = resolve_data_path(self.config.path, ctx.recipe_dir)
        if not root.exists():
            raise RecipeError(f"source {self.name}: path not found: {root}")
        if is_hf_dataset_dir(root):
            files = [(root, "hf")]
        elif root.is_dir():
            files = [(p, TABULAR_SUFFIXES[p.suffix.lower()]) for p in sorted(root.rglob("*"))
                     if p.is_file() and p.suffix.lower() in TABULAR_SUFFIXES]
        else:
            files = [(root, TABULAR_SUFFIXES.get(root.suffix.lower(), "jsonl"))]
        for path, fmt in files:
            try:
                for where, row in iter_rows(path, fmt, self.config.columns or []):
                    if not isinstance(row, dict):  # a DocumentError for this row
                        yield SourceFailure(where, type(row).__name__, str(row))
                        continue
                    yield self._output(where, row, path)
            except (OSError, UnicodeDecodeError, DocumentError) as exc:
                # DocumentError: the file is binary or undecodable (found while sniffing).
                yield SourceFailure(str(path), type(exc).__name__, _short(exc))

    def _output(self, where: str, row: dict[str, Any], path: Path) -> Output | SourceFailure:
        if self.config.columns is not None:
            missing = [c for c in self.config.columns if c not in row]
            if missing:
                return SourceFailure(where, "KeyError", f"missing field(s) {missing}")
            row = {c: row[c] for c in self.config.columns}
        row = {self.config.rename.get(k, k): v for k, v in row.items()}
        return Output(columns=row, meta={"path": str(path), "where": where})


@register_step
class JsonlRows(TabularRows):
    """The same reader under its first name (any tabular file works)."""

    type_name = "jsonl"


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
