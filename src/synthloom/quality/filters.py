"""Heuristic filters: each drop carries a reason string."""

from __future__ import annotations

import re
from typing import Any

from synthloom.core.context import ItemContext
from synthloom.core.registry import register_step
from synthloom.core.steps import FilterStep, StepConfig

REFUSAL_RE = re.compile(
    r"\b(I'?m sorry|I apologi[sz]e|as an AI( language model)?|I cannot (help|assist|provide)|"
    r"I can'?t (help|assist|provide)|I am unable to)\b",
    re.IGNORECASE,
)


class LengthConfig(StepConfig):
    column: str
    min_chars: int = 1
    max_chars: int | None = None
    min_words: int = 0


@register_step
class LengthFilter(FilterStep):
    """Drops records whose ``column`` is missing, too short or too long."""

    type_name = "filter_length"
    Config = LengthConfig
    config: LengthConfig

    def reads(self) -> list[str]:
        return [self.config.column]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        value = record.get(self.config.column)
        if not isinstance(value, str):
            return f"{self.config.column} is missing or not text"
        text = value.strip()
        if len(text) < self.config.min_chars:
            return f"{self.config.column} shorter than {self.config.min_chars} chars ({len(text)})"
        if self.config.max_chars is not None and len(text) > self.config.max_chars:
            return f"{self.config.column} longer than {self.config.max_chars} chars ({len(text)})"
        words = len(text.split())
        if words < self.config.min_words:
            return f"{self.config.column} has {words} words (< {self.config.min_words})"
        return None


class RefusalConfig(StepConfig):
    column: str


@register_step
class RefusalFilter(FilterStep):
    """Drops refusals and apologies ("I'm sorry", "As an AI language model", ...)."""

    type_name = "filter_refusal"
    Config = RefusalConfig
    config: RefusalConfig

    def reads(self) -> list[str]:
        return [self.config.column]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        match = REFUSAL_RE.search(str(record.get(self.config.column, "")))
        return f"refusal pattern {match.group(0)!r} in {self.config.column}" if match else None
