"""Magpie with the scripted test backend (a test double, no model): the pre-query prefix taken
from chat templates, the raw/chat split of the calls, the query checks, multi-turn, and the
raw-prompt guard -- with the accounting of every run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import Recipe
from synthloom.methods.magpie.chat_templates import load_chat_template
from synthloom.methods.magpie.queries import is_request, query_problem
from synthloom.methods.magpie.steps import MT_SYSTEM_PROMPT
from tests.support.runs import read_jsonl, step_closes
from tests.support.scripted_backend import ScriptedTestBackend

# SmolLM2-135M-Instruct's own template, as its GGUF stores it (tokenizer.chat_template).
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SMOLLM2_PREFIX = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                  "Hugging Face<|im_end|>\n<|im_start|>user\n")


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend, limit: int) -> dict:
    options = RunOptions(backend=backend, limit=limit, concurrency=1)
    return asyncio.run(run_recipe(recipe, out, options)).to_json()


# Answers to the tagging stage's JSON requests, by a required field of their schema.
TAGS = {"difficulty": {"intent": "The user wants to know.", "knowledge": "Facts.",
                       "difficulty": "easy"},
        "input_quality": {"explanation": "Clear.", "input_quality": "good"},
        "primary_tag": {"primary_tag": "Information seeking", "other_tags": []},
        "safe": {"rationale": "Harmless.", "safe": True, "categories": []}}
#: The tagging stage without a model load for the distance tag.
HASHING = {"embedder": "hashing"}


class Scripted(ScriptedTestBackend):
    """Raw prompts get the next scripted query; chat calls get an answer naming the query."""

    def __init__(self, queries: list[str], template: str | None = None) -> None:
        super().__init__(self.answer)
        self.queries = list(queries)
        self.template = template
        self.raw_prompts: list[str] = []
        self.chats: list[list[dict]] = []
        self.tag_calls = 0

    def chat_template(self) -> str | None:
        return self.template

    def answer(self, request, seed) -> str:
        if request.json_schema is not None:  # the tagging stage: fixed tags, safe
            self.tag_calls += 1
            return json.dumps(TAGS[next(k for k in TAGS if k in request.json_schema["required"])])
        if request.prompt is not None:
            self.raw_prompts.append(request.prompt)
            assert request.params.temperature == 1.0 and request.params.stop
            return self.queries.pop(0)
        self.chats.append(request.messages)
        assert request.params.temperature == 0.0  # greedy responses, as in the paper
        return f"Answer to: {request.messages[-1]['content']}"


def test_pre_query_prefix_comes_from_the_chat_template() -> None:
    chatml = load_chat_template("chatml", None)
    assert chatml.pre_query([]) == "<|im_start|>user\n"
    assert chatml.pre_query([{"role": "system", "content": "Be brief."}]) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    assert chatml.stops() == ["<|im_end|>", "<|im_start|>assistant", "<|im_start|>user"]
    llama3 = load_chat_template("llama3", None)
    assert llama3.pre_query([]) == "<|start_header_id|>user<|end_header_id|>\n\n"
    assert llama3.stops()[0] == "<|eot_id|>"
    assert load_chat_template("mistral", None).pre_query([]) == "[INST] "
    with pytest.raises(RecipeError, match="no system role"):
        load_chat_template("gemma", None).pre_query([{"role": "system", "content": "x"}])
    # The model's own template, read from the backend (GGUF metadata on llamacpp).
    own = load_chat_template("auto", Scripted([], template=SMOLLM2_TEMPLATE))
    assert own.name == "model" and own.pre_query([]) == SMOLLM2_PREFIX
    history = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    assert own.pre_query(history).endswith(
        "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
        "<|im_start|>user\n")
    with pytest.raises(RecipeError, match="does not expose one"):
        load_chat_template("auto", Scripted([]))
    with pytest.raises(RecipeError, match="unknown magpie template"):
        load_chat_template("vicuna-ish", None)


def test_query_checks() -> None:
    kw = {"min_words": 3, "markers": ["<|im_end|>", "<|im_start|>assistant"]}
    assert query_problem("What is a prime number?", finish_reason="stop", **kw) is None
    assert query_problem("Write a haiku about rain.", finish_reason="stop", **kw) is None
    assert query_problem("I need a plan for my garden this spring.", finish_reason="stop",
                         **kw) is None
    assert query_problem("  ", finish_reason="stop", **kw).startswith("empty query")
    assert "cut off" in query_problem("What is a very long", finish_reason="length", **kw)
    assert "too short" in query_problem("Why?", finish_reason="stop", **kw)
    assert "marker" in query_problem("Hi there?<|im_start|>assistant\nSure",
                                     finish_reason="stop", **kw)
    assert "neither a question nor an instruction" in query_problem(
        "The weather was nice yesterday and we walked.", finish_reason="stop", **kw)
    assert is_request("Could you summarise this paragraph") and not is_request("Nice day.")


def test_magpie_recipe_pairs_drops_and_dedup(tmp_path: Path) -> None:
    queries = ["What is the capital of France?", "The sun was warm on the porch all day.",
               "What is the capital of France?", "Explain how a rainbow forms.", ""]
    backend = Scripted(queries)
    recipe = Recipe.load("magpie", {"template": "chatml", "system_prompt": "Ask about science.",
                                    **HASHING})
    summary = run(recipe, tmp_path / "out", backend, limit=5)
    steps = {s["name"]: s for s in summary["steps"]}
    assert all(step_closes(s) for s in steps.values())
    conv, unique = steps["conversations"], steps["unique"]
    assert (conv["in"], conv["out"], conv["dropped"]) == (5, 3, 2)
    assert conv["llm_calls"] == 5 + 3  # a bad query costs no response call
    # Tagging: 3 tags + 1 safety verdict per unique pair.
    assert backend.calls == 5 + 3 + 2 * 4 and backend.tag_calls == 2 * 4
    assert (unique["in"], unique["kept"], unique["dropped"]) == (3, 2, 1)
    # Every raw prompt is exactly the pre-query prefix with the system prompt before it.
    assert set(backend.raw_prompts) == {
        "<|im_start|>system\nAsk about science.<|im_end|>\n<|im_start|>user\n"}
    # The response call is an ordinary chat with the same system prompt.
    assert backend.chats[0][0] == {"role": "system", "content": "Ask about science."}
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert [r["instruction"] for r in kept] == ["What is the capital of France?",
                                                "Explain how a rainbow forms."]
    first = kept[0]
    assert first["response"] == "Answer to: What is the capital of France?"
    assert first["turns"] == [{"role": "user", "content": first["instruction"]},
                              {"role": "assistant", "content": first["response"]}]
    assert (first["n_turns"], first["pre_query_template"], first["temperature"]) == (1, "chatml", 1.0)
    reasons = sorted(d["reason"] for d in read_jsonl(tmp_path / "out" / "dropped.jsonl"))
    assert reasons[0].startswith("empty query")
    assert reasons[1].startswith("exact duplicate of")
    assert "neither a question nor an instruction" in reasons[2]
    # A rerun is served from the cache.
    again = Scripted([])
    run(recipe, tmp_path / "out", again, limit=5)
    assert again.calls == 0


def test_magpie_multi_turn_appends_history_and_a_new_prefix(tmp_path: Path) -> None:
    # Follow-ups are chosen by the conversation so far: the two items' calls interleave.
    follow_ups = {"How do vaccines work?": "Why do some need boosters?",
                  "What is a black hole?": "ok."}

    class FollowUps(Scripted):
        def answer(self, request, seed) -> str:
            if request.json_schema is None and request.prompt is not None:
                for first, follow_up in follow_ups.items():
                    if first in request.prompt:
                        self.raw_prompts.append(request.prompt)
                        return follow_up
            return super().answer(request, seed)

    backend = FollowUps(list(follow_ups))
    recipe = Recipe.load("magpie", {"template": "chatml", "turns": "2", **HASHING})
    summary = run(recipe, tmp_path / "out", backend, limit=2)
    conv = next(s for s in summary["steps"] if s["name"] == "conversations")
    assert step_closes(conv) and conv["out"] == 2 and conv["llm_calls"] == 7
    full, short = sorted(read_jsonl(tmp_path / "out" / "data.jsonl"), key=lambda r: -r["n_turns"])
    assert full["n_turns"] == 2 and full["stopped_early"] is None
    assert [t["role"] for t in full["turns"]] == ["user", "assistant", "user", "assistant"]
    assert full["turns"][2]["content"] == "Why do some need boosters?"
    # The follow-up prompt: Magpie-MT system prompt, the first exchange, a fresh prefix.
    follow_up = next(p for p in backend.raw_prompts if "How do vaccines work?" in p)
    assert follow_up == (
        f"<|im_start|>system\n{MT_SYSTEM_PROMPT}<|im_end|>\n"
        "<|im_start|>user\nHow do vaccines work?<|im_end|>\n"
        "<|im_start|>assistant\nAnswer to: How do vaccines work?<|im_end|>\n<|im_start|>user\n")
    # The second answer sees the whole conversation.
    assert len(next(c for c in backend.chats if len(c) == 3)) == 3
    assert short["n_turns"] == 1 and short["stopped_early"].startswith("turn 2: query too short")


class ChatOnly(Scripted):
    kind = "chat-only"
    supports_raw_prompt = False


def test_magpie_refuses_a_chat_only_backend_before_any_call(tmp_path: Path) -> None:
    backend = ChatOnly(["What?"])
    with pytest.raises(RecipeError, match="accepts raw prompts"):
        run(Recipe.load("magpie", {"template": "chatml"}), tmp_path / "out", backend, limit=1)
    assert backend.calls == 0


def test_magpie_auto_uses_the_models_own_template(tmp_path: Path) -> None:
    backend = Scripted(["Can you name three prime numbers?"], template=SMOLLM2_TEMPLATE)
    run(Recipe.load("magpie", HASHING), tmp_path / "out", backend, limit=1)
    assert backend.raw_prompts == [SMOLLM2_PREFIX]
    [record] = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert record["pre_query_template"] == "model"
    with pytest.raises(RecipeError, match="set the template"):
        run(Recipe.load("magpie", HASHING), tmp_path / "other", Scripted([]), limit=1)
