"""SynthQuestions steps: seed normalisation on the real seed files, BM25 retrieval, demo packing
under a token budget, and the whole chain with the ScriptedTestBackend (a test double)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import ItemResult, make_record
from synthloom.methods.common.seeds import SeedInstruction, clean_instruction
from synthloom.methods.synthquestions.synthesize import SynthesizeInstruction
from synthloom.sources.retrieval import RetrieveBm25
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text


def normalise(step: SeedInstruction, row: dict) -> ItemResult | object:
    return step.to_result(step.process(row, None))  # type: ignore[arg-type]


def test_seed_normalisation_on_the_real_seed_files(shared_data: Path) -> None:
    step = SeedInstruction(name="seeds")
    folder = shared_data / "seed_instructions"
    kept: dict[str, int] = {}
    for name in ("oasst_prompt_lottery_en_250_text.jsonl", "dolly15k_subset151_alpaca_format.jsonl",
                 "self_instruct_seed_tasks.jsonl", "self_instruct_user_oriented_instructions.jsonl"):
        rows = [json.loads(x) for x in (folder / name).read_text().splitlines() if x.strip()]
        rows = [{"text": r} if isinstance(r, str) else r for r in rows]
        results = [normalise(step, r) for r in rows]
        texts = [r.outputs[0].columns["instruction"] for r in results if r.outputs]
        drops = [r.dropped for r in results if r.dropped]
        assert len(texts) + len(drops) == len(rows)  # each seed kept or dropped with a reason
        assert all("### Instruction" not in t and "###eos_token###" not in t for t in texts)
        kept[name] = len(texts)
    assert all(n > 100 for n in kept.values()), kept
    dolly = json.loads((folder / "dolly15k_subset151_alpaca_format.jsonl").read_text().splitlines()[0])
    assert clean_instruction(dolly["prompt"]) == "Why is Citizen Kane considered the Best Film?"


def test_seed_drops_say_why() -> None:
    step = SeedInstruction(name="seeds")
    assert "incomplete" in normalise(step, {"instruction": "hi"}).dropped
    # Language is the filter_language step's decision, not an ASCII-share rule here.
    assert normalise(step, {"text": "Объясни разницу между погодой и климатом"}).outputs
    assert "no instruction" in normalise(step, {"foo": 1}).dropped
    turn = normalise(step, {"messages": [{"role": "system", "content": "x"},
                                         {"role": "user", "content": "Plan my trip to Rome please"},
                                         {"role": "user", "content": "second turn"}]})
    assert turn.outputs[0].columns == {"instruction": "Plan my trip to Rome please"}


def doc(text: str, title: str = "") -> dict:
    return make_record({"text": text, "title": title}, step="corpus")


def test_bm25_retrieval_finds_the_supporting_document(tmp_path: Path) -> None:
    corpus = [doc("Feeding a sourdough starter with flour and water", "Sourdough"),
              doc("Cache-Control max-age and ETag headers for HTTP caching", "HTTP caching"),
              doc("Lubricate the bicycle chain and measure its stretch", "Chains")]
    step = RetrieveBm25(name="r", corpus="corpus", context=["corpus"],
                        query_columns=["instruction", "keywords"], min_score=0.1)
    ctx = ItemContext(run=RunContext(run_dir=tmp_path, context={"corpus": corpus}),
                      item_key="k", seed=1)
    out = asyncio.run(step.process({"instruction": "Which headers control browser caching?",
                                     "keywords": ["HTTP", "cache"]}, ctx))
    assert out.columns["document_id"] == corpus[1]["_meta"]["id"]
    assert out.columns["document_title"] == "HTTP caching" and out.meta["retrieved"]
    miss = asyncio.run(step.process({"instruction": "quantum chromodynamics",
                                      "keywords": []}, ctx))
    assert isinstance(miss, ItemResult) and "no supporting document" in miss.dropped
    with pytest.raises(Exception, match="must also be listed in context"):
        RetrieveBm25(name="r", corpus="corpus")


def test_demo_packing_respects_the_token_budget(tmp_path: Path) -> None:
    step = SynthesizeInstruction(name="s", demos="d", context=["d"], demo_token_budget=300,
                                 max_demos=10, demo_doc_tokens=40)
    step.setup(RunContext(run_dir=tmp_path))
    demos = [make_record({"instruction": f"question {i} " * (5 + i), "document": "word " * 400,
                          "scene": "a scene", "query_compositions": {"ability": "a"}}, step="d")
             for i in range(12)]
    count = lambda text: len(text.split())  # noqa: E731 - a stand-in tokenizer
    rendered, ids, total = step.pack_demos(demos, anchor="doc-a", count=count)
    assert rendered and total <= 300 and total == sum(count(r) for r in rendered)
    assert len(ids) == len(set(ids)) == len(rendered) < 12
    assert step.pack_demos(demos, anchor="doc-a", count=count)[1] == ids  # reproducible
    assert any(step.pack_demos(demos, anchor=f"doc-{i}", count=count)[1] != ids
               for i in range(5))  # another document, another window of the ring
    assert all(count(r) < 120 for r in rendered)  # each demo's document was cut


ARENA7 = ("specificity", "domain_knowledge", "complexity", "problem_solving", "creativity",
          "technical_accuracy", "real_world_application")
ULTRA = ("instruction_following", "honesty", "truthfulness", "helpfulness")


def scripted(request, seed) -> str:
    text = last_user_text(request)
    if "Answer with a JSON object: \"intent\"" in text:
        # Keywords from the seed itself (retrieval searches them): its longest words.
        seed_text = text.split('"""')[1] if text.count('"""') >= 2 else text
        words = sorted({w.strip(".,?!:;()'\"").lower() for w in seed_text.split()},
                       key=lambda w: (len(w), w))
        return json.dumps({"intent": "learn", "keywords": words[-4:]})
    if "Imagine the user was reading" in text:
        return json.dumps({"scene": "A home baker preparing for the weekend.", "query_compositions":
                           {"ability": "diagnose", "knowledge": "fermentation",
                            "extra_information": "smell", "output": "steps"}})
    if "Now the new document" in text:
        title = text.split("<document>")[-1].strip().splitlines()[0]
        return json.dumps({"thought": "t", "scene": "s", "query": f"Given that {title}, how "
                           "should I plan the next steps in detail?", "query_compositions": {
                               "ability": "a", "knowledge": "k", "extra_information": "e",
                               "output": "o"}})
    if "Hazard categories" in text:
        return json.dumps({"rationale": "ordinary", "safe": True, "categories": []})
    if "against seven criteria" in text:
        return json.dumps({c: {"analysis": "yes", "score": 1} for c in ARENA7})
    if "Rate the answer" in text:  # UltraFeedback: longer variants score higher
        level = 2 + min(3, text.count("detail"))
        return json.dumps({a: {"analysis": "ok", "score": level} for a in ULTRA})
    return "A careful, complete answer" + " with detail" * ((seed or 0) % 3) + "."


def test_the_chain_with_the_scripted_backend(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(scripted)
    every = {"preference_sample": "1.0"}  # pairs for all instructions (default: 10 %)
    summary = asyncio.run(run_recipe("synthquestions", tmp_path / "out",
                                     RunOptions(backend=backend, limit=5,
                                                overrides=every))).to_json()
    steps = {s["name"]: s for s in summary["steps"]}
    for s in steps.values():
        if s["kind"] in ("map", "filter"):
            assert s["in"] == s["out"] + s["failed"] + s["dropped"], s
    assert steps["attribute"]["out"] >= 1 and steps["synthesize"]["in"] == 5
    rows = [json.loads(x) for x in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    assert rows and summary["records"] == len(rows)
    first = rows[0]
    assert set(first["query_compositions"]) == {"ability", "knowledge", "extra_information",
                                                "output"}
    assert first["scene"] and first["response"] and first["document_id"]
    assert first["safety"] == {"safe": True, "categories": [], "rationale": "ordinary"}
    assert first["scores"]["total"] == 7 and set(first["scores"]["criteria"]) == set(ARENA7)
    assert isinstance(first["topic"], int) and first["topic_label"]
    pairs = [json.loads(x) for x in (tmp_path / "out" / "preference.jsonl").read_text().splitlines()]
    assert pairs and all(p["chosen_score"] - p["rejected_score"] >= 1 for p in pairs)
    assert all(p["chosen"] != p["rejected"] and p["prompt"] for p in pairs)
    seeds = [json.loads(x) for x in (tmp_path / "out" / "seeds.jsonl").read_text().splitlines()]
    assert seeds and all(s["scores"]["total"] >= 5 for s in seeds)
    assert first["_meta"]["demo_ids"] and first["_meta"]["document_id"] == first["document_id"]
    demos = [json.loads(x) for x in (tmp_path / "out" / "demos.jsonl").read_text().splitlines()]
    demo_ids = {d["_meta"]["id"] for d in demos}
    assert set(first["_meta"]["demo_ids"]) <= demo_ids
    assert all(d["_meta"]["retrieved"] == d["document_id"] for d in demos)
    again = ScriptedTestBackend(scripted)
    asyncio.run(run_recipe("synthquestions", tmp_path / "out",
                           RunOptions(backend=again, limit=5, overrides=every)))
    assert again.calls == 0


def test_when_no_demo_fits_the_shortest_is_used_alone(tmp_path: Path) -> None:
    # The grammar profile's fallback (the paper profile sends no demo: fidelity2 tests).
    step = SynthesizeInstruction(name="s", demos="d", context=["d"], demo_token_budget=5,
                                 limits="grammar")
    step.setup(RunContext(run_dir=tmp_path))
    demos = [make_record({"instruction": "long " * n, "document": "d", "scene": "s",
                          "query_compositions": {}}, step="d") for n in (40, 10, 25)]
    rendered, ids, total = step.pack_demos(demos, anchor="doc", count=lambda t: len(t.split()))
    assert ids == [demos[1]["_meta"]["id"]] and total > 5 and len(rendered) == 1
    assert step.pack_demos([], anchor="doc", count=len) == ([], [], 0)
