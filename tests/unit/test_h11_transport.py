"""The h11 transport's own behaviour on a real socket (127.0.0.1): connection reuse, a server
that closes idle or racing connections, chunked and HTTP/1.0 answers, bounds and timeouts,
redirects, compression and TLS. The OpenAI wire tests run on it too (test_backend_spec.py,
the reliability suites): these pin what only a connection-level server can show.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from synthloom.llm.backends.h11_transport import H11Transport
from synthloom.llm.backends.http import HttpTransportError
from synthloom.llm.backends.openai_compat import OpenAIBackend
from synthloom.llm.types import LLMRequest, TransientLLMError

#: (connection index, request index on it, request line) -> bytes to send, or None: close
#: without answering, or (bytes, True): answer, then close.
Script = Callable[[int, int, bytes], bytes | tuple[bytes, bool] | None]


def ok(body: bytes = b'{"ok": true}', extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


class Server:
    """An HTTP/1.1 server whose every answer (or close) is scripted per connection."""

    def __init__(self, script: Script, delay_s: float = 0.0) -> None:
        self.script = script
        self.delay_s = delay_s
        self.connections = 0
        self.requests: list[tuple[int, int, bytes]] = []
        self.heads: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index, self.connections = self.connections, self.connections + 1
        self.writers.append(writer)
        try:
            for n in range(1000):
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                line = head.split(b"\r\n")[0]
                self.heads.append(head)
                self.requests.append((index, n, line))
                answer = self.script(index, n, line)
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if answer is None:
                    break
                answer, close = answer if isinstance(answer, tuple) else (answer, False)
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        for writer in self.writers:
            writer.close()
        self.server.close()


def run(fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(fn())


def test_connections_are_kept_alive_and_reused() -> None:
    async def go() -> None:
        server = Server(lambda c, n, line: ok())
        async with server as base:
            http = H11Transport({}, 5.0)
            for _ in range(5):
                response = await http.request("POST", f"{base}/v1/x", {"a": 1})
                assert response.status == 200 and response.json() == {"ok": True}
            assert server.connections == 1
            await asyncio.gather(*(http.request("GET", f"{base}/v1/m") for _ in range(4)))
            assert server.connections == 4  # one was idle; three more opened side by side
            for _ in range(4):
                await http.request("GET", f"{base}/v1/m")
            assert server.connections == 4  # all reused
            await http.aclose()

    run(go)


def test_a_connection_the_server_closed_while_idle_is_not_used() -> None:
    async def go() -> None:
        # Every answer is the last one on its connection, but says nothing (no
        # "Connection: close"): the server just closes after answering.
        server = Server(lambda c, n, line: (ok(), True))
        async with server as base:
            http = H11Transport({}, 5.0)
            for _ in range(3):
                assert (await http.request("GET", f"{base}/a")).status == 200
                await asyncio.sleep(0.05)  # the FIN arrives while the connection is idle
            assert server.connections == 3
            assert len(server.requests) == 3  # never sent on a closed connection
            await http.aclose()

    run(go)


def test_bytes_sent_on_an_idle_connection_are_not_taken_for_the_next_answer() -> None:
    timeout = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
               b"Content-Length: 0\r\n\r\n")

    async def go() -> None:
        server = Server(lambda c, n, line: ok())
        async with server as base:
            http = H11Transport({}, 5.0)
            await http.request("GET", f"{base}/a")
            server.writers[0].write(timeout)  # what some servers send when idle time ends
            await asyncio.sleep(0.05)
            assert (await http.request("GET", f"{base}/b")).status == 200
            assert server.connections == 2
            await http.aclose()

    run(go)


def test_credentials_in_the_url_are_sent_as_basic_auth() -> None:
    async def go() -> None:
        server = Server(lambda c, n, line: ok())
        async with server as base:
            host = base.removeprefix("http://")
            http = H11Transport({"Accept": "application/json"}, 5.0)
            await http.request("GET", f"http://us%3Aer:p%40ss@{host}/v1/models")
            head = server.heads[0].decode().lower()
            assert "authorization: basic dxm6zxi6cebzcw==" in head  # b64("us:er:p@ss")
            assert f"host: {host}" in head and "accept: application/json" in head
            with pytest.raises(HttpTransportError) as bad:
                await http.request("GET", f"http://{host}/a b")
            assert bad.value.bad_url
            await http.aclose()

    run(go)


def test_the_request_timeout_bounds_each_call() -> None:
    from synthloom.llm.backends.openai_compat import MAX_REQUESTS_PER_CALL
    from synthloom.llm.client import LLMClient

    backend = OpenAIBackend("http://127.0.0.1:1/v1", "m", transport="h11", timeout_s=30)
    assert backend.max_call_s == 30 * MAX_REQUESTS_PER_CALL
    assert LLMClient(backend)._timer_s is None  # no second timer per call (issue 27)


def test_a_request_racing_the_servers_close_is_sent_once_more() -> None:
    async def go() -> None:
        # The second request on a connection reaches the server, which closes without a
        # byte of answer (its keep-alive ran out just then): sent again on a new connection.
        server = Server(lambda c, n, line: ok() if n == 0 else None)
        async with server as base:
            http = H11Transport({}, 5.0)
            await http.request("GET", f"{base}/a")
            response = await http.request("POST", f"{base}/b", {"x": 1})
            assert response.status == 200
            assert [(c, n) for c, n, _ in server.requests] == [(0, 0), (0, 1), (1, 0)]
            await http.aclose()

    run(go)


def test_a_fresh_connection_closed_unanswered_is_an_error_not_a_resend() -> None:
    async def go() -> None:
        server = Server(lambda c, n, line: None)
        async with server as base:
            http = H11Transport({}, 5.0)
            with pytest.raises(HttpTransportError) as info:
                await http.request("POST", f"{base}/b", {"x": 1})
            assert info.value.cause == "RemoteProtocolError"
            assert len(server.requests) == 1
            await http.aclose()

    run(go)


def test_chunked_and_http10_answers_go_through_h11() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Two: a\r\nx-two: b\r\n\r\n"
               b"5\r\n{\"ok\"\r\n7\r\n: true}\r\n0\r\n\r\n")
    http10 = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"old\": 1}"

    def script(c: int, n: int, line: bytes) -> bytes | tuple[bytes, bool]:
        return chunked if b"/chunked" in line else (http10, True) if b"/old" in line else ok()

    async def go() -> None:
        server = Server(script)
        async with server as base:
            http = H11Transport({}, 5.0)
            response = await http.request("GET", f"{base}/chunked")
            assert response.json() == {"ok": True}
            assert response.headers["X-Two"] == "a, b"
            assert (await http.request("GET", f"{base}/plain")).status == 200
            assert server.connections == 1  # reused after a chunked answer
            old = await http.request("GET", f"{base}/old")  # HTTP/1.0: body ends at close
            assert old.json() == {"old": 1}
            assert (await http.request("GET", f"{base}/plain")).status == 200
            assert server.connections == 2  # not reused after an HTTP/1.0 answer
            await http.aclose()

    run(go)


def test_connection_close_is_honoured() -> None:
    async def go() -> None:
        # The server says close but keeps the socket open: only the header can tell.
        server = Server(lambda c, n, line: ok(extra=b"Connection: close\r\n"))
        async with server as base:
            http = H11Transport({}, 5.0)
            for _ in range(2):
                assert (await http.request("GET", f"{base}/a")).status == 200
            assert server.connections == 2 and len(server.requests) == 2
            await http.aclose()

    run(go)


def test_a_gzip_body_is_inflated() -> None:
    data = gzip.compress(b'{"big": "' + b"x" * 5000 + b'"}')

    async def go() -> None:
        async with Server(lambda c, n, line: ok(data, b"Content-Encoding: gzip\r\n")) as base:
            http = H11Transport({}, 5.0)
            assert len((await http.request("GET", f"{base}/z")).json()["big"]) == 5000
            await http.aclose()

    run(go)


def test_max_connections_bounds_the_pool() -> None:
    async def go() -> None:
        server = Server(lambda c, n, line: ok(), delay_s=0.02)
        async with server as base:
            http = H11Transport({}, 5.0, max_connections=2)
            await asyncio.gather(*(http.request("GET", f"{base}/a") for _ in range(8)))
            assert server.connections == 2 and len(server.requests) == 8
            await http.aclose()

    run(go)


def test_refused_and_timed_out() -> None:
    async def go() -> None:
        async with Server(lambda c, n, line: ok()) as base:
            port = int(base.rsplit(":", 1)[1])
        http = H11Transport({}, 0.3)
        with pytest.raises(HttpTransportError) as refused:
            await http.request("GET", f"http://127.0.0.1:{port}/a")
        assert refused.value.cause == "ConnectError" and not refused.value.timed_out
        async with Server(lambda c, n, line: ok(), delay_s=2.0) as base:
            with pytest.raises(HttpTransportError) as late:
                await http.request("GET", f"{base}/slow")
            assert late.value.timed_out and late.value.cause == "timeout"
        await http.aclose()

    run(go)


def test_a_redirect_is_followed_by_the_aiohttp_fallback() -> None:
    def script(c: int, n: int, line: bytes) -> bytes:
        if b"/old" in line:
            return (b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /new\r\n"
                    b"Content-Length: 0\r\n\r\n")
        return ok(b'{"moved": true}')

    async def go() -> None:
        server = Server(script)
        async with server as base:
            http = H11Transport({}, 5.0)
            response = await http.request("POST", f"{base}/old", {"x": 1})
            assert response.json() == {"moved": True}
            assert [line.split()[1] for _, _, line in server.requests] == [
                b"/old", b"/old", b"/new"]  # h11's try, then aiohttp's, then the redirect
            await http.aclose()

    run(go)


def test_429_with_retry_after_through_the_backend() -> None:
    answer = (b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 31\r\n"
              b"\r\n" + b'{"error": {"message": "slow!"}}')

    async def go() -> None:
        async with Server(lambda c, n, line: answer) as base:
            backend = OpenAIBackend(f"{base}/v1", "m", transport="h11")
            request = LLMRequest(messages=[{"role": "user", "content": "hi"}])
            with pytest.raises(TransientLLMError) as info:
                await backend.complete(request, seed=None)
            assert info.value.status == 429 and info.value.retry_after == 3.0
            assert "slow!" in str(info.value)
            await backend.aclose()

    run(go)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_tls_with_the_default_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the default context trusts it

    async def go() -> None:
        server = Server(lambda c, n, line: ok())
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        server.server = await asyncio.start_server(server._handle, "127.0.0.1", 0, ssl=tls)
        port = server.server.sockets[0].getsockname()[1]
        http = H11Transport({}, 5.0)
        for _ in range(2):
            assert (await http.request("GET", f"https://127.0.0.1:{port}/v1/m")).status == 200
        assert server.connections == 1
        await http.aclose()
        monkeypatch.delenv("SSL_CERT_FILE")
        with pytest.raises(HttpTransportError) as untrusted:  # a fresh default context
            await H11Transport({}, 5.0).request("GET", f"https://127.0.0.1:{port}/v1/m")
        assert untrusted.value.cause == "ConnectError" and "CERTIFICATE" in str(untrusted.value)
        server.server.close()

    run(go)
