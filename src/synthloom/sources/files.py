"""Plain-file sources: a folder of text/Markdown files, and JSONL rows.

Richer readers (HTML, PDF, DOCX, Parquet, HF datasets) and chunkers build on the same shape:
yield column dicts (or :class:`Output` with provenance meta), and :class:`SourceFailure` for
input that cannot be read, naming the file and the cause, so the run goes on for the rest.
"""

from __future__ import annotations

import json
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


class JsonlConfig(StepConfig):
    path: str
    #: Keep only these fields (default: all); a string value becomes column ``text``.
    columns: list[str] | None = None
    #: Rename fields: {old: new}.
    rename: dict[str, str] = {}


@register_step
class JsonlRows(SourceStep):
    """Each line of a JSONL file becomes a record; a broken line is a failure naming file:line."""

    type_name = "jsonl"
    Config = JsonlConfig
    config: JsonlConfig

    def read(self, ctx: RunContext) -> Iterator[Output | SourceFailure]:
        path = resolve_data_path(self.config.path, ctx.recipe_dir)
        if not path.is_file():
            raise RecipeError(f"source {self.name}: file not found: {path}")
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    row: Any = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield SourceFailure(where, "JSONDecodeError", str(exc))
                    continue
                if isinstance(row, str):
                    row = {"text": row}
                if not isinstance(row, dict):
                    yield SourceFailure(where, "TypeError",
                                        f"expected an object, got {type(row).__name__}")
                    continue
                if self.config.columns is not None:
                    missing = [c for c in self.config.columns if c not in row]
                    if missing:
                        yield SourceFailure(where, "KeyError", f"missing field(s) {missing}")
                        continue
                    row = {c: row[c] for c in self.config.columns}
                row = {self.config.rename.get(k, k): v for k, v in row.items()}
                yield Output(columns=row, meta={"path": str(path), "line": number})


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
