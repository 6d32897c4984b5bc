"""Heuristic filters: each drop carries a reason string.

``ColumnFilter`` and ``TextFilter`` are the bases of the one-column filters here, in
heuristics.py, judges.py and in methods (``bt_segment_filter``, ``drop_rejected``).
"""

from __future__ import annotations

import re
from abc import abstractmethod
from typing import Any

from synthloom.core.context import ItemContext
from synthloom.core.registry import register_step
from synthloom.core.steps import FilterStep, StepConfig

_Q = "['’]"  # straight or curly apostrophe
REFUSAL_PATTERNS = [
    rf"I{_Q}?m sorry",
    r"I apologi[sz]e",
    r"as an AI( language model)?",
    rf"I( cannot| can{_Q}?t| am unable to|{_Q}m unable to| am not able to|{_Q}m not able to|"
    rf" won{_Q}?t| will not) (help|assist|provide|comply|fulfil+|answer|do that|create|write|"
    r"generate)",
    r"I am unable to",
    rf"I{_Q}?m unable to",
    r"I must (respectfully )?decline",
    r"(against|violates?) my (programming|guidelines|policies|principles)",
    rf"I{_Q}?m (just )?an AI",
    r"I do not have (personal )?(opinions|feelings|access to real-time)",
]
REFUSAL_RE = re.compile(r"\b(" + "|".join(REFUSAL_PATTERNS) + r")\b", re.IGNORECASE)


class ColumnFilter(FilterStep):
    """A filter that reads one column, ``config.column`` (only it enters the cache key)."""

    config: Any

    def reads(self) -> list[str]:
        return [self.config.column]


class TextFilter(ColumnFilter):
    """A filter on one text column: a missing or non-text value is dropped with that reason,
    text goes to :meth:`check` (unstripped)."""

    def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        value = record.get(self.config.column)
        if not isinstance(value, str):
            return f"{self.config.column} is missing or not text"
        return self.check(value)

    @abstractmethod
    def check(self, text: str) -> str | None:
        """Why ``text`` fails the filter, or None to keep the record."""


class LengthConfig(StepConfig):
    #: Column whose text is measured.
    column: str
    #: Texts shorter than this many characters are dropped.
    min_chars: int = 1
    #: Texts longer than this many characters are dropped (None: no cap).
    max_chars: int | None = None
    #: Texts with fewer words are dropped (0: no floor).
    min_words: int = 0


@register_step
class LengthFilter(TextFilter):
    """Drops records whose ``column`` is missing, too short or too long."""

    type_name = "filter_length"
    Config = LengthConfig
    config: LengthConfig

    def check(self, text: str) -> str | None:
        text = text.strip()
        if len(text) < self.config.min_chars:
            return f"{self.config.column} shorter than {self.config.min_chars} chars ({len(text)})"
        if self.config.max_chars is not None and len(text) > self.config.max_chars:
            return f"{self.config.column} longer than {self.config.max_chars} chars ({len(text)})"
        words = len(text.split())
        if words < self.config.min_words:
            return f"{self.config.column} has {words} words (< {self.config.min_words})"
        return None


class RefusalConfig(StepConfig):
    #: Column checked for refusal phrases.
    column: str
    #: More regular expressions (case-insensitive) that mark a refusal.
    extra_patterns: list[str] = []
    #: Look only at the first N characters (refusals open the answer; None: all of it).
    head_chars: int | None = None


@register_step
class RefusalFilter(ColumnFilter):
    """Drops refusals and apologies ("I'm sorry", "As an AI language model", ...)."""

    type_name = "filter_refusal"
    version = "2"  # patterns extended
    Config = RefusalConfig
    config: RefusalConfig

    def setup(self, ctx: Any) -> None:
        extra = self.config.extra_patterns
        self._re = (re.compile("|".join([REFUSAL_RE.pattern, *extra]), re.IGNORECASE)
                    if extra else REFUSAL_RE)

    def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        pattern = getattr(self, "_re", REFUSAL_RE)
        text = str(record.get(self.config.column, ""))
        if self.config.head_chars is not None:
            text = text[: self.config.head_chars]
        match = pattern.search(text)
        return f"refusal pattern {match.group(0)!r} in {self.config.column}" if match else None
