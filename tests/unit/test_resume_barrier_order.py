"""A resumed run equals an uninterrupted one where a global step keeps the first of a group.

After a partial run, a resume answers most items from the cache at once and computes the rest
(here: items whose call failed the first time). If a streaming node emitted its batches as they
finished, the cached ones would reach the barrier first and ``dedup_exact`` (keep the first in
input order) would keep other records than an uninterrupted run. The local executor emits every
node's batches in input order, cached or not: this holds it to that (issue 28 item 5).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.export.sinks import JsonlSink
from synthloom.methods.generate import Generate
from synthloom.quality.dedup import ExactDedup
from synthloom.sources.files import TabularRows
from tests.support.runs import read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

ROWS = 24
TOPICS = 4  # rows i and i + 4, i + 8, ... ask the same question: a group for keep-first
#: Rows whose call fails in the first run: the first of every group, so the resume computes
#: each group's earliest member while its later members come from the cache.
FAILING = set(range(TOPICS))


def answer(request, seed) -> str:
    return "A question about " + last_user_text(request).split("topic ", 1)[1].split()[0]


def flaky(request, seed) -> str:
    if int(last_user_text(request).split("row ", 1)[1].split()[0]) in FAILING:
        raise RuntimeError("scripted outage")
    return answer(request, seed)


def recipe(tmp_path: Path) -> Recipe:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"row": i, "topic": f"t{i % TOPICS}"}) + "\n"
                            for i in range(ROWS)))
    template = tmp_path / "ask.jinja"
    template.write_text("Ask about row {{ row }} and topic {{ topic }} please")
    return Recipe(
        name="barrier-order",
        sources=[TabularRows(name="rows", path=str(rows))],
        steps=[Generate(name="ask", template=str(template), output="question"),
               ExactDedup(name="unique", column="question")],
        sinks=[JsonlSink(path="data.jsonl")],
    )


def run(tmp_path: Path, out: Path, backend: ScriptedTestBackend) -> dict:
    # Two rows a batch, each call slow: the computed batches finish after the cached ones.
    options = RunOptions(backend=backend, batch_size=2, concurrency=8)
    return asyncio.run(run_recipe(recipe(tmp_path), out, options)).to_json()


def kept(out: Path) -> list[tuple[int, str]]:
    return [(r["row"], r["_meta"]["id"]) for r in read_jsonl(out / "data.jsonl")]


def test_a_resume_keeps_the_same_first_of_each_group_as_an_uninterrupted_run(
        tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    run(tmp_path, whole, ScriptedTestBackend(answer, latency_s=0.05))
    assert [row for row, _ in kept(whole)] == list(range(TOPICS))  # the first of each group

    resumed = tmp_path / "resumed"
    first = run(tmp_path, resumed, ScriptedTestBackend(flaky, latency_s=0.05))
    ask = next(s for s in first["steps"] if s["name"] == "ask")
    assert ask["failed"] == len(FAILING)  # the groups' first rows failed: not cached
    again = ScriptedTestBackend(answer, latency_s=0.05)
    second = run(tmp_path, resumed, again)
    assert again.calls == len(FAILING)  # only they are computed; the rest is the cache's
    assert second["status"] == "ok"
    assert kept(resumed) == kept(whole)
