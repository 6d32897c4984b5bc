"""Sandbox basics: statuses, limits, output cap, clean environment, async API, CLI, fallback."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthloom.cli import app
from synthloom.verify import sandbox
from synthloom.verify.sandbox import SandboxLimits, isolation, run_python, run_python_sync

QUICK = SandboxLimits(timeout_s=5)


def test_ok_error_and_exit_codes() -> None:
    ok = run_python_sync("print(6 * 7)", QUICK)
    assert (ok.status, ok.returncode, ok.stdout) == ("ok", 0, "42\n")
    err = run_python_sync("raise SystemExit(3)", QUICK)
    assert (err.status, err.returncode) == ("error", 3)
    boom = run_python_sync("1 / 0", QUICK)
    assert boom.status == "error" and "ZeroDivisionError" in boom.stderr


def test_environment_has_no_inherited_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-must-not-leak")
    result = run_python_sync("import os, json; print(json.dumps(dict(os.environ)))", QUICK)
    env = json.loads(result.stdout)
    assert "sk-test-must-not-leak" not in result.stdout
    assert set(env) <= {"PATH", "LANG", "HOME", "TMPDIR", "PYTHONDONTWRITEBYTECODE", "LC_CTYPE",
                        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}
    assert env["HOME"].startswith(("/tmp/", "/var/")) and "synthloom-sbx-" in env["HOME"]
    assert env["TMPDIR"] == env["HOME"]


def test_fresh_work_dir_is_removed_and_files_are_given() -> None:
    code = "import os; print(os.getcwd()); print(open('data.txt').read())"
    result = run_python_sync(code, QUICK, files={"data.txt": "hello"})
    workdir, content = result.stdout.splitlines()
    assert content == "hello"
    assert not Path(workdir).exists()
    before = set(Path(tempfile.gettempdir()).glob("synthloom-sbx-*"))
    for bad in ("../x.txt", "sub/x.txt", "main.py"):
        with pytest.raises(ValueError):
            run_python_sync("pass", QUICK, files={bad: "no"})
    assert set(Path(tempfile.gettempdir()).glob("synthloom-sbx-*")) <= before


WRITER = """
import os, tempfile
open("out.txt", "w").write("cwd")
open(os.path.expanduser("~/home.txt"), "w").write("home")
with tempfile.NamedTemporaryFile("w", delete=False) as handle:
    handle.write("tmp")
print(os.path.dirname(handle.name) == os.getcwd() == os.environ["HOME"])
print(open("out.txt").read(), open(os.path.expanduser("~/home.txt")).read(),
      open(handle.name).read())
try:
    open("big.bin", "wb").write(b"x" * (2 * 1024 * 1024))
except OSError as exc:
    print("big:", exc.strerror)
"""


def test_an_honest_program_writes_files_in_its_private_folder() -> None:
    """Its work dir is cwd, HOME and TMPDIR, and writable (it was read-only in the namespace
    mode: a program that saved a file failed verification); each file capped by file_mb."""
    result = run_python_sync(WRITER, SandboxLimits(timeout_s=5, file_mb=1))
    assert result.status == "ok", result.stderr
    assert result.stdout.splitlines() == ["True", "cwd home tmp", "big: File too large"]


FORKS = """
import os, time
kids = []
for _ in range(6):
    pid = os.fork()
    if pid == 0:
        x = b"x" * (200 * 2 ** 20)
        print("held", flush=True)
        time.sleep(5)
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
print("done")
"""


def test_forks_share_one_memory_limit() -> None:
    """RLIMIT_AS binds each process alone: six forks of 200 MB each held 1.2 GB under a
    256 MB limit. The launcher sums them and kills them all."""
    result = run_python_sync(FORKS, SandboxLimits(timeout_s=10, memory_mb=256))
    assert result.status == "killed", result
    assert result.reason == "memory over 256 MB in all its processes together"
    assert "done" not in result.stdout and result.stdout.count("held") < 6


def test_output_is_truncated_to_the_cap() -> None:
    result = run_python_sync("print('x' * 5_000_000)", SandboxLimits(timeout_s=5, output_bytes=1000))
    assert result.status == "ok" and result.stdout_truncated
    assert len(result.stdout) == 1000


def test_wall_and_cpu_limits_report_timeout() -> None:
    wall = run_python_sync("import time; time.sleep(30)", SandboxLimits(timeout_s=1))
    # The reason names which limit fired; wall-clock figures are not asserted (a loaded
    # machine stretches them), the 30 s sleep / endless loop would hit the other limit.
    assert wall.status == "timeout" and "wall" in wall.reason
    cpu = run_python_sync("while True: pass", SandboxLimits(timeout_s=120, cpu_s=1))
    assert cpu.status == "timeout" and "CPU" in cpu.reason


def test_memory_limit() -> None:
    result = run_python_sync("x = bytearray(1024 ** 3)", SandboxLimits(timeout_s=5, memory_mb=256))
    assert result.status in ("error", "killed") and "MemoryError" in result.stderr


def test_async_runs_overlap() -> None:
    async def three() -> list[sandbox.SandboxResult]:
        code = "import time; time.sleep(0.5); print('done')"
        return await asyncio.gather(*(run_python(code, QUICK) for _ in range(3)))

    results = asyncio.run(three())
    assert [r.stdout for r in results] == ["done\n"] * 3


def test_cli_prints_one_json_object(tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(2)\n")
    result = CliRunner().invoke(app, ["sandbox", "run", str(script), "--timeout", "5",
                                      "--memory-mb", "256"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"status", "returncode", "stdout", "stderr", "seconds"} <= set(data)
    assert (data["status"], data["returncode"], data["stdout"]) == ("error", 2, "out\n")
    assert data["stderr"] == "err\n"


@pytest.fixture
def fallback(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SYNTHLOOM_SANDBOX_ISOLATION", "none")
    isolation.cache_clear()
    yield
    monkeypatch.delenv("SYNTHLOOM_SANDBOX_ISOLATION")
    isolation.cache_clear()


def test_fallback_still_blocks_sockets_and_limits_processes(fallback: None) -> None:
    assert isolation().kind == "none" and "audit hook" in isolation().message
    net = run_python_sync("import socket; socket.socket(socket.AF_INET)", QUICK)
    assert net.status == "error" and "network access is disabled" in net.stderr
    assert net.isolation == "none"
    # Sequential, sleeping children: bounded, safe even where RLIMIT_NPROC cannot bind.
    forks = ("import os, time\nfor _ in range(60):\n    if os.fork() == 0:\n"
             "        time.sleep(20); os._exit(0)\n    time.sleep(0.01)\n")
    result = run_python_sync(forks, SandboxLimits(timeout_s=10, processes=8))
    assert result.seconds < 20  # the sleeping children were not waited for (20 s each)
    if isolation().drop_uid:  # RLIMIT_NPROC binds for the throw-away uid: the 9th fork fails
        assert result.status == "error" and "BlockingIOError" in result.stderr
    else:  # the watchdog counts the process group
        assert result.status == "killed" and "processes" in result.reason
    loop = run_python_sync("while True: pass", SandboxLimits(timeout_s=1))
    assert loop.status == "timeout"


def test_fallback_forks_share_one_memory_limit(fallback: None) -> None:
    result = run_python_sync(FORKS, SandboxLimits(timeout_s=10, memory_mb=256))
    assert result.status == "killed" and result.isolation == "none", result
    assert result.reason == "memory over 256 MB in all its processes together"
    assert "done" not in result.stdout and result.stdout.count("held") < 6


def test_fallback_kills_a_child_in_a_session_of_its_own(fallback: None) -> None:
    """It left the process group: the launcher (a subreaper) kills its whole tree. Before,
    Process.wait() also waited for the child's copy of the output pipes: forever."""
    code = ("import os, time\npid = os.fork()\nif pid == 0:\n    os.setsid(); time.sleep(30)\n"
            "print(pid)\n")
    result = run_python_sync(code, QUICK)
    assert result.status == "ok" and result.seconds < 20, result  # not the child's 30 s
    pid = int(result.stdout)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        state = "gone"
    assert state in ("gone", "Z")


def test_fallback_drops_to_a_throw_away_uid_only_as_root_and_when_it_works(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
    user = sandbox._no_isolation("test")
    assert not user.drop_uid and "your own user" in user.message
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 0)
    monkeypatch.setattr(sandbox, "_uid_drop_failure", lambda: "Permission denied: /root/x")
    blocked = sandbox._no_isolation("test")
    assert not blocked.drop_uid and "Permission denied: /root/x" in blocked.message
    monkeypatch.setattr(sandbox, "_uid_drop_failure", lambda: "")
    dropped = sandbox._no_isolation("test")
    assert dropped.kind == "none" and dropped.drop_uid and "throw-away uid" in dropped.message


@pytest.mark.skipif(sandbox.os.geteuid() != 0, reason="chown to another uid needs root")
def test_fallback_work_dir_belongs_to_the_throw_away_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    iso = sandbox.Isolation("none", (), True, "test")
    monkeypatch.setattr(sandbox, "isolation", lambda: iso)
    command, cfg, workdir, _ = sandbox._prepare("pass", QUICK, True, {"data.txt": "x"})
    try:
        assert command[0] == sandbox.sys.executable and not cfg["namespaces"]
        uid = cfg["uid"]
        assert sandbox.UID_RANGE[0] <= uid < sandbox.UID_RANGE[1]
        for path in (Path(workdir), Path(workdir, "main.py"), Path(workdir, "data.txt")):
            assert (path.stat().st_uid, path.stat().st_gid) == (uid, uid)
        assert Path(workdir).stat().st_mode & 0o777 == 0o700
    finally:
        sandbox.shutil.rmtree(workdir)


@pytest.mark.skipif(sandbox.os.geteuid() != 0, reason="files of another uid need root")
def test_sweep_removes_only_the_uid_s_scratch_files(tmp_path: Path) -> None:
    uid = sandbox._draw_uid()
    mine, other = Path(f"/tmp/sbx-sweep-{uid}"), Path(f"/tmp/sbx-sweep-other-{uid}")
    try:
        (mine / "sub").mkdir(parents=True)
        (mine / "sub" / "f").write_text("x")
        link = Path(f"/tmp/sbx-sweep-link-{uid}")
        link.symlink_to(tmp_path)  # a link to a root-owned folder: unlinked, never followed
        (tmp_path / "keep").write_text("x")
        other.write_text("x")
        for path in (mine, mine / "sub", mine / "sub" / "f"):
            sandbox.os.chown(path, uid, uid)
        sandbox.os.lchown(link, uid, uid)
        sandbox._sweep_scratch(uid)
        assert not mine.exists() and not link.is_symlink()
        assert other.exists() and (tmp_path / "keep").exists()
    finally:
        sandbox.shutil.rmtree(mine, ignore_errors=True)
        other.unlink(missing_ok=True)
        Path(f"/tmp/sbx-sweep-link-{uid}").unlink(missing_ok=True)
