"""``webmining_refine``: MAmmoTH2's refinement step (WebInstruct, arXiv 2405.03548) -- the model
rewrites an extracted answer into a complete, step-by-step one (``refined_answer``), given the
question, the original answer and the surrounding text.

A refinement must stay consistent with the extracted original: at least
``consistency_threshold`` of the original answer's content words must survive in the
refined one. One that drifts (the model answered a different question, or dropped the facts)
is a drop naming the share and the missing words; the original answer is kept beside it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.methods.common.corpus import string_schema
from synthloom.methods.common.overlap import support
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.quality.text import plain_words


class RefineConfig(StepConfig):
    #: Jinja prompt template of the refinement.
    template: str = "webmining/prompts/refine.jinja"
    #: Share of the original answer's content words that the refined answer must keep.
    consistency_threshold: float = Field(default=0.6, ge=0.0, le=1.0)
    #: The surrounding text shown to the model (0: none), cut to this many characters.
    context_chars: int = Field(default=1500, ge=0)
    #: Longest refined answer, in characters (schema maxLength).
    refined_max_chars: int = 900
    #: Sampling temperature.
    temperature: float = 0.3
    #: Most tokens per call (None: refined_max_chars // 3 + 16).
    max_tokens: int | None = None


@register_step
class WebminingRefine(TemplatedStep, MapStep):
    type_name = "webmining_refine"
    uses_llm = True
    Config = RefineConfig
    config: RefineConfig

    def reads(self) -> list[str]:
        return sorted({"question", "answer", "text", *(self.template().variables - {"context"})})

    @property
    def schema(self) -> dict[str, Any]:
        props = {"refined_answer": string_schema(1, self.config.refined_max_chars)}
        return {"type": "object", "properties": props, "required": list(props),
                "additionalProperties": False}

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        answer = str(record.get("answer") or "")
        if not plain_words(answer):
            return ItemResult.drop("no extracted answer to refine")
        context = str(record.get("text") or "")[: cfg.context_chars] if cfg.context_chars else ""
        response = await self.ask(ctx, {**record, "context": context}, schema=self.schema,
                                  max_tokens=cfg.max_tokens or cfg.refined_max_chars // 3 + 16)
        parsed = parsed_object(response)
        refined = str(parsed.get("refined_answer") or "").strip()
        if not plain_words(refined):
            return ItemResult.drop("model returned an empty refined answer")
        share, missing = support(answer, refined)
        if share < cfg.consistency_threshold:
            return ItemResult.drop(
                f"refined answer inconsistent with the extracted one: it keeps {share:.2f} of "
                f"the original's content words (< {cfg.consistency_threshold:.2f}); missing: "
                f"{', '.join(missing[:8])}")
        return self.output(response, {"refined_answer": refined},
                           meta={"finish_reason": response.finish_reason,
                                 "refine_consistency": round(share, 3),
                                 # a weak model often hands the answer back as it was: say so
                                 "refine_unchanged": " ".join(refined.split()) == " ".join(
                                     answer.split())})
