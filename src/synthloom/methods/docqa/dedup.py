"""``docqa_dedup_questions``: questions deduplicated within each document (a global step).

Two questions of one document are duplicates when they are equal after normalisation (case,
punctuation, spacing) or when their word sets have a Jaccard similarity of at least
``jaccard``. The first one (in input order) is kept; each later one is dropped with a reason
that names the kept record and its question.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthloom.core.context import RunContext
from synthloom.core.records import META, ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import GlobalStep, StepConfig
from synthloom.methods.docqa.text import jaccard, normalize

#: A kept question: normalised text, word set, record id, original text.
_Kept = tuple[str, set[str], str, str]


class DedupQuestionsConfig(StepConfig):
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
        kept: dict[Any, list[_Kept]] = {}
        results = []
        for record in records:
            question = record.get(cfg.column)
            if not isinstance(question, str) or not question.strip():
                results.append(ItemResult.drop(f"no question in column {cfg.column!r}"))
                continue
            group = record.get(cfg.group_by) if cfg.group_by else None
            norm = normalize(question)
            tokens = set(norm.split())
            reason = _duplicate_of(norm, tokens, kept.get(group, []), cfg.jaccard, group)
            if reason:
                results.append(ItemResult.drop(reason))
                continue
            kept.setdefault(group, []).append((norm, tokens, record[META]["id"], question))
            results.append(ItemResult(outputs=[Output(columns={})]))
        return results


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
