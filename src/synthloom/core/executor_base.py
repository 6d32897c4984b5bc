"""What every executor shares: the run's lifecycle around its graph.

An executor takes the run folder's lock, opens the store and the run log, sets the steps up,
runs its graph (:meth:`Executor.run_graph`, the one method an executor writes), then writes
summary.json and publishes the outputs when the run ended complete. Batches are run by one
:class:`BatchRunner` (core/batch.py), failures and drops written by one :class:`FileRunLog`.
"""

from __future__ import annotations

import abc
import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthloom.core.accounting import RunSummary, StepStats
from synthloom.core.batch import BatchRunner
from synthloom.core.context import LLMLike, RunContext
from synthloom.core.fingerprint import stable_hash
from synthloom.core.recipe import Recipe
from synthloom.core.records import rid
from synthloom.core.runlock import RunLock
from synthloom.core.runlog import FileRunLog
from synthloom.core.steps import Step
from synthloom.core.store import RunStore

ProgressCallback = Callable[[list[StepStats]], None]


class Executor(abc.ABC):
    """A run of a recipe into a folder; subclasses say how the graph runs."""

    #: What ``--regenerate rejected`` marked before the run (summary.json ``regenerated``).
    regenerated: dict[str, Any] | None = None
    #: api.run_recipe takes the folder's lock before it writes anything and hands it over.
    run_lock: RunLock | None = None

    def __init__(
        self,
        recipe: Recipe,
        run_dir: str | Path,
        *,
        llm: LLMLike | None = None,
        models: dict[str, LLMLike] | None = None,
        batch_size: int = 32,
        limit: int | None = None,
        workers: int | None = None,
        on_progress: ProgressCallback | None = None,
        store: RunStore | None = None,
        resample: dict[tuple[str, str], int] | None = None,
    ) -> None:
        self.recipe = recipe
        self.run_dir = Path(run_dir)
        #: Clients by model name (recipe ``models:``); ``llm`` is the run's own (``default``).
        self.models: dict[str, LLMLike] = dict(models or {})
        if llm is None:
            llm = self.models.get("default")
        elif "default" not in self.models:
            self.models["default"] = llm
        self.llm = llm
        self.batch_size = max(1, batch_size)
        self.limit = limit
        self.workers = workers or os.cpu_count() or 1
        self.on_progress = on_progress
        self.resample = dict(resample or {})
        self._given_store = store
        self.stats: dict[str, StepStats] = {}

    # --- what a subclass writes ------------------------------------------------------------

    @abc.abstractmethod
    async def run_graph(self) -> int:
        """Run every node and sink; the number of records the first sink wrote."""

    # --- the lifecycle ---------------------------------------------------------------------

    async def run(self) -> RunSummary:
        started = time.time()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.run_lock is not None and self.run_lock.held:
            return await self._run_locked(started)
        lock = RunLock(self.run_dir)  # one run per folder; raises RunLockedError if held
        lock.acquire()
        try:
            return await self._run_locked(started)
        finally:
            lock.release()

    @property
    def stopped_reason(self) -> str | None:
        return self.runner.stopped_reason

    def stop(self, reason: str) -> None:
        """Stop the run early (sources read nothing more); the first reason stays."""
        self.runner.stopped_reason = self.runner.stopped_reason or reason

    def ctx_of(self, step: Step) -> RunContext:
        """The run context a step sees: ``llm`` is the client of the step's own model."""
        return self.runner.ctx_of(step)

    def progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(list(self.stats.values()))

    def context_hash(self, step: Step) -> str:
        """The record ids of the step's ``context:`` nodes (in ``ctx.context``), hashed."""
        if not step.config.context:
            return ""
        return stable_hash([[rid(r) for r in self.ctx.context[n]] for n in step.config.context])

    async def _run_locked(self, started: float) -> RunSummary:
        self.store = self._given_store or RunStore(self.run_dir / "run.db")
        self.ctx = RunContext(
            run_dir=self.run_dir, seed=self.recipe.seed, llm=self.llm,
            recipe_dir=self.recipe.path.parent if self.recipe.path else None,
            models=self.models,
        )
        self._clients_halted(False)  # a client halted by an earlier interrupted run
        # Every output is written as NAME.partial and moved over NAME only when the run ends
        # with its outputs complete (ok / partial / stopped): an interrupted or failed run
        # leaves the last complete outputs in place, and its own beside them as *.partial.
        self.log = FileRunLog(self.run_dir)
        self.runner = BatchRunner(run=self.ctx, store=self.store, log=self.log,
                                  resample=self.resample, workers=self.workers)
        summary = RunSummary(recipe=self.recipe.name, regenerated=self.regenerated)
        try:
            for node in self.recipe.nodes:
                node.setup(self.ctx_of(node))
            for sink in self.recipe.sinks:
                defer = getattr(sink, "defer", None)  # published by _publish, all together
                if callable(defer):
                    defer()
            self.stats = {step.name: StepStats(name=step.name, kind=str(step.kind))
                          for step in self.recipe.nodes}
            summary.steps = list(self.stats.values())
            graph = asyncio.create_task(self.run_graph())
            try:
                # asyncio.wait is not cancelled along with this task: on Ctrl-C the clients
                # are halted before the graph's tasks see the cancellation, so no request
                # starts after the signal (6 did, as waiters took the slots freed by it).
                await asyncio.wait({graph})
            except BaseException:
                self._clients_halted(True)
                graph.cancel()
                await asyncio.gather(graph, return_exceptions=True)
                raise
            summary.records = graph.result()
            summary.status = finished_status(summary, self.stopped_reason)
            if self.stopped_reason:
                summary.stopped_reason = self.stopped_reason
        except BaseException as exc:
            self._clients_halted(True)  # tasks left behind by the graph send nothing more
            summary.status, summary.error = failure_status(exc)
            raise
        finally:
            self.log.close()
            self.runner.close()
            summary.seconds = time.time() - started
            if self.llm is not None:
                summary.llm = self.llm.stats()
            summary.models = self.models_summary()
            summary.cache_bad_rows = self.store.bad_rows
            if summary.complete:
                self._publish()
            data = summary.to_json()
            write_atomic(self.run_dir / "summary.json", json.dumps(data, indent=2) + "\n")
            self.store.record_run(started, time.time(), self.recipe.name, summary.status, data)
            if self._given_store is None:
                self.store.close()
        return summary

    def _publish(self) -> None:
        """Move this run's outputs over the previous ones (each an atomic rename)."""
        for sink in self.recipe.sinks:
            publish = getattr(sink, "publish", None)
            if callable(publish):
                publish()
        self.log.publish()

    def _clients_halted(self, halted: bool) -> None:
        """Halt (or free) every model client: a halted one starts no new request."""
        for client in {id(c): c for c in self.models.values()}.values():
            client.halt() if halted else client.resume()

    def models_summary(self) -> dict[str, Any]:
        """Per named model: its client's calls, tokens, retries... and the steps that use it
        (summary.json ``models``). Empty when the run uses only its own model."""
        if set(self.models) <= {"default"}:
            return {}
        steps: dict[str, list[str]] = {}
        for step in self.recipe.steps:
            if step.uses_llm:
                for name in step.model_names() or ["default"]:
                    steps.setdefault(name, []).append(step.name)
        out: dict[str, Any] = {}
        first: dict[int, str] = {}
        for name in sorted(self.models, key=lambda n: (n != "default", n)):
            client = self.models[name]
            if id(client) in first:  # an alias: the same client, counted once
                out[name] = {"same_as": first[id(client)], "steps": steps.get(name, [])}
                continue
            first[id(client)] = name
            out[name] = {**client.stats(), "steps": steps.get(name, [])}
        return out


def write_atomic(path: Path, text: str) -> None:
    """``path`` whole or not at all: a reader never sees half a summary.json."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def finished_status(summary: RunSummary, stopped_reason: str | None) -> str:
    """The status of a run whose graph ran to its end (see accounting.STATUSES)."""
    failed = sum(s.failed for s in summary.steps)
    if stopped_reason:
        return "stopped"
    if failed and not summary.records:
        return "failed"  # every item failed: nothing came out
    return "partial" if failed else "ok"


def failure_status(exc: BaseException) -> tuple[str, str]:
    """(status, error) of a run that ended with ``exc``."""
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
        return "interrupted", "interrupted (Ctrl-C, SIGTERM or cancelled)"
    return "failed", f"{type(exc).__name__}: {exc}"
