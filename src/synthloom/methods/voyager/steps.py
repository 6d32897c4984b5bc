"""Voyager's loop (MineDojo/Voyager: voyager/voyager.py, voyager/agents/) as synthloom steps.

* ``voyager_explorers`` (source): one row per curriculum step slot: ``explorers`` independent
  explorers (each its own world, drawn from the run seed) x ``tasks`` steps each.
* ``voyager_explore`` (global): every explorer runs the authors' ``learn`` loop, explorers
  concurrently, each one's steps in order (each depends on the library so far):

  1. the automatic curriculum proposes the next task from the world's state, the completed
     and failed tasks and the skill names (the first task is fixed, as the authors' "Mine 1
     wood log"); the task's context comes from the world's recipe book;
  2. the action agent writes a program given the top-k skills retrieved by embedding (query:
     the context, then the context + the chat log's "I also need ..."), it runs in the sandbox
     against the world, and the execution error, the chat log and the critic's critique are
     fed back, for up to ``max_attempts`` (the authors' 4);
  3. the critic (the authors' prompt; no call when the program raised, as theirs) decides
     success; where the task names an item and a count, the world's programmatic check
     decides (``critic: both``);
  4. a successful program is described by the skill agent and enters the explorer's skill
     library (``library.py``); the task goes to the completed or failed list (the authors'
     ``clean_up_tasks``).

  One output per slot: the task, its attempts (messages, code, execution, critique), the skill
  learned and the world state before and after. A slot whose loop raised is a counted failure
  (its task goes to the failed list, as the authors' crash handler); the explorer goes on.
* ``voyager_trajectories`` (expand): one record per attempt, with the action agent's
  ``messages`` (system, user, assistant) for SFT exports.
* ``voyager_skills`` (expand): one record per skill learned (name, description, code; ``final``
  when that version is the one left in the explorer's library); a failed task is a drop.

Resuming: the global step's result is cached once it finishes; before that every LLM call is
in the per-call cache and every request is a function of the (cached) earlier steps and the
seeds, so a rerun replays the finished calls and goes on where the run stopped.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import SynthloomError
from synthloom.core.fingerprint import stable_hash
from synthloom.core.models import DEFAULT_MODEL
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, GlobalStep, SourceStep, StepConfig
from synthloom.llm.embeddings import Embedder, EmbedderConfig, resolve_embedder
from synthloom.llm.types import LLMResponse, StructuredOutputError
from synthloom.methods.voyager import world
from synthloom.methods.voyager.library import SkillLibrary
from synthloom.methods.voyager.program import Execution, Program, execute, parse_reply
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.verify.sandbox import SandboxLimits

#: The authors' ``action_agent_task_max_retries``.
AUTHORS_ATTEMPTS = 4
#: The authors' first task ("Mine 1 wood log"), in this world's words.
AUTHORS_FIRST_TASK = "Mine 1 log"

CURRICULUM_SCHEMA = {"type": "object", "properties": {
    "reasoning": {"type": "string", "maxLength": 400},
    "task": {"type": "string", "minLength": 3, "maxLength": 120}},
    "required": ["reasoning", "task"], "additionalProperties": False}
CRITIC_SCHEMA = {"type": "object", "properties": {
    "reasoning": {"type": "string", "maxLength": 400},
    "success": {"type": "boolean"},
    "critique": {"type": "string", "maxLength": 400}},
    "required": ["reasoning", "success", "critique"], "additionalProperties": False}


# --- source ------------------------------------------------------------------------------


class ExplorersConfig(StepConfig):
    explorers: int = Field(default=2, ge=1, description="Independent explorers (each its own "
                           "world and skill library), run concurrently.")
    tasks: int = Field(default=10, ge=1, description="Curriculum steps per explorer (the "
                       "authors' max_iterations: 160).")


@register_step
class VoyagerExplorers(SourceStep):
    """One row per curriculum step slot: ``explorer``, ``step``."""

    type_name = "voyager_explorers"
    Config = ExplorersConfig
    config: ExplorersConfig

    def read(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        for e in range(self.config.explorers):
            for s in range(self.config.tasks):
                yield {"explorer": e, "step": s}


# --- the loop ----------------------------------------------------------------------------


class ExploreConfig(StepConfig):
    #: Jinja template of the automatic curriculum (the authors' curriculum.txt).
    curriculum_template: str = "voyager/prompts/curriculum.jinja"
    #: Jinja template of the action agent (the authors' action_template.txt).
    action_template: str = "voyager/prompts/action.jinja"
    #: Jinja template of the critic (the authors' critic.txt).
    critic_template: str = "voyager/prompts/critic.jinja"
    #: Jinja template of the skill description (the authors' skill.txt).
    skill_template: str = "voyager/prompts/skill.jinja"
    max_attempts: int = Field(default=AUTHORS_ATTEMPTS, ge=1, le=16, description="Programs "
                              "per task: the first and the retries with the error and critique "
                              "(the authors' action_agent_task_max_retries: 4).")
    first_task: str | None = Field(default=AUTHORS_FIRST_TASK, description="Task proposed "
                                   "until the first success, as the authors' 'Mine 1 wood "
                                   "log' (None: the curriculum proposes from the start).")
    critic: Literal["llm", "program", "both"] = Field(
        default="both", description="Who decides success: the LLM critic (the authors'), the "
        "world's programmatic check (tasks it cannot parse fail), or both (the check where "
        "the task parses, the LLM critic elsewhere; the critique is the critic's either way).")
    top_k: int = Field(default=5, ge=0, le=50, description="Skills retrieved for the action "
                       "agent (the authors' skill_manager_retrieval_top_k: 5).")
    embedder: EmbedderConfig = Field(default=EmbedderConfig(spec="auto"), description=(
        "Embeds skill descriptions and retrieval queries (auto: the local model when the "
        "embeddings extra is installed, else hashing vectors)."))
    #: All agents at temperature 0, as the authors'.
    temperature: float = 0.0
    #: Most tokens of one action reply (explanation, plan and code).
    max_tokens: int = 1024
    #: Most tokens of the curriculum's JSON reply.
    curriculum_max_tokens: int = 256
    #: Most tokens of the critic's JSON reply.
    critic_max_tokens: int = 256
    #: Most tokens of a skill description.
    skill_max_tokens: int = 192
    curriculum_model: str | None = Field(default=None, description="Named model of the "
                                         "curriculum agent (None: the step's own).")
    critic_model: str | None = Field(default=None, description="Named model of the critic "
                                     "(None: the step's own).")
    skill_model: str | None = Field(default=None, description="Named model of the skill "
                                    "description (None: the step's own; the authors used "
                                    "gpt-3.5 here, gpt-4 for the others).")
    #: Wall-clock limit of one program run in the sandbox, in seconds.
    timeout_s: float = 5.0
    #: Memory limit of one program run, in MiB.
    memory_mb: int = 256
    #: Sandboxed program runs at once (each a process).
    concurrency: int = Field(default=4, ge=1, le=64)

    wiring: ClassVar[frozenset[str]] = StepConfig.wiring | {
        "curriculum_model", "critic_model", "skill_model"}


@dataclass
class _Explorer:
    """One explorer's run: its world, library and task lists (the authors' agents' state)."""

    index: int
    state: dict[str, Any]
    library: SkillLibrary
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def update(self, task: str, success: bool) -> None:
        """The authors' ``update_exploration_progress`` + ``clean_up_tasks``: completed tasks
        deduplicated in order; failed ones keep repeats, minus any since completed."""
        (self.completed if success else self.failed).append(task)
        self.completed = list(dict.fromkeys(self.completed))
        self.failed = [t for t in self.failed if t not in self.completed]


def chatlog_summary(chat: list[str]) -> str:
    """The authors' ``summarize_chatlog``: what the chat log says is missing."""
    needs: list[str] = []
    for line in chat:
        found = ""
        if "because I need: " in line:
            found = line.split("because I need: ", 1)[1]
        elif "there is no crafting table nearby" in line:
            found = "a nearby crafting table"
        elif "there is no furnace nearby" in line:
            found = "a nearby furnace"
        elif line.startswith("I need at least a "):
            found = line[len("I need at least a "):].split(" to mine ")[0]
        if found and found not in needs:
            needs.append(found)
    return "I also need " + ", ".join(needs) + "." if needs else ""


def _primitive_docs() -> list[str]:
    """The primitives as the action agent sees them: signature and docstring."""
    docs = []
    for name in world.PRIMITIVES:
        fn = getattr(world, name)
        doc = inspect.getdoc(fn) or ""
        signature = str(inspect.signature(fn)).replace("'", "")  # postponed annotations
        docs.append(f'def {name}{signature}:\n    """{doc}"""')
    return docs


def _slot_seed(ctx: RunContext, explorer: int, step: int) -> int:
    return int(stable_hash("voyager", ctx.seed, explorer, step)[:8], 16) & 0x7FFFFFFF


@register_step
class VoyagerExplore(TemplatedStep, GlobalStep):
    """Each explorer's curriculum -> action -> critic -> skill loop; one output per slot."""

    type_name = "voyager_explore"
    uses_llm = True
    template_fields = ("curriculum_template", "action_template", "critic_template",
                       "skill_template")
    Config = ExploreConfig
    config: ExploreConfig

    def reads(self) -> list[str]:
        return ["explorer", "step"]

    def model_names(self) -> list[str]:
        cfg = self.config
        # The action agent is the step's own model ("default" named, so that the run's
        # client is built even when every other agent has a model of its own).
        named = [cfg.model or DEFAULT_MODEL, cfg.curriculum_model, cfg.critic_model,
                 cfg.skill_model]
        return list(dict.fromkeys(n for n in named if n))

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        cfg = self.config
        ids = {}
        for role, name in (("curriculum", cfg.curriculum_model), ("critic", cfg.critic_model),
                           ("skill", cfg.skill_model)):
            client = ctx.llm_for(name) if name else None
            ids[role] = client.model_id if client is not None else None
        return {"templates": super().extra_fingerprint(ctx), "models": ids,
                "world": stable_hash(inspect.getsource(world))}

    async def process_all(self, records: list[dict[str, Any]],
                          ctx: RunContext) -> list[ItemResult]:
        results: list[ItemResult | None] = [None] * len(records)
        slots: dict[int, list[tuple[int, int]]] = {}
        seen: set[tuple[int, int]] = set()
        for i, record in enumerate(records):
            key = (int(record["explorer"]), int(record["step"]))
            if key in seen:
                results[i] = ItemResult.drop(f"duplicate slot: explorer {key[0]} step {key[1]}")
                continue
            seen.add(key)
            slots.setdefault(key[0], []).append((key[1], i))
        embedder = resolve_embedder(self.config.embedder, ctx.run_dir)
        self._gate = asyncio.Semaphore(self.config.concurrency)
        self._limits = SandboxLimits(timeout_s=self.config.timeout_s,
                                     memory_mb=self.config.memory_mb, output_bytes=64_000)
        try:
            done = await asyncio.gather(*(self._explore(ctx, e, sorted(s), embedder)
                                          for e, s in sorted(slots.items())))
        finally:
            await embedder.aclose()
        for per_explorer in done:
            for index, result in per_explorer:
                results[index] = result
        return results  # type: ignore[return-value]

    async def _explore(self, ctx: RunContext, index: int, slots: list[tuple[int, int]],
                       embedder: Embedder) -> list[tuple[int, ItemResult]]:
        seed = int(stable_hash("voyager-world", ctx.seed, index)[:8], 16)
        explorer = _Explorer(index, world.initial_state(seed),
                             SkillLibrary(embedder, self.config.top_k))
        out: list[tuple[int, ItemResult]] = []
        rows: list[dict[str, Any]] = []
        for step, record_index in slots:
            ictx = ItemContext(run=ctx, item_key=f"voyager:{index}:{step}",
                               seed=_slot_seed(ctx, index, step))
            try:
                columns = await self._step(ictx, explorer, step)
                model = columns.pop("_model", None)
                rows.append(columns)  # the same dict as the output's: ``final`` is set below
                result = ItemResult(outputs=[Output(
                    columns=columns, replace=True, model=model,
                    template_hash=self.template("action_template").hash,
                    usage={"prompt_tokens": ictx.prompt_tokens,
                           "completion_tokens": ictx.completion_tokens})])
            except SynthloomError:
                raise  # budget spent, backend gone: the run stops
            except Exception as exc:  # noqa: BLE001 - one step's failure is counted data
                result = ItemResult.failure(exc)
            result.llm_calls, result.cache_hits = ictx.llm_calls, ictx.cache_hits
            result.prompt_tokens = ictx.prompt_tokens
            result.completion_tokens = ictx.completion_tokens
            out.append((record_index, result))
        for row in rows:  # whether each skill version is the one left in the library
            skill = row.get("skill")
            if skill:
                last = explorer.library.skills.get(skill["name"])
                skill["final"] = last is not None and last.step == row["step"]
        return out

    # --- one curriculum step ---------------------------------------------------------------

    async def _step(self, ictx: ItemContext, explorer: _Explorer, step: int) -> dict[str, Any]:
        before = explorer.state
        task, reasoning, source = await self._propose(ictx, explorer)
        goal = world.goal_of(task)
        context = ""
        if goal is not None and world.manual(goal["item"]):
            context = f"Question: How to get {goal['item']}?\nAnswer: {world.manual(goal['item'])}"
        skill = None
        try:
            attempts, success, program, model = await self._rollout(ictx, explorer, task,
                                                                     context, goal)
            if success and program is not None:
                description = await self._describe(ictx, program)
                learned = await explorer.library.add(program.name, program.code, description,
                                                     task, step)
                skill = learned.to_json()
        except Exception:
            explorer.update(task, False)  # the authors' crash handler: the task failed
            raise
        explorer.update(task, success)
        return {"explorer": explorer.index, "step": step, "task": task, "task_source": source,
                "curriculum_reasoning": reasoning, "context": context, "goal": goal,
                "success": success, "attempts_used": len(attempts), "attempts": attempts,
                "skill": skill, "state_before": before, "state_after": explorer.state,
                "completed_tasks": list(explorer.completed),
                "failed_tasks": list(explorer.failed),
                "library_size": len(explorer.library), "_model": model}

    async def _propose(self, ictx: ItemContext, explorer: _Explorer
                       ) -> tuple[str, str, str]:
        cfg = self.config
        if cfg.first_task and not explorer.completed:
            return cfg.first_task, "", "first_task"
        variables = {"obs": world.describe(explorer.state), "skills": list(explorer.library.skills),
                     "completed": explorer.completed, "failed": explorer.failed,
                     "blocks": sorted(world.BLOCKS), "craftable": sorted(world.RECIPES),
                     "smeltable": sorted(world.SMELTING)}
        response = await self.ask(ictx, variables, template="curriculum_template",
                                  schema=CURRICULUM_SCHEMA, max_tokens=cfg.curriculum_max_tokens,
                                  model=cfg.curriculum_model, tags={"role": "curriculum"})
        reply = parsed_object(response)
        task = " ".join(str(reply.get("task", "")).split()).rstrip(".")
        if not task:
            raise ValueError("curriculum: the reply names no task")
        return task, str(reply.get("reasoning", "")), "curriculum"

    async def _rollout(self, ictx: ItemContext, explorer: _Explorer, task: str, context: str,
                       goal: dict[str, Any] | None
                       ) -> tuple[list[dict[str, Any]], bool, Program | None, str | None]:
        """The authors' ``rollout``: up to ``max_attempts`` programs; each round's messages
        are rendered afresh (system with the retrieved skills, user with the last code, its
        error, the chat log and the critique)."""
        cfg = self.config
        attempts: list[dict[str, Any]] = []
        query = context or task
        code, error, chat, critique = "", "", [], ""
        model = None
        for attempt in range(cfg.max_attempts):
            retrieved = await explorer.library.retrieve(query)
            variables = {"primitives": _primitive_docs(),
                         "skills": [s.code for s in retrieved],
                         "obs": world.describe(explorer.state), "code": code, "error": error,
                         "chat": chat, "task": task, "context": context, "critique": critique}
            request = self.request(ictx, variables, template="action_template",
                                   seed_offset=1 + attempt,
                                   tags={"role": "action", "attempt": attempt})
            [response] = await ictx.generate(request)
            model = response.model
            messages = [*request.messages,  # type: ignore[misc]
                        {"role": "assistant", "content": response.text}]
            row: dict[str, Any] = {"attempt": attempt, "retrieved": [s.name for s in retrieved],
                                   "messages": messages, "finish_reason": response.finish_reason}
            parsed = parse_reply(response.text)
            if isinstance(parsed, str):  # the authors: nothing runs, the next round retries
                row.update(program_name=None, code=None, execution=None, success=False,
                           critique="", error=parsed, critic=None, check=None)
                attempts.append(row)
                continue
            before = explorer.state
            async with self._gate:
                run = await execute(parsed, explorer.library.programs, before, self._limits)
            explorer.state = run.state
            verdict = await self._judge(ictx, attempt, task, context, goal, before, run)
            row.update(program_name=parsed.name, code=parsed.code, execution=run.to_json(),
                       error=run.error, **verdict)
            attempts.append(row)
            if verdict["success"]:
                return attempts, True, parsed, model
            code, error, chat, critique = parsed.code, run.error or "", run.chat, \
                verdict["critique"]
            summary = chatlog_summary(run.chat)
            query = f"{context or task}\n\n{summary}" if summary else (context or task)
        return attempts, False, None, model

    async def _judge(self, ictx: ItemContext, attempt: int, task: str, context: str,
                     goal: dict[str, Any] | None, before: dict[str, Any], run: Execution
                     ) -> dict[str, Any]:
        """Success and critique: the LLM critic (not asked when the program raised, as the
        authors'), and the world's check where the task names an item and a count."""
        cfg = self.config
        critic: dict[str, Any] | None = None
        if run.error is None and cfg.critic != "program":
            try:
                response = await self.ask(
                    ictx, {"obs": world.describe(run.state), "task": task, "context": context},
                    template="critic_template", schema=CRITIC_SCHEMA,
                    max_tokens=cfg.critic_max_tokens, seed_offset=100 + attempt,
                    model=cfg.critic_model, tags={"role": "critic", "attempt": attempt})
                reply = parsed_object(response)
                critic = {"success": reply.get("success") is True,
                          "critique": str(reply.get("critique", "")),
                          "reasoning": str(reply.get("reasoning", ""))}
            except StructuredOutputError as exc:  # the authors: (False, "") after 5 tries
                critic = {"success": False, "critique": "", "reasoning": "",
                          "error": f"unparseable critic reply: {exc}"}
        check = None
        if goal is not None and cfg.critic != "llm":
            ok, why = world.check_goal(goal, before, run.state)
            check = {"success": ok and run.error is None, "reason": why}
        if run.error is not None:
            success = False
        elif check is not None:
            success = check["success"]
        elif cfg.critic == "program":
            success = False  # nothing to check the task against
        else:
            success = bool(critic and critic["success"])
        critique = critic["critique"] if critic else ""
        if check is not None and not success and not critique:
            critique = f"The task is not done: {check['reason']}."
        return {"success": success, "critique": critique, "critic": critic, "check": check}

    async def _describe(self, ictx: ItemContext, program: Program) -> str:
        cfg = self.config
        response: LLMResponse = await self.ask(
            ictx, {"code": program.code, "name": program.name}, template="skill_template",
            max_tokens=cfg.skill_max_tokens, seed_offset=200, model=cfg.skill_model,
            tags={"role": "skill"})
        return " ".join(response.text.split()) or program.name


# --- exports -------------------------------------------------------------------------------


@register_step
class VoyagerTrajectories(ExpandStep):
    """One record per attempt of a curriculum step: ``messages`` (the action agent's system and
    user turns and its reply), the code, what running it did, the critique and success; a
    failed attempt's ``reject_reason`` says why (``drop_rejected`` keeps the successes)."""

    type_name = "voyager_trajectories"

    def reads(self) -> list[str]:
        return ["explorer", "step", "task", "success", "attempts"]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> list[Output]:
        outputs = []
        for a in record["attempts"]:
            outputs.append(Output(columns={
                "explorer": record["explorer"], "step": record["step"], "task": record["task"],
                "attempt": a["attempt"], "messages": a["messages"], "code": a["code"],
                "program_name": a["program_name"], "retrieved": a["retrieved"],
                "execution": a["execution"], "error": a["error"], "critique": a["critique"],
                "critic": a["critic"], "check": a["check"], "success": a["success"],
                "task_success": record["success"], "reject_reason": None if a["success"]
                else f"attempt failed: {_why(a)}"}, replace=True, sample_index=a["attempt"]))
        return outputs


def _why(attempt: dict[str, Any]) -> str:
    """Why an attempt did not complete its task, in one line (``drop_rejected``'s reason)."""
    check = attempt.get("check") or {}
    why = attempt.get("error") or check.get("reason") or attempt.get("critique") or \
        "the critic judged it unsuccessful"
    return str(why)[:300]


@register_step
class VoyagerSkills(ExpandStep):
    """The skill learned at a curriculum step (name, description, code, version, and whether
    it is the version left in the explorer's final library); a failed task is a drop."""

    type_name = "voyager_skills"

    def reads(self) -> list[str]:
        return ["explorer", "step", "task", "skill"]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> list[Output] | ItemResult:
        skill = record.get("skill")
        if not skill:
            return ItemResult.drop("no skill: the task failed")
        return [Output(columns={"explorer": record["explorer"], **skill}, replace=True)]

