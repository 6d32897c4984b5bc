"""Simulated APIs (ToolACE): a named model plays each API from its schema and examples.

The model answers one JSON object ``{"result": ...}`` or ``{"error": "..."}`` (schema-
constrained and validated by the client; where a tool declares ``returns``, the result must
satisfy that schema too). An answer that stays invalid after the client's repairs is the
simulated API's failure (a ``ToolError``: the call failed, as an executed call that raises);
an unreachable server or a spent budget is not the API's and propagates. Its provenance says
``simulated`` and names the model, so a dataset can keep or drop simulated results knowingly.
Calls are cached like any LLM call: the same call to the same simulator gives the same answer
on a rerun.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from synthloom.llm.client import LLMClient
from synthloom.llm.toolcalls import function_of
from synthloom.llm.types import LLMRequest, LLMResponse, SamplingParams, StructuredOutputError
from synthloom.prompting.templates import load_template
from synthloom.tools.base import ToolEnvironment, ToolError

TEMPLATE = "tools/prompts/simulate_api.jinja"
ANSWER_SCHEMA: dict[str, Any] = {"anyOf": [
    {"type": "object", "properties": {"result": {}}, "required": ["result"]},
    {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
]}


def answer_schema(returns: dict[str, Any] | None) -> dict[str, Any]:
    """The simulator's answer schema, its ``result`` narrowed to the tool's ``returns``: a
    union of two closed objects (grammars and schema-driven decoders follow an ``anyOf``; a
    bad result next to an ``"error"`` key must not pass as an error)."""
    if returns is None:
        return ANSWER_SCHEMA
    return {"anyOf": [{**branch, "additionalProperties": False} for branch in (
        {"type": "object", "properties": {"result": returns}, "required": ["result"]},
        ANSWER_SCHEMA["anyOf"][1])]}


class SimulatedAPI(ToolEnvironment):
    """Tools answered by ``client``'s model. ``examples``: per tool name, a few
    ``{"arguments": {...}, "result": ...}`` pairs shown to the model; ``returns``: per tool
    name, the JSON schema of its result; ``generate``: what sends the request (a step passes
    its item's ``generate``, which charges the calls to the item; default the client's)."""

    kind = "simulated"

    def __init__(self, client: LLMClient, tools: list[dict[str, Any]], *,
                 examples: dict[str, list[dict[str, Any]]] | None = None,
                 returns: dict[str, dict[str, Any]] | None = None,
                 generate: Callable[[LLMRequest], Awaitable[list[LLMResponse]]] | None = None,
                 timeout_s: float = 120.0, max_tokens: int = 256, seed: int = 0) -> None:
        self.client = client
        self._tools = tools
        self.examples = examples or {}
        self.returns = returns or {}
        self.generate = generate or client.generate
        self.timeout_s = timeout_s
        self.params = SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=seed)
        self.template = load_template(TEMPLATE)

    async def tools(self) -> list[dict[str, Any]]:
        return self._tools

    def provenance(self, name: str) -> dict[str, Any]:
        return {"kind": self.kind, "tool": name, "model": self.client.model_id,
                "template": self.template.hash}

    async def _call(self, name: str, arguments: dict[str, Any]) -> Any:
        spec = next(function_of(t) for t in self._tools if function_of(t).get("name") == name)
        messages = self.template.render_messages({
            "tool": json.dumps(spec, ensure_ascii=False),
            "examples": [json.dumps(e, ensure_ascii=False) for e in self.examples.get(name, [])],
            "returns": json.dumps(self.returns[name]) if name in self.returns else "",
            "arguments": json.dumps(arguments, ensure_ascii=False)})
        try:
            [response] = await self.generate(LLMRequest(
                messages=messages, json_schema=answer_schema(self.returns.get(name)),
                params=self.params, tags={"step": "simulated_api", "tool": name}))
        except StructuredOutputError as exc:  # the simulated API answered nonsense
            raise ToolError(f"the simulator's answer is invalid: {exc}") from exc
        answer = response.parsed
        if isinstance(answer, dict) and "error" in answer and "result" not in answer:
            raise ToolError(str(answer["error"]))
        return answer.get("result") if isinstance(answer, dict) else answer
