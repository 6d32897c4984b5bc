"""Issue 22 item 6: an answer cut off at ``max_tokens`` is a drop that names the cap (every
templated LLM step, unless ``keep_truncated: true``), and an empty chat completion is asked
again, never cached, and counted in ``llm.failed_requests`` when it stays empty (``generate``
then fails the item; a rerun asks again).

The model is ``CuttingBackend``: the ScriptedTestBackend (a test double, no model) made to stop
an answer at ``max_tokens`` words with ``finish_reason="length"``, as a real server does, or to
answer with nothing on a script."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from synthloom.core.recipe import Recipe
from synthloom.core.store import RunStore
from synthloom.llm.client import LLMClient
from synthloom.llm.types import LLMRequest, RawCompletion, SamplingParams, Usage
from tests.support.runs import assert_closed, read_jsonl, run_scripted, step
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text


class CuttingBackend(ScriptedTestBackend):
    """Stops an answer at ``max_tokens`` words (finish_reason ``length``); answers ``""`` to
    the first ``empties[prompt]`` calls of a prompt."""

    def __init__(self, responder=None, empties: dict[str, int] | None = None) -> None:
        super().__init__(responder)
        self.empties = dict(empties or {})

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        raw = await super().complete(request, seed=seed)
        prompt = last_user_text(request)
        if self.empties.get(prompt, 0) > 0:
            self.empties[prompt] -= 1
            return RawCompletion(text="", finish_reason="stop", model=raw.model,
                                 usage=Usage(raw.usage.prompt_tokens, 0))
        words, cap = raw.text.split(), request.params.max_tokens
        if len(words) > cap:
            return RawCompletion(text=" ".join(words[:cap]), finish_reason="length",
                                 model=raw.model, usage=Usage(raw.usage.prompt_tokens, cap))
        return raw


def long_for_odd(request: LLMRequest, seed: int | None) -> str:
    """Questions 1, 3, 5 get a 40-word answer (cut at max_tokens=12), the others 5 words."""
    prompt = last_user_text(request)
    number = int(prompt.rsplit(" ", 1)[1])
    return " ".join(["long"] * 40) if number % 2 else f"short answer to {number} ok"


RECIPE = """
name: truncation
seed: 1
sources:
  - {name: seeds, type: jsonl, path: SEEDS}
steps:
  - name: answer
    type: STEPTYPE
    template: answer.jinja
    output: answer
    max_tokens: 12
EXTRA
sinks:
  - {type: jsonl, path: data.jsonl}
"""


def recipe(tmp_path: Path, extra: str = "", step_type: str = "generate") -> Recipe:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"q": f"question {i}"}) + "\n" for i in range(6)))
    (tmp_path / "answer.jinja").write_text("Answer: {{ q }}")
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.replace("SEEDS", str(seeds)).replace("STEPTYPE", step_type)
                    .replace("EXTRA", extra))
    return Recipe.load(path)


def test_cut_off_answers_are_drops_naming_the_cap(tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = run_scripted(recipe(tmp_path), out, CuttingBackend(long_for_odd))
    answer = step(summary, "answer")
    assert (answer["in"], answer["out"], answer["dropped"], answer["failed"]) == (6, 3, 3, 0)
    assert_closed(summary)
    records = read_jsonl(out / "data.jsonl")
    assert sorted(r["q"] for r in records) == ["question 0", "question 2", "question 4"]
    assert all(r["_meta"]["finish_reason"] == "stop" for r in records)
    dropped = read_jsonl(out / "dropped.jsonl")
    assert [d["reason"] for d in dropped] == \
        ["answer cut off at max_tokens=12 (finish_reason=length)"] * 3


def test_keep_truncated_keeps_them_and_filter_unfinished_still_drops_them(tmp_path: Path
                                                                          ) -> None:
    extra = ("    keep_truncated: true\n"
             "  - {name: finished, type: filter_unfinished}")
    out = tmp_path / "run"
    summary = run_scripted(recipe(tmp_path, extra), out, CuttingBackend(long_for_odd))
    assert (step(summary, "answer")["out"], step(summary, "answer")["dropped"]) == (6, 0)
    assert (step(summary, "finished")["out"], step(summary, "finished")["dropped"]) == (3, 3)
    assert_closed(summary)


def test_a_recipe_with_filter_unfinished_keeps_working_by_default(tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = run_scripted(recipe(tmp_path, "  - {name: finished, type: filter_unfinished}"),
                           out, CuttingBackend(long_for_odd))
    # The step drops them at the source; the filter finds nothing left to drop.
    assert step(summary, "answer")["dropped"] == 3
    assert (step(summary, "finished")["in"], step(summary, "finished")["out"]) == (3, 3)
    assert len(read_jsonl(out / "data.jsonl")) == 3


def test_generate_n_keeps_finished_samples_and_notes_the_cut_ones(tmp_path: Path) -> None:
    def mixed(request: LLMRequest, seed: int | None) -> str:
        # Sample 0 (seed s) is long, sample 1 (seed s + 1) short; question 3: both long.
        prompt = last_user_text(request)
        both = prompt.endswith(" 3")
        return " ".join(["long"] * 40) if both or (seed or 0) % 2 == 0 else "a short answer"

    out = tmp_path / "run"
    summary = run_scripted(recipe(tmp_path, "    n: 2", "generate_n"), out, CuttingBackend(mixed))
    answer = step(summary, "answer")
    assert answer["dropped"] >= 1 and answer["in"] == 6
    assert_closed(summary)
    for record in read_jsonl(out / "data.jsonl"):
        assert record["_meta"]["finish_reason"] == "stop"
        assert record["_meta"].get("cut_off_samples") in (None, 1)
    assert "question 3" not in {r["q"] for r in read_jsonl(out / "data.jsonl")}


def _client(backend: ScriptedTestBackend, tmp_path: Path) -> tuple[LLMClient, RunStore]:
    store = RunStore(tmp_path / "run.db")
    return LLMClient(backend, cache=store), store


def _ask(client: LLMClient, text: str) -> str:
    request = LLMRequest(messages=[{"role": "user", "content": text}],
                         params=SamplingParams(temperature=0.7, max_tokens=50, seed=3))
    [response] = asyncio.run(client.generate(request))
    return response.text


def test_an_empty_completion_is_asked_again(tmp_path: Path) -> None:
    backend = CuttingBackend(empties={"hello": 2})
    client, store = _client(backend, tmp_path)
    assert _ask(client, "hello") == "echo: hello"
    stats = client.stats()
    assert backend.calls == 3 and stats["retries"] == 2
    assert stats["retry_causes"] == {"empty_completion": 2} and stats["failed_requests"] == 0
    store.close()


def test_an_empty_completion_is_never_cached_and_counted_as_failed(tmp_path: Path) -> None:
    backend = CuttingBackend(empties={"hello": 5})
    client, store = _client(backend, tmp_path)
    assert _ask(client, "hello") == ""  # the step decides what an empty answer means
    assert backend.calls == 3
    assert client.stats()["failed_requests"] == 1
    assert client.stats()["failure_causes"] == {"empty_completion": 1}
    # Not served from the cache: the next ask calls the model again (and gets the answer).
    again = CuttingBackend()
    client2 = LLMClient(again, cache=store)
    assert _ask(client2, "hello") == "echo: hello" and again.calls == 1
    store.close()


def test_an_empty_raw_continuation_is_not_asked_again(tmp_path: Path) -> None:
    """A raw-prompt continuation may end at once (Magpie's empty query): one call, no
    failure, and still not cached."""
    backend = CuttingBackend(empties={"Once upon": 1})
    client, store = _client(backend, tmp_path)
    request = LLMRequest(prompt="Once upon", params=SamplingParams(max_tokens=20, seed=1))
    [response] = asyncio.run(client.generate(request))
    assert response.text == "" and backend.calls == 1
    assert client.stats()["failed_requests"] == 0 and client.stats()["retries"] == 0
    [response] = asyncio.run(client.generate(request))
    assert response.text == "echo: Once upon" and backend.calls == 2
    store.close()


def test_an_empty_answer_cached_earlier_is_not_served(tmp_path: Path) -> None:
    backend = CuttingBackend()
    client, store = _client(backend, tmp_path)
    request = LLMRequest(messages=[{"role": "user", "content": "hello"}],
                         params=SamplingParams(temperature=0.7, max_tokens=50, seed=3))
    store.put_llm(request.cache_key(client.model_id, 0),
                  {"text": "", "finish_reason": "stop", "usage": {}})
    store.flush()
    assert _ask(client, "hello") == "echo: hello" and backend.calls == 1
    store.close()


def test_an_empty_item_fails_in_a_run_and_the_rerun_asks_again(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = run_scripted(recipe(tmp_path), out,
                         CuttingBackend(long_for_odd, empties={"Answer: question 2": 9}))
    answer = step(first, "answer")
    assert answer["failed"] == 1 and first["llm"]["failed_requests"] == 1
    failed = read_jsonl(out / "failed.jsonl")
    assert [(f["error_class"], f["message"]) for f in failed] == \
        [("ValueError", "empty completion after 3 call(s) (finish_reason=stop)")]
    second_backend = CuttingBackend(long_for_odd)
    second = run_scripted(recipe(tmp_path), out, second_backend)
    assert second_backend.prompts == {"Answer: question 2": 1}  # only the failed item
    assert step(second, "answer")["failed"] == 0
    assert "question 2" in {r["q"] for r in read_jsonl(out / "data.jsonl")}


def test_a_grader_keeps_cut_off_replies_as_unsolved(tmp_path: Path) -> None:
    """``logic_solve`` grades every reply: a cut-off one is unsolved, not dropped (dropping
    it would inflate the solve rate)."""
    recipe = Recipe.load("logic-solve", {"tasks": "game24", "count": "2", "max_tokens": "4"})
    summary = run_scripted(recipe, tmp_path / "out",
                           CuttingBackend(lambda r, s: "I will try every order of the numbers"))
    solve = step(summary, "solve")
    assert (solve["in"], solve["out"], solve["dropped"]) == (2, 2, 0)
    for record in read_jsonl(tmp_path / "out" / "data.jsonl"):
        assert record["solved"] is False
        assert record["solve_reason"].endswith("(reply cut off at max_tokens)")
