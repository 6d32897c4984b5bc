"""What a step sees while it runs: the run (seed, LLM, context inputs) and the item in hand."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class LLMLike(Protocol):
    """Everything core calls on an LLM client (core does not import the llm layer).

    ``llm.client.LLMClient`` implements all of it. The executors call the run-level part
    (``concurrency``, ``stats``, ``halt``/``resume``; on Ray ``share_budget``, ``take_counts``
    and ``add_counts``); steps call ``generate``, ``count_tokens`` and, where the model is a
    reward model (``supports_score``), ``score``. A capability a backend lacks is a flag, not
    a missing attribute: core never probes clients with ``getattr``.
    """

    #: Requests this client sends at once (the local executor sizes its batch window by it).
    concurrency: int

    @property
    def model_id(self) -> str: ...

    @property
    def supports_score(self) -> bool:
        """A reward model: ``score`` works."""
        ...

    async def generate(self, request: Any) -> list[Any]: ...

    async def score(self, pairs: list[tuple[Any, str]]) -> list[Any]: ...

    def count_tokens(self, text: str) -> int: ...

    def stats(self) -> dict[str, Any]:
        """Calls, tokens, retries... of this client (summary.json ``llm``)."""
        ...

    def halt(self) -> None:
        """Start no new request (the run was interrupted or failed)."""
        ...

    def resume(self) -> None: ...

    def share_budget(self, tally: Any) -> None:
        """Charge tokens to a tally shared with other processes (Ray actors)."""
        ...

    def take_counts(self) -> dict[str, Any]:
        """What this client counted since the last call (a Ray actor reports it per batch)."""
        ...

    def add_counts(self, delta: dict[str, Any], source: str = "") -> None:
        """Fold in another process's ``take_counts`` delta for this model."""
        ...


class LLMCallError(Exception):
    """Protocol for errors that carry the usage spent before failing (structured output)."""

    usage: Any
    calls: int


@dataclass
class RunContext:
    run_dir: Path
    seed: int = 0
    llm: LLMLike | None = None
    #: Materialised records of the nodes a step names in ``context:``.
    context: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: Recipe file's folder (templates resolve against it first).
    recipe_dir: Path | None = None
    #: The run's clients by model name (recipe ``models:``); ``llm`` is the one of this view.
    models: dict[str, LLMLike] = field(default_factory=dict)

    @property
    def model_id(self) -> str | None:
        return self.llm.model_id if self.llm is not None else None

    def llm_for(self, name: str | None) -> LLMLike | None:
        """The client of a named model (None or ``default``: the run's own model)."""
        if name is None or name == "default":
            return self.models.get("default", self.llm) if self.models else self.llm
        if name not in self.models:
            known = ", ".join(sorted(self.models)) or "none"
            raise RuntimeError(f"no model named {name!r} in this run (known: {known})")
        return self.models[name]

    def for_model(self, name: str | None) -> RunContext:
        """The view a step sees: ``llm`` is its own model's client (the same ``context``)."""
        llm = self.llm_for(name)
        return self if llm is self.llm else dataclasses.replace(self, llm=llm)


@dataclass
class ItemContext:
    """Per-item view: counts the LLM calls, cache hits and tokens spent on this item."""

    run: RunContext
    item_key: str
    seed: int
    llm_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def context(self) -> dict[str, list[dict[str, Any]]]:
        return self.run.context

    @property
    def llm(self) -> LLMLike:
        if self.run.llm is None:
            raise RuntimeError("this step needs an LLM but the run has none")
        return self.run.llm

    async def generate(self, request: Any, model: str | None = None) -> list[Any]:
        """Generate through the step's client (or the named ``model``'s), charging calls and
        tokens to this item."""
        llm = self.llm if model is None else self.run.llm_for(model)
        if llm is None:
            raise RuntimeError(f"this step needs model {model!r} but the run has none")
        try:
            responses = await llm.generate(request)
        except Exception as exc:
            usage = getattr(exc, "usage", None)
            if usage is not None:
                self._charge(usage, getattr(exc, "calls", 0), cached=False)
            raise
        for response in responses:
            self._charge(response.usage, 0 if response.cached else response.calls, response.cached)
        return responses

    async def score(self, pairs: list[tuple[Any, str]], model: str | None = None) -> list[Any]:
        """Reward-model scores of (prompt, response) pairs by the step's client (or the named
        ``model``'s), charged to this item."""
        llm = self.llm if model is None else self.run.llm_for(model)
        # A client that cannot score says so itself (a SynthloomError naming the backend).
        if llm is None:
            raise RuntimeError(f"model {model or 'of this step'!r} cannot score "
                               "(prompt, response) pairs")
        try:
            results = await llm.score(pairs)
        except Exception as exc:
            if getattr(exc, "usage", None) is not None:
                self._charge(exc.usage, getattr(exc, "calls", 0), cached=False)
            raise
        for result in results:
            self._charge(result.usage, 0 if result.cached else result.calls, result.cached)
        return results

    def _charge(self, usage: Any, calls: int, cached: bool) -> None:
        if cached:
            self.cache_hits += 1
            return
        self.llm_calls += calls
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
