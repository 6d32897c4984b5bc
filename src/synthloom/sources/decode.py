"""Bytes to text, refusing binary content: BOM, UTF-8, then Latin-1 only if it looks like text.

A binary file renamed ``.txt`` must fail with a clear cause instead of producing garbage, so
the decoder sniffs magic numbers and NUL/control bytes before it decodes anything.
"""

from __future__ import annotations

import codecs
import unicodedata

from synthloom.sources.document import BinaryContent, DecodeFailed

#: Leading bytes of common binary formats (what a mislabelled file most often is).
MAGIC: list[tuple[bytes, str]] = [
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (DOCX/XLSX/JAR...)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an OLE2 file (legacy .doc/.xls or an encrypted Office file)"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x7fELF", "an ELF executable"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"PAR1", "a Parquet file"),
    (b"ARROW1", "an Arrow file"),
]

_BOMS: list[tuple[bytes, str]] = [
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]

#: At most this share of control characters (other than tab/newlines/form feed) in real text.
MAX_CONTROL_RATIO = 0.01
#: A Latin-1 fallback is accepted only when at most this share of characters is non-ASCII.
MAX_HIGH_RATIO = 0.3
SNIFF_BYTES = 65536


def sniff_magic(data: bytes) -> str | None:
    """What binary format ``data`` starts with, or None."""
    for magic, what in MAGIC:
        if data.startswith(magic):
            return what
    return None


def bom_encoding(data: bytes) -> str | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    return None


def control_ratio(text: str) -> float:
    if not text:
        return 0.0
    bad = sum(1 for ch in text if ch not in "\t\n\r\f" and unicodedata.category(ch) == "Cc")
    return bad / len(text)


def decode_text(data: bytes) -> tuple[str, str]:
    """``(text, encoding)``; raises BinaryContent or DecodeFailed with the cause."""
    encoding = bom_encoding(data)
    if encoding is not None:
        try:
            return _checked(data.decode(encoding), encoding), encoding
        except UnicodeDecodeError as exc:
            raise DecodeFailed(f"has a {encoding} byte-order mark but does not decode: "
                               f"{exc.reason} at byte {exc.start}") from None
    what = sniff_magic(data)
    if what is not None:
        raise BinaryContent(f"content is {what}, not text")
    head = data[:SNIFF_BYTES]
    if b"\x00" in head:
        raise BinaryContent(f"content has NUL bytes ({head.count(0)} in the first "
                            f"{len(head)} bytes): binary, not text")
    try:
        return _checked(data.decode("utf-8"), "utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        return _single_byte(data, utf8_error)


def _single_byte(data: bytes, utf8_error: UnicodeDecodeError) -> tuple[str, str]:
    # Latin-1 decodes every byte sequence, so it is only a fallback for text-looking content.
    # cp1252 first: it is what most "Latin-1" files really are (curly quotes in 0x80-0x9F).
    for encoding in ("cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        sample = text[:SNIFF_BYTES]
        high = sum(1 for ch in sample if ord(ch) > 127) / max(1, len(sample))
        if high <= MAX_HIGH_RATIO and control_ratio(sample) <= MAX_CONTROL_RATIO:
            return text, encoding
    raise DecodeFailed(
        f"not UTF-8 ({utf8_error.reason} at byte {utf8_error.start}) and does not look like "
        "Latin-1 text either (too many control or non-ASCII bytes)")


def _checked(text: str, encoding: str) -> str:
    ratio = control_ratio(text[:SNIFF_BYTES])
    if ratio > MAX_CONTROL_RATIO:
        raise BinaryContent(f"decodes as {encoding} but {ratio:.1%} of the characters are "
                            "control characters: binary, not text")
    return text


def clean_text(text: str, nfkc: bool = False) -> str:
    """Unix newlines, no control characters; NFKC on request (PDF ligatures such as 'ﬁ')."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if nfkc:
        text = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in text
                   if ch in "\t\n" or unicodedata.category(ch) != "Cc")
