r"""The one text-normalisation module (quality and methods use it), and the hashing helpers of
dedup, decontamination and diversity: stable 64-bit word hashes and vectorised word n-gram
hashes (numpy, uint64 arithmetic).

Two normalisations, named by what they do:

- ``fold_text`` / ``fold_tokens``: NFKC + case-folding; tokens are ``\w+`` (``snake_case``
  stays one token). Exact-duplicate keys, shingles, n-gram statistics.
- ``plain_text`` / ``plain_words``: NFKC + lower case; words are runs of letters and digits
  (``_`` and punctuation split). Word overlap, question comparison, entity keys.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

import numpy as np

WORD_RE = re.compile(r"\w+", re.UNICODE)
_PLAIN_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)
_PUNCT_SPACE_RE = re.compile(r"[\W_]+", re.UNICODE)

# Odd 64-bit constants for polynomial n-gram hashing and the splitmix64 finaliser.
_POLY = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def fold_text(text: str) -> str:
    """NFKC, case-folded, punctuation removed, whitespace collapsed (for exact-dup hashing)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCT_SPACE_RE.sub(" ", text).split())


def fold_tokens(text: str) -> list[str]:
    """Normalised word tokens (NFKC, case-folded, ``\\w+``)."""
    return WORD_RE.findall(unicodedata.normalize("NFKC", text).casefold())


def plain_words(text: str) -> list[str]:
    """Runs of letters and digits, NFKC, lower-cased (``"Foo_bar's"`` -> foo, bar, s)."""
    return _PLAIN_WORD_RE.findall(unicodedata.normalize("NFKC", text).lower())


def plain_text(text: str) -> str:
    """``plain_words`` joined by one space: case, punctuation and spacing ignored."""
    return " ".join(plain_words(text))


def word_spans(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Normalised word tokens with their (start, end) offsets in ``text``.

    NFKC can change lengths, so tokens come from the case-folded original; offsets stay true.
    """
    tokens, spans = [], []
    for match in WORD_RE.finditer(text):
        tokens.append(unicodedata.normalize("NFKC", match.group(0)).casefold())
        spans.append(match.span())
    return tokens, spans


class WordHasher:
    """Stable 64-bit hashes of words (blake2b), memoised: a corpus repeats its vocabulary."""

    def __init__(self, max_cache: int = 2_000_000) -> None:
        self._cache: dict[str, int] = {}
        self._max = max_cache

    def hash_words(self, tokens: list[str]) -> np.ndarray:
        cache = self._cache
        out = np.empty(len(tokens), dtype=np.uint64)
        for i, token in enumerate(tokens):
            value = cache.get(token)
            if value is None:
                value = int.from_bytes(
                    hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")
                if len(cache) < self._max:
                    cache[token] = value
            out[i] = value
        return out


def mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads every input bit over the 64 output bits."""
    z = values.astype(np.uint64, copy=True)
    z ^= z >> np.uint64(30)
    z *= _MIX1
    z ^= z >> np.uint64(27)
    z *= _MIX2
    z ^= z >> np.uint64(31)
    return z


def ngram_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """Hashes of every contiguous word n-gram (length ``len - n + 1``; one hash of the whole
    sequence when it is shorter than ``n`` and non-empty, so short texts still have a shingle)."""
    count = len(word_hashes)
    if count == 0:
        return np.empty(0, dtype=np.uint64)
    if count < n:
        n = count
    width = count - n + 1
    acc = np.zeros(width, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            acc = acc * _POLY + word_hashes[j : j + width]
        return mix64(acc ^ np.uint64(n))


def text_of(record: dict[str, Any], column: str | list[str]) -> str:
    """The text a quality step looks at: one column, or several joined by newlines.

    Non-string values (lists, dicts) are rendered as JSON-ish text via ``str``; a missing column
    is an error (the executor counts it as this record's failure).
    """
    columns = [column] if isinstance(column, str) else list(column)
    parts = []
    for name in columns:
        if name not in record or record[name] is None:
            raise KeyError(f"record has no column {name!r}")
        value = record[name]
        parts.append(value if isinstance(value, str) else str(value))
    return "\n".join(parts)
