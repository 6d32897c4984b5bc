"""review/serve.py: the review server's access policy (host, token) and its socket."""

from __future__ import annotations

import socket

import pytest

from synthloom.core.errors import SynthloomError
from synthloom.review.serve import access_policy, bind


def test_loopback_serves_with_a_fresh_token_or_none() -> None:
    first, second = access_policy("127.0.0.1", True), access_policy("localhost", True)
    assert first.token and second.token and first.token != second.token
    assert first.warning is None and "localhost" in first.allowed_hosts
    assert access_policy("::1", False).token is None


def test_a_network_address_needs_the_token_and_is_warned_about() -> None:
    with pytest.raises(SynthloomError, match="--no-token with --host 10.0.0.5"):
        access_policy("10.0.0.5", False)
    named = access_policy("10.0.0.5", True)
    assert named.token and "plain HTTP" in (named.warning or "")
    assert named.allowed_hosts[-1] == "10.0.0.5" and "*" not in named.allowed_hosts
    assert access_policy("0.0.0.0", True).allowed_hosts == ["*"]


def test_bind_listens_on_a_free_port_and_names_a_busy_one() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        probe = socket.create_connection(("127.0.0.1", port), timeout=5)  # listening already
        probe.close()
        with pytest.raises(SynthloomError, match=f"cannot serve on 127.0.0.1:{port}"):
            bind("127.0.0.1", port).close()
    finally:
        sock.close()
