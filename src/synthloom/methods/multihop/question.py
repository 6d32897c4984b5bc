"""``multihop_question``: one question and a short answer per clue chain (structured output).

Single-hop chains ask about their one clue; multi-hop chains ask a question that starts from
hop 1, must pass through every bridge entity without naming it, and is answered by the last
clue (Source2Synth's merged question; RAGSynth's multi-clue queries).
"""

from __future__ import annotations

from typing import Any

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.methods.common.corpus import string_schema
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.quality.text import plain_words


class QuestionConfig(StepConfig):
    #: Jinja prompt template of the question (gets the clue chain and its bridge entities).
    template: str = "multihop/prompts/question.jinja"
    #: Longest question, in characters (schema maxLength).
    question_max_chars: int = 240
    #: Longest answer, in characters (schema maxLength).
    answer_max_chars: int = 120
    #: Sampling temperature.
    temperature: float = 0.7
    #: Most tokens per call (None: (question_max_chars + answer_max_chars) // 3 + 24).
    max_tokens: int | None = None


@register_step
class MultihopQuestion(TemplatedStep, MapStep):
    type_name = "multihop_question"
    uses_llm = True
    Config = QuestionConfig
    config: QuestionConfig

    def reads(self) -> list[str]:
        return sorted({"clue_chain", "kind", "bridge_entities", *self.template().variables})

    @property
    def schema(self) -> dict[str, Any]:
        cfg = self.config
        props = {"question": string_schema(10, cfg.question_max_chars),
                 "answer": string_schema(1, cfg.answer_max_chars)}
        return {"type": "object", "properties": props, "required": list(props),
                "additionalProperties": False}

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        if not record.get("clue_chain"):
            return ItemResult.drop("record has no clue_chain to write a question from")
        max_tokens = cfg.max_tokens or (cfg.question_max_chars + cfg.answer_max_chars) // 3 + 24
        response = await self.ask(ctx, record, schema=self.schema, max_tokens=max_tokens)
        parsed = parsed_object(response)
        question = " ".join(str(parsed.get("question") or "").split())
        answer = " ".join(str(parsed.get("answer") or "").split())
        if not plain_words(question) or not plain_words(answer):
            missing = "question" if not plain_words(question) else "answer"
            return ItemResult.drop(f"model returned a {missing} with no words")
        return self.output(response, {"question": question, "answer": answer})
