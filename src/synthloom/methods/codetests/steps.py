"""OSS-Instruct with executed tests, as synthloom steps.

* ``code_snippets`` (source): real code seeds: a JSONL (``code``/``source`` + ``origin``), or
  Python files / a folder, whose top-level functions are taken with ``ast``.
* ``codetests_problem``: a problem inspired by the snippet (OSS-Instruct's prompt).
* ``codetests_solution``: solution + assert-based tests for the problem (fenced code blocks;
  asserts and ``test*`` functions are the tests, the rest is the solution).
* ``codetests_run``: static checks (both parse, the tests assert and call the solution), then
  solution + tests run in the sandbox (``verify/sandbox.py``); kept only when they pass, else
  dropped with the sandbox status and the first error line.

LATM (the tool-maker recipe) lives in ``synthloom.methods.latm``.
"""

from __future__ import annotations

import ast
import asyncio
from abc import abstractmethod
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import resolve_data_path
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import (
    MapStep,
    SourceFailure,
    SourceStep,
    StepConfig,
    jsonl_source_rows,
)
from synthloom.llm.types import LLMResponse
from synthloom.methods.codetests.programs import (
    Checked,
    check_program,
    first_error_line,
    run_tests,
    snippet_columns,
    split_reply,
)
from synthloom.methods.codetests.stdlib_snippets import stdlib_snippets
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.verify.sandbox import SandboxLimits

# --- seeds ---------------------------------------------------------------------------------


class SnippetsConfig(StepConfig):
    #: ``stdlib`` (functions of the running Python's standard library), JSONL rows with
    #: ``code`` (or ``source``) and ``origin``, or a .py file / folder.
    path: str = "stdlib"
    #: Snippets shorter than this many lines are skipped.
    min_lines: int = 3
    #: Snippets longer than this many lines are skipped.
    max_lines: int = 40


@register_step
class CodeSnippets(SourceStep):
    """Seed snippets: ``seed_snippet`` = {source, origin}, and ``snippet_index``."""

    type_name = "code_snippets"
    Config = SnippetsConfig
    config: SnippetsConfig

    def read(self, ctx: RunContext) -> Iterator[dict[str, Any] | SourceFailure]:
        if self.config.path == "stdlib":
            items = ({"source": row["code"], "origin": row["origin"]} for row in stdlib_snippets())
            yield from self._keep(items, 0)
            return
        root = resolve_data_path(self.config.path, ctx.recipe_dir)
        if not root.exists():
            raise RecipeError(f"snippets not found: {self.config.path}")
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        index = 0
        for file in files:
            if file.suffix == ".jsonl":
                items = self._jsonl(file)
            elif file.suffix == ".py":
                items = self._python(file)
            else:
                continue
            index = yield from self._keep(items, index)

    def _keep(self, items: Iterator[dict[str, str] | SourceFailure], index: int
              ) -> Generator[dict[str, Any] | SourceFailure, None, int]:
        for item in items:
            if isinstance(item, SourceFailure):
                yield item
                continue
            lines = len(item["source"].splitlines())
            if self.config.min_lines <= lines <= self.config.max_lines:
                yield {"seed_snippet": item, "snippet_index": index}
                index += 1
        return index

    def _jsonl(self, file: Path) -> Iterator[dict[str, str] | SourceFailure]:
        for item in jsonl_source_rows(file):
            if isinstance(item, SourceFailure):
                yield item
                continue
            number, row = item
            code = str(row.get("code") or row.get("source") or "")
            if code.strip():
                yield {"source": code, "origin": str(row.get("origin") or f"{file}:{number}")}

    def _python(self, file: Path) -> Iterator[dict[str, str] | SourceFailure]:
        source = file.read_text(encoding="utf-8", errors="replace")
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            yield SourceFailure(str(file), "SyntaxError", str(exc)[:200])
            return
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                code = ast.get_source_segment(source, node)
                if code:
                    yield {"source": code, "origin": f"{file.name} ({node.name}, lines "
                                                     f"{node.lineno}-{node.end_lineno})"}


# --- LLM steps -----------------------------------------------------------------------------


def _string(max_chars: int, min_chars: int = 1) -> dict[str, Any]:
    return {"type": "string", "minLength": min_chars, "maxLength": max_chars}


def _object(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


class _JsonStepConfig(StepConfig):
    #: Jinja prompt template (the recipe's folder first, then the shipped ones); its variables are
    #: the record's columns.
    template: str
    #: Sampling temperature.
    temperature: float = 0.7
    #: Most tokens the model may write per call.
    max_tokens: int = 512


class _JsonStep(TemplatedStep, MapStep):
    """One structured call per record with the step's template; subclasses read the object."""

    uses_llm = True
    config: Any

    def reads(self) -> list[str]:
        return sorted(self.template().variables - self._config_variables())

    def _config_variables(self) -> set[str]:
        return set()

    @abstractmethod
    def schema(self) -> dict[str, Any] | None:
        """The JSON schema of the reply (None: plain text)."""

    async def _ask(self, variables: dict[str, Any], ctx: ItemContext) -> LLMResponse:
        return await self.ask(ctx, variables, schema=self.schema())


class ProblemConfig(_JsonStepConfig):
    template: str = "codetests/prompts/problem.jinja"
    max_tokens: int = 320
    #: Longest problem statement, in characters (schema maxLength; under 6 words: dropped).
    problem_max_chars: int = Field(default=600, ge=40, le=900)


@register_step
class CodeTestsProblem(_JsonStep):
    """OSS-Instruct: a self-contained problem inspired by the seed snippet."""

    type_name = "codetests_problem"
    Config = ProblemConfig
    config: ProblemConfig

    def schema(self) -> dict[str, Any]:
        return _object({"problem": _string(self.config.problem_max_chars, 20)})

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        response = await self._ask({**record, "seed_snippet": snippet_columns(record)}, ctx)
        problem = str(parsed_object(response).get("problem", "")).strip()
        if len(problem.split()) < 6:
            return ItemResult.drop(f"problem too short: {problem!r}")
        return self.output(response, {"problem": problem})


class SolutionConfig(_JsonStepConfig):
    template: str = "codetests/prompts/solution.jinja"
    temperature: float = 0.4
    max_tokens: int = 512


@register_step
class CodeTestsSolution(_JsonStep):
    """A solution and assert-based tests for the problem (the snippet is not shown), as fenced
    code blocks: code reads better to a model as code than as an escaped JSON string."""

    type_name = "codetests_solution"
    Config = SolutionConfig
    config: SolutionConfig

    def schema(self) -> dict[str, Any] | None:
        return None

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        response = await self._ask(record, ctx)
        _, solution, tests = split_reply(response.text)
        if not solution:
            return ItemResult.drop(f"no code block in the reply{_cut(response)}")
        return self.output(response, {"solution": solution, "tests": tests})


def _cut(response: LLMResponse) -> str:
    return " (cut off at max_tokens)" if response.finish_reason == "length" else ""


class RunConfig(StepConfig):
    #: Column with the code under test (``tool`` for LATM).
    solution: str = "solution"
    #: Column with the assert-based tests (rewritten to the checked tests).
    tests: str = "tests"
    #: Wall-clock limit of one sandboxed run, in seconds.
    timeout_s: float = 5.0
    #: Memory limit of one sandboxed run, in MiB.
    memory_mb: int = 256
    #: Sandboxes running at once (each is a process).
    concurrency: int = 4
    #: Keep failing programs too (``verified: false``) instead of dropping them.
    keep_failing: bool = False


@register_step
class CodeTestsRun(MapStep):
    """Static checks, then solution + tests in the sandbox; kept only when every assert ran
    and passed (``verified: true``)."""

    type_name = "codetests_run"
    Config = RunConfig
    config: RunConfig

    def setup(self, ctx: RunContext) -> None:
        self._gate: asyncio.Semaphore | None = None

    def reads(self) -> list[str]:
        return [self.config.solution, self.config.tests]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        if getattr(self, "_gate", None) is None:
            self._gate = asyncio.Semaphore(cfg.concurrency)
        solution = str(record.get(cfg.solution) or "")
        tests = str(record.get(cfg.tests) or "")
        checked = check_program(solution, tests)
        if not isinstance(checked, Checked):
            return self._reject(f"not runnable: {checked}",
                                {"test_status": "not_run", "stdout": ""})
        limits = SandboxLimits(timeout_s=cfg.timeout_s, memory_mb=cfg.memory_mb,
                               output_bytes=8000)
        async with self._gate:
            result, passed = await run_tests(solution, checked.tests, limits)
        columns = {cfg.tests: checked.tests, "test_status": result.status,
                   "stdout": result.stdout[-2000:], "test_count": checked.asserts,
                   "functions": checked.functions}
        if not passed:
            line = first_error_line(result) if result.status != "ok" else \
                "the tests exited before their end"
            return self._reject(f"tests {result.status}: {line}", columns)
        return Output(columns={**columns, "verified": True})

    def _reject(self, reason: str, columns: dict[str, Any]) -> Output | ItemResult:
        if self.config.keep_failing:
            return Output(columns={**columns, "verified": False, "reject_reason": reason})
        return ItemResult.drop(reason)
