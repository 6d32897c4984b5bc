"""Textbook recipe (phi-1 / Cosmopedia style) with the scripted test backend (a test double):
the seeded topic x audience x style combinations, the section schema, and the structure filter's
drops."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.methods.textbook.steps import (
    TextbookSection,
    TextbookStructure,
    combinations,
    read_topics,
)
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

GOOD_TEXT = ("Recursion solves a problem by solving smaller copies of it. Each call waits on "
             "the call stack until the smaller call returns, so a base case is needed to stop "
             "the chain. Think of Russian dolls: you open each doll until the smallest one.")


def section(topic: str, exercises: list[dict], example: dict | None = None,
            text: str = GOOD_TEXT) -> str:
    return json.dumps({"title": f"Understanding {topic}", "section": text,
                       "worked_example": example or {
                           "problem": "Compute factorial of 4 recursively.",
                           "solution": "4! = 4 * 3! = 4 * 6 = 24."},
                       "exercises": exercises})


def maxlengths(schema: object) -> list[int]:
    if isinstance(schema, dict):
        found = [schema["maxLength"]] if "maxLength" in schema else []
        return found + [n for v in schema.values() for n in maxlengths(v)]
    if isinstance(schema, list):
        return [n for v in schema for n in maxlengths(v)]
    return []


def test_combinations_are_seeded_balanced_and_complete() -> None:
    topics = read_topics("pkg:data/textbook/topics.txt")
    assert len(topics) >= 30 and "Recursion and the call stack" in topics
    audiences, styles = ["kids", "students", "experts"], ["academic", "narrative"]
    combos = combinations(topics, audiences, styles, seed=3)
    assert len(combos) == len(set(combos)) == len(topics) * 3 * 2  # the full product, once
    # Balanced: every topic once before any topic comes back.
    assert len({t for t, _, _ in combos[: len(topics)]}) == len(topics)
    assert combinations(topics, audiences, styles, seed=3) == combos
    assert combinations(topics, audiences, styles, seed=4) != combos
    # The first round mixes audiences and styles.
    assert len({a for _, a, _ in combos[: len(topics)]}) == 3
    shuffled = combinations(topics, audiences, styles, 3, "shuffled")
    assert sorted(shuffled) == sorted(combos) and shuffled != combos
    assert combinations(["a", "b"], ["x"], ["s"], 0, "ordered") == [("a", "x", "s"),
                                                                    ("b", "x", "s")]


def test_schema_caps_stay_under_the_grammar_limit() -> None:
    step = TextbookSection(name="s", exercises=3)
    schema = step.schema
    assert schema["properties"]["exercises"]["maxItems"] == 3
    assert max(maxlengths(schema)) <= 900
    assert set(schema["required"]) == {"title", "section", "worked_example", "exercises"}


def test_textbook_recipe_keeps_structured_sections(tmp_path: Path) -> None:
    seen: list[str] = []

    def responder(request, seed) -> str:
        text = last_user_text(request)
        if 'on the topic "' not in text:  # a repair round after invalid JSON: still invalid
            return "still not json"
        topic = text.split('on the topic "')[1].split('"')[0]
        seen.append(text)
        n = len(seen)
        if n == 1:  # complete
            return section(topic, [{"problem": "Write sum(n) recursively for n >= 0.",
                                    "solution": "def s(n): return 0 if n == 0 else n + s(n-1)"}])
        if n == 2:  # an exercise without a solution
            return section(topic, [{"problem": "Explain why a base case is needed here.",
                                    "solution": ""}])
        if n == 3:  # hollow text and an example whose solution repeats the problem
            return section(topic, [{"problem": "Trace fib(3) on the call stack.",
                                    "solution": "fib(3) = fib(2) + fib(1) = 2."}],
                           example={"problem": "Find 2 + 2 now", "solution": "Find 2 + 2 now"},
                           text="Short.")
        return "not json at all"

    # Floors off: the schema would reject these hollow answers itself (a failure, re-asked);
    # here the structure filter must catch them.
    recipe = Recipe.load("textbook", {"exercises": "1", "section.section_min_chars": "0",
                                      "section.pair_min_chars": "0"})
    summary = asyncio.run(run_recipe(recipe, tmp_path / "out",
                                     RunOptions(backend=ScriptedTestBackend(responder),
                                                limit=4))).to_json()
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["specs"]["out"] == 4
    # Four different topics first (balanced order), each with its audience and style.
    topics = [t.split('on the topic "')[1].split('"')[0] for t in seen]
    assert len(set(topics)) == 4 and all("Audience: " in t and "Style: " in t for t in seen)
    section_step = steps["section"]
    assert section_step["in"] == 4 and section_step["out"] == 3 and section_step["failed"] == 1
    structure = steps["structure"]
    assert structure["in"] == 3 and structure["out"] == 1 and structure["dropped"] == 2
    [kept] = [json.loads(x) for x in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    assert {"topic", "audience", "style", "title", "text", "exercises",
            "worked_example"} <= set(kept)
    assert kept["exercises"][0]["solution"].startswith("def s(n)")
    assert kept["title"] == f"Understanding {kept['topic']}"
    drops = [json.loads(x) for x in (tmp_path / "out" / "dropped.jsonl").read_text().splitlines()]
    reasons = [d["reason"] for d in drops]
    assert reasons[0] == ("0 complete exercise(s) with solutions (< 1); "
                          "exercise 1 has no solution (0 words)")
    assert "section text has 1 words (< 30)" in reasons[1]
    assert "worked example's solution repeats its problem" in reasons[1]
    [failure] = [json.loads(x) for x in (tmp_path / "out" / "failed.jsonl").read_text().splitlines()]
    assert failure["step"] == "section" and failure["error_class"] == "StructuredOutputError"


def test_schema_floors_reject_empty_fields() -> None:
    schema = TextbookSection(name="s").schema
    assert schema["properties"]["section"]["minLength"] == 200
    pair = schema["properties"]["exercises"]["items"]["properties"]
    assert pair["solution"]["minLength"] == 10 and pair["solution"]["maxLength"] == 500


def test_structure_filter_rules() -> None:
    step = TextbookStructure(name="f", min_text_words=3, min_exercises=2)
    pair = {"problem": "What is 3 squared?", "solution": "3 * 3 = 9"}
    ok = {"text": "one two three", "worked_example": pair, "exercises": [pair, pair]}
    assert step.process(ok, None) is None  # type: ignore[arg-type]
    one = {**ok, "exercises": [pair]}
    assert step.process(one, None).startswith("1 complete exercise(s)")  # type: ignore[arg-type]
    no_example = {**ok, "worked_example": None}
    assert step.process(no_example, None) == "worked example is missing"  # type: ignore[arg-type]
    relaxed = TextbookStructure(name="f", min_text_words=3, min_exercises=2,
                                require_worked_example=False)
    assert relaxed.process(no_example, None) is None  # type: ignore[arg-type]
    loop = {**ok, "exercises": [pair, {"problem": "Why is 9 a square number?",
                                       "solution": "It is. It is. It is. No."}]}
    assert step.process(loop, None) is None  # type: ignore[arg-type]  # 2/4 is not > 0.5
    strict = TextbookStructure(name="f", min_text_words=3, max_repeat_share=0.4)
    assert strict.process(loop, None) == (  # type: ignore[arg-type]
        "exercise 2's solution repeats itself (2 of 4 sentences are repeats)")


GOOD_SECTION_EXERCISE = {"problem": "Write sum(n) recursively for n >= 0.",
                         "solution": "def s(n): return 0 if n == 0 else n + s(n-1)"}
DOUBLE = 'def double(x):\n    """Twice x.\n\n    >>> double(2)\n    4\n    >>> double(-1)\n    -2\n    """'
HALF = 'def half(x):\n    """Half of x, rounded down.\n\n    >>> half(5)\n    2\n    """'


def test_scripted_backend_code_option_puts_code_instructions_in_the_prompt(
        tmp_path: Path) -> None:
    prompts: dict[str, list[str]] = {"off": [], "on": []}
    for mode, overrides in (("off", {}), ("on", {"code": "true"})):
        def responder(request, seed, mode=mode) -> str:
            text = last_user_text(request)
            prompts[mode].append(text)
            topic = text.split('on the topic "')[1].split('"')[0]
            return section(topic, [GOOD_SECTION_EXERCISE])

        recipe = Recipe.load("textbook", {"exercises": "1", **overrides})
        summary = asyncio.run(run_recipe(recipe, tmp_path / mode, RunOptions(
            backend=ScriptedTestBackend(responder), limit=2))).to_json()
        steps = {s["name"]: s for s in summary["steps"]}
        assert steps["structure"]["out"] == steps["code_exercises"]["out"] == 2
    # Default: the prose prompt, no code; the code option asks for interleaved Python snippets.
    assert all("python" not in p.lower() and "snippet" not in p for p in prompts["off"])
    assert all("interleave the explanation with short, runnable Python snippets" in p
               and "```python" in p for p in prompts["on"])
    rows = [json.loads(x) for x in (tmp_path / "off" / "data.jsonl").read_text().splitlines()]
    assert all("code_exercises" not in r for r in rows)  # the exercises step is off by default


def test_scripted_backend_code_exercises_drop_failing_solutions(tmp_path: Path) -> None:
    asked: list[str] = []

    def responder(request, seed) -> str:
        text = last_user_text(request)
        if "CodeExercises" in text:
            asked.append(text)
            return json.dumps({"exercises": [
                {"exercise": DOUBLE, "solution": "```python\ndef double(x):\n    return 2 * x\n```"},
                {"exercise": HALF, "solution": "```python\ndef half(x):\n    return x / 2\n```"},
                {"exercise": "def nodoc(x):\n    pass", "solution": "```python\ndef nodoc(x): pass\n```"},
            ]})
        topic = text.split('on the topic "')[1].split('"')[0]
        return section(topic, [GOOD_SECTION_EXERCISE])

    recipe = Recipe.load("textbook", {"exercises": "1", "code_exercises": "3"})
    summary = asyncio.run(run_recipe(recipe, tmp_path / "out", RunOptions(
        backend=ScriptedTestBackend(responder), limit=1))).to_json()
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["code_exercises"]["out"] == 1 and len(asked) == 1
    assert "3 Python coding exercises" in asked[0] and ">>> " in asked[0]
    [row] = [json.loads(x) for x in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    [kept] = row["code_exercises"]
    assert kept["function"] == "double" and kept["doctests"] == 2
    assert kept["solution"] == "def double(x):\n    return 2 * x"
    reasons = {d["function"]: d["reason"] for d in row["code_exercises_dropped"]}
    assert reasons["half"].startswith("doctests error: failed example half(5)")
    assert "Expected: | 2 | Got: | 2.5" in reasons["half"]
    assert reasons["nodoc"] == "exercise nodoc() has no doctest examples in its docstring"


def test_scripted_backend_code_exercises_drop_the_record_when_none_passes(
        tmp_path: Path) -> None:
    def responder(request, seed) -> str:
        text = last_user_text(request)
        if "CodeExercises" in text:
            return json.dumps({"exercises": [
                {"exercise": DOUBLE, "solution": "```python\ndef twice(x):\n    return 2 * x\n```"},
                {"exercise": DOUBLE, "solution": "```python\ndef double(x):\n    while True: pass\n```"},
            ]})
        topic = text.split('on the topic "')[1].split('"')[0]
        return section(topic, [GOOD_SECTION_EXERCISE])

    recipe = Recipe.load("textbook", {"exercises": "1", "code_exercises": "2",
                                      "code_exercises.timeout_s": "1"})
    summary = asyncio.run(run_recipe(recipe, tmp_path / "out", RunOptions(
        backend=ScriptedTestBackend(responder), limit=1))).to_json()
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["code_exercises"]["dropped"] == 1
    [drop] = [json.loads(x) for x in (tmp_path / "out" / "dropped.jsonl").read_text().splitlines()]
    assert drop["reason"].startswith("no code exercise passed its doctests (double: solution "
                                     "does not define double(); double: doctests timeout")
