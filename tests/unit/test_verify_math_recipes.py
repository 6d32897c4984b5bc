"""pot and star with the ScriptedTestBackend (a test double): the verifier's decisions, the
drop reasons and the accounting, on the bundled sample problems."""

from __future__ import annotations

import asyncio
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.methods.math.gold import gold_of
from synthloom.methods.math.pot import extract_code, printed_answer
from tests.support.runs import read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

PROGRAMS = {
    "A baker": "```python\nprint(24 + 18 - 30)\n```",                          # right
    "Tom reads": "Here:\n```python\nprint(15 * 7)\n```",                      # wrong: 105
    "A box holds": "```python\nwhile True:\n    pass\n```",                   # timeout
    "A shirt": "The answer is 20.",                                           # no code
    "Maria has": "```python\nimport socket\nsocket.create_connection(('127.0.0.1', 9))\n"
                 "print(56)\n```",                                            # network: error
    "A train": "```py\nspeed = 180 / 3\nprint(speed * 5)\n```",               # 300.0: right
}


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend, limit: int) -> dict:
    options = RunOptions(backend=backend, limit=limit)
    return asyncio.run(run_recipe(recipe, out, options)).to_json()


def step(summary: dict, name: str) -> dict:
    return next(s for s in summary["steps"] if s["name"] == name)


def program_for(request, seed) -> str:
    text = last_user_text(request)
    return next(code for start, code in PROGRAMS.items() if start in text)


def test_pot_keeps_only_programs_printing_the_gold_answer(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(program_for)
    summary = run(Recipe.load("pot", {"timeout": "2"}), tmp_path / "out", backend, limit=6)
    execute = step(summary, "execute")
    assert execute["in"] == 6 and execute["out"] == 2 and execute["dropped"] == 4
    assert execute["in"] == execute["out"] + execute["failed"] + execute["dropped"]
    assert step(summary, "program")["llm_calls"] == 6 == backend.calls
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert [(r["gold"], r["predicted"], r["verified"]) for r in kept] == [
        ("12", "12", True), ("300", "300.0", True)]
    assert kept[0]["program"] == "print(24 + 18 - 30)" and kept[0]["program_status"] == "ok"
    reasons = {d["record"]["gold"]: d["reason"] for d in read_jsonl(tmp_path / "out" / "dropped.jsonl")}
    assert reasons["210"] == "program printed '105', gold is '210'"
    assert reasons["13"].startswith("program timeout")
    assert reasons["20"] == "no code in the completion"
    assert reasons["56"].startswith("program error") and "network" in reasons["56"]


def test_pot_keep_incorrect_marks_instead_of_dropping(tmp_path: Path) -> None:
    recipe = Recipe.load("pot", {"timeout": "2", "execute.keep_incorrect": "true"})
    summary = run(recipe, tmp_path / "out", ScriptedTestBackend(program_for), limit=6)
    assert step(summary, "execute")["out"] == 6
    verified = [r["verified"] for r in read_jsonl(tmp_path / "out" / "data.jsonl")]
    assert verified == [True, False, False, False, False, True]


def star_responder(request, seed) -> str:
    text = last_user_text(request)
    hinted = "(The correct answer is" in text
    if "A baker" in text:
        return "24 + 18 = 42 and 42 - 30 = 12.\nThe answer is 12."
    if "Tom reads" in text:
        return ("Two weeks are 14 days and 15 * 14 = 210.\nThe answer is 210." if hinted
                else "15 * 7 = 105.\nThe answer is 105.")
    if "A box holds" in text:
        # Ends on the right number without stating it: not counted; the hint does not help.
        return "The answer is 12." if hinted else "75 / 6 is 12.5, so it takes 13"
    raise AssertionError(text)


def test_star_keeps_correct_rationales_and_rationalizes(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(star_responder)
    recipe = Recipe.load("star", {"samples": "2"})
    summary = run(recipe, tmp_path / "out", backend, limit=3)
    rationales = step(summary, "rationales")
    assert rationales["in"] == 3 and rationales["expanded"] == 2 and rationales["dropped"] == 1
    assert rationales["in"] == rationales["expanded"] + rationales["failed"] + rationales["dropped"]
    assert rationales["llm_calls"] == backend.calls == 2 + 3 + 3
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert [(r["gold"], r["rationalized"], r["_meta"]["sample_index"]) for r in kept] == [
        ("12", False, 0), ("210", True, 2)]
    assert all(r["verified"] is True for r in kept)
    assert "(The correct answer is" not in kept[1]["rationale"]
    [dropped] = read_jsonl(tmp_path / "out" / "dropped.jsonl")
    assert dropped["record"]["gold"] == "13" and "in 3 tries" in dropped["reason"]
    # A rerun replays from the cache: no calls.
    again = ScriptedTestBackend(star_responder)
    run(Recipe.load("star", {"samples": "2"}), tmp_path / "out", again, limit=3)
    assert again.calls == 0


def test_helpers() -> None:
    assert gold_of("so 3 + 4 = 7\n#### 1,007") == "1007"
    assert gold_of("42") == "42" and gold_of("") is None
    assert gold_of("Long solution...\nso the result is \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert extract_code("text\n```python\nprint(1)\n```\nmore ```python\nprint(2)\n```") == \
        "print(1)"
    assert extract_code("print(3)") == "print(3)" and extract_code("no code") is None
    assert printed_answer("working...\n\n 42 \n") == "42" and printed_answer("") is None
