"""Structure-aware, token-aware chunking with overlap and exact character spans.

The text is cut into units — headings, sentences, list/table lines, fenced code blocks — each a
``[start, end)`` span of the original text. Units are packed greedily up to ``max_tokens``; a
Markdown heading starts a new chunk (once the current one has ``min_tokens``), an overflow cuts at
the last paragraph start when that keeps the chunk at least half full, and the next chunk repeats
the previous one's last units up to ``overlap_tokens`` (never across a heading). A chunk is
``text[char_start:char_end]`` exactly, so its span can be checked against the document.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

TokenCounter = Callable[[str], int]

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
#: A sentence ends at . ! ? (plus closing quotes/brackets) followed by whitespace.
_SENTENCE_END = re.compile(r"[.!?][\"'\u2019\u201d)\]]*\s+")
_LINE_ITEM = re.compile(r"^\s*([-*+]\s|\d+[.)]\s|\|)")


def estimate_tokens(text: str) -> int:
    """A cheap, tokenizer-free count: about 4 characters per token, rounded up.

    Rounding up makes the count of a span at most the sum of the counts of its parts, so a
    chunk packed by summing its units never exceeds the bound under this counter.
    """
    return -(-len(text) // 4)


@dataclass(slots=True)
class Unit:
    start: int
    end: int
    kind: str  # heading | text | line | code
    headings: tuple[str, ...]
    #: First unit of a paragraph/block: a preferred cut point.
    block_start: bool


@dataclass(slots=True)
class Chunk:
    index: int
    char_start: int
    char_end: int
    headings: list[str]
    n_tokens: int


def segment(text: str) -> list[Unit]:
    """Units in text order; every unit is a non-empty, whitespace-trimmed span."""
    units: list[Unit] = []
    stack: list[tuple[int, str]] = []
    for kind, start, end in _blocks(text):
        if kind == "heading":
            match = _HEADING.match(text[start:end])
            assert match is not None
            level = len(match.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, match.group(2).strip()))
        headings = tuple(title for _, title in stack)
        pieces = _split_block(text, kind, start, end)
        for i, (s, e) in enumerate(pieces):
            units.append(Unit(s, e, kind if kind != "para" else "text", headings, i == 0))
    return units


def _blocks(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end): headings, fenced code, and paragraphs separated by blank lines."""
    blocks: list[tuple[str, int, int]] = []
    para_start: int | None = None
    fence_start: int | None = None
    pos = 0
    for line in text.splitlines(keepends=True):
        start, end = pos, pos + len(line.rstrip("\n"))
        pos += len(line)
        stripped = line.strip()
        if fence_start is not None:
            if _FENCE.match(line):
                blocks.append(("code", fence_start, end))
                fence_start = None
            continue
        if _FENCE.match(line):
            if para_start is not None:
                blocks.append(("para", para_start, _rstrip_end(text, start)))
                para_start = None
            fence_start = start
        elif _HEADING.match(stripped) and stripped == line.strip():
            if para_start is not None:
                blocks.append(("para", para_start, _rstrip_end(text, start)))
                para_start = None
            blocks.append(("heading", start + (len(line) - len(line.lstrip())), end))
        elif not stripped:
            if para_start is not None:
                blocks.append(("para", para_start, _rstrip_end(text, start)))
                para_start = None
        elif para_start is None:
            para_start = start + (len(line) - len(line.lstrip()))
    if fence_start is not None:  # an unclosed fence runs to the end
        blocks.append(("code", fence_start, _rstrip_end(text, len(text))))
    if para_start is not None:
        blocks.append(("para", para_start, _rstrip_end(text, len(text))))
    return [(k, s, e) for k, s, e in blocks if e > s]


def _rstrip_end(text: str, end: int) -> int:
    while end > 0 and text[end - 1].isspace():
        end -= 1
    return end


def _split_block(text: str, kind: str, start: int, end: int) -> list[tuple[int, int]]:
    if kind in ("heading", "code"):
        return [(start, end)]
    block = text[start:end]
    lines = block.split("\n")
    if len(lines) > 1 and sum(bool(_LINE_ITEM.match(ln)) for ln in lines) * 2 >= len(lines):
        return _trimmed(text, _line_spans(block, start))  # lists and tables: one line each
    spans, last = [], 0
    for match in _SENTENCE_END.finditer(block):
        spans.append((start + last, start + match.end()))
        last = match.end()
    spans.append((start + last, end))
    return _trimmed(text, spans)


def _line_spans(block: str, offset: int) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for line in block.split("\n"):
        spans.append((offset + pos, offset + pos + len(line)))
        pos += len(line) + 1
    return spans


def _trimmed(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out


def _hard_split(text: str, unit: Unit, max_tokens: int, count: TokenCounter) -> list[Unit]:
    """A unit over the limit (a huge sentence, code block, table row): cut at whitespace."""
    piece = text[unit.start:unit.end]
    if count(piece) <= max_tokens or unit.end - unit.start <= 1:
        return [unit]
    middle = unit.start + (unit.end - unit.start) // 2
    cut = text.rfind(" ", unit.start + 1, middle + 1)
    if cut <= unit.start:
        cut = text.find(" ", middle, unit.end - 1)
    if cut <= unit.start:
        cut = middle  # one giant word: cut between characters
    left, right = _trimmed(text, [(unit.start, cut), (cut, unit.end)]) or [(unit.start, cut)]
    pieces = [Unit(left[0], left[1], unit.kind, unit.headings, unit.block_start),
              Unit(right[0], right[1], unit.kind, unit.headings, False)]
    return [u for p in pieces for u in _hard_split(text, p, max_tokens, count)]


def chunk_text(text: str, *, max_tokens: int, overlap_tokens: int = 0, min_tokens: int = 0,
               count: TokenCounter = estimate_tokens) -> list[Chunk]:
    """Chunks covering ``text`` in order; see the module docstring for the rules."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    units = [p for u in segment(text) for p in _hard_split(text, u, max_tokens, count)]
    if not units:
        return []
    tokens = [count(text[u.start:u.end]) for u in units]
    gaps = [0] + [count(text[units[i - 1].end:units[i].start]) if
                  units[i].start > units[i - 1].end else 0 for i in range(1, len(units))]
    return _Packer(text, units, tokens, gaps, max_tokens, overlap_tokens, min_tokens,
                   count).pack()


class _Packer:
    def __init__(self, text: str, units: list[Unit], tokens: list[int], gaps: list[int],
                 max_tokens: int, overlap: int, min_tokens: int, count: TokenCounter) -> None:
        self.text, self.units, self.tokens, self.gaps = text, units, tokens, gaps
        self.max, self.overlap, self.min, self.count = max_tokens, overlap, min_tokens, count
        self.spans: list[tuple[int, int]] = []  # unit index ranges [a, b)

    def size(self, a: int, b: int) -> int:
        """Upper bound of the tokens of units a..b-1 with the whitespace between them."""
        return sum(self.tokens[a:b]) + sum(self.gaps[a + 1:b])

    def pack(self) -> list[Chunk]:
        a, i = 0, 1
        while i < len(self.units):
            if self.units[i].kind == "heading" and self.size(a, i) >= self.min:
                self.spans.append((a, i))  # a section starts a chunk (no overlap across it)
                a = i
            elif self.size(a, i + 1) > self.max:
                cut = self._cut(a, i)
                self.spans.append((a, cut))
                a = self._overlap_start(a, cut, i + 1)
                continue  # unit i again, against the new chunk
            i += 1
        self.spans.append((a, len(self.units)))
        self._merge_small_tail()
        return [self._chunk(n, a, b) for n, (a, b) in enumerate(self.spans)]

    def _cut(self, a: int, i: int) -> int:
        """Where to end the chunk a..i-1: the last block start if it keeps it half full."""
        for j in range(i - 1, a, -1):
            if self.units[j].block_start and self.size(a, j) * 2 >= self.max:
                return j
            if self.size(a, j) * 2 < self.max:
                break
        cut = i
        while cut - 1 > a and self.units[cut - 1].kind == "heading":
            cut -= 1  # never end a chunk on its next section's heading
        return cut

    def _overlap_start(self, a: int, cut: int, upto: int) -> int:
        """First unit of the next chunk: repeat tail units of a..cut-1 within the overlap."""
        start = cut
        while (start - 1 > a and self.units[start - 1].kind != "heading"
               and self.units[start - 1].headings == self.units[cut - 1].headings
               and self.size(start - 1, cut) <= self.overlap
               and self.size(start - 1, upto) <= self.max):
            start -= 1
        return start

    def _merge_small_tail(self) -> None:
        if len(self.spans) < 2:
            return
        (a, _), (c, d) = self.spans[-2], self.spans[-1]
        if self.size(c, d) < self.min and self.size(a, d) <= self.max:
            self.spans[-2:] = [(a, d)]

    def _chunk(self, index: int, a: int, b: int) -> Chunk:
        start, end = self.units[a].start, self.units[b - 1].end
        return Chunk(index=index, char_start=start, char_end=end,
                     headings=list(self.units[a].headings),
                     n_tokens=self.count(self.text[start:end]))
