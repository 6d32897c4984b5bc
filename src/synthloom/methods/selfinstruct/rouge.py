"""ROUGE-L against a growing pool, fast enough to check every new instruction against all.

Tokenisation follows the ``rouge_score`` package without stemming (lower-case, runs of
``[a-z0-9]``), and the score is ROUGE-L F1 = 2·LCS / (len(a) + len(b)). Each pool entry is
tokenised once. A candidate is compared in two passes:

1. an upper bound for every pool entry at once, from an inverted index (numpy): the LCS of two
   sequences is at most the size of their multiset intersection, so
   ``F1 <= 2·overlap / (len(a) + len(b))``;
2. the exact LCS only for entries whose bound could still beat the best score so far, in
   descending bound order (branch and bound) - most pairs share few words and never get here.

The LCS is the bit-parallel algorithm of Allison-Dix/Hyyrö: one big-int update per token of
the candidate, so a 150-word pair costs ~150 integer operations.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

_TOKEN_RE = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """``rouge_score``'s default tokenizer without stemming."""
    return _TOKEN_RE.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (bit-parallel over ``a``)."""
    if not a or not b:
        return 0
    return _lcs_masks(_match_masks(a), len(a), b)


def _match_masks(a: list[str]) -> dict[str, int]:
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    return masks


def _lcs_masks(masks: dict[str, int], m: int, b: list[str]) -> int:
    full = (1 << m) - 1
    v = full
    for token in b:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return m - v.bit_count()


def rouge_l(a: str | list[str], b: str | list[str]) -> float:
    """ROUGE-L F1 of two texts (or token lists)."""
    ta = tokenize(a) if isinstance(a, str) else a
    tb = tokenize(b) if isinstance(b, str) else b
    if not ta or not tb:
        return 0.0
    return 2.0 * lcs_length(ta, tb) / (len(ta) + len(tb))


@dataclass(frozen=True, slots=True)
class Match:
    """The most similar pool entry: its score, index and text (score 0 and -1: empty pool)."""

    score: float
    index: int
    text: str
    exact_pairs: int = 0


class RougePool:
    """A growing set of texts; ``best(text)`` finds the most ROUGE-L-similar entry."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._masks: list[dict[str, int]] = []
        self._lengths: list[int] = []
        self._vocab: dict[str, int] = {}
        # Inverted index: token id -> (entry indices, counts), grown as Python lists and
        # turned into arrays lazily.
        self._postings: list[tuple[list[int], list[int]]] = []
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.texts)

    def add(self, text: str) -> int:
        tokens = tokenize(text)
        index = len(self.texts)
        self.texts.append(text)
        self._masks.append(_match_masks(tokens))
        self._lengths.append(len(tokens))
        for token, count in Counter(tokens).items():
            tid = self._vocab.setdefault(token, len(self._vocab))
            if tid == len(self._postings):
                self._postings.append(([], []))
            docs, counts = self._postings[tid]
            docs.append(index)
            counts.append(count)
            self._arrays.pop(tid, None)
        return index

    def _posting(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        arrays = self._arrays.get(tid)
        if arrays is None:
            docs, counts = self._postings[tid]
            arrays = (np.asarray(docs, dtype=np.int64), np.asarray(counts, dtype=np.int64))
            self._arrays[tid] = arrays
        return arrays

    def best(self, text: str) -> Match:
        """The exact maximum ROUGE-L F1 of ``text`` against the pool."""
        tokens = tokenize(text)
        n = len(self.texts)
        if not tokens or n == 0:
            return Match(0.0, -1, "")
        overlap = np.zeros(n, dtype=np.int64)
        for token, count in Counter(tokens).items():
            tid = self._vocab.get(token)
            if tid is None:
                continue
            docs, counts = self._posting(tid)
            overlap[docs] += np.minimum(counts, count)
        lengths = np.asarray(self._lengths, dtype=np.float64)
        bound = 2.0 * overlap / np.maximum(lengths + len(tokens), 1.0)
        order = np.argsort(-bound, kind="stable")
        best_score, best_index, exact = 0.0, -1, 0
        for index in order.tolist():
            if bound[index] <= best_score or bound[index] == 0.0:
                break  # no later entry can beat the best exact score found
            exact += 1
            lcs = _lcs_masks(self._masks[index], self._lengths[index], tokens)
            score = 2.0 * lcs / (self._lengths[index] + len(tokens))
            if score > best_score:
                best_score, best_index = score, index
        text_of = self.texts[best_index] if best_index >= 0 else ""
        return Match(best_score, best_index, text_of, exact)
