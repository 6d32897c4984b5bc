"""Named models of a recipe (``models:``): which backend and limits each one has.

A recipe may declare models by name; a step names one with ``model: judge``. A step that names
none uses the run's model (``--backend/--model``), which is also reachable by the name
``default``. ``--model-for NAME=SPEC`` replaces (or adds) one named model for a run.

A spec is a mapping (``backend``, ``model`` and the client's limits), a backend string
(``"openai:http://127.0.0.1:8001/v1"``, ``"reward:/models/rm"``: any spec the backend factory
accepts), or ``default`` (an alias of the run's model: the recipe names a role, the run decides
whether it is a separate model). Core only validates the shape; the llm layer builds clients.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synthloom.core.errors import RecipeError

#: The run's own model (``--backend/--model``), always available.
DEFAULT_MODEL = "default"


def option(help: str, cli_type: Any = None) -> dict[str, Any]:
    """Metadata of an option field: its ``--help`` text, and its type on the command line
    where the Python API accepts more (a built backend object instead of a spec string)."""
    return {"help": help, "cli_type": cli_type}


@dataclass
class RunModelOptions:
    """The run's own model and its limits, declared once: ``api.RunOptions`` and
    ``llm.models.RunModels`` extend this class, and ``synthloom run`` builds its options
    (``--backend``, ``--api-key-env``, ...) from these fields and their help."""

    #: A backend spec string, or (Python API) a built backend object.
    backend: Any = field(default=None, metadata=option(
        "llamacpp (embedded default) | llamacpp:PATH.gguf | openai:BASE_URL",
        cli_type=str | None))
    model: str | None = field(default=None, metadata=option(
        "Model name for the openai backend."))
    api_key_env: str = field(default="OPENAI_API_KEY", metadata=option(
        "Environment variable holding the API key."))
    concurrency: int | None = field(default=None, metadata=option("LLM requests in flight."))
    rpm: float | None = field(default=None, metadata=option("Requests per minute limit."))
    tpm: float | None = field(default=None, metadata=option("Tokens per minute limit."))
    budget_tokens: int | None = field(default=None, metadata=option(
        "Stop cleanly after this many new tokens; rerun to continue."))

    def model_options(self) -> dict[str, Any]:
        """These fields' values (of a subclass too), to build another kind from them."""
        return {f.name: getattr(self, f.name) for f in fields(RunModelOptions)}


class ModelSpec(BaseModel):
    """One named model: its backend and the limits of its own client."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    #: A backend spec (``openai:URL``, ``llamacpp:PATH``, ``vllm:NAME``, ``reward:PATH``, ...);
    #: ``default``: the run's backend (an alias, unless ``model`` names another model on it).
    #: The Python API may also pass a built backend object.
    backend: Any = DEFAULT_MODEL
    #: Model name sent to the backend (the openai backend's ``model`` field).
    model: str | None = None
    api_key_env: str | None = None
    concurrency: int | None = Field(default=None, ge=1)
    rpm: float | None = Field(default=None, gt=0)
    tpm: float | None = Field(default=None, gt=0)
    #: This model's own share of tokens (the run's --budget-tokens caps all models together).
    budget_tokens: int | None = Field(default=None, ge=0)
    max_attempts: int | None = Field(default=None, ge=1)
    request_timeout_s: float | None = Field(default=None, gt=0)
    #: Keyword options for the backend's constructor (n_ctx, timeout_s, ...).
    options: dict[str, Any] = Field(default_factory=dict)
    #: The model's context window (prompt + answer) in tokens, where its server does not say
    #: (llama-cpp-python's server, hosted APIs); with a server that does, the smaller wins.
    context_length: int | None = Field(default=None, ge=16)
    #: A local Hugging Face tokenizer folder to count tokens with (instead of the server's
    #: tokenize endpoint or an estimate).
    tokenizer: str | None = None

    @property
    def is_alias(self) -> bool:
        """The run's own model under another name: the same client, shared."""
        return self.backend == DEFAULT_MODEL and self.model is None and not self.options and all(
            getattr(self, k) is None for k in ("api_key_env", "concurrency", "rpm", "tpm",
                                               "budget_tokens", "max_attempts",
                                               "request_timeout_s", "context_length",
                                               "tokenizer"))


def parse_model_spec(value: Any, where: str) -> ModelSpec:
    """A spec from YAML / the command line: a mapping, a backend string, or ``default``.
    ``where`` names it in errors (``recipe x.yaml: models.judge``, ``--model-for judge``)."""
    if isinstance(value, ModelSpec):
        return value
    if hasattr(value, "complete") and hasattr(value, "model_id"):  # a built backend (Python API)
        return ModelSpec(backend=value)
    if value is None:
        value = DEFAULT_MODEL
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):  # a YAML/JSON mapping given as text (the command line)
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise RecipeError(f"{where}: not a valid YAML mapping: {exc}") from None
        else:
            value = {"backend": text or DEFAULT_MODEL}
    if not isinstance(value, dict):
        raise RecipeError(f"{where}: expected a backend spec string or a mapping "
                          f"{{backend: ..., model: ...}} (got {value!r})")
    backend = value.get("backend", DEFAULT_MODEL)
    if not (isinstance(backend, str) or hasattr(backend, "complete")):
        raise RecipeError(f"{where}: backend must be a spec string such as "
                          f"openai:http://127.0.0.1:8001/v1 (got {backend!r})")
    try:
        return ModelSpec.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            (f"unknown key {'.'.join(map(str, e['loc']))!r}" if e["type"] == "extra_forbidden"
             else f"{'.'.join(map(str, e['loc']))}: {e['msg']}") for e in exc.errors()[:5])
        raise RecipeError(f"{where}: {problems}") from None


def parse_model_for(items: list[str]) -> dict[str, str]:
    """``--model-for NAME=SPEC`` values (repeatable) -> {name: spec text}."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        name = name.strip()
        if not sep or not name or not spec.strip():
            raise RecipeError(f"--model-for {item!r}: expected NAME=SPEC, e.g. "
                              "judge=openai:http://127.0.0.1:8001/v1 or "
                              "'judge={backend: \"openai:http://127.0.0.1:8001/v1\", model: qwen}'")
        if name in out:
            raise RecipeError(f"--model-for {name}: given twice")
        out[name] = spec.strip()
    return out
