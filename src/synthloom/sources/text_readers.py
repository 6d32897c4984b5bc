"""Plain text, Markdown and HTML readers.

HTML keeps only the main content (trafilatura), rendered as Markdown so that the title and the
section headings survive as ``#`` lines the chunker splits on.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from synthloom.core.errors import SynthloomError
from synthloom.sources.decode import clean_text, decode_text
from synthloom.sources.document import Document, EmptyDocument, first_line_title, require_text

_TITLE_TAG = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
#: Sphinx permalink marks and similar anchors that trail headings.
_ANCHORS = str.maketrans("", "", "¶")


def read_plain(data: bytes, fmt: str = "text") -> Document:
    text, _ = decode_text(data)
    text = require_text(clean_text(text).strip(), "file")
    title = first_line_title(text)
    if fmt == "markdown":
        heading = _MD_HEADING.search(text)
        title = heading.group(1).strip() if heading else title
    return Document(text=text, title=title, format=fmt)


def _trafilatura() -> Any:
    try:
        import trafilatura
    except ImportError as exc:  # pragma: no cover - a core dependency; guards broken installs
        raise SynthloomError(
            f"reading HTML needs trafilatura ({exc}); pip install 'trafilatura>=2.0' "
            "'lxml_html_clean>=0.4'") from None
    return trafilatura


def read_html(data: bytes) -> Document:
    html, _ = decode_text(data)
    trafilatura = _trafilatura()
    # trafilatura logs a warning for every page it finds nothing in; the failure says it.
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    body = trafilatura.extract(
        html, output_format="markdown", include_formatting=True, include_tables=True,
        include_links=False, include_images=False, include_comments=False, favor_recall=True,
    )
    text = clean_text(body or "").translate(_ANCHORS).strip()
    if not text:
        raise EmptyDocument("HTML has no main content (only markup, scripts or navigation)")
    title = _html_title(trafilatura, html, data)
    if title and not text.startswith("#"):
        # Keep the page title as the top heading: chunks then carry it in their heading path.
        text = f"# {title}\n\n{text}"
    return Document(text=text, title=title or first_line_title(text), format="html")


def _html_title(trafilatura: Any, html: str, data: bytes) -> str:
    meta = trafilatura.extract_metadata(html)
    title = (getattr(meta, "title", None) or "").translate(_ANCHORS).strip()
    if not title:
        match = _TITLE_TAG.search(data)
        if match:
            title = match.group(1).decode("utf-8", "replace").strip()
    return re.sub(r"\s+", " ", title)
