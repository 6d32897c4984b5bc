"""SynthQuestions made faithful to the paper and its repo, on the ScriptedTestBackend (a test
double, no model): the synthesis prompt's requirements, demos never from the target document,
backend-aware limits (llama.cpp grammar caps vs the paper's values), the retrieval floor and a
pluggable search backend, truncated preference candidates, topics without a cap, and the
llama.cpp-only judge threshold."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import ItemResult, make_record
from synthloom.llm.client import LLMClient
from synthloom.llm.types import LLMRequest, RawCompletion
from synthloom.methods.synthquestions.synthesize import (
    SYNTHESIS_SCHEMA,
    SYNTHESIS_SCHEMA_UNCAPPED,
    SynthesizeInstruction,
)
from synthloom.prompting.templates import load_template
from synthloom.quality.judges import JudgeRubric
from synthloom.quality.preferences import PreferencePairs
from synthloom.quality.topics import ClusterTopics, auto_topics
from synthloom.sources.retrieval import RetrieveBm25, SearchHit
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text
from tests.unit.test_judges_rubric import read, run

SEVEN = ("Specificity", "Domain Knowledge", "Complexity", "Problem-Solving", "Creativity",
         "Technical Accuracy", "Real-world Application")


class ScriptedLlamaCppKind(ScriptedTestBackend):
    """The scripted test double reporting kind ``llamacpp`` (to select the grammar limits)."""

    kind = "llamacpp"


def synthesis_answer(request: LLMRequest, seed: int | None) -> str:
    return json.dumps({"thought": "t", "scene": "s", "query": "How should I plan this?",
                       "query_compositions": {"ability": "a", "knowledge": "k",
                                              "extra_information": "e", "output": "o"}})


def demo(doc_id: str, words: int = 20) -> dict:
    return make_record({"instruction": "question " * words, "document": "text " * words,
                        "document_id": doc_id, "scene": "a scene",
                        "query_compositions": {"ability": "a"}}, step="attribute")


def synthesize(tmp_path: Path, backend: ScriptedTestBackend, target: dict, demos: list[dict],
               **config) -> tuple[SynthesizeInstruction, object]:
    step = SynthesizeInstruction(name="s", demos="d", context=["d"], **config)
    run_ctx = RunContext(run_dir=tmp_path, llm=LLMClient(backend), context={"d": demos})
    step.setup(run_ctx)
    result = asyncio.run(step.process(target, ItemContext(run=run_ctx, item_key="k", seed=2)))
    return step, result


def test_synthesis_prompt_has_the_repo_requirements_scene_steps_and_thought() -> None:
    template = load_template("synthquestions/prompts/synthesize.jinja")
    system, user = template.render_messages({"demos": ["<document>\nD\n</document>"],
                                             "document": "THE DOC"})
    assert system["role"] == "system" and "<document>\nD\n</document>" in system["content"]
    text = user["content"]
    assert all(f"> {name}:" in text for name in SEVEN)  # the seven requirements block
    assert "logical steps from the document's content to a query" in text
    assert '"thought"' in text and "so that each of the requirements above is satisfied" in text
    assert text.index('"thought"') < text.index('"scene"') < text.index('"query"')
    assert "THE DOC" in text and "search engine" in text


def test_demos_never_come_from_the_target_document_scripted_backend(tmp_path: Path) -> None:
    target = make_record({"text": "the target document"}, step="corpus")
    own = [demo(target["_meta"]["id"]) for _ in range(5)]
    others = [demo("other-a"), demo("other-b")]
    backend = ScriptedTestBackend(synthesis_answer)
    _, result = synthesize(tmp_path, backend, target, own + others)
    ids = result.meta["demo_ids"]
    assert set(ids) == {d["_meta"]["id"] for d in others}  # both others, none of its own
    prompt = backend.prompts  # the demos' documents never include the target's demos
    assert backend.calls == 1 and sum(prompt.values()) == 1
    # Only the target's own demos: dropped with the reason, no call.
    alone = ScriptedTestBackend(synthesis_answer)
    _, dropped = synthesize(tmp_path, alone, target, own)
    assert isinstance(dropped, ItemResult) and "attributed to this document" in dropped.dropped
    assert alone.calls == 0


def capture(store: list[LLMRequest]):
    def answer(request: LLMRequest, seed: int | None) -> str:
        store.append(request)
        return synthesis_answer(request, seed)
    return answer


def test_limits_follow_the_backend_scripted_backend(tmp_path: Path) -> None:
    long_doc = "alpha " * 3000  # 18,000 characters
    target = make_record({"text": long_doc}, step="corpus")
    demos = [demo(f"doc-{i}", words=300) for i in range(12)]
    paper_reqs: list[LLMRequest] = []
    step, result = synthesize(tmp_path, ScriptedTestBackend(capture(paper_reqs)), target, demos)
    [request] = paper_reqs
    assert request.json_schema == SYNTHESIS_SCHEMA_UNCAPPED and request.params.max_tokens == 2048
    user = request.messages[-1]["content"]
    shown = user.split("<document>\n")[1].split("\n</document>")[0]
    # The paper profile cuts at 4,096 tokens (the model's counter), here further shrunk to fit
    # the scripted double's 8,192-token window (half of what the template leaves).
    count = LLMClient(ScriptedTestBackend()).count_tokens
    assert len(shown) > 4096 and count(shown) <= 4096
    # The whole prompt (system + demos + user) stays under the paper's 7,500 tokens.
    count = LLMClient(ScriptedTestBackend()).count_tokens
    assert sum(count(m["content"]) for m in request.messages) <= 7500
    assert result.meta["demo_over_budget"] is False and len(result.meta["demo_ids"]) <= 10

    grammar_reqs: list[LLMRequest] = []
    _, result = synthesize(tmp_path, ScriptedLlamaCppKind(capture(grammar_reqs)), target, demos)
    [request] = grammar_reqs
    assert request.json_schema == SYNTHESIS_SCHEMA and request.params.max_tokens == 1200
    assert request.json_schema["properties"]["query"]["maxLength"] == 900
    assert result.meta["demo_tokens"] <= 1500

    # An explicit value wins over the profile.
    explicit: list[LLMRequest] = []
    synthesize(tmp_path, ScriptedTestBackend(capture(explicit)), target, demos, max_tokens=333)
    assert explicit[0].params.max_tokens == 333


def test_paper_packing_stops_at_the_first_demo_that_does_not_fit(tmp_path: Path) -> None:
    step = SynthesizeInstruction(name="s", demos="d", context=["d"], demo_token_budget=100)
    step.setup(RunContext(run_dir=tmp_path))
    demos = [demo(f"d{i}", words=w) for i, w in enumerate((10, 60, 5, 5, 5))]
    count = lambda text: len(text.split())  # noqa: E731 - a stand-in tokenizer
    order_ids = {d["_meta"]["id"]: d for d in demos}
    paper = step.limits(None)
    rendered, ids, total = step.pack_demos(demos, anchor="a", count=count, limits=paper,
                                           base_tokens=20)
    assert ids and 20 + total <= 100
    skipped = [i for i in order_ids if i not in ids]
    # Every demo after the first misfit is left out, even the short ones that would fit.
    shuffled = [demos[i]["_meta"]["id"] for i in step.ring(demos).walk("a")]
    first_out = next(i for i, d in enumerate(shuffled) if d not in ids)
    assert ids == shuffled[:first_out] and set(skipped) == set(shuffled[first_out:])
    grammar = SynthesizeInstruction(name="g", demos="d", context=["d"], limits="grammar",
                                    demo_token_budget=100)
    grammar.setup(RunContext(run_dir=tmp_path))
    _, gids, _ = grammar.pack_demos(demos, anchor="a", count=count, limits=grammar.limits(None))
    assert len(gids) > len(ids)  # grammar mode skips a misfit and keeps packing shorter ones


class KeywordSearch:
    """A search-API adapter as a user would write one (here over a fixed list of pages)."""

    def __init__(self, pages: list[str], floor: float = 0.0) -> None:
        self.pages = pages
        self.queries: list[str] = []

    def search(self, query: str, k: int) -> list[SearchHit]:
        self.queries.append(query)
        words = set(query.lower().split())
        scored = sorted(((len(words & set(p.lower().split())), i) for i, p in
                         enumerate(self.pages)), reverse=True)
        return [SearchHit(self.pages[i], float(s), f"web-{i}", url=f"https://example.org/{i}")
                for s, i in scored[:k]]


ADAPTER: list[KeywordSearch] = []


def make_search(pages: list[str]) -> KeywordSearch:
    ADAPTER.append(KeywordSearch(pages))
    return ADAPTER[-1]


def test_search_backend_adapter_and_score_floor(tmp_path: Path) -> None:
    step = RetrieveBm25(name="r", search="python:tests.unit.test_synthquestions_paper:make_search",
                        search_options={"pages": ["sourdough starter feeding", "tide tables"]},
                        min_score=1.0)
    run_ctx = RunContext(run_dir=tmp_path)
    step.setup(run_ctx)
    ctx = ItemContext(run=run_ctx, item_key="k", seed=0)
    out = asyncio.run(step.process({"instruction": "sourdough starter feeding schedule"},
                                   ctx))
    assert out.columns["document_id"] == "web-0"
    assert out.columns["document_url"] == "https://example.org/0"
    assert ADAPTER[-1].queries == ["sourdough starter feeding schedule"]
    miss = asyncio.run(step.process({"instruction": "quantum chromodynamics"}, ctx))
    assert isinstance(miss, ItemResult) and "min_score 1.0" in miss.dropped
    with pytest.raises(Exception, match="python:MODULE:FACTORY"):
        RetrieveBm25(name="r", search="elastic").setup(run_ctx)
    with pytest.raises(Exception, match="no search"):
        RetrieveBm25(name="r", search="python:json:dumps", search_options={"obj": 1}).setup(
            run_ctx)


def test_bm25_documents_are_cut_per_backend(tmp_path: Path) -> None:
    corpus = [make_record({"text": "caching headers " * 2000}, step="corpus")]
    step = RetrieveBm25(name="r", corpus="corpus", context=["corpus"])
    for backend, longest in ((ScriptedTestBackend(), 4096), (ScriptedLlamaCppKind(), 800)):
        run_ctx = RunContext(run_dir=tmp_path, llm=LLMClient(backend), context={"corpus": corpus})
        out = asyncio.run(step.process({"instruction": "caching headers"},
                                       ItemContext(run=run_ctx, item_key="k", seed=0)))
        text = out.columns["document"]
        count = LLMClient(backend).count_tokens
        assert count(text) <= longest
        if backend.kind != "llamacpp":  # the paper repo's 4,096 tokens, not characters
            assert len(text) > 4096 and count(text) > 4000


class ScriptedTruncating(ScriptedTestBackend):
    """The scripted test double; answers with an odd seed stop on the token limit."""

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        raw = await super().complete(request, seed=seed)
        if request.json_schema is None and (seed or 0) % 2:
            raw.finish_reason = "length"
        return raw


def test_truncated_preference_candidates_are_excluded_scripted_backend(tmp_path: Path) -> None:
    uf = ("instruction_following", "honesty", "truthfulness", "helpfulness")

    def answer(request: LLMRequest, seed: int | None) -> str:
        if request.json_schema is None:
            return f"Answer {seed}" + " detail" * ((seed or 0) % 5)
        text = last_user_text(request)
        level = 1 + min(4, text.count("detail"))
        return json.dumps({c: {"analysis": "ok", "score": level} for c in uf})

    backend = ScriptedTruncating(answer)
    run(tmp_path, [PreferencePairs(name="pairs", n=5, temperature=0.8, min_margin=1,
                                   judge={"rubric": "ultrafeedback"})], backend,
        rows=[{"instruction": "Explain rainbows in detail"}])
    pairs = read(tmp_path, "data.jsonl")
    dropped = read(tmp_path, "dropped.jsonl")
    assert len(pairs) + len(dropped) == 1
    assert pairs, dropped
    for pair in pairs:
        assert pair["_meta"]["truncated_excluded"] >= 1
        assert len(pair["candidate_scores"]) == 5 - pair["_meta"]["truncated_excluded"]
        for side in ("chosen", "rejected"):  # only answers that finished (even seeds)
            seed = int(pair[side].split()[1])
            assert seed % 2 == 0, pair[side]


def test_topic_count_has_no_cap_and_hdbscan_finds_topics(tmp_path: Path) -> None:
    assert auto_topics(200_000) == round((200_000 / 2) ** 0.5) > 50
    assert auto_topics(10) == 2 and auto_topics(1) == 1
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3] * 10
    vectors = np.vstack([c + rng.normal(0, 0.1, (30, 8)) for c in centres])
    step = ClusterTopics(name="t", column="instruction", algorithm="hdbscan", min_topic_size=5)
    topics = step.cluster(vectors)
    assert len(set(topics.tolist())) == 3
    for block in range(3):  # each well-separated blob is one topic
        assert len(set(topics[block * 30:(block + 1) * 30].tolist())) == 1


def test_judge_threshold_for_llamacpp_only_scripted_backend(tmp_path: Path) -> None:
    arena = ("specificity", "domain_knowledge", "complexity", "problem_solving", "creativity",
             "technical_accuracy", "real_world_application")

    def six(request: LLMRequest, seed: int | None) -> str:
        return json.dumps({c: {"analysis": "a", "score": int(i < 6)} for i, c in enumerate(arena)})

    rows = [{"instruction": "Plan a week of meals for a diabetic runner"}]
    for backend, kept in ((ScriptedTestBackend(six), 0), (ScriptedLlamaCppKind(six), 1)):
        out = tmp_path / backend.kind
        run(out, [JudgeRubric(name="j", rubric="arena7", min_total=7, min_total_llamacpp=5)],
            backend, rows=rows)
        assert len(read(out, "data.jsonl")) == kept
        if not kept:
            assert "< min_total 7" in read(out, "dropped.jsonl")[0]["reason"]


def test_seed_word_cap_only_on_llamacpp_scripted_backend(tmp_path: Path) -> None:
    from synthloom.methods.common.seeds import SeedInstruction

    step = SeedInstruction(name="seeds")
    long_seed = {"instruction": "Review this contract clause by clause: " + "term " * 900}
    for backend, dropped in ((ScriptedTestBackend(), False), (ScriptedLlamaCppKind(), True)):
        ctx = ItemContext(run=RunContext(run_dir=tmp_path, llm=LLMClient(backend)),
                          item_key="k", seed=0)
        result = step.to_result(step.process(long_seed, ctx))
        assert bool(result.dropped) is dropped
        if dropped:
            assert "too long: 906 words (> 600)" in result.dropped
