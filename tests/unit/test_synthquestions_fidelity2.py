"""SynthQuestions fidelity, second pass (issue 20 items 3, 4 and 12)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import SynthloomError
from synthloom.core.records import Output, make_record
from synthloom.llm.client import LLMClient
from synthloom.llm.types import LLMRequest
from synthloom.methods.synthquestions.synthesize import SynthesizeInstruction
from synthloom.quality.topics import ClusterTopics, reassign_outliers
from synthloom.sources.retrieval import RetrieveBm25
from tests.support.scripted_backend import ScriptedTestBackend

RECIPE = Path(__file__).parents[2] / "src/synthloom/recipes/synthquestions.yaml"


def doc(text: str, title: str = "") -> dict:
    return make_record({"text": text, "title": title}, step="corpus")


# --- item 3: retrieval queries the keywords, the instruction only as the fallback -----------

def test_retrieval_searches_the_keywords_and_falls_back_to_the_instruction(tmp_path: Path
                                                                           ) -> None:
    corpus = [doc("Feeding a sourdough starter with flour and water; sourdough bread baking "
                  "hydration and sourdough crumb", "Sourdough"),
              doc("Cache-Control max-age and ETag headers for HTTP caching", "HTTP caching"),
              doc("Lubricate the bicycle chain and measure its stretch", "Chains")]
    steps = yaml.safe_load(RECIPE.read_text())["steps"]
    retrieve = next(s for s in steps if s["name"] == "retrieve")
    assert retrieve["query_columns"] == ["keywords"]
    assert retrieve["fallback_columns"] == ["instruction"]
    step = RetrieveBm25(name="r", corpus="corpus", context=["corpus"],
                        query_columns=retrieve["query_columns"],
                        fallback_columns=retrieve["fallback_columns"], min_score=0.1)
    assert step.reads() == ["keywords", "instruction"]
    ctx = ItemContext(run=RunContext(run_dir=tmp_path, context={"corpus": corpus}),
                      item_key="k", seed=1)
    # A long pasted seed about sourdough whose extracted keywords are about HTTP caching: the
    # keywords decide (with instruction + keywords, the pasted text would win).
    seed = {"instruction": "My sourdough starter, sourdough bread, sourdough crumb and "
                           "hydration notes ... " * 5 + "why is my site slow?",
            "keywords": ["HTTP caching", "ETag"]}
    assert step.query(seed) == "HTTP caching ETag"
    out = asyncio.run(step.process(seed, ctx))
    assert out.columns["document_id"] == corpus[1]["_meta"]["id"]
    # No keywords (empty list, missing, blank strings): the instruction is the query.
    for keywords in ([], None, ["", " "]):
        bare = {"instruction": "How do I lubricate a bicycle chain?", "keywords": keywords}
        assert step.query(bare) == "How do I lubricate a bicycle chain?"
        out = asyncio.run(step.process(bare, ctx))
        assert out.columns["document_id"] == corpus[2]["_meta"]["id"]


# --- item 4: documents cut at 4,096 tokens (paper profile); zero demos when the first misfits

class BigWindow(ScriptedTestBackend):
    """The scripted double with a 32K window (the paper's budgets, not the window, decide)."""

    context_length = 32768


class BigWindowLlamaCpp(BigWindow):
    kind = "llamacpp"


def synthesis_answer(request: LLMRequest, seed: int | None) -> str:
    return json.dumps({"thought": "t", "scene": "s", "query": "How should I plan this?",
                       "query_compositions": {"ability": "a", "knowledge": "k",
                                              "extra_information": "e", "output": "o"}})


def capture(store: list[LLMRequest]):
    def answer(request: LLMRequest, seed: int | None) -> str:
        store.append(request)
        return synthesis_answer(request, seed)
    return answer


def demo(doc_id: str, words: int = 20) -> dict:
    return make_record({"instruction": "question " * words, "document": "text " * 20,
                        "document_id": doc_id, "scene": "a scene",
                        "query_compositions": {"ability": "a"}}, step="attribute")


def synthesize(tmp_path: Path, backend: ScriptedTestBackend, text: str, demos: list[dict],
               **config) -> tuple[LLMClient, object]:
    step = SynthesizeInstruction(name="s", demos="d", context=["d"], **config)
    client = LLMClient(backend)
    run_ctx = RunContext(run_dir=tmp_path, llm=client, context={"d": demos})
    step.setup(run_ctx)
    target = make_record({"text": text}, step="corpus")
    return client, asyncio.run(step.process(target, ItemContext(run=run_ctx, item_key="k",
                                                                 seed=2)))


def shown_document(request: LLMRequest) -> str:
    return request.messages[-1]["content"].split("<document>\n")[1].split("\n</document>")[0]


def test_paper_profile_keeps_documents_up_to_4096_tokens_whole(tmp_path: Path) -> None:
    whole = "alpha " * 2000  # 12,000 characters, 3,000 tokens of the scripted counter
    requests: list[LLMRequest] = []
    client, result = synthesize(tmp_path, BigWindow(capture(requests)), whole, [demo("o")])
    assert shown_document(requests[0]).strip() == whole.strip()  # not cut to 4,096 chars
    longer = "alpha " * 3000  # 4,500 tokens: cut by the model's counter to 4,096
    requests.clear()
    synthesize(tmp_path, BigWindow(capture(requests)), longer, [demo("o")])
    shown = shown_document(requests[0])
    assert 4000 < client.count_tokens(shown) <= 4096 and len(shown) > 4096 * 2


def test_paper_profile_sends_zero_demos_when_the_first_does_not_fit(tmp_path: Path) -> None:
    # Every demo is bigger than the paper's 7,500-token prompt budget.
    demos = [demo(f"other-{i}", words=4000) for i in range(3)]
    requests: list[LLMRequest] = []
    _, result = synthesize(tmp_path, BigWindow(capture(requests)), "a short document", demos)
    assert isinstance(result, Output) and len(requests) == 1  # the repo: a prompt without demos
    assert result.meta["demos"] == 0 and result.meta["demo_ids"] == []
    assert "question question" not in requests[0].messages[0]["content"]
    # The first demo of the walk does not fit but a later one would: still none (the repo
    # stops at the first misfit), and the grammar profile keeps its shortest-demo fallback.
    step = SynthesizeInstruction(name="s", demos="d", context=["d"], demo_token_budget=5)
    step.setup(RunContext(run_dir=tmp_path))
    pool = [make_record({"instruction": "long " * n, "document": "d", "scene": "s",
                         "query_compositions": {}}, step="d") for n in (40, 10, 25)]
    words = lambda t: len(t.split())  # noqa: E731
    assert step.pack_demos(pool, anchor="doc", count=words,
                           limits=step.limits(None)) == ([], [], 0)
    grammar = SynthesizeInstruction(name="s", demos="d", context=["d"], demo_token_budget=5,
                                    limits="grammar")
    grammar.setup(RunContext(run_dir=tmp_path))
    _, ids, _ = grammar.pack_demos(pool, anchor="doc", count=words)
    assert ids == [pool[1]["_meta"]["id"]]
    requests.clear()
    _, result = synthesize(tmp_path, BigWindowLlamaCpp(capture(requests)), "a short document",
                           [demo(f"other-{i}", words=1000) for i in range(3)])
    assert result.meta["demos"] == 1 and result.meta["demo_over_budget"] is True


def test_retrieved_documents_are_cut_at_4096_tokens_in_the_paper_profile(tmp_path: Path
                                                                        ) -> None:
    fits = "sourdough starter " * 900  # 16,200 characters, 4,050 tokens: kept whole
    long = "caching headers " * 1500  # 6,000 tokens: cut to 4,096
    corpus = [make_record({"text": fits, "title": "a"}, step="corpus"),
              make_record({"text": "etag " + long, "title": "b"}, step="corpus")]
    step = RetrieveBm25(name="r", corpus="corpus", context=["corpus"])
    client = LLMClient(ScriptedTestBackend())
    ctx = ItemContext(run=RunContext(run_dir=tmp_path, llm=client, context={"corpus": corpus}),
                      item_key="k", seed=0)
    assert client.count_tokens(fits) <= 4096
    out = asyncio.run(step.process({"instruction": "sourdough"}, ctx))
    assert out.columns["document"] == fits
    out = asyncio.run(step.process({"instruction": "etag"}, ctx))
    assert out.columns["document_id"] == corpus[1]["_meta"]["id"]
    assert 4000 < client.count_tokens(out.columns["document"]) <= 4096


# --- item 12: algorithm: bertopic (UMAP -> HDBSCAN -> outliers to the nearest topic) --------

def blobs(n_per: int = 60, centres: int = 5, dim: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    middle = rng.normal(size=(centres, dim)) * 4
    points = np.concatenate([c + rng.normal(size=(n_per, dim)) * 0.4 for c in middle])
    # a few strays between the clusters: HDBSCAN's outliers
    strays = rng.normal(size=(10, dim)) * 4
    return np.concatenate([points, strays]).astype(np.float32)


@pytest.mark.timeout(600)  # numba compiles UMAP on first use (about a minute on a busy CPU)
def test_bertopic_finds_the_clusters_and_leaves_no_outlier() -> None:
    pytest.importorskip("umap", reason="the topics extra (umap-learn) is not installed")
    vectors = blobs()
    step = ClusterTopics(name="t", column="instruction", algorithm="bertopic", seed=3)
    topics = step.cluster(vectors)
    assert (topics >= 0).all() and len(topics) == len(vectors)  # no record left as -1
    assert len(set(topics[:300].tolist())) == 5
    for c in range(5):  # each blob is one topic
        assert len(set(topics[c * 60:(c + 1) * 60].tolist())) == 1
    again = ClusterTopics(name="t", column="instruction", algorithm="bertopic", seed=3)
    assert (again.cluster(vectors) == topics).all()  # deterministic with the seed


def test_bertopic_without_umap_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap -> ImportError
    step = ClusterTopics(name="t", column="instruction", algorithm="bertopic")
    with pytest.raises(SynthloomError, match=r"umap-learn.*synthloom\[topics\]"):
        step.cluster(blobs(n_per=10))


def test_outliers_go_to_the_nearest_topic_centroid() -> None:
    vectors = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.9, 0.1],
                        [0.8, 0.3, 0], [0.1, 0.7, 0.2], [0, 0, 1]], dtype=np.float32)
    labels = np.array([4, 4, 7, 7, -1, -1, -1])
    assert reassign_outliers(vectors, labels).tolist() == [4, 4, 7, 7, 4, 7, 7]
    assert reassign_outliers(vectors, np.full(7, -1)).tolist() == [0] * 7
