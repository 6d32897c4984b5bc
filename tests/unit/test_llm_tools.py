"""Tool calls in the LLM layer, with the ScriptedTestBackend (a test double, no model): the
constrained {tool_calls | content} path, native tool calls, validation and repair of
malformed calls, cache keys, tool turns for backends without native tools, and the
OpenAI-compatible wire format (the real backend's request body and response parsing)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from synthloom.core.fingerprint import stable_hash
from synthloom.llm.backends.http import HttpResponse
from synthloom.llm.backends.openai_compat import OpenAIBackend
from synthloom.llm.client import LLMClient
from synthloom.llm.toolcalls import (
    assistant_message,
    call_errors,
    tool_message,
    union_schema,
)
from synthloom.llm.types import (
    LLMRequest,
    RawCompletion,
    SamplingParams,
    StructuredOutputError,
    ToolCall,
    Usage,
    normalize_logprobs,
)
from tests.support.scripted_backend import ScriptedTestBackend

ADD = {"type": "function", "function": {
    "name": "add", "description": "Add two integers.",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"},
                                                    "b": {"type": "integer"}},
                   "required": ["a", "b"], "additionalProperties": False}}}
UPPER = {"type": "function", "function": {
    "name": "upper", "description": "Upper-case a text.",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}},
                   "required": ["text"]}}}
TOOLS = [ADD, UPPER]


class MemoryCache:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def get_llm(self, key: str) -> dict[str, Any] | None:
        return self.rows.get(key)

    def put_llm(self, key: str, value: dict[str, Any]) -> None:
        self.rows[key] = value

    def flush(self) -> None:
        pass


def ask(**extra: Any) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": "what is 2 + 3?"}], tools=TOOLS,
                      params=SamplingParams(seed=3), **extra)


def answers(*texts: str) -> ScriptedTestBackend:
    queue = list(texts)
    seen: list[LLMRequest] = []

    def respond(request: LLMRequest, seed: int | None) -> str:
        seen.append(request)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    backend = ScriptedTestBackend(respond)
    backend.seen = seen  # type: ignore[attr-defined]
    return backend


def call_json(name: str, **arguments: Any) -> str:
    return json.dumps({"tool_calls": [{"name": name, "arguments": arguments}]})


def test_constrained_path_returns_parsed_tool_calls_with_stable_ids() -> None:
    backend = answers(call_json("add", a=2, b=3))
    [response] = asyncio.run(LLMClient(backend).generate(ask()))
    assert response.tool_calls is not None and len(response.tool_calls) == 1
    call = response.tool_calls[0]
    assert (call.name, call.arguments) == ("add", {"a": 2, "b": 3})
    assert call.id.startswith("call_") and response.text == ""
    # The model was shown the tools and asked for the union, with the tools left off the wire.
    sent = backend.seen[0]  # type: ignore[attr-defined]
    assert sent.tools is None and sent.json_schema == union_schema(TOOLS)
    assert sent.messages[0]["role"] == "system" and "add: Add two integers." in \
        sent.messages[0]["content"]
    [again] = asyncio.run(LLMClient(answers(call_json("add", a=2, b=3))).generate(ask()))
    assert again.tool_calls[0].id == call.id  # deterministic: from the cache key


def test_parallel_calls_and_plain_content() -> None:
    two = json.dumps({"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}},
                                     {"name": "upper", "arguments": {"text": "x"}}]})
    [response] = asyncio.run(LLMClient(answers(two)).generate(ask()))
    assert [c.name for c in response.tool_calls] == ["add", "upper"]
    assert len({c.id for c in response.tool_calls}) == 2
    [plain] = asyncio.run(LLMClient(answers('{"content": "5"}')).generate(ask()))
    assert plain.tool_calls is None and plain.text == "5"


@pytest.mark.parametrize(("bad", "problem"), [
    (call_json("subtract", a=2, b=3), "unknown tool 'subtract'"),
    (call_json("add", a="two", b=3), "$.tool_calls[0].arguments.a"),
    (call_json("add", a=2, b=3, c=4), "Additional properties"),
    (json.dumps({"tool_calls": [{"name": "add", "arguments": "a=2"}]}), "not a JSON object"),
])
def test_malformed_calls_are_reasked_with_the_problem_and_counted(bad: str, problem: str) -> None:
    backend = answers(bad, call_json("add", a=2, b=3))
    client = LLMClient(backend)
    [response] = asyncio.run(client.generate(ask()))
    assert response.tool_calls[0].arguments == {"a": 2, "b": 3} and response.calls == 2
    repair = backend.seen[1].messages[-1]["content"]  # type: ignore[attr-defined]
    assert problem in repair
    assert client.stats()["structured_repairs"] == 1


def test_calls_that_stay_malformed_fail_like_structured_output() -> None:
    client = LLMClient(answers(call_json("add", a=2)), structured_retries=2)
    with pytest.raises(StructuredOutputError, match="malformed tool calls after 3") as info:
        asyncio.run(client.generate(ask()))
    assert info.value.calls == 3
    assert client.stats()["structured_failures"] == 1


def test_tool_choice_required_and_forced() -> None:
    client = LLMClient(answers('{"content": "no"}'), structured_retries=0)
    with pytest.raises(StructuredOutputError, match="a tool call is required"):
        asyncio.run(client.generate(ask(tool_choice="required")))
    forced = {"type": "function", "function": {"name": "upper"}}
    assert union_schema(TOOLS, forced)["properties"]["tool_calls"]["items"]["properties"][
        "name"] == {"const": "upper"}
    client = LLMClient(answers(call_json("add", a=1, b=1)), structured_retries=0)
    with pytest.raises(StructuredOutputError, match="unknown tool 'add'"):
        asyncio.run(client.generate(ask(tool_choice=forced)))


def test_cache_key_covers_tools_and_plain_keys_are_unchanged() -> None:
    plain = LLMRequest(messages=[{"role": "user", "content": "hi"}])
    old = stable_hash("llm", "m", {"messages": plain.messages, "prompt": None,
                                   "params": plain.params.to_json(), "json_schema": None}, 0)
    assert plain.cache_key("m", 0) == old
    keys = {ask().cache_key("m", 0), ask(tool_choice="required").cache_key("m", 0),
            LLMRequest(messages=ask().messages, tools=[ADD]).cache_key("m", 0),
            LLMRequest(messages=ask().messages, params=SamplingParams(seed=3)).cache_key("m", 0)}
    assert len(keys) == 4


def test_tool_calls_are_cached_and_served_back() -> None:
    cache = MemoryCache()
    backend = answers(call_json("add", a=2, b=3))
    [first] = asyncio.run(LLMClient(backend, cache=cache).generate(ask()))
    [hit] = asyncio.run(LLMClient(backend, cache=cache).generate(ask()))
    assert backend.calls == 1 and hit.cached
    assert hit.tool_calls == first.tool_calls and isinstance(hit.tool_calls[0], ToolCall)


def test_tool_turns_become_text_for_a_backend_without_native_tools() -> None:
    call = ToolCall("call_1", "add", {"a": 2, "b": 3})
    messages = [{"role": "user", "content": "what is 2 + 3?"}, assistant_message([call]),
                tool_message(call, {"result": 5})]
    backend = answers('{"content": "It is 5."}')
    request = LLMRequest(messages=messages, tools=TOOLS, params=SamplingParams(seed=1))
    [response] = asyncio.run(LLMClient(backend).generate(request))
    assert response.text == "It is 5."
    sent = backend.seen[0].messages  # type: ignore[attr-defined]
    assert all(set(m) == {"role", "content"} and m["role"] != "tool" for m in sent)
    assert '"name": "add"' in sent[2]["content"]
    assert sent[3] == {"role": "user", "content": 'Result of the tool call add:\n{"result": 5}'}
    # A judge reading the trajectory without tools gets the same text turns.
    judge = answers("fine")
    asyncio.run(LLMClient(judge).generate(LLMRequest(messages=messages)))
    assert judge.seen[0].messages[2]["role"] == "user"  # type: ignore[attr-defined]


class NativeScriptedTestBackend(ScriptedTestBackend):
    """A test double of a server with native tools: answers with scripted ``tool_calls``."""

    supports_tools = True

    def __init__(self, scripted: list[list[ToolCall]]) -> None:
        super().__init__()
        self.scripted = scripted
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        self.requests.append(request)
        self.calls += 1
        calls = self.scripted.pop(0) if len(self.scripted) > 1 else self.scripted[0]
        return RawCompletion("", "tool_calls", Usage(5, 5), self.model_id, tool_calls=calls)


def test_native_tool_calls_are_validated_and_reasked() -> None:
    backend = NativeScriptedTestBackend([[ToolCall("x1", "add", {"a": 2})],
                                         [ToolCall("x2", "add", {"a": 2, "b": 3})]])
    client = LLMClient(backend)
    [response] = asyncio.run(client.generate(ask()))
    assert response.tool_calls == [ToolCall("x2", "add", {"a": 2, "b": 3})]
    first, second = backend.requests
    assert first.tools == TOOLS and first.json_schema is None  # sent natively, untouched
    assert "'b' is a required property" in second.messages[-1]["content"]
    assert client.stats()["structured_repairs"] == 1


def test_parallel_tool_calls_false_allows_one_call() -> None:
    two = json.dumps({"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}},
                                     {"name": "add", "arguments": {"a": 3, "b": 4}}]})
    backend = answers(two, call_json("add", a=1, b=2))
    client = LLMClient(backend)
    [response] = asyncio.run(client.generate(ask(parallel_tool_calls=False)))
    assert len(response.tool_calls) == 1 and response.calls == 2
    sent = backend.seen[0]  # type: ignore[attr-defined]
    assert sent.json_schema["anyOf"][0]["properties"]["tool_calls"]["maxItems"] == 1
    assert "2 calls, at most 1 allowed" in backend.seen[1].messages[-1]["content"]  # type: ignore[attr-defined]
    assert ask(parallel_tool_calls=False).cache_key("m", 0) != ask().cache_key("m", 0)
    body = OpenAIBackend("http://127.0.0.1:9/v1", "m")._body(
        ask(parallel_tool_calls=False), 1, "json_schema")
    assert body["parallel_tool_calls"] is False


def test_call_errors_name_each_problem() -> None:
    calls = [ToolCall("1", "add", {"a": 1, "b": 2}), ToolCall("2", "nope", {}),
             ToolCall("3", "upper", {"text": 3})]
    errors = call_errors(calls, TOOLS)
    assert len(errors) == 2
    assert errors[0].startswith("$.tool_calls[1].name: unknown tool 'nope'")
    assert errors[1].startswith("$.tool_calls[2].arguments.text:")


def test_openai_wire_format_sends_tools_and_reads_tool_calls() -> None:
    backend = OpenAIBackend("http://127.0.0.1:9/v1", "m")
    forced = {"type": "function", "function": {"name": "add"}}
    call = ToolCall("call_9", "add", {"a": 1, "b": 1})
    request = LLMRequest(messages=[{"role": "user", "content": "1+1"}, assistant_message([call]),
                                   tool_message(call, "2")], tools=TOOLS, tool_choice=forced,
                         logprobs=2)
    body = backend._body(request, 1, "json_schema")
    assert body["tools"] == TOOLS and body["tool_choice"] == forced
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"a": 1, "b": 1}'
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    answer = {"model": "m", "usage": {"prompt_tokens": 3, "completion_tokens": 4},
              "choices": [{"finish_reason": "tool_calls", "message": {
                  "role": "assistant", "content": None, "tool_calls": [
                      {"id": "call_a", "type": "function",
                       "function": {"name": "add", "arguments": '{"a": 4, "b": 5}'}}]},
                  "logprobs": {"content": [{"token": "x", "logprob": -0.5,
                                            "top_logprobs": [{"token": "x", "logprob": -0.5}]}]}}]}
    raw = backend._parse(HttpResponse(200, {}, json.dumps(answer).encode(), "OK"), chat=True)
    assert raw.tool_calls == [ToolCall("call_a", "add", {"a": 4, "b": 5})]
    assert raw.logprobs == [{"token": "x", "logprob": -0.5, "top": {"x": -0.5}}]
    constrained = OpenAIBackend("http://127.0.0.1:9/v1", "m", tools="constrained")
    assert constrained.supports_tools is False and backend.supports_tools is True


def test_completion_logprobs_with_echo_are_normalized() -> None:
    raw = {"tokens": ["a", "b"], "token_logprobs": [None, -1.25],
           "top_logprobs": [None, {"b": -1.25, "c": -2.0}]}
    assert normalize_logprobs(raw) == [{"token": "a", "logprob": None, "top": {}},
                                       {"token": "b", "logprob": -1.25,
                                        "top": {"b": -1.25, "c": -2.0}}]
    body = OpenAIBackend("http://127.0.0.1:9/v1", "m")._body(
        LLMRequest(prompt="x", logprobs=1, echo=True), None, "json_schema")
    assert body["logprobs"] == 1 and body["echo"] is True


def test_logprobs_from_a_backend_without_them_is_a_clear_error() -> None:
    from synthloom.core.errors import SynthloomError

    with pytest.raises(SynthloomError, match="returns no token logprobs"):
        asyncio.run(LLMClient(answers("x")).generate(LLMRequest(prompt="x", logprobs=0)))


def test_tools_need_chat_messages_and_exclude_a_schema() -> None:
    with pytest.raises(ValueError, match="needs chat messages"):
        LLMRequest(prompt="x", tools=TOOLS)
    with pytest.raises(ValueError, match="not both"):
        LLMRequest(messages=[{"role": "user", "content": "x"}], tools=TOOLS, json_schema={})
