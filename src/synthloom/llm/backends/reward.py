"""Reward-model backend (``reward:PATH``): scores (prompt, response) pairs, generates nothing.

A sequence-classification reward model run by transformers in this process
(``AutoTokenizer`` + ``AutoModelForSequenceClassification``). The pair becomes the model's
input through the tokenizer's chat template (a user turn, then the response as the assistant
turn) when it has one, else as ``prompt + "\\n\\n" + response`` (``format=pair`` encodes it as
a text pair instead: ``[CLS] prompt [SEP] response [SEP]`` for BERT/DeBERTa-style models). The
score is the model output's ``score`` where it has one (ArmoRM's multi-objective head, with
``trust_remote_code=true``), else ``logits[:, label]`` (label 0: the usual one-logit head).

The client sends one pair per call, concurrently; this backend gathers the pairs that arrive
within a few milliseconds into batches of up to ``batch_size`` (right-padded, so positions of
real tokens are those of a one-by-one call), and runs the model in one worker thread under
``torch.inference_mode``. Same pair, same batch: the same score, bit for bit; a pair scored in
another batch agrees to float rounding (~1e-6 in float32). Runs on the CPU, or on CUDA when
available (``device=auto``); bfloat16 on CUDA, float32 on the CPU (``dtype=...``).

Options ride in the spec like vLLM's:
``reward:Skywork/Skywork-Reward-V2-Llama-3.1-8B?batch_size=16&max_length=4096``,
``reward:RLHFlow/ArmoRM-Llama3-8B-v0.1?trust_remote_code=true``. PATH is a local model folder
or a Hugging Face id (resolved through the local cache; offline with ``HF_HUB_OFFLINE=1``).
Needs ``pip install 'synthloom[reward]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from synthloom.core.errors import BackendError
from synthloom.llm.backends.base import Backend, next_batch
from synthloom.llm.backends.vllm_offline import _scalar
from synthloom.llm.types import (
    LLMRequest,
    PermanentLLMError,
    RawCompletion,
    RawScore,
    ScorePrompt,
    Usage,
)

INSTALL_HINT = "pip install 'synthloom[reward]'"
FORMATS = ("auto", "chat", "text", "pair")
# Files that make a model folder what it is (weights, config, tokenizer, remote code).
_MODEL_FILES = ("*.json", "*.safetensors", "*.bin", "*.py", "*.model", "*.txt", "*.tiktoken",
                "*.jinja")
_HASH_CHUNK = 1 << 20


def load_torch_transformers() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise BackendError(f"the reward backend needs torch and transformers ({exc}); "
                           f"install: {INSTALL_HINT}") from exc
    return torch, transformers


def parse_reward_spec(target: str) -> tuple[str, dict[str, Any]]:
    """``PATH?key=value&...`` -> (path or model id, options with numbers and booleans parsed)."""
    name, _, query = target.partition("?")
    if not name:
        raise BackendError("reward backend needs a model: reward:/path/to/model or "
                           "reward:ORG/NAME (a Hugging Face id in the local cache)")
    return name, {key: _scalar(value) for key, value in parse_qsl(query, keep_blank_values=True)}


def folder_fingerprint(folder: Path) -> str:
    """12 hex chars over each model file's name, size, first and last MiB (fast for 8B)."""
    digest = hashlib.blake2b(digest_size=16)
    files = sorted({p for pattern in _MODEL_FILES for p in folder.glob(pattern) if p.is_file()})
    if not files:
        raise BackendError(f"reward model folder {folder} holds no model files "
                           "(config.json, *.safetensors, ...)")
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with path.open("rb") as fh:
            digest.update(fh.read(_HASH_CHUNK))
            fh.seek(max(0, size - _HASH_CHUNK))
            digest.update(fh.read(_HASH_CHUNK))
    return digest.hexdigest()[:12]


@dataclass
class _Pending:
    prompt: ScorePrompt
    response: str
    future: asyncio.Future


class RewardModelBackend(Backend):
    kind = "reward"
    supports_generate = False
    supports_score = True
    default_concurrency = 64  # pairs in flight: enough to fill a few batches

    def __init__(self, model: str, *, batch_size: int = 8, max_length: int | None = None,
                 device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False,
                 format: str = "auto", label: int = 0, gather_ms: float = 5.0,
                 revision: str | None = None) -> None:
        if batch_size < 1:
            raise BackendError(f"reward:{model}: batch_size must be >= 1 (got {batch_size})")
        if format not in FORMATS:
            raise BackendError(f"reward:{model}: format {format!r} is not one of "
                               f"{', '.join(FORMATS)}")
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length
        self.device_option = device
        self.dtype_option = dtype
        self.trust_remote_code = trust_remote_code
        self.format = format
        self.label = label
        self.gather_s = gather_ms / 1000
        self.revision = revision
        self._folder: Path | None = None
        self._model_id: str | None = None
        self._tokenizer: Any = None
        self._model: Any = None
        self._device: Any = None
        self._load_lock = threading.Lock()
        # One thread runs the model: batches are serial, the event loop only awaits them.
        self._executor: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None

    def __repr__(self) -> str:
        return (f"RewardModelBackend(model={self.model!r}, batch_size={self.batch_size}, "
                f"device={self.device_option!r})")

    @property
    def spec(self) -> str:
        return f"reward:{self.model}"

    # --- the model folder, its identity, loading ----------------------------------------------

    @property
    def folder(self) -> Path:
        if self._folder is None:
            local = Path(self.model).expanduser()
            if local.is_dir():
                self._folder = local.resolve()
            elif self.model.startswith((".", "/", "~")) or self.model.count("/") > 1:
                # A path, not a hub id ("org/name"): say it is missing, do not go online.
                raise BackendError(f"reward model folder not found: {local}")
            else:
                self._folder = self._from_hub()
        return self._folder

    def _from_hub(self) -> Path:
        try:
            from huggingface_hub import snapshot_download
        except ImportError as exc:
            raise BackendError(f"reward:{self.model} is not a local folder and huggingface_hub "
                               f"is missing to resolve it; install: {INSTALL_HINT}") from exc
        try:
            return Path(snapshot_download(self.model, revision=self.revision,
                                          allow_patterns=list(_MODEL_FILES)))
        except Exception as exc:  # noqa: BLE001 - offline, unknown id, gated: one clear line
            raise BackendError(
                f"reward:{self.model}: not a local folder, and the Hugging Face hub could not "
                f"resolve it ({type(exc).__name__}: {str(exc)[:200]}); download the model "
                "where you have the network and pass its folder, or set HF_HUB_OFFLINE=1 "
                "with the model in the local cache") from exc

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            folder = self.folder
            name = self.model if not Path(self.model).expanduser().is_dir() else folder.name
            self._model_id = f"reward:{name}:{folder_fingerprint(folder)}"
        return self._model_id

    def _load(self) -> tuple[Any, Any]:
        if self._model is not None:
            return self._tokenizer, self._model
        with self._load_lock:
            if self._model is None:
                self._tokenizer, self._model = self._load_sync()
        return self._tokenizer, self._model

    def _load_sync(self) -> tuple[Any, Any]:
        torch, transformers = load_torch_transformers()
        # A bar per weight file would scribble over the run's own progress display.
        transformers.utils.logging.disable_progress_bar()
        folder = self.folder
        device = self._pick_device(torch)
        dtype = self._pick_dtype(torch, device)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                folder, trust_remote_code=self.trust_remote_code)
            model = transformers.AutoModelForSequenceClassification.from_pretrained(
                folder, trust_remote_code=self.trust_remote_code, **{_dtype_kw(transformers): dtype})
        except (OSError, ValueError, KeyError) as exc:
            hint = (" (its code lives in the model folder: add ?trust_remote_code=true to the "
                    "spec if you trust it)") if "trust_remote_code" in str(exc) else ""
            raise BackendError(f"cannot load reward model {self.spec}: "
                               f"{str(exc)[:300]}{hint}") from exc
        # Right padding: real tokens keep the positions of a one-by-one call. The head reads
        # the last non-pad token, so the model must know the pad id.
        tokenizer.padding_side = "right"
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token_id is None:
                raise BackendError(f"reward model {self.spec}: the tokenizer has neither a pad "
                                   "nor an eos token to pad batches with")
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        model.to(device)
        model.eval()
        self._device = device
        return tokenizer, model

    def _pick_device(self, torch: Any) -> Any:
        option = self.device_option
        if option == "auto":
            option = "cuda" if torch.cuda.is_available() else "cpu"
        elif option.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"reward model {self.spec}: device={option} but CUDA is not "
                               "available (use device=cpu or device=auto)")
        return torch.device(option)

    def _pick_dtype(self, torch: Any, device: Any) -> Any:
        option = self.dtype_option
        if option == "auto":
            return torch.bfloat16 if device.type == "cuda" else torch.float32
        dtype = getattr(torch, option, None)
        if not isinstance(dtype, torch.dtype):
            raise BackendError(f"reward model {self.spec}: unknown dtype {option!r} "
                               "(float32, bfloat16, float16 or auto)")
        return dtype

    def _thread(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reward")
        return self._executor

    async def check(self) -> None:
        _ = self.model_id  # resolves and hashes the folder: a missing model fails here
        await asyncio.get_running_loop().run_in_executor(self._thread(), self._load)

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        self._queue = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._model = self._tokenizer = None

    def count_tokens(self, text: str) -> int:
        tokenizer, _ = self._load()
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    # --- generation: not this backend's job ---------------------------------------------------

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        step = request.tags.get("step")
        raise BackendError(
            f"backend {self.spec} is a reward model: it scores (prompt, response) pairs and "
            f"cannot generate text{f' (step {step} asked it to)' if step else ''}; give the "
            "generating step a generating model (its `model:` or --backend)")

    # --- scoring: one pair in, batched out ----------------------------------------------------

    async def score(self, prompt: ScorePrompt, response: str) -> RawScore:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._batches())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(prompt, response, future))
        return await future

    async def _batches(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = await next_batch(self._queue, self.batch_size, self.gather_s)
            batch = [b for b in batch if not b.future.done()]  # cancelled while queued
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(
                    self._thread(), self.score_batch, [(b.prompt, b.response) for b in batch])
            except Exception as exc:  # noqa: BLE001 - the batch failed: each pair fails
                results = [exc] * len(batch)
            for item, result in zip(batch, results, strict=True):
                if item.future.done():
                    continue
                if isinstance(result, BaseException):
                    item.future.set_exception(result if isinstance(result, BackendError)
                                              else PermanentLLMError(f"{self.spec}: {result}"))
                else:
                    item.future.set_result(result)

    def score_batch(self, pairs: list[tuple[ScorePrompt, str]]) -> list[RawScore | Exception]:
        """Scores in the order given (sync; also usable directly, e.g. in notebooks). A pair
        longer than ``max_length`` gets a PermanentLLMError, not a score of a cut-off text."""
        torch, _ = load_torch_transformers()
        tokenizer, model = self._load()
        limit = self._max_length(tokenizer, model)
        out: list[RawScore | Exception] = []
        encoded: list[tuple[int, dict[str, list[int]]]] = []
        for i, (prompt, response) in enumerate(pairs):
            features = self._encode(tokenizer, prompt, response)
            length = len(features["input_ids"])
            if length > limit:
                out.append(PermanentLLMError(
                    f"{self.spec}: prompt + response is {length} tokens, more than the reward "
                    f"model's max_length {limit} (a cut-off answer would get a false score)"))
            else:
                out.append(RawScore(0.0, Usage(prompt_tokens=length)))
                encoded.append((i, features))
        if not encoded:
            return out
        padded = tokenizer.pad([f for _, f in encoded], padding=True, return_tensors="pt")
        inputs = {k: v.to(self._device) for k, v in padded.items()}
        with torch.inference_mode():
            output = model(**inputs)
        values = _scores(output, self.label).float().cpu().tolist()
        for (i, _), value in zip(encoded, values, strict=True):
            raw = out[i]
            assert isinstance(raw, RawScore)
            raw.score = float(value)
        return out

    def _encode(self, tokenizer: Any, prompt: ScorePrompt, response: str) -> dict[str, list[int]]:
        fmt = self.format
        if fmt == "auto":
            fmt = "chat" if getattr(tokenizer, "chat_template", None) else "text"
        if fmt == "chat":
            if not getattr(tokenizer, "chat_template", None):
                raise BackendError(f"{self.spec}: format=chat but the tokenizer has no chat "
                                   "template (use format=text or format=pair)")
            messages = (list(prompt) if isinstance(prompt, list)
                        else [{"role": "user", "content": prompt}])
            text = tokenizer.apply_chat_template(
                [*messages, {"role": "assistant", "content": response}], tokenize=False)
            # The template writes the special tokens (BOS) itself: do not add them twice.
            return dict(tokenizer(text, add_special_tokens=False))
        text_prompt = prompt if isinstance(prompt, str) else _flatten(prompt)
        if fmt == "pair":
            return dict(tokenizer(text_prompt, response))
        return dict(tokenizer(f"{text_prompt}\n\n{response}"))

    def _max_length(self, tokenizer: Any, model: Any) -> int:
        if self.max_length is not None:
            return self.max_length
        limits = [getattr(model.config, "max_position_embeddings", None),
                  getattr(tokenizer, "model_max_length", None)]
        usable = [int(x) for x in limits if isinstance(x, int) and 0 < x < 1_000_000]
        return min(usable) if usable else 4096


def _scores(output: Any, label: int) -> Any:
    """One score per row: ``output.score`` (ArmoRM-style heads) or ``logits[:, label]``."""
    score = getattr(output, "score", None)
    if score is None:
        logits = output.logits if hasattr(output, "logits") else output[0]
        return logits[:, label] if logits.dim() == 2 else logits
    return score[:, 0] if score.dim() == 2 else score


def _dtype_kw(transformers: Any) -> str:
    # transformers 4.56 renamed torch_dtype to dtype (the old name warns in 5.x).
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def _flatten(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(str(m.get("content", "")) for m in messages)
