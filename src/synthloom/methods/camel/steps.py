"""The ``camel_tasks`` source and the ``camel_roleplay`` step (CAMEL, arXiv 2303.17760).

``camel_tasks`` crosses role pairs with their tasks: each line of a JSONL file names an
``assistant_role``, a ``user_role`` and ``tasks`` (or one ``task``); each (pair, task) is one
item. ``camel_roleplay`` runs the AI Society role-play for one item:

1. the task specifier agent ("You can make a task more specific.") rewrites the task in at
   most ``word_limit`` words;
2. the AI user and the AI assistant get the paper's inception prompts as system messages; the
   assistant opens with "Now start to give me instructions one by one ..."; then they take
   turns, each agent seeing the dialogue from its own side;
3. the dialogue ends (``terminated_by``) when the user emits ``<CAMEL_TASK_DONE>``
   (``done_token``), after ``max_turns`` exchanges (``turn_limit``), when the assistant
   starts instructing (``role_flip``), when an agent repeats one of its earlier messages
   (``repetition``: the paper's infinite loop), when the user has not given an
   "Instruction:" for ``max_no_instruct`` rounds in a row (``user_no_instruct``), when a
   prompt would pass ``token_limit`` tokens (``token_limit``), or on an empty message
   (``empty_message``) -- the paper's termination rules plus the last one.

The broken exchange that triggers a stop is not kept; a dialogue with no complete exchange is
dropped with the reason. Records are ShareGPT ``conversations`` (human: the AI user's
instructions, gpt: the assistant's solutions).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.fingerprint import text_hash
from synthloom.core.recipe import resolve_data_path
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, SourceFailure, SourceStep, StepConfig, jsonl_source_rows
from synthloom.llm.types import LLMResponse, Usage
from synthloom.prompting.templated import TemplatedStep

DONE_TOKEN = "<CAMEL_TASK_DONE>"
_INSTRUCTION = re.compile(r"^\s*\**Instruction\**\s*:", re.IGNORECASE | re.MULTILINE)
_SOLUTION = re.compile(r"\bSolution\s*:", re.IGNORECASE)
_SPECIFIED_PREFIX = re.compile(r"^\s*(specified task|task)\s*:\s*", re.IGNORECASE)


class CamelTasksConfig(StepConfig):
    #: JSONL of ``{assistant_role, user_role, tasks}`` (or ``task``); one item per task.
    path: str = "pkg:data/camel/ai_society.jsonl"


@register_step
class CamelTasks(SourceStep):
    """One item ``{assistant_role, user_role, task, task_index}`` per role pair and task."""

    type_name = "camel_tasks"
    Config = CamelTasksConfig
    config: CamelTasksConfig

    def read(self, ctx: RunContext) -> Iterator[dict[str, Any] | SourceFailure]:
        path = resolve_data_path(self.config.path, ctx.recipe_dir)
        if not path.is_file():
            raise RecipeError(f"source {self.name}: file not found: {path}")
        for item in jsonl_source_rows(path):
            if isinstance(item, SourceFailure):
                yield item
                continue
            number, row = item
            where = f"{path}:{number}"
            try:
                pair = {"assistant_role": str(row["assistant_role"]).strip(),
                        "user_role": str(row["user_role"]).strip()}
                tasks = row["tasks"] if "tasks" in row else [row["task"]]
            except KeyError as exc:
                yield SourceFailure(where, type(exc).__name__,
                                    f"expected assistant_role, user_role, tasks/task: {exc}")
                continue
            for index, task in enumerate(tasks if isinstance(tasks, list) else [tasks]):
                if isinstance(task, str) and task.strip():
                    yield {**pair, "task": task.strip(), "task_index": index}
                else:
                    yield SourceFailure(f"{where}#task={index}", "ValueError",
                                        "task is not a non-empty string")


class CamelConfig(StepConfig):
    #: Jinja template of the task specifier.
    specify_template: str = "camel/prompts/task_specify.jinja"
    #: Jinja template of the assistant agent's system prompt.
    assistant_template: str = "camel/prompts/assistant_system.jinja"
    #: Jinja template of the user agent's system prompt.
    user_template: str = "camel/prompts/user_system.jinja"
    #: Jinja template of the message that starts the role-play.
    start_template: str = "camel/prompts/user_start.jinja"
    #: Run the task specifier (False: role-play the task as given).
    specify: bool = True
    #: Word limit the specifier is asked to keep the specified task within.
    word_limit: int = Field(default=50, ge=1)
    #: Exchanges (user message + assistant message) at most.
    max_turns: int = Field(default=10, ge=1)
    #: Stop after this many user messages in a row without "Instruction:" (paper: 3).
    max_no_instruct: int = Field(default=3, ge=1)
    #: Stop before an agent's prompt would pass this many tokens.
    token_limit: int = 3500
    #: Sampling temperature of both agents.
    temperature: float = 0.7
    #: Most tokens of one agent message.
    max_tokens: int = 512
    #: Most tokens of the specified task.
    specify_max_tokens: int = 128
    #: Input columns copied onto the dialogue record (e.g. ``task_source``, ``task_index`` of
    #: generated tasks); the output otherwise replaces the input's columns.
    carry: list[str] = Field(default_factory=list)


@register_step
class CamelRolePlay(TemplatedStep, MapStep):
    """Columns: ``conversations`` ([{from: human|gpt, value}]), ``assistant_role``,
    ``user_role``, ``original_task``, ``specified_task``, ``turns``, ``terminated_by`` (and the
    ``carry`` columns of the input)."""

    type_name = "camel_roleplay"
    uses_llm = True
    Config = CamelConfig
    config: CamelConfig
    template_fields = ("specify_template", "assistant_template", "user_template",
                       "start_template")

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        # One hash over the four templates (in this order): the fingerprint's shape.
        self._hash = text_hash("".join(t.hash for t in self._templates.values()))

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        return {"templates": self._hash}

    def reads(self) -> list[str]:
        names: set[str] = {"assistant_role", "user_role", "task"}
        for template in self._templates.values():
            names |= template.variables
        return sorted((names | set(self.config.carry)) - {"context", "word_limit"})

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        result = await _Dialogue(self, record, ctx).play()
        if isinstance(result, Output):
            result.columns.update({c: record.get(c) for c in self.config.carry})
        return result


class _Dialogue:
    """One role-play: the two agents' message lists, the seeds and the usage spent."""

    def __init__(self, step: CamelRolePlay, record: dict[str, Any], ctx: ItemContext) -> None:
        self.step, self.cfg, self.ctx = step, step.config, ctx
        self.variables = {**record, "word_limit": self.cfg.word_limit, "context": ctx.context}
        self.calls = 0
        self.usage = Usage()
        self.model: str | None = None

    async def _say(self, messages: list[dict[str, str]], max_tokens: int) -> LLMResponse:
        # Every call of the dialogue gets its own seed: seed + call number.
        offset = self.calls
        self.calls += 1
        response = await self.step.ask(self.ctx, {}, messages=messages, max_tokens=max_tokens,
                                       seed_offset=offset)
        self.usage = self.usage + response.usage
        self.model = response.model
        return response

    def _tokens(self, messages: list[dict[str, str]]) -> int:
        return sum(self.ctx.llm.count_tokens(m["content"]) + 4 for m in messages)

    async def play(self) -> Output | ItemResult:
        cfg, step, task = self.cfg, self.step, str(self.variables["task"])
        specified = task
        if cfg.specify:
            reply = await self._say(
                step.template("specify_template").render_messages(self.variables),
                cfg.specify_max_tokens)
            specified = _clean_specified(reply.text)
            if not specified:
                return ItemResult.drop(
                    f"task specifier returned no text (finish_reason={reply.finish_reason})")
        roles = {**self.variables, "task": specified}

        def rendered(field: str) -> str:
            return step.template(field).render_text(roles).strip()

        user_view = [{"role": "system", "content": rendered("user_template")},
                     {"role": "user", "content": rendered("start_template")}]
        assistant_view = [{"role": "system", "content": rendered("assistant_template")}]
        conversation: list[dict[str, str]] = []
        terminated, no_instruct = "turn_limit", 0
        seen_user: set[str] = set()
        seen_assistant: set[str] = set()
        for _ in range(cfg.max_turns):
            if self._tokens(user_view) + cfg.max_tokens > cfg.token_limit:
                terminated = "token_limit"
                break
            instruction = (await self._say(user_view, cfg.max_tokens)).text.strip()
            if DONE_TOKEN in instruction or DONE_TOKEN.strip("<>") in instruction:
                terminated = "done_token"
                break
            if not instruction:
                terminated = "empty_message"
                break
            if _norm(instruction) in seen_user:
                terminated = "repetition"
                break
            seen_user.add(_norm(instruction))
            no_instruct = 0 if _INSTRUCTION.search(instruction) else no_instruct + 1
            if no_instruct >= cfg.max_no_instruct:
                terminated = "user_no_instruct"
                break
            asked = [*assistant_view, {"role": "user", "content": instruction}]
            if self._tokens(asked) + cfg.max_tokens > cfg.token_limit:
                terminated = "token_limit"
                break
            solution = (await self._say(asked, cfg.max_tokens)).text.strip()
            if not solution:
                terminated = "empty_message"
                break
            if _INSTRUCTION.search(solution) and not _SOLUTION.search(solution):
                terminated = "role_flip"  # the assistant instructs instead of solving
                break
            if _norm(solution) in seen_assistant:
                terminated = "repetition"
                break
            seen_assistant.add(_norm(solution))
            conversation += [{"from": "human", "value": instruction},
                             {"from": "gpt", "value": solution}]
            assistant_view = [*asked, {"role": "assistant", "content": solution}]
            user_view += [{"role": "assistant", "content": instruction},
                          {"role": "user", "content": solution}]
        if not conversation:
            return ItemResult.drop(f"no complete exchange (terminated_by={terminated})")
        return Output(
            columns={
                "conversations": conversation,
                "assistant_role": self.variables["assistant_role"],
                "user_role": self.variables["user_role"],
                "original_task": task,
                "specified_task": specified,
                "turns": len(conversation) // 2,
                "terminated_by": terminated,
            },
            model=self.model, template_hash=step._hash, usage=self.usage.to_json(),
            replace=True,
        )


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _clean_specified(text: str) -> str:
    """The specified task without a "Specified task:" label or wrapping quotes."""
    text = _SPECIFIED_PREFIX.sub("", text.strip())
    return text.strip().strip('"“”').strip()
