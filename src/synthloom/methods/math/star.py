"""STaR (Self-Taught Reasoner): keep the model's rationales that reach the gold answer.

For each problem, ``samples`` rationales are drawn (``star_rationale.jinja``); each whose final
answer equals the gold answer becomes a record. When none does and ``rationalize`` is on, the
model is asked again with the answer as a hint (``star_rationalize.jinja``); a rationale that
then reaches the gold answer is kept with ``rationalized: true`` (train on it with the plain
question, without the hint). Problems with no correct rationale are dropped with the count.
"""

from __future__ import annotations

from typing import Any

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, StepConfig
from synthloom.llm.types import LLMResponse
from synthloom.prompting.templated import TemplatedStep
from synthloom.verify.math_answers import answers_equal, extract_answer


class StarConfig(StepConfig):
    #: Jinja prompt template of a rationale ending in "The answer is N.".
    template: str = "math/prompts/star_rationale.jinja"
    #: Jinja template of rationalization: the gold answer given as a hint.
    hint_template: str = "math/prompts/star_rationalize.jinja"
    #: Column with the gold final answer.
    gold: str = "gold"
    #: Rationales sampled per problem before rationalization.
    samples: int = 4
    #: When no sample reaches the gold answer, try once more with it as a hint (STaR's
    #: rationalization).
    rationalize: bool = True
    #: Keep at most this many correct rationales per problem.
    keep: int = 1
    #: Sampling temperature.
    temperature: float = 0.8
    #: Most tokens of one rationale (cut off there: its answer does not count).
    max_tokens: int = 384
    #: Count only a stated answer ("The answer is N", boxed, ####), not the last number seen.
    stated_answer: bool = True


@register_step
class StarRationales(TemplatedStep, ExpandStep):
    type_name = "star_rationales"
    uses_llm = True
    Config = StarConfig
    config: StarConfig
    template_fields = ("template", "hint_template")
    version = "2"  # 2: rationale_reasoning kept

    def reads(self) -> list[str]:
        names = (self.template().variables | self.template("hint_template").variables
                 | {self.config.gold})
        return sorted(names - {"context"})

    async def _sample(self, template: str, record: dict[str, Any], ctx: ItemContext,
                      n: int, offset: int) -> list[LLMResponse]:
        variables = {**record, "gold": record.get(self.config.gold), "context": ctx.context}
        return await self.ask_n(ctx, variables, n, template=template, seed_offset=offset)

    def _output(self, response: LLMResponse, template: str, predicted: str,
                rationalized: bool, sample_index: int) -> Output:
        columns: dict[str, Any] = {"rationale": response.text.strip(), "predicted": predicted,
                                   "rationalized": rationalized, "verified": True}
        if response.reasoning:  # a reasoning model's <think> text: exports keep it
            columns["rationale_reasoning"] = response.reasoning
        return self.output(response, columns, template=template, sample_index=sample_index)

    def _answer(self, response: LLMResponse) -> str | None:
        if response.finish_reason == "length":
            return None  # cut off: its last number is not its answer
        return extract_answer(response.text, last_number=not self.config.stated_answer)

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list:
        cfg = self.config
        gold = str(record.get(cfg.gold, ""))
        responses = await self._sample("template", record, ctx, cfg.samples, 0)
        kept: list[Output] = []
        answers: list[str | None] = []
        for i, response in enumerate(responses):
            predicted = self._answer(response)
            answers.append(predicted)
            if answers_equal(predicted, gold) and len(kept) < cfg.keep:
                kept.append(self._output(response, "template", predicted or "", False, i))
        if kept:
            return kept
        if cfg.rationalize:
            [hinted] = await self._sample("hint_template", record, ctx, 1, cfg.samples)
            predicted = self._answer(hinted)
            if answers_equal(predicted, gold):
                return [self._output(hinted, "hint_template", predicted or "", True,
                                     cfg.samples)]
            answers.append(predicted)
        tried = cfg.samples + (1 if cfg.rationalize else 0)
        shown = ", ".join(repr(a) for a in answers[:6])
        return ItemResult.drop(f"no rationale reached gold {gold!r} in {tried} tries "
                               f"(answers: {shown})")
