"""The reward-model backend (``reward:PATH``) on tiny randomly initialised models built here.

The models are real transformers models (2-layer Llama / BERT sequence classifiers, hidden 32,
and an ArmoRM-shaped model loaded with ``trust_remote_code``) with a WordLevel tokenizer made
with ``tokenizers``: no hub access. Their scores are meaningless but deterministic, which is
what these tests check: same input, same score; batched == one by one; another response,
another score; and the client's cache, accounting and errors around them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the reward backend needs torch (synthloom[reward])")
pytest.importorskip("transformers", reason="the reward backend needs transformers")

from synthloom.core.errors import BackendError, SynthloomError  # noqa: E402
from synthloom.core.store import RunStore  # noqa: E402
from synthloom.llm.backends import resolve_backend  # noqa: E402
from synthloom.llm.backends.reward import RewardModelBackend  # noqa: E402
from synthloom.llm.client import LLMClient  # noqa: E402
from synthloom.llm.types import LLMRequest, PermanentLLMError  # noqa: E402
from tests.support.tiny_reward import build_tiny_reward_model  # noqa: E402

PAIRS = [("explain the rainbow", "the sun and rain and light"),
         ("why is the tide", "the moon"),
         ("what is water", "a very long answer because detail detail detail and detail"),
         ("explain the rainbow", "the sun and water")]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reward-models")
    return {"llama": build_tiny_reward_model(root / "llama", kind="llama"),
            "bert": build_tiny_reward_model(root / "bert", kind="bert", chat=False),
            "armo": build_tiny_reward_model(root / "armo", kind="armo")}


def scores(backend: RewardModelBackend, pairs: list[tuple[str, str]]) -> list[float]:
    out = backend.score_batch(pairs)
    assert all(not isinstance(x, Exception) for x in out), out
    return [x.score for x in out]  # type: ignore[union-attr]


# --- the spec --------------------------------------------------------------------------------


def test_spec_builds_the_backend_with_its_options(models: dict[str, Path]) -> None:
    backend = resolve_backend(f"reward:{models['armo']}?trust_remote_code=true&batch_size=3"
                              "&device=cpu&max_length=64&format=text")
    assert isinstance(backend, RewardModelBackend)
    assert (backend.batch_size, backend.max_length, backend.format) == (3, 64, "text")
    assert backend.trust_remote_code is True and backend.device_option == "cpu"
    assert backend.spec == f"reward:{models['armo']}"
    assert backend.supports_score and not backend.supports_generate
    # The model id names the folder and hashes its files: stable, and changes with them.
    first = backend.model_id
    assert first.startswith("reward:armo:") and resolve_backend(
        f"reward:{models['armo']}").model_id == first


def test_model_id_changes_when_the_weights_change(tmp_path: Path) -> None:
    a = build_tiny_reward_model(tmp_path / "a", kind="llama", seed=0)
    before = RewardModelBackend(str(a)).model_id
    build_tiny_reward_model(a, kind="llama", seed=1)
    assert RewardModelBackend(str(a)).model_id != before


@pytest.mark.parametrize(("spec", "message"), [
    ("reward:", "needs a model"),
    ("reward:/no/such/folder", "reward model folder not found: /no/such/folder"),
    ("reward:./missing-rm", "not found"),
    ("reward:/x?batch_size=0", "batch_size must be >= 1"),
    ("reward:/x?format=xml", "format 'xml' is not one of"),
    ("reward:/x?colour=blue", "invalid option for the reward backend"),
])
def test_bad_specs_are_backend_errors(spec: str, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        _ = resolve_backend(spec).model_id


def test_unknown_kind_lists_the_reward_form() -> None:
    with pytest.raises(BackendError, match=r"reward:PATH_OR_HF_ID"):
        resolve_backend("rm:/x")


def test_a_hub_id_not_in_the_cache_offline_is_one_clear_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(BackendError, match=r"reward:synthloom-test/no-such-rm: not a local "
                                           r"folder, and the Hugging Face hub could not"):
        _ = resolve_backend("reward:synthloom-test/no-such-rm").model_id


def test_missing_transformers_gives_the_install_hint(models: dict[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)  # makes the import fail
    with pytest.raises(BackendError, match=r"pip install 'synthloom\[reward\]'"):
        asyncio.run(RewardModelBackend(str(models["llama"])).check())


def test_remote_code_needs_trust_remote_code(models: dict[str, Path]) -> None:
    with pytest.raises(BackendError, match=r"\?trust_remote_code=true"):
        RewardModelBackend(str(models["armo"])).score_batch(PAIRS[:1])


# --- scores ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["llama", "bert", "armo"])
def test_scores_are_deterministic_and_batching_does_not_change_them(
        models: dict[str, Path], kind: str) -> None:
    options = {"trust_remote_code": True} if kind == "armo" else {}
    backend = RewardModelBackend(str(models[kind]), batch_size=4, **options)
    batched = scores(backend, PAIRS)
    assert scores(backend, PAIRS) == batched  # same batch: bit for bit
    again = RewardModelBackend(str(models[kind]), **options)  # a fresh load: the same
    assert scores(again, PAIRS) == batched
    alone = [scores(backend, [pair])[0] for pair in PAIRS]
    assert alone == pytest.approx(batched, abs=1e-5)  # padding changes rounding only
    assert len(set(batched)) == len(batched)  # four different inputs, four scores


@pytest.mark.parametrize("kind", ["llama", "bert"])
def test_another_response_gets_another_score(models: dict[str, Path], kind: str) -> None:
    backend = RewardModelBackend(str(models[kind]))
    a, b = scores(backend, [("why is the tide", "the moon"), ("why is the tide", "the sun")])
    assert a != b
    # The prompt is read too: the same answer to another question scores differently.
    [c] = scores(backend, [("what is water", "the moon")])
    assert c != a


def test_the_armo_score_is_the_models_gated_score(models: dict[str, Path]) -> None:
    import torch

    backend = RewardModelBackend(str(models["armo"]), trust_remote_code=True)
    [got] = scores(backend, PAIRS[:1])
    tokenizer, model = backend._load()
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": PAIRS[0][0]},
         {"role": "assistant", "content": PAIRS[0][1]}], tokenize=False)
    inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        out = model(**inputs)
    assert out.rewards.shape == (1, 3)  # multi-objective, like ArmoRM
    assert got == pytest.approx(float(out.score[0, 0]), abs=1e-6)


def test_chat_template_is_used_and_formats_differ(models: dict[str, Path]) -> None:
    chat = RewardModelBackend(str(models["llama"]))
    tokenizer, _ = chat._load()
    ids = chat._encode(tokenizer, "why is the tide", "the moon")["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens[0] == "[BOS]" and tokens.count("[BOS]") == 1  # the template's, not twice
    assert "assistant" in tokens and tokens[-1] == "[EOS]"
    plain = RewardModelBackend(str(models["bert"]))  # no chat template
    btok, _ = plain._load()
    text_ids = plain._encode(btok, "why is the tide", "the moon")["input_ids"]
    assert btok.convert_ids_to_tokens(text_ids) == [
        "[CLS]", "why", "is", "the", "tide", "the", "moon", "[SEP]"]
    pair = RewardModelBackend(str(models["bert"]), format="pair")
    pair_ids = pair._encode(btok, "why is the tide", "the moon")["input_ids"]
    assert btok.convert_ids_to_tokens(pair_ids).count("[SEP]") == 2
    assert scores(plain, PAIRS[1:2]) != scores(pair, PAIRS[1:2])
    with pytest.raises(BackendError, match="no chat template"):
        RewardModelBackend(str(models["bert"]), format="chat").score_batch(PAIRS[:1])


def test_a_conversation_prompt_is_scored_as_its_turns(models: dict[str, Path]) -> None:
    backend = RewardModelBackend(str(models["llama"]))
    turns = [{"role": "user", "content": "why is the tide"}]
    assert scores(backend, [(turns, "the moon")]) == scores(backend, [("why is the tide",
                                                                       "the moon")])


def test_too_long_pairs_fail_alone(models: dict[str, Path]) -> None:
    backend = RewardModelBackend(str(models["llama"]), max_length=14)
    out = backend.score_batch([("why is the tide", "the moon"),
                               ("why is the tide", "the moon " * 20)])
    assert not isinstance(out[0], Exception) and out[0].usage.prompt_tokens <= 14
    assert isinstance(out[1], PermanentLLMError)
    assert "max_length 14" in str(out[1]) and "false score" in str(out[1])


def test_cuda_asked_for_without_cuda_is_a_clear_error(models: dict[str, Path]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the error is for machines without it")
    with pytest.raises(BackendError, match="device=cuda but CUDA is not available"):
        RewardModelBackend(str(models["llama"]), device="cuda").score_batch(PAIRS[:1])


# --- through the client ----------------------------------------------------------------------


def test_client_scores_batch_inside_cache_and_count(models: dict[str, Path],
                                                    tmp_path: Path) -> None:
    backend = RewardModelBackend(str(models["llama"]), batch_size=4)
    expected = scores(backend, PAIRS)
    batches: list[int] = []
    real = backend.score_batch

    def counting(pairs):  # the real method; records how the pairs arrived
        batches.append(len(pairs))
        return real(pairs)

    backend.score_batch = counting  # type: ignore[method-assign]
    store = RunStore(tmp_path / "run.db")

    async def go() -> tuple[list, list]:
        client = LLMClient(backend, cache=store)
        first = await client.score(PAIRS)
        second = await client.score(PAIRS)
        stats = client.stats()
        await client.aclose()
        return [first, second], stats

    try:
        (first, second), stats = asyncio.run(go())
    finally:
        store.close()
    assert [r.score for r in first] == pytest.approx(expected, abs=1e-5)
    assert batches == [4]  # four concurrent pairs, one forward pass
    assert [r.score for r in second] == [r.score for r in first]
    assert all(r.cached for r in second) and not any(r.cached for r in first)
    assert stats["calls"] == 4 and stats["cache_hits"] == 4
    assert stats["prompt_tokens"] == sum(r.usage.prompt_tokens for r in first) > 0
    assert all(r.model == backend.model_id and r.calls == 1 for r in first)


def test_asking_a_reward_model_to_generate_names_the_spec(models: dict[str, Path]) -> None:
    backend = RewardModelBackend(str(models["llama"]))
    request = LLMRequest(messages=[{"role": "user", "content": "hi"}], tags={"step": "answer"})

    async def go() -> None:
        await LLMClient(backend).generate(request)

    with pytest.raises(BackendError) as info:
        asyncio.run(go())
    message = str(info.value)
    assert f"reward:{models['llama']}" in message and "cannot generate text" in message
    assert "step answer" in message


def test_a_generating_backend_asked_to_score_is_a_clear_error() -> None:
    from tests.support.scripted_backend import ScriptedTestBackend

    async def go() -> None:
        await LLMClient(ScriptedTestBackend()).score([("q", "a")])

    with pytest.raises(SynthloomError, match="cannot score"):
        asyncio.run(go())
