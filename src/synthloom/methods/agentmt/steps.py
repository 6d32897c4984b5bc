"""APIGen-MT (Prabhakar et al. 2025, arXiv 2504.03601) as synthloom steps, over the stateful
toy environments of ``synthloom.tools.envs`` (store, bank, calendar: tools, policy, state).

Phase 1, task blueprints:

* ``agent_tasks`` (source): one task per item: an environment (cycling), its policy, tool
  schemas and initial state, and the tools the blueprint should involve (drawn per item).
* ``agent_blueprint``: the model writes the blueprint: the simulated user's ``intent``, the
  ground-truth ``actions`` (tool calls in order) and the ``outputs`` the agent must say.
  Stage **format**: every action names a tool of the environment with arguments valid under
  its schema.
* ``agent_blueprint_execute``: stages **execution** / **policy**: the actions run in order on
  a fresh world; a failing action rejects (``policy`` when the environment refused it under
  its policy); each expected output must occur in an action's result. The state after the
  actions is the ``goal_state``.
* ``agent_committee``: stage **committee**: several judge samples (a committee of reviewers)
  vote; a blueprint is kept by majority.

Phase 2, trajectories:

* ``agent_rollout``: k rollouts per blueprint: a simulated user (a named model, tau-bench's
  user prompt) and the agent (the step's model with the tools, and optionally the tools of an
  MCP server, ``mcp:``) play up to the caps (``methods/agentmt/play.py``). Stage
  **trajectory**: a rollout succeeds when the final state equals the goal state (and the
  outputs were said); the first success is the record's ``messages``; pass^k is recorded.
* ``agent_pass_k``: a barrier that writes ``RUN/pass_k.json`` (tau-bench's pass^k over the
  blueprints that reached rollouts, overall and per environment); records pass unchanged.

As in ``apigen``: a candidate failing a stage is kept with ``reject_reason`` ``"<stage>:
why"`` and ``reject_stage``, passes the later stages untouched, and ``drop_rejected`` turns
the mark into a counted drop (``dropped.jsonl``).
"""

from __future__ import annotations

import json
import random
import shlex
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import GlobalStep, MapStep, SourceStep, StepConfig, non_empty_subset
from synthloom.llm.toolcalls import call_errors, function_of, union_schema
from synthloom.llm.types import (
    LLMRequest,
    LLMResponse,
    SamplingParams,
    StructuredOutputError,
    ToolCall,
)
from synthloom.methods.agentmt.play import Tools, mean_pass_hat_k, pass_hat_k, play
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.tools.base import ToolEnvironment
from synthloom.tools.envs import ENVIRONMENTS

STAGES = ("format", "execution", "policy", "committee", "trajectory")


def rejected(record: dict[str, Any]) -> bool:
    return bool(record.get("reject_reason"))


def reject(stage: str, why: str, **columns: Any) -> Output:
    return Output(columns={**columns, "reject_reason": f"{stage}: {why}", "reject_stage": stage})


def passed_through() -> Output:
    """A candidate rejected by an earlier stage: unchanged (the drop happens at the end)."""
    return Output(columns={})


def _names(tools: list[dict[str, Any]]) -> list[str]:
    return [str(function_of(t).get("name")) for t in tools]


# --- source ---------------------------------------------------------------------------------


class TasksConfig(StepConfig):
    count: int = Field(default=20, ge=0, description="Tasks (one blueprint each).")
    environments: list[str] = Field(default_factory=lambda: sorted(ENVIRONMENTS),
                                    description="Stateful environments to cycle through.")

    @field_validator("environments")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return non_empty_subset("environments", value, sorted(ENVIRONMENTS))


@register_step
class AgentTasks(SourceStep):
    """``count`` tasks: env, policy, tools, initial_state and focus (1-2 tool names the
    blueprint should involve, drawn from the run seed per task)."""

    type_name = "agent_tasks"
    Config = TasksConfig
    config: TasksConfig

    def read(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        cfg = self.config
        for i in range(cfg.count):
            name = cfg.environments[i % len(cfg.environments)]
            env = ENVIRONMENTS[name]()
            rng = random.Random(f"agentmt:{ctx.seed}:{i}")
            names = _names(env.schemas)
            yield {"task_index": i, "env": name, "policy": env.policy, "tools": env.schemas,
                   "initial_state": env.state(),
                   "focus": rng.sample(names, min(len(names), rng.randint(1, 2)))}


# --- blueprint (stage: format) ---------------------------------------------------------------


class BlueprintConfig(StepConfig):
    #: Jinja prompt template of the blueprint (intent, ground-truth actions, outputs).
    template: str = "agentmt/prompts/blueprint.jinja"
    #: Sampling temperature of the blueprint.
    temperature: float = 0.8
    #: Most tokens of the blueprint.
    max_tokens: int = 512
    #: Most ground-truth actions (tool calls) in a blueprint (schema maxItems).
    max_actions: int = Field(default=6, ge=1, le=20)


@register_step
class AgentBlueprint(TemplatedStep, MapStep):
    """The blueprint: intent, ground-truth actions, outputs; format-checked."""

    type_name = "agent_blueprint"
    uses_llm = True
    Config = BlueprintConfig
    config: BlueprintConfig

    def reads(self) -> list[str]:
        # task_index: tasks alike in every other column still get their own blueprint (seed).
        return ["task_index", "env", "policy", "tools", "initial_state", "focus"]

    def schema(self, tools: list[dict[str, Any]]) -> dict[str, Any]:
        # Each action is one branch per tool ({name: const, arguments: its schema}), the
        # LLM layer's tool-call union: a grammar-constrained model writes valid calls.
        action = union_schema(tools, "required")["properties"]["tool_calls"]["items"]
        return {"type": "object", "properties": {
            "intent": {"type": "string", "minLength": 20, "maxLength": 800},
            "actions": {"type": "array", "minItems": 1, "maxItems": self.config.max_actions,
                        "items": action},
            "outputs": {"type": "array", "minItems": 0, "maxItems": 3,
                        "items": {"type": "string", "minLength": 1, "maxLength": 60}}},
            "required": ["intent", "actions", "outputs"], "additionalProperties": False}

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        tools = record["tools"]
        variables = {"env": record["env"], "policy": record["policy"], "tools": tools,
                     "state": record["initial_state"], "focus": record["focus"]}
        try:
            response = await self.ask(ctx, variables, schema=self.schema(tools))
        except StructuredOutputError as exc:  # invalid after repair: the format stage
            return reject("format", f"blueprint invalid: {exc}", intent="", actions=[],
                          outputs=[])
        blueprint = parsed_object(response)
        actions = [{"name": str(a.get("name")), "arguments": a.get("arguments")}
                   for a in blueprint.get("actions") or [] if isinstance(a, dict)]
        columns = {"intent": str(blueprint.get("intent", "")).strip(), "actions": actions,
                   "outputs": [str(o) for o in blueprint.get("outputs") or []],
                   "reject_reason": None, "reject_stage": None}
        calls = [ToolCall(id=f"bp{i}", name=a["name"], arguments=a["arguments"])
                 for i, a in enumerate(actions)]
        errors = call_errors(calls, tools)
        if errors:
            columns.update(reject_reason=f"format: {errors[0]}", reject_stage="format")
        return self.output(response, columns)


# --- execution / policy ----------------------------------------------------------------------


def _text(value: Any) -> str:
    return (value if isinstance(value, str) else json.dumps(value)).lower().replace(",", "")


@register_step
class AgentBlueprintExecute(MapStep):
    """Runs the actions on a fresh world; adds ``action_results`` and ``goal_state``."""

    type_name = "agent_blueprint_execute"

    def reads(self) -> list[str]:
        return ["env", "initial_state", "actions", "outputs", "reject_reason"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        if rejected(record):
            return passed_through()
        env = ENVIRONMENTS[record["env"]](record["initial_state"])
        results: list[dict[str, Any]] = []
        for i, action in enumerate(record["actions"]):
            call = ToolCall(id=f"bp{i}", name=action["name"], arguments=action["arguments"])
            result = await env.call(call)
            if not result.ok:
                error = str(result.error)
                stage = "policy" if error.startswith("policy") else "execution"
                return reject(stage, f"action {i + 1} {call.name}: {error}",
                              action_results=results)
            results.append({"name": call.name, "arguments": call.arguments,
                            "result": result.content})
        seen = " ".join(_text(r["result"]) for r in results)
        ungrounded = [o for o in record["outputs"] if o.lower().replace(",", "") not in seen]
        if ungrounded:
            return reject("execution", f"output(s) {ungrounded} in no action's result",
                          action_results=results)
        return Output(columns={"action_results": results, "goal_state": env.state()})


# --- committee -------------------------------------------------------------------------------


JUDGE_SCHEMA = {"type": "object", "properties": {
    "passes": {"type": "boolean"}, "reason": {"type": "string", "maxLength": 300}},
    "required": ["passes", "reason"], "additionalProperties": False}


class CommitteeConfig(StepConfig):
    #: Jinja prompt template of one committee review.
    template: str = "agentmt/prompts/committee.jinja"
    judges: int = Field(default=3, ge=1, le=15, description="Committee size (judge samples).")
    judge_model: str | None = Field(default=None, description="Named model of the committee "
                                                              "(None: the step's own).")
    #: Sampling temperature of the reviews.
    temperature: float = 0.7
    #: Most tokens of one review.
    max_tokens: int = 160

    wiring: ClassVar[frozenset[str]] = StepConfig.wiring | {"judge_model"}


@register_step
class AgentCommittee(TemplatedStep, MapStep):
    """``judges`` reviews of the executed blueprint; kept by strict majority."""

    type_name = "agent_committee"
    uses_llm = True
    Config = CommitteeConfig
    config: CommitteeConfig

    def reads(self) -> list[str]:
        return ["env", "policy", "intent", "action_results", "outputs", "reject_reason"]

    def model_names(self) -> list[str]:
        return [*super().model_names(), *filter(None, [self.config.judge_model])]

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        judge = ctx.llm_for(self.config.judge_model) if self.config.judge_model else ctx.llm
        return {"templates": super().extra_fingerprint(ctx),
                "judge": judge.model_id if judge is not None else None}

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        if rejected(record):
            return passed_through()
        cfg = self.config
        actions = [{"name": a["name"], "arguments": a["arguments"],
                    "result": json.dumps(a["result"])[:400]} for a in record["action_results"]]
        variables = {"env": record["env"], "policy": record["policy"],
                     "intent": record["intent"], "actions": actions,
                     "outputs": record["outputs"]}
        responses = await self.ask_n(ctx, variables, cfg.judges, model=cfg.judge_model,
                                     schema=JUDGE_SCHEMA)
        verdicts = [{"passes": parsed_object(r).get("passes") is True,
                     "reason": str(parsed_object(r).get("reason", ""))} for r in responses]
        votes = sum(v["passes"] for v in verdicts)
        columns: dict[str, Any] = {"committee": verdicts, "committee_votes": votes}
        if 2 * votes <= cfg.judges:
            against = next((v["reason"] for v in verdicts if not v["passes"]), "")
            columns.update(reject_reason=f"committee: {votes}/{cfg.judges} votes for; {against}",
                           reject_stage="committee")
        return self.output(responses[0], columns)


# --- rollouts (stage: trajectory) --------------------------------------------------------------


class RolloutConfig(StepConfig):
    #: Jinja template of the agent's system prompt.
    agent_template: str = "agentmt/prompts/agent.jinja"
    #: Jinja template of the simulated user's system prompt.
    user_template: str = "agentmt/prompts/user.jinja"
    user_model: str | None = Field(default=None, description="Named model of the simulated "
                                                             "user (None: the step's own).")
    k: int = Field(default=3, ge=1, le=32, description="Rollouts per blueprint (pass^k).")
    max_turns: int = Field(default=10, ge=1, description="User turns per rollout.")
    max_steps: int = Field(default=20, ge=1, description="Agent steps (a tool call or a "
                                                         "message) per rollout.")
    stop_required: bool = Field(default=True, description="A rollout counts only when the "
                                "user ended it (###STOP###), as in tau-bench; false: the "
                                "state is judged at the cap too.")
    temperature: float = Field(default=0.0, description="The agent's (tau-bench: 0).")
    user_temperature: float = Field(default=1.0, description="The simulated user's.")
    max_tokens: int = Field(default=256, description="Token cap of each agent step.")
    user_max_tokens: int = Field(default=128, description="Token cap of each user turn.")
    mcp: str | None = Field(default=None, description="Command of an MCP server (stdio) whose "
                            "tools join the agent's; one server process per rollout.")
    #: Time limit of one MCP server request, in seconds.
    mcp_timeout_s: float = Field(default=30.0, gt=0, le=600)

    wiring: ClassVar[frozenset[str]] = StepConfig.wiring | {"user_model"}


@register_step
class AgentRollout(TemplatedStep, MapStep):
    """k simulated user-agent conversations per blueprint; kept when one ends in the goal
    state. Adds messages (the first success, OpenAI shape), tools, rollouts, rollout_passes,
    rollout_k and pass_hat_k."""

    type_name = "agent_rollout"
    uses_llm = True
    template_fields = ("agent_template", "user_template")
    Config = RolloutConfig
    config: RolloutConfig

    def reads(self) -> list[str]:
        return ["env", "policy", "initial_state", "intent", "outputs", "goal_state",
                "reject_reason"]

    def model_names(self) -> list[str]:
        return [*super().model_names(), *filter(None, [self.config.user_model])]

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        user = ctx.llm_for(self.config.user_model) if self.config.user_model else ctx.llm
        return {"templates": super().extra_fingerprint(ctx),
                "user": user.model_id if user is not None else None}

    def _system(self, field: str, variables: dict[str, Any]) -> str:
        return self.template(field).render_messages(variables)[0]["content"]

    def _others(self) -> list[ToolEnvironment]:
        if not self.config.mcp:
            return []
        from synthloom.tools.mcp import MCPTools  # the SDK only where a recipe asks for it

        command, *args = shlex.split(self.config.mcp)
        return [MCPTools(command, args, timeout_s=self.config.mcp_timeout_s)]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        if rejected(record):
            return passed_through()
        cfg = self.config
        variables = {"env": record["env"], "policy": record["policy"],
                     "intent": record["intent"]}
        agent_system = self._system("agent_template", variables)
        user_system = self._system("user_template", variables)
        rollouts, kept, schemas = [], None, []
        for i in range(cfg.k):
            async def generate(request: LLMRequest, who: str, i: int = i) -> LLMResponse:
                user = who == "user"
                request.params = SamplingParams(
                    temperature=cfg.user_temperature if user else cfg.temperature,
                    max_tokens=cfg.user_max_tokens if user else cfg.max_tokens,
                    seed=ctx.seed + i)  # rollout i: its own seed, each call cached
                request.tags = {"step": self.name, "role": who, "rollout": i}
                model = cfg.user_model if user else None
                [response] = await (ctx.generate(request, model=model) if model
                                    else ctx.generate(request))
                return response

            env = ENVIRONMENTS[record["env"]](record["initial_state"])
            others = self._others()
            tools = Tools(env, others)
            try:
                rollout = await play(
                    tools=tools, goal_state=record["goal_state"], outputs=record["outputs"],
                    agent_system=agent_system, user_system=user_system, generate=generate,
                    max_turns=cfg.max_turns, max_steps=cfg.max_steps,
                    stop_required=cfg.stop_required)
            finally:
                for other in others:  # closed in the task that opened it (anyio's rule)
                    await other.aclose()
            schemas = tools.schemas
            rollouts.append(rollout)
            if rollout.success and kept is None:
                kept = rollout
        passes = sum(r.success for r in rollouts)
        columns: dict[str, Any] = {
            "tools": schemas, "rollouts": [r.summary() for r in rollouts],
            "rollout_passes": passes, "rollout_k": cfg.k,
            "pass_hat_k": pass_hat_k(passes, cfg.k)}
        if kept is None:
            first = rollouts[0]
            return reject("trajectory", f"0/{cfg.k} rollouts reached the goal state; "
                          f"rollout 1: {first.reason}", messages=first.messages,
                          final_state=first.final_state, **columns)
        return Output(columns={**columns, "messages": kept.messages,
                               "final_state": kept.final_state})


# --- pass^k report --------------------------------------------------------------------------


class PassKConfig(StepConfig):
    report: str = Field(default="pass_k.json", description="File under the run folder.")


@register_step
class AgentPassK(GlobalStep):
    """tau-bench's pass^k over the blueprints that reached rollouts, overall and per
    environment, written to ``RUN/<report>``; every record passes unchanged."""

    type_name = "agent_pass_k"
    Config = PassKConfig
    config: PassKConfig

    def reads(self) -> list[str]:
        return ["env", "rollout_passes", "rollout_k", "reject_stage"]

    async def process_all(self, records: list[dict[str, Any]],
                          ctx: RunContext) -> list[ItemResult]:
        report = pass_k_report(records)
        if ctx.run_dir is not None:
            path = Path(ctx.run_dir) / self.config.report
            path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        return [ItemResult(outputs=[Output(columns={})]) for _ in records]


def pass_k_report(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Blueprints per stage, and pass^k (overall, per environment) over those rolled out."""
    counts: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in records:
        if r.get("rollout_k"):
            counts[str(r.get("env"))].append((int(r["rollout_passes"]), int(r["rollout_k"])))
    stages: dict[str, int] = defaultdict(int)
    for r in records:
        stages[r.get("reject_stage") or "kept"] += 1
    everything = [c for env in counts.values() for c in env]
    return {"blueprints": len(records), "stages": dict(stages),
            "rolled_out": len(everything), "pass_hat_k": mean_pass_hat_k(everything),
            "by_env": {env: {"tasks": len(c), "pass_hat_k": mean_pass_hat_k(c)}
                       for env, c in sorted(counts.items())}}
