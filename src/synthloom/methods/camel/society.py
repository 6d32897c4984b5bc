"""CAMEL AI Society data generation before the role-play (Li et al. 2023, arXiv 2303.17760 Fig. 3).

The paper does not hand-write tasks: an LLM lists assistant roles and user roles (the role
generation prompts), and for every (assistant role, user role) pair it brainstorms ``num_tasks``
tasks with the task generation prompt ("List {num_tasks} diverse tasks that {assistant_role} can
assist {user_role} cooperatively to achieve together. Be concise. Be creative."); each task then
goes through the task specifier and the role-play (``camel_roleplay``). Three pieces:

- ``camel_roles`` (source): a YAML/JSON file with ``assistant_roles`` and ``user_roles``; one item
  per pair (assistant role outer, so ``--limit`` takes the first pairs of the grid).
- ``camel_role_generation`` (map): with ``generate: true`` the pair's names come from the LLM's
  role lists (the paper's two prompts, one request each for the whole run: same messages, same
  seed, so the response cache answers every pair after the first); the file's lists then only set
  the grid. With ``generate: false`` (default) the pair passes unchanged (``role_source: file``).
- ``camel_task_generation`` (expand): one call per pair, the reply constrained by a JSON schema
  (``{"tasks": [string, ...]}``, ``maxItems = num_tasks``). Every listed task becomes a record
  (``task``, ``task_index``, ``task_source: "generated"``) with ``reject_reason`` set when it is
  empty, too short or repeats an earlier task of the pair; ``drop_rejected`` turns those marks
  into accounted drops (an expand step cannot drop one of its own outputs). A pair whose reply
  lists no task is dropped with the reason.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import yaml
from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import resolve_data_path
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, MapStep, SourceFailure, SourceStep, StepConfig
from synthloom.llm.types import LLMResponse, StructuredOutputError
from synthloom.prompting.templated import TemplatedStep, parsed_object

#: Characters per token assumed when sizing max_tokens from the schema's caps (low: safe).
CHARS_PER_TOKEN = 3
#: "1. ", "2) ", "- ", "* ", "Task 3:" ... that a model may put in front of a list item.
_ITEM_PREFIX = re.compile(r"^\s*(?:(?:task\s*)?\d+\s*[.):-]\s*|[-*\u2022]\s+|task\s*:\s*)+",
                          re.IGNORECASE)


def list_schema(key: str, items: int, max_chars: int) -> dict[str, Any]:
    """``{key: [string, ...]}`` with at most ``items`` strings of at most ``max_chars``.

    No ``minLength``: an empty item is possible and is rejected with its reason, not hidden."""
    return {
        "type": "object",
        "properties": {key: {"type": "array", "minItems": 1, "maxItems": items,
                             "items": {"type": "string", "maxLength": max_chars}}},
        "required": [key],
        "additionalProperties": False,
    }


def clean_item(value: Any) -> str:
    """A list item without numbering/bullets, surrounding quotes or a trailing period."""
    if not isinstance(value, str):
        return ""
    text = _ITEM_PREFIX.sub("", " ".join(value.split()))
    return text.strip().strip('"\u201c\u201d').strip().rstrip(".").strip()


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


# --- roles ---------------------------------------------------------------------------------------


class CamelRolesConfig(StepConfig):
    #: Roles file (YAML or JSON) with ``assistant_roles`` and ``user_roles`` lists; every pair
    #: becomes an item.
    path: str = "pkg:data/camel/society_roles.yaml"


@register_step
class CamelRoles(SourceStep):
    """One item ``{assistant_role, user_role, assistant_index, user_index, role_source}`` per
    pair of the file's ``assistant_roles`` x ``user_roles``."""

    type_name = "camel_roles"
    Config = CamelRolesConfig
    config: CamelRolesConfig

    def read(self, ctx: RunContext) -> Iterator[dict[str, Any] | SourceFailure]:
        path = resolve_data_path(self.config.path, ctx.recipe_dir)
        if not path.is_file():
            raise RecipeError(f"source {self.name}: file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
            lists = {key: data[key] for key in ("assistant_roles", "user_roles")}
        except (ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
            raise RecipeError(f"source {self.name}: {path}: expected a mapping with "
                              f"assistant_roles and user_roles lists ({exc})") from None
        for key, roles in lists.items():
            if not isinstance(roles, list) or not roles:
                raise RecipeError(f"source {self.name}: {path}: {key} must be a non-empty list")
        for a, assistant in enumerate(lists["assistant_roles"]):
            for u, user in enumerate(lists["user_roles"]):
                names = (assistant, user)
                if not all(isinstance(n, str) and n.strip() for n in names):
                    yield SourceFailure(f"{path}#assistant={a},user={u}", "ValueError",
                                        f"role names must be non-empty strings: {names!r}")
                    continue
                yield {"assistant_role": assistant.strip(), "user_role": user.strip(),
                       "assistant_index": a, "user_index": u, "role_source": "file"}


class RoleGenerationConfig(StepConfig):
    #: Jinja prompt template of the assistant-role list (when ``generate``).
    assistants_template: str = "camel/prompts/generate_assistants.jinja"
    #: Jinja prompt template of the user-role list (when ``generate``).
    users_template: str = "camel/prompts/generate_users.jinja"
    #: Ask the LLM for the role lists (paper); False: keep the roles file's names.
    generate: bool = False
    #: Roles asked for in each list (paper: 50); pairs whose index is past a list are dropped.
    num_roles: int = Field(default=4, ge=1, le=100)
    #: Longest role name, in characters (schema maxLength).
    role_max_chars: int = Field(default=60, ge=5, le=200)
    #: Sampling temperature of the role lists.
    temperature: float = 0.7
    #: Completion cap; default: enough for ``num_roles`` names at the cap.
    max_tokens: int | None = None


@register_step
class CamelRoleGeneration(TemplatedStep, MapStep):
    """With ``generate``: replaces the pair's names by entries ``assistant_index`` and
    ``user_index`` of the LLM's role lists (``role_source: generated``)."""

    type_name = "camel_role_generation"
    uses_llm = True
    Config = RoleGenerationConfig
    config: RoleGenerationConfig
    template_fields = ("assistants_template", "users_template")
    _lock: asyncio.Lock | None = None

    def active_template_fields(self) -> tuple[str, ...]:
        return self.template_fields if self.config.generate else ()

    def reads(self) -> list[str]:
        return ["assistant_index", "user_index"] if self.config.generate else []

    def _max_tokens(self) -> int:
        cfg = self.config
        if cfg.max_tokens is not None:
            return cfg.max_tokens
        return cfg.num_roles * (cfg.role_max_chars // CHARS_PER_TOKEN + 4) + 16

    async def _roles(self, field: str, ctx: ItemContext) -> tuple[list[str], list[str]]:
        """The usable names of one list (first of each repeated name), and why others were not."""
        cfg = self.config
        try:
            response = await self.ask(
                ctx, {"num_roles": cfg.num_roles}, template=field,
                schema=list_schema("roles", cfg.num_roles, cfg.role_max_chars),
                max_tokens=self._max_tokens(), seed=ctx.run.seed)  # one request for all pairs
        except StructuredOutputError as exc:
            return [], [f"no valid role list ({exc})"]
        names: list[str] = []
        problems: list[str] = []
        seen: set[str] = set()
        for i, raw in enumerate((parsed_object(response).get("roles") or [])[: cfg.num_roles]):
            name = clean_item(raw)
            if not name:
                problems.append(f"role {i}: empty")
            elif _norm(name) in seen:
                problems.append(f"role {i}: repeats an earlier role")
            else:
                seen.add(_norm(name))
                names.append(name)
        return names, problems

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        if not self.config.generate:
            return Output(columns={})
        if self._lock is None:
            self._lock = asyncio.Lock()
        # Serialised: the first pair asks, the others get the cached replies (no duplicate
        # calls from pairs in flight together).
        async with self._lock:
            assistants, a_problems = await self._roles("assistants_template", ctx)
            users, u_problems = await self._roles("users_template", ctx)
        a, u = int(record["assistant_index"]), int(record["user_index"])
        for kind, names, index, problems in (("assistant", assistants, a, a_problems),
                                             ("user", users, u, u_problems)):
            if index >= len(names):
                detail = f" ({'; '.join(problems)})" if problems else ""
                return ItemResult.drop(f"model listed {len(names)} usable {kind} roles; this "
                                       f"pair needs {kind} role #{index + 1}{detail}")
        return Output(columns={"assistant_role": assistants[a], "user_role": users[u],
                               "role_source": "generated"})


# --- tasks ---------------------------------------------------------------------------------------


class TaskGenerationConfig(StepConfig):
    #: Jinja prompt template of the task list for a role pair.
    template: str = "camel/prompts/generate_tasks.jinja"
    #: Tasks asked for per role pair (paper: 10); the schema's ``maxItems``.
    num_tasks: int = Field(default=3, ge=1, le=50)
    #: A task with fewer words is rejected as too short.
    min_words: int = Field(default=3, ge=1)
    #: Longest task, in characters (schema maxLength).
    task_max_chars: int = Field(default=300, ge=20, le=900)
    #: Sampling temperature of the task list.
    temperature: float = 0.7
    #: Completion cap; default: enough for ``num_tasks`` tasks at the cap, so a
    #: grammar-constrained reply is not cut off mid-JSON.
    max_tokens: int | None = None


@register_step
class CamelTaskGeneration(TemplatedStep, ExpandStep):
    """Columns added: ``task``, ``task_index``, ``task_source`` ("generated"),
    ``reject_reason`` (None, or why the task is unusable: for ``drop_rejected``)."""

    type_name = "camel_task_generation"
    uses_llm = True
    Config = TaskGenerationConfig
    config: TaskGenerationConfig

    def reads(self) -> list[str]:
        return sorted(self.template().variables - {"num_tasks"})

    def _max_tokens(self) -> int:
        cfg = self.config
        if cfg.max_tokens is not None:
            return cfg.max_tokens
        return cfg.num_tasks * (cfg.task_max_chars // CHARS_PER_TOKEN + 4) + 16

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list[Output]:
        cfg = self.config
        try:
            response = await self.ask(
                ctx, {**record, "num_tasks": cfg.num_tasks},
                schema=list_schema("tasks", cfg.num_tasks, cfg.task_max_chars),
                max_tokens=self._max_tokens())
        except StructuredOutputError as exc:
            return ItemResult.drop(f"model gave no valid task list ({exc})")
        listed = parsed_object(response).get("tasks")
        if not isinstance(listed, list) or not listed:
            return ItemResult.drop("model listed no tasks "
                                   f"(finish_reason={response.finish_reason})")
        listed = listed[: cfg.num_tasks]
        reasons = task_problems([clean_item(t) for t in listed], cfg.min_words)
        shares = _split_usage(response, len(listed))
        outputs = []
        for i, (raw, reason) in enumerate(zip(listed, reasons, strict=True)):
            columns = {"task": clean_item(raw), "task_index": i, "task_source": "generated",
                       "reject_reason": reason}
            meta = {"tasks_asked": cfg.num_tasks, "tasks_listed": len(listed),
                    "tasks_usable": reasons.count(None),
                    "finish_reason": response.finish_reason}
            outputs.append(self.output(response, columns, usage=shares[i], meta=meta))
        return outputs


def task_problems(tasks: list[str], min_words: int) -> list[str | None]:
    """Per task: None when usable, else why not (empty, no words, too short, repeats
    task j of the pair)."""
    reasons: list[str | None] = []
    seen: dict[str, int] = {}
    for i, task in enumerate(tasks):
        key = _norm(task)
        words = len(task.split())  # "Cooperat-team-work" is one word, not three
        if not task:
            reasons.append(f"generated task {i} is empty")
        elif not key:
            reasons.append(f"generated task {i} has no words ({task[:40]!r})")
        elif words < min_words:
            reasons.append(f"generated task {i} too short ({words} words < {min_words})")
        elif key in seen:
            reasons.append(f"generated task {i} repeats task {seen[key]} of this role pair")
        else:
            seen[key] = i
            reasons.append(None)
    return reasons


def _split_usage(response: LLMResponse, n: int) -> list[dict[str, int]]:
    """One call's tokens spread over its n records, so summing records gives the call's cost."""
    usage = response.usage.to_json()
    return [{k: v // n + (1 if i < v % n else 0) for k, v in usage.items()} for i in range(n)]
