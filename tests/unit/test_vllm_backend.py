"""The vLLM offline backend's own logic with ScriptedVLLM, a test double of the `vllm` module
(no GPU here): requests arriving together go to LLM.generate as one batch, chat requests are
rendered with the model's chat template, a schema becomes structured-output params, seeds and
sampling params pass through, usage and finish reasons come back. The real engine is exercised
by tests/integration/test_vllm_gpu.py where a GPU and vLLM exist."""

from __future__ import annotations

import asyncio
import importlib.util
from types import SimpleNamespace

import pytest

from synthloom.core.errors import BackendError
from synthloom.llm.backends import resolve_backend
from synthloom.llm.backends.vllm_offline import VLLMBackend, parse_spec
from synthloom.llm.client import LLMClient
from synthloom.llm.types import LLMRequest, SamplingParams


class ScriptedVLLM:
    """Stands in for the `vllm` module: SamplingParams, sampling_params.StructuredOutputsParams
    and an engine whose generate() records each batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.params: list[dict] = []
        self.sampling_params = SimpleNamespace(StructuredOutputsParams=lambda json: {"json": json})

    def SamplingParams(self, **options):  # noqa: N802 - mirrors vllm.SamplingParams
        self.params.append(options)
        return options

    def get_tokenizer(self):
        return SimpleNamespace(
            apply_chat_template=lambda messages, tokenize, add_generation_prompt:
                "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>",
            encode=lambda text: text.split())

    def generate(self, prompts, params, use_tqdm):
        self.batches.append(list(prompts))
        outputs = []
        for prompt, p in zip(prompts, params, strict=True):
            text = '{"answer": "42"}' if "structured_outputs" in p else f"seed {p['seed']}"
            outputs.append(SimpleNamespace(
                prompt_token_ids=list(range(len(prompt.split()))),
                outputs=[SimpleNamespace(text=text, token_ids=[1, 2, 3],
                                         finish_reason="length" if p["max_tokens"] < 5
                                         else "stop")]))
        return outputs


def test_spec_options_are_parsed() -> None:
    assert parse_spec("Qwen/Qwen2.5-7B?tensor_parallel_size=2&enforce_eager=true&gpu_memory"
                      "_utilization=0.8") == ("Qwen/Qwen2.5-7B", {
                          "tensor_parallel_size": 2, "enforce_eager": True,
                          "gpu_memory_utilization": 0.8})
    backend = resolve_backend("vllm:org/model?tensor_parallel_size=4")
    assert backend.model_id == "vllm:org/model" and backend.tensor_parallel_size == 4
    with pytest.raises(BackendError, match="needs a model"):
        parse_spec("?x=1")


def test_concurrent_requests_become_one_batch_with_their_own_params() -> None:
    fake = ScriptedVLLM()
    backend = VLLMBackend("m", engine=fake, vllm_module=fake, gather_ms=50)
    client = LLMClient(backend, concurrency=64)

    async def go():
        chat = [client.generate(LLMRequest(
            messages=[{"role": "user", "content": f"q{i}"}],
            params=SamplingParams(max_tokens=64, seed=100 + i))) for i in range(10)]
        raw = client.generate(LLMRequest(prompt="raw text", params=SamplingParams(max_tokens=2)))
        structured = client.generate(LLMRequest(
            messages=[{"role": "user", "content": "json please"}],
            json_schema={"type": "object", "properties": {"answer": {"type": "string"}},
                         "required": ["answer"]}))
        results = await asyncio.gather(*chat, raw, structured)
        await client.aclose()
        return results

    results = asyncio.run(go())
    assert len(fake.batches) == 1 and len(fake.batches[0]) == 12
    assert "<user>q3<assistant>" in fake.batches[0] and "raw text" in fake.batches[0]
    texts = [r[0].text for r in results[:10]]
    assert texts == [f"seed {100 + i}" for i in range(10)]
    assert results[10][0].finish_reason == "length"
    assert results[11][0].parsed == {"answer": "42"}
    assert results[0][0].usage.completion_tokens == 3
    assert any("structured_outputs" in p for p in fake.params)


def test_a_failed_batch_fails_each_request_with_the_cause() -> None:
    fake = ScriptedVLLM()
    fake.generate = lambda prompts, params, use_tqdm: (_ for _ in ()).throw(
        RuntimeError("CUDA out of memory"))
    backend = VLLMBackend("m", engine=fake, vllm_module=fake)

    async def go():
        try:
            return await backend.complete(LLMRequest(prompt="x"), seed=1)
        finally:
            await backend.aclose()

    with pytest.raises(Exception, match="CUDA out of memory"):
        asyncio.run(go())


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None,
                    reason="vllm is installed here: the missing-vllm message cannot show")
def test_without_vllm_the_error_says_what_to_install() -> None:
    backend = resolve_backend("vllm:some/model")
    with pytest.raises(BackendError, match=r"synthloom\[vllm\]"):
        asyncio.run(backend.check())
