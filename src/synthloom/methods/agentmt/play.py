"""One rollout of APIGen-MT's phase 2 (simulated human-agent interplay), after tau-bench:

* the **user** is a model given the blueprint's intent under tau-bench's user-simulator rules
  (``LLMUserSimulationEnv.build_system_prompt`` in ``tau_bench/envs/user.py``); it opens after
  the agent's greeting and ends the conversation with ``###STOP###``;
* the **agent** is the step's model with the tools and the policy as its system prompt
  (``ToolCallingAgent.solve`` in ``tau_bench/agents/tool_calling_agent.py``): each step is one
  tool call (executed, its result appended) or one message to the user;
* the **reward** is tau-bench's ``Env.calculate_reward`` (``tau_bench/envs/base.py``): the
  environment's final state must equal the blueprint's goal state, and every expected output
  must appear in an agent message (lower-cased, commas removed).

``pass_hat_k`` is tau-bench's pass^k (``display_metrics`` in ``run.py``): for a task with c
successes in n trials, C(c, k) / C(n, k).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from math import comb
from typing import Any

from synthloom.llm.toolcalls import assistant_message, function_of
from synthloom.llm.types import LLMRequest, LLMResponse, StructuredOutputError
from synthloom.tools.base import ToolEnvironment, ToolResult

STOP = "###STOP###"
#: The agent's first words, as tau-bench's user simulator sees them.
GREETING = "Hi! How can I help you today?"

#: ``generate(request, who)``: ``who`` is "agent" or "user" (the caller picks the model).
Generate = Callable[[LLMRequest, str], Awaitable[LLMResponse]]


@dataclass
class Rollout:
    """One played conversation and its verdict."""

    messages: list[dict[str, Any]]
    success: bool = False
    reason: str | None = None
    steps: int = 0
    user_turns: int = 0
    stopped: bool = False
    tool_errors: int = 0
    final_state: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"success": self.success, "reason": self.reason, "steps": self.steps,
                "user_turns": self.user_turns, "stopped": self.stopped,
                "tool_errors": self.tool_errors}


class Tools:
    """The agent's tools: a stateful environment plus optional others (an MCP server),
    each call routed to the environment that lists the tool."""

    def __init__(self, env: ToolEnvironment, others: list[ToolEnvironment] | None = None
                 ) -> None:
        self.env = env
        self.others = list(others or [])
        self.schemas: list[dict[str, Any]] = []
        self._owner: dict[str, ToolEnvironment] = {}

    async def load(self) -> list[dict[str, Any]]:
        for environment in [self.env, *self.others]:
            for schema in await environment.tools():
                name = str(function_of(schema).get("name"))
                if name in self._owner:
                    raise ValueError(f"tool {name!r} is served twice (environment and MCP)")
                self._owner[name] = environment
                self.schemas.append(schema)
        return self.schemas

    async def call(self, call: Any) -> ToolResult:
        return await self._owner.get(call.name, self.env).call(call)


def state_diff(got: Any, want: Any, path: str = "") -> list[str]:
    """Where two states differ (dotted paths), for a readable drop reason."""
    if isinstance(got, dict) and isinstance(want, dict):
        out: list[str] = []
        for key in sorted(set(got) | set(want), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in got or key not in want:
                out.append(sub)
            else:
                out += state_diff(got[key], want[key], sub)
        return out
    return [] if got == want else [path or "<root>"]


def outputs_found(outputs: list[str], messages: list[dict[str, Any]]) -> list[str]:
    """The expected outputs no agent message mentions (tau-bench's r_outputs check)."""
    said = [str(m.get("content") or "").lower().replace(",", "") for m in messages
            if m.get("role") == "assistant"]
    return [o for o in outputs if not any(str(o).lower() in s for s in said)]


def pass_hat_k(successes: int, trials: int) -> dict[str, float]:
    """tau-bench's pass^k for k = 1..trials: C(c, k) / C(n, k)."""
    return {str(k): comb(successes, k) / comb(trials, k) for k in range(1, trials + 1)}


def mean_pass_hat_k(counts: list[tuple[int, int]]) -> dict[str, float]:
    """pass^k over tasks (mean of each task's), for the k every task was tried."""
    if not counts:
        return {}
    k_max = min(n for _, n in counts)
    return {str(k): sum(comb(c, k) / comb(n, k) for c, n in counts) / len(counts)
            for k in range(1, k_max + 1)}


async def play(*, tools: Tools, goal_state: dict[str, Any], outputs: list[str],
               agent_system: str, user_system: str, generate: Generate,
               max_turns: int, max_steps: int, stop_required: bool = True) -> Rollout:
    """One conversation between the simulated user and the agent, then its verdict."""
    schemas = tools.schemas or await tools.load()
    user_view: list[dict[str, Any]] = [{"role": "system", "content": user_system},
                                       {"role": "user", "content": GREETING}]
    first = await generate(LLMRequest(messages=list(user_view)), "user")
    opening = first.text.strip()
    user_view.append({"role": "assistant", "content": opening})
    messages: list[dict[str, Any]] = [{"role": "system", "content": agent_system},
                                      {"role": "user", "content": opening}]
    rollout = Rollout(messages=messages, user_turns=1)
    if STOP in opening:
        rollout.stopped = True
    while not rollout.stopped and rollout.steps < max_steps:
        rollout.steps += 1
        try:
            answer = await generate(LLMRequest(messages=list(messages), tools=schemas,
                                               parallel_tool_calls=False), "agent")
        except StructuredOutputError as exc:  # malformed after repair: the rollout fails
            rollout.reason = f"malformed tool call at step {rollout.steps}: {exc}"
            return rollout
        calls = answer.tool_calls or []
        if calls:
            # tau-bench's agent acts once per step (it keeps the first call).
            call = calls[0]
            messages.append(assistant_message([call], answer.text or None))
            result = await tools.call(call)
            rollout.tool_errors += 0 if result.ok else 1
            messages.append(result.message(call))
            continue
        text = answer.text.strip()
        messages.append({"role": "assistant", "content": text})
        if rollout.user_turns >= max_turns:
            break
        user_view.append({"role": "user", "content": text})
        reply = (await generate(LLMRequest(messages=list(user_view)), "user")).text.strip()
        user_view.append({"role": "assistant", "content": reply})
        rollout.user_turns += 1
        if STOP in reply:
            rollout.stopped = True  # the closing line is not part of the trajectory
            break
        messages.append({"role": "user", "content": reply})
    state = tools.env.state()
    rollout.final_state = state
    if stop_required and not rollout.stopped:
        rollout.reason = (f"cap: the user did not end the conversation within {max_turns} "
                          f"user turns / {max_steps} agent steps")
        return rollout
    diff = state_diff(state, goal_state)
    if diff:
        rollout.reason = f"final state differs from the blueprint's at {', '.join(diff[:5])}"
        return rollout
    missing = outputs_found(outputs, messages)
    if missing:
        rollout.reason = f"expected output(s) never told the user: {missing}"
        return rollout
    rollout.success = True
    return rollout
