"""A minimal keep-alive HTTP/1.1 JSON client on raw asyncio streams, for benchmarks only.

Why: at a few hundred concurrent connections httpx spends milliseconds of CPU per request in
httpcore's connection pool (``_assign_requests_to_connections`` scans every pooled connection,
and polls each idle socket, on every enqueue and release: O(connections x queued requests)),
so an httpx client measures httpx, not the server or the engine. This client costs tens of
microseconds per request and shows the true ceiling of a Python asyncio client on this machine.

``RawStreamBackend`` puts the same client under synthloom's ``LLMClient`` (a benchmark-only
backend), so the engine's own per-request cost can be measured apart from httpx's.

Limits (fine for ``fake_openai.py`` and ``llama_cpp.server``): 127.0.0.1/hostname + port URLs,
no TLS, responses with ``Content-Length`` (no chunked encoding), no redirects.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any
from urllib.parse import urlsplit

from synthloom.llm.backends.base import Backend
from synthloom.llm.types import LLMRequest, RawCompletion, TransientLLMError, Usage


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RawJSONClient:
    """POST JSON, read JSON; one request per connection at a time, idle connections reused."""

    def __init__(self, base_url: str, max_connections: int = 256) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._open = 0
        self._gate = asyncio.Semaphore(max_connections)

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._idle:
            return self._idle.pop()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        sock = writer.get_extra_info("socket")
        if sock is not None:  # small request: send at once (no Nagle wait for the ACK)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._open += 1
        return reader, writer

    async def post(self, path: str, payload: dict[str, Any]) -> tuple[int, Any]:
        body = json.dumps(payload).encode()
        head = (f"POST {self.prefix}{path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nAccept: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        async with self._gate:
            reader, writer = await self._connection()
            try:
                writer.write(head + body)
                status_and_headers = await reader.readuntil(b"\r\n\r\n")
                lines = status_and_headers.split(b"\r\n")
                status = int(lines[0].split(b" ", 2)[1])
                length, close = 0, False
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                data = await reader.readexactly(length) if length else b""
            except BaseException:
                writer.close()
                self._open -= 1
                raise
            if close:
                writer.close()
                self._open -= 1
            else:
                self._idle.append((reader, writer))
        return status, json.loads(data) if data else None

    async def aclose(self) -> None:
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()


class RawStreamBackend(Backend):
    """Chat completions over :class:`RawJSONClient` (benchmark-only; no retries of its own:
    ``LLMClient`` retries a TransientLLMError as for any backend)."""

    kind = "bench-raw"
    default_concurrency = 256

    def __init__(self, base_url: str, model: str, max_connections: int = 256) -> None:
        self.base_url = base_url
        self.model = model
        self.max_connections = max_connections
        self._client: RawJSONClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def model_id(self) -> str:
        return f"bench-raw:{self.model}"

    def _http(self) -> RawJSONClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = RawJSONClient(self.base_url, self.max_connections)
            self._loop = loop
        return self._client

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        params = request.params
        payload: dict[str, Any] = {"model": self.model, "messages": request.messages,
                                   "temperature": params.temperature, "top_p": params.top_p,
                                   "max_tokens": params.max_tokens}
        if seed is not None:
            payload["seed"] = seed
        try:
            status, body = await self._http().post("/chat/completions", payload)
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise TransientLLMError(f"bench-raw: {type(exc).__name__}: {exc}") from exc
        if status != 200:
            raise TransientLLMError(f"bench-raw: HTTP {status}", status=status)
        choice = body["choices"][0]
        usage = body.get("usage") or {}
        return RawCompletion(text=choice["message"].get("content") or "",
                             finish_reason=choice.get("finish_reason"),
                             usage=Usage(int(usage.get("prompt_tokens") or 0),
                                         int(usage.get("completion_tokens") or 0)),
                             model=self.model)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
