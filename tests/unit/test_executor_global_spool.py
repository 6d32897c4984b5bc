"""A global step's input is spooled on disk in the local executor, never held as a list.

The flagship's ``topics`` barrier held every synthesized record in a list (~7 KB a document:
1.14 -> 1.85 GB at 100k). The barrier now appends incoming batches to an anonymous spool file
(core/spool.py, as the Ray driver does), gathers the cache key as they arrive, and hands the
step a read-only sequence parsed on access. Held here: the step gets that sequence; records
come out identical and in order; the cache key is the one the list-based barrier wrote (a run
made before resumes from its cache); nothing is left in the run folder.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import synthloom.core.batch as batch_module
from synthloom.api import RunOptions, run_recipe
from synthloom.core.batch import GlobalKey
from synthloom.core.context import RunContext
from synthloom.core.fingerprint import stable_hash
from synthloom.core.recipe import Recipe
from synthloom.core.records import ItemResult, make_record, rid
from synthloom.core.spool import SpooledRecords, SpoolWriter
from synthloom.core.store import RunStore
from synthloom.export.sinks import JsonlSink
from synthloom.methods.generate import Generate
from synthloom.quality.dedup import ExactDedup
from synthloom.sources.files import TabularRows
from tests.support.runs import read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

ROWS = 150  # ~19 batches of 8: the spool is written and read back in many pieces


class SpyDedup(ExactDedup):
    """``dedup_exact`` (same type name, so the same fingerprint) noting what it was given."""

    seen: list[Any] = []

    async def process_all(self, records: Any, ctx: RunContext, **kw: Any) -> list[ItemResult]:
        SpyDedup.seen.append((type(records), len(records)))
        return await super().process_all(records, ctx, **kw)


def answer(request: Any, seed: int | None) -> str:
    row = int(last_user_text(request).split("row ", 1)[1].split()[0])
    return f"Question é {row % 100}"  # rows i and i + 100 collide: dedup drops the later


def recipe(tmp_path: Path) -> Recipe:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"row": i}) + "\n" for i in range(ROWS)))
    template = tmp_path / "ask.jinja"
    template.write_text("Ask about row {{ row }} please")
    return Recipe(
        name="global-spool",
        sources=[TabularRows(name="rows", path=str(rows))],
        steps=[Generate(name="ask", template=str(template), output="question"),
               SpyDedup(name="unique", column="question")],
        sinks=[JsonlSink(path="data.jsonl"), JsonlSink(path="asked.jsonl", **{"from": "ask"})],
    )


def run(tmp_path: Path, out: Path) -> tuple[dict, ScriptedTestBackend]:
    backend = ScriptedTestBackend(answer)
    options = RunOptions(backend=backend, batch_size=8, concurrency=8)
    return asyncio.run(run_recipe(recipe(tmp_path), out, options)).to_json(), backend


def test_the_barrier_gets_a_spool_and_keeps_the_list_barriers_cache_key(tmp_path: Path) -> None:
    SpyDedup.seen = []
    out = tmp_path / "run"
    first, _ = run(tmp_path, out)
    assert first["status"] == "ok"
    assert SpyDedup.seen == [(SpooledRecords, ROWS)]  # not a list
    asked = read_jsonl(out / "asked.jsonl")
    kept = read_jsonl(out / "data.jsonl")
    # The barrier's records, identical and in input order (keep-first: rows 0-99).
    assert kept == asked[:100]
    assert [r["row"] for r in kept] == list(range(100))
    # The cache key is the list-based barrier's, computed here from the records it saw.
    step = recipe(tmp_path).steps[-1]
    step.setup(RunContext(run_dir=out))
    fingerprint = step.fingerprint(RunContext(run_dir=out))
    old_key = stable_hash("global", fingerprint, "",
                          [step.item_key(fingerprint, r, "") for r in asked])
    store = RunStore(out / "run.db")
    try:
        assert old_key in store.get_items([old_key])
    finally:
        store.close()
    assert not list(out.glob(".spool*"))  # anonymous spools leave nothing behind

    SpyDedup.seen = []
    again, backend = run(tmp_path, out)
    unique = next(s for s in again["steps"] if s["name"] == "unique")
    assert backend.calls == 0 and unique["cached"] == ROWS  # the global key hit
    assert read_jsonl(out / "data.jsonl") == kept


def test_the_gathered_key_equals_the_one_computed_from_a_list(monkeypatch) -> None:
    monkeypatch.setattr(batch_module, "GLOBAL_KEY_BATCH", 7)  # several chunks
    step = ExactDedup(name="d", column="text")
    for n in (0, 1, 7, 8, 50):
        records = [make_record({"text": f"t{i} \u00e9\n\"q\""}, step="s") for i in range(n)]
        for context_hash in ("", stable_hash("context", [rid(r) for r in records])):
            want = stable_hash("global", "fp", context_hash,
                               [step.item_key("fp", r, "") for r in records])
            keys = GlobalKey(step, "fp")
            keys.add(records[:3])
            keys.add(records[3:])
            assert len(keys) == n and keys.key(context_hash) == want


def test_an_anonymous_spool_reads_back_as_written(tmp_path: Path) -> None:
    records = [make_record({"text": f"r{i}", "n": i}, step="s") for i in range(2_500)]
    writer = SpoolWriter(folder=tmp_path, keep_batches=True)
    sizes = [3, 0, 1_000, 97, 1_400]
    at = 0
    for size in sizes:
        writer.write(records[at:at + size])
        at += size
    assert not list(tmp_path.iterdir())  # no name in the folder: removed if the process dies
    seq = writer.close()
    assert [len(b) for b in seq.batches()] == [s for s in sizes if s]  # as written
    assert [r for b in seq.batches(64) for r in b] == records == list(seq)
    assert seq[1_003] == records[1_003] and seq[-1] == records[-1]
    assert seq[10:2_010] == records[10:2_010] and seq[5:20:3] == records[5:20:3]
    found: list[bool] = []  # threads share it (reads are a seek and a read under a lock)
    workers = [threading.Thread(target=lambda k=k: found.append(
        all(seq[i] == records[i] for i in range(k, 2_500, 4)))) for k in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert found == [True] * 4
    with pytest.raises(TypeError):
        pickle.dumps(seq)  # its data is an open file of this process
    seq.close()
    with pytest.raises(ValueError):
        seq[0]


def test_a_named_spool_pickles_by_path(tmp_path: Path) -> None:
    records = [make_record({"text": f"r{i}"}, step="s") for i in range(10)]
    writer = SpoolWriter(tmp_path / "s.jsonl")
    writer.write(records)
    seq = writer.close()
    assert seq[4] == records[4]  # its file is open now
    copy = pickle.loads(pickle.dumps(seq))
    assert list(copy) == records and copy[9] == records[9]
    seq.close()
    copy.close()


def test_large_results_are_cached_in_parts_read_back_lazily(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(batch_module, "RESULTS_PER_ROW", 16)  # 150 results: 10 parts
    out = tmp_path / "run"
    first, _ = run(tmp_path, out)
    kept = read_jsonl(out / "data.jsonl")
    assert first["status"] == "ok" and len(kept) == 100

    def rows() -> dict[str, dict]:
        with sqlite3.connect(out / "run.db") as db:
            found = db.execute("SELECT key, value FROM item_cache WHERE step = 'unique'")
            return {key: json.loads(value) for key, value in found}

    stored = rows()
    heads = [v for v in stored.values() if "parts" in v]
    assert heads == [{"parts": 10, "per_row": 16, "count": ROWS}] and len(stored) == 11

    again, backend = run(tmp_path, out)
    unique = next(s for s in again["steps"] if s["name"] == "unique")
    assert backend.calls == 0 and unique["cached"] == ROWS
    assert read_jsonl(out / "data.jsonl") == kept

    # A part lost (a damaged store): a miss, computed again, not a half-cached barrier.
    lost = next(k for k, v in stored.items() if "results" in v)
    with sqlite3.connect(out / "run.db") as db:
        db.execute("DELETE FROM item_cache WHERE key = ?", (lost,))
    third, _ = run(tmp_path, out)
    unique = next(s for s in third["steps"] if s["name"] == "unique")
    assert unique["cached"] == 0 and read_jsonl(out / "data.jsonl") == kept
    assert len(rows()) == 11
