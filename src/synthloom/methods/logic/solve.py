"""The ``logic_solve`` step: ask the model, grade its final answer with the task's verifier.

Nothing is dropped: an unsolved puzzle is as useful as a solved one (SynLogic keeps the
model's pass rate as the difficulty signal), so every record gets ``model_response`` (the
reply), ``model_answer`` (what follows its last "Answer:"), ``solved`` and, when not solved,
``solve_reason`` (the verifier's reason, or "no answer").
"""

from __future__ import annotations

from typing import Any

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.llm.types import LLMRequest, SamplingParams
from synthloom.methods.templates import load_template
from synthloom.verify.logic import extract_final, verify_answer


class LogicSolveConfig(StepConfig):
    template: str = "logic/prompts/logic_solve.jinja"
    temperature: float = 0.0
    max_tokens: int = 1024


@register_step
class LogicSolve(MapStep):
    type_name = "logic_solve"
    uses_llm = True
    Config = LogicSolveConfig
    config: LogicSolveConfig

    def setup(self, ctx: RunContext) -> None:
        self._template = load_template(self.config.template, ctx.recipe_dir)

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        return {"template": self._template.hash}

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output:
        cfg = self.config
        params = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                                seed=ctx.seed)
        request = LLMRequest(messages=self._template.render_messages(record), params=params,
                             tags={"step": self.name})
        [response] = await ctx.generate(request)
        answer = extract_final(response.text)
        reason = verify_answer(record, answer)
        if reason is not None and response.finish_reason == "length":
            reason = f"{reason} (reply cut off at max_tokens)"
        return Output(
            columns={"model_response": response.text.strip(), "model_answer": answer,
                     "solved": reason is None, "solve_reason": reason},
            model=response.model, template_hash=self._template.hash,
            usage=response.usage.to_json(), meta={"finish_reason": response.finish_reason})
