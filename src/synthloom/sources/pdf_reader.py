"""PDF reader (pypdf): text per page, with each page's character span kept for provenance.

A PDF with no text layer (scanned, image-only) is an EmptyDocument failure that says so, never
a silent empty document; an encrypted PDF that an empty password does not open is an
EncryptedDocument failure.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any

from synthloom.core.errors import SynthloomError
from synthloom.sources.decode import clean_text
from synthloom.sources.document import (
    CorruptDocument,
    Document,
    EmptyDocument,
    EncryptedDocument,
    first_line_title,
)

PAGE_SEPARATOR = "\n\n"
#: Metadata titles that are really file names left by the producing tool ("apssamp.dvi").
_FILE_TITLE = re.compile(r"\.(dvi|tex|pdf|docx?|ps|indd|qxd)$|^untitled", re.IGNORECASE)


def _pypdf() -> Any:
    try:
        import pypdf
    except ImportError as exc:  # pragma: no cover - a core dependency; guards broken installs
        raise SynthloomError(f"reading PDF needs pypdf ({exc}); pip install 'pypdf>=5.0'") from None
    return pypdf


def read_pdf(data: bytes) -> Document:
    pypdf = _pypdf()
    # pypdf logs every recoverable oddity of real-world files; the failures we raise suffice.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            _decrypt(reader)
        pages = [page.extract_text() or "" for page in reader.pages]
    except (EncryptedDocument, SynthloomError):
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types on damaged files
        if type(exc).__name__ == "DependencyError":
            raise _needs_crypto(exc) from None
        if type(exc).__name__ == "FileNotDecryptedError":
            raise EncryptedDocument(f"PDF is encrypted: {exc}") from None
        raise CorruptDocument(f"PDF cannot be parsed ({type(exc).__name__}: {exc})") from None
    if not pages:
        raise CorruptDocument("PDF has no pages (damaged or truncated file)")
    texts = [clean_text(p, nfkc=True).strip() for p in pages]
    if not any(texts):
        raise EmptyDocument(
            f"PDF has no text layer on any of its {len(pages)} page(s) (scanned or image-only; "
            "run OCR first)")
    text, spans = _join_pages(texts)
    return Document(text=text, title=_title(reader, text), format="pdf", page_spans=spans)


def _needs_crypto(exc: Exception) -> EncryptedDocument:
    # pypdf raises this when the AES key or a stream needs a crypto library that is not installed
    return EncryptedDocument(f"PDF is encrypted and cannot be decrypted here ({exc}); "
                             "pip install 'cryptography>=3.1'")


def _decrypt(reader: Any) -> None:
    """Open an encrypted PDF with the empty user password, or raise EncryptedDocument saying why.

    A missing crypto library and a real password are different fixes for the user, so the
    message tells them apart."""
    try:
        opened = bool(reader.decrypt(""))
    except Exception as exc:  # noqa: BLE001 - unsupported algorithm or missing crypto library
        if type(exc).__name__ == "DependencyError":
            raise  # read_pdf's handler names the missing library
        raise EncryptedDocument(
            f"PDF is encrypted and cannot be decrypted ({type(exc).__name__}: {exc})") from None
    if not opened:
        raise EncryptedDocument("PDF is encrypted with a password (not opened by an empty "
                                "password); decrypt it first")


def _join_pages(texts: list[str]) -> tuple[str, list[list[int]]]:
    """Pages joined by a blank line; span i is page i+1's text (empty pages get empty spans)."""
    parts: list[str] = []
    spans: list[list[int]] = []
    pos = 0
    for page_text in texts:
        if parts and page_text:
            parts.append(PAGE_SEPARATOR)
            pos += len(PAGE_SEPARATOR)
        spans.append([pos, pos + len(page_text)])
        parts.append(page_text)
        pos += len(page_text)
    return "".join(parts), spans


def _title(reader: Any, text: str) -> str:
    try:
        meta_title = str((reader.metadata or {}).get("/Title") or "").strip()
    except Exception:  # noqa: BLE001 - broken info dictionaries are common
        meta_title = ""
    if meta_title and not _FILE_TITLE.search(meta_title):
        return meta_title
    return first_line_title(text)


def pages_for_span(page_spans: list[list[int]], start: int, end: int) -> list[int]:
    """1-based numbers of the pages whose text overlaps ``[start, end)``."""
    return [i + 1 for i, (s, e) in enumerate(page_spans) if s < end and start < e and s < e]
