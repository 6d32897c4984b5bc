"""``docqa_dedup_questions``: questions deduplicated within each document (a global step).

Two questions of one document are duplicates when they are equal after normalisation (case,
punctuation, spacing) or when their word sets have a Jaccard similarity of at least
``jaccard``. The first one (in input order) is kept; each later one is dropped with a reason
that names the kept record and its question.

A question is compared only with the kept questions that can reach the threshold (prefix
filtering: with words ordered rarest first, two sets of Jaccard >= t share a word among the
first ``|A| - ceil(t |A|) + 1`` of each), so ``group_by: null`` over thousands of questions is
not a comparison of every pair; the kept record a drop names is the same as with a full scan.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from pydantic import Field

from synthloom.core.context import RunContext
from synthloom.core.records import META, ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import GlobalStep, StepConfig
from synthloom.methods.common.overlap import jaccard
from synthloom.quality.text import plain_text

#: A kept question: normalised text, word set, record id, original text.
_Kept = tuple[str, set[str], str, str]


class DedupQuestionsConfig(StepConfig):
    #: Column with the question compared.
    column: str = "question"
    #: Records are compared only within the same value of this column (None: all together).
    group_by: str | None = "doc_id"
    #: Near-duplicate threshold on word-set Jaccard similarity (above 1: exact only).
    jaccard: float = Field(default=0.8, ge=0.0)


@register_step
class DedupQuestions(GlobalStep):
    type_name = "docqa_dedup_questions"
    Config = DedupQuestionsConfig
    config: DedupQuestionsConfig

    def reads(self) -> list[str] | None:
        return None  # drop reasons name kept record ids: key on everything

    async def process_all(self, records: list[dict[str, Any]],
                          ctx: RunContext) -> list[ItemResult]:
        cfg = self.config
        norms = [plain_text(q) if isinstance(q := r.get(cfg.column), str) and q.strip() else None
                 for r in records]
        # Document frequency over this input: the rarest words make the shortest prefixes.
        frequency = Counter(t for norm in norms if norm for t in set(norm.split()))
        kept: dict[Any, _KeptIndex] = {}
        results = []
        for record, norm in zip(records, norms, strict=True):
            if norm is None:
                results.append(ItemResult.drop(f"no question in column {cfg.column!r}"))
                continue
            question = record[cfg.column]
            group = record.get(cfg.group_by) if cfg.group_by else None
            tokens = set(norm.split())
            index = kept.setdefault(group, _KeptIndex(cfg.jaccard, frequency))
            reason = _duplicate_of(norm, tokens, index.candidates(norm, tokens), cfg.jaccard,
                                   group)
            if reason:
                results.append(ItemResult.drop(reason))
                continue
            index.add((norm, tokens, record[META]["id"], question))
            results.append(ItemResult(outputs=[Output(columns={})]))
        return results


class _KeptIndex:
    """The kept questions of one group, findable by the words of their prefixes."""

    def __init__(self, threshold: float, frequency: Counter[str]) -> None:
        self.threshold = threshold
        self.frequency = frequency
        self.kept: list[_Kept] = []
        self.by_norm: dict[str, int] = {}
        self.postings: dict[str, list[int]] = {}

    def _prefix(self, tokens: set[str]) -> list[str]:
        ordered = sorted(tokens, key=lambda t: (self.frequency[t], t))
        # A hair below t |A| before rounding up: a float error can only lengthen the prefix.
        need = math.ceil(self.threshold * len(ordered) - 1e-9)
        return ordered[: len(ordered) - max(need, 1) + 1]

    def candidates(self, norm: str, tokens: set[str]) -> list[_Kept]:
        """Every kept question that can be equal or similar enough, in kept order."""
        if self.threshold <= 0:
            return self.kept  # every pair reaches a threshold of 0
        found = set()
        if norm in self.by_norm:
            found.add(self.by_norm[norm])
        if self.threshold <= 1:
            for token in self._prefix(tokens):
                found.update(self.postings.get(token, ()))
        return [self.kept[i] for i in sorted(found)]

    def add(self, item: _Kept) -> None:
        i = len(self.kept)
        self.kept.append(item)
        self.by_norm.setdefault(item[0], i)
        if 0 < self.threshold <= 1:
            for token in self._prefix(item[1]):
                self.postings.setdefault(token, []).append(i)


def _duplicate_of(norm: str, tokens: set[str], kept: list[_Kept], threshold: float,
                  group: Any) -> str | None:
    where = f" in document {group}" if group is not None else ""
    for other_norm, other_tokens, other_id, other_q in kept:
        if norm == other_norm:
            return (f"duplicate question{where}: same as kept record {other_id} after "
                    f"normalisation ({other_q!r})")
        if threshold <= 1:
            similarity = jaccard(tokens, other_tokens)
            if similarity >= threshold:
                return (f"near-duplicate question{where}: word Jaccard {similarity:.2f} >= "
                        f"{threshold:.2f} with kept record {other_id} ({other_q!r})")
    return None
