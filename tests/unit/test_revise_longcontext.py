"""long-context (IN2) with the scripted test backend (a test double): which segments the model
sees, the needle positions and depths in the assembled context, filler choice, multi-segment
partners, the optional segment-only answer check, and the accounting."""

from __future__ import annotations

import json
import re
from pathlib import Path

from synthloom.core.recipe import Recipe
from synthloom.llm.types import LLMRequest
from tests.support.runs import read_jsonl, run_scripted, step, step_closes
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

CITIES = ["Lisbon", "Oslo", "Quito", "Hanoi", "Perth", "Accra", "Lima", "Riga", "Dakar"]


def make_corpus(folder: Path, segments_per_doc: list[int]) -> Path:
    """Documents whose paragraphs (~60 tokens each) each state one distinct fact."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for d, count in enumerate(segments_per_doc):
        paragraphs = []
        for i in range(count):
            city = CITIES[n % len(CITIES)]
            paragraphs.append(
                f"Fact {d}-{i}: the archive of {city} keeps ledger number {100 + n}. " +
                " ".join(f"Filler sentence {k} about the {city} archive." for k in range(4)))
            n += 1
        (folder / f"doc{d}.txt").write_text("\n\n".join(paragraphs) + "\n")
    return folder


def segments_of(text: str) -> list[str]:
    return re.findall(r'"""\n(.*?)\n"""', text, re.DOTALL)


def qa_responder(request: LLMRequest, seed: int | None) -> str:
    text = last_user_text(request)
    if text.startswith('"""') or "Answer briefly, using only the text above." in text:
        facts = re.findall(r"ledger number (\d+)", text)
        return f"It is ledger {facts[0]}."  # the segment-only check
    segments = segments_of(text)
    facts = [re.search(r"Fact (\d+-\d+): the archive of (\w+) keeps ledger number (\d+)", s)
             for s in segments]
    cities = " and ".join(f[2] for f in facts)
    ledgers = " and ".join(f[3] for f in facts)
    return json.dumps({"question": f"Which ledger numbers do the archives of {cities} keep?",
                       "answer": f"Ledger {ledgers}."})


PARAMS = {"segment_tokens": "64", "needles_per_doc": "1", "context_tokens": "400"}


def test_needles_are_placed_and_recorded(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", [3, 3, 3])
    recipe = Recipe.load("long-context", {**PARAMS, "corpus": str(corpus)})
    backend = ScriptedTestBackend(qa_responder)
    summary = run_scripted(recipe, tmp_path / "out", backend)
    assert all(step_closes(s) for s in summary["steps"])
    assert step(summary, "segments")["out"] == 9 and step(summary, "needles")["out"] == 3
    assert step(summary, "qa")["out"] == 6 and backend.calls == 6  # single + multi each
    assert step(summary, "check")["llm_calls"] == 0  # the check is off by default
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert sorted(r["kind"] for r in records) == ["multi"] * 3 + ["single"] * 3
    for record in records:
        context = record["context"]
        assert record["length_unit"] == "tokens" and record["target_tokens"] == 400
        assert record["context_tokens"] == max(1, len(context) // 4)  # the backend's tokenizer
        assert 300 <= record["context_tokens"] <= 420
        ledgers = re.findall(r"\d+", record["answer"])
        assert len(record["needles"]) == (1 if record["kind"] == "single" else 2) == len(ledgers)
        pieces = context.split("\n\n")
        assert record["n_segments"] == len(pieces)
        for needle in record["needles"]:
            segment = context[needle["position"]:needle["position"] + needle["length"]]
            assert segment == pieces[needle["chunk_index"]]
            assert 0.0 <= needle["depth"] <= 1.0
            expected = needle["position"] / (len(context) - needle["length"])
            assert abs(needle["depth"] - expected) < 1e-3
        # Every answer's facts sit in the needles; fillers come from other documents only.
        needle_text = " ".join(context[n["position"]:n["position"] + n["length"]]
                               for n in record["needles"])
        assert all(f"ledger number {n}" in needle_text for n in ledgers)
        doc = record["needles"][0]["doc_id"]
        fillers = [p for i, p in enumerate(pieces)
                   if i not in {n["chunk_index"] for n in record["needles"]}]
        assert fillers and all(f"Fact {doc}" not in p for p in fillers)
        assert len(record["filler_ids"]) == len(fillers)
    # Multi questions integrate two segments of the needle's own document, in document order.
    multi = [r for r in records if r["kind"] == "multi"]
    assert all(len({n["doc_id"] for n in r["needles"]}) == 1 for r in multi)
    depths = {n["depth"] for r in records for n in r["needles"]}
    assert len(depths) > 3  # positions vary with the item seed

    # Same seed: same contexts (replayed); another seed: other positions.
    again = ScriptedTestBackend(qa_responder)
    run_scripted(Recipe.load("long-context", {**PARAMS, "corpus": str(corpus)}), tmp_path / "out", again)
    assert again.calls == 0 and read_jsonl(tmp_path / "out" / "data.jsonl") == records
    other = Recipe.load("long-context", {**PARAMS, "corpus": str(corpus)})
    other.seed = 1
    run_scripted(other, tmp_path / "seed1", ScriptedTestBackend(qa_responder))
    moved = read_jsonl(tmp_path / "seed1" / "data.jsonl")
    assert [r["needles"] for r in moved] != [r["needles"] for r in records]


def test_short_documents_skip_multi_and_small_pools_are_counted(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", [1, 1])
    recipe = Recipe.load("long-context", {**PARAMS, "corpus": str(corpus), "min_fill": "0.9"})
    summary = run_scripted(recipe, tmp_path / "out", ScriptedTestBackend(qa_responder))
    qa = step(summary, "qa")
    assert qa["in"] == 2 and qa["out"] == 2 and qa["llm_calls"] == 2  # single only
    ctx = step(summary, "long_context")
    assert ctx["dropped"] == 2 and step_closes(ctx)
    reasons = [d["reason"] for d in read_jsonl(tmp_path / "out" / "dropped.jsonl")]
    assert all(re.match(r"context reached \d+ of target 400 tokens \(< min_fill 0.9\): the pool "
                        r"has 1 usable filler segment", r) for r in reasons)
    only_multi = Recipe.load("long-context", {**PARAMS, "corpus": str(corpus),
                                              "kinds": '["multi"]'})
    summary = run_scripted(only_multi, tmp_path / "multi", ScriptedTestBackend(qa_responder))
    assert step(summary, "qa")["dropped"] == 2 and step(summary, "qa")["llm_calls"] == 0
    reasons = [d["reason"] for d in read_jsonl(tmp_path / "multi" / "dropped.jsonl")]
    assert reasons == ["no usable QA pair: multi: the document has 0 other segment(s), "
                       "2 segments needed"] * 2


def test_segment_only_check_drops_disagreeing_pairs(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", [3, 3])

    def wrong_on_multi(request: LLMRequest, seed: int | None) -> str:
        text = last_user_text(request)
        if "Answer briefly, using only the text above." in text and text.count('"""') > 2:
            return "I do not know."
        return qa_responder(request, seed)

    recipe = Recipe.load("long-context", {**PARAMS, "corpus": str(corpus), "check": "true",
                                          "kinds": '["single", "multi"]'})
    summary = run_scripted(recipe, tmp_path / "out", ScriptedTestBackend(wrong_on_multi))
    check = step(summary, "check")
    assert check["in"] == 4 and check["out"] == 2 and check["dropped"] == 2
    assert check["llm_calls"] == 4 and step_closes(check)
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert {r["kind"] for r in kept} == {"single"}
    reasons = [d["reason"] for d in read_jsonl(tmp_path / "out" / "dropped.jsonl")]
    assert all(r.startswith("segment-only answer does not match: 0.00 of the answer's content "
                            "words < 0.5") for r in reasons)


def test_chars_unit_without_the_tokenizer(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", [2, 4])
    recipe = Recipe.load("long-context", {**PARAMS, "corpus": str(corpus), "kinds": '["single"]',
                                          "context_tokens": "900",
                                          "long_context.unit": "chars"})
    run_scripted(recipe, tmp_path / "out", ScriptedTestBackend(qa_responder))
    for record in read_jsonl(tmp_path / "out" / "data.jsonl"):
        assert record["length_unit"] == "chars"
        assert record["context_tokens"] == len(record["context"]) <= 900
