"""SynthQuestions fidelity, second pass (issue 20 items 3, 4 and 12)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import make_record
from synthloom.sources.retrieval import RetrieveBm25

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
