"""Loopback HTTP test doubles for OpenAI-compatible backends.

``FaultProxy`` sits between a client and a real upstream (the llama.cpp server in integration
tests) and injects transport and HTTP faults on a deterministic plan, recording every exchange so
tests can assert that each request body was answered successfully exactly once.

``ScriptedOpenAIServer`` is a fake OpenAI server whose answers come from a Python callable, for
fast tests that must not need llama.cpp.

Both servers use the stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (port picked by the OS) in a
daemon thread and speak HTTP/1.1 with keep-alive, like real servers.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import random
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

FAULT_KINDS: tuple[str, ...] = (
    "429",
    "500",
    "503",
    "timeout",
    "reset",
    "truncated",
    "invalid_json",
)

# Headers that describe one hop's connection/encoding; the proxy re-frames bodies itself.
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "accept-encoding",
        "host",
        "te",
        "trailer",
        "upgrade",
    }
)


@dataclasses.dataclass(frozen=True)
class Exchange:
    """One request seen by a test server.

    ``status`` is the status line sent to the client (None when nothing was sent: "timeout",
    "reset", or the client went away). ``completed`` is True only when a full upstream 200
    answer was handed to the client.
    """

    path: str
    body_sha256: str
    fault: str | None
    status: int | None
    completed: bool
    method: str = "POST"


@dataclasses.dataclass
class FaultPlan:
    """Decides, per faultable (non-GET) request, which fault to inject, if any.

    The first ``len(first_n)`` requests get ``first_n`` in order; each later request gets a
    fault drawn from ``kinds`` with probability ``rate``. ``max_faults`` caps all injected faults
    (``first_n`` included). Decisions are thread-safe and, for a given seed, the k-th decision is
    always the same (which request is k-th depends on arrival order under concurrency).
    """

    first_n: list[str] = dataclasses.field(default_factory=list)
    rate: float = 0.0
    kinds: list[str] = dataclasses.field(default_factory=lambda: list(FAULT_KINDS))
    seed: int = 0
    max_faults: int | None = None
    retry_after: float = 0.2
    timeout_s: float = 3.0

    def __post_init__(self) -> None:
        unknown = sorted({*self.first_n, *self.kinds} - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {list(FAULT_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], got {self.rate}")
        if self.rate > 0 and not self.kinds:
            raise ValueError("rate > 0 needs at least one fault kind")
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._decided = 0
        self._injected = 0

    @property
    def injected(self) -> int:
        """Number of faults handed out so far."""
        with self._lock:
            return self._injected

    def decide(self) -> str | None:
        """The fault for the next faultable request, or None to forward it untouched."""
        with self._lock:
            index = self._decided
            self._decided += 1
            if index < len(self.first_n):
                fault: str | None = self.first_n[index]
            else:
                # Always draw both numbers so the sequence does not depend on max_faults.
                roll = self._rng.random()
                kind = self._rng.choice(self.kinds) if self.kinds else None
                fault = kind if roll < self.rate else None
            if fault is None:
                return None
            if self.max_faults is not None and self._injected >= self.max_faults:
                return None
            self._injected += 1
            return fault


class _ExchangeLog:
    """Thread-safe list of exchanges; entries are written before the client can see a reply."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Exchange] = []

    def add(self, item: Exchange) -> int:
        with self._lock:
            self._items.append(item)
            return len(self._items) - 1

    def update(self, index: int, **changes: Any) -> None:
        with self._lock:
            # reset_log() may have run meanwhile; then the entry is gone on purpose.
            if index < len(self._items):
                self._items[index] = dataclasses.replace(self._items[index], **changes)

    def snapshot(self) -> list[Exchange]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def completed_bodies(self, path_suffix: str | None) -> collections.Counter[str]:
        return collections.Counter(
            e.body_sha256
            for e in self.snapshot()
            if e.completed
            and e.method != "GET"
            and (path_suffix is None or _bare_path(e.path).endswith(path_suffix))
        )

    def count(self, path_suffix: str) -> int:
        return sum(1 for e in self.snapshot() if _bare_path(e.path).endswith(path_suffix))


def _bare_path(path: str) -> str:
    return path.split("?", 1)[0]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _error_body(status: int, message: str) -> bytes:
    return _json_bytes({"error": {"message": message, "type": "injected_fault", "code": status}})


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # Handler threads may be parked in a "timeout" fault; never join them on close.
    block_on_close = False


class _LoopbackServer:
    """Shared start/stop plumbing: a ThreadingHTTPServer on 127.0.0.1 in a daemon thread."""

    _server: _QuietServer | None = None
    _thread: threading.Thread | None = None

    def __init__(self, path_prefix: str) -> None:
        self._path_prefix = path_prefix.rstrip("/")
        self._log = _ExchangeLog()
        # Set on close so handlers sleeping in a "timeout" fault wake up at once.
        self._stopping = threading.Event()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        # Port 0 lets the OS pick a free port atomically (no probe-then-bind race).
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self._path_prefix}"

    # -- the request log ---------------------------------------------------------------

    def requests(self) -> list[Exchange]:
        """A copy of every exchange so far, in arrival order."""
        return self._log.snapshot()

    def completed_bodies(self, path_suffix: str | None = None) -> collections.Counter[str]:
        """How often each request body (sha256) got a full 200 answer; non-GET requests only."""
        return self._log.completed_bodies(path_suffix)

    def count(self, path_suffix: str = "/chat/completions") -> int:
        """Requests (any outcome) whose path ends with ``path_suffix``."""
        return self._log.count(path_suffix)

    def reset_log(self) -> None:
        self._log.clear()


class _BaseHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 so clients keep connections alive, as with real servers.
    protocol_version = "HTTP/1.1"
    server_version = "synthloom-test"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        # Clients streaming a request body send it chunked, without Content-Length.
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # Skip optional trailers up to the blank line.
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # CRLF after each chunk

    def _send(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        content_type: str = "application/json",
        close: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _abort(self) -> None:
        """Close the socket with an RST (SO_LINGER 0) so the client sees a reset, not an EOF."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _drop(self) -> None:
        """Close the connection without an answer (orderly FIN)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


# Broken pipe / reset / aborted: the client went away while we were answering.
_CLIENT_GONE = OSError


class FaultProxy(_LoopbackServer):
    """Forwards requests to ``upstream_base`` and injects faults from ``plan``.

    ``base_url`` has the same path as ``upstream_base`` (e.g. ``.../v1``); paths are forwarded
    unchanged. GET requests are always forwarded untouched. Fault behaviour, per kind:

    - "429": status 429 with ``Retry-After: <plan.retry_after>`` (may be fractional, e.g. "0.2").
    - "500" / "503": that status with an OpenAI-style JSON error body.
    - "timeout": hold the connection ``plan.timeout_s`` seconds, then close it unanswered
      (a client with a shorter read timeout sees a timeout, otherwise a disconnect).
    - "reset": close the socket at once with a TCP RST, no response.
    - "truncated": forward upstream, then send 200 headers with the full Content-Length but only
      half the body, and close (the upstream did the work; the client loses it).
    - "invalid_json": status 200, ``application/json`` content type, a body that is not JSON.

    Faulted requests other than "truncated" never reach the upstream.
    """

    def __init__(
        self,
        upstream_base: str,
        plan: FaultPlan | None = None,
        *,
        upstream_timeout_s: float = 300.0,
    ) -> None:
        parts = urlsplit(upstream_base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"upstream_base must be an http(s) URL, got {upstream_base!r}")
        super().__init__(parts.path)
        self.upstream_base = upstream_base
        self._origin = f"{parts.scheme}://{parts.netloc}"
        #: The active plan; may be swapped between phases of a test.
        self.plan = plan
        self._client = httpx.Client(timeout=upstream_timeout_s)

    def close(self) -> None:
        super().close()
        self._client.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(_BaseHandler):
            def do_GET(self) -> None:
                self._handle(fault_allowed=False)

            def do_POST(self) -> None:
                self._handle(fault_allowed=True)

            def do_PUT(self) -> None:
                self._handle(fault_allowed=True)

            def do_DELETE(self) -> None:
                self._handle(fault_allowed=True)

            def _handle(self, *, fault_allowed: bool) -> None:
                body = self._read_body()
                plan = proxy.plan
                fault = plan.decide() if (fault_allowed and plan is not None) else None
                index = proxy._log.add(
                    Exchange(self.path, _sha256(body), fault, None, False, self.command)
                )
                try:
                    self._dispatch(index, fault, body, plan)
                except _CLIENT_GONE:
                    # The client hung up mid-answer: it did not get a full response.
                    proxy._log.update(index, completed=False)
                    self.close_connection = True

            def _dispatch(
                self, index: int, fault: str | None, body: bytes, plan: FaultPlan | None
            ) -> None:
                if fault is None:
                    self._forward(index, body)
                elif fault in ("429", "500", "503"):
                    status = int(fault)
                    headers = {}
                    if status == 429 and plan is not None:
                        headers["Retry-After"] = f"{plan.retry_after:g}"
                    proxy._log.update(index, status=status)
                    self._send(status, _error_body(status, f"injected {fault}"), headers)
                elif fault == "timeout":
                    proxy._stopping.wait(plan.timeout_s if plan is not None else 3.0)
                    self._drop()
                elif fault == "reset":
                    self._abort()
                elif fault == "truncated":
                    self._forward(index, body, truncate=True)
                elif fault == "invalid_json":
                    proxy._log.update(index, status=200)
                    self._send(200, b"<html><body>502 Bad Gateway</body></html>")
                else:  # pragma: no cover - FaultPlan validates kinds
                    raise AssertionError(fault)

            def _forward(self, index: int, body: bytes, *, truncate: bool = False) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                try:
                    upstream = proxy._client.request(
                        self.command, proxy._origin + self.path, content=body, headers=headers
                    )
                except httpx.HTTPError as exc:
                    proxy._log.update(index, status=502)
                    self._send(502, _error_body(502, f"upstream error: {exc!r}"), close=True)
                    return
                content = upstream.content
                out_headers = {
                    k: v
                    for k, v in upstream.headers.items()
                    if k.lower() not in _HOP_HEADERS and k.lower() not in ("content-type", "date")
                }
                content_type = upstream.headers.get("content-type", "application/json")
                if truncate and upstream.status_code == 200:
                    proxy._log.update(index, status=200)
                    self.send_response(200)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(content)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(content[: len(content) // 2])
                    self.wfile.flush()
                    self._drop()
                    return
                ok = upstream.status_code == 200
                # Mark success before writing: the client must never see an answer the log lacks.
                proxy._log.update(index, status=upstream.status_code, completed=ok)
                self._send(upstream.status_code, content, out_headers, content_type=content_type)

        return Handler


Responder = Callable[[dict[str, Any]], str]


class ScriptedHTTPError(Exception):
    """Raised by a responder: the server answers with ``status`` (e.g. 400, a request the
    client must not retry) and ``message`` as the OpenAI-style error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _words(text: str) -> int:
    return len(text.split())


def _prompt_text(request: dict[str, Any]) -> str:
    if "messages" in request:
        parts: list[str] = []
        for message in request.get("messages") or []:
            content = message.get("content")
            parts.append(content if isinstance(content, str) else json.dumps(content))
        return "\n".join(parts)
    prompt = request.get("prompt", "")
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


class ScriptedOpenAIServer(_LoopbackServer):
    """A scripted (fake) OpenAI-compatible server: a test double, not a model.

    Answers ``POST .../chat/completions`` and ``POST .../completions`` with
    ``responder(request_json)`` as the assistant text (called once per choice when ``n`` > 1),
    and ``GET .../models`` with one model named ``model``. ``usage`` counts whitespace-split
    words; ``finish_reason`` is "stop". A responder that raises gives a 500 with its message
    (a :class:`ScriptedHTTPError`: its own status).
    Requests are logged like ``FaultProxy``'s, and their parsed JSON bodies kept in order.
    """

    def __init__(
        self,
        responder: Responder,
        *,
        latency_s: float = 0.0,
        model: str = "scripted-model",
    ) -> None:
        super().__init__("/v1")
        self.responder = responder
        self.latency_s = latency_s
        self.model = model
        self._bodies_lock = threading.Lock()
        self._bodies: list[dict[str, Any]] = []

    def request_json(self) -> list[dict[str, Any]]:
        """Parsed JSON bodies of the POST requests so far, in arrival order."""
        with self._bodies_lock:
            return list(self._bodies)

    def reset_log(self) -> None:
        super().reset_log()
        with self._bodies_lock:
            self._bodies.clear()

    def _answer(self, path: str, request: dict[str, Any]) -> dict[str, Any]:
        choices_n = int(request.get("n") or 1)
        texts = [self.responder(request) for _ in range(choices_n)]
        prompt_tokens = _words(_prompt_text(request))
        completion_tokens = sum(_words(t) for t in texts)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        common = {"created": int(time.time()), "model": request.get("model") or self.model}
        if path.endswith("/chat/completions"):
            return {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                **common,
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                    for i, text in enumerate(texts)
                ],
                "usage": usage,
            }
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:12]}",
            "object": "text_completion",
            **common,
            "choices": [
                {"index": i, "text": text, "logprobs": None, "finish_reason": "stop"}
                for i, text in enumerate(texts)
            ],
            "usage": usage,
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_BaseHandler):
            def do_GET(self) -> None:
                body = self._read_body()
                index = server._log.add(
                    Exchange(self.path, _sha256(body), None, None, False, "GET")
                )
                if _bare_path(self.path).endswith("/models"):
                    models = {
                        "object": "list",
                        "data": [{"id": server.model, "object": "model", "owned_by": "scripted"}],
                    }
                    server._log.update(index, status=200, completed=True)
                    self._send(200, _json_bytes(models))
                else:
                    server._log.update(index, status=404)
                    self._send(404, _error_body(404, f"no route {self.path}"))

            def do_POST(self) -> None:
                body = self._read_body()
                index = server._log.add(Exchange(self.path, _sha256(body), None, None, False))
                path = _bare_path(self.path)
                if not path.endswith("/completions"):
                    server._log.update(index, status=404)
                    self._send(404, _error_body(404, f"no route {self.path}"))
                    return
                try:
                    request = json.loads(body)
                    if not isinstance(request, dict):
                        raise ValueError("request body must be a JSON object")
                except ValueError as exc:
                    server._log.update(index, status=400)
                    self._send(400, _error_body(400, f"bad request: {exc}"))
                    return
                with server._bodies_lock:
                    server._bodies.append(request)
                if server.latency_s > 0:
                    server._stopping.wait(server.latency_s)
                try:
                    answer = _json_bytes(server._answer(path, request))
                except ScriptedHTTPError as exc:
                    server._log.update(index, status=exc.status)
                    self._send(exc.status, _error_body(exc.status, exc.message))
                    return
                except Exception as exc:  # surface responder bugs as a 500
                    server._log.update(index, status=500)
                    self._send(500, _error_body(500, f"responder failed: {exc!r}"))
                    return
                server._log.update(index, status=200, completed=True)
                try:
                    self._send(200, answer)
                except _CLIENT_GONE:
                    server._log.update(index, completed=False)
                    self.close_connection = True

        return Handler
