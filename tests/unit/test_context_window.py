"""Context windows and token counts (issue 20 items 1-2) on the ScriptedTestBackend (a test
double, no model): the client's fit rule (max_tokens shrunk to what fits, noted), the clear
non-retried failure when even the answer floor does not fit, where the window comes from, the
counter selection order and its LRU, and sq_synthesize packing inside the window."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.models import parse_model_spec
from synthloom.core.records import make_record
from synthloom.llm.client import LLMClient
from synthloom.llm.models import RunModels
from synthloom.llm.tokens import (
    DEFAULT_CONTEXT_LENGTH,
    ESTIMATE,
    ESTIMATE_MARGIN,
    TokenCounter,
    answer_floor,
    select_counter,
)
from synthloom.llm.types import ContextWindowExceeded, LLMRequest, SamplingParams
from synthloom.methods.synthquestions.synthesize import SynthesizeInstruction
from tests.support.scripted_backend import ScriptedTestBackend


class WindowedScripted(ScriptedTestBackend):
    """The scripted double stating a context window, as a server with max_model_len does."""

    def __init__(self, window: int | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.window = window
        self.sent: list[int] = []

    @property
    def context_length(self) -> int | None:
        return self.window

    async def complete(self, request: LLMRequest, *, seed: int | None):
        self.sent.append(request.params.max_tokens)
        return await super().complete(request, seed=seed)


def ask(client: LLMClient, chars: int, max_tokens: int):
    request = LLMRequest(messages=[{"role": "user", "content": "word " * (chars // 5)}],
                         params=SamplingParams(max_tokens=max_tokens, seed=1))
    return asyncio.run(client.generate(request))[0]


def test_max_tokens_shrinks_to_fit_and_is_noted() -> None:
    backend = WindowedScripted(1000)
    client = LLMClient(backend)
    # 2,000 chars: 500 counted (chars/4) * 4/3 = 667 + 40 overhead = 707; 1000 - 707 = 293.
    response = ask(client, 2000, 512)
    assert backend.sent == [293]
    assert response.fit == {"max_tokens": 512, "sent": 293, "prompt_tokens": 707,
                            "context_length": 1000}
    assert client.stats()["context_fits"] == 1
    # A prompt that fits is sent as asked, with no note.
    assert ask(client, 200, 512).fit is None and backend.sent[-1] == 512


def test_too_long_a_prompt_is_one_clear_failure_without_a_call() -> None:
    backend = WindowedScripted(1000)
    client = LLMClient(backend)
    # 3,000 chars -> 1,040 tokens: no room at all (floor: 128 of max_tokens 512).
    with pytest.raises(ContextWindowExceeded) as caught:
        ask(client, 3000, 512)
    message = str(caught.value)
    assert "1,040 tokens" in message and "max_tokens 512" in message
    assert "context window of 1,000 tokens (server)" in message and "at least 128" in message
    assert backend.calls == 0  # never sent, never retried
    assert client.stats()["failure_causes"] == {"context_window": 1}
    assert answer_floor(512) == 128 and answer_floor(100) == 64 and answer_floor(16) == 16


def test_the_window_comes_from_setting_server_or_default() -> None:
    assert LLMClient(WindowedScripted(None)).context_length == DEFAULT_CONTEXT_LENGTH
    assert LLMClient(WindowedScripted(None)).context_length_source == "default"
    assert LLMClient(WindowedScripted(4096)).context_length == 4096
    narrowed = LLMClient(WindowedScripted(4096), context_length=2048)
    assert (narrowed.context_length, narrowed.context_length_source) == (2048, "setting")
    # A setting cannot widen what the server states.
    wide = LLMClient(WindowedScripted(4096), context_length=32768)
    assert (wide.context_length, wide.context_length_source) == (4096, "server")
    # models: / --model-for carry the settings to the client.
    spec = parse_model_spec("{backend: default, context_length: 2048, tokenizer: /tok}", "t")
    run = RunModels(backend=WindowedScripted(None), specs={"gen": spec})
    client = run.client("gen", run.build_backend("gen"), None, run_budget=_budget())
    assert client.context_setting == 2048 and client.tokenizer_path == "/tok"
    assert not spec.is_alias


def _budget():
    from synthloom.llm.limits import TokenBudget

    return TokenBudget(None)


class OwnTokenizer(ScriptedTestBackend):
    def tokenizer_name(self) -> str | None:
        return "server:/tokenize"

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class CountsWords(ScriptedTestBackend):
    def count_tokens(self, text: str) -> int:
        return len(text.split())


def test_counter_selection_order() -> None:
    # 1. a tokenizer setting wins (loaded lazily: nothing is read here)
    assert select_counter(OwnTokenizer(), "/models/tok").name == "hf:/models/tok"
    # 2. the backend's own tokenizer (a server endpoint, an in-process model): exact
    own = select_counter(OwnTokenizer())
    assert own.name == "server:/tokenize" and own.margin == 1.0 and own.count("a b c") == 3
    # a backend class with its own count_tokens
    assert select_counter(CountsWords()).name == "backend:scripted-test"
    # 3. an estimate, fitted with the stated margin
    guess = select_counter(ScriptedTestBackend())
    assert guess.name == ESTIMATE and guess.margin == ESTIMATE_MARGIN
    client = LLMClient(ScriptedTestBackend())
    assert client.stats()["token_counter"] is None  # nothing counted yet
    client.count_tokens("hello there")
    assert client.stats()["token_counter"] == ESTIMATE


def test_counts_are_cached_by_text() -> None:
    calls: list[str] = []

    def count(text: str) -> int:
        calls.append(text)
        return len(text)

    async def count_async(text: str) -> int:
        calls.append(text)
        return len(text)

    counter = TokenCounter("t", count, count_async, cache_size=3)
    assert counter.count("abc") == 3 and counter.count("abc") == 3 and calls == ["abc"]
    assert asyncio.run(counter.count_many(["abc", "de", "de", "f"])) == [3, 2, 2, 1]
    assert sorted(calls) == ["abc", "de", "f"]  # the duplicate asked once, the known not at all
    counter.count("ghij")  # the LRU holds 3: "abc", used longest ago, goes
    counter.count("abc")
    assert calls.count("abc") == 2 and counter.misses == 5


def synthesis_answer(request: LLMRequest, seed: int | None) -> str:
    return json.dumps({"thought": "t", "scene": "s", "query": "How should I plan this?",
                       "query_compositions": {"ability": "a", "knowledge": "k",
                                              "extra_information": "e", "output": "o"}})


def demo(doc_id: str, words: int) -> dict:
    return make_record({"instruction": "question " * words, "document": "text " * words,
                        "document_id": doc_id, "scene": "a scene",
                        "query_compositions": {"ability": "a"}}, step="attribute")


def synthesize(tmp_path: Path, client: LLMClient, demos: list[dict]):
    step = SynthesizeInstruction(name="s", demos="d", context=["d"])
    run_ctx = RunContext(run_dir=tmp_path, llm=client, context={"d": demos})
    step.setup(run_ctx)
    target = make_record({"text": "alpha " * 3000}, step="corpus")
    item = ItemContext(run=run_ctx, item_key="k", seed=2)
    return step, asyncio.run(step.process(target, item))


def test_paper_profile_packs_inside_the_window(tmp_path: Path) -> None:
    demos = [demo(f"doc-{i}", 40) for i in range(12)]
    for window in (8192, 4096):
        backend = WindowedScripted(window, responder=synthesis_answer)
        client = LLMClient(backend)
        step, result = synthesize(tmp_path, client, demos)
        limits = step.limits(RunContext(run_dir=tmp_path, llm=client))
        assert limits.max_tokens == min(2048, window // 2) and backend.sent == [limits.max_tokens]
        # The paper's 7,500 became min(7,500, window - max_tokens - overhead - slack).
        assert limits.demo_token_budget < window - limits.max_tokens
        assert result.meta["prompt_tokens_estimate"] <= limits.demo_token_budget
        assert result.meta["demo_ids"]
        assert client.stats()["context_fits"] == 0  # packed to fit: the guard had nothing to do


def test_a_window_too_small_for_the_template_fails_each_item_clearly(tmp_path: Path) -> None:
    backend = WindowedScripted(1024, responder=synthesis_answer)
    with pytest.raises(ContextWindowExceeded, match="cannot fit the context window of 1,024"):
        synthesize(tmp_path, LLMClient(backend), [demo("doc-1", 20)])
    assert backend.calls == 0


def test_no_demo_fitting_the_window_is_a_clear_failure(tmp_path: Path) -> None:
    backend = WindowedScripted(3072, responder=synthesis_answer)
    # Each demo's instruction alone (2,700 characters) is larger than the room left.
    with pytest.raises(ContextWindowExceeded, match="no demo fits the context window of 3,072"):
        synthesize(tmp_path, LLMClient(backend), [demo(f"doc-{i}", 300) for i in range(3)])
    assert backend.calls == 0
