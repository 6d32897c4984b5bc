"""Small blast radius (issue 28 item 2), with the scripted test backend (a test double): one
more seed, or a retried attribution, re-synthesizes a few documents, not all of them; one more
document re-asks only its own IN2 questions. Before consistent hashing both reran everything
(every item's key hashed the whole context pool)."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

from synthloom.api import RunOptions, run_recipe
from synthloom.core.context import ItemContext, RunContext
from synthloom.core.recipe import Recipe
from synthloom.core.records import make_record
from synthloom.llm.client import LLMClient
from synthloom.llm.types import LLMRequest, PermanentLLMError
from synthloom.methods.longcontext.in2 import IN2Context
from synthloom.methods.synthquestions.synthesize import SynthesizeInstruction
from tests.support.runs import read_jsonl, run_scripted, step
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text
from tests.unit.test_revise_longcontext import make_corpus, qa_responder
from tests.unit.test_synthquestions_steps import scripted

NOUNS = ("garden", "bicycle", "kettle", "ledger", "violin", "harbour", "glacier", "compiler",
         "tractor", "sourdough", "lantern", "mortgage", "vaccine", "telescope", "quilt",
         "furnace", "orchard", "battery", "spreadsheet", "canoe", "chimney", "saddle",
         "thermostat", "router", "greenhouse", "piano", "beehive", "drone", "pension", "kiln")
VERBS = ("repair", "budget for", "insulate", "calibrate", "clean", "schedule", "insure",
         "paint", "migrate", "photograph", "winterise", "tune", "document", "ship")
ADJS = ("leaky", "second-hand", "noisy", "rented", "antique", "solar", "shared", "frozen",
        "rusty", "digital", "coastal", "heavy")

SEEDS = 400  # demos in the pool: the blast radius is about max_demos (10) / pool
DOCUMENTS = 1000


def seed_rows(n: int) -> list[dict[str, str]]:
    rng = random.Random(7)
    rows = []
    for i in range(n):
        a, b, c = rng.sample(NOUNS, 3)
        rows.append({"instruction": (
            f"How should I {rng.choice(VERBS)} the {rng.choice(ADJS)} {a} next to our {b} "
            f"before order number {1000 + i} arrives, given that the {c} is "
            f"{rng.choice(ADJS)}?")})
    return rows


def write_inputs(folder: Path, seeds: int) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(3)
    corpus = folder / "corpus.jsonl"
    with corpus.open("w") as f:
        for i in range(DOCUMENTS):
            words = " ".join(rng.choice(NOUNS + ADJS) for _ in range(30))
            f.write(json.dumps({"text": f"Notes {i} on the {rng.choice(NOUNS)}\n{words}."}) + "\n")
    (folder / "seeds.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in seed_rows(seeds)))
    return {"corpus": str(corpus), "seeds": str(folder / "seeds.jsonl"),
            "embedder": "hashing:256", "target": "10", "dpo_samples": "2"}


def run(overrides: dict[str, str], out: Path, backend: ScriptedTestBackend) -> dict[str, Any]:
    recipe = Recipe.load("synthquestions", overrides=overrides)
    options = RunOptions(backend=backend, batch_size=64, concurrency=64)
    return asyncio.run(run_recipe(recipe, out, options)).to_json()


def test_a_retried_attribution_and_one_more_seed_resynthesize_few_documents(
        tmp_path: Path) -> None:
    overrides = write_inputs(tmp_path / "in", SEEDS)
    unlucky = "order number 1017 arrives"  # this seed's attribution fails on the first run

    def flaky(request: LLMRequest, seed: int | None) -> str:
        text = last_user_text(request)
        if "Imagine the user was reading" in text and unlucky in text:
            raise PermanentLLMError("scripted: the server refused this one request")
        return scripted(request, seed)

    first = run(overrides, tmp_path / "out", ScriptedTestBackend(flaky))
    assert step(first, "attribute")["failed"] == 1
    assert step(first, "synthesize")["llm_calls"] >= 0.95 * DOCUMENTS
    demos_before = step(first, "attribute")["out"]
    assert demos_before >= 0.9 * SEEDS

    # B: the rerun retries the failed attribution (failures are not cached): one more demo.
    second = run(overrides, tmp_path / "out", ScriptedTestBackend(scripted))
    attribute = step(second, "attribute")
    assert attribute["failed"] == 0 and attribute["llm_calls"] == 1  # only the retry
    assert attribute["out"] == demos_before + 1
    again = step(second, "synthesize")
    assert 0 < again["llm_calls"] <= 0.05 * DOCUMENTS, again

    # A: one more seed in the same file.
    write_inputs(tmp_path / "in", SEEDS + 1)
    third = run(overrides, tmp_path / "out", ScriptedTestBackend(scripted))
    assert step(third, "attribute")["out"] == demos_before + 2
    again = step(third, "synthesize")
    assert 0 < again["llm_calls"] <= 0.05 * DOCUMENTS, again
    assert again["cached"] >= 0.95 * DOCUMENTS


def test_demo_choice_looks_at_a_window_of_the_ring(tmp_path: Path) -> None:
    step_ = SynthesizeInstruction(name="s", demos="d", context=["d"], max_demos=4)
    step_.setup(RunContext(run_dir=tmp_path))
    demos = [make_record({"instruction": f"question {i}", "document": f"doc {i}",
                          "scene": "s", "query_compositions": {}, "document_id": f"D{i % 7}"},
                         step="d") for i in range(5000)]
    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return len(text.split())

    chosen, _ = step_.choose_demos(demos, "anchor", count, exclude_document="D3")
    assert len(chosen) == 4 and all(demos[i]["document_id"] != "D3" for i in chosen)
    assert len(counted) <= 4 * 4 + 8  # O(max_demos) candidates, not the pool
    # One more demo moves the choice of few anchors: those whose window covers it.
    grown = [*demos, make_record({"instruction": "new", "document": "new", "scene": "s",
                                  "query_compositions": {}, "document_id": "D9"}, step="d")]
    # (all anchors on one pool, then on the other: the step keeps the ring of one pool)
    before = [step_.choose_demos(demos, f"a{i}", len)[0] for i in range(500)]
    after = [step_.choose_demos(grown, f"a{i}", len)[0] for i in range(500)]
    moved = sum(b != a for b, a in zip(before, after, strict=True))
    assert moved <= 0.01 * 500
    # Content, not record ids, places a demo: the same demos under new ids choose the same.
    renamed = [make_record({k: v for k, v in d.items() if k != "_meta"}, step="other")
               for d in demos]
    assert [demos[i]["instruction"] for i in step_.choose_demos(demos, "x", len)[0]] == \
        [renamed[i]["instruction"] for i in step_.choose_demos(renamed, "x", len)[0]]


def test_process_shows_the_demos_its_key_covers(tmp_path: Path) -> None:
    demos = [make_record({"instruction": f"question {i}", "document": "text " * (i % 50),
                          "scene": "s", "query_compositions": {}, "document_id": f"D{i % 9}"},
                         step="attribute") for i in range(300)]
    step_ = SynthesizeInstruction(name="s", demos="d", context=["d"], max_demos=6)
    run_ctx = RunContext(run_dir=tmp_path, llm=LLMClient(ScriptedTestBackend(scripted)),
                         context={"d": demos})
    step_.setup(run_ctx)
    targets = [make_record({"text": f"Notes {i}\nsome words"}, step="corpus") for i in range(20)]
    parts = step_.context_dependence(targets, run_ctx)
    assert parts is not None and len({str(p) for p in parts}) > 10
    key_of = dict(zip((d["_meta"]["id"] for d in demos), step_.ring(demos).keys, strict=True))
    for i, (target, part) in enumerate(zip(targets, parts, strict=True)):
        # Any item seed (it derives from the key): the demos are the ones the key covers.
        ictx = ItemContext(run=run_ctx, item_key=f"k{i}", seed=1000 + i)
        result = asyncio.run(step_.process(target, ictx))
        assert [key_of[x] for x in result.meta["demo_ids"]] == part


# --- long-context (IN2) ------------------------------------------------------------------------


def item(record: dict[str, Any]) -> tuple[str, ...]:
    return (record["kind"], *sorted(n["chunk_id"] for n in record["needles"]))


def test_one_more_document_reasks_only_its_own_questions(tmp_path: Path) -> None:
    docs = 150
    corpus = make_corpus(tmp_path / "corpus", [3] * docs)
    params = {"segment_tokens": "64", "needles_per_doc": "1", "context_tokens": "400",
              "corpus": str(corpus)}
    first = run_scripted(Recipe.load("long-context", params), tmp_path / "out",
                         ScriptedTestBackend(qa_responder))
    assert step(first, "qa")["llm_calls"] == 2 * docs
    contexts = {item(r): r["context"] for r in read_jsonl(tmp_path / "out" / "data.jsonl")}
    make_corpus(tmp_path / "corpus", [3] * (docs + 1))  # one more document
    second = run_scripted(Recipe.load("long-context", params), tmp_path / "out",
                          ScriptedTestBackend(qa_responder))
    assert step(second, "qa")["llm_calls"] == 2  # the new document's single + multi
    after = {item(r): r["context"] for r in read_jsonl(tmp_path / "out" / "data.jsonl")}
    assert len(contexts) == 2 * docs and len(after) == 2 * docs + 2
    changed = sum(after[q] != c for q, c in contexts.items())
    assert changed <= 0.05 * len(contexts)  # fillers: a window of the ring, not a shuffle


def test_filler_walk_looks_at_a_window_of_the_pool(tmp_path: Path) -> None:
    step_ = IN2Context(name="c", context=["segments"], target_tokens=400, unit="chars")
    step_.setup(RunContext(run_dir=tmp_path))
    pool = [{"chunk_id": f"c{i}", "doc_id": f"d{i // 3}", "chunk_index": i % 3,
             "text": f"segment {i} " + "x" * 80} for i in range(20_000)]
    needle = {"chunk_id": "c5", "doc_id": "d1", "chunk_index": 2, "text": pool[5]["text"]}
    fillers, looked, _ = step_.fillers({"question": "q", "kind": "single",
                                        "segments": [needle]}, pool, lambda t: len(t), 0)
    assert fillers and looked <= 64
    assert all(pool[i]["doc_id"] != "d1" for i in fillers)
