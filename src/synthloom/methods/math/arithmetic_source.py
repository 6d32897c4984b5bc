"""The ``arithmetic_problems`` source: rule-generated arithmetic items, no LLM."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from pydantic import field_validator

from synthloom.core.context import RunContext
from synthloom.core.registry import register_step
from synthloom.core.steps import SourceStep, StepConfig
from synthloom.methods.math.arithmetic import make_item, parse_difficulty


class ArithmeticConfig(StepConfig):
    #: Problems generated.
    count: int = 1000
    #: A level 1-5, "mix" (levels in turn), a range "2-4", or a list.
    difficulty: int | str | list[int] = "mix"
    #: Seed of the generator (the same seed: the same problems).
    seed: int = 0

    @field_validator("difficulty")
    @classmethod
    def _levels(cls, value: Any) -> Any:
        parse_difficulty(value)  # raises ValueError with the accepted forms
        return value

    @field_validator("count")
    @classmethod
    def _count(cls, value: int) -> int:
        if value < 0:
            raise ValueError("count must be >= 0")
        return value


@register_step
class ArithmeticProblems(SourceStep):
    """``count`` distinct items: question, expression, answer, scratchpad, difficulty, index.

    One generator seeded with ``seed`` draws the items in order, so the same seed gives the
    same items, and a larger count or ``--limit`` keeps the items before it unchanged. A
    question already drawn is drawn again (up to 50 times; small level-1 spaces run out).
    """

    type_name = "arithmetic_problems"
    Config = ArithmeticConfig
    config: ArithmeticConfig

    def read(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        levels = parse_difficulty(self.config.difficulty)
        rng = random.Random(f"arithmetic:{self.config.seed}")
        seen: set[str] = set()
        for index in range(self.config.count):
            level = levels[index % len(levels)]
            for _ in range(50):
                item = make_item(rng, level)
                if item["question"] not in seen:
                    break
            seen.add(item["question"])
            item["index"] = index
            yield item
