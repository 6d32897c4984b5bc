"""``SamplingParams.presence_penalty`` (Self-Instruct's bootstrap sends 2): it reaches the
OpenAI-compatible request body and the cache key only when set, so every request without a
penalty keeps the body and the cache key it had."""

from __future__ import annotations

from synthloom.llm.backends.openai_compat import OpenAIBackend
from synthloom.llm.types import LLMRequest, SamplingParams


def test_presence_penalty_is_sent_and_keyed_only_when_set() -> None:
    plain = SamplingParams(temperature=0.7, top_p=0.5, seed=3)
    penalised = SamplingParams(temperature=0.7, top_p=0.5, seed=3, presence_penalty=2.0)
    assert "presence_penalty" not in plain.to_json()
    assert list(plain.to_json()) == ["temperature", "top_p", "max_tokens", "stop", "seed"]
    assert penalised.to_json() == {**plain.to_json(), "presence_penalty": 2.0}
    backend = OpenAIBackend("http://127.0.0.1:9/v1", "m")
    body = backend._body(LLMRequest(prompt="1. a task\n2.", params=penalised), 3, "none")
    assert body["presence_penalty"] == 2.0 and body["top_p"] == 0.5
    body = backend._body(LLMRequest(prompt="1. a task\n2.", params=plain), 3, "none")
    assert "presence_penalty" not in body
