"""The Python entry point: run a recipe (YAML name/path or a built Recipe) into a run folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloom.core.accounting import RunSummary
from synthloom.core.errors import SynthloomError
from synthloom.core.executor import LocalExecutor, ProgressCallback
from synthloom.core.models import DEFAULT_MODEL
from synthloom.core.recipe import Recipe
from synthloom.core.store import RunStore
from synthloom.llm.backends.base import Backend
from synthloom.llm.client import LLMClient
from synthloom.llm.models import RunModels, build_clients


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
    #: ``--model-for``: named models replaced or added, {name: spec string | mapping | Backend}.
    model_for: dict[str, Any] = field(default_factory=dict)

    def run_models(self, recipe: Recipe, share: int = 1) -> RunModels:
        return RunModels(backend=self.backend, model=self.model, api_key_env=self.api_key_env,
                         concurrency=self.concurrency, rpm=self.rpm, tpm=self.tpm,
                         budget_tokens=self.budget_tokens, specs=dict(recipe.models),
                         share=share)


async def run_recipe(recipe: str | Path | Recipe, out: str | Path,
                     options: RunOptions | None = None) -> RunSummary:
    opts = options or RunOptions()
    if not isinstance(recipe, Recipe):
        recipe = Recipe.load(recipe, opts.overrides, models=opts.model_for)
    elif opts.model_for:
        recipe.with_models(opts.model_for)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if recipe.path:  # the dataset card and report name the recipe that made the run
        (out / "recipe.yaml").write_text(recipe.path.read_text(encoding="utf-8"), encoding="utf-8")
    store = RunStore(out / "run.db")
    client: LLMClient | None = None
    clients: dict[str, LLMClient] = {}
    try:
        # One client per named model the LLM steps call (aliases of the run's model share it).
        clients = build_clients(opts.run_models(recipe), recipe.models_used(), cache=store)
        for distinct in {id(c): c for c in clients.values()}.values():
            if not (opts.executor == "ray" and distinct.backend.kind == "vllm"):
                await distinct.backend.check()  # on Ray each actor loads its own engine
        client = clients.get(DEFAULT_MODEL)
        common = {"llm": client, "models": clients, "store": store, "limit": opts.limit,
                  "batch_size": opts.batch_size, "on_progress": opts.on_progress}
        if opts.executor == "ray":
            from synthloom.core.ray_executor import RayExecutor

            factory = _ClientFactory(opts, recipe) if clients else None
            gpus = max([getattr(c.backend, "tensor_parallel_size", 0) or 0
                        for c in clients.values()] or [0])
            return await RayExecutor(recipe, out, client_factory=factory,
                                     address=opts.ray_address, actors=opts.ray_actors,
                                     gpus_per_llm_actor=gpus, **common).run()
        if opts.executor != "local":
            raise SynthloomError(f"--executor {opts.executor!r}: expected local or ray")
        return await LocalExecutor(recipe, out, **common).run()
    finally:
        for distinct in {id(c): c for c in clients.values()}.values():
            await distinct.aclose()
        store.close()


class _ClientFactory:
    """Builds a Ray worker's LLM clients (pickled to the workers): the models its step uses,
    each model's rate limits shared out among the actors, the worker's own store as cache."""

    def __init__(self, opts: RunOptions, recipe: Recipe) -> None:
        # A backend named by its spec is built again in each worker (a loaded embedded model
        # does not pickle); a Backend object is shipped as it is.
        self.models = opts.run_models(recipe, share=max(1, opts.ray_actors))

    def clients(self, names: set[str], store: RunStore) -> dict[str, LLMClient]:
        """{name: client} for the models one step calls (``default``: the run's model)."""
        return build_clients(self.models, names or {DEFAULT_MODEL}, cache=store)

    def __call__(self, store: RunStore) -> LLMClient:
        return self.clients({DEFAULT_MODEL}, store)[DEFAULT_MODEL]


def run(recipe: str | Path | Recipe, out: str | Path, **options: Any) -> RunSummary:
    """Synchronous wrapper: ``synthloom.api.run("quickstart", "out", limit=4)``."""
    import asyncio

    return asyncio.run(run_recipe(recipe, out, RunOptions(**options)))
