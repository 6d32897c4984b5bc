"""vLLM offline backend (``vllm:MODEL``): the engine in this process, requests batched.

The client sends one request per sample, concurrently; this backend gathers the requests that
arrive within a few milliseconds (up to ``max_batch``) and hands them to ``LLM.generate`` as
one batch, so vLLM's continuous batching sees the whole window. Chat requests are rendered with
the model's own chat template; raw prompts go as they are. A JSON schema becomes vLLM's
structured output (``StructuredOutputsParams``, or ``GuidedDecodingParams`` before 0.12).

Options ride in the spec: ``vllm:Qwen/Qwen2.5-7B-Instruct?tensor_parallel_size=2&max_model_len=8192``
(numbers are parsed; every key goes to ``vllm.LLM``). Needs a GPU and ``synthloom[vllm]``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from synthloom.core.errors import BackendError
from synthloom.llm.backends.base import Backend, next_batch
from synthloom.llm.types import LLMRequest, PermanentLLMError, RawCompletion, Usage


def parse_spec(target: str) -> tuple[str, dict[str, Any]]:
    """``MODEL?key=value&...`` → (model, engine options with numbers and booleans parsed)."""
    model, _, query = target.partition("?")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        options[key] = _scalar(value)
    if not model:
        raise BackendError("vllm backend needs a model: vllm:MODEL_NAME_OR_PATH")
    if model.startswith(("http://", "https://")):
        raise BackendError(f"vllm:{model}: the vllm backend runs the model in this process; "
                           f"for a vLLM server use --backend openai:{model} --model NAME")
    return model, options


def _scalar(value: str) -> Any:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return kind(value)
    return value


def load_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise BackendError(
            f"the vllm backend needs vLLM and a GPU ({exc}); install: pip install "
            "'synthloom[vllm]', or serve the model with `vllm serve` and use "
            "--backend openai:http://HOST:PORT/v1") from exc
    return vllm


@dataclass
class _Pending:
    prompt: str
    params: Any
    future: asyncio.Future


class VLLMBackend(Backend):
    kind = "vllm"
    supports_json_schema = True
    supports_raw_prompt = True
    default_concurrency = 256  # batching is the point: keep many requests in flight

    def __init__(self, model: str, *, engine: Any = None, vllm_module: Any = None,
                 max_batch: int = 256, gather_ms: float = 5.0, **engine_options: Any) -> None:
        self.model = model
        self.engine_options = engine_options
        self.max_batch = max_batch
        self.gather_s = gather_ms / 1000
        # A built engine (and the module for its params) may be handed in: tests, notebooks.
        self._engine = engine
        self._vllm = vllm_module
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None

    @property
    def model_id(self) -> str:
        return f"vllm:{self.model}"

    @property
    def tensor_parallel_size(self) -> int:
        return int(self.engine_options.get("tensor_parallel_size", 1))

    def _module(self) -> Any:
        if self._vllm is None:
            self._vllm = load_vllm()
        return self._vllm

    def _llm(self) -> Any:
        if self._engine is None:
            self._engine = self._module().LLM(model=self.model, **self.engine_options)
        return self._engine

    async def check(self) -> None:
        await asyncio.to_thread(self._llm)

    def count_tokens(self, text: str) -> int:
        return len(self._llm().get_tokenizer().encode(text))

    def tokenizer_name(self) -> str | None:
        return "model:vllm"

    @property
    def context_length(self) -> int | None:
        """The engine's ``max_model_len`` once it is loaded (the spec's option before)."""
        given = self.engine_options.get("max_model_len")
        if self._engine is None:
            return int(given) if given else None
        try:
            return int(self._engine.llm_engine.model_config.max_model_len)
        except (AttributeError, TypeError, ValueError):
            return int(given) if given else None

    context_length_source = "max_model_len"

    # --- one request in, batched out ----------------------------------------------------------

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._batches())
        prompt = self._prompt(request)
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(prompt, self._params(request, seed), future))
        return await future

    def _prompt(self, request: LLMRequest) -> str:
        if request.prompt is not None:
            return request.prompt
        tokenizer = self._llm().get_tokenizer()
        return tokenizer.apply_chat_template(request.messages, tokenize=False,
                                             add_generation_prompt=True)

    def _params(self, request: LLMRequest, seed: int | None) -> Any:
        vllm = self._module()
        p = request.params
        options: dict[str, Any] = {"temperature": p.temperature, "top_p": p.top_p,
                                   "max_tokens": p.max_tokens, "stop": p.stop, "seed": seed,
                                   "presence_penalty": p.presence_penalty}
        if request.json_schema is not None:
            options.update(_structured(vllm, request.json_schema))
        return vllm.SamplingParams(**options)

    async def _batches(self) -> None:
        assert self._queue is not None
        while True:
            batch = await next_batch(self._queue, self.max_batch, self.gather_s)
            try:
                outputs = await asyncio.to_thread(
                    self._llm().generate, [b.prompt for b in batch], [b.params for b in batch],
                    use_tqdm=False)
            except Exception as exc:  # noqa: BLE001 - the batch failed: every request fails
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(PermanentLLMError(f"vllm generate: {exc}"))
                continue
            for item, output in zip(batch, outputs, strict=True):
                if not item.future.done():
                    item.future.set_result(self._completion(output))

    def _completion(self, output: Any) -> RawCompletion:
        sample = output.outputs[0]
        return RawCompletion(
            text=sample.text, finish_reason=sample.finish_reason, model=self.model_id,
            usage=Usage(len(output.prompt_token_ids or []), len(sample.token_ids or [])))

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None


def _structured(vllm: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """Guided JSON in whichever form this vLLM speaks (0.12 renamed it)."""
    sampling = getattr(vllm, "sampling_params", None)
    structured = getattr(sampling, "StructuredOutputsParams", None)
    if structured is not None:
        return {"structured_outputs": structured(json=schema)}
    guided = getattr(sampling, "GuidedDecodingParams", None)
    if guided is not None:
        return {"guided_decoding": guided(json=schema)}
    raise BackendError("this vLLM has neither StructuredOutputsParams nor GuidedDecodingParams")
