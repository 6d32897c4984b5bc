"""APIGen's pipeline (Liu et al. 2024, arXiv 2406.18518) as synthloom steps, with the
executable API library of ``synthloom.tools.library``.

* ``apigen_tasks`` (source): one task per item: a kind (simple, multiple, parallel,
  parallel_multiple, irrelevance; cycling) and the APIs sampled for it from the library's
  domains (math, units, dates, text, and the stateful store, bank and calendar).
* ``apigen_query``: the model writes a user request the kind calls for over those APIs.
* ``apigen_calls``: the step's model answers the request *with the tools* (native tool calls,
  or the client's constrained path). Stage 1, **format**: the calls must name offered tools
  with arguments valid under their schemas (the client repairs, then gives up) and match the
  kind (one call; several calls of one API; calls of several APIs; none for irrelevance).
* ``apigen_execute``: stage 2, **execution**: every call runs (library functions in the
  sandbox, a fresh stateful world per item, calls in order); any error rejects.
* ``apigen_judge``: stage 3, **semantic**: a judge reads the request, the calls and their
  results: do they do what was asked (irrelevance: is no tool really fit)?

Simulated APIs (ToolACE, Liu et al. 2024, arXiv 2409.00920): ``simulated`` names a pool of
APIs without code (``synthloom.tools.pool``; ``pkg:tools/library/simulated.json`` ships one)
whose domains join the sampled ones. The format stage is ToolACE's rule layer for their calls
(name, required arguments, types, enums and regex patterns of the schema); "execution" means
the step's model, playing the API from its schema and examples, returned a result valid under
the API's ``returns`` schema (provenance ``simulated``); the judge adds ToolACE's model-layer
tool-response check (is each simulated result plausible for the API and its arguments).

Nothing is dropped silently: a candidate failing a stage is kept with ``reject_reason``
``"<stage>: why"`` and ``reject_stage``, passes the later stages untouched, and the final
``drop_rejected`` turns the mark into a counted drop (``dropped.jsonl``).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

from pydantic import Field, field_validator, model_validator

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import resolve_data_path
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, SourceStep, StepConfig, non_empty_subset
from synthloom.llm.toolcalls import assistant_message, call_errors, function_of, tool_message
from synthloom.llm.types import LLMRequest, SamplingParams, StructuredOutputError, ToolCall
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.tools.base import ToolEnvironment
from synthloom.tools.library import DOMAINS, domain_environment, domain_tools
from synthloom.tools.pool import PoolAPI, PoolError, load_api_pool
from synthloom.tools.simulated import SimulatedAPI

KINDS = ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance")
SINGLE_CALL_KINDS = frozenset({"simple", "multiple", "irrelevance"})
KIND_INSTRUCTIONS = {
    "simple": "Write one user request that needs exactly one call of one of these tools.",
    "multiple": "Write one user request that needs exactly one call of exactly one of these "
                "tools (the others are distractors).",
    "parallel": "Write one user request that needs the same tool called two or three times "
                "with different arguments (e.g. the same conversion for several values).",
    "parallel_multiple": "Write one user request that needs two or more different tools, "
                         "each called at least once, all at the same time.",
    "irrelevance": "Write one user request that sounds like it could be served by software "
                   "but that none of these tools can serve.",
}


class TasksConfig(StepConfig):
    #: Tasks generated (each draws its APIs from the run seed and its index).
    count: int = Field(default=20, ge=0)
    #: Task kinds, cycled over in order (a non-empty subset of simple, multiple, parallel,
    #: parallel_multiple, irrelevance).
    kinds: list[str] = Field(default_factory=lambda: list(KINDS))
    #: Executable tool domains the APIs are sampled from (a subset of the shipped ones; may
    #: be empty when ``simulated`` names a pool).
    domains: list[str] = Field(default_factory=lambda: list(DOMAINS))
    #: JSON pool of simulated APIs (schemas, result schemas and examples; no code) whose
    #: domains join ``domains`` (ToolACE); a path or ``pkg:tools/library/simulated.json``.
    #: None: executable APIs only.
    simulated: str | None = None

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        return non_empty_subset("kinds", value, list(KINDS))

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        return non_empty_subset("domains", value, list(DOMAINS)) if value else value

    @model_validator(mode="after")
    def _some_domain(self) -> TasksConfig:
        if not self.domains and not self.simulated:
            raise ValueError("domains may be empty only when simulated names an API pool")
        return self


def sample_apis(kind: str, domains: list[str], rng: random.Random,
                pool: dict[str, list[dict[str, Any]]] | None = None
                ) -> list[tuple[str, dict[str, Any]]]:
    """(domain, tool schema) pairs for one task of ``kind``; ``pool``: the tools of each
    domain (default: the shipped library's)."""
    pool = pool or {d: domain_tools(d) for d in domains}
    first = rng.choice(domains)
    if kind in ("simple", "parallel"):
        return [(first, rng.choice(pool[first]))]
    if kind == "irrelevance":
        return [(first, t) for t in rng.sample(pool[first], min(2, len(pool[first])))]
    # multiple / parallel_multiple: 2-4 APIs from one or two domains.
    second = rng.choice(domains)
    candidates = [(first, t) for t in pool[first]]
    if second != first:
        candidates += [(second, t) for t in pool[second]]
    return rng.sample(candidates, min(len(candidates), rng.randint(2, 4)))


@register_step
class ApigenTasks(SourceStep):
    """``count`` tasks: task_index, kind (cycling over ``kinds``), tools (OpenAI schemas of
    the sampled APIs) and tool_domains (tool name -> domain), drawn from the run seed."""

    type_name = "apigen_tasks"
    Config = TasksConfig
    config: TasksConfig

    _simulated: dict[str, PoolAPI] | None = None

    def setup(self, ctx: RunContext) -> None:
        self.simulated_apis()  # a bad pool stops the run before any call

    def simulated_apis(self) -> dict[str, PoolAPI]:
        """The pool's APIs by name ({} without a pool), checked against the library."""
        if self._simulated is None:
            self._simulated = {}
            if self.config.simulated:
                try:
                    apis = load_api_pool(resolve_data_path(self.config.simulated))
                except PoolError as exc:
                    raise RecipeError(f"step {self.name!r}: {exc}") from exc
                library = {function_of(t)["name"] for d in DOMAINS for t in domain_tools(d)}
                for api in apis:
                    if api.domain in DOMAINS or api.name in library:
                        raise RecipeError(
                            f"step {self.name!r}: simulated API {api.name!r} (domain "
                            f"{api.domain!r}) clashes with the executable library's names")
                self._simulated = {a.name: a for a in apis}
        return self._simulated

    def read(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        cfg = self.config
        simulated = self.simulated_apis()
        pool = {d: domain_tools(d) for d in cfg.domains}
        for api in simulated.values():
            pool.setdefault(api.domain, []).append(api.tool)
        domains = list(pool)
        for i in range(cfg.count):
            kind = cfg.kinds[i % len(cfg.kinds)]
            rng = random.Random(f"apigen:{ctx.seed}:{i}")  # per task: independent of order
            apis = sample_apis(kind, domains, rng, pool)
            row = {"task_index": i, "kind": kind, "tools": [t for _, t in apis],
                   "tool_domains": {t["function"]["name"]: d for d, t in apis}}
            if simulated:  # what the simulator needs, in the record (and its cache keys)
                row["simulated_apis"] = {
                    name: {"returns": simulated[name].returns,
                           "examples": simulated[name].examples}
                    for name in row["tool_domains"] if name in simulated}
            yield row


# --- stage helpers --------------------------------------------------------------------------


def rejected(record: dict[str, Any]) -> bool:
    return bool(record.get("reject_reason"))


def passed_through(record: dict[str, Any]) -> Output:
    """A candidate rejected by an earlier stage: unchanged (the drop happens at the end)."""
    return Output(columns={})


def reject(stage: str, why: str, **columns: Any) -> Output:
    return Output(columns={**columns, "reject_reason": f"{stage}: {why}", "reject_stage": stage})


def kind_problem(kind: str, calls: list[dict[str, Any]]) -> str | None:
    """Why ``calls`` do not fit the task's kind, or None."""
    names = [c["name"] for c in calls]
    if kind == "irrelevance":
        return f"irrelevance task answered with {len(calls)} call(s)" if calls else None
    if not calls:
        return f"{kind} task answered without a call"
    if kind in ("simple", "multiple") and len(calls) != 1:
        return f"{kind} task needs one call, got {len(calls)}"
    if kind == "parallel" and (len(calls) < 2 or len(set(names)) != 1):
        return f"parallel task needs several calls of one tool, got {names}"
    if kind == "parallel_multiple" and (len(calls) < 2 or len(set(names)) < 2):
        return f"parallel_multiple task needs calls of several tools, got {names}"
    return None


# --- query ---------------------------------------------------------------------------------


class QueryConfig(StepConfig):
    #: Jinja prompt template of the user request (gets the tools and the kind's instruction).
    template: str = "apigen/prompts/query.jinja"
    #: Sampling temperature of the request.
    temperature: float = 0.9
    #: Most tokens of the request's completion.
    max_tokens: int = 192


@register_step
class ApigenQuery(TemplatedStep, MapStep):
    """The user request a task's kind calls for over its tools (``query``)."""

    type_name = "apigen_query"
    uses_llm = True
    Config = QueryConfig
    config: QueryConfig

    def reads(self) -> list[str]:
        return ["kind", "tools"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        schema = {"type": "object", "properties": {"query": {
            "type": "string", "minLength": 10, "maxLength": 600}},
            "required": ["query"], "additionalProperties": False}
        variables = {"tools": record["tools"],
                     "kind_instruction": KIND_INSTRUCTIONS[str(record["kind"])]}
        response = await self.ask(ctx, variables, schema=schema)
        query = str(parsed_object(response).get("query", "")).strip()
        if len(query.split()) < 3:
            return ItemResult.drop(f"query too short: {query!r}")
        return self.output(response, {"query": query})


# --- calls (stage 1: format) -----------------------------------------------------------------


class CallsConfig(StepConfig):
    #: Jinja prompt template the model answers the request with (native tool calls).
    template: str = "apigen/prompts/answer.jinja"
    #: Sampling temperature of the answer.
    temperature: float = 0.3
    #: Most tokens of the answer.
    max_tokens: int = 384


@register_step
class ApigenCalls(TemplatedStep, MapStep):
    """The model's tool calls for the query; format-checked (schema, then the kind)."""

    type_name = "apigen_calls"
    uses_llm = True
    Config = CallsConfig
    config: CallsConfig

    def reads(self) -> list[str]:
        return ["kind", "tools", "query"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        tools = record["tools"]
        request = LLMRequest(
            messages=self.template().render_messages({"query": record["query"]}),
            tools=tools,
            # One call where the kind wants one (a small model otherwise repeats calls until
            # its token cap); the kind check still runs for servers that ignore the flag.
            parallel_tool_calls=False if record["kind"] in SINGLE_CALL_KINDS else None,
            params=SamplingParams(temperature=cfg.temperature,
                                               max_tokens=cfg.max_tokens, seed=ctx.seed),
            tags={"step": self.name})
        try:
            [response] = await ctx.generate(request)
        except StructuredOutputError as exc:  # malformed after repair: APIGen's format stage
            return reject("format", str(exc), tool_calls=[], answer="")
        calls = [c.to_json() for c in response.tool_calls or []]
        columns = {"tool_calls": calls, "answer": response.text}
        # The client validated native and constrained calls alike; checked again here so a
        # cached or foreign answer cannot slip through.
        errors = call_errors(response.tool_calls or [], tools)
        problem = errors[0] if errors else kind_problem(str(record["kind"]), calls)
        if problem:
            return self.output(response, {**columns, "reject_reason": f"format: {problem}",
                                          "reject_stage": "format"})
        return self.output(response, {**columns, "reject_reason": None, "reject_stage": None})


# --- execution (stage 2) ---------------------------------------------------------------------


class ExecuteConfig(StepConfig):
    #: Run library functions in the sandbox (a process per call); false: in this process.
    sandbox: bool = True
    #: Time limit of one call, in seconds.
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    #: Time limit of one simulated call (the step's model answers it), in seconds.
    simulator_timeout_s: float = Field(default=120.0, gt=0, le=1800)
    #: Most tokens of a simulated API's answer.
    simulator_max_tokens: int = Field(default=256, ge=16)


@register_step
class ApigenExecute(MapStep):
    """Runs every call (a fresh world per item for the stateful toys, calls in order); a call
    that fails rejects the candidate. Calls of simulated APIs are answered by the step's
    model (its only use of one). Adds ``tool_results`` (each with its provenance: ``python``
    executed or ``simulated``), ``messages`` (the OpenAI conversation: request, assistant tool
    calls, tool results) and ``final_state``."""

    type_name = "apigen_execute"
    uses_llm = True  # only for simulated APIs
    Config = ExecuteConfig
    config: ExecuteConfig

    def reads(self) -> list[str]:
        return ["tool_calls", "tool_domains", "query", "answer", "reject_reason", "tools",
                "simulated_apis"]

    def _environment(self, domain: str, record: dict[str, Any], ctx: ItemContext
                     ) -> ToolEnvironment:
        simulated = record.get("simulated_apis") or {}
        names = [n for n, d in record["tool_domains"].items() if d == domain and n in simulated]
        if not names:
            return domain_environment(domain, sandbox=self.config.sandbox,
                                      timeout_s=self.config.timeout_s)
        return SimulatedAPI(
            ctx.llm, [t for t in record["tools"] if function_of(t)["name"] in names],
            examples={n: simulated[n]["examples"] for n in names},
            returns={n: simulated[n]["returns"] for n in names if simulated[n]["returns"]},
            generate=ctx.generate, timeout_s=self.config.simulator_timeout_s,
            max_tokens=self.config.simulator_max_tokens, seed=ctx.run.seed)

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        if rejected(record):
            return passed_through(record)
        calls = [ToolCall.from_json(c) for c in record.get("tool_calls") or []]
        domains = record["tool_domains"]
        envs = {d: self._environment(d, record, ctx) for d in {domains[c.name] for c in calls}}
        results, messages = [], [{"role": "user", "content": record["query"]}]
        if calls:
            messages.append(assistant_message(calls))
        elif record.get("answer"):  # irrelevance: the answer in words is the turn
            messages.append({"role": "assistant", "content": str(record["answer"])})
        for call in calls:
            env = envs[domains[call.name]]
            result = await env.call(call)
            if not result.ok:
                how = " (simulated)" if env.kind == "simulated" else ""
                return reject("execution", f"{call.name}{how}: {result.error}",
                              tool_results=results)
            results.append({"tool_call_id": call.id, "name": call.name,
                            "content": result.content, "provenance": result.provenance})
            messages.append(tool_message(call, result.content))
        states = {d: s for d, env in envs.items() if (s := env.state()) is not None}
        return Output(columns={"tool_results": results, "messages": messages,
                               "final_state": states or None})


# --- semantic check (stage 3) ----------------------------------------------------------------


class JudgeConfig(StepConfig):
    #: Jinja prompt template of the semantic judge.
    template: str = "apigen/prompts/judge.jinja"
    #: Sampling temperature of the judge.
    temperature: float = 0.0
    #: Most tokens of the judge's verdict.
    max_tokens: int = 160


JUDGE_SCHEMA = {"type": "object", "properties": {
    "passes": {"type": "boolean"}, "reason": {"type": "string", "maxLength": 300}},
    "required": ["passes", "reason"], "additionalProperties": False}


@register_step
class ApigenJudge(TemplatedStep, MapStep):
    """A judge reads the request, calls and results: do they answer it (irrelevance: is no
    tool really fit)? A "no" rejects the candidate at the semantic stage."""

    type_name = "apigen_judge"
    uses_llm = True
    Config = JudgeConfig
    config: JudgeConfig

    def reads(self) -> list[str]:
        return ["query", "tools", "tool_calls", "tool_results", "reject_reason",
                "simulated_apis"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        if rejected(record):
            return passed_through(record)
        results = {r["tool_call_id"]: r for r in record.get("tool_results") or []}
        calls = [{"name": c["name"], "arguments": c["arguments"],
                  "result": json.dumps(results.get(c["id"], {}).get("content"))[:400],
                  "simulated": simulated_result(results.get(c["id"]))}
                 for c in record.get("tool_calls") or []]
        # ToolACE's tool-response check needs the definitions of the simulated APIs called
        # (with the schema of their results).
        called = {c["name"] for c in calls if c["simulated"]}
        pool = record.get("simulated_apis") or {}
        apis = [json.dumps({**function_of(t), "returns": pool.get(name, {}).get("returns")},
                           ensure_ascii=False)
                for t in record["tools"] if (name := function_of(t)["name"]) in called]
        variables = {"query": record["query"], "calls": calls, "simulated_apis": apis,
                     "tool_names": [t["function"]["name"] for t in record["tools"]]}
        response = await self.ask(ctx, variables, schema=JUDGE_SCHEMA)
        verdict = parsed_object(response)
        columns = {"judge": verdict}
        if verdict.get("passes") is not True:
            columns.update(reject_reason=f"semantic: {verdict.get('reason') or 'judged wrong'}",
                           reject_stage="semantic")
        return self.output(response, columns)


def simulated_result(result: dict[str, Any] | None) -> bool:
    """Whether a ``tool_results`` entry came from a simulated API."""
    return bool(result) and (result.get("provenance") or {}).get("kind") == "simulated"


def stage_counts(records: list[dict[str, Any]]) -> Counter[str]:
    """How many candidates each stage rejected (``None``: kept), for reports and tests."""
    return Counter(r.get("reject_stage") for r in records)
