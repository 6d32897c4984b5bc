"""The OpenAI-compatible backend's lean HTTP/1.1 transport: h11 over asyncio streams.

Why: at a few hundred concurrent calls the client process is CPU-bound, and aiohttp spends
~0.25 ms of CPU per request of its own (timers, tracing hooks, multidicts, its response and
connector machinery). h11 alone is no cure: its state machine, event objects and header
validation cost ~0.09 ms per request/response cycle (about as much as the rest of the engine's
HTTP path), so the common answer -- HTTP/1.1, a final status, one ``Content-Length``, no
``Transfer-Encoding``, no folded header lines -- is read by hand (a split of the head), and
every other answer (chunked, HTTP/1.0, 1xx first, no length, bare-LF lines, odd headers) is
handed, with the bytes read so far, to h11. Requests are written by hand from a head built once
per endpoint (its fixed headers and target checked by h11 once). Measured on the benchmark's
fake endpoint at c=64: ~0.13 ms of CPU per request against aiohttp's ~0.33 and a raw-socket
client's ~0.10 (``benchmarks/orchestration.py``; docs/performance.md). What it keeps:

* one keep-alive pool per event loop, per (scheme, host, port); idle connections reused last-in
  first-out, dropped when the server has closed them or after ``KEEPALIVE_S`` idle;
  ``max_connections`` bounds the open ones (0: unbounded, as aiohttp's ``limit=0``: the client
  layer's gate bounds concurrency);
* Content-Length bodies (by hand) and chunked ones (by h11), the same body cap as the other
  transports, gzip/deflate bodies inflated if a server compresses unasked;
* TLS through asyncio's ``ssl`` with the default context (the system CA store,
  ``SSL_CERT_FILE`` honoured), as aiohttp uses;
* aiohttp's timeouts: ``timeout_s`` bounds the whole request (connect, send, read), connecting
  at most ``min(timeout_s, 10)`` s;
* a request sent on a reused connection that the server had closed (its FIN arrived while the
  request was on the way: clean EOF, not one byte of answer) is sent again once on a new
  connection; a reset or a partial answer is not (the server may have done the work);
* redirects (3xx with ``Location``) are handed to the aiohttp transport, which follows them;
  proxies: ``transport="auto"`` picks aiohttp when a ``*_proxy`` variable applies to the host.

Failures below HTTP are :class:`HttpTransportError` with httpx's cause names (``ConnectError``,
``ReadError``, ``RemoteProtocolError``, ``timeout``), so summaries count them alike.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time
import zlib
from typing import Any
from urllib.parse import unquote, urlsplit

import h11
import orjson

from synthloom.llm.backends.http import (
    HttpResponse,
    HttpTransportError,
    Transport,
    _Capped,
    _PerLoop,
    max_body_bytes,
)

#: Idle keep-alive connections older than this are closed, not reused (aiohttp's default).
KEEPALIVE_S = 30.0
#: Connecting takes at most this long (aiohttp's ``ClientTimeout(connect=...)`` here).
CONNECT_S = 10.0
_CHUNK = 1 << 16
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}

Key = tuple[str, str, int]


class Headers(dict[str, str]):
    """Response headers by lower-cased name (h11 lower-cases them); repeated ones joined."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and dict.__contains__(self, key.lower())


class _Stale(Exception):
    """The server closed the connection before answering a byte (a keep-alive race)."""


#: The longest response head read before giving up (h11's own default limit).
_MAX_HEAD = 16 * 1024


def _simple_head(head: bytes, method: bytes) -> tuple[int, str, Headers, int, bool] | None:
    """(status, reason, headers, Content-Length, keep-alive) of the common answer: HTTP/1.1,
    a final status with a body, one Content-Length, no Transfer-Encoding, no folded lines.
    None for anything else, which h11 then parses."""
    lines = head.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version != b"HTTP/1.1" or len(code) != 3 or not code.isdigit() or method == b"HEAD":
        return None
    status = int(code)
    if status < 200 or status in (204, 304):
        return None
    headers = Headers()
    length: int | None = None
    keep = True
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name[-1] in b" \t" or line[0] in b" \t":
            return None  # malformed or an obsolete folded line: h11 decides
        key = name.decode("latin-1").lower()
        value = value.strip(b" \t")
        if key == "content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif key == "transfer-encoding":
            return None
        elif key == "connection" and b"close" in value.lower():
            keep = False
        text = value.decode("latin-1")
        old = dict.get(headers, key)
        dict.__setitem__(headers, key, text if old is None else f"{old}, {text}")
    if length is None:
        return None
    return status, reason.decode("latin-1"), headers, length, keep


class _Connection:
    __slots__ = ("reader", "writer", "idle_since", "reusable")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0
        self.reusable = False

    def alive(self, now: float) -> bool:
        # Not after a reset (is_closing) or the server's FIN (at_eof), nor when it sent bytes
        # while idle (e.g. a 408 before closing: they would be read as the next answer).
        # StreamReader has no public count of buffered bytes; _buffer is it since 3.4.
        return (now - self.idle_since < KEEPALIVE_S and not self.writer.is_closing()
                and not self.reader.at_eof() and not getattr(self.reader, "_buffer", b""))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # RuntimeError: its event loop is closed
            self.writer.close()

    async def exchange(self, method: bytes, target: bytes, request: bytes, limit: int
                       ) -> tuple[int, str, Headers, bytes]:
        """Send one request, read its answer: the common shape by hand, the rest by h11."""
        reader = self.reader
        self.reusable = False
        self.writer.write(request)
        if self.writer.transport.get_write_buffer_size():  # a large body: wait for the socket
            await self.writer.drain()
        buf = await reader.read(_CHUNK)
        if not buf:
            raise _Stale
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if b"\n\n" in buf or len(buf) > _MAX_HEAD:  # bare LF lines, or an oversized head
                return await self._by_h11(method, target, buf, limit)
            more = await reader.read(_CHUNK)
            if not more:
                raise h11.RemoteProtocolError("connection closed inside the response head")
            buf += more
        simple = _simple_head(buf[:end], method)
        if simple is None:
            return await self._by_h11(method, target, buf, limit)
        status, reason, headers, length, keep = simple
        _Capped(limit, length)  # refuses a declared length over the cap before reading it
        body = buf[end + 4:]
        if len(body) < length:
            try:
                body += await reader.readexactly(length - len(body))
            except asyncio.IncompleteReadError as exc:
                raise h11.RemoteProtocolError(
                    f"connection closed after {len(body) + len(exc.partial)} of {length} "
                    "body bytes") from exc
        elif len(body) > length:  # bytes nobody asked for: do not reuse this connection
            body, keep = body[:length], False
        self.reusable = keep
        return status, reason, headers, body

    async def _by_h11(self, method: bytes, target: bytes, buf: bytes, limit: int
                      ) -> tuple[int, str, Headers, bytes]:
        """Any other answer (chunked, HTTP/1.0, 1xx first, no length, folded headers): h11,
        told what was asked (its framing depends on the method), fed what was read."""
        http = h11.Connection(h11.CLIENT)
        http.send(h11.Request(method=method, target=target, headers=[(b"host", b"-")]))
        http.send(h11.EndOfMessage())
        http.receive_data(buf)
        response: h11.Response | None = None
        body: _Capped | None = None
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(await self.reader.read(_CHUNK))
                continue
            kind = type(event)
            if kind is h11.Response:
                response = event
                body = _Capped(limit, _content_length(event.headers))
            elif kind is h11.Data:
                body.add(event.data)  # type: ignore[union-attr]
            elif kind is h11.EndOfMessage:
                break
            elif kind is h11.ConnectionClosed:
                raise h11.RemoteProtocolError("server closed the connection mid-answer")
            # h11.InformationalResponse (100 Continue and the like): wait for the real one.
        assert response is not None and body is not None
        self.reusable = (http.our_state is h11.DONE and http.their_state is h11.DONE
                         and not http.trailing_data[0])
        headers = Headers()
        for name, value in response.headers:
            key, text = name.decode("latin-1"), value.decode("latin-1")
            old = dict.get(headers, key)
            dict.__setitem__(headers, key, text if old is None else f"{old}, {text}")
        return response.status_code, response.reason.decode("latin-1"), headers, body.body()


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _inflate(encoding: str, data: bytes, limit: int) -> bytes:
    """A body the server compressed although no Accept-Encoding asked for it."""
    from synthloom.llm.backends.http import HttpBodyTooLarge

    if encoding in ("gzip", "x-gzip"):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":  # zlib-wrapped per the RFC; some servers send it raw
        inflater = zlib.decompressobj(zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS)
    elif encoding in ("", "identity"):
        return data
    else:
        raise HttpTransportError(f"unsupported Content-Encoding {encoding!r}",
                                 cause="content_encoding")
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise HttpTransportError(f"bad {encoding} body: {exc}", cause="content_encoding") from exc
    if len(out) > limit:
        raise HttpBodyTooLarge(limit)
    return out


class H11Transport(_PerLoop):
    """Keep-alive HTTP/1.1 on asyncio streams (module docstring)."""

    name = "h11"

    def __init__(self, headers: dict[str, str], timeout_s: float,
                 max_body: int | None = None, max_connections: int = 0) -> None:
        sent = {"Accept": "*/*", "User-Agent": f"synthloom h11/{h11.__version__}", **headers}
        sent = {k: v for k, v in sent.items() if k.lower() not in ("host", "content-length")}
        # h11 checks the fixed headers once (no CR/LF smuggled in a key or a value).
        h11.Request(method="GET", target="/", headers=[("Host", "-"), *sent.items()])
        self.headers = headers
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in sent.items()).encode("latin-1")
        self._authorized = any(k.lower() == "authorization" for k in sent)
        self.timeout_s = timeout_s
        self.connect_s = min(timeout_s, CONNECT_S)
        self.max_body = max_body_bytes(max_body)
        self.max_connections = max_connections
        self._idle: dict[Key, list[_Connection]] = {}
        self._open = 0
        self._slots: asyncio.Semaphore | None = None
        #: (method, url) -> (pool key, request target, the request's head up to its body
        #: headers): parsed once per endpoint.
        self._targets: dict[tuple[str, str], tuple[Key, bytes, bytes]] = {}
        self._tls: ssl.SSLContext | None = None
        self._redirects: Transport | None = None

    # --- pool ---------------------------------------------------------------------------------

    def _new_loop(self) -> None:
        """Connections and the semaphore belong to the loop they were made on."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle = {}
        self._open = 0
        self._slots = asyncio.Semaphore(self.max_connections) if self.max_connections else None

    def _target(self, method: str, url: str) -> tuple[Key, bytes, bytes]:
        found = self._targets.get((method, url))
        if found is None:
            parts = urlsplit(url)
            if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
                raise HttpTransportError(f"invalid URL: {url.split('?')[0]!r}",
                                         cause="invalid_url", bad_url=True)
            try:
                port = parts.port or _DEFAULT_PORTS[parts.scheme]
            except ValueError as exc:
                raise HttpTransportError(f"invalid URL: {exc}", cause="invalid_url",
                                         bad_url=True) from exc
            target = ((parts.path or "/") + (f"?{parts.query}" if parts.query else "")).encode()
            host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
            if parts.port is not None:
                host = f"{host}:{parts.port}"
            fixed = self._fixed
            if parts.username is not None and not self._authorized:
                # user:password in the URL: HTTP Basic, as aiohttp sends it.
                pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
                fixed += (b"Authorization: Basic " + base64.b64encode(pair.encode("latin-1"))
                          + b"\r\n")
            try:  # h11 checks the request line (no spaces or control bytes in the target)
                h11.Request(method=method, target=target, headers=[("Host", host)])
                host_bytes = host.encode("ascii") if host.isascii() else host.encode("idna")
            except (h11.LocalProtocolError, UnicodeError) as exc:
                raise HttpTransportError(f"invalid URL: {exc}", cause="invalid_url",
                                         bad_url=True) from exc
            head = (method.encode("ascii") + b" " + target + b" HTTP/1.1\r\nHost: "
                    + host_bytes + b"\r\n" + fixed)
            found = ((parts.scheme, parts.hostname, port), target, head)
            if len(self._targets) < 64:  # a handful of endpoints per backend
                self._targets[(method, url)] = found
        return found

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    async def _connect(self, key: Key) -> _Connection:
        scheme, host, port = key
        tls = self._tls_context() if scheme == "https" else None
        try:
            async with asyncio.timeout(self.connect_s):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None, limit=_CHUNK)
        except TimeoutError as exc:
            raise HttpTransportError(f"connecting to {host}:{port} timed out", cause="timeout",
                                     timed_out=True) from exc
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            raise HttpTransportError(f"cannot connect to {host}:{port}: {exc}",
                                     cause="ConnectError") from exc
        self._open += 1
        return _Connection(reader, writer)

    def _take(self, key: Key) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.alive(now):
                return conn
            self._drop(conn)
        return None

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        self._open -= 1

    def _give_back(self, key: Key, conn: _Connection) -> None:
        if conn.reusable:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(key, []).append(conn)
        else:  # Connection: close, an HTTP/1.0 answer, or bytes past the body
            self._drop(conn)

    # --- requests -----------------------------------------------------------------------------

    async def request(self, method: str, url: str, body: Any = None) -> HttpResponse:
        if not self._same_loop():
            self._new_loop()
        key, target, head = self._target(method, url)
        if body is None:
            request = head + b"\r\n"
        else:
            data = orjson.dumps(body)
            request = (head + b"Content-Type: application/json\r\nContent-Length: "
                       + str(len(data)).encode() + b"\r\n\r\n" + data)
        verb = method.encode("ascii")
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._slots is None:
                    status, reason, headers, raw = await self._send(key, verb, target, request)
                else:
                    async with self._slots:
                        status, reason, headers, raw = await self._send(key, verb, target,
                                                                        request)
        except TimeoutError as exc:
            raise HttpTransportError(f"no answer in {self.timeout_s:g} s", cause="timeout",
                                     timed_out=True) from exc
        if status in _REDIRECTS and "location" in headers:
            return await self._follow(method, url, body)
        encoding = headers.get("content-encoding")
        if encoding:
            raw = _inflate(encoding.strip().lower(), raw, self.max_body)
        return HttpResponse(status, headers, raw, reason)

    async def _send(self, key: Key, method: bytes, target: bytes, request: bytes
                    ) -> tuple[int, str, Headers, bytes]:
        for attempt in (0, 1):
            conn = self._take(key) if attempt == 0 else None
            reused = conn is not None
            if conn is None:
                conn = await self._connect(key)
            try:
                answer = await conn.exchange(method, target, request, self.max_body)
            except _Stale as exc:
                self._drop(conn)
                if reused:  # closed by the server between our reuse check and its read
                    continue
                raise HttpTransportError("server closed the connection without answering",
                                         cause="RemoteProtocolError") from exc
            except h11.RemoteProtocolError as exc:  # truncated or malformed answer
                self._drop(conn)
                raise HttpTransportError(f"bad answer: {exc}",
                                         cause="RemoteProtocolError") from exc
            except OSError as exc:  # reset, broken pipe
                self._drop(conn)
                raise HttpTransportError(str(exc) or type(exc).__name__,
                                         cause="ReadError") from exc
            except BaseException:  # timeout, cancellation, body over the cap: state unknown
                self._drop(conn)
                raise
            self._give_back(key, conn)
            return answer
        raise AssertionError("unreachable: the second attempt never reuses")

    async def _follow(self, method: str, url: str, body: Any) -> HttpResponse:
        """The same request through aiohttp, which follows redirects as before."""
        if self._redirects is None:
            from synthloom.llm.backends.http import AiohttpTransport

            self._redirects = AiohttpTransport(self.headers, self.timeout_s, self.max_body)
        return await self._redirects.request(method, url, body)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                self._drop(conn)
        if self._redirects is not None:
            await self._redirects.aclose()
            self._redirects = None
