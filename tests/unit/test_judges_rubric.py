"""Rubric judges with the ScriptedTestBackend (a test double, no model): scores stored per
criterion with the analysis, bad JSON repaired or re-asked and counted, thresholds, columns."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import Recipe
from synthloom.export.sinks import JsonlSink
from synthloom.quality.judges import (
    RUBRICS,
    FilterScore,
    JudgeRubric,
    normalise_scores,
    rubric_schema,
)
from synthloom.sources.files import JsonlRows
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

ARENA = RUBRICS["arena7"].criteria
UF = RUBRICS["ultrafeedback"].criteria


def judged_text(request) -> str:
    """The first user message: the judge prompt, also on a re-ask (which appends turns)."""
    return next(m["content"] for m in request.messages if m["role"] == "user")


def quoted(text: str) -> list[str]:
    """The texts the judge templates put between triple quotes (instruction, answer)."""
    return [m.strip() for m in re.findall(r'"""\n(.*?)\n"""', text, re.DOTALL)]


def arena_answer(instruction: str) -> dict:
    # Scripted judge: a criterion scores 1 when its index is below the instruction's word count
    # divided by 3, so longer instructions score higher and totals differ per record.
    words = len(instruction.split())
    return {c: {"analysis": f"{c} judged on {words} words", "score": int(i < words // 3)}
            for i, c in enumerate(ARENA)}


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROWS = [
    {"instruction": "Write a function that merges two sorted lists and prove its complexity "
                    "bound for lists of different lengths", "response": "def merge(a, b): ..."},
    {"instruction": "hi there", "response": "Hello!"},
    {"instruction": "Explain compound interest with a worked example for a loan", "response": "x"},
]


def run(tmp_path: Path, steps: list, backend: ScriptedTestBackend, rows=ROWS) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    recipe = Recipe(name="judges", sources=[JsonlRows(name="rows", path=str(
        write_rows(tmp_path / "rows.jsonl", rows)))], steps=steps,
        sinks=[JsonlSink(path="data.jsonl")])
    summary = asyncio.run(run_recipe(recipe, tmp_path / "out", RunOptions(backend=backend)))
    return summary.to_json()


def read(tmp_path: Path, name: str) -> list[dict]:
    text = (tmp_path / "out" / name).read_text()
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def test_arena7_scores_are_stored_per_criterion_with_analysis(tmp_path: Path) -> None:
    def judge(request, seed):
        return json.dumps(arena_answer(quoted(last_user_text(request))[0]))

    backend = ScriptedTestBackend(judge)
    summary = run(tmp_path, [JudgeRubric(name="judge", rubric="arena7")], backend)
    rows = read(tmp_path, "data.jsonl")
    assert summary["records"] == 3 and backend.calls == 3
    first = rows[0]["scores"]
    assert first["rubric"] == "arena7" and list(first["criteria"]) == list(ARENA)
    assert first["criteria"]["specificity"] == {"score": 1, "analysis": "specificity judged on "
                                                "18 words"}
    assert first["total"] == 6 and first["max_total"] == 7
    assert [r["scores"]["total"] for r in rows] == [6, 0, 3]
    # The judge saw the instruction alone: the response is not in the prompt.
    assert all("def merge" not in p for p in backend.prompts)
    assert rows[0]["_meta"]["step"] == "judge" and rows[0]["_meta"]["template_hash"]


def test_min_total_drops_with_the_scores_in_the_reason(tmp_path: Path) -> None:
    def judge(request, seed):
        return json.dumps(arena_answer(quoted(last_user_text(request))[0]))

    summary = run(tmp_path, [JudgeRubric(name="judge", rubric="arena7", min_total=4)],
                  ScriptedTestBackend(judge))
    step = summary["steps"][1]
    assert step["in"] == 3 and step["out"] == 1 and step["dropped"] == 2
    dropped = read(tmp_path, "dropped.jsonl")
    reasons = sorted(d["reason"] for d in dropped)
    assert reasons[0].startswith("arena7 total 0/7 (specificity=0,")
    assert reasons[0].endswith("< min_total 4")
    assert reasons[1].startswith("arena7 total 3/7 (specificity=1, domain_knowledge=1, "
                                 "complexity=1, problem_solving=0,")
    assert {d["record"]["instruction"] for d in dropped} == {ROWS[1]["instruction"],
                                                             ROWS[2]["instruction"]}


def test_bad_json_is_repaired_reasked_and_counted(tmp_path: Path) -> None:
    seen: dict[str, int] = {}

    def sloppy(request, seed):
        instruction = quoted(judged_text(request))[0]
        seen[instruction] = seen.get(instruction, 0) + 1
        good = arena_answer(instruction)
        if instruction.startswith("Write"):
            # Fenced, single-quoted, trailing comma: json-repair fixes it without a re-ask.
            return "Here you go:\n```json\n" + json.dumps(good).replace('"', "'")[:-1] + ",}\n```"
        if instruction.startswith("hi"):
            # A score off the scale first; valid after the re-ask with the errors.
            if seen[instruction] == 1:
                return json.dumps({**good, "creativity": {"analysis": "x", "score": 3}})
            return json.dumps(good)
        return json.dumps({"specificity": {"analysis": "only one", "score": 1}})  # never valid

    backend = ScriptedTestBackend(sloppy)
    summary = run(tmp_path, [JudgeRubric(name="judge", rubric="arena7")], backend)
    rows = read(tmp_path, "data.jsonl")
    assert [r["scores"]["total"] for r in rows] == [6, 0]
    failed = read(tmp_path, "failed.jsonl")
    assert [f["error_class"] for f in failed] == ["StructuredOutputError"]
    assert "'domain_knowledge' is a required property" in failed[0]["message"]
    # One re-ask for "hi", two for the never-valid one; every call is counted on the step.
    assert summary["llm"]["structured_repairs"] == 3
    assert summary["steps"][1]["llm_calls"] == backend.calls == 1 + 2 + 3


def test_ultrafeedback_judges_the_response_and_needs_its_column(tmp_path: Path) -> None:
    def judge(request, seed):
        instruction, answer = quoted(last_user_text(request))
        score = 5 if len(answer) > 10 else 3 if len(answer) > 3 else 2
        return json.dumps({c: {"analysis": f"{c}: {answer[:10]}", "score": score} for c in UF})

    backend = ScriptedTestBackend(judge)
    run(tmp_path, [JudgeRubric(name="uf", rubric="ultrafeedback", response="response",
                               output="quality")], backend)
    rows = read(tmp_path, "data.jsonl")
    assert [r["quality"]["total"] for r in rows] == [20, 12, 8]
    assert rows[0]["quality"]["criteria"]["honesty"]["analysis"] == "honesty: def merge("
    assert rows[0]["quality"]["max_total"] == 20
    with pytest.raises(RecipeError, match="set 'response'"):
        run(tmp_path / "x", [JudgeRubric(name="uf", rubric="ultrafeedback")],
            ScriptedTestBackend(judge))


def test_judging_the_instruction_alone_ignores_response_changes(tmp_path: Path) -> None:
    def judge(request, seed):
        return json.dumps(arena_answer(quoted(last_user_text(request))[0]))

    steps = [JudgeRubric(name="judge", rubric="arena7")]
    run(tmp_path, steps, ScriptedTestBackend(judge))
    changed = [{**r, "response": r["response"] + " (edited)"} for r in ROWS]
    again = ScriptedTestBackend(judge)
    summary = run(tmp_path, [JudgeRubric(name="judge", rubric="arena7")], again, rows=changed)
    assert again.calls == 0 and summary["steps"][1]["cached"] == 3


def test_custom_rubric_template_with_its_own_criteria_and_scale(tmp_path: Path) -> None:
    template = tmp_path / "mine.jinja"
    template.write_text('Rate clarity and depth from 0 to 10 of:\n"""\n{{ instruction }}\n"""\n'
                        "Topic hint: {{ topic }}")

    def judge(request, seed):
        text = last_user_text(request)
        assert "Topic hint: money" in text
        return json.dumps({"clarity": {"analysis": "clear", "score": 9},
                           "depth": {"analysis": "shallow", "score": 2}})

    rows = [{"instruction": "Explain interest rates", "topic": "money"}]
    step = JudgeRubric(name="judge", rubric=str(template), criteria=["clarity", "depth"],
                       scale=(0, 10))
    run(tmp_path, [step], ScriptedTestBackend(judge), rows=rows)
    [row] = read(tmp_path, "data.jsonl")
    assert row["scores"] == {"rubric": "mine", "total": 11, "max_total": 20, "criteria": {
        "clarity": {"score": 9, "analysis": "clear"}, "depth": {"score": 2, "analysis": "shallow"}}}
    assert step.reads() == ["instruction", "topic"]
    schema = {"type": "object", "required": ["clarity", "depth"], "properties": {
        "clarity": {"type": "object"}, "depth": {"type": "object"}}}
    by_schema = JudgeRubric(name="j", rubric=str(template), schema=schema, scale=(0, 10))
    by_schema.setup(type("C", (), {"recipe_dir": None})())
    assert by_schema._judge.criteria == ("clarity", "depth") and by_schema._judge.schema == schema
    with pytest.raises(RecipeError, match="needs 'criteria'"):
        JudgeRubric(name="j", rubric=str(template)).setup(type("C", (), {"recipe_dir": None})())
    with pytest.raises(RecipeError, match="expected one of arena7, ultrafeedback"):
        JudgeRubric(name="j", rubric="nope").setup(type("C", (), {"recipe_dir": None})())


def test_filter_score_thresholds(tmp_path: Path) -> None:
    def judge(request, seed):
        return json.dumps(arena_answer(quoted(last_user_text(request))[0]))

    summary = run(tmp_path, [JudgeRubric(name="judge", rubric="arena7"),
                             FilterScore(name="keep", min_total=1,
                                         min_criteria={"problem_solving": 1})],
                  ScriptedTestBackend(judge))
    keep = summary["steps"][2]
    assert keep["in"] == 3 and keep["out"] == 1 and keep["dropped"] == 2
    reasons = sorted(d["reason"] for d in read(tmp_path, "dropped.jsonl"))
    assert reasons[0].startswith("problem_solving=0 < 1 (total 3/7")
    assert reasons[1].startswith("total 0/7") and reasons[1].endswith("< min_total 1")


def test_normalise_scores_validates_every_criterion() -> None:
    scale = (1, 5)
    ok = normalise_scores({"a": {"score": "4", "analysis": " fine "}, "b": 2}, "r", ("a", "b"),
                          scale)
    assert ok == {"rubric": "r", "total": 6, "max_total": 10,
                  "criteria": {"a": {"score": 4, "analysis": "fine"}, "b": {"score": 2}}}
    with pytest.raises(ValueError, match="lacks criterion 'b'"):
        normalise_scores({"a": 3}, "r", ("a", "b"), scale)
    with pytest.raises(ValueError, match="outside 1..5"):
        normalise_scores({"a": 0, "b": 3}, "r", ("a", "b"), scale)
    with pytest.raises(ValueError, match="no numeric score"):
        normalise_scores({"a": "great", "b": 3}, "r", ("a", "b"), scale)
    schema = rubric_schema(("a",), (0, 1), rationale=False, max_chars=10)
    assert schema["properties"]["a"]["properties"] == {"score": {"type": "integer",
                                                                 "enum": [0, 1]}}
