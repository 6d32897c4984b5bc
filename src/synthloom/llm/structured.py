"""Getting structured (JSON) answers out of model text: reasoning split, extraction, repair."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import json_repair
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.validators import validator_for

# --- prompt texts (kept short: they are paid for on every call) -----------------------------

SCHEMA_INSTRUCTIONS = (
    "Answer with only a JSON {kind} that matches this JSON Schema, "
    "with no other text and no code fences:\n{schema}"
)
REPAIR_INSTRUCTIONS = (
    "Your previous answer is not valid. Problems:\n{errors}\n"
    "Reply with only the corrected JSON {kind} matching this JSON Schema, "
    "with no other text and no code fences:\n{schema}"
)
REPAIR_PROMPT = "{prompt}\n\nPrevious answer:\n{bad_output}\n\n{instructions}\n"

MAX_BAD_OUTPUT_CHARS = 2_000
MAX_ERRORS = 10
# jsonschema messages embed the offending instance, which can be a whole document.
MAX_ERROR_CHARS = 300

# --- reasoning --------------------------------------------------------------------------------

_TAG = r"(?:think|thinking|reasoning)"
_OPEN = re.compile(rf"<{_TAG}\s*>", re.IGNORECASE)
_CLOSE = re.compile(rf"</{_TAG}\s*>", re.IGNORECASE)
# Lenient about mismatched names (<think>...</thinking>): the first closing tag ends the block.
_BLOCK = re.compile(rf"<{_TAG}\s*>(.*?)</{_TAG}\s*>", re.IGNORECASE | re.DOTALL)


def split_reasoning(text: str) -> tuple[str, str | None]:
    """Split ``text`` into (answer, reasoning); (text, None) when there are no reasoning tags.

    Handles closed blocks (several allowed), an unclosed opening tag (output cut off while
    thinking: the rest is reasoning) and a closing tag with no opening tag (chat templates
    that put ``<think>`` in the prompt: everything before it is reasoning).
    """
    first_close = _CLOSE.search(text)
    first_open = _OPEN.search(text)
    if first_close is None and first_open is None:
        return text, None

    pieces: list[str] = []
    rest = text
    if first_close is not None and (first_open is None or first_close.start() < first_open.start()):
        pieces.append(text[: first_close.start()])
        rest = text[first_close.end() :]

    answer_parts: list[str] = []
    pos = 0
    for block in _BLOCK.finditer(rest):
        answer_parts.append(rest[pos : block.start()])
        pieces.append(block.group(1))
        pos = block.end()
    tail = rest[pos:]
    unclosed = _OPEN.search(tail)
    if unclosed is not None:
        answer_parts.append(tail[: unclosed.start()])
        pieces.append(tail[unclosed.end() :])
    else:
        answer_parts.append(tail)

    answer = "".join(answer_parts).strip()
    reasoning = "\n\n".join(p.strip() for p in pieces if p.strip())
    # An empty block (e.g. thinking switched off) is not reasoning worth keeping.
    return answer, reasoning or None


# --- JSON extraction --------------------------------------------------------------------------

# A fenced block with any language tag; an unterminated fence (truncated output) runs to the end.
_FENCE = re.compile(r"```[\w+-]*[ \t]*\r?\n?(.*?)(?:```|\Z)", re.DOTALL)
_MAX_SPANS = 20


def _json_spans(text: str) -> Iterator[str]:
    """Top-level {...} / [...] spans in order; an unbalanced one yields the rest and stops.

    String-aware (double quotes, escapes) so braces inside JSON strings do not count.
    """
    i, n, found = 0, len(text), 0
    while i < n and found < _MAX_SPANS:
        start = min(
            (p for p in (text.find("{", i), text.find("[", i)) if p != -1),
            default=-1,
        )
        if start == -1:
            return
        depth, in_str, escaped = 0, False, False
        end = -1
        for j in range(start, n):
            ch = text[j]
            if in_str:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth == 0:
                    end = j + 1
                    break
        found += 1
        if end == -1:
            # Truncated output (max_tokens hit): the rest is the best candidate for repair.
            yield text[start:]
            return
        yield text[start:end]
        i = end


def _loads_strict(candidate: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(candidate)
    except ValueError:
        return False, None


def _loads_repaired(candidate: str) -> tuple[bool, Any]:
    try:
        value = json_repair.loads(candidate)
    except Exception:  # json_repair is best effort; any failure just means "not this one"
        return False, None
    # json_repair answers "" for text it cannot make anything of.
    if value == "" and candidate.strip() not in ('""', "''"):
        return False, None
    return True, value


def extract_json(text: str) -> Any:
    """The JSON value in model output: fenced block, first {...}/[...], or the whole text.

    Strict parsing is tried on every candidate before repair (trailing commas, single quotes,
    truncation) is tried on the most likely ones. Raises ValueError when nothing is usable.
    """
    fenced = [m.group(1).strip() for m in _FENCE.finditer(text)]
    spans = list(_json_spans(text))
    whole = text.strip()

    for candidate in [*fenced, *spans, whole]:
        if candidate:
            ok, value = _loads_strict(candidate)
            if ok:
                return value
    # Repair only the first span: later ones are usually fragments, not the answer.
    for candidate in [*fenced, *spans[:1], whole]:
        if candidate:
            ok, value = _loads_repaired(candidate)
            if ok:
                return value
    snippet = whole[:60] + ("..." if len(whole) > 60 else "")
    raise ValueError(f"no JSON found in the output: {snippet!r}")


# --- validation -------------------------------------------------------------------------------


def _json_path(error: ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part).isidentifier():
            path += f".{part}"
        else:
            path += f"[{json.dumps(str(part))}]"
    return path


def validate(value: Any, schema: dict[str, Any]) -> list[str]:
    """Schema violations as ``$.path: message`` lines, sorted, at most ten; [] when valid."""
    cls = validator_for(schema, default=Draft202012Validator)
    messages = []
    for error in cls(schema).iter_errors(value):
        message = error.message
        if len(message) > MAX_ERROR_CHARS:
            message = message[:MAX_ERROR_CHARS] + "..."
        messages.append(f"{_json_path(error)}: {message}")
    return sorted(messages)[:MAX_ERRORS]


def parse_structured(text: str, schema: dict[str, Any]) -> tuple[Any, list[str]]:
    """Extract (repairing if needed) and validate; (None, [reason]) when no JSON is found."""
    try:
        value = extract_json(text)
    except ValueError as exc:
        return None, [str(exc)]
    # Small models often wrap the requested object in a list.
    if (
        schema.get("type") == "object"
        and isinstance(value, list)
        and len(value) == 1
        and isinstance(value[0], dict)
    ):
        value = value[0]
    return value, validate(value, schema)


# --- prompting --------------------------------------------------------------------------------


def _compact(schema: dict[str, Any]) -> str:
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def _kind(schema: dict[str, Any]) -> str:
    return "object" if schema.get("type", "object") == "object" else "value"


def schema_instructions(schema: dict[str, Any]) -> str:
    """Instruction text for backends without constrained decoding."""
    return SCHEMA_INSTRUCTIONS.format(kind=_kind(schema), schema=_compact(schema))


def _repair_instructions(errors: list[str], schema: dict[str, Any]) -> str:
    listed = "\n".join(f"- {e}" for e in errors[:MAX_ERRORS]) or "- the output is not valid JSON"
    return REPAIR_INSTRUCTIONS.format(errors=listed, kind=_kind(schema), schema=_compact(schema))


def _truncate(bad_output: str) -> str:
    if len(bad_output) <= MAX_BAD_OUTPUT_CHARS:
        return bad_output
    return bad_output[:MAX_BAD_OUTPUT_CHARS] + "\n[... truncated]"


def repair_messages(
    messages: list[dict[str, str]],
    bad_output: str,
    errors: list[str],
    schema: dict[str, Any],
) -> list[dict[str, str]]:
    """A new conversation: the original, the bad answer, and a request to fix it."""
    return [
        *(dict(m) for m in messages),
        {"role": "assistant", "content": _truncate(bad_output)},
        {"role": "user", "content": _repair_instructions(errors, schema)},
    ]


def repair_prompt(prompt: str, bad_output: str, errors: list[str], schema: dict[str, Any]) -> str:
    """The raw-prompt counterpart of :func:`repair_messages`."""
    return REPAIR_PROMPT.format(
        prompt=prompt,
        bad_output=_truncate(bad_output),
        instructions=_repair_instructions(errors, schema),
    )
