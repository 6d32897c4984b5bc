"""The ``toolformer`` recipe through the engine with a scripted backend that returns *scripted
logprobs* (no model: each echoed token's logprob is set by rule), so the paper's filter can be
checked number by number: a call is kept iff min(L(ε), L(call without result)) - L(call with
result) >= τ_f; every other candidate is kept in ``rejected_calls`` with its stage."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from synthloom.core.recipe import Recipe
from synthloom.llm.types import LLMRequest, RawCompletion
from synthloom.methods.toolformer.apis import ApiError, calculator, calendar, call_text
from synthloom.methods.toolformer.losses import (
    api_probability,
    continuation_logprobs,
    decide,
    weighted_loss,
    weights,
)
from tests.support.runs import assert_closed, read_jsonl, run_scripted, step
from tests.support.scripted_backend import ScriptedTestBackend

DOCS = {
    # calculator kept (the result makes " 29%" likely), calendar kept, search kept
    "survey": "Out of 1400 people in the survey, 400 passed the test, or 29% of them. "
              "The results came out in March.",
    # the call alone already helps as much: L- is the call without its result -> dropped
    "bridge": "The bridge is 120 metres long and 30 metres high, so 90 metres separate them.",
    # the model writes words, not arithmetic -> execution rejects it
    "harbour": "Twelve ships were in the harbour and seven left, so 5 ships stayed behind.",
    # nowhere does the model open a call -> sample stage
    "orchard": "The orchard behind the survey office grows apples and pears for the market.",
}
#: Token -> the tool whose annotation prompt opens a call before it (p("[") = e^-0.3 = 0.74).
TRIGGERS = {"calculator": {" 29%", " 90", " 5"}, "calendar": {" March."},
            "search": {" 400"}}
CALC_ARGS = {"survey": "400 / 1400", "bridge": "120 - 30", "harbour": "twelve minus seven"}
#: Scripted logprob of every token of a loss prompt: (no call, call alone, call + result).
LEVELS = {"survey": (-2.5, -3.0, -0.1), "bridge": (-2.5, -1.0, -0.5)}
_TOKEN = re.compile(r"\s*\S+|\s+$")


def doc_of(text: str) -> str:
    return next(name for name, body in DOCS.items() if body[:20] in text)


class ScriptedLogprobBackend(ScriptedTestBackend):
    """ScriptedTestBackend plus scripted logprobs: tokens are whitespace-led words; echoed
    prompts get their logprobs by the rules above (the first token's is None, as llama.cpp
    echoes it)."""

    supports_logprobs = True

    def __init__(self) -> None:
        super().__init__(self.play, name="toolformer-scripted-logprobs")

    @staticmethod
    def play(request: LLMRequest, seed: int | None) -> str:
        prompt = str(request.prompt)
        if prompt.endswith("[Calculator("):
            return CALC_ARGS[doc_of(prompt.rsplit("Output:", 1)[1])] + ")"
        if prompt.endswith("[Search("):
            return '"survey office orchard")'
        return " x"

    @staticmethod
    def scripted(prompt: str) -> list[dict[str, Any]]:
        tokens = _TOKEN.findall(prompt) + [" x"]
        if "Your task" in prompt:  # the position pass: "[" is likely before trigger tokens
            tool = next(t for t in TRIGGERS if f"{t.capitalize()} API" in prompt)
            text_from = len(prompt.rsplit("Output:", 1)[0])
            out, at = [], 0
            for tok in tokens:
                top = {" [": -0.3} if at > text_from and tok in TRIGGERS[tool] else {}
                out.append({"token": tok, "logprob": -1.0, "top": {tok: -1.0, **top}})
                at += len(tok)
            return out
        plain, bare, full = LEVELS.get(doc_of(prompt), (-1.0, -1.0, -1.0))
        level = full if "→" in prompt else bare if "[" in prompt else plain
        return [{"token": tok, "logprob": level if i else None, "top": {}}
                for i, tok in enumerate(tokens)]

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        raw = await super().complete(request, seed=seed)
        if request.logprobs is not None and request.echo:
            raw.logprobs = self.scripted(str(request.prompt))
        return raw


def _corpus(folder: Path) -> Path:
    folder.mkdir()
    for name, body in DOCS.items():
        (folder / f"{name}.txt").write_text(body + "\n", encoding="utf-8")
    return folder


def test_filter_keeps_and_drops_by_the_papers_formula(tmp_path: Path) -> None:
    recipe = Recipe.load("toolformer", {"corpus": str(_corpus(tmp_path / "docs")),
                                        "today": "2023-01-30", "calls_per_position": "2"})
    summary = run_scripted(recipe, tmp_path / "run", ScriptedLogprobBackend())
    assert summary["status"] == "ok"
    assert_closed(summary)
    kept = read_jsonl(tmp_path / "run" / "data.jsonl")
    dropped = {doc_of(r["record"]["text"]): r for r in
               read_jsonl(tmp_path / "run" / "dropped.jsonl")}
    assert [doc_of(r["text"]) for r in kept] == ["survey"]
    assert step(summary, "annotated")["dropped"] == 3

    [survey] = kept
    calls = {c["tool"]: c for c in survey["api_calls"]}
    assert set(calls) == {"calculator", "calendar", "search"}
    calc = calls["calculator"]
    assert (calc["argument"], calc["result"]) == ("400 / 1400", "0.29")
    # Uniform scripted logprobs: each weighted loss is minus the level (weights sum to 1).
    assert (calc["L_empty"], calc["L_call_no_result"], calc["L_plus"]) == (2.5, 3.0, 0.1)
    assert calc["L_minus"] == 2.5 and calc["gain"] == pytest.approx(2.4)
    assert calls["calendar"]["result"] == "Today is Monday, January 30, 2023."
    # The search API returned another document's passage, never the text's own.
    assert "orchard" in calls["search"]["result"]
    text = survey["text_with_calls"]
    assert "or [Calculator(400 / 1400) → 0.29] 29% of them" in text
    assert "came out in [Calendar() → Today is Monday, January 30, 2023.] March." in text
    assert text.replace(" " + call_text("search", "survey office orchard",
                                        calls["search"]["result"]), "").startswith(
        "Out of 1400 people in the survey, 400 passed")
    assert survey["_meta"]["toolformer"]["tau_f"] == 1.0

    bridge = dropped["bridge"]
    assert bridge["reason"].startswith("filter: no call lowered the loss")
    [call] = [c for c in bridge["record"]["rejected_calls"] if c["tool"] == "calculator"]
    # L(ε) - L+ = 2.0 would pass; min(L(ε), L(call alone)) - L+ = 0.5 does not.
    assert (call["L_empty"], call["L_call_no_result"], call["L_plus"]) == (2.5, 1.0, 0.5)
    assert call["L_minus"] == 1.0 and call["stage"] == "filter"
    assert dropped["harbour"]["record"]["reject_stage"] == "execution"
    assert any(c["stage"] == "execution" and c["argument"] == "twelve minus seven"
               for c in dropped["harbour"]["record"]["rejected_calls"])
    assert dropped["orchard"]["record"]["reject_stage"] == "sample"


def test_tau_f_moves_the_line(tmp_path: Path) -> None:
    # τ_f = 0.4: the bridge's gain of 0.5 now passes (its L- is still the call alone).
    recipe = Recipe.load("toolformer", {"corpus": str(_corpus(tmp_path / "docs")),
                                        "tools": "[calculator]", "tau_f": "0.4",
                                        "calls_per_position": "1"})
    run_scripted(recipe, tmp_path / "run", ScriptedLogprobBackend())
    kept = {doc_of(r["text"]): r for r in read_jsonl(tmp_path / "run" / "data.jsonl")}
    assert set(kept) == {"survey", "bridge"}
    assert kept["bridge"]["api_calls"][0]["gain"] == pytest.approx(0.5)


def test_losses_weights_and_alignment() -> None:
    assert weights(7) == pytest.approx([1 / 3, 0.8 / 3, 0.6 / 3, 0.4 / 3, 0.2 / 3, 0, 0])
    assert weights(2) == pytest.approx([1 / 1.8, 0.8 / 1.8])
    prompt = "ab cd [X] ef gh"
    tokens = [{"token": t, "logprob": lp} for t, lp in
              [("ab", None), (" cd", -1.0), (" [X]", -2.0), (" ef", -3.0), (" gh", -4.0),
               (" zz", -9.0)]]  # " zz": the generated token, not the prompt's
    assert continuation_logprobs(tokens, prompt, prompt.index(" ef"), 5) == [-3.0, -4.0]
    assert continuation_logprobs(tokens, prompt, prompt.index(" ef"), 1) == [-3.0]
    assert weighted_loss([-3.0, -4.0]) == pytest.approx(3.0 / 1.8 + 3.2 / 1.8)
    verdict = decide(2.0, 1.5, 0.4, 1.0)
    assert verdict["L_minus"] == 1.5 and verdict["kept"]
    assert not decide(2.0, 1.3, 0.4, 1.0)["kept"]
    assert api_probability({" [": -0.3, "[": -2.0, " the": -0.1}) == pytest.approx(
        0.7408 + 0.1353, abs=1e-3)


def test_apis() -> None:
    assert calculator("400 / 1400") == "0.29"
    assert calculator("1,400 - 30 x 2") == "1340"
    assert calendar("2023-01-30") == "Today is Monday, January 30, 2023."
    for bad in ("twelve minus seven", "1400", "__import__('os')", "2 ** 99999"):
        with pytest.raises(ApiError):
            calculator(bad)
    with pytest.raises(ApiError):
        calendar(None)
