"""The ``verify_arithmetic`` step: re-evaluates each item by two independent routes.

The Python ``expression`` (safe ``ast`` evaluation with Fractions) and the written ``question``
(its own infix parser) must both equal the ``answer``, and the scratchpad must end with it.
Passing items get ``verified: true``; any disagreement drops the item with the reason.
"""

from __future__ import annotations

from typing import Any

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.verify.expressions import ExpressionError, eval_infix, eval_python, parse_exact


class VerifyArithmeticConfig(StepConfig):
    #: The question must read PREFIX + infix expression + '?' (and that expression must equal the
    #: answer).
    question_prefix: str = "What is "


def check_item(record: dict[str, Any], prefix: str = "What is ") -> str | None:
    """None when the item is right, else why not."""
    try:
        answer = parse_exact(str(record["answer"]))
        value = eval_python(str(record["expression"]))
        if value != answer:
            return f"expression evaluates to {value}, answer says {record['answer']}"
        question = str(record["question"])
        if not question.startswith(prefix) or not question.endswith("?"):
            return "question is not of the form 'What is ...?'"
        written = eval_infix(question[len(prefix):-1])
        if written != answer:
            return f"question evaluates to {written}, answer says {record['answer']}"
        last = str(record.get("scratchpad", "")).rstrip().rsplit("\n", 1)[-1]
        if not last.startswith("Answer: ") or parse_exact(last[8:]) != answer:
            return f"scratchpad ends with {last[:40]!r}, not the answer"
    except (ExpressionError, KeyError) as exc:
        return f"cannot check: {exc}"
    return None


@register_step
class VerifyArithmetic(MapStep):
    type_name = "verify_arithmetic"
    Config = VerifyArithmeticConfig
    cpu_bound = True  # pure Python: batches go to the process pool
    config: VerifyArithmeticConfig

    def reads(self) -> list[str]:
        return ["question", "expression", "answer", "scratchpad"]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | Output:
        reason = check_item(record, self.config.question_prefix)
        if reason is not None:
            return ItemResult.drop(f"not verified: {reason}")
        return Output(columns={"verified": True})
