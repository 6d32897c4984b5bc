"""retrieve_bm25 at scale: built once off the event loop, saved under the run folder and
memory-mapped, queried in batches, and picklable (Ray actors get a copy of the step)."""

from __future__ import annotations

import asyncio
import json
import pickle
import random
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.context import ItemContext, RunContext
from synthloom.core.recipe import Recipe
from synthloom.core.records import ItemResult, make_record
from synthloom.sources.retrieval import Bm25Index, RetrieveBm25

TOPICS = ["sourdough starter flour water", "http cache headers etag", "bicycle chain stretch",
          "tide tables harbour moon", "copper wire gauge current", "orchard apple pruning"]


def corpus(n: int = 60, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    filler = [f"filler{i}" for i in range(200)]
    return [make_record({"text": f"{TOPICS[i % len(TOPICS)]} " + " ".join(
        rng.choice(filler) for _ in range(30)), "title": f"doc {i}"}, step="corpus")
        for i in range(n)]


class Recording(RetrieveBm25):
    """The real step, noting which thread built the index and how many searches ran."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[int, str]] = []

    def search_many(self, queries: list[str], documents: list[dict[str, Any]],
                    run_dir: Path | None = None) -> list[Any]:
        self.calls.append((len(queries), threading.current_thread().name))
        return super().search_many(queries, documents, run_dir)


def step_and_ctx(tmp_path: Path, docs: list[dict[str, Any]], cls: type = RetrieveBm25,
                 ) -> tuple[RetrieveBm25, RunContext]:
    step = cls(name="r", corpus="corpus", context=["corpus"], query_columns=["instruction"])
    run = RunContext(run_dir=tmp_path, context={"corpus": docs})
    step.setup(run)
    return step, run


async def ask(step: RetrieveBm25, run: RunContext, queries: list[str]) -> list[Any]:
    return await asyncio.gather(*(step.process({"instruction": q}, ItemContext(
        run=run, item_key=f"k{i}", seed=i)) for i, q in enumerate(queries)))


def test_one_batch_is_one_search_off_the_event_loop(tmp_path: Path) -> None:
    docs = corpus()
    step, run = step_and_ctx(tmp_path, docs, Recording)
    queries = [TOPICS[i % len(TOPICS)] for i in range(32)] + ["the of and"]  # last: stop words
    out = asyncio.run(ask(step, run, queries))
    assert len(step.calls) == 1 and step.calls[0][0] == 33  # queued together, one search
    assert step.calls[0][1] != threading.main_thread().name  # built and searched in a thread
    index = Bm25Index([str(d["text"]) for d in docs], "en")
    for query, result in zip(queries[:-1], out, strict=False):
        best = index.top(query, 1)[0]
        assert result.columns["document_id"] == docs[best[0]]["_meta"]["id"]
        assert result.columns["retrieval_score"] == round(best[1], 4)
    assert isinstance(out[-1], ItemResult) and "no supporting document" in out[-1].dropped


def test_the_index_is_saved_once_and_memory_mapped(tmp_path: Path) -> None:
    docs = corpus()
    step, run = step_and_ctx(tmp_path, docs)
    first = asyncio.run(ask(step, run, TOPICS))
    saved = list((tmp_path / "index").glob("bm25-*/params.index.json"))
    assert len(saved) == 1
    stamp = saved[0].stat().st_mtime_ns
    # Another process (a fresh step, same corpus) loads the same files instead of building.
    other, run2 = step_and_ctx(tmp_path, docs)
    second = asyncio.run(ask(other, run2, TOPICS))
    assert [r.columns for r in second] == [r.columns for r in first]
    assert saved[0].stat().st_mtime_ns == stamp
    assert isinstance(other._index.retriever.scores["data"], np.memmap)  # shared pages
    # A different corpus is another index.
    third, run3 = step_and_ctx(tmp_path, corpus(40, seed=1))
    asyncio.run(ask(third, run3, TOPICS[:1]))
    assert len(list((tmp_path / "index").glob("bm25-*/params.index.json"))) == 2


def test_step_pickles_after_its_index_was_built(tmp_path: Path) -> None:
    docs = corpus()
    step, run = step_and_ctx(tmp_path, docs)
    before = asyncio.run(ask(step, run, TOPICS))
    assert step._index is not None
    copy = pickle.loads(pickle.dumps(step))  # was: cannot pickle '_thread.lock' object
    assert copy._index is None and copy.config == step.config
    copy.setup(run)
    after = asyncio.run(ask(copy, run, TOPICS))
    assert [r.columns for r in after] == [r.columns for r in before]


def test_adapter_steps_pickle_and_search_off_the_loop(tmp_path: Path) -> None:
    step = RetrieveBm25(name="r", search="python:tests.unit.test_retrieval_scale:make_pages")
    run = RunContext(run_dir=tmp_path)
    step.setup(run)
    out = asyncio.run(ask(step, run, ["tide tables", "copper"]))
    assert [r.columns["document_id"] for r in out] == ["p0", "p1"]
    assert PAGES[-1].threads and threading.main_thread().name not in PAGES[-1].threads
    copy = pickle.loads(pickle.dumps(step))
    copy.setup(run)
    assert asyncio.run(ask(copy, run, ["copper"]))[0].columns["document_id"] == "p1"


class Pages:
    def __init__(self) -> None:
        self.threads: list[str] = []

    def search(self, query: str, k: int) -> list[Any]:
        from synthloom.sources.retrieval import SearchHit

        self.threads.append(threading.current_thread().name)
        page = 0 if "tide" in query else 1
        return [SearchHit(f"page {page}", 2.0, f"p{page}")]


PAGES: list[Pages] = []


def make_pages() -> Pages:
    PAGES.append(Pages())
    return PAGES[-1]


def test_retrieval_through_the_executor(tmp_path: Path) -> None:
    docs = [{"text": f"{t} " + "extra words here " * 3, "title": t} for t in TOPICS]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"instruction": t.split()[0] + " " + t.split()[1], "n": i}
               for i, t in enumerate(TOPICS * 20)]  # (identical rows would be one source row)
    queries.append({"instruction": "quantum chromodynamics"})
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    recipe = Recipe.from_dict({
        "name": "retrieval",
        "sources": [{"name": "corpus", "type": "jsonl", "path": str(tmp_path / "docs.jsonl")},
                    {"name": "seeds", "type": "jsonl", "path": str(tmp_path / "q.jsonl")}],
        "steps": [{"name": "retrieve", "type": "retrieve_bm25", "input": "seeds",
                   "corpus": "corpus", "context": ["corpus"], "query_columns": ["instruction"]}],
    })
    out = tmp_path / "out"
    summary = asyncio.run(run_recipe(recipe, out, RunOptions())).to_json()
    stats = next(s for s in summary["steps"] if s["name"] == "retrieve")
    assert (stats["in"], stats["out"], stats["dropped"]) == (121, 120, 1)
    rows = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    assert all(r["document_title"].startswith(r["instruction"]) for r in rows)
    assert len(list((out / "index").glob("bm25-*"))) >= 1


def test_batched_queries_equal_bm25s_one_query_at_a_time() -> None:
    bm25s = pytest.importorskip("bm25s", reason="bm25s is a synthloom dependency")
    docs = corpus(3000, seed=2)
    texts = [str(d["text"]) for d in docs] + ["", "the of", "Ünïcode wörds 12 a"]
    index = Bm25Index(texts, "en")
    plain = bm25s.BM25()
    plain.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    for key in ("data", "indices", "indptr"):  # the compact build: bm25s's very matrix
        assert np.array_equal(index.retriever.scores[key], plain.scores[key])
    assert index.retriever.vocab_dict == plain.vocab_dict
    queries = [f"{TOPICS[i % 6].split()[i % 3]} filler{i % 200}" for i in range(50)]
    queries += ["nothing known here", "the and"]
    got = index.top_many(queries, 3)
    for query, found in zip(queries, got, strict=True):
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.vocab:
            assert found == []
            continue
        ids, scores = plain.retrieve(tokens, k=3, show_progress=False)
        assert [s for _, s in found] == pytest.approx(scores[0].tolist())
        assert [i for i, _ in found] == ids[0].tolist() or len(set(scores[0].tolist())) < 3
