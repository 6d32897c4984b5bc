"""Instruction backtranslation (Humpback; Li et al. 2023, "Self-Alignment with Instruction
Backtranslation", arXiv 2308.06259).

* ``bt_segment_filter`` (filter): unlabelled web/document segments become candidate answers only
  when they look like self-contained prose — length bounds, and no boilerplate (navigation and
  menu lines, cookie/copyright/sign-in text, link lists, mostly symbols, shouting headers).
* ``bt_backward`` (map): self-augmentation — the backward model M_yx reads a segment y and writes
  the instruction x it answers (``backward.jinja``; schema-constrained, so a small model's
  rambling ends at the cap).
* ``bt_curate`` (map): self-curation — the model rates the (instruction, output) pair on the
  paper's 5-point scale (``curate.jinja``; JSON ``{reason, score}``) and pairs scoring at least
  ``threshold`` are kept; the others are dropped with ``curation score 2 < 4: <reason>``.
  ``iteration`` records which curation round made the pair (the paper's iteration 2 re-curates
  with the model fine-tuned on iteration-1 data: point ``--backend`` at it and set 2).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.quality.filters import TextFilter
from synthloom.quality.text import plain_text, plain_words

#: Phrases that mark page furniture rather than content.
BOILERPLATE_RE = re.compile(
    r"\b(all rights reserved|cookie(s)? (policy|settings)|we use cookies|privacy policy|"
    r"terms (of use|of service|and conditions)|sign (in|up)|log ?in|subscribe|newsletter|"
    r"skip to (main )?content|click here|share (this|on)|follow us|javascript (is )?"
    r"(disabled|required)|enable javascript|previous topic|next topic|table of contents|"
    r"show source|report a bug|navigation)\b", re.IGNORECASE)
URL_RE = re.compile(r"https?://\S+|www\.\S+")


class SegmentFilterConfig(StepConfig):
    #: Column holding the web segment.
    column: str = "text"
    #: Segments with fewer words are dropped.
    min_words: int = 40
    #: Segments with more words are dropped.
    max_words: int = 600
    #: Lines of fewer than 4 words (menus, link lists) may be at most this share of lines.
    max_short_line_share: float = 0.6
    #: Boilerplate phrases (cookie banners, sign-in, navigation) per 100 words, at most.
    max_boilerplate_per_100_words: float = 1.0
    #: Letters must be at least this share of the non-space characters (else code/tables).
    min_letter_share: float = 0.6
    #: Upper-case letters may be at most this share of letters (shouting headers, menus).
    max_upper_share: float = 0.3
    #: URLs per 100 words, at most.
    max_urls_per_100_words: float = 2.0


def segment_problem(text: str, cfg: SegmentFilterConfig) -> str | None:
    """Why ``text`` is no good candidate answer, or None."""
    count = len(text.split())
    if count < cfg.min_words:
        return f"segment too short: {count} words (< {cfg.min_words})"
    if count > cfg.max_words:
        return f"segment too long: {count} words (> {cfg.max_words})"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    short = sum(len(ln.split()) < 4 for ln in lines) / max(1, len(lines))
    if len(lines) >= 4 and short > cfg.max_short_line_share:
        return (f"boilerplate: {short:.0%} of lines have under 4 words (navigation or lists; "
                f"max {cfg.max_short_line_share:.0%})")
    hits = BOILERPLATE_RE.findall(text)
    if hits and len(hits) * 100 / count > cfg.max_boilerplate_per_100_words:
        shown = ", ".join(sorted({h[0].lower() for h in hits})[:3])
        return f"boilerplate: {len(hits)} page-furniture phrase(s) ({shown})"
    urls = len(URL_RE.findall(text))
    if urls * 100 / count > cfg.max_urls_per_100_words:
        return f"boilerplate: {urls} URLs in {count} words"
    chars = [c for c in text if not c.isspace()]
    letters = [c for c in chars if c.isalpha()]
    share = len(letters) / max(1, len(chars))
    if share < cfg.min_letter_share:
        return f"mostly symbols or code: letters are {share:.0%} of characters " \
               f"(< {cfg.min_letter_share:.0%})"
    upper = sum(c.isupper() for c in letters) / max(1, len(letters))
    if upper > cfg.max_upper_share:
        return f"mostly upper case: {upper:.0%} of letters (> {cfg.max_upper_share:.0%})"
    return None


@register_step
class SegmentFilter(TextFilter):
    """Keeps segments that can stand as an answer: length bounds, no boilerplate."""

    type_name = "bt_segment_filter"
    Config = SegmentFilterConfig
    config: SegmentFilterConfig

    def check(self, text: str) -> str | None:
        return segment_problem(text.strip(), self.config)


# --- self-augmentation -------------------------------------------------------------------------


class BackwardConfig(StepConfig):
    #: Jinja prompt template of the backward model (the paper's: predict the instruction for an
    #: output).
    template: str = "backtranslation/prompts/backward.jinja"
    #: The column holding the segment (it becomes ``output``).
    column: str = "text"
    #: Sampling temperature.
    temperature: float = 0.7
    #: Longest instruction, in characters (schema maxLength).
    instruction_max_chars: int = Field(default=300, ge=20, le=900)
    #: An instruction with fewer words is dropped.
    min_words: int = 3
    #: Most tokens per call (None: instruction_max_chars + 24).
    max_tokens: int | None = None


_PREFIX = re.compile(r"^\s*(instruction|question|user|request|prompt)\s*:\s*", re.IGNORECASE)


@register_step
class Backward(TemplatedStep, MapStep):
    """Segment y → the instruction x it answers (self-augmentation)."""

    type_name = "bt_backward"
    uses_llm = True
    Config = BackwardConfig
    config: BackwardConfig

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        # The prompt's own wording: a small model often answers by repeating it.
        self._prompt_words = plain_text(" ".join(
            m["content"] for m in self.template().render_messages({"output": ""})))

    def reads(self) -> list[str]:
        return [self.config.column]

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {"instruction": {
            "type": "string", "minLength": 5, "maxLength": self.config.instruction_max_chars}},
            "required": ["instruction"], "additionalProperties": False}

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        output = str(record.get(cfg.column) or "").strip()
        if not output:
            raise KeyError(f"record has no text in column {cfg.column!r}")
        # A token is at least one character: the schema's cap ends the string before this one.
        max_tokens = cfg.max_tokens or cfg.instruction_max_chars + 24
        response = await self.ask(ctx, {"output": output}, schema=self.schema,
                                  max_tokens=max_tokens)
        parsed = parsed_object(response)
        instruction = _PREFIX.sub("", str(parsed.get("instruction") or "")).strip().strip('"')
        count = len(plain_words(instruction))
        if count < cfg.min_words:
            return ItemResult.drop(f"instruction has {count} words (< {cfg.min_words}): "
                                   f"{instruction!r}")
        if plain_text(instruction) in self._prompt_words:
            return ItemResult.drop(f"instruction repeats the prompt's wording: {instruction!r}")
        if plain_text(instruction) in plain_text(output) and count >= 8:
            return ItemResult.drop("instruction copies a sentence of the segment")
        return self.output(response, {"instruction": instruction, "output": output},
                           replace=True)


# --- self-curation -----------------------------------------------------------------------------


class CurateConfig(StepConfig):
    #: Jinja prompt template of the curation (the paper's 1-5 rating prompt).
    template: str = "backtranslation/prompts/curate.jinja"
    #: Keep pairs scored at least this (paper: 4 or 5).
    threshold: int = Field(default=4, ge=1, le=5)
    #: Which self-training iteration's model curates (recorded on each pair).
    iteration: int = Field(default=1, ge=1)
    #: Sampling temperature of the rating.
    temperature: float = 0.0
    #: Longest reason before the score, in characters (schema maxLength).
    reason_max_chars: int = Field(default=300, ge=20, le=900)
    #: Most tokens per call (None: reason_max_chars + 24).
    max_tokens: int | None = None


@register_step
class Curate(TemplatedStep, MapStep):
    """Rate (instruction, output) 1-5 with the paper's prompt; keep score >= threshold."""

    type_name = "bt_curate"
    uses_llm = True
    Config = CurateConfig
    config: CurateConfig

    def reads(self) -> list[str]:
        return ["instruction", "output"]

    @property
    def schema(self) -> dict[str, Any]:
        # Reason before score: the paper asks for the reasoning first.
        return {"type": "object", "properties": {
            "reason": {"type": "string", "minLength": 1,
                       "maxLength": self.config.reason_max_chars},
            "score": {"type": "integer", "minimum": 1, "maximum": 5}},
            "required": ["reason", "score"], "additionalProperties": False}

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        max_tokens = cfg.max_tokens or cfg.reason_max_chars + 24
        response = await self.ask(
            ctx, {"instruction": record["instruction"], "output": record["output"]},
            schema=self.schema, max_tokens=max_tokens)
        parsed = parsed_object(response)
        score, reason = parsed.get("score"), " ".join(str(parsed.get("reason") or "").split())
        if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
            raise ValueError(f"curation returned no score 1-5: {parsed!r}")
        if score < cfg.threshold:
            shown = reason if len(reason) <= 200 else reason[:197] + "..."
            return ItemResult.drop(f"curation score {score} < {cfg.threshold}: {shown}")
        return self.output(response, {"curation_score": score, "curation_reason": reason,
                                      "iteration": cfg.iteration}, meta={})
