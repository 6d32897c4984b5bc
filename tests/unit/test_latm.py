"""tool-maker (LATM) with the scripted test backend (a test double that plays the tool maker,
the dispatcher and the tool user by reading the prompts); every sandbox run is real.

Each stage has a test that fails without it: the repair loop (a first proposal that raises is
fixed), verification on held-out validation examples (a tool wrong on them is dropped), the gold
check of the unit tests, wrapping (the wrapped function must pass the verified tests), the
dispatcher (held-out tasks go to unknown) and the tool user scored against gold.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.methods.latm.steps import answer_program, first_use_case
from synthloom.methods.latm.tasks import GENERATORS, make_task, split
from synthloom.verify.sandbox import run_python_sync
from tests.support.runs import assert_closed, read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

DATA = Path(__file__).resolve().parents[2] / "src" / "synthloom" / "data" / "latm"

SORT_TOOL = "def sort_words(words):\n    return sorted(words)"
CRT_TOOL = ("def find_number(limit, remainders):\n    for n in range(1, limit + 1):\n"
            "        if all(n % m == r for m, r in remainders.items()):\n            return n")
SWAP_TOOL = "def final_ball(question):\n    return '(A)'"  # wrong on validation


def _task_of(first_user: str) -> str:
    for cue, task in (("Sort the following", "word_sorting"), ("whole number", "remainders"),
                      ("swap balls", "swap_tracking"), ("parentheses", "bracket_closing")):
        if cue in first_user:
            return task
    raise AssertionError(first_user[:200])


def _call(task: str, question: str, wrong: bool = False) -> str:
    """A tool-user call (and unit-test body) for one question of a task."""
    if task == "word_sorting":
        words = question.split("List: ")[1].split()
        order = "reverse=True" if wrong else ""
        return f"ret = sort_words({words!r})\nans = ' '.join(sorted(ret, {order}))"
    if task == "remainders":
        limit = int(re.search(r"between 1 and (\d+)", question).group(1))
        rems = {int(m): int(r) for m, r in re.findall(r"divided by (\d+) it leaves (\d+)",
                                                      question)}
        return f"ret = find_number({limit}, {rems!r})\nans = str(ret)"
    return f"ret = final_ball({question!r})\nans = ret"


def _demos(text: str) -> list[tuple[str, str]]:
    return re.findall(r"Question: (.*?)\nAnswer: (.*?)\n\n", text, re.DOTALL)


def _tool(task: str) -> str:
    return {"word_sorting": SORT_TOOL, "remainders": CRT_TOOL, "swap_tracking": SWAP_TOOL}[task]


def responder(request, seed, *, trivial_tests: bool = False) -> str:
    messages = request.messages
    last = last_user_text(request)
    if last.startswith("Here are several questions"):  # the dispatcher
        question = last.split("Classify the following question")[1]
        offered = re.findall(r"^Task: (\w+)$", last, re.MULTILINE)
        task = _task_of(question)
        return f"Task: {task if task in offered else 'unknown'}"
    if last.startswith("Here is a function"):  # the tool user: wrapper + question
        question = last.rsplit("\n\nQuestion: ", 1)[1]
        task = _task_of(question)
        wrong = task == "word_sorting" and "badger" in question  # a tool-user slip
        return f"```python\n{_call(task, question, wrong)}\n```"
    task = _task_of(messages[0]["content"])
    if "All the function should be wrapped by" in last:  # propose
        if task == "bracket_closing":
            return "I would use a stack."  # never code: dropped at propose
        if task == "word_sorting":  # first proposal raises; repaired below
            return f"```python\n{SORT_TOOL}\nsort_words(undefined_list)\n```"
        return f"```python\n{_tool(task)}\n```"
    if last.startswith("Failed to execute"):
        if task == "bracket_closing":
            return "Sorry, I would still use a stack."
        return f"Fixed:\n```python\n{_tool(task)}\n```"
    if "Write unit tests" in last or last.startswith("Failed to verify"):
        asked = next(m["content"] for m in reversed(messages)
                     if "Write unit tests" in m.get("content", ""))
        demos = _demos(asked)
        if trivial_tests:  # runs, but compares with no gold answer
            return f"```python\n{_call(task, demos[0][0])}\nassert ans is not None\n```"
        body = "\n".join(f"{_call(task, q)}\nassert ans == {a!r}" for q, a in demos)
        return f"```python\n{body}\n```"
    if last.startswith("Success!"):
        verify = next(m["content"] for m in messages if "Write unit tests" in m["content"])
        (question, _), *_ = _demos(verify)
        function = _tool(task) if task != "remainders" else CRT_TOOL
        return (f"Here is a function to solve a class of problems:\n```python\n{function}\n```"
                f"\n\nUse cases:\nQuestion: {question}\nSolution:\n```python\n"
                f"{_call(task, question)}\n```")
    raise AssertionError(last[:200])


def run(out: Path, backend: ScriptedTestBackend, **params: str) -> dict[str, Any]:
    recipe = Recipe.load("tool-maker", {"timeout": "3", **params})
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend))).to_json()


def steps_of(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in summary["steps"]}


def test_shipped_tasks_are_the_generators_output_and_right() -> None:
    for name in GENERATORS:
        shipped = json.loads((DATA / f"{name}.json").read_text())
        assert shipped == make_task(name), name
        train, val, test = split(shipped["examples"])
        assert (len(train), len(val), len(test)) == (5, 5, 10)
    for e in make_task("word_sorting")["examples"]:
        assert e["target"] == " ".join(sorted(e["input"].split("List: ")[1].split()))
    for e in make_task("remainders")["examples"]:
        n = int(e["target"])
        for m, r in re.findall(r"divided by (\d+) it leaves (\d+)", e["input"]):
            assert n % int(m) == int(r)


def test_scripted_backend_latm_every_stage(tmp_path: Path) -> None:
    out = tmp_path / "out"
    backend = ScriptedTestBackend(responder)
    summary = run(out, backend, holdout='["remainders"]')
    assert_closed(summary)
    steps = steps_of(summary)
    assert steps["tasks"]["out"] == 4
    dropped = read_jsonl(out / "dropped.jsonl")
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for d in dropped:
        assert d["reason"].startswith(f"{d['step']}:"), d  # the stage is the reason's head
        by_stage.setdefault(d["step"], []).append(d)
    # propose: bracket_closing never wrote code in 3 tries; word_sorting was repaired.
    [bracket] = by_stage["propose"]
    assert bracket["record"]["task"] == "bracket_closing"
    assert bracket["reason"].startswith("propose: no executable tool after 3 tries")
    # verify: the always-(A) tool fails a validation example's gold answer, 3 times.
    [swap] = by_stage["verify"]
    assert swap["record"]["task"] == "swap_tracking"
    assert "AssertionError" in swap["reason"]
    assert steps["wrap"]["out"] == 2
    # dispatch: remainders is held out, so its 10 test questions are (correctly) unknown.
    assert len(by_stage["dispatch"]) == 10
    assert all("classified unknown" in d["reason"] and "(correct:" in d["reason"]
               for d in by_stage["dispatch"])
    # use: the tool user's slips (reverse order on questions with "badger") are wrong answers.
    slips = by_stage["use"]
    assert slips and all(d["reason"].startswith("use: wrong answer") for d in slips)
    kept = read_jsonl(out / "data.jsonl")
    assert len(kept) + len(slips) == 10  # word_sorting's 10 test questions
    for record in kept:
        assert record["task"] == record["dispatched_task"] == "word_sorting"
        assert record["correct"] is True and record["tool_answer"] == record["answer"]
        assert record["dispatch_correct"] is True
        # The kept program re-runs to the same answer.
        assert run_python_sync(record["program"]).stdout.strip().endswith(record["answer"])
    assert "conversation" not in kept[0] and "train" not in kept[0]  # instances are slim
    # The repair loop: word_sorting's first tool raised, the model was told, the fix passed.
    told = [p for p in backend.prompts if p.startswith("Failed to execute")]
    assert sum(backend.prompts[p] for p in told) == 3  # bracket_closing twice (then dropped), word_sorting once
    assert any(p.startswith("Failed to execute the function due to the error: NameError")
               for p in told)


def test_scripted_backend_latm_without_repairs_drops_the_first_bad_tool(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(out, ScriptedTestBackend(responder), tries="1", dispatch="false")
    dropped = read_jsonl(out / "dropped.jsonl")
    reasons = {d["record"]["task"]: d["reason"] for d in dropped if d["step"] == "propose"}
    assert reasons["word_sorting"].startswith("propose: no executable tool after 1 tries "
                                              "(last error: NameError")
    # remainders survives every stage; with dispatch off its questions go to its own tool.
    kept = read_jsonl(out / "data.jsonl")
    assert len(kept) == 10 and {r["task"] for r in kept} == {"remainders"}


def test_scripted_backend_latm_gold_check_rejects_trivial_tests(tmp_path: Path) -> None:
    def trivial(request, seed):
        return responder(request, seed, trivial_tests=True)

    out = tmp_path / "out"
    run(out, ScriptedTestBackend(trivial), dispatch="false")
    reasons = [d["reason"] for d in read_jsonl(out / "dropped.jsonl") if d["step"] == "verify"]
    assert len(reasons) == 3 and all("must assert ans == the provided answer" in r
                                     for r in reasons)
    # Off (the authors' bare exec): trivially passing tests verify the tools.
    out2 = tmp_path / "out2"
    summary = run(out2, ScriptedTestBackend(trivial), dispatch="false", check_gold="false")
    assert steps_of(summary)["verify"]["out"] >= 2


def test_keep_wrong_scores_instead_of_dropping(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(out, ScriptedTestBackend(responder), dispatch="false", keep_wrong="true")
    rows = [r for r in read_jsonl(out / "data.jsonl") if r["task"] == "word_sorting"]
    assert len(rows) == 10
    wrong = [r for r in rows if not r["correct"]]
    assert wrong and all("badger" in r["question"] for r in wrong)


def test_answer_program_maps_options_as_the_authors() -> None:
    question = "Who?\nOptions:\n(A) red ball\n(B) blue ball"
    program = answer_program("def f():\n    return 'blue ball'", "ret = f()\nans = ret",
                             "ans", question)
    assert run_python_sync(program).stdout.strip() == "__latm_answer__:(B)"
    program = answer_program("def f():\n    return 1", "ans = f()", "ans", question)
    assert run_python_sync(program).stdout.strip() == "__latm_answer__:(A)"
    assert first_use_case("Here...\nQuestion: What is 2?\nSolution:\n```python\n```") == \
        "What is 2?"
