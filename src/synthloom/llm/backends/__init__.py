"""Backend specs ("llamacpp", "llamacpp:/m.gguf", "openai:http://host:8000/v1") to instances.

Backend modules are imported only when chosen: llama-cpp-python is an optional dependency.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from synthloom.core.errors import BackendError
from synthloom.llm.backends.base import Backend

VALID_FORMS = (
    '"llamacpp" (the embedded SmolLM2 model)',
    '"llamacpp:/path/to/model.gguf"',
    '"openai:http://host:port/v1" (any OpenAI-compatible server)',
    '"vllm:MODEL[?tensor_parallel_size=N&...]" (vLLM in this process; GPU)',
    '"reward:PATH_OR_HF_ID[?batch_size=N&...]" (a reward model: scores, does not generate)',
)


def _llamacpp(target: str, model: str | None, api_key_env: str, options: dict[str, Any]) -> Backend:
    from synthloom.llm.backends.llamacpp import LlamaCppBackend

    if target and model:
        raise BackendError(f"llamacpp backend: got both a path in the spec and model={model!r}")
    # `model` may name the GGUF file when the spec does not.
    return LlamaCppBackend(target or model or None, **options)


def _openai(target: str, model: str | None, api_key_env: str, options: dict[str, Any]) -> Backend:
    from synthloom.llm.backends.openai_compat import OpenAIBackend

    if not target.startswith(("http://", "https://")):
        raise BackendError(
            f"openai backend needs a base URL, e.g. openai:http://127.0.0.1:8000/v1 (got {target!r})"
        )
    return OpenAIBackend(target, model, api_key_env=api_key_env, **options)


def _vllm(target: str, model: str | None, api_key_env: str, options: dict[str, Any]) -> Backend:
    from synthloom.llm.backends.vllm_offline import VLLMBackend, parse_spec

    name, engine_options = parse_spec(target or model or "")
    return VLLMBackend(name, **{**engine_options, **options})


def _reward(target: str, model: str | None, api_key_env: str, options: dict[str, Any]) -> Backend:
    from synthloom.llm.backends.reward import RewardModelBackend, parse_reward_spec

    name, model_options = parse_reward_spec(target or model or "")
    return RewardModelBackend(name, **{**model_options, **options})


# kind -> factory(target after "kind:", model, api_key_env, options). New backends: one line.
BackendFactory = Callable[[str, str | None, str, dict[str, Any]], Backend]
_REGISTRY: dict[str, BackendFactory] = {
    "llamacpp": _llamacpp,
    "openai": _openai,
    "vllm": _vllm,
    "reward": _reward,
}


def _invalid(spec: str) -> BackendError:
    return BackendError(f"unknown backend {spec!r}; valid forms: {', '.join(VALID_FORMS)}")


def resolve_backend(
    spec: str | None,
    *,
    model: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    **options: Any,
) -> Backend:
    """Build the backend a spec names; ``options`` go to its constructor (n_ctx, timeout_s, …)."""
    spec = (spec or "llamacpp").strip()
    kind, _, target = spec.partition(":")
    factory = _REGISTRY.get(kind.strip().lower())
    if factory is None:
        raise _invalid(spec)
    try:
        return factory(target.strip(), model, api_key_env, options)
    except TypeError as exc:
        # An option the backend does not take: say which, not a constructor traceback.
        raise BackendError(f"invalid option for the {kind} backend: {exc}") from exc


__all__ = ["Backend", "VALID_FORMS", "resolve_backend"]
