"""Simulated APIs (ToolACE): a named model plays each API from its schema and examples.

The model answers one JSON object ``{"result": ...}`` or ``{"error": "..."}`` (schema-
constrained and validated by the client); its provenance says ``simulated`` and names the
model, so a dataset can keep or drop simulated results knowingly. Calls are cached like any
LLM call: the same call to the same simulator gives the same answer on a rerun.
"""

from __future__ import annotations

import json
from typing import Any

from synthloom.llm.client import LLMClient
from synthloom.llm.toolcalls import function_of
from synthloom.llm.types import LLMRequest, SamplingParams
from synthloom.prompting.templates import load_template
from synthloom.tools.base import ToolEnvironment, ToolError

TEMPLATE = "tools/prompts/simulate_api.jinja"
ANSWER_SCHEMA: dict[str, Any] = {"anyOf": [
    {"type": "object", "properties": {"result": {}}, "required": ["result"]},
    {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
]}


class SimulatedAPI(ToolEnvironment):
    """Tools answered by ``client``'s model. ``examples``: per tool name, a few
    ``{"arguments": {...}, "result": ...}`` pairs shown to the model."""

    kind = "simulated"

    def __init__(self, client: LLMClient, tools: list[dict[str, Any]], *,
                 examples: dict[str, list[dict[str, Any]]] | None = None,
                 timeout_s: float = 120.0, max_tokens: int = 256, seed: int = 0) -> None:
        self.client = client
        self._tools = tools
        self.examples = examples or {}
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
            "arguments": json.dumps(arguments, ensure_ascii=False)})
        [response] = await self.client.generate(LLMRequest(
            messages=messages, json_schema=ANSWER_SCHEMA, params=self.params,
            tags={"step": "simulated_api", "tool": name}))
        answer = response.parsed
        if isinstance(answer, dict) and "error" in answer and "result" not in answer:
            raise ToolError(str(answer["error"]))
        return answer.get("result") if isinstance(answer, dict) else answer
