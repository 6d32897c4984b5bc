"""The sandbox escape suite, on this machine's real isolation: network, filesystem, secrets,
fork bomb, memory, infinite loop, output flood. Each run is bounded by a few seconds."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

import pytest

from synthloom.verify.sandbox import UID_RANGE, SandboxLimits, isolation, run_python_sync

LIMITS = SandboxLimits(timeout_s=4, memory_mb=256, processes=16)

namespace_only = pytest.mark.skipif(
    isolation().kind != "namespace",
    reason=f"no namespace isolation here: {isolation().message}")


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    yield server
    server.close()


def _accepted(server: socket.socket) -> bool:
    try:
        conn, _ = server.accept()
    except (TimeoutError, OSError):
        return False
    conn.close()
    return True


def test_socket_to_loopback_fails_with_the_audit_hook(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
    result = run_python_sync(code, LIMITS)
    assert result.status == "error" and "network access is disabled" in result.stderr
    assert not _accepted(listener)


@namespace_only
def test_network_namespace_alone_has_no_route(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    # Audit hook off: the namespace alone must stop the connection. The outside address is in
    # TEST-NET-1 and only tried when the namespace has no interface but loopback: no packet
    # can leave.
    code = f"""
import socket
names = [n for _, n in socket.if_nameindex()]
print("interfaces", names)
for host in ("127.0.0.1", "192.0.2.1"):
    if host != "127.0.0.1" and names != ["lo"]:
        print(host, "skipped"); continue
    try:
        socket.create_connection((host, {port}), timeout=2)
        print(host, "CONNECTED")
    except OSError as exc:
        print(host, "failed", exc.errno)
"""
    result = run_python_sync(code, LIMITS, block_sockets=False)
    assert result.status == "ok", result.stderr
    assert "interfaces ['lo']" in result.stdout
    assert "CONNECTED" not in result.stdout and "skipped" not in result.stdout
    assert result.stdout.count("failed") == 2
    assert not _accepted(listener)


def test_writes_outside_the_work_dir_do_not_persist(tmp_path: Path) -> None:
    token = secrets.token_hex(6)
    targets = [f"/tmp/escape-{token}", str(tmp_path / f"escape-{token}"),
               f"/root/escape-{token}", str(Path(__file__).parent / f"escape-{token}"),
               os.path.expanduser(f"~/escape-{token}")]
    code = "import sys\nfor t in sys.argv[1:] or TARGETS:\n" \
           "    try:\n        open(t, 'w').write('x'); print('wrote', t)\n" \
           "    except OSError as e:\n        print('refused', t, e.errno)\n"
    result = run_python_sync(f"TARGETS = {targets!r}\n" + code, LIMITS)
    assert result.status == "ok", result.stderr
    assert result.stdout.count("\n") == len(targets)
    for target in targets:
        assert not Path(target).exists(), f"{target} escaped the sandbox"


def test_secrets_of_the_parent_are_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-escape-test-secret")
    code = """
import os
found = []
for path in ["/proc/1/environ", "/proc/self/environ", os.path.expanduser("~/.bashrc"),
             "/root/.bashrc", "/root/.gitconfig"]:
    try:
        found.append(open(path, "rb").read().decode(errors="replace"))
    except OSError:
        pass
print("sk-escape-test-secret" in "".join(found) + str(os.environ))
"""
    result = run_python_sync(code, LIMITS)
    assert result.stdout.strip() == "False"
    assert "sk-escape-test-secret" not in result.stdout + result.stderr


@namespace_only
def test_fork_bomb_is_contained() -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = run_python_sync(code, SandboxLimits(timeout_s=3, processes=16, memory_mb=256))
    assert result.status in ("timeout", "killed", "error")
    assert result.seconds < 6
    leftovers = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            uid = os.stat(f"/proc/{name}").st_uid
        except OSError:
            continue
        if UID_RANGE[0] <= uid < UID_RANGE[1]:
            leftovers.append(name)
    assert leftovers == []


def test_four_gigabytes_under_256_megabytes() -> None:
    result = run_python_sync("x = bytearray(4 * 1024 ** 3)\nprint('allocated')", LIMITS)
    assert result.status in ("error", "killed") and "allocated" not in result.stdout


def test_infinite_loop_times_out() -> None:
    result = run_python_sync("while True:\n    pass\n", SandboxLimits(timeout_s=2))
    assert result.status == "timeout" and 1.9 < result.seconds < 4


def test_output_flood_is_truncated() -> None:
    code = "import sys\nwhile True:\n    sys.stdout.write('y' * 65536)\n"
    result = run_python_sync(code, SandboxLimits(timeout_s=2, output_bytes=4096))
    assert result.status == "timeout" and result.stdout_truncated
    assert len(result.stdout) == 4096
