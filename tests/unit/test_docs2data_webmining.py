"""web-mining steps with the scripted test backend (ScriptedTestBackend, a test double, no
model): the recall classifier trained from the bundled labelled file (and the keyword
scorer), drops that carry the score, extraction with invented pairs dropped for a reason,
refinement kept consistent with the original, and the shipped recipe end to end."""

from __future__ import annotations

import asyncio
import functools
import json
import re
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import Recipe
from synthloom.core.records import make_record
from synthloom.methods.webmining.extract import WebminingInText
from synthloom.methods.webmining.recall import WebminingRecall, keyword_score, read_labels
from tests.support.runs import assert_closed, read_jsonl, step
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

PASSAGE_RE = re.compile(r'"""\n(.*?)\n"""', re.DOTALL)
INVENTED = {"question": "What is the best pizza topping in Naples?",
            "answer": "Pineapple with extra cheese and chocolate."}

FAQ = ("Frequently asked questions. How do I reset my password? Open the login page, click "
       "'Forgot password' and follow the link we email you. Why was my card declined? Your bank "
       "refused the payment; call the number on the back of the card.")
NEWS = ("The council met on Tuesday evening and approved the budget for next year. The mayor "
        "said the new swimming pool would open in the spring, and residents applauded.")


def responder(request, seed, *, drift: bool = False) -> str:
    text = last_user_text(request)
    if "question-answer pairs that appear in this text" in text:
        parts = re.split(r"(?<=[.!?])\s+", PASSAGE_RE.search(text).group(1))
        pairs = [{"question": q.strip(), "answer": a.strip()}
                 for q, a in zip(parts, parts[1:], strict=False) if q.strip().endswith("?")
                 and not a.strip().endswith("?")]
        return json.dumps({"pairs": (pairs[:2] + [INVENTED])})
    if "Rewrite the original answer" in text:
        if drift:
            return json.dumps({"refined_answer": "1. Buy a new computer. 2. Enjoy it."})
        original = re.search(r"Original answer: (.*?)\n\nRewrite", text, re.DOTALL).group(1)
        return json.dumps({"refined_answer": f"1. {original} 2. Check that it worked."})
    raise AssertionError(text)


@functools.cache
def recall_step(**cfg) -> WebminingRecall:
    step_ = WebminingRecall(name="recall", **cfg)
    step_.setup(RunContext(run_dir=Path(".")))  # fits the classifier once per config
    return step_


def recall(text: str, **cfg):
    run = RunContext(run_dir=Path("."))
    return recall_step(**cfg).process(make_record({"text": text}, step="chunks"),
                                      ItemContext(run=run, item_key="k", seed=0))


# --- recall ------------------------------------------------------------------------------------


def test_recall_classifier_separates_qa_from_other_text() -> None:
    kept = recall(FAQ)
    assert kept.columns["recall_score"] >= 0.5
    dropped = recall(NEWS)
    assert dropped.dropped.startswith("recall score 0.")
    assert "< threshold 0.50 (logreg classifier)" in dropped.dropped
    # the threshold is the knob: at 0 everything passes, at 1 nothing does
    assert recall(NEWS, threshold=0.0).columns["recall_score"] < kept.columns["recall_score"]
    assert recall(FAQ, threshold=1.0).dropped


def test_keyword_scorer_needs_no_training() -> None:
    assert keyword_score(FAQ) > 0.5 > keyword_score(NEWS) == 0.0
    assert recall(FAQ, classifier="keywords").columns["recall_score"] > 0.5
    assert "(keywords classifier)" in recall(NEWS, classifier="keywords").dropped


def test_labelled_file_is_validated_and_enters_the_fingerprint(tmp_path: Path) -> None:
    mine = tmp_path / "labels.jsonl"
    mine.write_text("\n".join(json.dumps(r) for r in [
        {"text": "How do I do it? Like this.", "label": "positive"},
        {"text": "A plain report of the weather.", "label": "negative"}]))
    assert read_labels(mine) == [("How do I do it? Like this.", 1),
                                 ("A plain report of the weather.", 0)]
    run = RunContext(run_dir=tmp_path)
    default, custom = WebminingRecall(name="r"), WebminingRecall(name="r", labels=str(mine))
    default.setup(run)
    custom.setup(run)
    assert default.fingerprint(run) != custom.fingerprint(run)
    only_positive = tmp_path / "pos.jsonl"
    only_positive.write_text(json.dumps({"text": "Q: why? A: because.", "label": 1}))
    with pytest.raises(RecipeError, match="positive .1. and negative .0. examples"):
        WebminingRecall(name="r", labels=str(only_positive)).setup(run)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"text": "x", "label": "maybe"}))
    with pytest.raises(RecipeError, match="broken.jsonl:1"):
        read_labels(broken)


# --- presence ------------------------------------------------------------------------------------


def test_pairs_not_in_the_text_are_dropped_with_a_reason() -> None:
    check = WebminingInText(name="in_text")
    real = {"question": "Why was my card declined?",
            "answer": "Your bank refused the payment.", "text": FAQ}
    assert check.process(real, None) is None
    invented = check.process({**INVENTED, "text": FAQ}, None)
    assert invented.startswith("invented question: only 0.")
    assert "missing: best, pizza, topp, napl" in invented
    made_up_answer = check.process({**real, "answer": "Restart the router twice."}, None)
    assert made_up_answer.startswith("invented answer:")
    assert check.process({**real, "question": "Payment problems"}, None) == (
        "not a question: 'Payment problems' has no '?' and does not start with a question or "
        "task word")
    assert check.process({**real, "question": "Explain why the card was declined"}, None) \
        is not None  # a task, so it passes the form check; then it is not in the text
    assert not check.process({**real, "question": "Explain why the card was declined"},
                             None).startswith("not a question")
    strict = WebminingInText(name="in_text", match="substring")
    assert strict.process({**real, "answer": "bank refused payment"}, None) == (
        "invented answer: 'bank refused payment' does not occur verbatim in the text")
    assert strict.process(real, None) is None


# --- the shipped recipe --------------------------------------------------------------------------


def test_shipped_recipe_end_to_end(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(responder)
    out = tmp_path / "out"
    summary = asyncio.run(run_recipe(Recipe.load("web-mining"), out,
                                     RunOptions(backend=backend))).to_json()
    assert_closed(summary)
    assert step(summary, "recall")["llm_calls"] == 0
    dropped = read_jsonl(out / "dropped.jsonl")
    recalled_out = {d["record"]["_meta"]["source"]["path"] for d in dropped
                    if d["step"] == "recall"}
    assert {"02_harbour_festival.md", "05_product_listing.txt"} <= recalled_out
    # one invented pair per extraction call, each dropped by the presence check
    in_text = [d for d in dropped if d["step"] == "in_text"]
    assert len(in_text) >= step(summary, "extract")["llm_calls"]
    assert all(d["record"]["question"] == INVENTED["question"] for d in in_text)
    rows = read_jsonl(out / "data.jsonl")
    assert rows
    for row in rows:
        assert set(row) >= {"question", "answer", "refined_answer", "recall_score", "chunk_id",
                            "doc_id"}
        assert row["recall_score"] >= 0.5
        assert row["answer"] in row["refined_answer"]
        source = row["_meta"]["source"]
        assert source["chunk_id"] == row["chunk_id"] and source["path"]
        assert 0 <= source["char_start"] < source["char_end"]
    # a refinement that drifts from the original answer is a drop that says so
    drift = ScriptedTestBackend(lambda r, s: responder(r, s, drift=True))
    summary = asyncio.run(run_recipe(Recipe.load("web-mining"), tmp_path / "drift",
                                     RunOptions(backend=drift))).to_json()
    assert_closed(summary)
    assert step(summary, "refine")["out"] == 0 and step(summary, "refine")["dropped"] > 0
    reasons = {d["reason"].split(":")[0] for d in read_jsonl(tmp_path / "drift" / "dropped.jsonl")
               if d["step"] == "refine"}
    assert reasons == {"refined answer inconsistent with the extracted one"}
