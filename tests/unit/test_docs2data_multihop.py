"""multihop-qa steps with the scripted test backend (ScriptedTestBackend, a test double, no
model): clue validation, the entity index and chain sampling (within and across documents,
BM25 linking, determinism), answer verification with reasons, complete/partial evidence, and
the shipped recipe end to end on the bundled corpus with closed accounting and provenance."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.context import ItemContext, RunContext
from synthloom.core.recipe import Recipe
from synthloom.core.records import make_record
from synthloom.export import registry
from synthloom.export.registry import Skip
from synthloom.methods.common.entities import mentions, normalize_entity, proper_nouns, token_text
from synthloom.methods.multihop.cite import clue_sentences
from synthloom.methods.multihop.cite import sentences as split_sentences
from synthloom.methods.multihop.clues import CluesConfig, usable_clues
from synthloom.methods.multihop.completeness import MultihopEvidence
from synthloom.methods.multihop.link import MultihopLink
from synthloom.methods.multihop.variants import FULL, PARTIAL, MultihopVariants
from synthloom.methods.multihop.verify import MultihopVerify
from tests.support.runs import assert_closed, read_jsonl, step
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

PASSAGE_RE = re.compile(r'"""\n(.*?)\n"""', re.DOTALL)


def sentences(text: str) -> list[str]:
    return [s.strip().lstrip("# ") for s in re.split(r"(?<=[.!?])\s+|\n\n", text)
            if len(s.split()) >= 4]


def responder(request, seed) -> str:
    """Clues: the passage's sentences with their capitalised words as entities. Questions: ask
    for the last capitalised word of the last fact. Judge: supported unless 'moon cheese'."""
    text = last_user_text(request)
    if "clues from this passage" in text:
        n = int(re.search(r"List up to (\d+)", text).group(1))
        clues = []
        for s in sentences(PASSAGE_RE.search(text).group(1))[:n]:
            names = proper_nouns(s) or ["nothing"]
            clues.append({"fact": s, "entities": names[:3],
                          "relation": {"head": names[0], "relation": "is in", "tail": names[-1]}})
        return json.dumps({"clues": clues or [{"fact": "No facts here at all.",
                                              "entities": ["x"], "relation": {
                                                  "head": "x", "relation": "y", "tail": "z"}}]})
    if "Do the facts support" in text:
        return json.dumps({"supported": "moon cheese" not in text})
    if "rewritten questions, in this order" in text:  # RAGSynth's variants
        question = re.search(r"^Question: (.*)$", text, re.MULTILINE).group(1)
        answer = re.search(r"^Answer: (.*)$", text, re.MULTILINE).group(1)
        asks = re.findall(r"^\d+\. [a-z -]+: .*$", text.split("in this order:")[1],
                          re.MULTILINE)
        return json.dumps({"variants": [
            {"question": f"{question} And why is that so?",
             "answer": f"{answer}. The facts do not say why, so that part cannot be answered "
                       "from the evidence."} if "only part" in ask else
            {"question": f"Put another way: {question}", "answer": answer} for ask in asks]})
    facts = re.findall(r"^\d+\. (.*)$", text, re.MULTILINE)
    answer = (proper_nouns(facts[-1]) or [facts[-1].split()[-1]])[-1]
    return json.dumps({"question": f"Which name ends fact number {len(facts)} here?",
                       "answer": answer})


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend) -> dict:
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend))).to_json()


# --- text helpers and clue validation ------------------------------------------------------------


def test_entity_keys_are_normalised_and_matched_as_whole_words() -> None:
    assert normalize_entity("The Moon's") == "moon"
    assert normalize_entity("  the  Bay of FUNDY ") == "bay of fundy"
    padded = token_text("The Bay of Fundy, in Canada, has the Moon's largest tides.")
    assert mentions("bay of fundy", padded) and mentions("moon", padded)
    assert not mentions("fun", padded)  # a word piece is not a mention
    assert proper_nouns("The Danube flows through Vienna and Budapest.") == [
        "The Danube", "Vienna", "Budapest"]


def test_usable_clues_keep_only_stated_facts_with_entities_in_them() -> None:
    chunk = "Vienna is the capital of Austria. The Danube flows through Vienna and Budapest."
    cfg = CluesConfig(name="c")
    raw = [
        {"fact": "Vienna is the capital of Austria.", "entities": ["Vienna", "Mozart"]},
        {"fact": "Paris is the capital of France.", "entities": ["Paris"]},
        {"fact": "The Danube flows through Vienna and Budapest.", "entities": ["river"]},
        {"fact": "Vienna is the capital of Austria.", "entities": ["Austria"]},
        {"fact": "Two words"},
        "junk",
    ]
    clues, problems = usable_clues(raw, chunk, cfg)
    assert [c["fact"] for c in clues] == ["Vienna is the capital of Austria.",
                                         "The Danube flows through Vienna and Budapest."]
    assert clues[0]["entity_keys"] == ["vienna"]  # Mozart is not in the fact
    assert clues[0]["entities_from"] == "model"
    # 'river' is not in the fact: capitalised runs of the fact stand in, marked as fallback.
    assert clues[1]["entity_keys"] == ["danube", "vienna", "budapest"]
    assert clues[1]["entities_from"] == "fallback"
    assert problems[0] == ("clue 1: fact not stated in the chunk (0.33 of its content words "
                           "occur; missing: pari, france)")  # 'capital' is in the chunk
    assert problems[1:] == ["clue 3: repeats an earlier clue",
                            "clue 4: fact 'Two words' has fewer than 4 words",
                            "clue 5: not an object"]
    strict, why = usable_clues(raw[2:3], chunk, CluesConfig(name="c", fallback_entities=False))
    assert strict == [] and "none of its entities ('river') occurs in the fact" in why[0]


# --- the entity index and chains -----------------------------------------------------------------


def chunk_record(doc: str, index: int, facts: dict[str, list[str]]) -> dict:
    clues = [{"clue_index": i, "fact": fact, "entities": names,
              "entity_keys": [normalize_entity(n) for n in names]}
             for i, (fact, names) in enumerate(facts.items())]
    chunk_id = f"{doc}-c{index}"
    source = {"path": f"{doc}.md", "doc_id": doc, "chunk_id": chunk_id, "char_start": index * 100,
              "char_end": index * 100 + 90, "pages": []}
    record = make_record({"text": " ".join(facts), "doc_id": doc, "chunk_id": chunk_id,
                          "clues": clues}, step="clues", source=source)
    return record


CORPUS = [
    chunk_record("danube", 0, {"The Danube flows through Vienna.": ["Danube", "Vienna"]}),
    chunk_record("vienna", 0, {"Mozart moved to Vienna in 1781.": ["Mozart", "Vienna"]}),
    chunk_record("mozart", 0, {"Mozart was born in Salzburg.": ["Mozart", "Salzburg"]}),
    chunk_record("lonely", 0, {"Ferns grow from spores.": ["Ferns"]}),
]


def link(records: list[dict], seed: int = 0, **cfg) -> list:
    return asyncio.run(MultihopLink(name="chains", **cfg).process_all(
        records, RunContext(run_dir=Path("."), seed=seed)))


def test_chains_link_chunks_through_shared_entities() -> None:
    results = link(CORPUS, single_per_chunk=0, multi_per_chunk=5)
    first = [o.columns for o in results[0].outputs]
    hops = sorted(c["hops"] for c in first)
    assert hops == [2, 3]  # danube -> vienna (2 hops), danube -> vienna -> mozart (3 hops)
    three = next(c for c in first if c["hops"] == 3)
    assert [h["chunk_id"] for h in three["clue_chain"]] == ["danube-c0", "vienna-c0", "mozart-c0"]
    assert three["bridge_entities"] == ["Vienna", "Mozart"]
    assert [h["entity"] for h in three["clue_chain"]] == ["Vienna", "Mozart", "Mozart"]
    assert three["kind"] == "multi"
    assert three["clue_chain"][2]["source"]["path"] == "mozart.md"
    assert three["clue_chain"][2]["source"]["char_end"] == 90
    # provenance: the other chunks are parents too; every hop's file and span is in _meta
    output = next(o for o in results[0].outputs if o.columns["hops"] == 3)
    assert len(output.extra_parents) == 2
    assert [s["chunk_id"] for s in output.meta["sources"]] == ["danube-c0", "vienna-c0",
                                                               "mozart-c0"]
    # a chunk whose entities link to nothing says so
    assert results[3].dropped.startswith("no multi-hop chain starts in this chunk: none of its "
                                         "entities (ferns)")


def test_chain_sampling_is_seeded_and_respects_the_hop_limits() -> None:
    one = link(CORPUS, seed=3, multi_per_chunk=1)
    again = link(CORPUS, seed=3, multi_per_chunk=1)
    assert [[o.columns for o in r.outputs] for r in one] == \
        [[o.columns for o in r.outputs] for r in again]
    only_two = link(CORPUS, single_per_chunk=0, multi_per_chunk=9, max_hops=2)
    assert {o.columns["hops"] for r in only_two for o in r.outputs} == {2}
    only_three = link(CORPUS, single_per_chunk=0, multi_per_chunk=9, min_hops=3)
    assert {o.columns["hops"] for r in only_three for o in r.outputs} == {3}
    singles = link(CORPUS, single_per_chunk=1, multi_per_chunk=0)
    assert all(len(r.outputs) == 1 and r.outputs[0].columns["kind"] == "single" for r in singles)
    assert singles[3].outputs[0].columns["bridge_entities"] == []


def test_cross_document_and_bm25_linking() -> None:
    same_doc = [
        chunk_record("d", 0, {"Salzburg lies on the Salzach river.": ["Salzburg", "Salzach"]}),
        chunk_record("d", 1, {"Mozart was born in Salzburg.": ["Mozart", "Salzburg"]}),
    ]
    assert len(link(same_doc, single_per_chunk=0, max_hops=2)[0].outputs) == 1
    crossed = link(same_doc, single_per_chunk=0, max_hops=2, cross_document=True)
    assert crossed[0].dropped and crossed[1].dropped
    # The model listed no 'Salzach' for the second fact; BM25 over the facts finds the mention.
    unlisted = [
        chunk_record("a", 0, {"Salzburg lies on the Salzach river.": ["Salzach"]}),
        chunk_record("b", 0, {"The Salzach is a river in Austria.": ["Austria"]}),
        chunk_record("c", 0, {"Ferns grow from spores in damp woods.": ["Ferns"]}),
    ]
    assert link(unlisted, single_per_chunk=0, max_hops=2)[0].dropped
    found = link(unlisted, single_per_chunk=0, max_hops=2, bm25_top_k=2)[0].outputs
    assert [h["chunk_id"] for h in found[0].columns["clue_chain"]] == ["a-c0", "b-c0"]
    assert found[0].columns["bridge_entities"] == ["Salzach"]


# --- verification and evidence -------------------------------------------------------------------


def qa(question: str, answer: str, chain: list[str]) -> dict:
    hops = [{"hop": i + 1, "chunk_id": f"c{i}", "clue": c} for i, c in enumerate(chain)]
    return make_record({"question": question, "answer": answer, "clue_chain": hops},
                       step="questions")


def verify(record: dict, **cfg) -> str | None:
    return asyncio.run(MultihopVerify(name="v", **cfg).process(record, None))


def test_verify_checks_the_answer_against_the_final_clue() -> None:
    chain = ["The Danube flows through Vienna.", "Mozart moved to Vienna in 1781."]
    assert verify(qa("When did the composer move to the city on the river?", "1781", chain)) \
        is None
    drop = verify(qa("Where was the composer born?", "Salzburg", chain))
    assert drop == ("answer 'Salzburg' does not appear in the final clue (hop 2, chunk c1): "
                    "'Mozart moved to Vienna in 1781.'")
    # the answer must be in the FINAL clue, not anywhere in the chain
    assert verify(qa("Which river flows through the city?", "Danube", chain)).startswith(
        "answer 'Danube' does not appear in the final clue")
    assert verify(qa("Who moved to Vienna in 1781, Mozart?", "Mozart", chain)) == \
        "the question gives away its answer 'Mozart'"
    loose = qa("When did he move there?", "in the year 1781", chain)
    assert verify(loose) is not None
    assert verify(loose, match="overlap", threshold=0.5) is None
    assert MultihopVerify(name="v").uses_llm is False
    assert MultihopVerify(name="v", mode="both").uses_llm is True


def evidence(record: dict, seed: int = 0, **cfg):
    ctx = ItemContext(run=RunContext(run_dir=Path(".")), item_key="k", seed=seed)
    return MultihopEvidence(name="e", **cfg).to_result(
        MultihopEvidence(name="e", **cfg).process(record, ctx))


def test_partial_evidence_removes_one_hop() -> None:
    record = qa("Q?", "1781", ["The Danube flows through Vienna.",
                                "Mozart moved to Vienna in 1781."])
    [complete] = evidence(record).outputs
    assert complete.columns["completeness"] == "complete"
    assert len(complete.columns["evidence"]) == 2 and complete.columns["removed_clue"] is None
    [first] = evidence(record, clue_completeness="partial", partial_hop="first").outputs
    assert first.columns["completeness"] == "partial"
    assert first.columns["removed_clue"]["hop"] == 1
    assert [e["hop"] for e in first.columns["evidence"]] == [2]
    assert first.columns["answerable_from_evidence"] is False
    both = evidence(record, clue_completeness="both", partial_hop="last").outputs
    assert [o.columns["completeness"] for o in both] == ["complete", "partial"]
    assert both[1].columns["removed_clue"]["hop"] == 2
    picked = {evidence(record, seed=s, clue_completeness="partial").outputs[0]
              .columns["removed_clue"]["hop"] for s in range(12)}
    assert picked == {1, 2}  # seeded: both hops get removed across items
    single = qa("Q?", "1781", ["Mozart moved to Vienna in 1781."])
    assert evidence(single, clue_completeness="partial").dropped.startswith(
        "single-hop question: removing its only clue")
    assert len(evidence(single, clue_completeness="both").outputs) == 1


# --- the shipped recipe --------------------------------------------------------------------------


def test_clue_sentences_are_cited_by_number() -> None:
    passage = ("# Vienna\n\nVienna is the capital of Austria. The Danube flows through Vienna. "
               "It has two million people.")
    assert split_sentences(passage)[1:3] == ["Vienna is the capital of Austria.",
                                              "The Danube flows through Vienna."]
    assert clue_sentences("The Danube flows through the city of Vienna.", passage, 0.6) == \
        [(3, "The Danube flows through Vienna.")]
    assert clue_sentences("Mozart wrote operas in Salzburg.", passage, 0.6) == []


def test_partial_variants_must_answer_faithfully() -> None:
    step_ = MultihopVariants(name="v")
    q, a = "Which river flows through Vienna?", "Danube"
    assert step_.problem("full", q, a, "Name the river that crosses Vienna.", "") is None
    assert step_.problem("full", q, a, q, a) == "the question is unchanged"
    assert step_.problem("partial", q, a, "Which river flows through Vienna, and why?",
                         "The Danube; the facts do not say why.") is None
    assert step_.problem("partial", q, a, "Which river flows through Vienna, and why?",
                         "The Danube, because of geology.") == \
        "the answer does not say what cannot be answered from the evidence"
    assert step_.problem("partial", q, a, "Which river flows through Vienna, and why?",
                         "It cannot be answered.").startswith("the answer no longer states")


def test_shipped_recipe_end_to_end(tmp_path: Path) -> None:
    params = {"clue_completeness": "both", "multi_per_chunk": "2", "verify": "both"}
    backend = ScriptedTestBackend(responder)
    out = tmp_path / "out"
    summary = run(Recipe.load("multihop-qa", params), out, backend)  # bundled linked corpus
    assert_closed(summary)
    assert step(summary, "documents")["out"] == 3
    assert step(summary, "clues")["llm_calls"] == step(summary, "chunks")["out"]
    rows = read_jsonl(out / "data.jsonl")
    kinds = {r["kind"] for r in rows}
    assert kinds == {"single", "multi"}
    assert {r["completeness"] for r in rows} == {"complete", "partial"}
    for row in rows:
        assert set(row) >= {"question", "answer", "hops", "clue_chain", "bridge_entities",
                            "kind", "completeness", "evidence"}
        source = row["_meta"]["source"]
        assert source["path"].endswith(".md") and source["chunk_id"] == row["chunk_id"]
        assert 0 <= source["char_start"] < source["char_end"]
        assert row["clue_chain"][0]["source"]["chunk_id"] == source["chunk_id"]
        assert len(row["bridge_entities"]) == row["hops"] - 1
        assert len({h["chunk_id"] for h in row["clue_chain"]}) == row["hops"]
        # a partial-clue variant's answer also says what the clues cannot answer
        short = row["answer"] if row["variant_kind"] != "partial" else \
            row["answer"].split(".")[0]
        assert short.lower() in row["clue_chain"][-1]["clue"].lower()
        if row["completeness"] == "partial":
            assert len(row["evidence"]) == row["hops"] - 1
    # the judge ran once per question that passed the clue check
    assert step(summary, "verified")["llm_calls"] >= step(summary, "verified")["out"]
    reasons = [d["reason"] for d in read_jsonl(out / "dropped.jsonl")]
    assert all(r for r in reasons)
    again = run(Recipe.load("multihop-qa", params), out, backend)
    assert again["llm_calls"] == 0 and again["records"] == summary["records"]
    # RAGSynth: sentence citations, logical variants, faithful answers, retriever triples
    assert step(summary, "variants")["llm_calls"] == step(summary, "variants")["in"]
    assert {r["variant_kind"] for r in rows} == {"original", "full", "partial"}
    pool = {h["chunk_id"] for r in rows for h in r["clue_chain"]}
    # through the registry (importing the format module here would change the registration
    # order the docs table follows)
    retriever_row = registry.formats()["retriever-triples"].row
    for row in rows:
        for c, hop in zip(row["citations"], row["clue_chain"], strict=True):
            assert c["chunk_id"] == hop["chunk_id"]
            assert hop["clue"] in " ".join(c["sentences"])  # the clue's own sentence
        last = row["citations"][-1]
        short = f"[Doc {last['chunk_id']}, Sen {', '.join(map(str, last['sentence_ids']))}]"
        assert row["answer_short"] == f"{row['answer']} {short}"
        assert row["answer_long"].count("[Doc ") == row["hops"]
        if row["variant_kind"] == "full":
            assert row["question"].startswith("Put another way: ")
            assert row["variant"] in FULL and row["question_original"] in row["question"]
        if row["variant_kind"] == "partial":
            assert row["variant"] in PARTIAL
            assert "cannot be answered" in row["answer"] and row["answer_short"].endswith("]")
        if row["completeness"] == "partial":
            assert row["evidence_answer"].startswith("This cannot be answered from the evidence")
            assert "[Doc" not in row["evidence_answer"]
        else:
            assert row["evidence_answer"] == row["answer_long"]
        chain = [h["chunk_id"] for h in row["clue_chain"]]
        assert [p["chunk_id"] for p in row["positives"]] == list(dict.fromkeys(chain))
        negatives = [n["chunk_id"] for n in row["hard_negatives"]]
        assert not set(negatives) & set(chain) and len(negatives) <= 3
        # every passage of the run is a candidate: none is left only when all are positives
        assert len(negatives) == min(3, len(pool - set(chain)))
        if negatives:
            triple = retriever_row(row, {"query": "question"}, "drop", False)
            assert triple["query"] == row["question"] and len(triple["neg"]) == len(negatives)
            assert triple["pos"][0] == row["clue_chain"][0]["passage"]
        else:
            with pytest.raises(Skip, match="no hard negative"):
                retriever_row(row, {"query": "question"}, "drop", False)
    assert any(r["hard_negatives"] for r in rows)


def test_bad_model_output_is_a_drop_not_a_crash(tmp_path: Path) -> None:
    nonsense = ScriptedTestBackend(lambda r, s: json.dumps({"clues": [
        {"fact": "Completely invented statement about robots.", "entities": ["robots"],
         "relation": {"head": "a", "relation": "b", "tail": "c"}}]}))
    summary = run(Recipe.load("multihop-qa", {"max_chunks_per_doc": "1"}), tmp_path / "o",
                  nonsense)
    assert_closed(summary)
    clues = step(summary, "clues")
    assert clues["dropped"] == clues["in"] == 3 and summary["records"] == 0
    reasons = {d["reason"] for d in read_jsonl(tmp_path / "o" / "dropped.jsonl")}
    assert all(r.startswith("model returned 0 usable clues (clue 0: fact not stated in the "
                            "chunk") for r in reasons)


@pytest.mark.parametrize("bad", [{"min_hops": 3, "max_hops": 2}, {"max_hops": 4}])
def test_link_config_is_validated(bad: dict) -> None:
    with pytest.raises(ValueError):
        MultihopLink(name="x", **bad)
