"""The local executor: streams batches through the recipe graph with bounded memory.

Each node runs as an asyncio task reading batches from a bounded queue. Streaming steps keep a
window of batches in flight (LLM calls overlap across batches and across steps) and emit them
in input order, so output order is deterministic. CPU-bound steps run their batches in a
process pool. Global steps are barriers: they collect all their input, then run once.

Every finished item is committed to the run store at once, so a kill -9 loses at most the
items in flight, and a rerun replays finished items from the cache without calling the LLM.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from synthloom.core import jsonio
from synthloom.core.accounting import RunSummary, StepStats
from synthloom.core.context import ItemContext, LLMLike, RunContext
from synthloom.core.errors import BudgetExhausted, SynthloomError
from synthloom.core.fingerprint import stable_hash
from synthloom.core.idset import IdSet
from synthloom.core.recipe import Recipe
from synthloom.core.records import META, ItemResult, Output, columns_of, make_record, rid
from synthloom.core.runlock import RunLock
from synthloom.core.steps import (
    GlobalStep,
    Sink,
    SourceFailure,
    SourceStep,
    Step,
    _PerItemStep,
)
from synthloom.core.store import RunStore

_END = None  # queue sentinel: the producer is finished
CORE_META = frozenset(
    {"id", "parents", "source", "step", "model", "template_hash", "sample_index", "usage"})
#: Source-record meta copied into ``_meta.source`` (file, row).
SOURCE_KEYS = ("path", "line", "where")
#: Meta keys that describe one step's own call, not the lineage.
LOCAL_META = frozenset({"finish_reason"})

ProgressCallback = Callable[[list[StepStats]], None]


@dataclass
class _Node:
    step: Step
    stats: StepStats
    consumers: list[asyncio.Queue] = field(default_factory=list)
    inbox: asyncio.Queue | None = None
    #: Records kept in memory because another step names this node in ``context:``.
    collected: list[dict[str, Any]] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


def derive_seed(run_seed: int, item_key: str) -> int:
    """A per-item seed: reproducible across runs and executors, distinct across items."""
    digest = hashlib.blake2b(f"seed:{run_seed}:{item_key}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


class LocalExecutor:
    #: What ``--regenerate rejected`` marked before the run (summary.json ``regenerated``).
    regenerated: dict[str, Any] | None = None

    def __init__(
        self,
        recipe: Recipe,
        run_dir: str | Path,
        *,
        llm: LLMLike | None = None,
        models: dict[str, LLMLike] | None = None,
        batch_size: int = 32,
        limit: int | None = None,
        inflight_batches: int | None = None,
        workers: int | None = None,
        on_progress: ProgressCallback | None = None,
        queue_batches: int = 4,
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
        concurrency = max([getattr(c, "concurrency", 8) or 8 for c in self.models.values()]
                          or [8])
        # Enough batches in flight to keep the LLM busy across batch boundaries.
        self.inflight = inflight_batches or max(2, -(-2 * concurrency // self.batch_size) + 1)
        self.workers = workers or os.cpu_count() or 1
        self.on_progress = on_progress
        self.queue_batches = queue_batches
        self.stopped_reason: str | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._given_store = store
        self._step_ctx: dict[str, RunContext] = {}
        #: (step, input record id) -> sample bump (``--regenerate rejected``, review/).
        self.resample = dict(resample or {})

    # --- public ----------------------------------------------------------------------------------

    async def run(self) -> RunSummary:
        started = time.time()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # api.run_recipe takes the lock before it writes anything and hands it over here.
        given: RunLock | None = getattr(self, "run_lock", None)
        if given is not None and given.held:
            return await self._run_locked(started)
        lock = RunLock(self.run_dir)  # one run per folder; raises RunLockedError if held
        lock.acquire()
        try:
            return await self._run_locked(started)
        finally:
            lock.release()

    async def _run_locked(self, started: float) -> RunSummary:
        self.store = self._given_store or RunStore(self.run_dir / "run.db")
        self.ctx = RunContext(
            run_dir=self.run_dir, seed=self.recipe.seed, llm=self.llm,
            recipe_dir=self.recipe.path.parent if self.recipe.path else None,
            models=self.models,
        )
        self._step_ctx: dict[str, RunContext] = {}
        self._clients_halted(False)  # a client halted by an earlier interrupted run
        # Every output is written as NAME.partial and moved over NAME only when the run ends
        # with its outputs complete (ok / partial / stopped): an interrupted or failed run
        # leaves the last complete outputs in place, and its own beside them as *.partial.
        self._failed_out = open(partial_path(self.run_dir / "failed.jsonl"), "wb")  # noqa: SIM115
        self._dropped_out = open(partial_path(self.run_dir / "dropped.jsonl"), "wb")  # noqa: SIM115
        summary = RunSummary(recipe=self.recipe.name, regenerated=self.regenerated)
        try:
            for node in self.recipe.nodes:
                node.setup(self.ctx_of(node))
            for sink in self.recipe.sinks:
                defer = getattr(sink, "defer", None)  # published by _publish, all together
                if callable(defer):
                    defer()
            nodes = self._wire()
            summary.steps = [n.stats for n in nodes.values()]
            self._stats = summary.steps
            graph = asyncio.create_task(self._run_graph(nodes))
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
            sink_counts = graph.result()
            summary.records = sink_counts[0] if sink_counts else 0
            summary.status = finished_status(summary, self.stopped_reason)
            if self.stopped_reason:
                summary.stopped_reason = self.stopped_reason
        except BaseException as exc:
            self._clients_halted(True)  # tasks left behind by the graph send nothing more
            summary.status, summary.error = failure_status(exc)
            raise
        finally:
            self._failed_out.close()
            self._dropped_out.close()
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
            summary.seconds = time.time() - started
            stats_fn = getattr(self.llm, "stats", None)
            if callable(stats_fn):
                summary.llm = stats_fn()
            summary.models = self.models_summary()
            summary.cache_bad_rows = getattr(self.store, "bad_rows", 0)
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
        for name in ("failed.jsonl", "dropped.jsonl"):
            os.replace(partial_path(self.run_dir / name), self.run_dir / name)

    def _clients_halted(self, halted: bool) -> None:
        """Halt (or free) every model client: a halted one starts no new request."""
        for client in {id(c): c for c in self.models.values()}.values():
            method = getattr(client, "halt" if halted else "resume", None)
            if callable(method):
                method()

    def ctx_of(self, step: Step) -> RunContext:
        """The run context a step sees: ``llm`` is the client of the step's own model."""
        ctx = self._step_ctx.get(step.name)
        if ctx is None:
            ctx = self._step_ctx[step.name] = self.ctx.for_model(step.config.model)
        return ctx

    def models_summary(self) -> dict[str, Any]:
        """Per named model: its client's calls, tokens, retries... and the steps that use it
        (summary.json ``models``). Empty when the run uses only its own model."""
        if set(self.models) <= {"default"}:
            return {}
        steps: dict[str, list[str]] = {}
        for step in self.recipe.steps:
            if getattr(step, "uses_llm", False):
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
            stats_fn = getattr(client, "stats", None)
            data = dict(stats_fn()) if callable(stats_fn) else {"model": client.model_id}
            out[name] = {**data, "steps": steps.get(name, [])}
        return out

    # --- wiring ----------------------------------------------------------------------------------

    def _wire(self) -> dict[str, _Node]:
        nodes: dict[str, _Node] = {}
        wanted_in_context = {c for step in self.recipe.steps for c in step.config.context}
        for step in self.recipe.nodes:
            node = _Node(step=step, stats=StepStats(name=step.name, kind=str(step.kind)))
            if step.name in wanted_in_context:
                node.collected = []
            source = self.recipe.inputs_of(step)
            if source is not None:
                node.inbox = asyncio.Queue(maxsize=self.queue_batches)
                nodes[source].consumers.append(node.inbox)
            nodes[step.name] = node
        self._sink_inboxes: list[tuple[Sink, asyncio.Queue]] = []
        for sink in self.recipe.sinks:
            inbox: asyncio.Queue = asyncio.Queue(maxsize=self.queue_batches)
            nodes[self.recipe.sink_input(sink)].consumers.append(inbox)
            self._sink_inboxes.append((sink, inbox))
        return nodes

    async def _run_graph(self, nodes: dict[str, _Node]) -> list[int]:
        self._nodes = nodes
        tasks = [asyncio.create_task(self._run_node(n), name=n.step.name) for n in nodes.values()]
        sink_tasks = [asyncio.create_task(self._run_sink(s, q)) for s, q in self._sink_inboxes]
        try:
            await asyncio.gather(*tasks, *sink_tasks)
        except BaseException:
            for task in [*tasks, *sink_tasks]:
                task.cancel()
            await asyncio.gather(*tasks, *sink_tasks, return_exceptions=True)
            raise
        return [t.result() for t in sink_tasks]

    async def _run_node(self, node: _Node) -> None:
        begun = time.perf_counter()
        try:
            step = node.step
            if isinstance(step, SourceStep):
                await self._run_source(node)
            elif isinstance(step, GlobalStep):
                await self._run_global(node)
            elif isinstance(step, _PerItemStep):
                await self._run_streaming(node)
            else:
                raise SynthloomError(f"step {step.name}: unsupported kind {step.kind}")
        finally:
            node.stats.seconds = time.perf_counter() - begun
            node.stats.done = True
        # Context is complete once the node has emitted everything: waiters may start before
        # the end marker reaches every consumer (one of them may be a waiter's producer).
        node.done.set()
        for queue in node.consumers:
            await queue.put(_END)
        self._progress()

    async def _emit(self, node: _Node, records: list[dict[str, Any]]) -> None:
        if node.collected is not None:
            node.collected.extend(records)
        if records:
            for queue in node.consumers:
                await queue.put(records)
        self._progress()

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self._stats)

    async def _context_hash(self, step: Step) -> str:
        """Wait for the nodes named in ``context:``; hash their record ids for cache keys."""
        if not step.config.context:
            return ""
        for name in step.config.context:
            await self._nodes[name].done.wait()
            self.ctx.context[name] = self._nodes[name].collected or []
        return stable_hash([[rid(r) for r in self.ctx.context[n]] for n in step.config.context])

    # --- sources ---------------------------------------------------------------------------------

    async def _run_source(self, node: _Node) -> None:
        step: SourceStep = node.step  # type: ignore[assignment]
        stats = node.stats
        items: Iterator[Any] = iter(step.read(self.ctx_of(step)))
        seen = IdSet()
        emitted = 0
        while not self.stopped_reason:
            batch = await asyncio.to_thread(_take, items, self.batch_size)
            if not batch:
                break
            records: list[dict[str, Any]] = []
            for item in batch:
                if self.limit is not None and emitted + len(records) >= self.limit:
                    break
                stats.in_ += 1
                if isinstance(item, SourceFailure):
                    stats.failed += 1
                    self._write_failed(None, step.name, item.error_class,
                                       f"{item.where}: {item.message}", {"where": item.where})
                    continue
                output = item if isinstance(item, Output) else Output(columns=item)
                record = make_record(output.columns, step=step.name, extra_meta=output.meta)
                meta = record[META]
                # One shape for provenance everywhere: the document's id and where it came from
                # (chunkers add the span; descendants inherit it).
                meta["source"] = {"id": meta["id"], **{k: meta[k] for k in SOURCE_KEYS if k in meta}}
                records.append(record)
            # 64 bits of each id in a compact set: memory stays flat over millions of sources
            # (a dict of id strings took ~160 MB per million; benchmarks/memory.py).
            keys = np.array([int(rid(r)[:16], 16) for r in records], dtype=np.uint64)
            known = seen.contains(keys)
            out: list[dict[str, Any]] = []
            fresh: set[int] = set()
            for record, key, was_seen in zip(records, keys.tolist(), known, strict=True):
                if was_seen or key in fresh:
                    stats.dropped += 1
                    self._write_dropped(record, step.name,
                                        "identical to an earlier item of this source (same id)")
                    continue
                fresh.add(key)
                out.append(record)
            seen.add(np.array(sorted(fresh), dtype=np.uint64))
            stats.out += len(out)
            emitted += len(out)
            await self._emit(node, out)
            if self.limit is not None and emitted >= self.limit:
                break

    # --- streaming steps (map / expand / filter) ----------------------------------------------

    async def _run_streaming(self, node: _Node) -> None:
        assert node.inbox is not None
        spool = _Spool(self.run_dir)
        try:
            context_hash, ended = await self._wait_for_context(node, spool)
            fingerprint = node.step.fingerprint(self.ctx_of(node.step))
            await self._stream_batches(node, fingerprint, context_hash,
                                       _batches(spool, None if ended else node.inbox))
        finally:
            spool.close()

    async def _wait_for_context(self, node: _Node, spool: _Spool) -> tuple[str, bool]:
        """The context hash, once every node in ``context:`` is done; (hash, inbox ended).

        While it waits, the node keeps reading its inbox into a spool on disk. A node that
        stopped reading would block its producer on a full queue, and that producer may be
        what the context is waiting for (directly, or through a sibling consumer): the
        flagship's corpus feeds both ``retrieve`` (context of ``synthesize``'s demos) and
        ``synthesize`` itself. Memory stays bounded: spooled batches live on disk.
        """
        assert node.inbox is not None
        if not node.step.config.context:
            return "", False
        waiting = asyncio.create_task(self._context_hash(node.step))
        getting: asyncio.Task | None = None
        try:
            while True:
                if getting is None:
                    getting = asyncio.create_task(node.inbox.get())
                await asyncio.wait({waiting, getting}, return_when=asyncio.FIRST_COMPLETED)
                if getting.done():
                    batch = getting.result()
                    getting = None
                    if batch is _END:
                        return await waiting, True
                    spool.append(batch)
                    continue
                return waiting.result(), False
        finally:
            if getting is not None:
                # Cancelling a pending Queue.get leaves its item in the queue.
                getting.cancel()
                await asyncio.gather(getting, return_exceptions=True)
            if not waiting.done():
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)

    async def _stream_batches(self, node: _Node, fingerprint: str, context_hash: str,
                              batches: Any) -> None:
        window: deque[asyncio.Task] = deque()
        try:
            async for batch in batches:
                window.append(asyncio.create_task(
                    self._process_batch(node, fingerprint, context_hash, batch)))
                while window and (len(window) >= self.inflight or window[0].done()):
                    await self._emit(node, await window.popleft())
            while window:
                await self._emit(node, await window.popleft())
        finally:
            # Cancelled (Ctrl-C, a fatal error elsewhere): the batches in flight end with it,
            # instead of outliving the run.
            for task in window:
                task.cancel()
            if window:
                await asyncio.gather(*window, return_exceptions=True)

    async def _process_batch(self, node: _Node, fingerprint: str, context_hash: str,
                             batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        step: _PerItemStep = node.step  # type: ignore[assignment]
        narrowed = step.context_dependence(batch, self.ctx_of(step)) \
            if step.config.context else None
        if narrowed is None:
            keys = [step.item_key(fingerprint, r, context_hash) for r in batch]
        else:  # each item's key covers only the part of the context it uses
            keys = [step.item_key(fingerprint, r, stable_hash("context", part))
                    for r, part in zip(batch, narrowed, strict=True)]
        bumps = [self.resample.get((step.name, rid(r)), 0) for r in batch] \
            if getattr(self, "resample", None) else None
        if bumps:  # a bumped item gets a new key: new seeds, so new samples, not the cache's
            keys = [stable_hash(k, "resample", b) if b else k
                    for k, b in zip(keys, bumps, strict=True)]
        cached = self.store.get_items(keys)
        results: list[ItemResult | None] = [None] * len(batch)
        hits = [False] * len(batch)
        misses: list[int] = []
        for i, key in enumerate(keys):
            if key in cached:
                results[i] = ItemResult.from_cache(cached[key])
                hits[i] = True
            else:
                misses.append(i)
        if misses:
            if step.is_async:
                # Items finish at different times: each is committed as it finishes.
                computed = await asyncio.gather(
                    *(self._compute_one(step, batch[i], keys[i]) for i in misses))
            else:
                # Sync work finishes as one batch: one transaction for all of it.
                if step.cpu_bound:
                    computed = await self._compute_in_pool(
                        step, [batch[i] for i in misses], [keys[i] for i in misses])
                else:
                    computed = [self._compute_sync(step, batch[i], keys[i]) for i in misses]
                self.store.put_items([(keys[i], step.name, r.to_json())
                                      for i, r in zip(misses, computed, strict=True)
                                      if r.cacheable()])
            for i, result in zip(misses, computed, strict=True):
                results[i] = result
        if bumps:
            _mark_resampled(results, bumps)  # type: ignore[arg-type]
        return self._records_from(node, batch, results, hits)  # type: ignore[arg-type]

    def _compute_sync(self, step: _PerItemStep, record: dict[str, Any], key: str) -> ItemResult:
        ictx = ItemContext(run=self.ctx_of(step), item_key=key,
                           seed=derive_seed(self.ctx.seed, key))
        try:
            return step.to_result(step.process(record, ictx))
        except SynthloomError:
            raise
        except Exception as exc:  # noqa: BLE001 - a step's failure on one item is data
            return ItemResult.failure(exc)

    async def _compute_one(self, step: _PerItemStep, record: dict[str, Any],
                           key: str) -> ItemResult:
        ictx = ItemContext(run=self.ctx_of(step), item_key=key,
                           seed=derive_seed(self.ctx.seed, key))
        try:
            if self.stopped_reason == "budget_exhausted":
                raise BudgetExhausted("token budget spent before this item started")
            result = step.to_result(await step.process(record, ictx))
        except BudgetExhausted as exc:
            self.stopped_reason = "budget_exhausted"
            result = ItemResult.failure(exc)
        except SynthloomError:
            raise  # fatal for the run (unreachable server, bad key): stop, don't count per item
        except Exception as exc:  # noqa: BLE001 - a step's failure on one item is data
            result = ItemResult.failure(exc)
        result.llm_calls = ictx.llm_calls
        result.cache_hits = ictx.cache_hits
        result.prompt_tokens = ictx.prompt_tokens
        result.completion_tokens = ictx.completion_tokens
        self._remember(step, key, result)
        return result

    def _remember(self, step: Step, key: str, result: ItemResult) -> None:
        if result.cacheable():
            self.store.put_item(key, step.name, result.to_json())

    async def _compute_in_pool(self, step: _PerItemStep, records: list[dict[str, Any]],
                               keys: list[str]) -> list[ItemResult]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("forkserver"))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, _run_sync_batch, step, records, keys, str(self.run_dir), self.ctx.seed)

    # --- global steps ----------------------------------------------------------------------------

    async def _run_global(self, node: _Node) -> None:
        assert node.inbox is not None
        step: GlobalStep = node.step  # type: ignore[assignment]
        records: list[dict[str, Any]] = []
        while (batch := await node.inbox.get()) is not _END:
            records.extend(batch)
        results, hits = await self._global_results(step, records)
        for start in range(0, len(records), self.batch_size):
            end = start + self.batch_size
            await self._emit(node, self._records_from(
                node, records[start:end], results[start:end], hits[start:end]))

    async def _global_results(self, step: GlobalStep, records: list[dict[str, Any]]
                              ) -> tuple[list[ItemResult], list[bool]]:
        """The barrier's results for all its input, from the cache or computed once."""
        context_hash = await self._context_hash(step)
        fingerprint = step.fingerprint(self.ctx_of(step))
        key = stable_hash("global", fingerprint, context_hash,
                          [step.item_key(fingerprint, r, "") for r in records])
        cached = self.store.get_items([key])
        if key in cached:
            results = [ItemResult.from_cache(r) for r in cached[key]["results"]]
            hits = [True] * len(records)
        else:
            try:
                results = await step.process_all(records, self.ctx_of(step))
            except SynthloomError:
                raise
            except Exception as exc:  # noqa: BLE001 - the whole barrier failed: every input
                results = [ItemResult.failure(exc) for _ in records]
            if len(results) != len(records):
                raise SynthloomError(
                    f"step {step.name}: returned {len(results)} results for {len(records)} inputs")
            if not any(r.failed for r in results):
                self.store.put_item(key, step.name, {"results": [r.to_json() for r in results]})
            hits = [False] * len(records)
        return results, hits

    # --- turning results into records, counting, logging ------------------------------------

    def _records_from(self, node: _Node, batch: list[dict[str, Any]],
                      results: list[ItemResult], hits: list[bool]) -> list[dict[str, Any]]:
        stats = node.stats
        name = node.step.name
        out: list[dict[str, Any]] = []
        for record, result, hit in zip(batch, results, hits, strict=True):
            stats.in_ += 1
            stats.cached += hit
            stats.llm_calls += result.llm_calls
            stats.llm_cache_hits += result.cache_hits
            stats.prompt_tokens += result.prompt_tokens
            stats.completion_tokens += result.completion_tokens
            if result.failed:
                stats.failed += 1
                self._write_failed(record, name, result.error_class or "Error",
                                   result.error_message or "")
                continue
            if result.dropped is not None:
                stats.dropped += 1
                self._write_dropped(record, name, result.dropped)
                continue
            children = [self._child(record, name, o) for o in result.outputs]
            stats.out += len(children)
            stats.expanded += bool(children)
            stats.kept += bool(children)
            out.extend(children)
        return out

    @staticmethod
    def _child(parent: dict[str, Any], step: str, output: Output) -> dict[str, Any]:
        if not output.columns and not output.replace and not output.extra_parents:
            return parent  # nothing changed: same record, same id
        columns = output.columns if output.replace else {**columns_of(parent), **output.columns}
        return make_record(
            columns,
            step=step,
            parents=[rid(parent), *output.extra_parents],
            # A step may narrow the source (a chunker: the document plus the chunk's span).
            source=output.meta.get("source", parent[META].get("source")),
            model=output.model,
            template_hash=output.template_hash,
            sample_index=output.sample_index,
            usage=output.usage,
            extra_meta={**inherited_meta(parent[META]),
                        **{k: v for k, v in output.meta.items() if k != "source"}},
        )

    def _write_failed(self, record: dict[str, Any] | None, step: str, error_class: str,
                      message: str, extra: dict[str, Any] | None = None) -> None:
        if self._failed_out.closed:  # a task outliving an interrupted run: no output left
            return
        row = {"id": rid(record) if record else None, "step": step, "error_class": error_class,
               "message": message, **(extra or {}), "record": record}
        _write_line(self._failed_out, row)

    def _write_dropped(self, record: dict[str, Any], step: str, reason: str) -> None:
        if self._dropped_out.closed:
            return
        _write_line(self._dropped_out,
                    {"id": rid(record), "step": step, "reason": reason, "record": record})

    # --- sinks -----------------------------------------------------------------------------------

    async def _run_sink(self, sink: Sink, inbox: asyncio.Queue) -> int:
        # File sinks write NAME.partial here; _run_locked publishes them when the run ends.
        sink.open(self.run_dir)
        count = 0
        try:
            while (batch := await inbox.get()) is not _END:
                sink.write(batch)
                count += len(batch)
        except BaseException:
            abort = getattr(sink, "abort", None)  # skip finishing work nobody will publish
            if callable(abort):
                abort()
            else:
                sink.close()
            raise
        sink.close()
        return count


def _mark_resampled(results: list[ItemResult], bumps: list[int]) -> None:
    """A regenerated item's outputs: the sample index moves on by the bump (new record ids)
    and ``_meta.resample`` says how many times it was regenerated."""
    for result, bump in zip(results, bumps, strict=True):
        for output in result.outputs if bump else ():
            if output.columns or output.replace:
                output.sample_index = (output.sample_index or 0) + bump
                output.meta = {**output.meta, "resample": bump}


def inherited_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Provenance extras (file path, chunk span, retrieved document, demo ids) pass down to
    descendants; the core keys and step-local facts (finish_reason) do not."""
    return {k: v for k, v in meta.items() if k not in CORE_META and k not in LOCAL_META}


class _Spool:
    """Batches a node received before it could process them, kept on disk in arrival order."""

    def __init__(self, run_dir: Path) -> None:
        self._dir = run_dir
        self._file: IO[bytes] | None = None
        self.batches = 0

    def append(self, batch: list[dict[str, Any]]) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self._dir, prefix=".spool-")  # noqa: SIM115
        self._file.write(jsonio.dumps_line(batch))
        self.batches += 1

    def replay(self) -> Iterator[list[dict[str, Any]]]:
        if self._file is None:
            return
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            yield jsonio.loads(line)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def _batches(spool: _Spool, inbox: asyncio.Queue | None) -> Any:
    """The spooled batches, then the inbox's (when it has not ended yet)."""
    for batch in spool.replay():
        yield batch
    while inbox is not None and (batch := await inbox.get()) is not _END:
        yield batch


def _take(items: Iterator[Any], n: int) -> list[Any]:
    out = []
    for item in items:
        out.append(item)
        if len(out) >= n:
            break
    return out


def partial_path(path: Path) -> Path:
    """Where a run writes ``path`` until the run ends complete (``data.jsonl.partial``)."""
    return path.with_name(path.name + ".partial")


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


def _write_line(handle: IO[bytes], row: dict[str, Any]) -> None:
    handle.write(jsonio.dumps_line(row))
    handle.flush()


def _run_sync_batch(step: _PerItemStep, records: list[dict[str, Any]], keys: list[str],
                    run_dir: str, seed: int) -> list[ItemResult]:
    """Runs in a worker process: CPU-bound steps get a context without an LLM."""
    run = RunContext(run_dir=Path(run_dir), seed=seed)
    results = []
    for record, key in zip(records, keys, strict=True):
        try:
            ictx = ItemContext(run=run, item_key=key, seed=derive_seed(seed, key))
            results.append(step.to_result(step.process(record, ictx)))
        except Exception as exc:  # noqa: BLE001 - per-item failure is data
            results.append(ItemResult.failure(exc))
    return results
