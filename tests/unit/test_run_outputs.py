"""What a run leaves in its folder when it ends badly (issue 22 items 4, 5, 13), with the
ScriptedTestBackend (a test double, no model) behind the real engine:

- outputs are published only by a complete run: an interrupted or failed rerun of a finished
  run leaves its data.jsonl / failed.jsonl / dropped.jsonl byte for byte, and its own rows in
  *.partial;
- summary.json's status says ok / partial / failed / interrupted, with the error;
- no LLM request starts after the run is cancelled;
- a cache row that cannot be decoded is a miss (counted, recomputed, overwritten); a damaged
  run.db is one error naming the file and a remedy;
- export refuses an incomplete run (unless forced), report warns.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.errors import SynthloomError
from synthloom.core.store import RunStore, StoreError
from synthloom.export.formats import ExportOptions, export
from synthloom.export.report import report_warnings
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text
from tests.unit.test_engine import corpus as engine_corpus
from tests.unit.test_engine import make_recipe, responder

OUTPUTS = ("data.jsonl", "failed.jsonl", "dropped.jsonl")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return engine_corpus.__wrapped__(tmp_path)


def run(recipe: Any, out: Path, backend: ScriptedTestBackend, **kw: Any) -> dict[str, Any]:
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, **kw))).to_json()


def summary_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())


def files(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def run_cancelled(recipe: Any, out: Path, backend: ScriptedTestBackend, after_calls: int,
                  **kw: Any) -> int:
    """Run, cancel the run's task once the backend has started ``after_calls`` calls (as
    Ctrl-C does); returns how many calls had started at the cancel."""

    async def go() -> int:
        task = asyncio.create_task(run_recipe(recipe, out, RunOptions(backend=backend, **kw)))
        while backend.calls < after_calls:
            assert not task.done(), "the run ended before it could be cancelled"
            await asyncio.sleep(0.001)
        started = backend.calls
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return started

    return asyncio.run(go())


def test_an_interrupted_rerun_leaves_the_finished_runs_outputs(corpus: Path,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run(make_recipe(corpus), out, ScriptedTestBackend(responder))
    before = files(out)
    assert first["records"] > 0 and all(before.values())
    # A changed answer step must be recomputed: cancel it partway through.
    slow = ScriptedTestBackend(responder, latency_s=0.01)
    run_cancelled(make_recipe(corpus, answer_tokens=32), out, slow, after_calls=3,
                  concurrency=1, batch_size=2)
    assert files(out) == before  # was: data.jsonl cut to the rows written before the cancel
    summary = summary_of(out)
    assert summary["status"] == "interrupted" and "interrupted" in summary["error"]
    # The interrupted run's own rows are kept beside, never over, the complete ones.
    partial = (out / "data.jsonl.partial").read_bytes().splitlines()
    assert len(partial) < first["records"]
    assert not (out / ".lock").read_text()  # released


def test_no_request_starts_after_the_run_is_cancelled(corpus: Path, tmp_path: Path) -> None:
    backend = ScriptedTestBackend(responder, latency_s=0.02)
    started = run_cancelled(make_recipe(corpus), tmp_path / "out", backend, after_calls=2,
                            concurrency=2, batch_size=2)
    # Was: the batches still in flight took the slots the cancel freed and sent more.
    assert backend.calls == started
    assert backend.max_in_flight <= 2


def test_status_partial_and_failed_when_items_fail(corpus: Path, tmp_path: Path) -> None:
    # The engine corpus has one empty document: a failed item, the rest succeed.
    partial = run(make_recipe(corpus), tmp_path / "partial", ScriptedTestBackend(responder))
    assert partial["failed"] > 0 and partial["records"] > 0
    assert partial["status"] == "partial"

    def broken(request: Any, seed: Any) -> str:
        raise ValueError(f"model crashed on {last_user_text(request)[:20]}")

    out = tmp_path / "failed"
    failed = run(make_recipe(corpus), out, ScriptedTestBackend(broken))
    assert failed["records"] == 0 and failed["status"] == "failed"  # was "ok"
    # The run finished (no fatal error): its outputs are published, failed.jsonl says why
    # every item failed and data.jsonl is empty.
    assert (out / "data.jsonl").read_text() == ""
    assert not list(out.glob("*.partial"))
    rows = (out / "failed.jsonl").read_text().splitlines()
    assert len(rows) == failed["failed"] and "model crashed" in rows[-1]


def test_a_fatal_error_is_status_failed_with_the_error(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(make_recipe(corpus), out, ScriptedTestBackend(responder))
    before = files(out)
    (corpus / "answer.jinja").unlink()  # the template is missing at the rerun
    with pytest.raises(SynthloomError, match="answer.jinja"):
        run(make_recipe(corpus), out, ScriptedTestBackend(responder))
    summary = summary_of(out)
    assert summary["status"] == "failed" and "answer.jinja" in summary["error"]  # was "ok"
    assert files(out) == before


def test_a_bad_cache_row_is_a_miss_recomputed_and_overwritten(corpus: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run(make_recipe(corpus), out, ScriptedTestBackend(responder))
    with sqlite3.connect(out / "run.db") as db:
        key = db.execute("SELECT key FROM item_cache WHERE step = 'answer' LIMIT 1").fetchone()[0]
        db.execute("UPDATE item_cache SET value = '{\"outputs\": [' WHERE key = ?", (key,))
        db.execute("UPDATE llm_cache SET value = '[1, 2'")  # every call's row, too
    backend = ScriptedTestBackend(responder)
    again = run(make_recipe(corpus), out, backend)  # was: JSONDecodeError, the run aborted
    assert again["status"] == first["status"] and again["records"] == first["records"]
    # The item's row, then its call's row: two misses, one call made again.
    assert again["cache_bad_rows"] == 2 and backend.calls == 1
    with sqlite3.connect(out / "run.db") as db:
        value = db.execute("SELECT value FROM item_cache WHERE key = ?", (key,)).fetchone()[0]
    assert json.loads(value)  # overwritten by the recomputed item


def test_a_damaged_run_db_is_one_error_naming_the_file_and_a_remedy(tmp_path: Path) -> None:
    (tmp_path / "run.db").write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(StoreError) as err:
        RunStore(tmp_path / "run.db")
    message = str(err.value)
    assert str(tmp_path / "run.db") in message and "move it aside" in message


def _finished_then_interrupted(corpus: Path, out: Path) -> None:
    run(make_recipe(corpus), out, ScriptedTestBackend(responder))
    run_cancelled(make_recipe(corpus, answer_tokens=32), out,
                  ScriptedTestBackend(responder, latency_s=0.01), after_calls=2,
                  concurrency=1, batch_size=2)


def test_export_refuses_an_interrupted_run_unless_forced(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _finished_then_interrupted(corpus, out)
    with pytest.raises(SynthloomError, match="'interrupted'.*--force"):
        export(out, tmp_path / "exp", ExportOptions(format="jsonl"))
    forced = export(out, tmp_path / "exp", ExportOptions(format="jsonl", force=True))
    assert forced.rows > 0 and any("interrupted" in w for w in forced.warnings)
    assert any("interrupted" in w for w in report_warnings(out))


def test_export_refuses_while_a_run_holds_the_lock(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    partial = run(make_recipe(corpus), out, ScriptedTestBackend(responder))
    # A partial run exports, with a warning naming its status.
    result = export(out, tmp_path / "exp", ExportOptions(format="jsonl"))
    assert result.rows == partial["records"]
    assert any("'partial'" in w for w in result.warnings)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; from pathlib import Path; "
         "from synthloom.core.runlock import RunLock; RunLock(Path(sys.argv[1])).acquire(); "
         "print('held', flush=True); time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(SynthloomError, match=f"pid {holder.pid}"):
            export(out, tmp_path / "exp2", ExportOptions(format="jsonl"))
        assert any(f"pid {holder.pid}" in w for w in report_warnings(out))
    finally:
        holder.kill()
        holder.wait()
