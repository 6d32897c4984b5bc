"""``kg_question`` and ``kg_check``: a question per sampled graph path, and its sanity checks.

The model sees the path's triples in order, the start entity, the answer (the path's end
node), the difficulty level and KAQG's item features for it (length, technical terms,
Bloom's level; ``levels.py``), and writes one question that starts from the start entity and
needs every triple (KAQG: difficulty-controlled generation from KG paths). The answer and the
reasoning (the triples traversed) come from the path itself, so they are exact by
construction. ``kg_check`` drops a question that gives away its answer or does not mention the
entity the path starts from, with the reason.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import FilterStep, MapStep, StepConfig
from synthloom.methods.common.corpus import string_schema
from synthloom.methods.common.overlap import content_words, stem
from synthloom.methods.kg.levels import DESCRIPTIONS
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.quality.text import plain_text, plain_words


class KgQuestionConfig(StepConfig):
    #: Jinja prompt template of the question (the path's triples, start entity, answer and level).
    template: str = "kg/prompts/question.jinja"
    #: Longest question, in characters (schema maxLength).
    question_max_chars: int = 240
    #: Sampling temperature.
    temperature: float = 0.7
    #: Most tokens per call (None: question_max_chars // 3 + 16).
    max_tokens: int | None = None


@register_step
class KgQuestion(TemplatedStep, MapStep):
    type_name = "kg_question"
    uses_llm = True
    Config = KgQuestionConfig
    config: KgQuestionConfig

    def reads(self) -> list[str]:
        return sorted({"path", "start_entity", "answer", "difficulty_level",
                       *(self.template().variables - {"feature_instructions"})})

    @property
    def schema(self) -> dict[str, Any]:
        props = {"question": string_schema(10, self.config.question_max_chars)}
        return {"type": "object", "properties": props, "required": list(props),
                "additionalProperties": False}

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        if not record.get("path"):
            return ItemResult.drop("record has no path to ask about")
        # KAQG: the path's drawn item features, each as the instruction for its level.
        features = record.get("kaqg_features") or {}
        instructions = [DESCRIPTIONS[f][int(v) - 1] for f, v in features.items()
                        if f in DESCRIPTIONS and v in (1, 2, 3)]
        response = await self.ask(ctx, {**record, "feature_instructions": instructions},
                                  schema=self.schema,
                                  max_tokens=cfg.max_tokens or cfg.question_max_chars // 3 + 16)
        parsed = parsed_object(response)
        question = " ".join(str(parsed.get("question") or "").split())
        if not plain_words(question):
            return ItemResult.drop("model returned a question with no words")
        return self.output(response, {"question": question})


class KgCheckConfig(StepConfig):
    #: Drop questions that contain their answer (normalised, whole words).
    reject_leaks: bool = True
    #: Share of the start entity's content words the question must contain (0: no check).
    start_overlap: float = Field(default=0.5, ge=0.0, le=1.0)


@register_step
class KgCheck(FilterStep):
    type_name = "kg_check"
    Config = KgCheckConfig
    config: KgCheckConfig

    def reads(self) -> list[str]:
        return ["question", "answer", "start_entity"]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        cfg = self.config
        question = str(record.get("question") or "")
        answer = str(record.get("answer") or "")
        start = str(record.get("start_entity") or "")
        if cfg.reject_leaks and plain_text(answer) and \
                f" {plain_text(answer)} " in f" {plain_text(question)} ":
            return f"the question gives away its answer {answer!r}"
        if cfg.start_overlap > 0 and start:
            wanted = set(content_words(start))
            present = {stem(w) for w in plain_words(question)}
            share = len(wanted & present) / len(wanted) if wanted else 1.0
            if share < cfg.start_overlap:
                return (f"the question does not mention the path's start entity {start!r} "
                        f"({share:.2f} of its words < {cfg.start_overlap:.2f})")
        return None
