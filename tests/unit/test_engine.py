"""Engine tests with the ScriptedTestBackend (a test double, no model): accounting, cache,
resume, partial recomputation, failures, drops, process pool, global barriers, budget."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.export.sinks import JsonlSink
from synthloom.methods.generate import Generate, GenerateN
from synthloom.quality.filters import LengthFilter
from synthloom.sources.files import TextFiles
from tests.support.runs import read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text
from tests.support.steps import ExactDedup, UpperInPool

SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(10):
        (docs / f"{i:02d}.txt").write_text(f"Title {i}\n\nBody of document number {i}.")
    (docs / "empty.txt").write_text("   ")
    (tmp_path / "ask.jinja").write_text(
        "{% block system %}sys{% endblock %}{% block user %}Ask about: {{ title }}{% endblock %}"
    )
    (tmp_path / "answer.jinja").write_text("Answer: {{ q }}")
    return tmp_path


def responder(request, seed) -> str:
    text = last_user_text(request)
    if text.startswith("Ask about"):
        # First line only: the client appends schema instructions for this backend.
        title = text.split(":", 1)[1].splitlines()[0].strip()
        # Document 3 gets a one-word question: the length filter drops it.
        return json.dumps({"q": "Why?" if title == "Title 3" else f"What is in {title}?"})
    return f"<think>pondering</think>It is described in {text[8:]}"


def make_recipe(corpus: Path, answer_tokens: int = 64) -> Recipe:
    return Recipe(
        name="unit",
        sources=[TextFiles(name="docs", path=str(corpus / "docs"))],
        steps=[
            Generate(name="ask", template=str(corpus / "ask.jinja"), schema=SCHEMA),
            LengthFilter(name="ask_ok", column="q", min_words=2),
            Generate(
                name="answer",
                template=str(corpus / "answer.jinja"),
                output="a",
                max_tokens=answer_tokens,
            ),
        ],
        sinks=[JsonlSink(path="data.jsonl")],
    )


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend, **kw):
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, **kw))).to_json()


def step(summary: dict, name: str) -> dict:
    return next(s for s in summary["steps"] if s["name"] == name)


def test_accounting_closes_and_files_are_written(corpus: Path, tmp_path: Path) -> None:
    backend = ScriptedTestBackend(responder)
    summary = run(make_recipe(corpus), tmp_path / "out", backend)
    docs, ask, ask_ok, answer = (step(summary, n) for n in ("docs", "ask", "ask_ok", "answer"))
    assert docs == {**docs, "in": 11, "out": 10, "failed": 1}  # the empty file
    for s in (ask, ask_ok, answer):
        assert s["in"] == s["out"] + s["failed"] + s["dropped"]
    assert ask_ok["dropped"] == 1 and answer["in"] == 9
    assert summary["records"] == 9 and summary["llm_calls"] == backend.calls == 19
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert len(records) == 9
    meta = records[0]["_meta"]
    assert set(meta) >= {
        "id",
        "parents",
        "source",
        "step",
        "model",
        "template_hash",
        "sample_index",
        "usage",
    }
    assert meta["step"] == "answer" and meta["model"] == "scripted:scripted"
    assert records[0]["a_reasoning"] == "pondering"
    assert records[0]["a"].startswith("It is described in")
    failed = read_jsonl(tmp_path / "out" / "failed.jsonl")
    assert failed[0]["error_class"] == "EmptyDocument" and "empty.txt" in failed[0]["message"]
    dropped = read_jsonl(tmp_path / "out" / "dropped.jsonl")
    assert dropped[0]["step"] == "ask_ok" and "words" in dropped[0]["reason"]
    assert dropped[0]["record"]["q"] == "Why?"


def test_rerun_makes_no_calls_and_gives_the_same_ids(corpus: Path, tmp_path: Path) -> None:
    first = ScriptedTestBackend(responder)
    run(make_recipe(corpus), tmp_path / "out", first)
    ids = [r["_meta"]["id"] for r in read_jsonl(tmp_path / "out" / "data.jsonl")]
    again = ScriptedTestBackend(responder)
    summary = run(make_recipe(corpus), tmp_path / "out", again)
    assert again.calls == 0 and summary["llm_calls"] == 0
    assert summary["prompt_tokens"] == 0 and summary["cache_hits"] > 0
    assert [r["_meta"]["id"] for r in read_jsonl(tmp_path / "out" / "data.jsonl")] == ids


def test_changing_one_step_recomputes_only_that_step(corpus: Path, tmp_path: Path) -> None:
    run(make_recipe(corpus), tmp_path / "out", ScriptedTestBackend(responder))
    backend = ScriptedTestBackend(responder)
    summary = run(make_recipe(corpus, answer_tokens=99), tmp_path / "out", backend)
    assert step(summary, "ask")["cached"] == 10 and step(summary, "ask")["llm_calls"] == 0
    assert step(summary, "answer")["cached"] == 0 and step(summary, "answer")["llm_calls"] == 9
    assert all(not p.startswith("Ask about") for p in backend.prompts)


def test_failed_items_are_counted_and_retried_on_rerun(corpus: Path, tmp_path: Path) -> None:
    def flaky(request, seed):
        if "Title 5\n" in last_user_text(request):
            raise RuntimeError("scripted failure for Title 5")
        return responder(request, seed)

    summary = run(make_recipe(corpus), tmp_path / "out", ScriptedTestBackend(flaky))
    ask = step(summary, "ask")
    assert ask["failed"] == 1 and ask["in"] == ask["out"] + ask["failed"] + ask["dropped"]
    failed = read_jsonl(tmp_path / "out" / "failed.jsonl")
    assert any(f["step"] == "ask" and "Title 5" in f["message"] for f in failed)
    healed = ScriptedTestBackend(responder)
    summary = run(make_recipe(corpus), tmp_path / "out", healed)
    assert step(summary, "ask")["llm_calls"] == 1 and step(summary, "ask")["failed"] == 0
    assert summary["records"] == 9


def test_structured_output_repair_and_failure(corpus: Path, tmp_path: Path) -> None:
    def sloppy(request, seed):
        text = last_user_text(request)
        if "Title 1\n" in text and "Ask about" in text:
            return "Sure! ```json\n{\n  'q': 'What is in Title 1?',\n}\n```"  # repaired
        if "Title 2\n" in text:
            return '{"question": "wrong key"}'  # never valid: re-asked, then failed
        return responder(request, seed)

    backend = ScriptedTestBackend(sloppy)
    summary = run(make_recipe(corpus), tmp_path / "out", backend)
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert any(r["q"] == "What is in Title 1?" for r in records)
    failed = [f for f in read_jsonl(tmp_path / "out" / "failed.jsonl") if f["step"] == "ask"]
    assert [f["error_class"] for f in failed] == ["StructuredOutputError"]
    assert "'q' is a required property" in failed[0]["message"]
    assert summary["llm"]["structured_repairs"] == 2  # two re-asks for Title 2
    assert step(summary, "ask")["llm_calls"] == 12  # 10 + 2 re-asks, all counted


def test_expand_samples_process_pool_and_global_barrier(corpus: Path, tmp_path: Path) -> None:
    (corpus / "docs" / "10.txt").write_text("Title 1\n\nBody of document number 1.")  # same title
    recipe = Recipe(
        name="shapes",
        sources=[TextFiles(name="docs", path=str(corpus / "docs"))],
        steps=[
            UpperInPool(name="upper", column="title"),
            GenerateN(name="samples", template=str(corpus / "ask.jinja"), schema=SCHEMA, n=3),
            ExactDedup(name="dedup", input="upper"),
        ],
        sinks=[
            JsonlSink(path="samples.jsonl", **{"from": "samples"}),
            JsonlSink(path="dedup.jsonl", **{"from": "dedup"}),
        ],
    )
    backend = ScriptedTestBackend(lambda r, s: json.dumps({"q": f"seed {s}"}))
    summary = run(recipe, tmp_path / "out", backend)
    upper = step(summary, "upper")
    assert upper["in"] == upper["out"] == 11
    pids = {r["pid"] for r in read_jsonl(tmp_path / "out" / "samples.jsonl")}
    assert pids and all(pid != __import__("os").getpid() for pid in pids)  # ran in the pool
    samples = step(summary, "samples")
    assert samples["in"] == 11 and samples["out"] == 33 and samples["expanded"] == 11
    rows = read_jsonl(tmp_path / "out" / "samples.jsonl")
    assert sorted({r["_meta"]["sample_index"] for r in rows}) == [0, 1, 2]
    assert len({r["q"] for r in rows[:3]}) == 3  # distinct seeds per sample
    dedup = step(summary, "dedup")
    assert dedup["in"] == 11 and dedup["dropped"] == 1 and dedup["kept"] == 10
    dropped = [d for d in read_jsonl(tmp_path / "out" / "dropped.jsonl") if d["step"] == "dedup"]
    assert dropped[0]["reason"].startswith("duplicate of ")
    # The global step's result is cached too: a rerun replays it.
    summary = run(recipe, tmp_path / "out", ScriptedTestBackend())
    assert step(summary, "dedup")["cached"] == 11 and summary["llm_calls"] == 0


def test_budget_stops_cleanly_and_resume_finishes(corpus: Path, tmp_path: Path) -> None:
    first = ScriptedTestBackend(responder)
    summary = run(
        make_recipe(corpus), tmp_path / "out", first, budget_tokens=40, concurrency=1, batch_size=2
    )
    assert summary["status"] == "stopped" and summary["stopped_reason"] == "budget_exhausted"
    assert summary["records"] < 9
    second = ScriptedTestBackend(responder)
    summary = run(make_recipe(corpus), tmp_path / "out", second)
    # "partial": the corpus's empty.txt is a failed source item by design.
    assert summary["status"] == "partial" and summary["records"] == 9
    # Every call finished before the stop was cached: none is repeated, none is missing.
    assert not set(first.prompts) & set(second.prompts)
    assert first.calls + second.calls == 19


def test_limit_and_concurrency(corpus: Path, tmp_path: Path) -> None:
    backend = ScriptedTestBackend(responder, latency_s=0.02)
    summary = run(make_recipe(corpus), tmp_path / "out", backend, limit=4, concurrency=3)
    assert step(summary, "docs")["out"] == 4
    assert backend.max_in_flight == 3
