"""backtranslation (Humpback) with the scripted test backend (a test double): segment
prefilters, the backward (instruction) call, self-curation keep/drop by score with the reason,
the iteration field, and the accounting; plus real web and PDF files."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from synthloom.core.recipe import Recipe
from synthloom.llm.types import LLMRequest
from synthloom.methods.backtranslation.humpback import SegmentFilterConfig, segment_problem
from tests.support.runs import read_jsonl, run_scripted, step, step_closes
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text

PROSE = (
    "Bees keep their hive at a steady temperature. In summer, worker bees fan their wings at the "
    "entrance to pull air through the combs, and they spread water droplets that cool the hive as "
    "they evaporate. In winter the colony forms a tight cluster around the queen; bees in the "
    "middle shiver their flight muscles to make heat, while those on the outside act as a layer "
    "of insulation and swap places with the inner bees from time to time.")
RIVERS = (
    "A river delta forms where a river slows down as it meets a lake or the sea. The water can no "
    "longer carry all of its sediment, so sand and silt settle near the mouth and build new land. "
    "Over centuries the river splits into many channels that spread across this land, and the "
    "delta grows outward in the shape of a fan or, in some cases, like a bird's foot.")
NAV = "\n".join([*(f"Menu item {i}" for i in range(20)),
                 "Sign in to see your orders and manage your account settings today"])
COOKIES = ("We use cookies to improve your experience. Read our privacy policy and terms of use. "
           "Subscribe to our newsletter, sign up for offers, or log in. " * 2)


def responder(request: LLMRequest, seed: int | None) -> str:
    text = last_user_text(request)
    if text.startswith("Below is an instruction from a user"):
        if "hive" in text:
            return json.dumps({"reason": "Complete and helpful answer.", "score": 5})
        return json.dumps({"reason": "Reads like an encyclopedia excerpt.", "score": 2})
    if "Bees keep" in text:
        return json.dumps({"instruction": "How do honey bees keep their hive warm and cool?"})
    return json.dumps({"instruction": "Explain how river deltas form."})


def corpus(folder: Path) -> Path:
    folder.mkdir()
    for name, text in {"a_bees.txt": PROSE, "b_nav.txt": NAV, "c_cookies.txt": COOKIES,
                       "d_short.txt": "Too short to answer anything.",
                       "e_rivers.txt": RIVERS}.items():
        (folder / name).write_text(text + "\n")
    return folder


def test_prefilter_backward_and_curation(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(responder)
    recipe = Recipe.load("backtranslation", {"corpus": str(corpus(tmp_path / "docs")),
                                             "min_words": "30", "iteration": "2"})
    summary = run_scripted(recipe, tmp_path / "out", backend)
    assert all(step_closes(s) for s in summary["steps"])
    seg = step(summary, "segment_ok")
    assert seg["in"] == 5 and seg["out"] == 2 and seg["dropped"] == 3 and seg["llm_calls"] == 0
    assert step(summary, "backward")["llm_calls"] == 2
    curate = step(summary, "curate")
    assert curate["in"] == 2 and curate["out"] == 1 and curate["dropped"] == 1
    assert backend.calls == 4
    [kept] = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert kept["instruction"] == "How do honey bees keep their hive warm and cool?"
    assert kept["output"] == PROSE  # the segment itself is the answer, unchanged
    assert (kept["curation_score"], kept["curation_reason"], kept["iteration"]) == (
        5, "Complete and helpful answer.", 2)
    assert kept["_meta"]["source"]["path"] == "a_bees.txt"
    reasons = {d["record"].get("path") or d["record"].get("instruction"): d["reason"]
               for d in read_jsonl(tmp_path / "out" / "dropped.jsonl")}
    assert reasons["Explain how river deltas form."] == \
        "curation score 2 < 4: Reads like an encyclopedia excerpt."
    assert reasons["b_nav.txt"].startswith("boilerplate: 95% of lines have under 4 words")
    assert reasons["c_cookies.txt"].startswith("boilerplate: ")
    assert reasons["d_short.txt"] == "segment too short: 5 words (< 30)"

    # A lower threshold keeps both; only the curation step recomputes.
    again = ScriptedTestBackend(responder)
    recipe = Recipe.load("backtranslation", {"corpus": str(tmp_path / "docs"), "min_words": "30",
                                             "iteration": "2", "threshold": "2"})
    summary = run_scripted(recipe, tmp_path / "out", again)
    assert step(summary, "curate")["out"] == 2 and again.calls == 2


def test_bad_backward_and_curation_answers(tmp_path: Path) -> None:
    def bad(request: LLMRequest, seed: int | None) -> str:
        text = last_user_text(request)
        if text.startswith("Below is an instruction from a user"):
            return json.dumps({"reason": "Great.", "score": 9})  # outside 1-5: schema error
        if "Bees keep" in text:  # the small model's habit: repeat the prompt's own wording
            return json.dumps({"instruction": "Write the instruction or question a user gave "
                                              "that this response answers completely."})
        return json.dumps({"instruction": "Explain how river deltas form."})

    backend = ScriptedTestBackend(bad)
    recipe = Recipe.load("backtranslation", {"corpus": str(corpus(tmp_path / "docs")),
                                             "min_words": "30"})
    summary = run_scripted(recipe, tmp_path / "out", backend)
    backward, curate = step(summary, "backward"), step(summary, "curate")
    assert backward["dropped"] == 1 and backward["out"] == 1
    [drop] = [d for d in read_jsonl(tmp_path / "out" / "dropped.jsonl") if d["step"] == "backward"]
    assert drop["reason"].startswith("instruction repeats the prompt's wording")
    # A score outside 1-5 is re-asked (structured repair), then fails the item: counted.
    assert curate["failed"] == 1 and curate["out"] == 0 and step_closes(curate)
    [failed] = read_jsonl(tmp_path / "out" / "failed.jsonl")
    assert failed["step"] == "curate" and "schema" in failed["message"]


@pytest.mark.parametrize(("text", "reason"), [
    ("word " * 10, r"segment too short: 10 words \(< 40\)"),
    ("word " * 700, r"segment too long: 700 words \(> 600\)"),
    ("\n".join(["Home", "News", "Shop", "Help"]) + "\n" + PROSE, r"boilerplate: 80% of lines"),
    ("Hive climate\n" + PROSE + "\n" + RIVERS, None),  # a title line is no menu
    (PROSE + " See https://a.example/x for more.", None),
    (PROSE + " https://a.example https://b.example https://c.example https://d.example", r"boil"),
    ("{ } [ ] ( ) == => <= ; ; ; 12 34 56 78 90 " * 5 + PROSE[:200], r"mostly symbols"),
    (PROSE.upper(), r"mostly upper case: 100% of letters"),
    (PROSE, None),
])
def test_segment_prefilters(text: str, reason: str | None) -> None:
    found = segment_problem(text, SegmentFilterConfig(name="t"))
    if reason is None:
        assert found is None
    else:
        assert found is not None and re.match(reason, found), found


def test_real_web_and_pdf_files(tmp_path: Path, shared_data: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for src in [shared_data / "web" / "sqlite-docs" / "autoinc.html",
                shared_data / "web" / "python-3.11-docs" / "tutorial" / "controlflow.html",
                shared_data / "pdf" / "glpk_cnfsat_math_note.pdf",
                shared_data / "pdf" / "curator_prescription_scanned.pdf"]:
        shutil.copy(src, docs / src.name)  # a copy: links out of the corpus are refused
    backend = ScriptedTestBackend(responder)
    recipe = Recipe.load("backtranslation", {"corpus": str(docs), "max_segments_per_doc": "2"})
    summary = run_scripted(recipe, tmp_path / "out", backend)
    assert all(step_closes(s) for s in summary["steps"])
    source = step(summary, "documents")
    assert source["in"] == 4 and source["failed"] + source["out"] == 4  # the scan has no text
    segments = step(summary, "segments")["out"]
    assert segments >= 4 and step(summary, "segment_ok")["in"] == segments
    kept = step(summary, "segment_ok")["out"]
    assert step(summary, "backward")["llm_calls"] == kept > 0
    for record in read_jsonl(tmp_path / "out" / "dropped.jsonl"):
        if record["step"] == "curate":
            assert record["reason"] == "curation score 2 < 4: Reads like an encyclopedia excerpt."
