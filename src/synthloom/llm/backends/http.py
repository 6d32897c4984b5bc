"""The HTTP layer of the OpenAI-compatible backend: three transports behind one small interface.

* ``h11`` (the default; ``h11_transport.py``): keep-alive HTTP/1.1 on asyncio streams, parsed by
  h11; the least CPU per request. ``auto`` picks it unless a ``*_proxy`` variable applies to
  the server's host (then aiohttp, which speaks to proxies); redirects go through aiohttp.
* ``aiohttp``: one session per event loop, one unbounded connection pool (the
  client layer bounds concurrency). ~0.2 ms of CPU per request at 256 connections.
* ``httpx``: several small pools handed out in turn. httpcore 1.0's pool scans all its
  connections on every request start and finish, which at 256 connections in one pool cost
  ~10 ms of CPU per request; 16 pools of 64 cost ~2 ms (``benchmarks/orchestration.py``).

Both return an :class:`HttpResponse` (status, headers, body read whole, up to a cap: 64 MiB by
default, ``SYNTHLOOM_MAX_RESPONSE_MB`` or ``max_body``; a larger body is read no further, so a
runaway server cannot fill memory) and raise :class:`HttpTransportError` for every failure
below HTTP, so the backend's retry and error wording see one shape whatever the transport. Choose with ``OpenAIBackend(transport=...)`` or
the ``SYNTHLOOM_HTTP_TRANSPORT`` environment variable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import orjson

TRANSPORTS = ("auto", "h11", "aiohttp", "httpx")
TRANSPORT_ENV = "SYNTHLOOM_HTTP_TRANSPORT"
#: The largest response body read (an answer of a few thousand tokens is ~100 KB).
MAX_BODY_BYTES = 64 * 2**20
MAX_BODY_ENV = "SYNTHLOOM_MAX_RESPONSE_MB"
#: Bytes read from the socket at a time while counting towards the cap.
_CHUNK = 1 << 16

#: httpx transport: pools per backend and connections per pool.
HTTPX_POOLS = 16
HTTPX_POOL_CONNECTIONS = 64


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    #: Case-insensitive (``httpx.Headers`` or aiohttp's ``CIMultiDictProxy``).
    headers: Mapping[str, str]
    body: bytes
    reason: str

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` (orjson's error is one) when it is not."""
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class HttpTransportError(Exception):
    """No HTTP answer: connection refused or reset, timeout, truncated body, bad URL."""

    def __init__(self, message: str, *, cause: str, timed_out: bool = False,
                 bad_url: bool = False) -> None:
        super().__init__(message)
        #: A short name for the summary's failure counts (``timeout``, ``ClientPayloadError``…).
        self.cause = cause
        self.timed_out = timed_out
        self.bad_url = bad_url


class HttpBodyTooLarge(HttpTransportError):
    """The response body is larger than the cap: not read further, not retried."""

    def __init__(self, limit: int, declared: int | None = None) -> None:
        size = f"{declared / 2**20:,.0f} MiB declared" if declared else "more"
        super().__init__(f"response body larger than the {limit / 2**20:g} MiB cap ({size}); "
                         f"raise it with {MAX_BODY_ENV}=N (MiB) if the server is right",
                         cause="body_too_large")
        self.limit = limit


def max_body_bytes(given: int | None = None) -> int:
    """The body cap: ``given``, else ``SYNTHLOOM_MAX_RESPONSE_MB`` (MiB), else 64 MiB."""
    if given is not None:
        return given
    text = os.environ.get(MAX_BODY_ENV, "").strip()
    try:
        return int(float(text) * 2**20) if text else MAX_BODY_BYTES
    except ValueError:
        raise ValueError(f"{MAX_BODY_ENV}={text!r}: expected a number of MiB") from None


class _Capped:
    """Collects a body chunk by chunk, refusing to go past ``limit`` bytes."""

    def __init__(self, limit: int, declared: int | None) -> None:
        if declared is not None and declared > limit:
            raise HttpBodyTooLarge(limit, declared)
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise HttpBodyTooLarge(self.limit)
        self.parts.append(chunk)

    def body(self) -> bytes:
        return b"".join(self.parts)


class Transport(Protocol):
    async def request(self, method: str, url: str, body: Any = None) -> HttpResponse: ...

    async def aclose(self) -> None: ...


def choose_transport(name: str | None, url: str | None = None) -> str:
    """``auto`` (or unset) means the environment's choice, else h11 -- or aiohttp (httpx when
    aiohttp is not installed) when a proxy variable applies to ``url``'s host (to any host
    when no URL is given): h11 speaks to the server directly."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        name = os.environ.get(TRANSPORT_ENV, "auto").strip().lower() or "auto"
    if name not in TRANSPORTS:
        raise ValueError(f"unknown HTTP transport {name!r}; use one of {', '.join(TRANSPORTS)}")
    if name != "auto":
        return name
    if not proxy_applies(url):
        return "h11"
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return "httpx"
    return "aiohttp"


def proxy_applies(url: str | None) -> bool:
    """Whether ``http(s)_proxy``/``all_proxy`` (less ``no_proxy``) sends ``url`` via a proxy."""
    proxies = urllib.request.getproxies_environment()
    if url is None:
        return bool(proxies)
    parts = urlsplit(url)
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    host = parts.hostname or ""
    return not urllib.request.proxy_bypass_environment(host, proxies)


def make_transport(name: str, headers: dict[str, str], timeout_s: float,
                   max_body: int | None = None) -> Transport:
    chosen = choose_transport(name)
    if chosen == "h11":
        from synthloom.llm.backends.h11_transport import H11Transport

        return H11Transport(headers, timeout_s, max_body)
    if chosen == "aiohttp":
        return AiohttpTransport(headers, timeout_s, max_body)
    return HttpxTransport(headers, timeout_s, max_body)


class _PerLoop:
    """Connection pools cannot outlive the event loop they were made on: rebuild on a new one."""

    _loop: asyncio.AbstractEventLoop | None = None

    def _same_loop(self) -> bool:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return True
        self._loop = loop
        return False


def _proxy_in_environment() -> bool:
    return any(name.lower().endswith("_proxy") and value for name, value in os.environ.items())


class AiohttpTransport(_PerLoop):
    def __init__(self, headers: dict[str, str], timeout_s: float,
                 max_body: int | None = None) -> None:
        self.headers = {**headers, "Content-Type": "application/json"}
        self.timeout_s = timeout_s
        self.max_body = max_body_bytes(max_body)
        self._session: Any = None

    def _client(self) -> Any:
        import aiohttp

        if not self._same_loop() or self._session is None or self._session.closed:
            self._forget_session()
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s,
                                              connect=min(self.timeout_s, 10.0)),
                # limit=0: unbounded; the client layer's semaphore bounds concurrency.
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30.0),
                # Proxies from the environment, as httpx honours them; only when one is set:
                # trust_env costs two thread-pool round trips per request (netrc, proxy).
                trust_env=_proxy_in_environment(),
                skip_auto_headers=("User-Agent",) if "User-Agent" in self.headers else (),
            )
        return self._session

    def _forget_session(self) -> None:
        """Drop a session whose event loop has ended (its sockets went with the loop)."""
        old, self._session = self._session, None
        if old is None or old.closed:
            return
        connector = old.connector
        if connector is not None and connector._loop.is_closed():
            connector.close()  # marks it closed; nothing to await on a closed loop
            old.detach()  # closed, so no "Unclosed client session" warning at collection

    async def request(self, method: str, url: str, body: Any = None) -> HttpResponse:
        import aiohttp

        data = None if body is None else orjson.dumps(body)
        try:
            async with self._client().request(method, url, data=data) as response:
                declared = response.content_length
                if declared is not None and declared <= self.max_body \
                        and "Content-Encoding" not in response.headers:
                    # Declared, within the cap, not compressed: the parser stops at the
                    # declared length, so one read is capped; no per-chunk iteration.
                    return HttpResponse(response.status, response.headers,
                                        await response.read(), response.reason or "")
                body = _Capped(self.max_body, declared)
                async for chunk in response.content.iter_chunked(_CHUNK):
                    body.add(chunk)
                return HttpResponse(response.status, response.headers, body.body(),
                                    response.reason or "")
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
            raise HttpTransportError(f"invalid URL: {exc}", cause="invalid_url",
                                     bad_url=True) from exc
        except TimeoutError as exc:  # aiohttp's timeouts subclass it
            raise HttpTransportError(str(exc) or "no answer in time", cause="timeout",
                                     timed_out=True) from exc
        except aiohttp.ClientError as exc:
            raise HttpTransportError(str(exc) or type(exc).__name__,
                                     cause=type(exc).__name__) from exc

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            # RuntimeError: made on an event loop that is already closed; nothing to release.
            with contextlib.suppress(RuntimeError):
                await session.close()


class HttpxTransport(_PerLoop):
    def __init__(self, headers: dict[str, str], timeout_s: float,
                 max_body: int | None = None) -> None:
        self.headers = headers
        self.timeout_s = timeout_s
        self.max_body = max_body_bytes(max_body)
        self._clients: list[httpx.AsyncClient] = []
        self._next = 0

    def _client(self) -> httpx.AsyncClient:
        if not self._same_loop() or not self._clients or any(c.is_closed for c in self._clients):
            # One TLS context for all pools (httpx builds one per client even for http://, and
            # loading the CA bundle costs ~16 ms each time).
            tls = httpx.create_ssl_context()
            self._clients = [httpx.AsyncClient(
                headers=self.headers, verify=tls,
                timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0)),
                # The client layer bounds concurrency; the pools must never be the bottleneck.
                limits=httpx.Limits(max_connections=HTTPX_POOL_CONNECTIONS,
                                    max_keepalive_connections=16, keepalive_expiry=30.0),
            ) for _ in range(HTTPX_POOLS)]
        self._next = (self._next + 1) % len(self._clients)
        return self._clients[self._next]

    async def request(self, method: str, url: str, body: Any = None) -> HttpResponse:
        content = None if body is None else orjson.dumps(body)
        headers = None if body is None else {"Content-Type": "application/json"}
        try:
            async with self._client().stream(method, url, content=content,
                                             headers=headers) as response:
                declared = response.headers.get("content-length")
                body = _Capped(self.max_body, int(declared) if declared
                               and declared.isdigit() else None)
                async for chunk in response.aiter_bytes(_CHUNK):  # decoded: gzip counts
                    body.add(chunk)
        except httpx.UnsupportedProtocol as exc:
            raise HttpTransportError(str(exc), cause="invalid_url", bad_url=True) from exc
        except httpx.TimeoutException as exc:
            raise HttpTransportError(str(exc) or type(exc).__name__, cause="timeout",
                                     timed_out=True) from exc
        except httpx.RequestError as exc:
            # A reset (ReadError) and a truncated body (RemoteProtocolError) are different
            # troubles: the summary counts them apart.
            raise HttpTransportError(str(exc) or type(exc).__name__,
                                     cause=type(exc).__name__) from exc
        return HttpResponse(response.status_code, response.headers, body.body(),
                            response.reason_phrase)

    async def aclose(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            if not client.is_closed:
                with contextlib.suppress(RuntimeError):
                    await client.aclose()
