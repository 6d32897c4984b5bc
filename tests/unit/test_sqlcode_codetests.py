"""code-tests (OSS-Instruct) with the scripted test backend (a test double for the model); the
sandbox runs are real, and every kept record is run again. tool-maker (LATM) is tested in
test_latm.py: its old snippet-seeded steps here were replaced by the authors' pipeline."""

from __future__ import annotations

import ast
import asyncio
import json
import re
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.context import RunContext
from synthloom.core.recipe import Recipe
from synthloom.core.registry import step_type
from synthloom.methods.codetests.programs import (
    Checked,
    check_program,
    program_of,
    split_reply,
    strip_fences,
)
from synthloom.methods.codetests.stdlib_snippets import stdlib_snippets
from synthloom.verify.sandbox import run_python_sync
from tests.support.runs import read_jsonl, step_closes
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

# Keyed on the seed snippet's function (the first five bundled snippets).
SOLUTIONS = {
    "wrap": ("def wrap_words(text, width):\n    import textwrap\n    return textwrap.wrap("
             "text, width)", "def test_wrap():\n    assert wrap_words('a b c', 1) == "
             "['a', 'b', 'c']\n    assert wrap_words('', 3) == []"),           # passes
    "fill": ("def fill_text(t):\n    return t.upper()", "assert fill_text('a') == 'a'"),  # fails
    "shorten": ("def shorten(s):\n    while True:\n        pass",
                "assert shorten('x') == 'x'"),                                  # timeout
    "capwords": ("def capwords(s):\n    return s.title()",
                 "import sys\nsys.exit(0)\nassert capwords('a') == 'B'"),       # exits early
    "split": ("def split_words(s):\n    return s.split()", "print(split_words('a b'))"),
}


def function_of(text: str) -> str:
    return re.search(r"\((\w+), lines \d+-\d+\)", text).group(1)


def responder(request, seed) -> str:
    system = request.messages[0]["content"]
    text = last_user_text(request)
    if "programming exercises" in system:
        return json.dumps({"problem": f"PROBLEM[{function_of(text)}]: write a function that "
                                      "does the same job differently."})
    if "expert Python programmer" in system:
        name = re.search(r"PROBLEM\[(\w+)\]", text).group(1)
        solution, tests = SOLUTIONS[name]
        return f"Here it is:\n```python\n{solution}\n```\nTests:\n```python\n{tests}\n```"
    raise AssertionError(system)


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend, limit: int) -> dict:
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, limit=limit))).to_json()


def test_code_tests_keeps_only_passing_solutions(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(responder)
    summary = run(Recipe.load("code-tests", {"timeout": "2"}), tmp_path / "out", backend, 5)
    steps = {s["name"]: s for s in summary["steps"]}
    assert all(step_closes(s) for s in steps.values())
    assert steps["run_tests"]["in"] == 5 and steps["run_tests"]["out"] == 1
    assert steps["problem"]["llm_calls"] == 5 == steps["solution"]["llm_calls"]
    [kept] = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert kept["seed_snippet"]["origin"].startswith("CPython ")
    assert "def wrap(" in kept["seed_snippet"]["source"]
    assert kept["solution"].startswith("def wrap_words")  # fences stripped
    assert kept["tests"].endswith("test_wrap()")  # the uncalled test function is called
    assert kept["test_status"] == "ok" and kept["verified"] is True and kept["test_count"] == 2
    again = run_python_sync(program_of(kept["solution"], kept["tests"]))
    assert again.status == "ok"
    reasons = {re.search(r"\[(\w+)\]", d["record"]["problem"]).group(1): d["reason"]
               for d in read_jsonl(tmp_path / "out" / "dropped.jsonl")}
    assert reasons["fill"] == "tests error: AssertionError"
    assert reasons["shorten"].startswith("tests timeout")
    assert reasons["capwords"] == "tests ok: the tests exited before their end"
    assert reasons["split"] == "not runnable: tests have no assert statements"


def test_keep_failing_marks_instead_of_dropping(tmp_path: Path) -> None:
    recipe = Recipe.load("code-tests", {"timeout": "2", "keep_failing": "true"})
    summary = run(recipe, tmp_path / "out", ScriptedTestBackend(responder), 2)
    assert next(s for s in summary["steps"] if s["name"] == "run_tests")["out"] == 2
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert [r["verified"] for r in kept] == [True, False]
    assert kept[1]["reject_reason"] == "tests error: AssertionError"


def test_static_checks() -> None:
    assert check_program("def f(:", "assert f()").startswith("solution does not parse")
    assert check_program("x = 1", "assert x") == "solution defines no function"
    assert check_program("def f():\n    return 1", "assert 1 == 1") == \
        "tests never call the solution's functions (f)"
    assert check_program("def f():\n    return 1", "def f():\n    return 2\nassert f() == 2") \
        == "tests redefine the solution's functions (f)"
    checked = check_program("def f():\n    return 1", "def test_one():\n    assert f() == 1\n"
                            "def test_two():\n    assert f() == 1\ntest_two()")
    assert isinstance(checked, Checked) and checked.tests.endswith("test_two()\n\ntest_one()")
    assert strip_fences("```py\nx = 1\n```") == "x = 1" and strip_fences("y = 2") == "y = 2"


def test_split_reply() -> None:
    one_block = ("Sure.\n```python\nimport math\n\n@staticmethod\ndef f(x):\n    return x\n\n"
                 "assert f(1) == 1\ndef test_f():\n    assert f(2) == 2\ntest_f()\n```")
    assert split_reply(one_block) == (
        "Sure.", "import math\n@staticmethod\ndef f(x):\n    return x",
        "assert f(1) == 1\ndef test_f():\n    assert f(2) == 2\ntest_f()")
    # Code that does not parse as a whole: first block, then the rest (cut off at the end).
    assert split_reply("```python\ndef g(:\n```\n```python\nassert g()") == (
        "", "def g(:", "assert g()")
    assert split_reply("no code at all") == ("no code at all", "", "")


def test_stdlib_snippets_are_real_functions(tmp_path: Path) -> None:
    rows = stdlib_snippets()
    assert len(rows) >= 30 and rows == stdlib_snippets()  # deterministic
    for row in rows:
        tree = ast.parse(row["code"])
        assert [n.name for n in tree.body] == [row["function"]]
        assert row["origin"].startswith("CPython 3.") and row["function"] in row["origin"]
    # A .py file as the source: its top-level functions become snippets.
    source = tmp_path / "mod.py"
    source.write_text("import os\n\ndef a(x):\n    y = x + 1\n    return y * 2\n\n"
                      "def b():\n    return 1\n")
    step = step_type("code_snippets")(name="s", path=str(source))
    found = list(step.read(RunContext(run_dir=tmp_path)))
    assert [f["seed_snippet"]["origin"] for f in found] == ["mod.py (a, lines 3-5)"]
