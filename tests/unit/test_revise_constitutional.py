"""constitutional (SL-CAI) with the scripted test backend (a test double): the conversation the
critique and revision calls see, principle sampling, rounds, drop reasons, DPO/SFT export and
the accounting."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthloom.core.errors import RecipeError
from synthloom.core.recipe import Recipe
from synthloom.export.formats import ExportOptions, export
from synthloom.llm.types import LLMRequest
from synthloom.methods.constitutional.critique import (
    DEFAULT_PRINCIPLES,
    draw_principles,
    load_principles,
)
from tests.support.runs import read_jsonl, run_scripted, step, step_closes
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text


class Recorder:
    """Answers by turn kind and keeps every request, so tests can read the conversations."""

    def __init__(self, revision: str | None = None) -> None:
        self.requests: list[LLMRequest] = []
        self.revision = revision

    def __call__(self, request: LLMRequest, seed: int | None) -> str:
        self.requests.append(request)
        text = last_user_text(request)
        if text.startswith("Critique request:"):
            return "The answer is curt and gives no safety advice."
        if text.startswith("Revision request:"):
            if self.revision is not None:
                return self.revision
            previous = request.messages[-4]["content"]  # the response being revised
            return f"{previous} (revised)"
        return f"Original answer to: {text[:40]}"


def test_one_round_gives_sft_and_dpo_fields(tmp_path: Path) -> None:
    recorder = Recorder()
    backend = ScriptedTestBackend(recorder)
    summary = run_scripted(Recipe.load("constitutional"), tmp_path / "out", backend, limit=3)
    cr = step(summary, "critique_revise")
    assert cr["in"] == 3 and cr["out"] == 3 and step_closes(cr)
    assert cr["llm_calls"] == 6 and backend.calls == 3 + 6  # initial + critique + revision
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    principles, _ = load_principles(DEFAULT_PRINCIPLES, None)
    by_id = {p["id"]: p for p in principles}
    for record in records:
        assert record["original_response"].startswith("Original answer to:")
        assert record["revision"] == record["original_response"] + " (revised)"
        assert record["chosen"] == record["response"] == record["revision"]
        assert record["rejected"] == record["original_response"]
        assert record["prompt"] == record["instruction"]
        assert record["n_rounds"] == 1 and len(record["rounds"]) == 1
        principle = record["principle"]
        assert principle["critique_request"] == by_id[principle["id"]]["critique"]
        assert record["rounds"][0]["critique"] == record["critique"]
    # The critique call sees the paper's conversation: prompt, response, critique request.
    critique_calls = [r for r in recorder.requests
                      if last_user_text(r).startswith("Critique request:")]
    turns = critique_calls[0].messages
    assert [m["role"] for m in turns] == ["system", "user", "assistant", "user"]
    assert turns[2]["content"].startswith("Original answer to:")
    revision_calls = [r for r in recorder.requests
                      if last_user_text(r).startswith("Revision request:")]
    assert [m["role"] for m in revision_calls[0].messages][-3:] == ["user", "assistant", "user"]
    assert revision_calls[0].messages[-2]["content"] == "The answer is curt and gives no " \
                                                         "safety advice."
    # The same record is an SFT row and a DPO row.
    dpo = read_jsonl(export(tmp_path / "out", tmp_path / "dpo", ExportOptions(format="dpo")).data_path)
    assert [(d["prompt"], d["chosen"], d["rejected"]) for d in dpo] == [
        (r["prompt"], r["revision"], r["original_response"]) for r in records]
    alpaca = read_jsonl(export(tmp_path / "out", tmp_path / "sft",
                         ExportOptions(format="alpaca")).data_path)
    assert [a["output"] for a in alpaca] == [r["revision"] for r in records]


def test_rounds_use_distinct_principles_and_chain_revisions(tmp_path: Path) -> None:
    backend = ScriptedTestBackend(Recorder())
    summary = run_scripted(Recipe.load("constitutional", {"rounds": "3"}), tmp_path / "out", backend,
                  limit=2)
    assert step(summary, "critique_revise")["llm_calls"] == 2 * 3 * 2
    for record in read_jsonl(tmp_path / "out" / "data.jsonl"):
        rounds = record["rounds"]
        assert [r["round"] for r in rounds] == [1, 2, 3] and record["n_rounds"] == 3
        assert len({r["principle_id"] for r in rounds}) == 3
        # Each round revises the previous round's revision.
        assert record["revision"].endswith("(revised) (revised) (revised)")
        assert record["principle"]["id"] == rounds[-1]["principle_id"]
        assert record["_meta"]["principles"] == [r["principle_id"] for r in rounds]


def test_identical_and_empty_revisions_are_dropped_with_reasons(tmp_path: Path) -> None:
    def same(request: LLMRequest, seed: int | None) -> str:
        text = last_user_text(request)
        if text.startswith("Critique request:"):
            return "Nothing to change."
        if text.startswith("Revision request:"):
            return "  Original   ANSWER.  "  # equal up to case and whitespace
        return "Original answer."

    summary = run_scripted(Recipe.load("constitutional"), tmp_path / "a", ScriptedTestBackend(same), 2)
    cr = step(summary, "critique_revise")
    assert cr["dropped"] == 2 and cr["out"] == 0 and step_closes(cr)
    reasons = [d["reason"] for d in read_jsonl(tmp_path / "a" / "dropped.jsonl")]
    assert all(r.startswith("revision identical to the original response after 1 round")
               for r in reasons)

    summary = run_scripted(Recipe.load("constitutional"), tmp_path / "b",
                  ScriptedTestBackend(Recorder(revision="   ")), 2)
    assert step(summary, "critique_revise")["dropped"] == 2
    reasons = [d["reason"] for d in read_jsonl(tmp_path / "b" / "dropped.jsonl")]
    assert all(r.startswith("round 1 revision is empty (finish_reason=stop) (principle ")
               for r in reasons)


def test_user_principles_file_and_reproducible_draws(tmp_path: Path) -> None:
    own = tmp_path / "mine.yaml"
    own.write_text("principles:\n  - id: pirate\n    critique: Is it written like a pirate?\n"
                   "    revision: Rewrite it like a pirate.\n")
    recorder = Recorder()
    run_scripted(Recipe.load("constitutional", {"principles": str(own)}), tmp_path / "out",
        ScriptedTestBackend(recorder), limit=1)
    [record] = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert record["principle"] == {"id": "pirate", "critique_request":
                                   "Is it written like a pirate?",
                                   "revision_request": "Rewrite it like a pirate."}
    assert any("Is it written like a pirate?" in last_user_text(r) for r in recorder.requests)
    # Editing the constitution recomputes the step (its content is in the fingerprint).
    own.write_text(own.read_text().replace("pirate?", "parrot?"))
    again = ScriptedTestBackend(Recorder())
    run_scripted(Recipe.load("constitutional", {"principles": str(own)}), tmp_path / "out", again, 1)
    assert again.calls == 2  # initial response replayed from the cache; critique + revision new

    principles, _ = load_principles(DEFAULT_PRINCIPLES, None)
    assert len(principles) == 16
    assert draw_principles(principles, 4, 7) == draw_principles(principles, 4, 7)
    assert len({p["id"] for p in draw_principles(principles, 16, 3)}) == 16
    assert len(draw_principles(principles, 20, 3)) == 20


def test_bad_principles_file_fails_before_any_call(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("principles:\n  - id: x\n    critique: only a critique\n")
    backend = ScriptedTestBackend(Recorder())
    with pytest.raises(RecipeError, match="entry 0 needs non-empty 'critique' and 'revision'"):
        run_scripted(Recipe.load("constitutional", {"principles": str(bad)}), tmp_path / "o", backend, 1)
    assert backend.calls == 0


def test_real_oasst_prompts(tmp_path: Path, shared_data: Path) -> None:
    seeds = shared_data / "seed_instructions" / "oasst_prompt_lottery_en_250_text.jsonl"
    summary = run_scripted(Recipe.load("constitutional", {"prompts": str(seeds)}), tmp_path / "out",
                  ScriptedTestBackend(Recorder()), limit=5)
    assert all(step_closes(s) for s in summary["steps"])
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    dropped = read_jsonl(tmp_path / "out" / "dropped.jsonl")
    assert len(records) + len(dropped) == 5
    assert records[0]["prompt"] == "Can you tell me about GLaDOS?"
