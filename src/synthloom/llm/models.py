"""Clients of a run's named models: one :class:`LLMClient` per model, each with its own limits.

``build_clients`` turns the recipe's ``models:`` (``core/models.py``) plus the run's own model
into ``{name: client}``. A name whose spec is ``default`` (an alias) shares the run's client;
every other name gets its own backend and client: concurrency, RPM/TPM, retries, its own token
share, and the response cache (the run store; keys carry the model id, so models never share
entries). The run's ``--budget-tokens`` caps all models together (:class:`SharedBudget`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from synthloom.core.models import DEFAULT_MODEL, ModelSpec, RunModelOptions
from synthloom.llm.backends import resolve_backend
from synthloom.llm.backends.base import Backend
from synthloom.llm.client import LLMClient, ResponseCache
from synthloom.llm.limits import SharedTally, TokenBudget


class SharedBudget:
    """A model's own token share and the run's total, checked and charged together."""

    def __init__(self, own: TokenBudget, run: TokenBudget) -> None:
        self.own = own
        self.run = run

    @property
    def max_tokens(self) -> int | None:
        return self.own.max_tokens

    @property
    def spent(self) -> int:
        return self.own.spent

    @property
    def remaining(self) -> int | None:
        left = [b.remaining for b in (self.own, self.run) if b.remaining is not None]
        return min(left) if left else None

    @property
    def exhausted(self) -> bool:
        return self.own.exhausted or self.run.exhausted

    def check(self) -> None:
        self.run.check()
        self.own.check()

    def add(self, n: int) -> None:
        self.own.add(n)
        self.run.add(n)

    def share(self, tally: SharedTally, model: str | None = None) -> None:
        """Count against a tally shared with other processes (Ray actors): the run's total
        under the tally's key, this model's own share under its model id."""
        self.run.share(tally)
        self.own.share(tally.child(f"model:{model}"))


@dataclass
class RunModels(RunModelOptions):
    """How the run's own model and its limits were given (``--backend/--model/...``: the
    fields of ``RunModelOptions``), and the recipe's named models."""

    #: The run's model's context window and tokenizer folder (``ModelSpec`` has its own).
    context_length: int | None = None
    tokenizer: str | None = None
    #: Named models (recipe ``models:`` after ``--model-for``).
    specs: dict[str, ModelSpec] = field(default_factory=dict)
    #: Rate limits are divided by this (Ray: actors of one step share a model's limits).
    share: int = 1

    def backend_of(self, name: str) -> Backend | str | None:
        """The backend (object or spec) a name resolves to, without building it."""
        spec = self.specs.get(name)
        if spec is None or spec.backend == DEFAULT_MODEL:
            return self.backend
        return spec.backend

    def build_backend(self, name: str) -> Backend:
        spec = self.specs.get(name)
        if spec is None or spec.is_alias:
            backend = self.backend
            if isinstance(backend, Backend):
                return backend
            return resolve_backend(backend, model=self.model, api_key_env=self.api_key_env)
        backend = self.backend if spec.backend == DEFAULT_MODEL else spec.backend
        if isinstance(backend, Backend):
            if spec.model is not None:
                raise ValueError(f"model {name}: a built backend object takes no model name")
            return backend
        return resolve_backend(backend, model=spec.model or (self.model if spec.backend ==
                                                               DEFAULT_MODEL else None),
                               api_key_env=spec.api_key_env or self.api_key_env, **spec.options)

    def client(self, name: str, backend: Backend, cache: ResponseCache | None,
               run_budget: TokenBudget) -> LLMClient:
        spec = self.specs.get(name)
        if spec is None or spec.is_alias:
            spec = ModelSpec()
        share = max(1, self.share)
        rpm = spec.rpm if spec.rpm is not None else (self.rpm if name == DEFAULT_MODEL else None)
        tpm = spec.tpm if spec.tpm is not None else (self.tpm if name == DEFAULT_MODEL else None)
        kwargs: dict[str, Any] = {
            "concurrency": spec.concurrency or (self.concurrency if name == DEFAULT_MODEL
                                                else None),
            "rpm": rpm / share if rpm else None, "tpm": tpm / share if tpm else None}
        if spec.max_attempts is not None:
            kwargs["max_attempts"] = spec.max_attempts
        if spec.request_timeout_s is not None:
            kwargs["request_timeout_s"] = spec.request_timeout_s
        own = name == DEFAULT_MODEL
        kwargs["context_length"] = spec.context_length or (self.context_length if own else None)
        kwargs["tokenizer"] = spec.tokenizer or (self.tokenizer if own else None)
        client = LLMClient(backend, cache=cache, **kwargs)
        client.budget = SharedBudget(TokenBudget(spec.budget_tokens), run_budget)  # type: ignore[assignment]
        return client

    def resolved(self, clients: dict[str, LLMClient]) -> RunModels:
        """A copy that names the model each checked backend chose where the run named none
        (``--backend openai:URL`` without ``--model``: the server's first listed model), so
        backends built again from the specs (Ray workers) call the model the driver checked.
        Backend objects are shipped as they are and need nothing."""
        model = self.model
        specs = dict(self.specs)
        for name, client in clients.items():
            found = getattr(client.backend, "resolved_model", None)
            if not found:
                continue
            spec = specs.get(name)
            if spec is None or spec.is_alias:
                if name == DEFAULT_MODEL and model is None and not isinstance(self.backend,
                                                                              Backend):
                    model = found
            elif spec.model is None and not isinstance(spec.backend, Backend) and not (
                    spec.backend == DEFAULT_MODEL and isinstance(self.backend, Backend)):
                specs[name] = spec.model_copy(update={"model": found})
        return replace(self, model=model, specs=specs)

    def aliases(self, names: set[str]) -> dict[str, str]:
        """name -> the name whose client it shares (aliases of the run's model)."""
        return {n: DEFAULT_MODEL for n in names
                if n != DEFAULT_MODEL and (n not in self.specs or self.specs[n].is_alias)}


def build_clients(run: RunModels, names: set[str], cache: ResponseCache | None,
                  run_budget: TokenBudget | None = None) -> dict[str, LLMClient]:
    """One client per distinct model among ``names`` (aliases share the run's client)."""
    budget = run_budget if run_budget is not None else TokenBudget(run.budget_tokens)
    aliases = run.aliases(names)
    wanted = [n for n in sorted(names) if n not in aliases]
    if aliases and DEFAULT_MODEL not in wanted:
        wanted.insert(0, DEFAULT_MODEL)
    clients: dict[str, LLMClient] = {}
    for name in wanted:
        clients[name] = run.client(name, run.build_backend(name), cache, budget)
    for name, target in aliases.items():
        clients[name] = clients[target]
    return clients

