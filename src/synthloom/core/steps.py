"""Step kinds: source, map (1→1), expand (1→N), filter (keep/drop), global (barrier), sink.

A step is a configured object. Its ``Config`` (pydantic, unknown keys forbidden) is validated when
the recipe loads, before any LLM call. Steps return :class:`Output` / :class:`ItemResult`; the
executor turns them into records with ids and provenance, caches them, and counts them.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from synthloom.core.fingerprint import stable_hash
from synthloom.core.jsonio import BadLine, read_jsonl
from synthloom.core.records import META, ItemResult, Output, columns_of

if TYPE_CHECKING:
    from synthloom.core.context import ItemContext, RunContext


class StepKind(StrEnum):
    SOURCE = "source"
    MAP = "map"
    EXPAND = "expand"
    FILTER = "filter"
    GLOBAL = "global"
    SINK = "sink"


class StepConfig(BaseModel):
    """Keys every step accepts. Subclasses add their own; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Descriptions as Field(description=...): `synthloom steps TYPE` shows them (subclasses
    # still written with `#:` comments are read from their source as a fallback).
    name: str = Field(description="The step's name: other steps' input/context and --set "
                                  "STEP.key=value name it.")
    input: str | None = Field(
        default=None, description="The node whose records this step reads (default: the step "
                                  "before it).")
    context: list[str] = Field(
        default_factory=list, description="Nodes materialised in full before this step "
                                          "starts, given as ``ctx.context[name]``.")
    model: str | None = Field(
        default=None, description="The named model (recipe ``models:``) this step calls; None: "
                                  "the run's model. Its model id, not this name, enters the "
                                  "fingerprint.")

    #: Keys that name graph wiring, not computation: kept out of the fingerprint.
    wiring: ClassVar[frozenset[str]] = frozenset({"name", "input", "context", "model"})


class Step(ABC):
    """Base of all steps. Subclasses set ``kind``, ``type_name`` and ``Config``."""

    kind: ClassVar[StepKind]
    type_name: ClassVar[str]
    #: Bump when the step's logic changes in a way that invalidates cached results.
    version: ClassVar[str] = "1"
    Config: ClassVar[type[StepConfig]] = StepConfig
    #: Calls the LLM (the model id and sampling enter the fingerprint).
    uses_llm: ClassVar[bool] = False
    #: Pure-Python CPU work: the executor runs batches in a process pool.
    cpu_bound: ClassVar[bool] = False

    def __init__(self, config: StepConfig | None = None, **kwargs: Any) -> None:
        self.config = config if config is not None else self.Config(**kwargs)

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # --- fingerprints --------------------------------------------------------------------------

    def setup(self, ctx: RunContext) -> None:  # noqa: B027 - optional hook
        """Load templates / resources once, before the run (in the main process)."""

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        """Anything beyond the config that changes results (template hashes, model, seed)."""
        return None

    def fingerprint(self, ctx: RunContext) -> str:
        # A config class may name more wiring (keys whose effect enters extra_fingerprint).
        config = self.config.model_dump(mode="json", exclude=set(type(self.config).wiring))
        model = ctx.model_id if self.uses_llm else None
        return stable_hash(
            "step", self.kind, self.type_name, self.version, config, model, ctx.seed,
            self.extra_fingerprint(ctx),
        )

    def model_names(self) -> list[str]:
        """The named models this step calls (its own ``model:``; a step that calls several,
        like CodecLM's strong/target pair, adds the others). Checked against ``models:``."""
        return [self.config.model] if self.config.model else []

    def reads(self) -> list[str] | None:
        """Columns the step reads (None: all). Only these enter the per-item cache key."""
        return None

    def context_dependence(self, records: list[dict[str, Any]], ctx: RunContext
                           ) -> list[Any] | None:
        """What of ``ctx.context`` each record's result depends on, or None: all of it.

        By default an item's key covers every record of its ``context:`` nodes, so one new
        context record reruns every item. A step that uses a small, deterministic part of its
        context per item (the demos it will show, the segments it will place) returns that part
        here (ids or content hashes, one entry per record); only that enters the item's key,
        and a grown context reruns only the items whose part changed. Called on the event loop
        with ``ctx.context`` filled: keep it cheap (O(k) per record, not a scan of the pool).
        """
        return None

    def item_key(self, fingerprint: str, record: dict[str, Any], context_hash: str) -> str:
        cols = self.reads()
        data = columns_of(record) if cols is None else {c: record.get(c) for c in cols}
        return stable_hash("item", fingerprint, context_hash, data)


class SourceStep(Step):
    kind = StepKind.SOURCE

    @abstractmethod
    def read(self, ctx: RunContext) -> Iterator[dict[str, Any] | SourceFailure]:
        """Yield column dicts (one per document/row) or SourceFailure for unreadable input."""


@dataclass(slots=True)
class SourceFailure:
    """An input that could not be read: names the file/row and the cause."""

    where: str
    error_class: str
    message: str


def jsonl_source_rows(path: str | Path, *, objects: bool = True
                      ) -> Iterator[tuple[int, Any] | SourceFailure]:
    """``read_jsonl`` for a source step: ``(line, row)`` pairs, and each bad line as a
    ``SourceFailure`` naming ``file:line``, in file order (counted, never silent)."""
    bad: list[BadLine] = []
    for number, row in read_jsonl(path, bad=bad, objects=objects):
        yield from _source_failures(bad)
        yield number, row
    yield from _source_failures(bad)


def _source_failures(bad: list[BadLine]) -> Iterator[SourceFailure]:
    for line in bad:
        yield SourceFailure(f"{line.path}:{line.line}", "BadJsonLine", line.message)
    bad.clear()


class _PerItemStep(Step):
    """map / expand / filter: ``process(record, ctx)`` per record, sync or async."""

    @abstractmethod
    def process(self, record: dict[str, Any], ctx: ItemContext) -> Any:
        """Sync or async; returns what ``to_result`` accepts for this step kind."""

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.process)

    def to_result(self, value: Any) -> ItemResult:
        """Normalise what ``process`` returned into an ItemResult."""
        if isinstance(value, ItemResult):
            return value
        return self._wrap(value)

    def _wrap(self, value: Any) -> ItemResult:
        raise TypeError(f"{self}: unexpected return value {type(value).__name__}")


class MapStep(_PerItemStep):
    """One record in, one record out (or a drop / failure)."""

    kind = StepKind.MAP

    def _wrap(self, value: Any) -> ItemResult:
        if isinstance(value, Output):
            return ItemResult(outputs=[value])
        if isinstance(value, dict):
            return ItemResult(outputs=[Output(columns=value)])
        return super()._wrap(value)


class ExpandStep(_PerItemStep):
    """One record in, zero or more out. Zero outputs counts as a drop with a reason."""

    kind = StepKind.EXPAND

    def _wrap(self, value: Any) -> ItemResult:
        if isinstance(value, list):
            outputs = [v if isinstance(v, Output) else Output(columns=v) for v in value]
            if not outputs:
                return ItemResult.drop("no outputs")
            return ItemResult(outputs=outputs)
        return super()._wrap(value)


class FilterStep(_PerItemStep):
    """Keep or drop. ``process`` returns None to keep, or the drop reason as a string.

    Kept records pass through unchanged (same id): filtering changes no content.
    """

    kind = StepKind.FILTER

    def _wrap(self, value: Any) -> ItemResult:
        if value is None or value is True:
            return ItemResult(outputs=[Output(columns={})])
        if isinstance(value, str):
            return ItemResult.drop(value)
        return super()._wrap(value)


class GlobalStep(Step):
    """Needs every input record at once (dedup, clustering, selection): a barrier.

    ``process_all`` returns one ItemResult per input record, in order.
    """

    kind = StepKind.GLOBAL

    @abstractmethod
    async def process_all(
        self, records: list[dict[str, Any]], ctx: RunContext
    ) -> list[ItemResult]:
        """One ItemResult per input record, in order."""


class SinkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The node whose records are written (default: the last step).
    input: str | None = Field(default=None, alias="from")
    path: str


class Sink(ABC):
    """Writes final records. Opened once, fed in order, closed at the end."""

    kind: ClassVar[StepKind] = StepKind.SINK
    type_name: ClassVar[str]
    Config: ClassVar[type[SinkConfig]] = SinkConfig

    def __init__(self, config: SinkConfig | None = None, **kwargs: Any) -> None:
        self.config = config if config is not None else self.Config(**kwargs)

    @abstractmethod
    def open(self, run_dir: Any) -> None:
        """Prepare the output in the run folder."""

    @abstractmethod
    def write(self, records: list[dict[str, Any]]) -> None:
        """Append records, in order."""

    @abstractmethod
    def close(self) -> None:
        """Flush and close."""


def is_meta(key: str) -> bool:
    return key == META


def non_empty_subset(setting: str, value: list[str], allowed: Iterable[str]) -> list[str]:
    """``value`` when it is a non-empty subset of ``allowed``, else a ValueError naming the
    setting, the allowed names and the unknown ones (a config validator's body)."""
    known = list(allowed)
    unknown = sorted(set(value) - set(known))
    if unknown or not value:
        raise ValueError(f"{setting} must be a non-empty subset of {known}; unknown: {unknown}")
    return value
