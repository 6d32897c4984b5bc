"""Backend specs, and OpenAIBackend's error classification and API-key hygiene.

The HTTP tests talk to ``ScriptedTestServer``: a tiny stdlib server defined in this file that
answers each request with the next scripted reply. It is a test double, not a model server.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from synthloom.core.errors import BackendError
from synthloom.llm.backends import resolve_backend
from synthloom.llm.backends.http import TRANSPORT_ENV
from synthloom.llm.backends.llamacpp import LlamaCppBackend
from synthloom.llm.backends.openai_compat import OpenAIBackend
from synthloom.llm.types import (
    LLMRequest,
    PermanentLLMError,
    RawCompletion,
    SamplingParams,
    TransientLLMError,
)

KEY_ENV = "SYNTHLOOM_TEST_API_KEY"
SECRET = "sk-test-DO-NOT-LEAK-4f9a2c"
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}

# --- resolve_backend ------------------------------------------------------------------------


def test_none_and_llamacpp_give_the_embedded_model() -> None:
    for spec in (None, "llamacpp", "llamacpp:"):
        backend = resolve_backend(spec)
        assert isinstance(backend, LlamaCppBackend)
        assert "embedded" in repr(backend)


def test_llamacpp_with_a_path(tmp_path: Path) -> None:
    backend = resolve_backend(f"llamacpp:{tmp_path}/m.gguf", n_ctx=1024)
    assert isinstance(backend, LlamaCppBackend)
    assert backend.n_ctx == 1024
    assert "m.gguf" in repr(backend)


def test_llamacpp_model_option_names_the_file(tmp_path: Path) -> None:
    backend = resolve_backend("llamacpp", model=str(tmp_path / "x.gguf"))
    assert "x.gguf" in repr(backend)
    with pytest.raises(BackendError, match="both"):
        resolve_backend(f"llamacpp:{tmp_path}/a.gguf", model="b.gguf")


def test_missing_gguf_is_a_backend_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    backend = LlamaCppBackend(missing)
    with pytest.raises(BackendError, match="nope.gguf"):
        _ = backend.model_id
    with pytest.raises(BackendError, match="nope.gguf"):
        asyncio.run(backend.check())


def test_missing_llama_cpp_gives_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    backend = LlamaCppBackend(path)
    with pytest.raises(BackendError, match=r'pip install "synthloom\[embedded\]"'):
        asyncio.run(backend.check())
    asyncio.run(backend.aclose())


def test_model_id_hashes_size_and_ends_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + bytes(3 << 20))
    first = LlamaCppBackend(path).model_id
    assert first.startswith("llamacpp:tiny.gguf:")
    assert len(first.rsplit(":", 1)[1]) == 12
    assert LlamaCppBackend(path).model_id == first  # stable
    with path.open("r+b") as fh:  # a change in the last MiB changes the id
        fh.seek(-1, 2)
        fh.write(b"\x01")
    assert LlamaCppBackend(path).model_id != first


def test_openai_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    backend = resolve_backend("openai:http://127.0.0.1:8000/v1/", model="m", timeout_s=5)
    assert isinstance(backend, OpenAIBackend)
    assert backend.base_url == "http://127.0.0.1:8000/v1"
    assert backend.model_id == "openai:m"
    assert backend.timeout_s == 5
    assert backend.supports_json_schema and backend.supports_raw_prompt


@pytest.mark.parametrize(
    "spec", ["vllm:http://x/v1", "openai", "openai:127.0.0.1:8000", "gpt4", "openai:ftp://x/v1"]
)
def test_bad_specs_list_the_valid_forms(spec: str) -> None:
    with pytest.raises(BackendError) as info:
        resolve_backend(spec)
    message = str(info.value)
    assert "llamacpp" in message or "http" in message


def test_unknown_kind_lists_every_form() -> None:
    with pytest.raises(BackendError) as info:
        resolve_backend("nonsense:thing")
    message = str(info.value)
    assert '"llamacpp"' in message and "llamacpp:/path" in message and "openai:http" in message


def test_unknown_option_and_structured_mode_are_backend_errors() -> None:
    with pytest.raises(BackendError, match="option"):
        resolve_backend("openai:http://127.0.0.1:1/v1", n_gpu_layers=3)
    with pytest.raises(BackendError, match="structured"):
        resolve_backend("openai:http://127.0.0.1:1/v1", structured="grammar")


def test_transport_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRANSPORT_ENV, raising=False)
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert OpenAIBackend("http://h/v1").transport == "h11"  # auto: no proxy applies
    assert OpenAIBackend("http://h/v1", transport="aiohttp").transport == "aiohttp"
    # A proxy that applies to the host: aiohttp (h11 speaks to servers directly).
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,10.0.0.1")
    assert OpenAIBackend("https://api.example.com/v1").transport == "aiohttp"
    assert OpenAIBackend("http://h/v1").transport == "h11"  # no http proxy set
    assert OpenAIBackend("https://10.0.0.1/v1").transport == "h11"  # in NO_PROXY
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    assert OpenAIBackend("http://h/v1").transport == "aiohttp"
    assert OpenAIBackend("http://localhost:8000/v1").transport == "h11"
    assert OpenAIBackend("http://h/v1", transport="httpx").transport == "httpx"
    monkeypatch.setenv(TRANSPORT_ENV, "httpx")
    assert OpenAIBackend("http://h/v1").transport == "httpx"
    assert "transport='httpx'" in repr(OpenAIBackend("http://h/v1"))
    with pytest.raises(BackendError, match="unknown HTTP transport 'curl'"):
        OpenAIBackend("http://h/v1", transport="curl")


def test_model_id_needs_a_model() -> None:
    with pytest.raises(BackendError, match="check"):
        _ = OpenAIBackend("http://127.0.0.1:1/v1").model_id


def test_model_id_drops_credentials_in_the_url() -> None:
    backend = OpenAIBackend("http://user:pw@127.0.0.1:9/v1?key=abc", model="m")
    assert backend.model_id == "openai:m"
    assert "pw" not in repr(backend) and "abc" not in repr(backend)


def test_structured_modes_set_the_capability() -> None:
    assert OpenAIBackend("http://h/v1", structured="json_object").supports_json_schema
    assert not OpenAIBackend("http://h/v1", structured="none").supports_json_schema


# --- the scripted test server ---------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON; str/bytes -> sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    truncate: bool = False  # announce more bytes than are sent, then close


def chat_reply(text: str = "hello", **extra: Any) -> Reply:
    message = {"role": "assistant", "content": text, **extra}
    return Reply(
        body={
            "model": "scripted-model",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
        }
    )


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class ScriptedTestServer:
    """A scripted test server on 127.0.0.1: each request gets the next queued ``Reply``."""

    def __init__(self) -> None:
        self.replies: collections.deque[Reply] = collections.deque()
        self.seen: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                server.seen.append(
                    Seen(
                        self.command,
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        json.loads(raw) if raw else None,
                    )
                )
                reply = server.replies.popleft() if server.replies else Reply(500, "no script")
                time.sleep(reply.delay_s)
                if isinstance(reply.body, dict | list):
                    data = json.dumps(reply.body).encode()
                elif isinstance(reply.body, str):
                    data = reply.body.encode()
                else:
                    data = reply.body or b""
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data) + (100 if reply.truncate else 0)))
                self.end_headers()
                self.wfile.write(data)
                if reply.truncate:
                    self.close_connection = True

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(params=["h11", "aiohttp", "httpx"])
def server(request: pytest.FixtureRequest,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedTestServer]:
    """Every wire test runs on every HTTP transport (chosen via the environment)."""
    monkeypatch.setenv(TRANSPORT_ENV, request.param)
    srv = ScriptedTestServer()
    yield srv
    srv.close()


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, SECRET)
    return KEY_ENV


def _backend(server: ScriptedTestServer, **kw: Any) -> OpenAIBackend:
    kw.setdefault("model", "scripted-model")
    kw.setdefault("api_key_env", KEY_ENV)
    return OpenAIBackend(server.base_url, **kw)


def _chat(**kw: Any) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": "hi"}], **kw)


def _call(backend: OpenAIBackend, request: LLMRequest, seed: int | None = 1) -> RawCompletion:
    async def go() -> RawCompletion:
        try:
            return await backend.complete(request, seed=seed)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def _error(backend: OpenAIBackend, request: LLMRequest | None = None) -> Exception:
    with pytest.raises(Exception) as info:
        _call(backend, request or _chat())
    return info.value


# --- success paths --------------------------------------------------------------------------


def test_chat_call_sends_sampling_params_and_the_key(
    server: ScriptedTestServer, keyed: str
) -> None:
    server.script(chat_reply("Bonjour"))
    params = SamplingParams(temperature=0.3, top_p=0.9, max_tokens=42, stop=["\n\n"])
    out = _call(_backend(server), _chat(params=params), seed=7)
    assert out.text == "Bonjour"
    assert out.finish_reason == "stop"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (11, 3)
    (seen,) = server.seen
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.headers["authorization"] == f"Bearer {SECRET}"
    body = seen.body
    assert body["model"] == "scripted-model"
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.3, 0.9, 42)
    assert (body["stop"], body["seed"]) == (["\n\n"], 7)
    assert "response_format" not in body


def test_raw_prompt_goes_to_completions(server: ScriptedTestServer) -> None:
    server.script(
        Reply(body={"choices": [{"text": " Paris", "finish_reason": "length"}], "usage": {}})
    )
    out = _call(_backend(server), LLMRequest(prompt="The capital of France is"))
    assert out.text == " Paris" and out.finish_reason == "length"
    assert server.seen[0].path == "/v1/completions"
    assert server.seen[0].body["prompt"] == "The capital of France is"
    assert "messages" not in server.seen[0].body


def test_no_key_means_no_authorization_header(
    server: ScriptedTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    server.script(chat_reply())
    _call(_backend(server), _chat())
    assert "authorization" not in server.seen[0].headers


def test_reasoning_field_is_kept_in_think_tags(server: ScriptedTestServer) -> None:
    server.script(chat_reply("42", reasoning_content="6*7"))
    assert _call(_backend(server), _chat()).text == "<think>6*7</think>42"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (
            "json_schema",
            {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": SCHEMA, "strict": True},
            },
        ),
        (
            "auto",
            {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": SCHEMA, "strict": True},
            },
        ),
        ("json_object", {"type": "json_object", "schema": SCHEMA}),
        ("none", None),
    ],
)
def test_structured_modes_on_the_wire(
    server: ScriptedTestServer, mode: str, expected: dict[str, Any] | None
) -> None:
    server.script(chat_reply('{"name": "x"}'))
    _call(_backend(server, structured=mode), _chat(json_schema=SCHEMA))
    assert server.seen[0].body.get("response_format") == expected


def test_auto_falls_back_to_json_object_when_the_server_rejects_json_schema(
    server: ScriptedTestServer,
) -> None:
    # What llama-cpp-python's server really answers (its validation error comes as a 500).
    rejection = Reply(
        500,
        {
            "error": {
                "message": "1 validation error: {'type': 'literal_error', 'loc': ('body', "
                "'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\"}",
                "type": "internal_server_error",
            }
        },
    )
    server.script(rejection, chat_reply('{"name": "a"}'), chat_reply('{"name": "b"}'))
    backend = _backend(server)

    async def go() -> list[RawCompletion]:
        outs = [await backend.complete(_chat(json_schema=SCHEMA), seed=i) for i in range(2)]
        await backend.aclose()
        return outs

    outs = asyncio.run(go())
    assert [o.text for o in outs] == ['{"name": "a"}', '{"name": "b"}']
    kinds = [s.body["response_format"]["type"] for s in server.seen]
    assert kinds == ["json_schema", "json_object", "json_object"]  # remembered after one miss


def test_a_plain_500_is_not_mistaken_for_a_format_rejection(server: ScriptedTestServer) -> None:
    server.script(Reply(500, {"error": {"message": "CUDA out of memory"}}))
    err = _error(_backend(server), _chat(json_schema=SCHEMA))
    assert isinstance(err, TransientLLMError) and err.status == 500
    assert len(server.seen) == 1


# --- error classification -------------------------------------------------------------------


def test_429_is_transient_with_retry_after_seconds(server: ScriptedTestServer) -> None:
    server.script(Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "7"}))
    err = _error(_backend(server))
    assert isinstance(err, TransientLLMError)
    assert err.status == 429 and err.retry_after == 7.0 and err.is_overload
    assert "slow down" in str(err)


def test_retry_after_as_http_date(server: ScriptedTestServer) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    server.script(Reply(503, "busy", {"Retry-After": when}))
    err = _error(_backend(server))
    assert isinstance(err, TransientLLMError) and err.status == 503
    assert err.retry_after is not None and 25 <= err.retry_after <= 31


def test_500_is_transient_without_retry_after(server: ScriptedTestServer) -> None:
    server.script(Reply(500, "Internal Server Error"))
    err = _error(_backend(server))
    assert isinstance(err, TransientLLMError)
    assert err.status == 500 and err.retry_after is None and not err.is_overload


@pytest.mark.parametrize("status", [400, 404, 422])
def test_client_errors_are_permanent_with_the_servers_message(
    server: ScriptedTestServer, status: int
) -> None:
    server.script(Reply(status, {"error": {"message": "max_tokens is too large: " + "x" * 2000}}))
    err = _error(_backend(server))
    assert isinstance(err, PermanentLLMError) and err.status == status
    assert "max_tokens is too large" in str(err)
    assert len(str(err)) < 600  # truncated


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_is_fatal_and_names_the_env_var(
    server: ScriptedTestServer, keyed: str, status: int
) -> None:
    server.script(Reply(status, {"error": {"message": f"Incorrect API key provided: {SECRET}"}}))
    err = _error(_backend(server))
    assert isinstance(err, BackendError)
    assert "authentication failed" in str(err) and f"${KEY_ENV}" in str(err)
    assert server.base_url in str(err)
    assert SECRET not in str(err)


@pytest.mark.parametrize(
    "body", ["<html>Bad Gateway</html>", {"object": "list"}, {"choices": []}, {"choices": [{}]}]
)
def test_bad_200_bodies_are_transient(server: ScriptedTestServer, body: Any) -> None:
    server.script(Reply(200, body))
    err = _error(_backend(server))
    assert isinstance(err, TransientLLMError) and "invalid response body" in str(err)


def test_truncated_body_is_transient(server: ScriptedTestServer) -> None:
    server.script(Reply(200, '{"choices": [', truncate=True))
    assert isinstance(_error(_backend(server)), TransientLLMError)


def test_timeout_is_transient(server: ScriptedTestServer) -> None:
    server.script(Reply(delay_s=1.0, body={"choices": []}))
    err = _error(_backend(server, timeout_s=0.2))
    assert isinstance(err, TransientLLMError) and "timed out" in str(err)


def test_connection_refused_is_transient_for_calls_and_fatal_for_check() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1", model="m")
    assert isinstance(_error(backend), TransientLLMError)
    with pytest.raises(BackendError, match=f"cannot reach the LLM server at .*:{port}/v1"):
        asyncio.run(backend.check())


# --- check() --------------------------------------------------------------------------------


def test_check_picks_the_first_listed_model(server: ScriptedTestServer) -> None:
    server.script(Reply(body={"data": [{"id": "served-a"}, {"id": "served-b"}]}), chat_reply())
    backend = OpenAIBackend(server.base_url)
    _call(backend, _chat())  # complete() runs check() itself when no model was given
    assert backend.model == "served-a"
    assert backend.model_id == "openai:served-a"
    assert server.seen[0].path == "/v1/models"
    assert server.seen[1].body["model"] == "served-a"


def test_check_fails_when_no_model_is_listed(server: ScriptedTestServer) -> None:
    server.script(Reply(body={"object": "list", "data": []}))
    with pytest.raises(BackendError, match="lists no models"):
        asyncio.run(OpenAIBackend(server.base_url).check())


def test_check_reports_bad_keys(server: ScriptedTestServer, keyed: str) -> None:
    server.script(Reply(401, {"error": "invalid key"}))
    with pytest.raises(BackendError, match=KEY_ENV):
        asyncio.run(_backend(server).check())


# --- key hygiene ----------------------------------------------------------------------------


def test_the_key_never_leaks(
    server: ScriptedTestServer, keyed: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = _backend(server)
    texts = [repr(backend), str(backend), backend.model_id, repr(vars(backend))]
    echo = {"error": {"message": f"bad request from key {SECRET}"}}
    replies = [
        Reply(400, echo),
        Reply(500, echo),
        Reply(429, echo),
        Reply(401, echo),
        Reply(200, f"not json {SECRET}"),
    ]
    for reply in replies:
        server.script(reply)
        err = _error(_backend(server))
        texts += [str(err), repr(err), *map(str, err.args)]
    texts += [record.getMessage() for record in caplog.records]
    assert server.seen and all(
        s.headers["authorization"] == f"Bearer {SECRET}" for s in server.seen
    )
    leaks = [t for t in texts if SECRET in t]
    assert not leaks


def test_grammar_schema_turns_small_integer_ranges_into_enums() -> None:
    from synthloom.llm.backends.llamacpp import grammar_schema

    schema = {"type": "object", "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 10},
        "year": {"type": "integer", "minimum": 0, "maximum": 5000},  # too wide: left alone
        "items": {"type": "array", "items": {"type": "integer", "minimum": -2, "maximum": 2}},
        "minimum": {"type": "string"}}}
    out = grammar_schema(schema)
    assert out["properties"]["score"]["enum"] == list(range(1, 11))
    assert "enum" not in out["properties"]["year"]
    assert out["properties"]["items"]["items"]["enum"] == [-2, -1, 0, 1, 2]
    assert out["properties"]["minimum"] == {"type": "string"}
    assert "enum" not in schema["properties"]["score"]  # the original is not changed
    llama_grammar = pytest.importorskip("llama_cpp.llama_grammar", reason="llama-cpp-python")
    gbnf = llama_grammar.json_schema_to_gbnf(json.dumps(out))
    assert '"10"' in gbnf  # the grammar enumerates the scores instead of any integer
