"""The sandbox escape suite, on this machine's real isolation: network, filesystem, secrets,
fork bomb, memory, infinite loop, output flood. Each run is bounded by a few seconds.

The fallback mode (no namespaces) as root drops to a throw-away uid only where that uid can
start the interpreter; this project's own may live under /root (mode 0700). So the fallback's
uid drop is also checked with a world-readable system interpreter (``/usr/bin/python3``, 3.11+)
that loads ``verify/sandbox.py`` on its own (it needs only the standard library)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from synthloom.verify import sandbox
from synthloom.verify.sandbox import UID_RANGE, SandboxLimits, isolation, run_python_sync

pytestmark = pytest.mark.integration

LIMITS = SandboxLimits(timeout_s=4, memory_mb=256, processes=16)

namespace_only = pytest.mark.skipif(
    isolation().kind != "namespace",
    reason=f"no namespace isolation here: {isolation().message}")

HARNESS = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("sbx", sys.argv[1])
sbx = importlib.util.module_from_spec(spec)
sys.modules["sbx"] = sbx
spec.loader.exec_module(sbx)
iso = sbx.isolation()
out = {"kind": iso.kind, "drop_uid": iso.drop_uid, "message": iso.message}
if len(sys.argv) > 2:
    limits = sbx.SandboxLimits(**json.loads(sys.argv[3]))
    out["result"] = sbx.run_python_sync(sys.argv[2], limits).to_json()
print(json.dumps(out))
"""


@lru_cache(maxsize=1)
def world_python() -> str | None:
    """A Python 3.11+ that any uid can run (not this project's, which may be under /root)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"):
        if not os.access(candidate, os.X_OK):
            continue
        check = subprocess.run([candidate, "-I", "-c", "import sys; print(sys.version_info >= "
                                "(3, 11))"], capture_output=True, text=True, timeout=10)
        if check.stdout.strip() == "True":
            return candidate
    return None


def fallback_elsewhere(code: str | None = None,
                       limits: SandboxLimits = LIMITS) -> dict[str, Any]:
    """Forced fallback mode, run by a world-readable interpreter: the isolation it chose, and
    the result of ``code`` when given. Skips where the uid drop cannot be shown."""
    python = world_python()
    if os.geteuid() != 0 or python is None:
        pytest.skip("needs root and a world-readable Python 3.11+ (/usr/bin/python3)")
    args = [] if code is None else [code, json.dumps(limits.__dict__)]
    done = subprocess.run([python, "-I", "-c", HARNESS, sandbox.__file__, *args],
                          capture_output=True, text=True, timeout=30,
                          env={"PATH": os.defpath, "SYNTHLOOM_SANDBOX_ISOLATION": "none"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def uid_processes() -> list[int]:
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            if UID_RANGE[0] <= os.stat(f"/proc/{name}").st_uid < UID_RANGE[1]:
                found.append(int(name))
        except OSError:
            continue
    return found


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


WRITE = ("import sys\nfor t in TARGETS:\n    try:\n        open(t, 'w').write('x'); "
         "print('wrote', t)\n    except OSError as e:\n        print('refused', t, e.errno)\n")


@pytest.mark.parametrize("mode", ["machine", "fallback", "fallback-world-python"])
def test_writes_outside_the_work_dir_do_not_persist(
        mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    """namespace: nothing written outside the work dir is visible afterwards (private tmpfs,
    read-only rest). Fallback as root with the throw-away uid: nothing lands in root-owned
    places (the parent's home, /root, the project, the test's folder), and what the uid left at
    the top of /tmp is removed. Fallback without that uid protects no file: there the writes
    do persist, a strict xfail (what that variant still enforces is
    ``test_fallback_without_uid_drop_still_enforces_limits_and_a_clean_environment``).
    Whatever a run did create is removed afterwards either way."""
    token = secrets.token_hex(6)
    scratch = f"/tmp/escape-{token}"
    owned = [str(tmp_path / f"escape-{token}"), f"/root/escape-{token}",
             str(Path(__file__).parent / f"escape-{token}"),
             os.path.expanduser(f"~/escape-{token}")]
    targets = [scratch, *owned]
    code = f"TARGETS = {targets!r}\n" + WRITE
    if mode == "fallback":
        monkeypatch.setenv("SYNTHLOOM_SANDBOX_ISOLATION", "none")
        isolation.cache_clear()
    try:
        if mode == "fallback-world-python":
            chosen = fallback_elsewhere()
            kind, drop_uid, message = chosen["kind"], chosen["drop_uid"], chosen["message"]
        else:
            iso = isolation()
            kind, drop_uid, message = iso.kind, iso.drop_uid, iso.message
        if kind == "none" and not drop_uid:
            # No file is protected in this variant: the writes below land (checked, then
            # removed in the finally block), which is what the strict xfail records.
            request.applymarker(pytest.mark.xfail(
                strict=True, reason=f"fallback without a throw-away uid: {message}"))
        if mode == "fallback-world-python":
            stdout = fallback_elsewhere(code)["result"]["stdout"]
        else:
            result = run_python_sync(code, LIMITS)
            assert result.status == "ok", result.stderr
            stdout = result.stdout
        assert stdout.count("\n") == len(targets), stdout
        if kind == "none":  # root-owned places refuse the throw-away uid outright
            for target in owned:
                assert f"refused {target} 13" in stdout, stdout
        for target in targets:
            assert not Path(target).exists(), f"{target} escaped the sandbox ({kind})"
    finally:
        for target in targets:
            with_dir = Path(target)
            if with_dir.is_dir() and not with_dir.is_symlink():
                shutil.rmtree(with_dir, ignore_errors=True)
            else:
                with_dir.unlink(missing_ok=True)
        isolation.cache_clear()


FALLBACK_PROBE = """
import json, os, socket, subprocess
child = subprocess.Popen(["sleep", "60"], start_new_session=True)  # outlives main.py
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=1).close(); net = "connected"
except OSError as exc:
    net = f"refused: {exc}"
print(json.dumps({"env": dict(os.environ), "cwd": os.getcwd(), "net": net, "child": child.pid}))
"""


def test_fallback_without_uid_drop_still_enforces_limits_and_a_clean_environment(
        monkeypatch: pytest.MonkeyPatch, listener: socket.socket) -> None:
    """The weakest variant (no namespaces, no throw-away uid: files and /proc are shared) still
    gives: the warning naming it, an environment with nothing inherited, a private work dir
    (HOME) removed afterwards, the socket audit hook, no process left behind, and the memory,
    time and output limits."""
    monkeypatch.setenv("SYNTHLOOM_SANDBOX_ISOLATION", "none")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback-parent-secret")
    # As root on a machine where the throw-away uid could run, make the probe fail: this
    # test is about the variant without it.
    monkeypatch.setattr(sandbox, "_uid_drop_failure", lambda: "forced by the test")
    isolation.cache_clear()
    try:
        iso = isolation()
        assert (iso.kind, iso.drop_uid) == ("none", False)
        assert "as root: a throw-away uid cannot run" in iso.message \
            or "as your own user" in iso.message, iso.message
        code = f"PORT = {listener.getsockname()[1]}\n" + FALLBACK_PROBE
        result = run_python_sync(code, LIMITS)
        assert result.status == "ok", result.stderr
        seen = json.loads(result.stdout)
        # Nothing inherited: only what the sandbox sets (Python may add LC_CTYPE).
        assert set(seen["env"]) - {"LC_CTYPE"} == {
            "PATH", "LANG", "HOME", "TMPDIR", "PYTHONDONTWRITEBYTECODE", "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}, seen["env"]
        assert "sk-fallback-parent-secret" not in result.stdout
        assert seen["env"]["HOME"] == seen["cwd"] and seen["cwd"].startswith(
            tempfile.gettempdir())
        assert not Path(seen["cwd"]).exists(), "the work dir was left behind"
        assert seen["net"].startswith("refused") and not _accepted(listener), seen["net"]
        assert not Path(f"/proc/{seen['child']}").exists() or _zombie(seen["child"]), \
            "a child in its own session outlived the program"
        memory = run_python_sync("x = bytearray(4 * 1024 ** 3)\nprint('allocated')", LIMITS)
        assert memory.status in ("error", "killed") and "allocated" not in memory.stdout
        loop = run_python_sync("while True:\n    pass\n", SandboxLimits(timeout_s=2))
        assert loop.status == "timeout" and loop.seconds < 20  # bound: not the loop running on
        flood = run_python_sync("import sys\nwhile True:\n    sys.stdout.write('y' * 65536)\n",
                                SandboxLimits(timeout_s=2, output_bytes=4096))
        assert flood.stdout_truncated and len(flood.stdout) == 4096
    finally:
        isolation.cache_clear()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


#: Looks for SECRET everywhere a sandboxed program could: its own environment, the
#: start-up environment of every process in /proc (and of PARENT by pid, should the PID
#: namespace hide it from the listing), and the usual dotfiles. Prints where it was found.
SECRET_PROBE = """
import json, os
places = {"os.environ": str(os.environ)}
pids = {str(PARENT)} | set(filter(str.isdigit, os.listdir("/proc")))
for path in [*(f"/proc/{pid}/environ" for pid in sorted(pids)),
             os.path.expanduser("~/.bashrc"), "/root/.bashrc", "/root/.gitconfig"]:
    try:
        places[path] = open(path, "rb").read().decode(errors="replace")
    except OSError:
        pass
print(json.dumps(sorted(where for where, text in places.items() if SECRET in text)))
"""

#: Runs SECRET_PROBE twice from a parent started with the secret in its environment, as
#: ``synthloom run`` is with OPENAI_API_KEY: unsandboxed (a plain child with a clean
#: environment, so only /proc can show the secret) and in the sandbox.
PARENT_WITH_SECRET = """
import json, os, subprocess, sys
from synthloom.verify.sandbox import SandboxLimits, run_python_sync
probe = f"SECRET, PARENT = {os.environ['OPENAI_API_KEY']!r}, {os.getpid()}\\n" + sys.argv[1]
plain = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True,
                       env={"PATH": os.defpath}, timeout=30)
boxed = run_python_sync(probe, SandboxLimits(timeout_s=8, memory_mb=256, processes=16))
print(json.dumps({"plain": json.loads(plain.stdout), "boxed": boxed.to_json()}))
"""


@pytest.mark.xfail(isolation().kind == "none" and not isolation().drop_uid, strict=True,
                   reason="fallback without a throw-away uid: the program runs as the parent's "
                          "user and /proc/<pid>/environ of the parent is readable "
                          f"({isolation().message})")
def test_secrets_of_the_parent_are_not_visible() -> None:
    secret = f"sk-escape-{secrets.token_hex(8)}"
    done = subprocess.run(
        [sys.executable, "-c", PARENT_WITH_SECRET, SECRET_PROBE], capture_output=True,
        text=True, timeout=120, env={**os.environ, "OPENAI_API_KEY": secret})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # Control: the same probe, unsandboxed, does find the parent's secret through /proc
    # (its own environment is clean), so an empty answer from the sandbox means something.
    assert any(where.startswith("/proc/") and where.endswith("/environ")
               for where in seen["plain"]), seen["plain"]
    assert "os.environ" not in seen["plain"]
    boxed = seen["boxed"]
    assert boxed["status"] == "ok", boxed["stderr"]
    assert json.loads(boxed["stdout"]) == [], f"the sandbox saw the secret in {boxed['stdout']}"
    assert secret not in boxed["stdout"] + boxed["stderr"]


@namespace_only
def test_fork_bomb_is_contained() -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = run_python_sync(code, SandboxLimits(timeout_s=3, processes=16, memory_mb=256))
    assert result.status in ("timeout", "killed", "error")
    assert result.seconds < 20  # killed at its limit, not left running (generous: loaded CI)
    assert uid_processes() == []


def test_fallback_as_root_contains_a_fork_bomb_under_the_throw_away_uid() -> None:
    """No PID namespace: RLIMIT_NPROC of the throw-away uid bounds the bomb, and the caller
    kills every process of that uid (even ones that left the process group) before returning."""
    code = ("import os\nwhile True:\n    try:\n        if os.fork() == 0:\n"
            "            os.setsid()\n    except OSError:\n        pass\n")
    chosen = fallback_elsewhere(code, SandboxLimits(timeout_s=3, processes=16, memory_mb=256))
    assert chosen["kind"] == "none" and chosen["drop_uid"], chosen["message"]
    result = chosen["result"]
    assert result["status"] in ("timeout", "killed") and result["seconds"] < 20
    assert uid_processes() == []


def test_four_gigabytes_under_256_megabytes() -> None:
    result = run_python_sync("x = bytearray(4 * 1024 ** 3)\nprint('allocated')", LIMITS)
    assert result.status in ("error", "killed") and "allocated" not in result.stdout


def test_infinite_loop_times_out() -> None:
    result = run_python_sync("while True:\n    pass\n", SandboxLimits(timeout_s=2))
    assert result.status == "timeout" and 1.9 < result.seconds < 20


def test_output_flood_is_truncated() -> None:
    code = "import sys\nwhile True:\n    sys.stdout.write('y' * 65536)\n"
    result = run_python_sync(code, SandboxLimits(timeout_s=2, output_bytes=4096))
    assert result.status == "timeout" and result.stdout_truncated
    assert len(result.stdout) == 4096
