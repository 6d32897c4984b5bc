"""``multihop_question``: one question and a short answer per clue chain (structured output).

Single-hop chains ask about their one clue; multi-hop chains ask a question that starts from
hop 1, must pass through every bridge entity without naming it, and is answered by the last
clue (Source2Synth's merged question; RAGSynth's multi-clue queries).
"""

from __future__ import annotations

from typing import Any

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.llm.types import LLMRequest, SamplingParams
from synthloom.methods.docqa.text import words
from synthloom.methods.multihop.text import string_schema
from synthloom.methods.templates import PromptTemplate, load_template


class QuestionConfig(StepConfig):
    template: str = "multihop/prompts/question.jinja"
    question_max_chars: int = 240
    answer_max_chars: int = 120
    temperature: float = 0.7
    max_tokens: int | None = None


@register_step
class MultihopQuestion(MapStep):
    type_name = "multihop_question"
    uses_llm = True
    Config = QuestionConfig
    config: QuestionConfig
    _template: PromptTemplate

    def setup(self, ctx: RunContext) -> None:
        self._template = load_template(self.config.template, ctx.recipe_dir)

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        return {"template": self._template.hash}

    def reads(self) -> list[str]:
        return sorted({"clue_chain", "kind", "bridge_entities", *self._template.variables})

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
        request = LLMRequest(
            messages=self._template.render_messages(record), json_schema=self.schema,
            params=SamplingParams(temperature=cfg.temperature, max_tokens=max_tokens,
                                  seed=ctx.seed),
            tags={"step": self.name})
        [response] = await ctx.generate(request)
        parsed = response.parsed if isinstance(response.parsed, dict) else {}
        question = " ".join(str(parsed.get("question") or "").split())
        answer = " ".join(str(parsed.get("answer") or "").split())
        if not words(question) or not words(answer):
            missing = "question" if not words(question) else "answer"
            return ItemResult.drop(f"model returned a {missing} with no words")
        return Output(columns={"question": question, "answer": answer}, model=response.model,
                      template_hash=self._template.hash, usage=response.usage.to_json(),
                      sample_index=response.sample_index,
                      meta={"finish_reason": response.finish_reason})
