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
    assert set(env) <= {"PATH", "LANG", "HOME", "PYTHONDONTWRITEBYTECODE", "LC_CTYPE"}
    assert env["HOME"].startswith(("/tmp/", "/var/")) and "synthloom-sbx-" in env["HOME"]


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


def test_output_is_truncated_to_the_cap() -> None:
    result = run_python_sync("print('x' * 5_000_000)", SandboxLimits(timeout_s=5, output_bytes=1000))
    assert result.status == "ok" and result.stdout_truncated
    assert len(result.stdout) == 1000


def test_wall_and_cpu_limits_report_timeout() -> None:
    wall = run_python_sync("import time; time.sleep(30)", SandboxLimits(timeout_s=1))
    assert wall.status == "timeout" and wall.seconds < 3 and "wall" in wall.reason
    cpu = run_python_sync("while True: pass", SandboxLimits(timeout_s=10, cpu_s=1))
    assert cpu.status == "timeout" and "CPU" in cpu.reason and cpu.seconds < 5


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
    assert result.status == "killed" and "processes" in result.reason and result.seconds < 8
    loop = run_python_sync("while True: pass", SandboxLimits(timeout_s=1))
    assert loop.status == "timeout"
