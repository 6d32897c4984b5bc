"""What a reader returns (a Document) and why it could not (DocumentError subclasses).

The error's class name becomes the failure's ``error_class`` in failed.jsonl, so each cause
has its own class: a user can count encrypted PDFs apart from scanned ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from synthloom.core.fingerprint import text_hash


class DocumentError(Exception):
    """A file (or row) that cannot become a document; the message names the cause."""


class FileTooLarge(DocumentError):
    pass


class BinaryContent(DocumentError):
    pass


class DecodeFailed(DocumentError):
    pass


class EmptyDocument(DocumentError):
    pass


class EncryptedDocument(DocumentError):
    pass


class CorruptDocument(DocumentError):
    pass


class UnsupportedFormat(DocumentError):
    pass


class MissingColumn(DocumentError):
    pass


class NestedTooDeep(DocumentError):
    """A JSON row nested deeper than the run can hash and write (or Python can parse)."""


class DanglingSymlink(DocumentError):
    """A symbolic link whose target does not exist (or a link loop)."""


class OutsideFolder(DocumentError):
    """A symbolic link out of the source's folder (read only with ``follow_symlinks``)."""


class ForbiddenPath(DocumentError):
    """A path under /proc, /sys or /dev: kernel state and devices, never corpus text."""


class SpecialFile(DocumentError):
    """A FIFO, socket or device: not opened (a FIFO would block the reader forever)."""


class UnreadableFile(DocumentError):
    """An entry that cannot be examined (stat or listing failed)."""


@dataclass
class Document:
    """Extracted text plus what the chunker and provenance need."""

    text: str
    title: str
    format: str
    #: PDFs: per-page ``[char_start, char_end)`` spans in ``text`` (page n is index n-1).
    page_spans: list[list[int]] | None = None
    #: Extra columns (tabular rows: the ``keep_columns``).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def doc_id(self) -> str:
        return text_hash(self.text)

    def columns(self, path: str) -> dict[str, Any]:
        cols: dict[str, Any] = {"text": self.text, "title": self.title, "path": path,
                                "format": self.format, "doc_id": self.doc_id}
        if self.page_spans is not None:
            cols["n_pages"] = len(self.page_spans)
            cols["page_spans"] = self.page_spans
        cols.update(self.extra)
        return cols


def first_line_title(text: str, limit: int = 200) -> str:
    """The first non-empty line, without Markdown heading marks, at most ``limit`` chars."""
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:limit]
    return ""


def require_text(text: str, what: str) -> str:
    if not text.strip():
        raise EmptyDocument(f"{what} has no text")
    return text
