"""One run per --out folder: a live holder's lock refuses a second run; a stale one is taken."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from synthloom.core.runlock import RunLock, RunLockedError


def test_second_process_is_refused_with_folder_and_pid(tmp_path):
    # A real second process holds the lock; this process must be refused.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys,time; from pathlib import Path; from synthloom.core.runlock import RunLock;"
         "l=RunLock(Path(sys.argv[1])); l.acquire(); print('held', flush=True); time.sleep(30)",
         str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError) as err:
            RunLock(tmp_path).acquire()
        assert str(tmp_path) in str(err.value)
        assert f"pid {holder.pid}" in str(err.value)
    finally:
        holder.kill()
        holder.wait()


def test_cli_refuses_nonzero_while_locked(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / ".lock").write_text(f"{holder.pid}\n")
        proc = subprocess.run(
            [sys.executable, "-m", "synthloom", "run", "quickstart", "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0
        out = proc.stdout + proc.stderr
        assert f"pid {holder.pid}" in out and "in use by another run" in out
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_is_taken_over_and_released(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    time.sleep(0.1)
    (tmp_path / ".lock").write_text(f"{dead.pid}\n")
    lock = RunLock(tmp_path)
    lock.acquire()
    assert (tmp_path / ".lock").read_text().strip() != str(dead.pid)
    lock.release()
    assert not (tmp_path / ".lock").exists()


def test_resume_keeps_failed_and_dropped_rows_exactly_once(tmp_path):
    # Scripted test backend: a budget stop, then a resume, must leave the same failed/dropped
    # rows as one uninterrupted run - none lost from run 1, none written twice.
    from tests.support.runs import read_jsonl
    from tests.support.scripted_backend import ScriptedTestBackend
    from tests.unit.test_engine import corpus as engine_corpus
    from tests.unit.test_engine import make_recipe, responder, run

    corpus = engine_corpus.__wrapped__(tmp_path)

    def rows(out, name):
        return sorted(json.dumps(r, sort_keys=True) for r in read_jsonl(out / name))

    run(make_recipe(corpus), tmp_path / "whole", ScriptedTestBackend(responder))
    part = tmp_path / "part"
    first = run(make_recipe(corpus), part, ScriptedTestBackend(responder),
                budget_tokens=40, concurrency=1, batch_size=2)
    assert first["status"] == "stopped"
    run(make_recipe(corpus), part, ScriptedTestBackend(responder))
    for name in ("failed.jsonl", "dropped.jsonl"):
        assert rows(tmp_path / "whole", name), name  # the comparison is not vacuous
        assert rows(part, name) == rows(tmp_path / "whole", name), name
    # A rerun of a finished run replays every item from the store: same rows again, once.
    run(make_recipe(corpus), tmp_path / "whole", ScriptedTestBackend(responder))
    assert rows(tmp_path / "whole", "dropped.jsonl") == rows(part, "dropped.jsonl")
    assert rows(tmp_path / "whole", "failed.jsonl") == rows(part, "failed.jsonl")
