"""LATM's stages as synthloom steps (ctlllll/LLM-ToolMaker: toolmaker.ipynb, tooluser.ipynb).

* ``latm_tasks`` (source): tasks in the authors' ``bbh/*.json`` shape (a folder of .json files,
  or a .jsonl of task objects), split as ``get_task`` does: train 0-4, validation 5-9, test rest.
* ``latm_propose``: k training demonstrations + the tool-making prompt; the reply's python code
  runs in the sandbox, errors go back to the model ("Failed to execute the function due to the
  error ...") and it tries again, up to the authors' 3 tries.
* ``latm_verify``: validation demonstrations + the verification prompt, in the same
  conversation; tool + unit tests run in the sandbox, repaired on failure (3 tries).
* ``latm_wrap``: the wrapper prompt; the reply (function + use cases) is what the tool user sees.
* ``latm_route`` (global): each verified tool's held-out test questions become instances, with
  the dispatcher's menu (one example question per offered tool, as the authors' router).
* ``latm_dispatch``: the dispatcher names the task whose tool fits, or ``unknown``.
* ``latm_use``: the tool user writes the call for a question from the wrapper; the call runs
  with the function in the sandbox and its ``ans`` is scored against the gold answer.

Every drop's reason starts with its stage (``propose:``, ``verify:``, ``wrap:``, ``dispatch:``,
``use:``), and the dropping step is that stage.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import resolve_data_path
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import (
    GlobalStep,
    MapStep,
    SourceFailure,
    SourceStep,
    StepConfig,
    jsonl_source_rows,
)
from synthloom.llm.types import LLMResponse
from synthloom.methods.codetests.programs import first_error_line, run_tests
from synthloom.methods.latm.tasks import split
from synthloom.prompting.templated import TemplatedStep
from synthloom.verify.answers import PYTHON, fenced_blocks
from synthloom.verify.sandbox import SandboxLimits, run_python

#: The authors' loops: ``for retry in range(3)`` around proposing and around verifying.
AUTHORS_TRIES = 3
_ANSWER_MARK = "__latm_answer__:"

# --- tasks ---------------------------------------------------------------------------------


class TasksConfig(StepConfig):
    #: A folder of BBH-shaped ``.json`` tasks, one ``.json`` task, or a ``.jsonl`` of tasks.
    path: str = "pkg:data/latm"
    #: Task names to keep (default: all).
    tasks: list[str] | None = None


@register_step
class LatmTasks(SourceStep):
    """One record per task: ``task``, ``description``, ``train``, ``val``, ``test`` (each a list
    of ``{question, answer}``)."""

    type_name = "latm_tasks"
    Config = TasksConfig
    config: TasksConfig

    def read(self, ctx: RunContext) -> Iterator[dict[str, Any] | SourceFailure]:
        root = resolve_data_path(self.config.path, ctx.recipe_dir)
        if not root.exists():
            raise RecipeError(f"LATM tasks not found: {self.config.path}")
        files = sorted(root.glob("*.json*")) if root.is_dir() else [root]
        for file in files:
            if file.suffix == ".jsonl":
                for item in jsonl_source_rows(file):
                    if isinstance(item, SourceFailure):
                        yield item
                    else:
                        yield self._task(item[1], f"{file.name}:{item[0]}")
            elif file.suffix == ".json":
                yield self._task(json.loads(file.read_text(encoding="utf-8")), file.name,
                                 default_name=file.stem)

    def _task(self, data: dict[str, Any], where: str, default_name: str = ""
              ) -> dict[str, Any] | SourceFailure:
        name = str(data.get("name") or default_name)
        examples = data.get("examples") or []
        if self.config.tasks is not None and name not in self.config.tasks:
            return SourceFailure(where, "NotSelected", f"task {name!r} not in tasks")
        if len(examples) < 11:
            return SourceFailure(where, "TooFewExamples", f"task {name!r} has {len(examples)} "
                                 "examples; LATM needs 5 train + 5 validation + >= 1 test")
        train, val, test = split(examples)
        return {"task": name, "description": str(data.get("description") or ""),
                "train": train, "val": val, "test": test}


# --- the tool maker's conversation -----------------------------------------------------------


def python_code(text: str) -> str:
    """The authors' ``"\\n\\n".join(re.findall(r"```python\\n(.*?)```", ...))``: every python
    block of the reply, joined."""
    return "\n\n".join(b.content for b in fenced_blocks(text, PYTHON))


class _StageConfig(StepConfig):
    #: Jinja prompt template of the stage (its turn in the tool maker's conversation).
    template: str
    #: The authors' tool maker: temperature 0.3, max_tokens 2048.
    temperature: float = 0.3
    #: Most tokens of one reply (the authors': 2048).
    max_tokens: int = 2048
    #: Tries (the first and the repairs); the authors' loops make 3.
    tries: int = Field(default=AUTHORS_TRIES, ge=1, le=10)
    #: Demonstrations shown (the authors' train_samples / val_samples = 3).
    samples: int = Field(default=3, ge=1, le=5)
    #: Wall-clock limit of one sandboxed run, in seconds.
    timeout_s: float = 5.0
    #: Memory limit of one sandboxed run, in MiB.
    memory_mb: int = 256
    #: Sandboxes running at once.
    concurrency: int = 4


class _Stage(TemplatedStep, MapStep):
    """One stage of the tool maker's multi-turn conversation (the ``conversation`` column)."""

    uses_llm = True
    #: A reply cut off at max_tokens is what the authors would exec: its code runs or fails
    #: like any other (and a failure is repaired), so the step judges it itself.
    cut_off_is_data: ClassVar[bool] = True
    stage: ClassVar[str] = ""
    config: Any

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        self._gate: asyncio.Semaphore | None = None

    def limits(self) -> SandboxLimits:
        return SandboxLimits(timeout_s=self.config.timeout_s, memory_mb=self.config.memory_mb,
                             output_bytes=8000)

    async def sandbox(self, code: str) -> tuple[bool, str]:
        """Run ``code`` to its end: (passed, the error line the model is told)."""
        if getattr(self, "_gate", None) is None:
            self._gate = asyncio.Semaphore(self.config.concurrency)
        async with self._gate:
            result, passed = await run_tests(code, "", self.limits())
        if passed:
            return True, ""
        return False, first_error_line(result) if result.status != "ok" else \
            "the program exited before its end"

    async def reply(self, ctx: ItemContext, messages: list[dict[str, str]], attempt: int
                    ) -> LLMResponse:
        response = await self.ask(ctx, {}, messages=list(messages), seed_offset=attempt)
        messages.append({"role": "assistant", "content": response.text})
        return response

    def first_turn(self, record: dict[str, Any], demos: list[dict[str, str]]
                   ) -> list[dict[str, str]]:
        history = [dict(m) for m in record.get("conversation") or []]
        return history + self.template().render_messages({"demos": demos})

    def done(self, response: LLMResponse, columns: dict[str, Any],
             messages: list[dict[str, str]], tries: int, cut: int) -> Output:
        out = self.output(response, {**columns, "conversation": messages},
                          meta={"finish_reason": response.finish_reason})
        out.meta.update({f"{self.stage}_tries": tries, "cut_off_replies": cut})
        return out


class ProposeConfig(_StageConfig):
    #: Jinja prompt template of tool proposing (after the k training demonstrations).
    template: str = "latm/prompts/propose.jinja"


@register_step
class LatmPropose(_Stage):
    """Tool proposing: a generic function from k training demonstrations, executed in the
    sandbox; on an error the model is told it and tries again."""

    type_name = "latm_propose"
    stage = "propose"
    Config = ProposeConfig
    config: ProposeConfig

    def reads(self) -> list[str]:
        return ["train"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        messages = self.first_turn(record, list(record["train"])[: self.config.samples])
        error, cut = "", 0
        for attempt in range(self.config.tries):
            response = await self.reply(ctx, messages, attempt)
            cut += response.finish_reason == "length"
            tool = python_code(response.text)
            if not tool.strip():
                error = "SyntaxError no ```python block in the reply"
            elif not re.search(r"^def \w+\s*\(", tool, re.MULTILINE):
                error = "NameError the code defines no function"
            else:
                ok, error = await self.sandbox(tool)
                if ok:
                    return self.done(response, {"tool": tool}, messages, attempt + 1, cut)
            messages.append({"role": "user", "content": "Failed to execute the function due to "
                             f"the error: {error}. Please fix it and try again."})
        return ItemResult.drop(f"propose: no executable tool after {self.config.tries} tries "
                               f"(last error: {error})")


class VerifyConfig(_StageConfig):
    #: Jinja prompt template of tool verification (unit tests on the validation demonstrations).
    template: str = "latm/prompts/verify.jinja"
    #: The unit tests must name each validation answer (the prompt's ``assert ans == the
    #: provided answer``); off, any tests that run pass, as in the authors' ``exec``.
    check_gold: bool = True


@register_step
class LatmVerify(_Stage):
    """Tool verification: unit tests on k validation examples (question parsed into arguments,
    ``ans`` asserted equal to the gold answer), run with the tool; repaired on failure."""

    type_name = "latm_verify"
    stage = "verify"
    Config = VerifyConfig
    config: VerifyConfig

    def reads(self) -> list[str]:
        return ["conversation", "tool", "val"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        demos = list(record["val"])[: self.config.samples]
        messages = self.first_turn(record, demos)
        tool = str(record["tool"])
        error, cut = "", 0
        for attempt in range(self.config.tries):
            response = await self.reply(ctx, messages, attempt)
            cut += response.finish_reason == "length"
            tests = python_code(response.text)
            error = self.static_problem(tests, demos)
            if not error:
                ok, error = await self.sandbox(f"{tool}\n{tests}")
                if ok:
                    return self.done(response, {"verification": tests}, messages,
                                     attempt + 1, cut)
            messages.append({"role": "user", "content": "Failed to verify the function due to "
                             f"the error: {error}. Please fix it and try again."})
        return ItemResult.drop(f"verify: the tool failed its unit tests after "
                               f"{self.config.tries} tries (last error: {error})")

    def static_problem(self, tests: str, demos: list[dict[str, str]]) -> str:
        if not tests.strip():
            return "SyntaxError no ```python block in the reply"
        if not re.search(r"^\s*assert\b", tests, re.MULTILINE):
            return "AssertionError the unit tests assert nothing"
        if self.config.check_gold:
            missing = [d["answer"] for d in demos if d["answer"] not in tests]
            if missing:
                return ("AssertionError the unit tests must assert ans == the provided answer "
                        f"for every question (missing: {', '.join(map(repr, missing))})")
        return ""


class WrapConfig(_StageConfig):
    #: Jinja prompt template of tool wrapping (the function and its use cases).
    template: str = "latm/prompts/wrap.jinja"


@register_step
class LatmWrap(_Stage):
    """Tool wrapping: the function and its use cases (question -> call) as the tool user will
    see them. One call, as the authors'. The wrapped function (the wrapper's first python
    block, the authors' ``get_tool``) must still pass the verified unit tests."""

    type_name = "latm_wrap"
    stage = "wrap"
    Config = WrapConfig
    config: WrapConfig

    def reads(self) -> list[str]:
        return ["conversation", "verification"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        messages = self.first_turn(record, [])
        response = await self.reply(ctx, messages, 0)
        wrapper = response.text
        blocks = [b.content for b in fenced_blocks(wrapper, PYTHON)]
        if len(blocks) < 2 or "Question:" not in wrapper:
            return ItemResult.drop("wrap: the wrapper lacks the function and its use cases "
                                   f"({len(blocks)} python blocks, "
                                   f"{'a' if 'Question:' in wrapper else 'no'} 'Question:')")
        function = blocks[0]
        ok, error = await self.sandbox(f"{function}\n{record['verification']}")
        if not ok:
            return ItemResult.drop(f"wrap: the wrapped function fails the verified unit tests "
                                   f"({error})")
        use_cases = wrapper.count("Question:")
        return self.done(response, {"wrapper": wrapper, "function": function,
                                    "use_cases": use_cases}, messages, 1,
                         int(response.finish_reason == "length"))


# --- the dispatcher and the tool user --------------------------------------------------------


def first_use_case(wrapper: str) -> str:
    """The authors' router line: the wrapper's first use-case question."""
    part = wrapper.split("Question: ", 1)[-1]
    return part.split("Solution:")[0].split("Answer: ")[0].strip()


class RouteConfig(StepConfig):
    #: Test questions per task (default: all of them, as the authors' tool-user test).
    instances: int | None = Field(default=None, ge=1)
    #: Tasks whose tools the dispatcher is not offered (the authors' train/test task split):
    #: their questions should be routed to ``unknown``.
    holdout: list[str] = Field(default_factory=list)
    #: Tools per dispatcher menu: tasks are grouped in sorted order, a menu per group.
    menu_size: int = Field(default=8, ge=1, le=64)


@register_step
class LatmRoute(GlobalStep):
    """Every wrapped tool's held-out test questions, each with its group's dispatcher menu."""

    type_name = "latm_route"
    Config = RouteConfig
    config: RouteConfig

    def reads(self) -> list[str]:
        return ["task", "test", "wrapper"]

    async def process_all(self, records: list[dict[str, Any]], ctx: RunContext
                          ) -> list[ItemResult]:
        cfg = self.config
        order = sorted(range(len(records)), key=lambda i: str(records[i]["task"]))
        group_of: dict[int, list[int]] = {}
        for start in range(0, len(order), cfg.menu_size):
            group = order[start: start + cfg.menu_size]
            for i in group:
                group_of[i] = group
        results = []
        for i, record in enumerate(records):
            offered = [records[j] for j in group_of[i] if records[j]["task"] not in cfg.holdout]
            menu = [{"task": r["task"], "question": first_use_case(str(r["wrapper"]))}
                    for r in offered]
            wrappers = {str(r["task"]): str(r["wrapper"]) for r in offered}
            tests = list(record["test"])[: cfg.instances]
            # replace: an instance carries its question, not its task's splits and the
            # tool maker's conversation (the tool's record, upstream, keeps those).
            outputs = [Output(columns={"task": record["task"], "question": t["question"],
                                       "answer": t["answer"], "menu": menu,
                                       "wrappers": wrappers, "instance": k}, replace=True)
                       for k, t in enumerate(tests)]
            results.append(ItemResult(outputs=outputs) if outputs
                           else ItemResult.drop("route: the task has no test questions"))
        return results


class DispatchConfig(StepConfig):
    #: Jinja prompt template of the dispatcher (the menu of tools and the question).
    template: str = "latm/prompts/dispatch.jinja"
    #: The authors' ``generate``: temperature 0.0, max_tokens 256.
    temperature: float = 0.0
    #: Most tokens of the dispatcher's answer (the authors': 256).
    max_tokens: int = 256
    #: Off: every question goes to its own task's tool (the authors' tool-user test).
    route: bool = True


@register_step
class LatmDispatch(TemplatedStep, MapStep):
    """The dispatcher: ``Task: <name>`` from the menu, or ``unknown`` (dropped: no tool fits).
    ``dispatch_correct`` says whether it chose the question's own task when offered, or
    ``unknown`` when not."""

    type_name = "latm_dispatch"
    Config = DispatchConfig
    config: DispatchConfig
    cut_off_is_data: ClassVar[bool] = True  # a cut-off reply is an unparsed one: unknown
    uses_llm = True

    def reads(self) -> list[str]:
        return ["menu", "question", "task", "wrappers"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        task, offered = str(record["task"]), set(record["wrappers"])
        if not self.config.route:
            if task not in offered:
                return ItemResult.drop(f"dispatch: no tool for {task!r} (held out)")
            return Output(columns={"dispatched_task": task, "dispatch_correct": True})
        response = await self.ask(ctx, {"tools": record["menu"],
                                        "question": record["question"]})
        named = re.findall(r"Task: (.*)", response.text)
        chosen = named[0].strip() if named else "unknown"
        if chosen not in offered:
            chosen = "unknown"
        correct = chosen == task if task in offered else chosen == "unknown"
        if chosen == "unknown":
            return ItemResult.drop(f"dispatch: classified unknown, no existing tool fits "
                                   f"({'correct' if correct else 'wrong'}: the question is "
                                   f"from {task!r}, {'not ' if task not in offered else ''}"
                                   "offered)")
        return self.output(response, {"dispatched_task": chosen, "dispatch_correct": correct,
                                      "dispatch_reply": response.text})


class UseConfig(StepConfig):
    #: Jinja prompt template of the tool user (the wrapper and the new question).
    template: str = "latm/prompts/use.jinja"
    #: The authors' tool user (``generate``): temperature 0.0, max_tokens 256.
    temperature: float = 0.0
    #: Most tokens of the tool user's call (the authors': 256).
    max_tokens: int = 256
    #: Keep wrong or failed answers as records (``correct: false``), as the authors' accuracy
    #: counts them; off, only answers equal to the gold one are data.
    keep_wrong: bool = False
    #: Wall-clock limit of one sandboxed run of the call, in seconds.
    timeout_s: float = 5.0
    #: Memory limit of one sandboxed run, in MiB.
    memory_mb: int = 256
    #: Sandboxes running at once (each is a process).
    concurrency: int = 4


@register_step
class LatmUse(TemplatedStep, MapStep):
    """The tool user: the call for a new question from the wrapper, run with the function in
    the sandbox; the ``ans`` it computes, mapped to an option as the authors' ``get_ans``,
    scored against the gold answer."""

    type_name = "latm_use"
    Config = UseConfig
    config: UseConfig
    uses_llm = True
    cut_off_is_data: ClassVar[bool] = True  # cut-off calls run (or fail) and are scored

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        self._gate: asyncio.Semaphore | None = None

    def reads(self) -> list[str]:
        return ["answer", "dispatched_task", "question", "wrappers"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        wrapper = str(record["wrappers"][record["dispatched_task"]])
        blocks = [b.content for b in fenced_blocks(wrapper, PYTHON)]
        response = await self.ask(ctx, {"wrapper": wrapper, "question": record["question"]})
        calls = [b.content for b in fenced_blocks(response.text, PYTHON)]
        gold = str(record["answer"])
        columns: dict[str, Any] = {"function_call": calls[0] if calls else "",
                                   "tool_function": blocks[0] if blocks else ""}
        if not calls:
            return self._score(response, columns, "Error", gold, "no ```python block")
        names = re.findall(r"(ans.*?) =", calls[0], re.DOTALL)
        if not names:
            return self._score(response, columns, "Error", gold, "the call sets no `ans`")
        program = answer_program(columns["tool_function"], calls[0], names[-1].strip(),
                                 str(record["question"]))
        if getattr(self, "_gate", None) is None:
            self._gate = asyncio.Semaphore(self.config.concurrency)
        async with self._gate:
            result = await run_python(program, SandboxLimits(
                timeout_s=self.config.timeout_s, memory_mb=self.config.memory_mb,
                output_bytes=8000))
        columns["program"] = program
        marks = [line[len(_ANSWER_MARK):] for line in result.stdout.splitlines()
                 if line.startswith(_ANSWER_MARK)]
        if result.status != "ok" or not marks:
            why = first_error_line(result) if result.status != "ok" else "no answer printed"
            return self._score(response, columns, "Error", gold, why)
        return self._score(response, columns, marks[-1], gold, "")

    def _score(self, response: LLMResponse, columns: dict[str, Any], answer: str, gold: str,
               error: str) -> Output | ItemResult:
        correct = answer == gold  # the authors' str(ans) == str(sample["answer"])
        if not correct and not self.config.keep_wrong:
            return ItemResult.drop(f"use: {error}" if error else
                                   f"use: wrong answer {answer[:200]!r} (gold {gold[:200]!r})")
        return self.output(response, {**columns, "tool_answer": answer, "correct": correct,
                                      **({"error": error} if error else {})})


#: The authors' ``option_map`` / ``get_option`` and the options lookup of ``get_ans``, run in
#: the sandbox after the call (the answer variable is the last ``ans... =`` of the call).
_POSTPROCESS = '''
_option_map = {i + 1: "(%s)" % c for i, c in enumerate("ABCDEFGHIJ")}
_option_map.update({c: "(%s)" % c for c in "ABCDEFGHIJ"})
_ans = __NAME__
_question = __QUESTION__
if "Options:" in _question and _ans not in _option_map.keys() \\
        and _ans not in _option_map.values():
    _options = re.findall(r"Options:(.*)", _question, re.DOTALL)[0].strip().split("\\n")
    for _option in _options:
        if str(_ans) in _option:
            _ans = _option.split(" ")[0]
            break
print(__MARK__ + str(_option_map.get(_ans, _ans) if isinstance(_ans, (int, str)) else _ans))
'''


def answer_program(function: str, call: str, name: str, question: str) -> str:
    """What runs for one question: the wrapped function, the tool user's call, then the
    authors' answer post-processing, printing the answer after a marker."""
    tail = (_POSTPROCESS.replace("__NAME__", name).replace("__QUESTION__", repr(question))
            .replace("__MARK__", repr(_ANSWER_MARK)))
    return f"import re\n{function}\n{call}\n{tail}"
