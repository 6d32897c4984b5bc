"""The ``math_gold`` step: the gold final answer of a problem record, as its own column.

GSM8K answers (``... #### 72``) give what follows ``####``; other answers give their
extracted final answer (``\\boxed{...}``, "The answer is ...", or the whole short answer).
"""

from __future__ import annotations

from typing import Any

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.verify.math_answers import extract_answer, gsm8k_gold


class MathGoldConfig(StepConfig):
    #: Column with the reference answer (GSM8K ``answer``, or a plain final answer).
    column: str = "answer"
    #: Column written with the normalised gold final answer.
    output: str = "gold"


def gold_of(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    if "####" in text:
        return gsm8k_gold(text) or None
    if "\n" not in text and len(text) <= 80 and "boxed" not in text:
        return text  # already a final answer
    return extract_answer(text)


@register_step
class MathGold(MapStep):
    type_name = "math_gold"
    Config = MathGoldConfig
    config: MathGoldConfig

    def reads(self) -> list[str]:
        return [self.config.column]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | Output:
        gold = gold_of(record.get(self.config.column))
        if gold is None:
            return ItemResult.drop(f"no gold answer in column {self.config.column!r}")
        return Output(columns={self.config.output: gold})
