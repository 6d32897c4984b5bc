"""``synthloom review``'s server: who may reach the app (host, access token) and the socket.

The policy lives here, beside the app it protects, not in the CLI: the default keeps the app
on this machine; another address needs the token (anyone on the network could otherwise read
the records and change decisions) and is warned about (plain HTTP).
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from synthloom.core.errors import SynthloomError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: Host headers the app answers on a loopback bind.
LOCAL_NAMES = ["127.0.0.1", "localhost", "[::1]"]


@dataclass(frozen=True)
class Access:
    """What the app admits: Host header values, and the token a request must carry (None: any
    request that reaches the port); ``warning``: what to tell the user before serving."""

    allowed_hosts: list[str]
    token: str | None
    warning: str | None = None


def access_policy(host: str, use_token: bool) -> Access:
    """The access rules for serving on ``host`` (raises on a non-local host without a token)."""
    if host in LOOPBACK:
        return Access(list(LOCAL_NAMES), secrets.token_urlsafe(24) if use_token else None)
    if not use_token:
        raise SynthloomError(f"--no-token with --host {host}: anyone on the network could "
                             "read the records and change decisions; keep the token")
    # A wildcard bind has no one name to check the Host header against.
    hosts = ["*"] if host in ("0.0.0.0", "::") else [*LOCAL_NAMES, host]
    return Access(hosts, secrets.token_urlsafe(24),
                  f"serving on {host}: whoever has the printed URL (its token) can read these "
                  "records and change decisions; the traffic is plain HTTP")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket. Bound here, not in uvicorn: a busy port is one clear error, and
    port 0's pick is known (and listening) before the URL line is printed."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise SynthloomError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve(run_dir: Path, *, host: str, port: int, price_per_1k: float, use_token: bool,
          warn: Callable[[str], None]) -> None:
    """Serve the review app for ``run_dir`` until Ctrl-C; prints one line with the URL."""
    try:
        import uvicorn

        from synthloom.review.app import create_app
    except ImportError as exc:
        raise SynthloomError(f"synthloom review needs the review extra ({exc.name} is "
                             "missing): pip install 'synthloom[review]'") from None
    if not (run_dir / "summary.json").is_file() and not any(run_dir.glob("*.jsonl")):
        raise SynthloomError(f"{run_dir}: no summary.json or .jsonl files "
                             "(is it a synthloom run folder?)")
    access = access_policy(host, use_token)
    if access.warning:
        warn(f"[yellow]warning:[/] {access.warning}")
    size = sum(f.stat().st_size for f in run_dir.glob("*.jsonl"))
    if size > 50 * 2**20 and not (run_dir / "review" / "index.db").is_file():
        warn(f"indexing {size / 2**20:,.0f} MB of records once "
             "(about 30 s a GB); later starts reuse RUN/review/index.db")
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    app = create_app(run_dir, allowed_hosts=access.allowed_hosts, price_per_1k=price_per_1k,
                     token=access.token, cookie=f"synthloom_review_{bound}")
    shown = f"[{host}]" if ":" in host else host
    # One line a script can read for the URL.
    print(f"review: http://{shown}:{bound}/" + (f"?token={access.token}" if access.token else "")
          + "  (Ctrl-C stops)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", server_header=False))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after a clean shutdown
        pass
    finally:
        sock.close()
