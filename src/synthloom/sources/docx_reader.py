"""DOCX reader (python-docx): body paragraphs and tables in document order, as Markdown-ish text.

Heading styles become ``#`` lines (so the chunker splits on them), list paragraphs ``- `` items,
tables ``| a | b |`` rows; a merged cell is written once, a nested table inside its cell.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from typing import Any

from synthloom.core.errors import SynthloomError
from synthloom.sources.decode import clean_text, sniff_magic
from synthloom.sources.document import (
    CorruptDocument,
    Document,
    EmptyDocument,
    EncryptedDocument,
    FileTooLarge,
    first_line_title,
)

_HEADING = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: python-docx inflates every part into memory: a zip bomb (a 1 MB file holding a 1 GB
#: document.xml) would take the whole run down. Real DOCX files inflate ~10x to a few MB.
MAX_INFLATED_BYTES = 256 * 1024 * 1024


def _python_docx() -> Any:
    try:
        import docx
    except ImportError as exc:  # pragma: no cover - a core dependency; guards broken installs
        raise SynthloomError(
            f"reading DOCX needs python-docx ({exc}); pip install 'python-docx>=1.1'") from None
    return docx


def read_docx(data: bytes) -> Document:
    if data.startswith(OLE_MAGIC):
        raise EncryptedDocument("not a DOCX zip but an OLE2 container: a password-protected "
                                "DOCX or a legacy .doc file")
    if not data.startswith(b"PK"):
        what = sniff_magic(data) or "not a ZIP container"
        raise CorruptDocument(f"not a DOCX file: content is {what}")
    _refuse_zip_bomb(data)
    docx = _python_docx()
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = [b for b in (_block(item) for item in document.iter_inner_content()) if b]
        core_title = (document.core_properties.title or "").strip()
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise CorruptDocument(f"DOCX cannot be opened ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # noqa: BLE001 - python-docx / lxml raise many types on damage
        raise CorruptDocument(f"DOCX cannot be parsed ({type(exc).__name__}: {exc})") from None
    text = clean_text("\n\n".join(blocks)).strip()
    if not text:
        raise EmptyDocument("DOCX has no text in its paragraphs or tables")
    return Document(text=text, title=core_title or _first_heading(blocks) or
                    first_line_title(text), format="docx")


def _refuse_zip_bomb(data: bytes) -> None:
    """Refuse a DOCX that inflates past MAX_INFLATED_BYTES, before python-docx inflates it.

    The declared sizes are checked first; then each member is inflated in 1 MB reads, which
    zipfile stops at the declared size (a member that hides more fails its CRC check), so a
    lying header cannot make the real read below inflate more than was declared.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            inflated = sum(info.file_size for info in members)
            if inflated > MAX_INFLATED_BYTES:
                raise FileTooLarge(f"DOCX inflates to {inflated} bytes from {len(data)} (limit "
                                   f"{MAX_INFLATED_BYTES}): refused as a likely zip bomb")
            for info in members:
                with archive.open(info) as member:
                    while member.read(1 << 20):
                        pass
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError,
            ValueError, OSError) as exc:
        raise CorruptDocument(f"DOCX cannot be opened ({type(exc).__name__}: {exc})") from None


def _block(item: Any) -> str:
    if hasattr(item, "rows"):
        return _table(item)
    return _paragraph(item)


def _paragraph(paragraph: Any) -> str:
    text = " ".join(paragraph.text.split())
    if not text:
        return ""
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    if style.lower() == "title":
        return f"# {text}"
    match = _HEADING.match(style.strip())
    if match:
        return f"{'#' * min(6, max(1, int(match.group(1))))} {text}"
    if "list" in style.lower():
        return f"- {text}"
    return text


def _table(table: Any) -> str:
    return "\n".join("| " + " | ".join(cells) + " |" for cells in _rows(table))


def _rows(table: Any) -> list[list[str]]:
    rows = []
    for row in table.rows:
        cells, seen = [], []
        for cell in row.cells:
            # Merged cells come back once per grid column they span: write them once.
            if any(cell._tc is tc for tc in seen):
                continue
            seen.append(cell._tc)
            cells.append(_cell(cell))
        if any(cells):
            rows.append(cells)
    return rows


def _cell(cell: Any) -> str:
    parts = [" ".join(p.text.split()) for p in cell.paragraphs]
    for nested in cell.tables:
        parts.append("[" + "; ".join(", ".join(cells) for cells in _rows(nested)) + "]")
    return " ".join(p for p in parts if p).replace("|", "/")


def _first_heading(blocks: list[str]) -> str:
    for block in blocks:
        if block.startswith("#"):
            return block.lstrip("#").strip()
    return ""
