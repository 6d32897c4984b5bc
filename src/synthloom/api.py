"""The Python entry point: run a recipe (YAML name/path or a built Recipe) into a run folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloom.core.accounting import RunSummary
from synthloom.core.errors import SynthloomError
from synthloom.core.executor import LocalExecutor, ProgressCallback
from synthloom.core.recipe import Recipe
from synthloom.core.store import RunStore
from synthloom.llm.backends import resolve_backend
from synthloom.llm.backends.base import Backend
from synthloom.llm.client import LLMClient


@dataclass
class RunOptions:
    backend: str | Backend | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    budget_tokens: int | None = None
    limit: int | None = None
    batch_size: int = 32
    overrides: dict[str, str] = field(default_factory=dict)
    on_progress: ProgressCallback | None = None
    #: "local" (asyncio + process pool) or "ray" (Ray Data; pip install 'synthloom[ray]').
    executor: str = "local"
    #: Ray cluster address (default: start a local cluster for this run).
    ray_address: str | None = None
    #: Actors per streaming step on Ray.
    ray_actors: int = 1


async def run_recipe(recipe: str | Path | Recipe, out: str | Path,
                     options: RunOptions | None = None) -> RunSummary:
    opts = options or RunOptions()
    if not isinstance(recipe, Recipe):
        recipe = Recipe.load(recipe, opts.overrides)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if recipe.path:  # the dataset card and report name the recipe that made the run
        (out / "recipe.yaml").write_text(recipe.path.read_text(encoding="utf-8"), encoding="utf-8")
    store = RunStore(out / "run.db")
    client: LLMClient | None = None
    try:
        if any(getattr(s, "uses_llm", False) for s in recipe.steps):
            backend = opts.backend
            if not isinstance(backend, Backend):
                backend = resolve_backend(backend, model=opts.model, api_key_env=opts.api_key_env)
            if not (opts.executor == "ray" and backend.kind == "vllm"):
                await backend.check()  # on Ray each actor loads its own engine, not the driver
            client = LLMClient(backend, concurrency=opts.concurrency, rpm=opts.rpm, tpm=opts.tpm,
                               budget_tokens=opts.budget_tokens, cache=store)
        common = {"llm": client, "store": store, "limit": opts.limit,
                  "batch_size": opts.batch_size, "on_progress": opts.on_progress}
        if opts.executor == "ray":
            from synthloom.core.ray_executor import RayExecutor

            factory = _ClientFactory(opts) if client is not None else None
            gpus = getattr(client.backend, "tensor_parallel_size", 0) if client else 0
            return await RayExecutor(recipe, out, client_factory=factory,
                                     address=opts.ray_address, actors=opts.ray_actors,
                                     gpus_per_llm_actor=gpus, **common).run()
        if opts.executor != "local":
            raise SynthloomError(f"--executor {opts.executor!r}: expected local or ray")
        return await LocalExecutor(recipe, out, **common).run()
    finally:
        if client is not None:
            await client.aclose()
        store.close()


class _ClientFactory:
    """Builds a Ray worker's LLM client (pickled to the workers): the run's backend, its
    limits shared out among the actors, the worker's own store as response cache."""

    def __init__(self, opts: RunOptions) -> None:
        # A backend named by its spec is built again in each worker (a loaded embedded model
        # does not pickle); a Backend object is shipped as it is.
        self.backend = opts.backend
        self.resolve = {"model": opts.model, "api_key_env": opts.api_key_env}
        share = max(1, opts.ray_actors)
        self.kwargs = {"concurrency": opts.concurrency,
                       "rpm": opts.rpm / share if opts.rpm else None,
                       "tpm": opts.tpm / share if opts.tpm else None,
                       "budget_tokens": opts.budget_tokens}

    def __call__(self, store: RunStore) -> LLMClient:
        backend = self.backend
        if not isinstance(backend, Backend):
            backend = resolve_backend(backend, **self.resolve)
        return LLMClient(backend, cache=store, **self.kwargs)


def run(recipe: str | Path | Recipe, out: str | Path, **options: Any) -> RunSummary:
    """Synchronous wrapper: ``synthloom.api.run("quickstart", "out", limit=4)``."""
    import asyncio

    return asyncio.run(run_recipe(recipe, out, RunOptions(**options)))
