"""LLMClient structured output with the ScriptedTestBackend (a test double): a truncated JSON
answer is re-asked with a larger max_tokens; usage of every attempt is counted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from synthloom.llm.client import LLMClient
from synthloom.llm.types import LLMRequest, RawCompletion, SamplingParams, StructuredOutputError
from tests.support.scripted_backend import ScriptedTestBackend

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
          "required": ["a", "b"]}


class Truncating(ScriptedTestBackend):
    """Cuts its JSON answer off (finish_reason=length) while max_tokens < 100."""

    def __init__(self) -> None:
        super().__init__()
        self.max_tokens_seen: list[int] = []

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        raw = await super().complete(request, seed=seed)
        self.max_tokens_seen.append(request.params.max_tokens)
        if request.params.max_tokens < 100:
            return RawCompletion('{"a": "x", "b": "y y y y', "length", raw.usage, raw.model)
        return RawCompletion(json.dumps({"a": "x", "b": "y"}), "stop", raw.usage, raw.model)


def request(max_tokens: int) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": "give a and b"}], json_schema=SCHEMA,
                      params=SamplingParams(max_tokens=max_tokens, seed=1))


def test_truncated_structured_output_is_reasked_with_more_tokens() -> None:
    backend = Truncating()
    client = LLMClient(backend)
    [response] = asyncio.run(client.generate(request(40)))
    assert response.parsed == {"a": "x", "b": "y"} and response.calls == 3
    assert backend.max_tokens_seen == [40, 80, 160]
    assert client.stats()["structured_token_raises"] == 2


def test_the_raise_is_capped_and_the_failure_carries_its_usage() -> None:
    backend = Truncating()
    client = LLMClient(backend, max_repair_tokens=90, structured_retries=2)
    with pytest.raises(StructuredOutputError, match="cut off at max_tokens=90") as info:
        asyncio.run(client.generate(request(40)))
    assert backend.max_tokens_seen == [40, 80, 90]
    assert info.value.calls == 3 and info.value.usage.completion_tokens > 0


def test_a_permanent_failure_is_charged_to_the_item() -> None:
    """Scripted test backend: a 400-style permanent error is not retried, yet the call it made
    is counted on the item (and in the client's failures by cause)."""
    from synthloom.core.context import ItemContext, RunContext
    from synthloom.llm.types import PermanentLLMError

    backend = ScriptedTestBackend(errors=[PermanentLLMError("context length exceeded")])
    client = LLMClient(backend)
    item = ItemContext(run=RunContext(run_dir=Path("."), llm=client), item_key="k", seed=1)
    with pytest.raises(PermanentLLMError):
        asyncio.run(item.generate(LLMRequest(prompt="too long")))
    assert backend.calls == 1 and item.llm_calls == 1
    stats = client.stats()
    assert stats["failed_requests"] == 1 and stats["failure_causes"] == {"PermanentLLMError": 1}
