"""The Ray executor: the same recipe graph, mapped onto Ray Data.

* Sources are read by the driver (same reader code, same ``--limit``, same ids) and handed to
  Ray as a dataset.
* Map / expand / filter steps run in chains: the per-item steps between two materialised nodes
  (a source, a global step, a node read twice or needed whole) are one ``map_batches`` over one
  actor pool (1 to ``actors`` actors). Each actor holds the chain's steps, their LLM clients
  and a :class:`ShardedStore`, and runs the local executor's own per-batch code for each step in
  turn through the same :class:`~synthloom.core.batch.BatchRunner` as the local executor, so
  cache keys, seeds, record ids and drop/failure rules (the per-item error policy included)
  are the local ones by construction. One pool per chain (not per step): an actor costs a process start and the
  imports (seconds), and a chain of pools asking for more CPUs than the cluster has waited
  forever. An actor asks for the CPUs of its most demanding step, cut to fit the cluster.
  A pool whose actors cannot start (e.g. GPUs the cluster lacks) fails the run with a
  :class:`SynthloomError`, not a hang.
* ``context:`` inputs are put in the object store once per node; an actor gets the refs of the
  nodes its step names and resolves them when it starts.
* Global steps are barriers: their input is materialised and the step runs once in the driver,
  with the batch runner's global code and cache key.
* Sinks are written by the driver while it streams the final dataset.

Rows travel as ``{"kind", "data"}``: ``record`` rows carry a record (JSON); the other kinds are
accounting events (``stats`` per batch, ``failed``, ``dropped``; ``llm``: what the actor's
clients counted in the batch, by model; ``stopped``: the actor stopped, e.g. on the token
budget; ``fatal``: a step raised a SynthloomError, which the driver raises) that flow down the
chain until the driver drains them.

``--budget-tokens`` caps the run, not each actor: every client (the actors' and the driver's)
charges its tokens to one tally, a Ray actor, and checks the cap against its total.

Ray commits a task's output once, even when it retried the task after
a worker died, so every event is counted exactly once; a retried batch finds its finished items
in the shards and repeats no finished LLM call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from synthloom.core import jsonio
from synthloom.core.accounting import StepStats
from synthloom.core.batch import BatchRunner
from synthloom.core.context import LLMLike, RunContext
from synthloom.core.errors import SynthloomError
from synthloom.core.executor_base import Executor
from synthloom.core.fingerprint import stable_hash
from synthloom.core.records import rid
from synthloom.core.runlog import EventLog, replay
from synthloom.core.scaleout import (
    PreparesInParallel,
    ReadsInParts,
    batches_mapped_by,
    read_in_order,
    read_parts_task,
)
from synthloom.core.sharded_store import ShardedStore, merge_shards
from synthloom.core.spool import SpooledRecords, SpoolWriter
from synthloom.core.steps import GlobalStep, SourceStep, Step, _PerItemStep
from synthloom.core.store import RunStore


class ClientFactory(Protocol):
    """Builds a worker's LLM clients around the worker's own store (its response cache);
    pickled to the actors (api's ``_ClientFactory``)."""

    def clients(self, names: set[str], store: RunStore) -> dict[str, LLMLike]:
        """{name: client} for the models one step calls (``default``: the run's model)."""
        ...

RECORD = "record"
#: A driver-made dataset is spooled to files of this many batches (one block each; files grow
#: 2x every FILES_PER_SIZE files, so a million records stay a few hundred files).
FILES_PER_SIZE = 128
#: Read tasks in flight per CPU (each reads scaleout.PARTS_PER_TASK parts).
READS_PER_CPU = 2
#: CPUs one actor of a step asks for: LLM steps wait on the network, CPU-bound ones compute.
CPUS_LLM, CPUS_CPU_BOUND = 0.25, 1.0
#: CPUs of the cluster kept for Ray Data's own tasks (the filters that split events from
#: records after a materialised node) beside the actors of a chain.
TASK_CPUS = 0.25
#: How long a stage may wait for its first actor before the run fails naming it.
START_TIMEOUT_ENV = "SYNTHLOOM_RAY_START_TIMEOUT_S"
DEFAULT_START_TIMEOUT_S = 600
COUNTED = ("in_", "out", "failed", "dropped", "cached", "llm_calls", "llm_cache_hits",
           "prompt_tokens", "completion_tokens", "expanded", "kept", "seconds")


def require_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is the part we need
    except ImportError as exc:
        raise SynthloomError(
            f"--executor ray needs Ray Data ({exc}); install it with: "
            "pip install 'synthloom[ray]'") from exc
    return ray


class RayExecutor(Executor):
    """Runs a recipe on a Ray cluster (a local one unless ``address`` names another)."""

    def __init__(self, recipe: Any, run_dir: str | Path, *, client_factory: ClientFactory | None
                 = None, address: str | None = None, num_cpus: int | None = None,
                 actors: int = 1, gpus_per_llm_actor: float = 0,
                 start_timeout_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(recipe, run_dir, **kwargs)
        self.client_factory = client_factory
        self.address = address
        self.num_cpus = num_cpus
        self.actors = max(1, actors)
        #: An actor of an LLM step owning a vLLM engine holds its GPUs (tensor parallel size).
        self.gpus_per_llm_actor = gpus_per_llm_actor
        self.start_timeout_s = start_timeout_s if start_timeout_s is not None else float(
            os.environ.get(START_TIMEOUT_ENV, DEFAULT_START_TIMEOUT_S))
        #: Each context node's records, spooled once in the run folder (actors read the file)
        #: and their ids (the context hash).
        self._context_paths: dict[str, str] = {}
        self._context_ids: dict[str, list[str]] = {}
        #: Per chain (by its last step): the CPUs one of its actors asks for.
        self._chain_cpus: dict[str, float] = {}
        self._started_here = False

    # --- the driver's plan -----------------------------------------------------------------------

    async def run_graph(self) -> int:
        ray = require_ray()
        started_here = self._started_here = self._init_ray(ray)
        # One token tally for the run: every client's budget is checked against its total.
        self._tally = RayTokenTally.start(ray) if self.client_factory is not None else None
        if self._tally is not None:
            for _, client in _clients(self.ctx):
                client.share_budget(self._tally)
        self._spool_dir = self.run_dir / ".ray-spool" / uuid.uuid4().hex[:12]
        try:
            counts = await self._plan()
            return counts[0] if counts else 0
        finally:
            for records in self.ctx.context.values():
                if isinstance(records, SpooledRecords):
                    records.close()
            shutil.rmtree(self._spool_dir, ignore_errors=True)
            merge_shards(self.store, self.run_dir)
            if self._tally is not None:
                self._tally.stop(ray)
            if started_here:
                ray.shutdown()

    def _init_ray(self, ray: Any) -> bool:
        if ray.is_initialized():
            return False
        # Workers must import what the driver imports (recipe-local step modules, tests).
        path = os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
        options: dict[str, Any] = {"runtime_env": {"env_vars": {"PYTHONPATH": path}},
                                   "ignore_reinit_error": True, "log_to_driver": False,
                                   "logging_level": logging.WARNING}
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        if self.address:
            options["address"] = self.address
        else:
            options.update(num_cpus=self.num_cpus or os.cpu_count() or 1,
                           include_dashboard=False)
        ray.init(**options)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # same data.jsonl order as the local run
        ctx.enable_progress_bars = False
        return True

    def _uses(self) -> Counter[str]:
        """How many times each node's output is read (steps, sinks, context inputs)."""
        uses: Counter[str] = Counter()
        for step in self.recipe.steps:
            uses[self.recipe.inputs_of(step) or ""] += 1
            for name in step.config.context:
                uses[name] += 1
        for sink in self.recipe.sinks:
            uses[self.recipe.sink_input(sink)] += 1
        return uses

    def _settled(self) -> set[str]:
        """Nodes materialised as soon as they are planned: read more than once, or needed whole
        (context inputs, inputs of global steps)."""
        uses = self._uses()
        wanted_in_context = {c for step in self.recipe.steps for c in step.config.context}
        feeds_global = {self.recipe.inputs_of(s) for s in self.recipe.steps
                        if isinstance(s, GlobalStep)}
        return {step.name for step in self.recipe.nodes if uses[step.name] != 1
                or step.name in wanted_in_context or step.name in feeds_global}

    def chains(self) -> list[list[_PerItemStep]]:
        """The map stages that run at once: a path of per-item steps from a dataset made by the
        driver or a materialised node up to the next materialised node or a sink."""
        settled = self._settled()
        by_name = {step.name: step for step in self.recipe.nodes}
        chains: list[list[_PerItemStep]] = []
        member: dict[str, list[_PerItemStep]] = {}
        for step in self.recipe.steps:
            if not isinstance(step, _PerItemStep):
                continue
            parent = by_name.get(self.recipe.inputs_of(step) or "")
            if isinstance(parent, _PerItemStep) and parent.name not in settled:
                chain = member[parent.name]  # streams on from its input's stage
            else:
                chain = []
                chains.append(chain)
            chain.append(step)
            member[step.name] = chain
        return chains

    def _actor_needs(self, step: _PerItemStep) -> tuple[float, float]:
        """(CPUs, GPUs) one actor of the step asks for before a chain is fitted."""
        cpus = CPUS_CPU_BOUND if step.cpu_bound else CPUS_LLM
        return cpus, (self.gpus_per_llm_actor if step.uses_llm else 0.0)

    def _fit_chains(self, ray: Any) -> list[list[_PerItemStep]]:
        """The chains, each with the CPUs one of its actors asks for: its most demanding step's,
        cut to what the cluster has beside Ray Data's tasks (Ray's CPUs are a scheduling count;
        an actor asking for more than the cluster has never starts). GPUs cannot be cut: a
        chain needing more than a cluster started here has (it cannot grow) is an error now."""
        resources = ray.cluster_resources()
        cpus = float(resources.get("CPU", 0.0))
        budget = max(cpus - TASK_CPUS, cpus / 2)
        #: CPUs of a barrier's prepare actor (one CPU of work, cut to fit like a chain's).
        self._cpu_budget = max(round(min(CPUS_CPU_BOUND, budget), 4), 0.0001)
        have = float(resources.get("GPU", 0.0))
        chains = self.chains()
        for chain in chains:
            needs = [self._actor_needs(step) for step in chain]
            # Ray schedules CPU fractions down to 1/10000.
            self._chain_cpus[chain[-1].name] = max(
                round(min(max(c for c, _ in needs), budget), 4), 0.0001)
            gpus = max(g for _, g in needs)
            if gpus > have and self._started_here:
                raise SynthloomError(
                    f"steps {', '.join(s.name for s in chain)} need {gpus:g} GPUs per actor "
                    f"(--ray-actors' engines), but this Ray cluster has {have:g}: use a GPU "
                    "cluster (--ray-address) or a smaller tensor_parallel_size")
        return chains

    async def _plan(self) -> list[int]:
        ray = require_ray()
        uses = self._uses()
        datasets: dict[str, Any] = {}
        wanted_in_context = {c for step in self.recipe.steps for c in step.config.context}
        feeds_global = {self.recipe.inputs_of(s) for s in self.recipe.steps
                        if isinstance(s, GlobalStep)}
        chain_of = {step.name: chain for chain in self._fit_chains(ray) for step in chain}
        data_ctx = ray.data.DataContext.get_current()
        # A stage waits this long for its first actor, then the run fails naming it.
        data_ctx.wait_for_min_actors_s = max(1, int(self.start_timeout_s))
        for step in self.recipe.nodes:
            stats = self.stats[step.name]
            begun = time.perf_counter()
            if isinstance(step, SourceStep):
                # Read in parallel tasks where the source splits into parts (files); streamed
                # to files that Ray Data reads, never held whole by the driver.
                items = self._parallel_items(ray, step) if isinstance(step, ReadsInParts) \
                    else None
                rows = _RowSpool(self._spool_dir / step.name, self.batch_size)
                async for batch in self.runner.source_batches(step, stats, self.batch_size,
                                                              self.limit, items):
                    rows.write(batch)
                dataset = rows.dataset(ray)
            elif isinstance(step, GlobalStep):
                dataset = await self._barrier(ray, step, datasets[self.recipe.inputs_of(step)])
            elif isinstance(step, _PerItemStep):
                chain = chain_of[step.name]
                if step is not chain[-1]:
                    continue  # read by the next step of its chain only: built with the chain
                dataset = self._stage(chain, datasets[self.recipe.inputs_of(chain[0])],
                                      [self.context_hash(s) for s in chain])
            else:
                raise SynthloomError(f"step {step.name}: unsupported kind {step.kind}")
            stats.seconds += time.perf_counter() - begun
            if uses[step.name] != 1 or step.name in wanted_in_context or step.name in feeds_global:
                # Read more than once, or needed whole: run it now, drain its events once.
                dataset = self._settle(dataset)
            datasets[step.name] = dataset
            if step.name in wanted_in_context:
                # One copy on disk: actors of the steps naming it read the file, global steps
                # in the driver read it record by record; the driver keeps only the ids.
                records, ids = self._spool_node(f"context-{step.name}", self._rows(dataset))
                self.ctx.context[step.name] = records  # type: ignore[assignment]
                self._context_ids[step.name] = ids
                self._context_paths[step.name] = str(records.path)
        counts = [self._write_sink(sink, datasets[self.recipe.sink_input(sink)])
                  for sink in self.recipe.sinks]
        for stats in self.stats.values():
            stats.done = True
        self.progress()
        return counts

    def context_hash(self, step: Step) -> str:
        """As the local executor's, from the ids kept while the context node was spooled."""
        if not step.config.context:
            return ""
        return stable_hash([self._context_ids[n] for n in step.config.context])

    def _spool_node(self, name: str, records: Iterable[dict[str, Any]]
                    ) -> tuple[SpooledRecords, list[str]]:
        writer = SpoolWriter(self._spool_dir / f"{name}.jsonl")
        ids = []
        for record in records:
            writer.write((record,))
            ids.append(rid(record))
        return writer.close(), ids

    async def _barrier(self, ray: Any, step: GlobalStep, upstream: Any) -> Any:
        """A global step in the driver: its per-record work (embedding) first in actors, its
        input and output spooled to disk (the driver holds offsets and the results)."""
        stats = self.stats[step.name]
        if isinstance(step, PreparesInParallel):
            upstream = upstream.map_batches(
                _PrepareWorker, fn_constructor_kwargs={
                    "step": type(step)(config=step.config), "run_dir": str(self.run_dir),
                    "recipe_dir": self.ctx.recipe_dir, "seed": self.ctx.seed},
                batch_size=self.batch_size, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=self.actors),
                num_cpus=self._cpu_budget)
        records, _ = self._spool_node(f"input-{step.name}", self._rows(upstream))
        try:
            # The step's own batch work (cluster_topics' assignment to sampled centroids)
            # runs in actors; what it returns comes back in order.
            with batches_mapped_by(_ActorMapper(ray, self.actors, self._cpu_budget)):
                results, hits = await self.runner.global_results(step, records,
                                                                 self.context_hash(step))
            out = _RowSpool(self._spool_dir / step.name, self.batch_size)
            for start in range(0, len(records), self.batch_size):
                end = start + self.batch_size
                out.write(self.runner.records_from(step.name, stats, records[start:end],
                                                   results[start:end], hits[start:end]))
        finally:
            records.close()
        return out.dataset(ray)

    def _parallel_items(self, ray: Any, step: Any) -> Iterator[Any]:
        """A source's items, its parts read by Ray tasks (a window of them in flight), in the
        parts' order: the driver merges them as a serial read would yield them."""
        ctx = RunContext(run_dir=self.run_dir, seed=self.ctx.seed, recipe_dir=self.ctx.recipe_dir)
        copy = type(step)(config=step.config)
        reader = ray.remote(num_cpus=TASK_CPUS)(read_parts_task)
        inflight = max(2, int(READS_PER_CPU * float(ray.cluster_resources().get("CPU", 1))))

        def result(ref: Any) -> list[Any]:
            try:
                return ray.get(ref)  # type: ignore[no-any-return]
            except ray.exceptions.RayTaskError as exc:
                # A SynthloomError in a read task (a missing library) stops the run as it
                # does in a serial read: raised as itself.
                if isinstance(exc.cause, SynthloomError):
                    raise exc.cause from None
                raise

        return read_in_order(step.parts(self.ctx_of(step)),
                             lambda chunk: reader.remote(copy, ctx, chunk), result, ray.cancel,
                             inflight)

    def _stage(self, chain: list[_PerItemStep], upstream: Any, context_hashes: list[str]) -> Any:
        """One actor pool running the chain's steps in turn on each batch."""
        ray = require_ray()
        llm = any(step.uses_llm for step in chain)
        names = {n for step in chain for n in step.config.context}
        return upstream.map_batches(
            _StageWorker,
            fn_constructor_kwargs={
                "stages": [{
                    # A fresh copy of the step (set up again in each actor: templates, models).
                    "step": type(step)(config=step.config), "context_hash": context_hash,
                    # ``--regenerate rejected``: this step's sample bumps (review/resample.json).
                    "resample": {k: b for k, b in self.resample.items() if k[0] == step.name}}
                    for step, context_hash in zip(chain, context_hashes, strict=True)],
                "run_dir": str(self.run_dir), "recipe_dir": self.ctx.recipe_dir,
                "seed": self.ctx.seed,
                # Paths only (read in the actor): no per-actor pickle of the records.
                "context_paths": {n: self._context_paths[n] for n in sorted(names)},
                "client_factory": self.client_factory if llm else None,
                "tally": self._tally, "batch_size": self.batch_size},
            batch_size=self.batch_size, batch_format="numpy",
            # One actor at least, more while the cluster has CPUs free.
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=self.actors),
            num_cpus=self._chain_cpus[chain[-1].name],
            num_gpus=self.gpus_per_llm_actor if llm else 0)

    # --- draining events -------------------------------------------------------------------------

    def _settle(self, dataset: Any) -> Any:
        """Materialise; apply the pending events once; keep only record rows."""
        with self._start_errors():
            materialised = dataset.materialize()
        for batch in _split(materialised, events=True).iter_batches(
                batch_format="numpy", batch_size=1024):
            for kind, data in zip(batch["kind"], batch["data"], strict=True):
                self._apply(str(kind), data)
        return _split(materialised, events=False)

    def _rows(self, dataset: Any) -> Iterator[dict[str, Any]]:
        """Stream the dataset: events are applied, records yielded."""
        with self._start_errors():
            for batch in dataset.iter_batches(batch_format="numpy", batch_size=self.batch_size):
                for kind, data in zip(batch["kind"], batch["data"], strict=True):
                    if kind == RECORD:
                        yield jsonio.loads(data)
                    else:
                        self._apply(str(kind), data)

    @contextlib.contextmanager
    def _start_errors(self) -> Iterator[None]:
        """Ray Data's "Timed out while starting actors" as an error naming the cause."""
        ray = require_ray()
        try:
            yield
        except ray.exceptions.GetTimeoutError as exc:
            if "starting actors" not in str(exc):
                raise
            raise SynthloomError(
                f"ray executor: a step's actors did not start within {self.start_timeout_s:g} s "
                f"(cluster: {ray.cluster_resources()}; per actor, CPUs: {self._chain_cpus}, "
                f"GPUs: {self.gpus_per_llm_actor:g} for LLM steps). The cluster lacks what "
                f"they ask for, or is too slow to start them ({START_TIMEOUT_ENV})") from exc

    def _apply(self, kind: str, data: str) -> None:
        event = jsonio.loads(data)
        if kind == "stats":
            stats = self.stats[event.pop("name")]
            for key in COUNTED:
                setattr(stats, key, getattr(stats, key) + event.get(key, 0))
            self.progress()
        elif kind in ("failed", "dropped"):
            replay(self.log, kind, event)
        elif kind == "llm":
            self._add_llm_counts(event)
        elif kind == "fatal":
            raise _fatal(event)
        elif kind == "stopped":
            # An actor stopped (the token budget): the run stops, as the local executor's does.
            self.stop(event["reason"])
        else:
            raise SynthloomError(f"ray executor: unknown event kind {kind!r}")

    def _add_llm_counts(self, event: dict[str, Any]) -> None:
        """Fold an actor's client counts into the driver's client of the same model (by model
        name, else model id), whose ``stats()`` summary.json reports."""
        clients = _clients(self.ctx)
        target = next((c for name, c in clients if name is not None and name == event.get("name")),
                      None) or next((c for _, c in clients if c.model_id == event["model"]),
                                    None) or self.llm
        if target is not None:
            target.add_counts(event, event.get("source", ""))

    def _write_sink(self, sink: Any, dataset: Any) -> int:
        sink.open(self.run_dir)
        count = 0
        batch: list[dict[str, Any]] = []
        try:
            for record in self._rows(dataset):
                batch.append(record)
                if len(batch) >= self.batch_size:
                    sink.write(batch)
                    count += len(batch)
                    batch = []
            if batch:
                sink.write(batch)
                count += len(batch)
        finally:
            sink.close()
        return count


class _TokenTally:
    """Tokens spent by the run's clients, by budget key (a Ray actor: one process counts)."""

    def __init__(self) -> None:
        self.spent: Counter[str] = Counter()

    def add(self, key: str, n: int) -> None:
        self.spent[key] += n

    def total(self, key: str) -> int:
        return self.spent[key]


class RayTokenTally:
    """A client's handle on the run's tally (pickled to the actors): the ``SharedTally`` a
    ``TokenBudget`` charges. ``add`` does not wait: Ray runs one caller's calls to an actor in
    order, so this process's next ``total`` already counts it."""

    def __init__(self, actor: Any, key: str = "run") -> None:
        self.actor = actor
        self.key = key

    @classmethod
    def start(cls, ray: Any) -> RayTokenTally:
        return cls(ray.remote(num_cpus=0)(_TokenTally).remote())

    def stop(self, ray: Any) -> None:
        ray.kill(self.actor)

    def child(self, key: str) -> RayTokenTally:
        return RayTokenTally(self.actor, key)

    def add(self, n: int) -> None:
        self.actor.add.remote(self.key, n)

    def total(self) -> int:
        import ray

        return int(ray.get(self.actor.total.remote(self.key)))


def _clients(ctx: RunContext | None) -> list[tuple[str | None, Any]]:
    """The run's LLM clients (the run's own one, named models' ones), each once."""
    if ctx is None:
        return []
    pairs: list[tuple[str | None, Any]] = [(None, ctx.llm)] if ctx.llm is not None else []
    pairs += list(ctx.models.items())
    seen: set[int] = set()
    out = []
    for name, client in pairs:
        if id(client) not in seen:
            seen.add(id(client))
            out.append((name, client))
    return out


def _step_clients(factory: ClientFactory | None, step: Step, store: RunStore
                  ) -> dict[str, LLMLike]:
    """{model name: client} for one step's actor (none for a step that calls no model)."""
    if factory is None:
        return {}
    return factory.clients(set(step.model_names()) or {"default"}, store)


def _fatal(event: dict[str, Any]) -> SynthloomError:
    """The SynthloomError an actor reported (its own class when it imports here)."""
    import importlib

    try:
        cls = getattr(importlib.import_module(event["module"]), event["class"])
        if isinstance(cls, type) and issubclass(cls, SynthloomError):
            return cls(event["message"])
    except (ImportError, AttributeError, TypeError):
        pass
    return SynthloomError(event["message"])


def _split(dataset: Any, *, events: bool) -> Any:
    """The event rows or the record rows. A trivial task: it asks for the CPUs the chains leave
    free (TASK_CPUS), so it never waits behind the actors it feeds; not 0, with which Ray starts
    a worker process per task in flight (46 on 2 CPUs at 2,000 documents)."""
    if events:
        return dataset.filter(lambda row: row["kind"] != RECORD, num_cpus=TASK_CPUS)
    return dataset.filter(lambda row: row["kind"] == RECORD, num_cpus=TASK_CPUS)


class _RowSpool:
    """A driver-made dataset written to JSONL files in the run folder, read by Ray Data: the
    driver streams records through it instead of holding them. About one block per batch for
    the first files (so every actor of a pool gets work), growing for big inputs."""

    def __init__(self, folder: Path, batch_size: int) -> None:
        self.folder = folder
        self.batch_size = batch_size
        self.files: list[Path] = []
        self._handle: Any = None
        self._in_file = 0
        self.rows = 0

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            if self._handle is None or self._in_file >= self._per_file():
                self._roll()
            self._handle.write(jsonio.dumps_line({"kind": RECORD, "data": jsonio.dumps(record)}))
            self._in_file += 1
            self.rows += 1

    def _per_file(self) -> int:
        return self.batch_size * 2 ** ((len(self.files) - 1) // FILES_PER_SIZE)

    def _roll(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"part-{len(self.files):06d}.jsonl"
        self.files.append(path)
        self._handle = open(path, "wb")  # noqa: SIM115 - closed by _roll / dataset
        self._in_file = 0

    def dataset(self, ray: Any) -> Any:
        if self._handle is not None:
            self._handle.close()
        if not self.rows:  # Ray cannot infer a schema from nothing
            return ray.data.from_items([{"kind": "none", "data": "{}"}]).filter(
                lambda row: row["kind"] == RECORD)
        # Read tasks ask for what the chains leave free (TASK_CPUS), like the filters.
        return ray.data.read_json([str(f) for f in self.files], lines=True,
                                  num_cpus=TASK_CPUS, override_num_blocks=len(self.files))


class _ActorMapper:
    """``scaleout.map_batches`` on Ray: ``fn`` (sent once) in up to ``actors`` actors started
    on first use, two batches per actor in flight, results in the batches' order. The driver
    holds the window, not the input."""

    def __init__(self, ray: Any, actors: int, cpus: float) -> None:
        self.ray, self.actors, self.cpus = ray, max(1, actors), cpus

    def __call__(self, fn: Any, batches: Iterable[Any]) -> Iterator[Any]:
        ray = self.ray
        fn_ref = ray.put(fn)
        worker = ray.remote(num_cpus=self.cpus)(_BatchWorker)
        pool: list[Any] = []
        pending: deque[Any] = deque()
        try:
            for i, batch in enumerate(batches):
                if len(pool) < self.actors:
                    pool.append(worker.remote(fn_ref))
                pending.append(pool[i % len(pool)].run.remote(batch))
                if len(pending) >= 2 * self.actors:
                    yield ray.get(pending.popleft())
            while pending:
                yield ray.get(pending.popleft())
        finally:
            for actor in pool:
                ray.kill(actor)


class _BatchWorker:
    """An actor holding one ``map_batches`` function (its embedder stays loaded)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def run(self, batch: Any) -> Any:
        return self.fn(batch)


class _PrepareWorker:
    """An actor before a barrier: the global step's per-record work (``prepare``: embedding
    into the run's cache) on each batch; the rows pass through unchanged."""

    def __init__(self, step: Any, run_dir: str, recipe_dir: Path | None, seed: int) -> None:
        self.step = step
        self.ctx = RunContext(run_dir=Path(run_dir), seed=seed, recipe_dir=recipe_dir)
        step.setup(self.ctx)
        self.loop = asyncio.new_event_loop()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        records = [jsonio.loads(data) for kind, data in zip(batch["kind"], batch["data"],
                                                             strict=True) if kind == RECORD]
        try:
            if records:
                self.loop.run_until_complete(self.step.prepare(records, self.ctx))
        except Exception:  # noqa: BLE001, S110 - the barrier embeds what is missing itself
            pass  # and applies the error policy there (one place, one count)
        return batch


class _StepRunner:
    """One step of a chain inside an actor: the batch runner, its failures and drops kept as
    events for the driver."""

    def __init__(self, step: _PerItemStep, context_hash: str, store: ShardedStore, run_dir: str,
                 recipe_dir: Path | None, seed: int, context: dict[str, list[dict[str, Any]]],
                 client_factory: ClientFactory | None, tally: RayTokenTally | None,
                 resample: dict[tuple[str, str], int] | None, loop: asyncio.AbstractEventLoop
                 ) -> None:
        #: Names this runner in its ``llm`` events (its concurrency limit replaces its last one).
        self.source = uuid.uuid4().hex[:12]
        self.loop = loop
        self.step = step
        # The clients of the models this step calls, and only those (named models: their own
        # backends and limits).
        models = _step_clients(client_factory if step.uses_llm else None, step, store)
        # ctx.context is filled before any batch: run_batch narrows keys with it.
        self.ctx = RunContext(
            run_dir=Path(run_dir), seed=seed, llm=models.get("default"), recipe_dir=recipe_dir,
            models=models, context={n: context[n] for n in step.config.context})
        if tally is not None:
            for _, client in _clients(self.ctx):
                client.share_budget(tally)
        self.log = EventLog()
        # Ray is the process pool: CPU-bound steps run in this actor (workers=None).
        self.runner = BatchRunner(run=self.ctx, store=store, log=self.log, resample=resample)
        step.setup(self.runner.ctx_of(step))
        self.fingerprint = step.fingerprint(self.runner.ctx_of(step))
        self.context_hash = context_hash  # the driver's: same ids, same hash

    def run(self, records: list[dict[str, Any]], batch_size: int
            ) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
        """(events, output records) of one batch; an expanding step's output is cut into
        batches of ``batch_size`` again, as the local executor feeds its next step."""
        step = self.step
        stats = StepStats(name=step.name, kind=str(step.kind))
        begun = time.perf_counter()
        out: list[dict[str, Any]] = []
        for start in range(0, len(records), batch_size):
            out += self.loop.run_until_complete(self.runner.run_batch(
                step, stats, self.fingerprint, self.context_hash,
                records[start:start + batch_size]))
        stats.seconds = time.perf_counter() - begun
        events = [*self.log.take(),
                  ("stats", {"name": step.name, **{k: getattr(stats, k) for k in COUNTED}}),
                  *self._llm_events()]
        if self.runner.stopped_reason:
            events.append(("stopped", {"reason": self.runner.stopped_reason}))
        return events, out

    def _llm_events(self) -> list[tuple[str, dict[str, Any]]]:
        """What this step's clients counted in the batch (calls, retries and failures by
        cause, repairs, tokens), one event per client that did anything."""
        events = []
        for name, client in _clients(self.ctx):
            delta = client.take_counts()
            if any(delta["counts"].values()) or delta["concurrency_decreases"]:
                events.append(("llm", {**delta, "name": name, "source": self.source}))
        return events


class _StageWorker:
    """One actor of a chain's pool (Ray Data instantiates it once per actor): the chain's steps
    in turn on each batch, one store (shard) for all of them."""

    def __init__(self, stages: list[dict[str, Any]], run_dir: str, recipe_dir: Path | None,
                 seed: int, context_paths: dict[str, str], client_factory: ClientFactory | None,
                 tally: RayTokenTally | None = None, batch_size: int = 32) -> None:
        self.batch_size = batch_size
        self.store = ShardedStore(run_dir)
        # The context nodes the chain's steps name, from their spool files (one copy per node
        # on disk, one per actor here).
        context = {name: [jsonio.loads(line) for line in Path(path).read_bytes().splitlines()]
                   for name, path in context_paths.items()}
        self.loop = asyncio.new_event_loop()
        self.runners = [
            _StepRunner(stage["step"], stage["context_hash"], self.store, run_dir, recipe_dir,
                        seed, context, client_factory, tally, stage["resample"], self.loop)
            for stage in stages]

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        kinds: list[str] = []
        datas: list[str] = []
        records = []
        for kind, data in zip(batch["kind"], batch["data"], strict=True):
            if kind == RECORD:
                records.append(jsonio.loads(data))
            else:  # upstream events pass through to the driver
                kinds.append(str(kind))
                datas.append(str(data))
        try:
            for runner in self.runners:
                events, records = runner.run(records, self.batch_size)
                for kind, event in events:
                    kinds.append(kind)
                    datas.append(jsonio.dumps(event))
        except SynthloomError as exc:
            # The run must stop (the per-item error policy, core/batch.py): the driver raises
            # it when it drains this event. Ray's own error would wrap it beyond recognition.
            kinds.append("fatal")
            datas.append(jsonio.dumps({"module": type(exc).__module__,
                                       "class": type(exc).__qualname__, "message": str(exc)}))
            records = []
        for record in records:
            kinds.append(RECORD)
            datas.append(jsonio.dumps(record))
        return {"kind": kinds, "data": datas}
