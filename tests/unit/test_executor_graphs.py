"""The local executor finishes any recipe graph (ScriptedTestBackend, a test double).

Random graphs of sources, map (LLM and sync), filter, expand and global steps with ``context:``
edges anywhere (a node streamed and also used as context, several consumers at different
speeds, context from a global step) run on 1, one batch, 3 x batch + 1 and 20 x batch inputs.
Each must finish within a timeout, close every step's accounting, and write what reached the
sinks. Before the executor drained inboxes while waiting for context, the flagship's graph
(corpus -> synthesize, corpus as context of retrieve) hung above three batches.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.core.registry import register_step
from tests.support.runs import assert_closed, read_jsonl, step
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text
from tests.support.steps import CountContext

register_step(CountContext)

BATCH = 4
SIZES = [1, BATCH, 3 * BATCH + 1, 20 * BATCH]
GRAPHS = 12


def answer(request: Any, seed: int | None) -> str:
    """Words of the prompt, so the length filter and exact dedup have something to decide."""
    words = last_user_text(request).split()
    return " ".join(words[: 1 + (seed or 0) % 4]) or "empty"


def random_steps(rng: random.Random) -> tuple[list[dict], list[dict]]:
    """A random DAG in recipe form: (sources, steps). Every node writes a ``text`` column."""
    sources = [{"name": f"src{i}", "type": "jsonl", "path": f"SRC{i}"}
               for i in range(rng.randint(1, 2))]
    names = [s["name"] for s in sources]
    steps: list[dict] = []
    for i in range(rng.randint(2, 7)):
        kind = rng.choice(["llm", "sync", "filter", "expand", "global", "llm"])
        spec: dict[str, Any] = {"name": f"s{i}_{kind}", "input": rng.choice(names)}
        if kind == "llm":
            spec |= {"type": "generate", "template": "echo.jinja", "output": "text"}
        elif kind == "sync":
            spec |= {"type": "test_count_context"}
        elif kind == "filter":
            spec |= {"type": "filter_length", "column": "text", "min_words": 2}
        elif kind == "expand":
            spec |= {"type": "generate_n", "template": "echo.jinja", "output": "text", "n": 2}
        else:
            spec |= {"type": "dedup_exact", "column": "text"}
        if rng.random() < 0.6:  # context from any earlier node, its own input included
            spec["context"] = sorted(set(rng.sample(names, k=min(len(names),
                                                                rng.randint(1, 2)))))
        steps.append(spec)
        names.append(spec["name"])
    return sources, steps


def build(tmp_path: Path, graph: int, n: int) -> tuple[Recipe, list[str]]:
    rng = random.Random(graph)
    sources, steps = random_steps(rng)
    for i, source in enumerate(sources):
        path = tmp_path / f"src{i}.jsonl"
        path.write_text("".join(json.dumps({"text": f"row {j} of source {i} " * (1 + j % 3)})
                                + "\n" for j in range(n)))
        source["path"] = str(path)
    (tmp_path / "echo.jinja").write_text("{{ text }}")
    # A sink on every leaf, and one on a node that is also a consumer's input.
    used = {s["input"] for s in steps}
    leaves = [s["name"] for s in steps if s["name"] not in used]
    sinks = [{"type": "jsonl", "path": f"{name}.jsonl", "from": name} for name in leaves]
    raw = {"name": f"graph{graph}", "seed": graph, "sources": sources, "steps": steps,
           "sinks": sinks}
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps(raw))
    return Recipe.load(path), leaves


@pytest.mark.parametrize("graph", range(GRAPHS))
def test_random_graphs_finish_and_close_their_accounting(tmp_path: Path, graph: int) -> None:
    for n in SIZES:
        out = tmp_path / f"n{n}"
        out.mkdir()
        recipe, leaves = build(out, graph, n)
        run = run_recipe(recipe, out / "run", RunOptions(
            backend=ScriptedTestBackend(answer), batch_size=BATCH, concurrency=4))
        # A deadlock shows as this timeout, not as a hung suite.
        summary = asyncio.run(asyncio.wait_for(run, timeout=60)).to_json()
        assert summary["status"] == "ok", (graph, n, summary)
        assert_closed(summary)
        for leaf in leaves:
            rows = read_jsonl(out / "run" / f"{leaf}.jsonl")
            s = step(summary, leaf)
            assert len(rows) == s["out"], (graph, n, leaf)
        for source in (s for s in summary["steps"] if s["kind"] == "source"):
            assert source["in"] == n, (graph, n, source)


FLAGSHIP_SHAPE = """
name: flagship-shape
sources:
  - {name: seeds, type: jsonl, path: SEEDS}
  - {name: corpus, type: jsonl, path: CORPUS}
steps:
  - {name: intent, type: generate, template: echo.jinja, output: text, input: seeds}
  - {name: retrieve, type: test_count_context, input: intent, context: [corpus]}
  - {name: attribute, type: generate, template: echo.jinja, output: text}
  - {name: synthesize, type: test_count_context, input: corpus, context: [attribute]}
  - {name: judged, type: filter_length, column: text, min_words: 2}
sinks:
  - {type: jsonl, path: data.jsonl, from: judged}
  - {type: jsonl, path: demos.jsonl, from: attribute}
"""


@pytest.mark.parametrize("documents", [97, 20 * BATCH * 8 + 1])
def test_the_flagship_shape_finishes_above_three_batches(tmp_path: Path, documents: int
                                                        ) -> None:
    """The graph that hung at 97 documents: the corpus streams into ``synthesize`` and is the
    context of ``retrieve``, whose descendants are ``synthesize``'s context."""
    seeds, corpus = tmp_path / "seeds.jsonl", tmp_path / "corpus.jsonl"
    seeds.write_text("".join(json.dumps({"text": f"seed {i} words"}) + "\n" for i in range(7)))
    corpus.write_text("".join(json.dumps({"text": f"document {i} body"}) + "\n"
                              for i in range(documents)))
    (tmp_path / "echo.jinja").write_text("{{ text }}")
    path = tmp_path / "recipe.yaml"
    path.write_text(FLAGSHIP_SHAPE.replace("SEEDS", str(seeds)).replace("CORPUS", str(corpus)))
    run = run_recipe(Recipe.load(path), tmp_path / "run", RunOptions(
        backend=ScriptedTestBackend(answer), batch_size=32))
    summary = asyncio.run(asyncio.wait_for(run, timeout=60)).to_json()
    assert_closed(summary)
    synthesized = step(summary, "synthesize")
    assert synthesized["in"] == documents and synthesized["out"] == documents
    rows = read_jsonl(tmp_path / "run" / "data.jsonl")
    # Every synthesis saw the whole demo pool (7 attributed seeds), none a partial one.
    assert {r["context_sizes"]["attribute"] for r in rows} == {7}
