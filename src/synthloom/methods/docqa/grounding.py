"""``docqa_grounding``: keep a QA pair only when its answer is supported by its chunk.

``mode: overlap`` — the share of the answer's content words (stemmed, stopwords removed) that
occur in the chunk must reach ``threshold``; no model involved. ``mode: judge`` — an LLM reads
the chunk, question and answer and returns ``{"supported": true|false}``. Either way a dropped
pair carries the reason (the overlap and the missing words, or the judge's verdict).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.registry import register_step
from synthloom.core.steps import FilterStep, StepConfig
from synthloom.methods.common.overlap import support
from synthloom.prompting.templated import TemplatedStep, parsed_object

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"supported": {"type": "boolean"}},
    "required": ["supported"],
    "additionalProperties": False,
}


class GroundingConfig(StepConfig):
    #: overlap: the answer's content words must occur in the chunk (no model); judge: an LLM says
    #: whether the chunk supports it.
    mode: Literal["overlap", "judge"] = "overlap"
    #: overlap mode: minimum share of the answer's content words found in the chunk.
    threshold: float = Field(default=0.6, ge=0.0, le=1.0)
    #: Column with the answer checked.
    answer_column: str = "answer"
    #: Column with the question (shown to the judge).
    question_column: str = "question"
    #: Column with the chunk text the answer must be grounded in.
    context_column: str = "text"
    #: Jinja prompt template of the judge (judge mode).
    template: str = "docqa/prompts/grounding_judge.jinja"
    #: Sampling temperature of the judge.
    temperature: float = 0.0
    #: Most tokens of the judge's verdict.
    max_tokens: int = 16


@register_step
class Grounding(TemplatedStep, FilterStep):
    type_name = "docqa_grounding"
    Config = GroundingConfig
    config: GroundingConfig

    def __init__(self, config: GroundingConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        # Only the judge calls a model: the overlap mode's cache does not depend on one.
        self.uses_llm = self.config.mode == "judge"  # type: ignore[misc]

    def active_template_fields(self) -> tuple[str, ...]:
        return self.template_fields if self.config.mode == "judge" else ()

    def reads(self) -> list[str]:
        cfg = self.config
        extra = self.template().variables - {"text", "question", "answer", "context"} \
            if self.has_template() else set()
        return sorted({cfg.answer_column, cfg.question_column, cfg.context_column, *extra})

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        cfg = self.config
        answer = record.get(cfg.answer_column)
        passage = record.get(cfg.context_column)
        if not isinstance(answer, str) or not answer.strip():
            return f"no answer in column {cfg.answer_column!r} to check"
        if not isinstance(passage, str) or not passage.strip():
            return f"no chunk text in column {cfg.context_column!r} to check the answer against"
        if cfg.mode == "overlap":
            return self._overlap(answer, passage)
        return await self._judge(record, answer, passage, ctx)

    def _overlap(self, answer: str, passage: str) -> str | None:
        share, missing = support(answer, passage)
        if share >= self.config.threshold:
            return None
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        return (f"answer not supported by the chunk: {share:.2f} of its content words occur in "
                f"it (< {self.config.threshold:.2f}); missing: {shown}")

    async def _judge(self, record: dict[str, Any], answer: str, passage: str,
                     ctx: ItemContext) -> str | None:
        variables = {**record, "text": passage, "answer": answer,
                     "question": record.get(self.config.question_column, "")}
        response = await self.ask(ctx, variables, schema=JUDGE_SCHEMA)
        if parsed_object(response).get("supported") is True:
            return None
        return f"judge ({response.model}) found the answer not supported by the chunk"
