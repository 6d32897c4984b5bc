"""Static checks and sandbox runs of solution + tests programs (no LLM here).

The program that runs is exactly ``solution + "\\n\\n" + tests`` (what a record stores), with a
sentinel print appended, so an early ``sys.exit(0)`` in the tests cannot pass for a success.
Tests written as ``def test_...():`` functions get calls appended to ``tests`` (as pytest would
collect them), so the asserts inside them really run; the stored ``tests`` include those calls.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from synthloom.verify.answers import PYTHON, code_block, fenced_blocks
from synthloom.verify.sandbox import SandboxLimits, SandboxResult, run_python

SENTINEL = "__synthloom_tests_reached_the_end__"
#: An exception line of a traceback: ``AssertionError``, ``NameError: name 'x' ...``.
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def strip_fences(text: str) -> str:
    """The code inside the first fenced block (the shared reader,
    :func:`synthloom.verify.answers.code_block`), or the text itself."""
    block = code_block(text)
    return (block if block is not None else text or "").strip("\n").rstrip()


def split_reply(text: str) -> tuple[str, str, str]:
    """A fenced-code reply as (the prose before the first block, solution, tests).

    The tests are the top-level ``assert`` statements, ``test*`` functions and calls to them;
    everything else is the solution. When the code does not parse as a whole, the first block
    is the solution and the later blocks are the tests (the run then reports the error).
    """
    text = text or ""
    first = text.find("```")
    preface = (text if first < 0 else text[:first]).strip()
    blocks = [b.content for b in fenced_blocks(text, PYTHON)]
    if not blocks:
        return preface, "", ""
    joined = "\n\n".join(blocks)
    try:
        tree = ast.parse(joined)
    except SyntaxError:
        return preface, blocks[0], "\n\n".join(blocks[1:])
    lines = joined.splitlines()
    solution: list[str] = []
    tests: list[str] = []
    for node in tree.body:
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        segment = "\n".join(lines[start - 1: node.end_lineno])
        (tests if _is_test_node(node) else solution).append(segment)
    return preface, "\n".join(solution), "\n".join(tests)


def _is_test_node(node: ast.stmt) -> bool:
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.FunctionDef | ast.ClassDef):
        return node.name.lower().startswith("test")
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        return isinstance(func, ast.Name) and func.id.lower().startswith("test")
    return False


@dataclass
class Checked:
    """A program that passed the static checks: tests as they will run, and facts about it."""

    tests: str
    functions: list[str]
    asserts: int


def check_program(solution: str, tests: str) -> Checked | str:
    """``Checked``, or why the pair cannot be a verified example (a drop reason)."""
    try:
        sol_tree = ast.parse(solution)
    except SyntaxError as exc:
        return f"solution does not parse: {exc.msg} (line {exc.lineno})"
    try:
        test_tree = ast.parse(tests)
    except SyntaxError as exc:
        return f"tests do not parse: {exc.msg} (line {exc.lineno})"
    functions = [n.name for n in sol_tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    if not functions:
        return "solution defines no function"
    asserts = sum(isinstance(n, ast.Assert) for n in ast.walk(test_tree))
    if asserts == 0:
        return "tests have no assert statements"
    called = {n.func.id for n in ast.walk(test_tree)
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    called |= {n.func.attr for n in ast.walk(test_tree)
               if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    if not called & set(functions):
        return f"tests never call the solution's functions ({', '.join(functions)})"
    redefined = [n.name for n in test_tree.body
                 if isinstance(n, ast.FunctionDef) and n.name in functions]
    if redefined:
        return f"tests redefine the solution's functions ({', '.join(redefined)})"
    # Test functions nobody calls would pass without running an assert.
    top_calls = {n.value.func.id for n in test_tree.body
                 if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
                 and isinstance(n.value.func, ast.Name)}
    uncalled = [n.name for n in test_tree.body if isinstance(n, ast.FunctionDef)
                and n.name.startswith("test") and not n.args.args and n.name not in top_calls]
    if uncalled:
        tests = tests.rstrip() + "\n\n" + "\n".join(f"{name}()" for name in uncalled)
    return Checked(tests=tests, functions=functions, asserts=asserts)


def program_of(solution: str, tests: str) -> str:
    """What runs: the record's solution, then its tests."""
    return f"{solution.rstrip()}\n\n{tests.strip()}\n"


def first_error_line(result: SandboxResult) -> str:
    """The exception line of a traceback (``AssertionError``, ``NameError: ...``), else the
    sandbox's reason."""
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    for line in lines:
        if _ERROR_LINE.match(line):
            return line[:200]
    return (lines[-1] if lines else result.reason or result.status)[:200]


async def run_tests(solution: str, tests: str, limits: SandboxLimits) -> tuple[SandboxResult, bool]:
    """Run solution + tests; whether they passed (exit 0 and the end was reached)."""
    result = await run_python(f"{program_of(solution, tests)}\nprint({SENTINEL!r})\n", limits)
    reached = SENTINEL in result.stdout
    result.stdout = result.stdout.replace(f"{SENTINEL}\n", "").replace(SENTINEL, "")
    return result, result.status == "ok" and reached


def snippet_columns(record: dict[str, Any]) -> dict[str, str]:
    seed = record.get("seed_snippet")
    return seed if isinstance(seed, dict) else {"source": str(seed or ""), "origin": "unknown"}
