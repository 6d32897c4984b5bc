"""RealQuestions input: real user instructions in whatever shape they come, first turn only."""

from __future__ import annotations

import re
from typing import Any

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.llm.kinds import grammar_limited

# Alpaca-style wrappers ("Below is an instruction ... ### Instruction: ... ### Response:").
ALPACA_RE = re.compile(
    r"###\s*Instruction:\s*(?P<instruction>.*?)\s*(?:###\s*Input:\s*(?P<input>.*?)\s*)?"
    r"(?:###\s*Response:.*)?$",
    re.DOTALL,
)
EOS_MARKERS = ("###eos_token###", "<|endoftext|>", "</s>", "<|im_end|>")
CANDIDATE_COLUMNS = ("instruction", "prompt", "question", "query", "text", "input")
#: Columns holding the task input of an instruction row: Alpaca's ``input``, Dolly's
#: ``context`` (appended to the instruction, as Alpaca's own template does).
INPUT_COLUMNS = ("input", "context")


class SeedConfig(StepConfig):
    #: Column with the instruction (default: the first present of instruction, prompt,
    #: question, query, text, input; or the first user turn of messages/conversations).
    column: str | None = None
    #: Seeds with fewer words are dropped (incomplete).
    min_words: int = 3
    #: Longer seeds are dropped. Default: 600 on llamacpp (the embedded model's context and
    #: grammar limits), no cap elsewhere (the paper keeps long real prompts).
    max_words: int | None = None
    #: Minimum share of ASCII letters among letters. Off by default: the recipe's
    #: ``filter_language`` step decides the language (this rule dropped English prompts that
    #: quote another script, e.g. "Translate '...' into French").
    min_ascii_letter_share: float | None = None


@register_step
class SeedInstruction(MapStep):
    """Normalises a seed into ``instruction``: unwraps templates, takes the first user turn,
    appends a non-empty task input; drops incomplete and non-English seeds with a reason."""

    type_name = "seed_instruction"
    Config = SeedConfig
    config: SeedConfig

    def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        text = first_user_turn(record, self.config.column)
        if text is None:
            return ItemResult.drop("no instruction column or user turn found")
        text = clean_instruction(text)
        words = len(text.split())
        if words < self.config.min_words:
            return ItemResult.drop(f"incomplete: {words} words (< {self.config.min_words})")
        limit = self.config.max_words or (600 if grammar_limited(ctx) else None)
        if limit is not None and words > limit:
            return ItemResult.drop(f"too long: {words} words (> {limit})")
        floor = self.config.min_ascii_letter_share
        if floor is not None:
            letters = [c for c in text if c.isalpha()]
            share = sum(c.isascii() for c in letters) / max(1, len(letters))
            if share < floor:
                return ItemResult.drop(f"not English: ASCII letter share {share:.2f}")
        return Output(columns={"instruction": text}, replace=True)


def first_user_turn(record: dict[str, Any], column: str | None) -> str | None:
    for key in ("messages", "conversations"):
        turns = record.get(key)
        if column in (None, key) and isinstance(turns, list):
            for turn in turns:
                role = turn.get("role") or turn.get("from")
                if isinstance(turn, dict) and role in ("user", "human"):
                    return content_text(turn.get("content") or turn.get("value") or "")
    names = [column] if column else list(CANDIDATE_COLUMNS)
    for name in names:
        value = record.get(name)
        if isinstance(value, list):  # OpenAI content parts in a plain column
            value = content_text(value)
        if isinstance(value, str) and value.strip():
            extra = _task_input(record, name)
            return f"{value}\n\n{extra}" if extra else value
    return None


def content_text(content: Any) -> str:
    """The text of a chat turn's content: a string, or OpenAI content parts
    (``[{"type": "text", "text": ...}, {"type": "image_url", ...}]``) whose text parts are
    joined; other parts (images, audio) have no text to keep."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n\n".join(t for t in texts if t.strip())
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return content["text"]
    return str(content)


def _task_input(record: dict[str, Any], instruction_column: str) -> str:
    """The task input that belongs with the instruction: an Alpaca ``input`` / Dolly
    ``context`` column beside it, or Self-Instruct's ``instances[0].input``."""
    for name in INPUT_COLUMNS:
        value = record.get(name)
        if name != instruction_column and isinstance(value, str) and value.strip():
            return value.strip()
    instances = record.get("instances")
    if isinstance(instances, list) and instances and isinstance(instances[0], dict):
        return str(instances[0].get("input") or "").strip()
    return ""


def clean_instruction(text: str) -> str:
    for marker in EOS_MARKERS:
        text = text.replace(marker, "")
    match = ALPACA_RE.search(text)
    if match and "### Instruction" in text:
        text = match.group("instruction")
        if match.group("input"):
            text = f"{text}\n\n{match.group('input')}"
    return text.strip()
