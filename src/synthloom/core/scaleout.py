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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

from synthloom.core.context import RunContext
from synthloom.core.records import Output
from synthloom.core.steps import SourceFailure


@runtime_checkable
class ReadsInParts(Protocol):
    def parts(self, ctx: RunContext) -> Iterable[Any]:
        """The source's parts in read order (cheap: names, not contents; picklable)."""
        ...

    def read_part(self, part: Any, ctx: RunContext) -> Iterator[Output | SourceFailure]:
        """One part's items, as ``read`` yields them for that part."""
        ...


@runtime_checkable
class PreparesInParallel(Protocol):
    async def prepare(self, records: list[dict[str, Any]], ctx: RunContext) -> None:
        """Per-record work on one batch of the barrier's input, kept where ``process_all``
        finds it (a cache on disk in the run folder)."""
        ...
