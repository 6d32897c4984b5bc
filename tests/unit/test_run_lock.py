"""One run per --out folder: a live holder's flock refuses a second run; a lock file left by a
killed run is simply taken; of several processes started at once exactly one wins."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.runlock import RunLock, RunLockedError, held_by

HOLD = ("import sys,time; from pathlib import Path; from synthloom.core.runlock import RunLock;"
        "l=RunLock(Path(sys.argv[1])); l.acquire(); print('held', flush=True); time.sleep(60)")


def hold(folder: Path) -> subprocess.Popen[str]:
    """A real second process that holds ``folder``'s lock until killed."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def killed_holder_pid(folder: Path) -> int:
    """The pid of a process that took ``folder``'s lock and was killed with SIGKILL (its pid
    stays in the lock file: a stale lock)."""
    folder.mkdir(parents=True, exist_ok=True)
    holder = hold(folder)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    return holder.pid


def test_second_process_is_refused_with_folder_and_pid(tmp_path: Path) -> None:
    holder = hold(tmp_path)
    try:
        with pytest.raises(RunLockedError) as err:
            RunLock(tmp_path).acquire()
        assert str(tmp_path) in str(err.value)
        assert f"pid {holder.pid}" in str(err.value)
        assert held_by(tmp_path) == holder.pid
    finally:
        holder.kill()
        holder.wait()
    assert held_by(tmp_path) is None  # the kernel dropped it with the process


def test_cli_refuses_nonzero_while_locked(tmp_path: Path) -> None:
    holder = hold(tmp_path)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "synthloom", "run", "quickstart", "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0
        out = proc.stdout + proc.stderr
        assert f"pid {holder.pid}" in out and "in use by another run" in out
    finally:
        holder.kill()
        holder.wait()


def test_a_refused_run_writes_nothing_in_the_folder(tmp_path: Path) -> None:
    # A finished run's folder: its recipe.yaml names the recipe that ran.
    (tmp_path / "recipe.yaml").write_text("name: the-recipe-that-ran\n")
    holder = hold(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    try:
        with pytest.raises(RunLockedError):
            asyncio.run(run_recipe("quickstart", tmp_path, RunOptions(limit=1)))
    finally:
        holder.kill()
        holder.wait()
    # Was: recipe.yaml overwritten with quickstart's, run.db created, before the lock check.
    assert (tmp_path / "recipe.yaml").read_text() == "name: the-recipe-that-ran\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_lock_left_by_a_killed_run_is_taken_and_released(tmp_path: Path) -> None:
    dead = killed_holder_pid(tmp_path)
    assert (tmp_path / ".lock").read_text().strip() == str(dead)
    assert held_by(tmp_path) is None
    lock = RunLock(tmp_path)
    lock.acquire()
    assert (tmp_path / ".lock").read_text().strip() != str(dead)
    lock.release()
    # The file stays (deleting it would open a race); nobody holds it.
    assert held_by(tmp_path) is None and (tmp_path / ".lock").read_text() == ""


def _contend(folder: str, start: Any, tried: Any, results: Any) -> None:
    lock = RunLock(Path(folder))
    start.wait()
    try:
        lock.acquire()
        won = True
    except RunLockedError:
        won = False
    results.put(won)
    tried.wait()  # the winner holds the lock until every contender has tried
    lock.release()


def _race(folder: Path, contenders: int) -> int:
    """Start ``contenders`` processes at once on ``folder``; how many took the lock."""
    ctx = multiprocessing.get_context("fork")
    start, tried = ctx.Barrier(contenders), ctx.Barrier(contenders)
    results = ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(str(folder), start, tried, results))
             for _ in range(contenders)]
    for p in procs:
        p.start()
    wins = sum(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    return wins


@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "stale-lock-file"])
def test_exactly_one_of_several_processes_started_at_once_wins(tmp_path: Path,
                                                               stale: bool) -> None:
    # Before flock: 2-3 winners in 1 of 10 trials, 5 of 10 over a stale lock file.
    dead = killed_holder_pid(tmp_path / "dead") if stale else None
    winners = []
    for trial in range(20):
        folder = tmp_path / f"trial{trial}"
        folder.mkdir()
        if dead is not None:
            (folder / ".lock").write_text(f"{dead}\n")
        winners.append(_race(folder, contenders=4))
    assert winners == [1] * 20


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
