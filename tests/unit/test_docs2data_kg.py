"""kg-questions steps with the scripted test backend (ScriptedTestBackend, a test double, no
model): triple validation, the merged graph and node degrees, seeded path sampling, the
difficulty score from path length and node degree, the question checks, and the shipped
recipe end to end with closed accounting and provenance."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.context import RunContext
from synthloom.core.recipe import Recipe
from synthloom.core.records import make_record
from synthloom.methods.common.entities import normalize_entity, proper_nouns
from synthloom.methods.kg.concepts import mapped_concepts
from synthloom.methods.kg.levels import BLOOM, feature_levels, irt_difficulty, target_score
from synthloom.methods.kg.paths import KgPaths, build_graph
from synthloom.methods.kg.question import KgCheck
from synthloom.methods.kg.triples import usable_triples
from tests.support.runs import assert_closed, read_jsonl, step
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

PASSAGE_RE = re.compile(r'"""\n(.*?)\n"""', re.DOTALL)


def responder(request, seed) -> str:
    """Triples: consecutive capitalised names of each sentence, 'is linked to'. Concepts: the
    first entity is a "Landmark". Questions: name the start entity, never the answer. IRT
    answers: always "Vienna" (right only for questions whose answer is Vienna)."""
    text = last_user_text(request)
    if "concepts that these entities belong to" in text:
        first = re.search(r"^- (.*)$", text, re.MULTILINE).group(1)
        return json.dumps({"concepts": [{"concept": "Landmark", "entities": [first]},
                                        {"concept": first, "entities": [first]}]})
    if "Answer in a few words" in text:
        return "The answer is Vienna."
    if "triples stated in this passage" in text:
        n = int(re.search(r"List up to (\d+)", text).group(1))
        triples = []
        for sentence in re.split(r"(?<=[.!?])\s+", PASSAGE_RE.search(text).group(1)):
            names = proper_nouns(sentence)
            triples += [{"head": a, "relation": "is linked to", "tail": b}
                        for a, b in zip(names, names[1:], strict=False)]
        return json.dumps({"triples": triples[:n] or [
            {"head": "Nothing", "relation": "is", "tail": "Here"}]})
    start = re.search(r"Start entity: (.*)", text).group(1)
    return json.dumps({"question": f"Following the links from {start}, where do you end up?"})


# --- triples and the graph -----------------------------------------------------------------------


def test_usable_triples_are_named_distinct_and_in_the_chunk() -> None:
    chunk = "The Danube flows through Vienna. Vienna is the capital of Austria."
    raw = [
        {"head": "The Danube", "relation": "flows through", "tail": "Vienna"},
        {"head": "Danube", "relation": "Flows through!", "tail": "vienna"},  # same, normalised
        {"head": "Vienna", "relation": "is the capital of", "tail": "France"},
        {"head": "Vienna", "relation": "is", "tail": "the Vienna"},
        {"head": "Vienna", "relation": "...", "tail": "Austria"},
        {"head": "the", "relation": "is", "tail": "Austria"},
        "junk",
    ]
    triples, problems = usable_triples(raw, chunk)
    assert [(t["head_key"], t["tail_key"]) for t in triples] == [("danube", "vienna")]
    assert triples[0]["head"] == "The Danube"  # the surface form is kept for display
    assert problems == [
        "triple 1: repeats an earlier triple",
        "triple 2: 'France' not in the chunk",
        "triple 3: head and tail are the same entity ('Vienna')",
        "triple 4: relation has no words",
        "triple 5: head is not a name",
        "triple 6: not an object",
    ]
    loose, _ = usable_triples(raw[2:3], chunk, require_in_chunk=False)
    assert loose[0]["tail_key"] == "france"


def chunk(name: str, triples: list[tuple[str, str, str]], doc: str | None = None) -> dict:
    rows = [{"triple_index": i, "head": h, "relation": r, "tail": t,
             "head_key": normalize_entity(h), "tail_key": normalize_entity(t)}
            for i, (h, r, t) in enumerate(triples)]
    source = {"path": f"{doc or name}.md", "chunk_id": name, "char_start": 0, "char_end": 50}
    return make_record({"chunk_id": name, "doc_id": doc or name, "triples": rows,
                        "text": "..."}, step="triples", source=source)


CHAIN = [
    chunk("c1", [("Salzburg", "lies on", "Salzach")]),
    chunk("c2", [("Mozart", "was born in", "Salzburg"), ("Mozart", "moved to", "Vienna")]),
    chunk("c3", [("The Danube", "flows through", "Vienna"), ("Vienna", "is capital of",
                                                            "Austria")]),
    chunk("c4", [("Danube", "flows through", "Vienna")]),  # the same edge, stated again
]


def test_graph_merges_normalised_entities_and_counts_degrees() -> None:
    graph = build_graph(CHAIN)
    assert len(graph.edges) == 5  # the repeated Danube edge is one edge, stated by two chunks
    danube = next(e for e in graph.edges if e.head == "danube")
    assert danube.recs == [2, 3]
    assert graph.degree("vienna") == 3 and graph.degree("mozart") == 2
    assert graph.degree("salzach") == 1 and graph.max_degree == 3
    assert graph.name("danube") in ("The Danube", "Danube")


def paths(records: list[dict], seed: int = 0, **cfg) -> list:
    return asyncio.run(KgPaths(name="paths", **cfg).process_all(
        records, RunContext(run_dir=Path("."), seed=seed)))


def test_paths_are_connected_seeded_and_not_repeated() -> None:
    results = paths(CHAIN, paths_per_chunk=3, lengths=[3])
    again = paths(CHAIN, paths_per_chunk=3, lengths=[3])
    assert [[o.columns for o in r.outputs] for r in results if not r.dropped] == \
        [[o.columns for o in r.outputs] for r in again if not r.dropped]
    seen = set()
    for result in results:
        for output in result.outputs:
            cols = output.columns
            key = json.dumps(cols["path"])
            assert key not in seen  # never the same path twice
            seen.add(key)
            assert 1 <= cols["path_length"] == len(cols["path"]) <= 3
            # consecutive triples share the node the walk passed through
            ends = [cols["start_entity"]]
            for hop in cols["path"]:
                here = normalize_entity(ends[-1])
                nxt = hop["tail"] if normalize_entity(hop["head"]) == here else hop["head"]
                assert here in (normalize_entity(hop["head"]), normalize_entity(hop["tail"]))
                ends.append(nxt)
            assert normalize_entity(ends[-1]) == normalize_entity(cols["answer"])
            degrees = cols["node_degrees"]
            assert len(degrees) == cols["path_length"] + 1
            assert degrees[0]["entity"] == cols["start_entity"]
            assert degrees[-1]["entity"] == cols["answer"]
            assert cols["reasoning"].endswith(f"So the answer is {cols['answer']}.")
            assert output.meta["sources"][0]["path"].endswith(".md")
    assert any(o.columns["path_length"] == 3 for r in results for o in r.outputs)
    for result in results:  # an output or a drop with a reason, never silence
        assert result.outputs or result.dropped


def test_directed_walks_follow_edges_forward_only() -> None:
    results = paths(CHAIN, paths_per_chunk=4, lengths=[3], directed=True)
    for result in results:
        for output in result.outputs:
            assert {h["direction"] for h in output.columns["path"]} == {"forward"}


def test_difficulty_follows_length_and_degree() -> None:
    results = paths(CHAIN, paths_per_chunk=4, lengths=[1, 2, 3], length_weight=0.6)
    by_path = [o for r in results for o in r.outputs]
    for output in by_path:
        cols, parts = output.columns, output.meta["difficulty_parts"]
        assert parts["length"] == pytest.approx((cols["path_length"] - 1) / 2, abs=1e-3)
        assert cols["difficulty"] == pytest.approx(0.6 * parts["length"] + 0.4 * parts["degree"],
                                                   abs=2e-3)
        level = cols["difficulty_level"]
        assert level == ("easy" if cols["difficulty"] < 0.34 else
                         "medium" if cols["difficulty"] < 0.67 else "hard")
    # The same one-triple path is harder from a well-connected node than from a leaf.
    only_length = paths(CHAIN, lengths=[1], length_weight=1.0)
    assert {o.columns["difficulty"] for r in only_length for o in r.outputs} == {0.0}
    hub = paths([chunk("h", [("Vienna", "is capital of", "Austria"), ("Mozart", "moved to",
                                                                       "Vienna"),
                             ("Danube", "flows through", "Vienna")])], lengths=[1],
                paths_per_chunk=3, length_weight=0.0)
    scores = {o.columns["start_entity"]: o.columns["difficulty"] for o in hub[0].outputs}
    # Vienna has degree 3 (the graph's maximum): log(4)/log(4); a leaf: log(2)/log(4)
    assert scores == {"Vienna": 1.0, "Mozart": 0.5, "Danube": 0.5}


def test_anchor_without_triples_is_a_drop() -> None:
    empty = chunk("e", [])
    [result] = paths([empty])
    assert result.dropped == "chunk has no triples to start a path from"


def test_question_checks() -> None:
    check = KgCheck(name="k")
    record = {"question": "Which river flows through the capital of Austria?",
              "answer": "Danube", "start_entity": "Austria"}
    assert check.process(record, None) is None
    assert check.process({**record, "question": "Is the Danube in Austria?"}, None) == \
        "the question gives away its answer 'Danube'"
    assert check.process({**record, "question": "Which river is it?"}, None) == (
        "the question does not mention the path's start entity 'Austria' (0.00 of its words "
        "< 0.50)")


def test_kaqg_features_hit_the_level_target_and_irt_is_1pl() -> None:
    import random

    for level in ("easy", "medium", "hard"):
        for seed in range(20):
            f = feature_levels(level, random.Random(seed))
            weighted = f["stem_length"] + f["stem_technical_term_density"] + \
                1.5 * f["stem_cognitive_level"]
            assert abs(weighted - target_score(level)) <= 1.0
    # KAQG's targets 10/14/18 of 7.7..23.1 rescaled onto 3.5..10.5
    assert [round(target_score(x), 2) for x in ("easy", "medium", "hard")] == [4.55, 6.36, 8.18]
    assert irt_difficulty(0, 4) == 2.197 and irt_difficulty(4, 4) == -2.197
    assert irt_difficulty(2, 4) == 0.0


def test_concepts_keep_the_chunks_own_entities() -> None:
    names = {"vienna": "Vienna", "danube": "The Danube"}
    raw = [{"concept": "City", "entities": ["vienna", "Paris"]},
           {"concept": "Vienna", "entities": ["Vienna"]},  # an entity is not its own concept
           {"concept": "River", "entities": ["Danube"]},
           {"concept": "Nothing here", "entities": ["Rome"]}, "junk"]
    assert mapped_concepts(raw, names) == [
        {"concept": "City", "entities": ["Vienna"]},
        {"concept": "River", "entities": ["The Danube"]}]


# --- the shipped recipe --------------------------------------------------------------------------


def test_shipped_recipe_end_to_end(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(responder)
    out = tmp_path / "out"
    summary = asyncio.run(run_recipe(Recipe.load("kg-questions"), out,
                                     RunOptions(backend=backend))).to_json()
    assert_closed(summary)
    assert step(summary, "triples")["llm_calls"] == step(summary, "chunks")["out"]
    rows = read_jsonl(out / "data.jsonl")
    assert rows
    assert {r["path_length"] for r in rows} >= {1, 2}
    for row in rows:
        assert set(row) >= {"question", "answer", "path", "path_length", "difficulty",
                            "reasoning"}
        assert row["path_length"] == len(row["path"])
        assert all(set(h) >= {"head", "relation", "tail", "chunk_id"} for h in row["path"])
        source = row["_meta"]["source"]
        assert source["path"].endswith(".md") and source["chunk_id"] == row["chunk_id"]
        assert 0 <= source["char_start"] < source["char_end"]
        assert 0.0 <= row["difficulty"] <= 1.0
    again = asyncio.run(run_recipe(Recipe.load("kg-questions"), out,
                                   RunOptions(backend=backend))).to_json()
    assert again["llm_calls"] == 0 and again["records"] == summary["records"]
    # KAQG stages: concepts (one call per chunk with triples), item features with Bloom's
    # level in every question prompt, IRT difficulty from k = 4 answers per question.
    assert step(summary, "concepts")["llm_calls"] == step(summary, "triples")["out"]
    assert step(summary, "irt")["llm_calls"] == 4 * step(summary, "irt")["in"]
    for row in rows:
        features = row["kaqg_features"]
        assert set(features) == {"stem_length", "stem_technical_term_density",
                                 "stem_cognitive_level"}
        weighted = (features["stem_length"] + features["stem_technical_term_density"]
                    + 1.5 * features["stem_cognitive_level"])
        assert abs(weighted - target_score(row["difficulty_level"])) <= 1.0
        assert row["bloom_level"] == BLOOM[features["stem_cognitive_level"]]
        right = 4 if row["answer"] == "Vienna" else 0
        assert (row["irt_correct"], row["irt_k"]) == (right, 4)
        assert row["irt_difficulty"] == irt_difficulty(right, 4)
        assert row["irt_level"] == ("easy" if right else "hard")
    prompts = [p for p in backend.prompts if "Start entity:" in p]
    assert prompts and all("Bloom's" in p for p in prompts)
    # concept (hypernym) edges reach the graph: some path or concept map names "Landmark"
    assert any(h["relation"] == "is a" for r in rows for h in r["path"]) or \
        any("Landmark" in kinds for r in rows for kinds in r["concepts"].values())
