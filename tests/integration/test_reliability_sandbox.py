"""Reliability suite 4: sandbox escapes, beyond tests/integration/test_verify_sandbox_escapes.py
(which covers network, writes outside the work dir, /proc/1 and /proc/self environ, fork bomb,
memory hog, infinite loop and output flood one by one, on run_python directly).

Here: the parent's real home directory and every process's environment are out of reach; and
the same attacks written by "the model" (the scripted OpenAI test server, a deterministic test
double) inside a real ``synthloom run pot`` are contained: the run finishes in bounded time,
each program is a counted drop naming its cause, nothing persists outside, no process is left,
and the parent's secret is in no output. In the fallback mode (no namespaces) as root the
program runs under a throw-away uid, so root's processes' environments are unreadable; checked
with a world-readable interpreter where this project's own lives under /root (which a
throw-away uid cannot run, so the fallback keeps root there). As the parent's own user, or as
root without the uid, the environments are readable: a documented limitation, kept visible as
a strict xfail.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import synthloom
from synthloom.verify.sandbox import (
    UID_RANGE,
    SandboxLimits,
    _expose_paths,
    _no_isolation,
    isolation,
    run_python_sync,
)
from tests.integration.test_verify_sandbox_escapes import fallback_elsewhere
from tests.support.fault_proxy import ScriptedOpenAIServer
from tests.support.reliability import SCRIPTED_MODEL, load_run, read_jsonl, run_cli

pytestmark = pytest.mark.integration

LIMITS = SandboxLimits(timeout_s=4, memory_mb=256, processes=16)
SRC = str(Path(synthloom.__file__).resolve().parents[1])  # the package under test
namespace_only = pytest.mark.skipif(
    isolation().kind != "namespace",
    reason=f"no namespace isolation here: {isolation().message}")

FIND_SECRET = """
import os
found = []
for pid in sorted({p for p in os.listdir("/proc") if p.isdigit()} | {str(DECOY)}):
    try:
        if SECRET in open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"):
            found.append(pid)
    except OSError:
        pass
print("FOUND" if found or SECRET in str(os.environ) else "NOTHING", found)
"""


@pytest.fixture
def decoy() -> Iterator[tuple[int, str]]:
    """A process started with a secret in its environment, as ``synthloom run`` is with
    OPENAI_API_KEY. (/proc/PID/environ shows a process's start-up environment: setting a
    variable in the test process itself would not be visible there.)"""
    secret = f"sk-sbx-{secrets.token_hex(8)}"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            env={**os.environ, "OPENAI_API_KEY": secret})
    try:
        yield proc.pid, secret
    finally:
        proc.kill()
        proc.wait()


def find_secret(pid: int, secret: str) -> str:
    code = f"SECRET, DECOY = {secret!r}, {pid}\n" + FIND_SECRET
    result = run_python_sync(code, LIMITS)
    assert result.status == "ok", result.stderr
    return result.stdout


@namespace_only
def test_the_parent_home_is_hidden() -> None:
    home = Path.home()
    readable = [p.name for p in home.iterdir() if p.is_file() and os.access(p, os.R_OK)][:20]
    code = f"""
import json, os
home, names = {str(home)!r}, {readable!r}
try:
    visible = sorted(os.listdir(home))
except OSError as exc:
    visible = ["listing refused: " + str(exc.errno)]
opened = []
for name in names:
    try:
        open(os.path.join(home, name), "rb").read(64); opened.append(name)
    except OSError:
        pass
print(json.dumps({{"visible": visible, "opened": opened, "HOME": os.environ.get("HOME")}}))
"""
    result = run_python_sync(code, LIMITS)
    assert result.status == "ok", result.stderr
    seen = json.loads(result.stdout)
    assert seen["opened"] == [], "files of the parent's home were readable"
    # Only the way to the interpreter shows (e.g. ~/.pyenv): it is bind-mounted read-only.
    exposed = {Path(p).relative_to(home).parts[0] for p in _expose_paths()
               if Path(p).is_relative_to(home) and Path(p) != home}
    assert set(seen["visible"]) <= exposed, seen["visible"]
    assert seen["HOME"] != str(home)


@namespace_only
def test_no_process_environment_shows_the_parent_secret(decoy: tuple[int, str]) -> None:
    # Outside the sandbox the decoy's environ is readable: the probe below would find it.
    assert decoy[1] in Path(f"/proc/{decoy[0]}/environ").read_text(errors="replace")
    assert find_secret(*decoy).startswith("NOTHING")


PEEK = """
import json, os, sys
project = sys.argv[1] if len(sys.argv) > 1 else PROJECT
try:
    listed = sorted(os.listdir(project))
except OSError as exc:
    listed = ["refused: " + exc.strerror]
try:
    env = open(os.path.join(project, ".env")).read()
except OSError as exc:
    env = "refused: " + exc.strerror
print(json.dumps({"listed": listed, "env": env, "cwd": os.getcwd()}))
"""


def world_readable_project(parent: Path | str) -> Path:
    """A project folder with a ``.env``, readable by anyone (as a checkout usually is), so a
    throw-away uid is kept out only by the sandbox's hiding, not by permissions."""
    project = Path(tempfile.mkdtemp(prefix="sbx-project-", dir=parent))
    project.chmod(0o755)
    (project / ".env").write_text(f"OPENAI_API_KEY=sk-env-{secrets.token_hex(8)}\n")
    (project / ".env").chmod(0o644)
    return project


@namespace_only
def test_python_m_synthloom_hides_the_caller_s_folder() -> None:
    """``python -m`` puts the working folder first on ``sys.path``; the sandbox exposed every
    ``sys.path`` entry, so the program read the caller's ``.env`` (also under /tmp, which is
    otherwise hidden)."""
    project = world_readable_project("/tmp")
    try:
        (project / "prog.py").write_text(f"PROJECT = {str(project)!r}\n" + PEEK)
        done = subprocess.run([sys.executable, "-m", "synthloom", "sandbox", "run", "prog.py",
                               "--timeout", "5"], cwd=project, capture_output=True, text=True,
                              timeout=60, env={**os.environ, "PYTHONPATH": SRC})
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["status"] == "ok", result["stderr"]
        seen = json.loads(result["stdout"])
        assert "sk-env-" not in result["stdout"]
        assert seen["env"].startswith("refused") and ".env" not in seen["listed"]
        assert seen["cwd"] != str(project)
    finally:
        shutil.rmtree(project, ignore_errors=True)


@namespace_only
def test_the_api_hides_the_caller_s_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """A working folder outside the hidden ones (/tmp, /home, /root ...), as a checkout under
    /work or /srv is, was visible read-only to the program."""
    project = world_readable_project(Path(__file__).parent)
    try:
        monkeypatch.chdir(project)
        result = run_python_sync(f"PROJECT = {str(project)!r}\n" + PEEK, LIMITS)
        assert result.status == "ok", result.stderr
        seen = json.loads(result.stdout)
        assert seen["env"].startswith("refused") and ".env" not in seen["listed"]
    finally:
        shutil.rmtree(project, ignore_errors=True)


#: What the fallback mode would do here (probes whether a throw-away uid can run Python).
FALLBACK = _no_isolation("forced by the test")
FALLBACK_KEEPS_THE_USER = (
    "not root and no namespaces: the program runs as the parent's user without a PID "
    "namespace, so /proc/<pid>/environ of the user's processes is readable; this cannot be "
    "fixed without namespaces (documented in verify/sandbox.py); use a machine that allows them"
    if os.geteuid() != 0 else
    "root, but the fallback cannot drop to a throw-away uid here, so the program runs as root "
    f"and reads every /proc/<pid>/environ: {FALLBACK.message}")


@pytest.mark.xfail(not FALLBACK.drop_uid, strict=True, reason=FALLBACK_KEEPS_THE_USER)
def test_fallback_mode_hides_other_process_environments(
        decoy: tuple[int, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHLOOM_SANDBOX_ISOLATION", "none")
    isolation.cache_clear()
    try:
        assert find_secret(*decoy).startswith("NOTHING")
    finally:
        monkeypatch.delenv("SYNTHLOOM_SANDBOX_ISOLATION")
        isolation.cache_clear()


def test_fallback_as_root_hides_environments_with_a_world_readable_python(
        decoy: tuple[int, str]) -> None:
    code = f"SECRET, DECOY = {decoy[1]!r}, {decoy[0]}\n" + FIND_SECRET
    chosen = fallback_elsewhere(code)
    assert chosen["kind"] == "none" and chosen["drop_uid"], chosen["message"]
    assert chosen["result"]["status"] == "ok", chosen["result"]["stderr"]
    assert chosen["result"]["stdout"].startswith("NOTHING")


# --- the same attacks from "the model", inside a pot run ----------------------------------------


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def sandbox_processes(started_after: float) -> list[int]:
    """Processes of a sandbox's throw-away uid that started after ``started_after`` (uptime s)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if not UID_RANGE[0] <= os.stat(f"/proc/{pid}").st_uid < UID_RANGE[1]:
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[19]) / ticks >= started_after - 1:  # field 22: start time, in ticks
            found.append(int(pid))
    return found

TOKEN = secrets.token_hex(6)
ATTACKS: dict[str, str] = {
    "network": "import socket\nsocket.create_connection(('127.0.0.1', PORT), timeout=2)\n"
               "print(12)",
    "write": "import os\nfor t in TARGETS:\n    try:\n        open(t, 'w').write('x')\n"
             "    except OSError:\n        pass\nprint(0)",
    "secret": "import os\nfound = []\nfor pid in [p for p in os.listdir('/proc') if p.isdigit()]:"
              "\n    try:\n        found.append(open(f'/proc/{pid}/environ').read())\n"
              "    except OSError:\n        pass\n"
              "print(os.environ.get('OPENAI_API_KEY'), ''.join(found)[-200:])",
    "fork": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
    "memory": "x = bytearray(4 * 1024 ** 3)\nprint(len(x))",
    "loop": "while True:\n    pass",
    "flood": "import sys\nwhile True:\n    sys.stdout.write('y' * 65536)",
    "honest": "print(24 + 18 - 30)",
}


@namespace_only  # without namespaces, writes to /tmp persist and /proc is shared (see above)
def test_malicious_programs_in_a_pot_run_are_contained(tmp_path: Path) -> None:
    secret = f"sk-pot-{secrets.token_hex(8)}"
    targets = [f"/tmp/escape-{TOKEN}", str(tmp_path / f"escape-{TOKEN}"),
               str(Path(__file__).parent / f"escape-{TOKEN}"),
               os.path.expanduser(f"~/escape-{TOKEN}")]
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(
        json.dumps({"question": f"[{name}] A baker has 24 rolls, bakes 18, sells 30. Left?",
                    "answer": "#### 12"}) + "\n" for name in ATTACKS))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)

    def responder(request: dict[str, Any]) -> str:
        text = request["messages"][-1]["content"]
        name = text.split("[", 1)[1].split("]", 1)[0]
        code = ATTACKS[name].replace("PORT", str(listener.getsockname()[1]))
        return f"```python\nTARGETS = {targets!r}\n{code}\n```"

    out = tmp_path / "run"
    began = time.monotonic()
    run_began = uptime()
    with ScriptedOpenAIServer(responder) as server:
        done = run_cli("run", "pot", "--out", str(out), "--quiet", "--backend",
                       f"openai:{server.base_url}", "--model", SCRIPTED_MODEL,
                       "--set", f"input={problems}", "--set", "timeout=2",
                       env={"OPENAI_API_KEY": secret}, timeout=120)
    seconds = time.monotonic() - began
    try:
        listener.accept()[0].close()
        connected = True
    except OSError:
        connected = False
    finally:
        listener.close()
    assert done.returncode == 0, done.stderr
    assert seconds < 60 and not connected

    summary, rows = load_run(out)
    [execute] = [s for s in summary["steps"] if s["name"] == "execute"]
    assert execute["in"] == len(ATTACKS) == execute["out"] + execute["dropped"]
    assert [r["question"][:8] for r in rows] == ["[honest]"] and rows[0]["verified"]
    reasons = {d["record"]["question"].split("]")[0][1:]: d["reason"]
               for d in read_jsonl(out / "dropped.jsonl") if d["step"] == "execute"}
    assert "network access is disabled" in reasons["network"]
    assert reasons["write"] == "program printed '0', gold is '12'"  # ran, changed nothing
    assert reasons["secret"].startswith("program printed") and secret not in reasons["secret"]
    assert reasons["memory"].startswith("program error") and "MemoryError" in reasons["memory"]
    for name in ("fork", "loop", "flood"):
        assert reasons[name].startswith(("program timeout", "program killed")), reasons[name]

    for target in targets:
        assert not Path(target).exists(), f"{target} escaped the sandbox"
    # No sandbox process of this run is left. Others' sandboxes may run on a shared machine:
    # only processes started during this run count, and only if they outlive a grace period.
    deadline = time.monotonic() + 10
    while (left := sandbox_processes(started_after=run_began)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], f"sandbox processes left behind: {left}"
    blobs = [p.read_bytes() for p in out.rglob("*") if p.is_file()]
    assert not any(secret.encode() in b for b in blobs) and secret not in done.stdout + done.stderr
