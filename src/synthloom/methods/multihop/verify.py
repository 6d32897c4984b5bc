"""``multihop_verify``: keep a question only when its answer is backed by its clue chain.

``mode: clue`` -- the answer must appear in the final clue: as a normalised whole-word
substring (``match: substring``) or with at least ``threshold`` of its content words
(``match: overlap``). ``mode: judge`` -- an LLM reads the clues, question and answer and
returns ``{"supported": bool}``. ``mode: both`` -- the clue check first (no call wasted),
then the judge. A question that contains its own answer is dropped too (``reject_leaks``).
Every drop names the cause: the answer, the final clue and its chunk, or the judge's verdict.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.registry import register_step
from synthloom.core.steps import FilterStep, StepConfig
from synthloom.methods.common.overlap import support
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.quality.text import plain_text

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"supported": {"type": "boolean"}},
    "required": ["supported"], "additionalProperties": False,
}


class VerifyConfig(StepConfig):
    #: clue: the answer must occur in the chain's final clue (no model); judge: an LLM checks it
    #: against the clues; both: the two.
    mode: Literal["clue", "judge", "both"] = "clue"
    #: clue check: substring (the normalised answer occurs whole) or overlap (its content words, at
    #: ``threshold``).
    match: Literal["substring", "overlap"] = "substring"
    #: overlap match: share of the answer's content words that must occur in the final clue.
    threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    #: Drop a question that contains its own answer.
    reject_leaks: bool = True
    #: Jinja prompt template of the judge (judge/both modes).
    template: str = "multihop/prompts/verify_judge.jinja"
    #: Sampling temperature of the judge.
    temperature: float = 0.0
    #: Most tokens of the judge's verdict.
    max_tokens: int = 16


@register_step
class MultihopVerify(TemplatedStep, FilterStep):
    type_name = "multihop_verify"
    Config = VerifyConfig
    config: VerifyConfig

    def __init__(self, config: VerifyConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        # Only a judge calls a model; the clue check's cache does not depend on one.
        self.uses_llm = self.config.mode != "clue"  # type: ignore[misc]

    def active_template_fields(self) -> tuple[str, ...]:
        return self.template_fields if self.config.mode != "clue" else ()

    def reads(self) -> list[str]:
        return ["answer", "clue_chain", "question"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        cfg = self.config
        question, answer = str(record.get("question") or ""), str(record.get("answer") or "")
        chain = record.get("clue_chain") or []
        if not plain_text(answer):
            return "no answer to verify"
        if not chain:
            return "no clue chain to verify the answer against"
        if cfg.reject_leaks and f" {plain_text(answer)} " in f" {plain_text(question)} ":
            return f"the question gives away its answer {answer!r}"
        if cfg.mode in ("clue", "both"):
            reason = self.clue_check(answer, chain[-1])
            if reason:
                return reason
        if cfg.mode in ("judge", "both"):
            return await self._judge(record, ctx)
        return None

    def clue_check(self, answer: str, last: dict[str, Any]) -> str | None:
        clue = str(last.get("clue") or "")
        where = f"hop {last.get('hop', '?')}, chunk {last.get('chunk_id')}"
        if self.config.match == "substring":
            if f" {plain_text(answer)} " in f" {plain_text(clue)} ":
                return None
            return f"answer {answer!r} does not appear in the final clue ({where}): {clue!r}"
        share, missing = support(answer, clue)
        if share >= self.config.threshold:
            return None
        return (f"answer {answer!r} not supported by the final clue ({where}): {share:.2f} of "
                f"its content words occur (< {self.config.threshold:.2f}); missing: "
                f"{', '.join(missing[:6])}")

    async def _judge(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        response = await self.ask(ctx, record, schema=JUDGE_SCHEMA)
        if parsed_object(response).get("supported") is True:
            return None
        return f"judge ({response.model}) found the answer not supported by the clues"
