"""The final answer in a model's reply: one reader for every verifier (logic, math, SQL, code).

Reasoning models end their replies in many ways; a grader that reads only one of them marks
right answers wrong (a sudoku written one row per line after "Answer:" used to read as its
first row). :func:`extract` reads them all, with a fixed order of rules - **the first rule
that finds something wins; within a rule, the last occurrence wins** (a reply corrects itself
downwards):

0. **Reasoning is cut away**: text inside ``<think>...</think>`` (also ``<thinking>``,
   ``<reasoning>``) never counts; a reply whose reasoning was never closed (cut off) has no
   answer.
1. ``<answer>...</answer>``: the content of the last tag pair (multi-line kept).
2. ``\\boxed{...}`` / ``\\fbox{...}``: the last one, nested braces matched.
3. **A stated answer**, the last of: a line starting with "Answer:" / "Final answer:" (also
   ``**Final Answer:**``, "> Answer:"), a sentence "the (final) answer is ...", and GSM8K's
   ``#### ...``. The value is the rest of that line; after a line-start "Answer:" the
   following lines up to a blank line belong to it too (a grid one row per line). When the
   rest of the line is empty, the value is the next block: a fenced block's content or the
   next paragraph. A sentence's value ends at the end of its sentence.
4. **A fenced block** (```` ```python ````, ```` ```json ````, ```` ``` ````): the content of
   the last one.
5. **A final JSON object**: a reply that ends with ``{...}``.
6. **The last paragraph** (the lines after the last blank line): a bare answer, possibly one
   row per line. Callers that want a number instead (math) say so (``fallback="number"``).

Then the value is unwrapped once more when it is itself a tag, a box or a fence ("Answer:
\\boxed{7}"), and a JSON object with an ``answer`` key (``{"answer": ...}``, also
``final_answer``, ``solution``) becomes that value: a string as is, a list of scalars as
``"a, b, c"``, a list of rows (lists, or strings with commas) one row per line, an object as
``"key: value, ..."``.

A **hedged answer** ("4 or maybe 7", "probably 4") is wrong however it is read: it offers more
than one answer, and a grader that picks one rewards the hedge (:func:`is_hedged`; every
verifier calls it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

#: Rule names, in the order they are tried (``Extracted.rule`` is one of them).
RULES = ("answer_tag", "boxed", "stated", "fence", "json", "last_paragraph", "last_number")

_THINK_PAIR = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<(?:think|thinking|reasoning)>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</(?:think|thinking|reasoning)>", re.IGNORECASE)
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOXED_BARE = re.compile(r"\\boxed\s+([^\s${}]+)")
#: A fence opens anywhere ("Code: ```python") and closes with ``` at a line's end.
_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n`]*\n(.*?)(?:```[ \t]*$|\Z)",
                    re.DOTALL | re.MULTILINE)
#: "Answer:" at a line start, with markdown around it ("**Final Answer:**", "> Answer:").
_LABEL = re.compile(r"(?im)^[ \t>*#_-]*(?:\*\*|__)?[ \t]*(?:final[ \t]+)?answer[ \t]*"
                    r"(?:\*\*|__)?[ \t]*[:：][ \t]*(?:\*\*|__)?")
#: "the answer is", "final answer: ", "answer = " inside a sentence.
_SENTENCE = re.compile(r"(?i)\b(?:final[ \t]+answer|answer)[ \t]*(?:is|=|:|：)[ \t]*:?")
_HASHES = re.compile(r"(?m)^[ \t]*####[ \t]*")
_NUMBER = re.compile(r"-?\$?\s?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?%?|-?\.\d+")
_JSON_KEYS = ("answer", "final_answer", "solution", "result")

#: Words that offer a second answer or doubt the first.
_HEDGE = re.compile(
    r"(?i)\b(?:or\s+(?:maybe|perhaps|possibly|alternatively)|maybe|perhaps|possibly|probably|"
    r"i\s+think|i\s+guess|i'?m\s+not\s+sure|not\s+sure|might\s+be|could\s+be)\b|\?\s*$")
#: "4 or 7", "x = 2 or x = 3": the whole answer is two short values joined by a lowercase
#: "or" (a longer text with "or" in it - a sentence, a cipher's plain text - is not a hedge).
_OR = re.compile(r"^\s*[^\s,;]+(?:\s*=\s*[^\s,;]+)?\s+or\s+[^\s,;]+(?:\s*=\s*[^\s,;]+)?"
                 r"\s*\.?\s*$")


@dataclass(frozen=True)
class Extracted:
    """An answer found in a reply: the value and the rule that found it."""

    value: str
    rule: str


def strip_reasoning(text: str | None) -> str:
    """The reply without its ``<think>...</think>`` reasoning. Text before a lone closing tag
    is reasoning too (templates that open the tag in the prompt); after a lone opening tag the
    reply was cut off while thinking, so nothing after it counts."""
    text = _THINK_PAIR.sub("", text or "")
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        text = text[closes[-1].end():]
    opened = _THINK_OPEN.search(text)
    if opened:
        text = text[:opened.start()]
    return text


def boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (braces matched), else of the
    last ``\\boxed 5``; None when there is none or its braces never close."""
    found = None
    for match in _BOXED.finditer(text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    found = text[start:i]
                    break
    if found is None:
        bare = _BOXED_BARE.findall(text)
        found = bare[-1] if bare else None
    return found.strip() if found is not None else None


@dataclass(frozen=True)
class Block:
    """A fenced block: its language tag (lowercase, "" when none) and its content."""

    language: str
    content: str


def fenced_blocks(text: str | None, languages: tuple[str, ...] | None = None) -> list[Block]:
    """The fenced blocks of ``text`` in order (an unclosed last block runs to the end), only
    those tagged with one of ``languages`` (or untagged) when given; empty blocks skipped."""
    blocks = []
    for match in _FENCE.finditer(text or ""):
        language, content = match.group(1).lower(), match.group(2).strip("\n").rstrip()
        if not content.strip():
            continue
        if languages is not None and language and language not in languages:
            continue
        blocks.append(Block(language, content))
    return blocks


PYTHON = ("python", "py", "python3")


def code_block(text: str | None, languages: tuple[str, ...] = PYTHON,
               which: Literal["first", "last"] = "first") -> str | None:
    """The code of a reply: the first (or last) fenced block in one of ``languages`` or
    untagged, looked for inside ``<answer>`` when the reply has one; None without a block."""
    text = strip_reasoning(text)
    tags = _ANSWER_TAG.findall(text)
    blocks = fenced_blocks(tags[-1] if tags else text, languages) or \
        (fenced_blocks(text, languages) if tags else [])
    if not blocks:
        return None
    return (blocks[0] if which == "first" else blocks[-1]).content


def _stated(text: str) -> str | None:
    """Rule 3: the value after the last "Answer:" line, "the answer is" or "####"."""
    marks: list[tuple[int, int, str]] = []
    marks += [(m.start(), m.end(), "label") for m in _LABEL.finditer(text)]
    marks += [(m.start(), m.end(), "sentence") for m in _SENTENCE.finditer(text)]
    marks += [(m.start(), m.end(), "hashes") for m in _HASHES.finditer(text)]
    if not marks:
        return None
    # The last marker; a label also matches as a sentence at the same place: keep the label.
    last_end = max(end for _, end, _ in marks)
    _, end, kind = min((m for m in marks if m[1] == last_end),
                       key=lambda m: ("label", "hashes", "sentence").index(m[2]))
    rest = text[end:]
    line, _, after = rest.partition("\n")
    if not line.strip().strip("*_`$").strip():
        return _next_block(after) or ""
    if kind == "label":
        lines = [line]
        for follow in after.split("\n"):
            if not follow.strip() or follow.lstrip().startswith("```"):
                break
            lines.append(follow)
        return "\n".join(lines).strip()
    if kind == "sentence":
        # The sentence ends at ". " (not a decimal point) or at the end of the line.
        stop = re.search(r"\.(?=\s|$)", line)
        return (line[:stop.start()] if stop else line).strip()
    return line.strip()


def _next_block(text: str) -> str | None:
    """The first fenced block or paragraph of ``text`` (blank lines before it skipped)."""
    stripped = text.lstrip("\n")
    if stripped.lstrip(" \t").startswith("```"):
        blocks = fenced_blocks(stripped)
        return blocks[0].content if blocks else None
    paragraph = re.split(r"\n[ \t]*\n", stripped, maxsplit=1)[0]
    return paragraph.strip() or None


def _final_json(text: str) -> str | None:
    """Rule 5: the ``{...}`` object the reply ends with, as its JSON text."""
    stripped = text.rstrip()
    if not stripped.endswith("}"):
        return None
    decoder = json.JSONDecoder()
    # Try the last few opening braces from the right: the outermost one that parses to the
    # end is the object (bounded, so a reply full of code braces stays cheap).
    opens = [i for i, ch in enumerate(stripped) if ch == "{"][-64:]
    found = None
    for i in reversed(opens):
        try:
            value, end = decoder.raw_decode(stripped, i)
        except ValueError:
            continue
        if end == len(stripped) and isinstance(value, dict):
            found = stripped[i:]
    return found


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_render(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        # Rows (lists, or strings that are lists themselves) one per line.
        if value and all(isinstance(v, list | tuple | dict) or
                         (isinstance(v, str) and ("," in v or ";" in v)) for v in value):
            return "\n".join(_render(v) for v in value)
        return ", ".join(_render(v) for v in value)
    return json.dumps(value) if isinstance(value, bool) or value is None else str(value)


def _unwrap(value: str) -> str:
    """A value that is itself a tag, a box, a fence or an ``{"answer": ...}`` object → its
    content (repeated until nothing changes)."""
    for _ in range(4):
        stripped = value.strip()
        tags = _ANSWER_TAG.findall(stripped)
        inner = boxed(stripped) if _BOXED.search(stripped) else None
        if tags and stripped.lower().startswith("<answer>"):
            value = tags[-1]
        elif inner is not None and _box_is_all(stripped):
            value = inner
        elif stripped.startswith("```"):
            blocks = fenced_blocks(stripped)
            if not blocks:
                return ""
            value = blocks[-1].content
        elif stripped.startswith("{") and stripped.endswith("}"):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                return stripped
            key = next((k for k in _JSON_KEYS for have in (parsed if isinstance(parsed, dict)
                        else {}) if have.lower() == k), None)
            if key is None:
                return stripped
            found = next(v for k, v in parsed.items() if k.lower() == key)
            value = _render(found)
        else:
            return stripped
    return value.strip()


def _box_is_all(text: str) -> bool:
    """Whether the text is one box with at most math dollars / a final period around it."""
    core = text.strip().strip("$").rstrip(".").strip()
    return bool(re.match(r"\\(?:boxed|fbox)\s*\{", core)) and core.endswith("}")


def extract(text: str | None, *, rules: tuple[str, ...] = RULES[:5],
            fallback: Literal["paragraph", "number", "none"] = "paragraph",
            multiline: bool = True) -> Extracted | None:
    """The final answer of a reply by the rules in this module's docstring, and the rule that
    found it; None when the reply states none (empty, reasoning cut off, or an "Answer:" with
    nothing after it). ``rules`` picks among rules 1-5 (math leaves out fences and JSON),
    ``fallback`` is rule 6, and ``multiline=False`` keeps only the first line of a stated
    answer (a math answer is one line; what follows is prose)."""
    text = strip_reasoning(text)
    if not text.strip():
        return None
    value: str | None = None
    rule = ""
    for rule in rules:
        value = _RULE_FUNCS[rule](text)
        if value is not None:
            break
    else:
        if fallback == "paragraph":
            value, rule = _last_paragraph(text), "last_paragraph"
        elif fallback == "number":
            numbers = _NUMBER.findall(text)
            value, rule = (numbers[-1].strip() if numbers else None), "last_number"
    if not value:  # also "Answer:" with nothing after it: stated, but empty
        return None
    value = _unwrap(value)
    if not multiline and rule == "stated":
        value = value.strip().split("\n", 1)[0]
    return Extracted(value.strip(), rule) if value.strip() else None


def _answer_tag(text: str) -> str | None:
    tags = _ANSWER_TAG.findall(text)
    return tags[-1] if tags else None


def _last_fence(text: str) -> str | None:
    blocks = fenced_blocks(text)
    return blocks[-1].content if blocks else None


_RULE_FUNCS = {"answer_tag": _answer_tag, "boxed": boxed, "stated": _stated,
               "fence": _last_fence, "json": _final_json}


def _last_paragraph(text: str) -> str:
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", text.strip()) if p.strip()]
    return paragraphs[-1].strip() if paragraphs else ""


def extract_final(text: str | None) -> str | None:
    """The final answer of a reply (:func:`extract`), cleaned of markdown (:func:`clean`)."""
    found = extract(text)
    if found is None:
        return None
    return clean(found.value) or None


def clean(text: str) -> str:
    """Strip markdown emphasis, code ticks, math dollars, quotes and a final period (from the
    whole value and from each of its lines)."""
    lines = [_clean_line(line) for line in text.strip().split("\n")]
    return _clean_line("\n".join(line for line in lines if line))


def _clean_line(text: str) -> str:
    previous = None
    while text != previous:
        previous = text
        text = text.strip().strip("`*$").strip()
        if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
            text = text[1:-1]
        if text.endswith("."):
            text = text[:-1]
    return text


def is_hedged(answer: str | None) -> bool:
    """Whether an answer offers more than one answer or doubts itself ("4 or maybe 7",
    "probably 4", "4 or 7", "4?"). Such an answer is wrong, whatever it contains."""
    if not answer:
        return False
    # Capitals are a cipher's plain text ("MAYBE" may be a word of it), not a hedge.
    hedges = [m for m in _HEDGE.finditer(answer) if not m.group().isupper()]
    return bool(hedges or _OR.search(answer))


def hedge_reason(answer: str | None) -> str | None:
    """A verifier's reason for a hedged answer, else None."""
    return f"hedged answer: {answer.strip()[:80]!r}" if answer and is_hedged(answer) else None
