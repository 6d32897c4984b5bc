"""The local executor: streams batches through the recipe graph with bounded memory.

Each node runs as an asyncio task reading batches from a bounded queue. Streaming steps keep a
window of batches in flight (LLM calls overlap across batches and across steps) and emit them
in input order, so output order is deterministic. CPU-bound steps run their batches in a
process pool. Global steps are barriers: they collect all their input in a spool on disk
(core/spool.py: 8 bytes per record in memory, the cache key gathered as it arrives), then run
once over it.

Every finished item is committed to the run store at once, so a kill -9 loses at most the
items in flight, and a rerun replays finished items from the cache without calling the LLM.
The run's lifecycle is :class:`~synthloom.core.executor_base.Executor`'s; batches run in its
:class:`~synthloom.core.batch.BatchRunner`, as on Ray.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloom.core.accounting import StepStats
from synthloom.core.batch import GlobalKey, derive_seed
from synthloom.core.errors import SynthloomError
from synthloom.core.executor_base import (
    Executor,
    ProgressCallback,
    failure_status,
    finished_status,
    write_atomic,
)
from synthloom.core.recipe import Recipe
from synthloom.core.runlog import partial_path
from synthloom.core.spool import SpooledRecords, SpoolWriter
from synthloom.core.steps import GlobalStep, Sink, SourceStep, Step, _PerItemStep
from synthloom.core.store import RunStore

__all__ = ["LocalExecutor", "ProgressCallback", "derive_seed", "failure_status",
           "finished_status", "partial_path", "write_atomic"]

_END = None  # queue sentinel: the producer is finished
#: Seconds between progress calls when nothing is emitted (see ``_heartbeat``).
HEARTBEAT_S = 1.0
#: Finished batches held for in-order emission, at most this many times ``inflight``.
MAX_HELD = 4


@dataclass
class _Node:
    step: Step
    stats: StepStats
    consumers: list[asyncio.Queue] = field(default_factory=list)
    inbox: asyncio.Queue | None = None
    #: Records kept in memory because another step names this node in ``context:``.
    collected: list[dict[str, Any]] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class LocalExecutor(Executor):
    def __init__(self, recipe: Recipe, run_dir: str | Path, *, inflight_batches: int | None = None,
                 queue_batches: int = 4, store: RunStore | None = None, **kwargs: Any) -> None:
        super().__init__(recipe, run_dir, store=store, **kwargs)
        concurrency = max([c.concurrency or 8 for c in self.models.values()] or [8])
        # Enough batches running to keep the LLM busy across batch boundaries. (4x the
        # concurrency kept more callers waiting at the gate but cost ~17% more CPU per request
        # at c=256: issue 27.)
        self.inflight = inflight_batches or max(2, -(-2 * concurrency // self.batch_size) + 1)
        self.queue_batches = queue_batches

    # --- wiring ----------------------------------------------------------------------------------

    async def run_graph(self) -> int:
        nodes = self._wire()
        self._nodes = nodes
        tasks = [asyncio.create_task(self._run_node(n), name=n.step.name) for n in nodes.values()]
        sink_tasks = [asyncio.create_task(self._run_sink(s, q)) for s, q in self._sink_inboxes]
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            await asyncio.gather(*tasks, *sink_tasks)
        except BaseException:
            for task in [*tasks, *sink_tasks]:
                task.cancel()
            await asyncio.gather(*tasks, *sink_tasks, return_exceptions=True)
            raise
        finally:
            heartbeat.cancel()
        counts = [t.result() for t in sink_tasks]
        return counts[0] if counts else 0

    async def _heartbeat(self) -> None:
        """Progress every ``HEARTBEAT_S`` while the graph runs: a barrier computing for minutes
        emits nothing, and the display (its log line every 30 s) would go silent meanwhile
        (~5 min at 100k documents in ``semantic_communities``)."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            self.progress()

    def _wire(self) -> dict[str, _Node]:
        nodes: dict[str, _Node] = {}
        wanted_in_context = {c for step in self.recipe.steps for c in step.config.context}
        for step in self.recipe.nodes:
            node = _Node(step=step, stats=self.stats[step.name])
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
        self.progress()

    async def _emit(self, node: _Node, records: list[dict[str, Any]]) -> None:
        if node.collected is not None:
            node.collected.extend(records)
        if records:
            for queue in node.consumers:
                await queue.put(records)
        self.progress()

    async def _context_hash(self, step: Step) -> str:
        """Wait for the nodes named in ``context:``; hash their record ids for cache keys."""
        for name in step.config.context:
            await self._nodes[name].done.wait()
            self.ctx.context[name] = self._nodes[name].collected or []
        return self.context_hash(step)

    # --- sources ---------------------------------------------------------------------------------

    async def _run_source(self, node: _Node) -> None:
        step: SourceStep = node.step  # type: ignore[assignment]
        async for batch in self.runner.source_batches(step, node.stats, self.batch_size,
                                                      self.limit):
            await self._emit(node, batch)

    # --- streaming steps (map / expand / filter) ----------------------------------------------

    async def _run_streaming(self, node: _Node) -> None:
        assert node.inbox is not None
        spool = SpoolWriter(folder=self.run_dir, keep_batches=True) \
            if node.step.config.context else None
        early: SpooledRecords | None = None
        try:
            context_hash, ended = await self._wait_for_context(node, spool)
            early = spool.close() if spool is not None else None
            fingerprint = node.step.fingerprint(self.ctx_of(node.step))
            await self._stream_batches(node, fingerprint, context_hash,
                                       _batches(early, None if ended else node.inbox))
        finally:
            if early is not None:
                early.close()
            elif spool is not None:
                spool.discard()

    async def _wait_for_context(self, node: _Node, spool: SpoolWriter | None
                                ) -> tuple[str, bool]:
        """The context hash, once every node in ``context:`` is done; (hash, inbox ended).

        While it waits, the node keeps reading its inbox into a spool on disk. A node that
        stopped reading would block its producer on a full queue, and that producer may be
        what the context is waiting for (directly, or through a sibling consumer): the
        flagship's corpus feeds both ``retrieve`` (context of ``synthesize``'s demos) and
        ``synthesize`` itself. Memory stays bounded: spooled batches live on disk.
        """
        assert node.inbox is not None
        if spool is None:
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
                    spool.write(batch)
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
                await self._make_room(node, window)
            while window:
                await self._emit(node, await window.popleft())
        finally:
            # Cancelled (Ctrl-C, a fatal error elsewhere): the batches in flight end with it,
            # instead of outliving the run.
            for task in window:
                task.cancel()
            if window:
                await asyncio.gather(*window, return_exceptions=True)

    async def _make_room(self, node: _Node, window: deque[asyncio.Task]) -> None:
        """Emit the finished batches at the head; wait while ``inflight`` batches are still
        running (or the window holds ``MAX_HELD`` times that). Counting running batches, not
        held ones: a batch waiting for one slow item at the head (a retry, a long answer)
        no longer stops the next batches from starting (issue 27)."""
        while window:
            if window[0].done():
                await self._emit(node, await window.popleft())
                continue
            running = [task for task in window if not task.done()]
            if len(running) < self.inflight and len(window) < MAX_HELD * self.inflight:
                return
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)

    async def _process_batch(self, node: _Node, fingerprint: str, context_hash: str,
                             batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return await self.runner.run_batch(node.step, node.stats,  # type: ignore[arg-type]
                                           fingerprint, context_hash, batch)

    # --- global steps ----------------------------------------------------------------------------

    async def _run_global(self, node: _Node) -> None:
        """Collect the input in a spool (a list held ~7 KB per document before the
        flagship's ``topics``), its cache key gathered meanwhile; run the step over the
        spooled sequence; emit its records read back from the spool a batch at a time."""
        assert node.inbox is not None
        step: GlobalStep = node.step  # type: ignore[assignment]
        spool = SpoolWriter(folder=self.run_dir)
        try:
            keys = GlobalKey(step, step.fingerprint(self.ctx_of(step)))
            while (batch := await node.inbox.get()) is not _END:
                spool.write(batch)
                keys.add(batch)
        except BaseException:
            spool.discard()
            raise
        records = spool.close()
        try:
            context_hash = await self._context_hash(step)
            results, hits = await self.runner.global_results(step, records, context_hash, keys)
            del keys
            start = 0
            for batch in records.batches(self.batch_size):
                end = start + len(batch)
                await self._emit(node, self.runner.records_from(
                    step.name, node.stats, batch, results[start:end], hits[start:end]))
                start = end
        finally:
            records.close()

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


async def _batches(early: SpooledRecords | None, inbox: asyncio.Queue | None) -> Any:
    """The batches spooled while the node waited (as they came), then the inbox's (when it
    has not ended yet)."""
    for batch in early.batches() if early is not None else ():
        yield batch
    while inbox is not None and (batch := await inbox.get()) is not _END:
        yield batch
