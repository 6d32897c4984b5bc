"""Reliability suite 5: secrets. With OPENAI_API_KEY set, ``synthloom run`` (and ``export``)
against the scripted OpenAI test server (a deterministic test double that records the
Authorization header it gets, so we know the key was in use) must not write the key anywhere:
no file of the run folder (data, failures, summary, run.db and its WAL, report.html, the
recipe copy, an export with its dataset card) and nothing on stdout or stderr, including
``--debug`` tracebacks. The server also echoes the key back in error bodies, as a
misconfigured gateway might: those messages land in failed.jsonl and must be scrubbed.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthloom.cli import app
from tests.support.reliability import (
    SCRIPTED_MODEL,
    HeaderRecordingServer,
    load_run,
    quickstart_responder,
    read_jsonl,
    run_cli,
)

pytestmark = pytest.mark.integration


def leaks(key: str, blobs: dict[str, bytes]) -> list[str]:
    """Names of the blobs holding the key, or its random part alone."""
    needles = [key.encode(), key.split("-")[-1].encode()]
    return sorted(name for name, blob in blobs.items() if any(n in blob for n in needles))


def test_the_api_key_is_in_no_file_log_or_report(tmp_path: Path) -> None:
    key = f"sk-reliability-{secrets.token_hex(16)}"
    env = {"OPENAI_API_KEY": key}
    out = tmp_path / "run"
    captured: dict[str, bytes] = {}
    with HeaderRecordingServer(quickstart_responder, echo_marker="Composting") as server:
        done = run_cli("run", "quickstart", "--out", str(out), "--limit", "12", "--debug",
                       "--backend", f"openai:{server.base_url}", "--model", SCRIPTED_MODEL,
                       env=env)
        captured |= {"run stdout": done.stdout.encode(), "run stderr": done.stderr.encode()}
        assert done.returncode == 0, done.stderr
        assert server.auth_headers and set(server.auth_headers) == {f"Bearer {key}"}

    # The key reached the server, and the server sent it back in an error body: the failure
    # is recorded with the server's message, the key scrubbed out of it.
    [failed] = read_jsonl(out / "failed.jsonl")
    assert "HTTP 400" in failed["message"] and "Authorization: Bearer ***" in failed["message"]
    summary, rows = load_run(out)
    assert len(rows) == 11 and (out / "report.html").is_file()

    # An export with its dataset card, from the same environment.
    runner = CliRunner(env=env)
    exported = runner.invoke(app, ["export", str(out), "--format", "alpaca"])
    assert exported.exit_code == 0, exported.output
    captured["export output"] = exported.output.encode()

    # A run that dies on an auth error with --debug: the traceback must not show the key.
    with HeaderRecordingServer(quickstart_responder, echo_marker="Sourdough",
                               echo_status=401) as server:
        dead = run_cli("run", "quickstart", "--out", str(tmp_path / "auth"), "--limit", "2",
                       "--debug", "--backend", f"openai:{server.base_url}", "--model",
                       SCRIPTED_MODEL, env=env)
        assert f"Bearer {key}" in server.auth_headers
    assert dead.returncode != 0 and "Traceback" in dead.stderr
    assert "authentication failed" in dead.stderr
    captured |= {"auth stdout": dead.stdout.encode(), "auth stderr": dead.stderr.encode()}

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"data.jsonl", "failed.jsonl", "summary.json", "run.db", "report.html",
            "README.md"} <= names
    captured |= {str(p.relative_to(tmp_path)): p.read_bytes() for p in files}
    assert leaks(key, captured) == []
