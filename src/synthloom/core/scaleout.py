"""Capabilities a step may offer so that a distributed executor can spread its work.

Both are optional and declared by implementing the methods (``isinstance`` checks a
runtime protocol: no attribute probing). The local executor needs neither.

* :class:`ReadsInParts` — a source whose reading splits into independent parts (files): the Ray
  executor reads the parts in parallel tasks and the driver merges their items in order (same
  ids, same identical-document drops, same ``--limit`` as a serial read).
* :class:`PreparesInParallel` — a global step with per-record work that does not need the whole
  input (embedding): the Ray executor runs ``prepare`` on the barrier's input in actors before
  the barrier; the work lands in a cache the step's ``process_all`` reads (the embedding cache),
  so the barrier itself is left with what needs every record (clustering, communities).
* :func:`map_batches` — a global step's own per-batch work *inside* ``process_all`` (assigning
  every record to the topic centroids fitted on a sample): the function runs on each batch in
  this process by default; the Ray executor runs it in actors around its barriers
  (:func:`batches_mapped_by`). Results come back in the batches' order, so the step's output
  does not depend on where it ran.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, runtime_checkable

from synthloom.core.context import RunContext
from synthloom.core.records import Output
from synthloom.core.steps import SourceFailure


@runtime_checkable
class ReadsInParts(Protocol):
    def parts(self, ctx: RunContext) -> Iterable[Any]:
        """The source's parts in read order (cheap: names, not contents; picklable)."""
        ...

    def read_parts(self, parts: Iterable[Any], ctx: RunContext,
                   ) -> Iterator[Output | SourceFailure]:
        """Some parts' items, in order, as ``read`` yields them for those parts (one read
        task's share: the source may share work across them, e.g. one cache transaction)."""
        ...


@runtime_checkable
class ReadsInProcesses(Protocol):
    def reader_processes(self) -> int:
        """Processes the source's own ``read`` spreads its parts over (1: it reads in the
        calling thread). Such a read waits on other processes: the runner keeps it off the
        event loop."""
        ...


#: Parts (files) one read task reads (a Ray task, or a local worker process).
PARTS_PER_TASK = 32


def read_parts_task(step: Any, ctx: RunContext, parts: list[Any]) -> list[Any]:
    """One read task: the items of some parts of a source (a Ray task or a pool worker)."""
    step.setup(ctx)
    return list(step.read_parts(parts, ctx))


def read_in_order(parts: Iterable[Any], submit: Callable[[list[Any]], Any],
                  result: Callable[[Any], list[Any]], cancel: Callable[[Any], Any],
                  inflight: int) -> Iterator[Any]:
    """A source's items with its parts read ``PARTS_PER_TASK`` at a time by ``submit`` (a Ray
    task, a process-pool future), ``inflight`` tasks at most, yielded in the parts' order: the
    merge both executors use, so ids, ``--limit`` and identical-document drops (applied by the
    caller to this stream) are those of a serial read. Tasks still in flight when the consumer
    stops (``--limit``, an error) are cancelled."""
    it = iter(parts)
    window: deque[Any] = deque()
    try:
        while True:
            while len(window) < inflight:
                chunk = list(itertools.islice(it, PARTS_PER_TASK))
                if not chunk:
                    break
                window.append(submit(chunk))
            if not window:
                return
            yield from result(window.popleft())
    finally:
        for task in window:
            cancel(task)


@runtime_checkable
class PreparesInParallel(Protocol):
    async def prepare(self, records: list[dict[str, Any]], ctx: RunContext) -> None:
        """Per-record work on one batch of the barrier's input, kept where ``process_all``
        finds it (a cache on disk in the run folder)."""
        ...


class MapsBatches(Protocol):
    def __call__(self, fn: Callable[[Any], Any], batches: Iterable[Any]) -> Iterator[Any]:
        """``fn(batch)`` for each batch, in order; ``fn`` is picklable (it may run elsewhere).
        Consumes ``batches`` lazily (a bounded window in flight), so a caller streaming them
        from disk never holds them all."""
        ...


def _in_process(fn: Callable[[Any], Any], batches: Iterable[Any]) -> Iterator[Any]:
    return (fn(batch) for batch in batches)


#: The mapper of the step running now (a context variable: ``asyncio.to_thread`` carries it).
_MAPPER: ContextVar[MapsBatches] = ContextVar("synthloom_batch_mapper", default=_in_process)


def map_batches(fn: Callable[[Any], Any], batches: Iterable[Any]) -> Iterator[Any]:
    """Run ``fn`` on each batch where the executor spreads work (here by default)."""
    return _MAPPER.get()(fn, batches)


@contextmanager
def batches_mapped_by(mapper: MapsBatches) -> Iterator[None]:
    """Within the block, :func:`map_batches` uses ``mapper`` (the Ray executor: actors)."""
    token = _MAPPER.set(mapper)
    try:
        yield
    finally:
        _MAPPER.reset(token)
