"""The ``logic_solve`` step: ask the model, grade its final answer with the task's verifier.

Nothing is dropped: an unsolved puzzle is as useful as a solved one (SynLogic keeps the
model's pass rate as the difficulty signal), so every record gets ``model_response`` (the
reply), ``model_answer`` (its final answer, read by :mod:`synthloom.verify.answers`: tags,
boxes, "Answer:" with multi-line values, fences, JSON), ``solved`` and, when not solved,
``solve_reason`` (the verifier's reason, or "no answer").
"""

from __future__ import annotations

from typing import Any

from synthloom.core.context import ItemContext
from synthloom.core.records import Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.prompting.templated import TemplatedStep
from synthloom.verify.logic import extract_final, verify_answer


class LogicSolveConfig(StepConfig):
    #: Jinja prompt template of the puzzle (gets the record's columns).
    template: str = "logic/prompts/logic_solve.jinja"
    #: Sampling temperature.
    temperature: float = 0.0
    #: Most tokens of the reply (cut off there: said in ``solve_reason``).
    max_tokens: int = 1024


@register_step
class LogicSolve(TemplatedStep, MapStep):
    type_name = "logic_solve"
    uses_llm = True
    Config = LogicSolveConfig
    config: LogicSolveConfig

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output:
        response = await self.ask(ctx, record)
        answer = extract_final(response.text)
        reason = verify_answer(record, answer)
        if reason is not None and response.finish_reason == "length":
            reason = f"{reason} (reply cut off at max_tokens)"
        return self.output(response, {"model_response": response.text.strip(),
                                      "model_answer": answer, "solved": reason is None,
                                      "solve_reason": reason})
