"""Magpie's query checks: is what the model wrote after the pre-query prefix a usable request?

Heuristics only (no LLM): empty or too short, cut off at the token cap, chat-template markers
leaking into the text (the model ended its turn and went on as the assistant), and text that
is neither a question nor an instruction (no '?', no imperative opening, no request phrase).
"""

from __future__ import annotations

import re


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Openings of questions and of imperative requests (first word, lower-cased).
QUESTION_WORDS = _word_set(
    "what why how when where which who whom whose is are am was were do does did can could "
    "would will shall should may might must have has had isn't aren't don't doesn't didn't "
    "can't won't wouldn't shouldn't")
IMPERATIVE_VERBS = _word_set(
    "add analyze analyse answer arrange assess brainstorm build calculate categorize check "
    "choose classify compare compose compute convert correct count create debug define "
    "describe design detect determine develop devise discuss draft edit estimate evaluate "
    "explain extract find fix format generate give guide help identify implement improve "
    "imagine list make name outline paraphrase plan predict prepare propose provide "
    "recommend reorder rephrase rewrite rank read reverse review revise show simplify solve "
    "sort suggest summarize summarise tell teach translate turn use verify walk write")
REQUEST_PHRASES = re.compile(
    r"\b(please|help me|i need|i want|i'?d like|i would like|i am looking for|i'?m looking for|"
    r"looking for (advice|help|tips|ideas)|any (advice|tips|ideas|suggestions)|can you|could you|"
    r"would you|how (do|can|should|would) i|what (is|are|should)|tell me|show me|give me|"
    r"let'?s|is it possible|wondering (if|whether|how))\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")


def query_problem(text: str, *, min_words: int, markers: list[str],
                  finish_reason: str | None, require_request: bool = True) -> str | None:
    """Why ``text`` is not a usable query, or None when it is."""
    stripped = text.strip()
    if not stripped:
        return f"empty query (finish_reason={finish_reason})"
    if finish_reason == "length":
        return "query cut off at max_tokens (no end of turn)"
    leaked = next((m for m in markers if m and m in stripped), None)
    if leaked:
        return f"query contains the chat-template marker {leaked!r}"
    words = _WORD.findall(stripped)
    if len(words) < min_words:
        return f"query too short: {len(words)} words (< {min_words})"
    if require_request and not is_request(stripped):
        return "query is neither a question nor an instruction (no '?', request phrase or imperative)"
    return None


def is_request(text: str) -> bool:
    """A question or an instruction: '?', a request phrase, or a question/imperative opening."""
    if "?" in text or REQUEST_PHRASES.search(text):
        return True
    first = _WORD.search(text)
    return first is not None and first.group(0).lower() in QUESTION_WORDS | IMPERATIVE_VERBS
