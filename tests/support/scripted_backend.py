"""ScriptedTestBackend: a test double for unit tests of the engine (no model behind it).

It answers with a Python function of the request, counts calls per prompt, and can raise
scripted errors, so tests can assert exactly which calls the engine made.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from synthloom.llm.backends.base import Backend
from synthloom.llm.types import LLMRequest, RawCompletion, Usage


def last_user_text(request: LLMRequest) -> str:
    if request.prompt is not None:
        return request.prompt
    return (request.messages or [{}])[-1].get("content", "")


class ScriptedTestBackend(Backend):
    kind = "scripted-test"
    supports_json_schema = False
    supports_raw_prompt = True
    default_concurrency = 4

    def __init__(
        self,
        responder: Callable[[LLMRequest, int | None], str] | None = None,
        *,
        errors: list[BaseException] | None = None,
        latency_s: float = 0.0,
        name: str = "scripted",
    ) -> None:
        self.responder = responder or (lambda req, seed: f"echo: {last_user_text(req)[:60]}")
        self.errors = list(errors or [])  # raised, in order, by the first calls
        self.latency_s = latency_s
        self.name = name
        self.calls = 0
        self.prompts: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def model_id(self) -> str:
        return f"scripted:{self.name}"

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        self.calls += 1
        self.prompts[last_user_text(request)] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            if self.errors:
                raise self.errors.pop(0)
            text = self.responder(request, seed)
        finally:
            self.in_flight -= 1
        prompt_tokens = len(last_user_text(request).split())
        return RawCompletion(
            text=text,
            finish_reason="stop",
            model=self.model_id,
            usage=Usage(prompt_tokens, len(text.split())),
        )
