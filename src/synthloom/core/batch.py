"""One batch runner for every executor: cache keys, the cache, the per-item error policy,
counting and provenance.

The local executor calls it from its asyncio graph; a Ray actor calls it for each batch of
its chain; the driver calls it for sources and global steps. So cache keys, seeds, record ids
and drop/failure rules are the same on every executor by construction.

The per-item error policy is :func:`item_failure`, used in process, in the process pool and
in a Ray actor: a step's exception on one item is that item's failure (data, counted and
written to failed.jsonl); a :class:`SynthloomError` (an unreachable server, a bad key, a
broken recipe) stops the run; :class:`BudgetExhausted` is the item's failure and stops the
run cleanly (``stopped_reason``).
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from synthloom.core.accounting import StepStats
from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import BudgetExhausted, SynthloomError
from synthloom.core.fingerprint import canonical_json_bytes, stable_hash
from synthloom.core.idset import IdSet
from synthloom.core.records import META, ItemResult, Output, columns_of, make_record, rid
from synthloom.core.runlog import RunLog
from synthloom.core.scaleout import ReadsInProcesses
from synthloom.core.steps import GlobalStep, SourceFailure, SourceStep, Step, _PerItemStep
from synthloom.core.store import RunStore

CORE_META = frozenset(
    {"id", "parents", "source", "step", "model", "template_hash", "sample_index", "usage"})
#: Source-record meta copied into ``_meta.source`` (file, row).
SOURCE_KEYS = ("path", "line", "where")
#: Meta keys that describe one step's own call, not the lineage.
LOCAL_META = frozenset({"finish_reason"})
#: A source whose recent batch reads took less than this (their median) is read on the
#: event loop.
INLINE_TAKE_S = 0.002
#: A global step's cached results per cache row: above it, a row per part and a head row (one
#: row of all of them was ~1.1 KB of JSON text per record at once, ~1 GB at 1M records).
RESULTS_PER_ROW = 8_192
#: Reads in that median: a source goes to a thread for good once the median of its last
#: reads is slow, so one read preempted under load does not send a fast source there, and a
#: source that blocks (network, a dataset shard) blocks the loop at most a few times.
TAKE_WINDOW = 5
#: Item keys formatted at a time when a global step's cache key is hashed (2.3 MB of text).
GLOBAL_KEY_BATCH = 65_536
_KEY_BYTES = 16  # an item key: stable_hash's 32 hex digits
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def derive_seed(run_seed: int, item_key: str) -> int:
    """A per-item seed: reproducible across runs and executors, distinct across items."""
    digest = hashlib.blake2b(f"seed:{run_seed}:{item_key}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


def item_failure(exc: Exception) -> ItemResult:
    """The per-item error policy: the item's failure, or re-raised when it must stop the run.

    A :class:`SynthloomError` says the run cannot go on (every later item would fail the same
    way), so it is raised, wherever the item ran; :class:`BudgetExhausted` is the one
    SynthloomError that is an item's failure (the run then stops cleanly, resumable)."""
    if isinstance(exc, SynthloomError) and not isinstance(exc, BudgetExhausted):
        raise exc
    return ItemResult.failure(exc)


def compute_item(step: _PerItemStep, record: dict[str, Any], ictx: ItemContext) -> ItemResult:
    """One item of a sync step (in process, in a pool worker or in a Ray actor)."""
    try:
        return step.to_result(step.process(record, ictx))
    except Exception as exc:  # noqa: BLE001 - the policy decides
        return item_failure(exc)


def run_sync_batch(step: _PerItemStep, records: list[dict[str, Any]], keys: list[str],
                   run_dir: str, seed: int) -> list[ItemResult]:
    """Runs in a pool worker process: CPU-bound steps get a context without an LLM."""
    run = RunContext(run_dir=Path(run_dir), seed=seed)
    return [compute_item(step, record, ItemContext(run=run, item_key=key,
                                                   seed=derive_seed(seed, key)))
            for record, key in zip(records, keys, strict=True)]


class StepContexts:
    """The run context each step sees: ``llm`` is the client of the step's own model."""

    def __init__(self, run: RunContext) -> None:
        self.run = run
        self._by_step: dict[str, RunContext] = {}

    def __call__(self, step: Step) -> RunContext:
        ctx = self._by_step.get(step.name)
        if ctx is None:
            ctx = self._by_step[step.name] = self.run.for_model(step.config.model)
        return ctx


class BatchRunner:
    """Runs batches of one step: keys, cache, compute (the policy above), counts, records.

    ``workers``: the process pool for CPU-bound steps (None: they run in this process, as in
    a Ray actor, where Ray is the pool)."""

    def __init__(self, *, run: RunContext, store: RunStore, log: RunLog,
                 resample: dict[tuple[str, str], int] | None = None,
                 workers: int | None = None) -> None:
        self.run = run
        self.ctx_of = StepContexts(run)
        self.store = store
        self.log = log
        #: (step, input record id) -> sample bump (``--regenerate rejected``, review/).
        self.resample = dict(resample or {})
        self.workers = workers
        #: Why the run stops early (``budget_exhausted``), set by an item or by the executor.
        self.stopped_reason: str | None = None
        self._pool: ProcessPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    # --- sources ---------------------------------------------------------------------------

    async def source_batches(self, step: SourceStep, stats: StepStats, batch_size: int,
                             limit: int | None = None, items: Iterator[Any] | None = None,
                             ) -> AsyncIterator[list[dict[str, Any]]]:
        """A source's records in batches, read off the event loop; duplicates dropped.
        ``items``: the source's items when the executor reads them itself (in parallel)."""
        # Items the executor gathers itself may wait on other processes: always threaded.
        # So does a source reading in its own process pool (documents' read_workers).
        threaded = items is not None or (isinstance(step, ReadsInProcesses)
                                         and step.reader_processes() > 1)
        if items is None:
            items = iter(step.read(self.ctx_of(step)))
        seen = IdSet()
        emitted = 0
        inline = False  # the first batch opens the file or dataset: off the event loop
        recent: deque[float] = deque(maxlen=TAKE_WINDOW)  # the reads after the first
        first = True
        while not self.stopped_reason:
            if inline:
                batch, took = _timed_take(items, batch_size)
            else:
                batch, took = await asyncio.to_thread(_timed_take, items, batch_size)
            # A source that reads a batch quickly (in memory, a local file) is read on the
            # loop: the thread hop cost a GIL hand-over per batch, ~1-2 ms of the loop's
            # time on a loaded machine (issue 27). A slow median of its last reads sends it
            # back to the thread for good (see TAKE_WINDOW).
            if not first:
                recent.append(took)
            first = False
            slow = bool(recent) and statistics.median(recent) >= INLINE_TAKE_S
            threaded = threaded or (slow and len(recent) == TAKE_WINDOW)
            inline = not threaded and not slow and (bool(recent) or took < INLINE_TAKE_S)
            if not batch:
                break
            records: list[dict[str, Any]] = []
            for item in batch:
                if limit is not None and emitted + len(records) >= limit:
                    break
                stats.in_ += 1
                if isinstance(item, SourceFailure):
                    stats.failed += 1
                    self.log.failed(None, step.name, item.error_class,
                                    f"{item.where}: {item.message}", {"where": item.where})
                    continue
                records.append(source_record(step.name, item))
            # 64 bits of each id in a compact set: memory stays flat over millions of sources
            # (a dict of id strings took ~160 MB per million; benchmarks/memory.py).
            keys = np.array([int(rid(r)[:16], 16) for r in records], dtype=np.uint64)
            known = seen.contains(keys)
            out: list[dict[str, Any]] = []
            fresh: set[int] = set()
            for record, key, was_seen in zip(records, keys.tolist(), known, strict=True):
                if was_seen or key in fresh:
                    stats.dropped += 1
                    self.log.dropped(record, step.name,
                                     "identical to an earlier item of this source (same id)")
                    continue
                fresh.add(key)
                out.append(record)
            seen.add(np.array(sorted(fresh), dtype=np.uint64))
            stats.out += len(out)
            emitted += len(out)
            yield out
            if limit is not None and emitted >= limit:
                break

    # --- per-item steps --------------------------------------------------------------------

    async def run_batch(self, step: _PerItemStep, stats: StepStats, fingerprint: str,
                        context_hash: str, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One batch of a map / expand / filter step: its output records."""
        narrowed = step.context_dependence(batch, self.ctx_of(step)) \
            if step.config.context else None
        if narrowed is None:
            keys = [step.item_key(fingerprint, r, context_hash) for r in batch]
        else:  # each item's key covers only the part of the context it uses
            keys = [step.item_key(fingerprint, r, stable_hash("context", part))
                    for r, part in zip(batch, narrowed, strict=True)]
        bumps = [self.resample.get((step.name, rid(r)), 0) for r in batch] \
            if self.resample else None
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
                    *(self._compute_async(step, batch[i], keys[i]) for i in misses))
            else:
                # Sync work finishes as one batch: one transaction for all of it.
                if step.cpu_bound and self.workers is not None:
                    computed = await self._compute_in_pool(
                        step, [batch[i] for i in misses], [keys[i] for i in misses])
                else:
                    computed = [compute_item(step, batch[i], self._item_ctx(step, keys[i]))
                                for i in misses]
                self.store.put_items([(keys[i], step.name, r.to_json())
                                      for i, r in zip(misses, computed, strict=True)
                                      if r.cacheable()])
            for i, result in zip(misses, computed, strict=True):
                results[i] = result
        if bumps:
            _mark_resampled(results, bumps)  # type: ignore[arg-type]
        return self.records_from(step.name, stats, batch, results, hits)  # type: ignore[arg-type]

    def _item_ctx(self, step: Step, key: str) -> ItemContext:
        return ItemContext(run=self.ctx_of(step), item_key=key,
                           seed=derive_seed(self.run.seed, key))

    async def _compute_async(self, step: _PerItemStep, record: dict[str, Any],
                             key: str) -> ItemResult:
        ictx = self._item_ctx(step, key)
        try:
            if self.stopped_reason == "budget_exhausted":
                raise BudgetExhausted("token budget spent before this item started")
            result = step.to_result(await step.process(record, ictx))
        except Exception as exc:  # noqa: BLE001 - the policy decides
            result = item_failure(exc)
            if isinstance(exc, BudgetExhausted):
                self.stopped_reason = "budget_exhausted"
        result.llm_calls = ictx.llm_calls
        result.cache_hits = ictx.cache_hits
        result.prompt_tokens = ictx.prompt_tokens
        result.completion_tokens = ictx.completion_tokens
        if result.cacheable():
            self.store.put_item(key, step.name, result.to_json())
        return result

    async def _compute_in_pool(self, step: _PerItemStep, records: list[dict[str, Any]],
                               keys: list[str]) -> list[ItemResult]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("forkserver"))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, run_sync_batch, step, records, keys, str(self.run.run_dir),
            self.run.seed)

    # --- global steps ----------------------------------------------------------------------

    async def run_global(self, step: GlobalStep, stats: StepStats, records: list[dict[str, Any]],
                         context_hash: str) -> list[dict[str, Any]]:
        """A barrier's output records for all its input, from the cache or computed once."""
        results, hits = await self.global_results(step, records, context_hash)
        return self.records_from(step.name, stats, records, results, hits)

    async def global_results(self, step: GlobalStep, records: Sequence[dict[str, Any]],
                             context_hash: str, keys: GlobalKey | None = None,
                             ) -> tuple[Sequence[ItemResult], list[bool]]:
        """The step's results for ``records``, in the order they came (the upstream's
        emission order: a filter or dedup keeps the first occurrence in input order).
        ``keys``: the records' item keys, gathered while they arrived (else read here)."""
        fingerprint = step.fingerprint(self.ctx_of(step))
        if keys is None or keys.fingerprint != fingerprint:
            keys = GlobalKey(step, fingerprint)
            keys.add(records)  # a spool is read in order, a few MB at a time
        key = keys.key(context_hash)
        cached = self.store.get_items([key])
        found = _cached_results(self.store, key, cached[key]) if key in cached else None
        if found is not None:
            return found, [True] * len(records)
        try:
            results = await step.process_all(records, self.ctx_of(step))
        except Exception as exc:  # noqa: BLE001 - the whole barrier failed: every input
            results = [item_failure(exc) for _ in records]
        if len(results) != len(records):
            raise SynthloomError(
                f"step {step.name}: returned {len(results)} results for {len(records)} inputs")
        if not any(r.failed for r in results):
            self._put_results(step.name, key, results)
        return results, [False] * len(records)

    def _put_results(self, name: str, key: str, results: Sequence[ItemResult]) -> None:
        """One cache row for a barrier's results; above ``RESULTS_PER_ROW`` a row per part
        and a head row naming them, written last (a run killed before it finds no head: a
        miss, the parts written again)."""
        per_row = RESULTS_PER_ROW
        if len(results) <= per_row:
            self.store.put_item(key, name, {"results": [r.to_json() for r in results]})
            return
        parts = 0
        for start in range(0, len(results), per_row):
            self.store.put_item(_part_key(key, parts), name, {
                "results": [r.to_json() for r in results[start:start + per_row]]})
            parts += 1
        self.store.put_item(key, name, {"parts": parts, "per_row": per_row,
                                        "count": len(results)})

    # --- results into records, counted and logged ------------------------------------------

    def records_from(self, name: str, stats: StepStats, batch: list[dict[str, Any]],
                     results: Sequence[ItemResult], hits: Sequence[bool],
                     ) -> list[dict[str, Any]]:
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
                self.log.failed(record, name, result.error_class or "Error",
                                result.error_message or "")
                continue
            if result.dropped is not None:
                stats.dropped += 1
                self.log.dropped(record, name, result.dropped)
                continue
            children = [child_record(record, name, o) for o in result.outputs]
            stats.out += len(children)
            stats.expanded += bool(children)
            stats.kept += bool(children)
            out.extend(children)
        return out


class GlobalKey:
    """A global step's cache key, gathered while its input arrives: 16 bytes per record
    (its item key) instead of the record. Byte for byte the key of
    ``stable_hash("global", fingerprint, context_hash, [item keys])``, so runs made before
    it resume from their cache."""

    def __init__(self, step: GlobalStep, fingerprint: str) -> None:
        self.step = step
        self.fingerprint = fingerprint
        self._keys = bytearray()

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self._keys += bytes.fromhex(self.step.item_key(self.fingerprint, record, ""))

    def __len__(self) -> int:
        return len(self._keys) // _KEY_BYTES

    def key(self, context_hash: str) -> str:
        # stable_hash's canonical JSON, fed in pieces: '["global",FP,CTX,[' then '"KEY",'
        # per record (formatted by numpy, a chunk at a time) then ']]'.
        head = canonical_json_bytes(("global", self.fingerprint, context_hash, []))
        digest = hashlib.blake2b(digest_size=_KEY_BYTES)
        digest.update(head[:-2])
        keys = np.frombuffer(bytes(self._keys), dtype=np.uint8).reshape(-1, _KEY_BYTES)
        for start in range(0, len(keys), GLOBAL_KEY_BATCH):
            chunk = keys[start:start + GLOBAL_KEY_BATCH]
            text = np.empty((len(chunk), 2 * _KEY_BYTES + 3), dtype=np.uint8)
            text[:, 0] = text[:, -2] = ord('"')
            text[:, -1] = ord(",")
            text[:, 1:-2:2] = _HEX[chunk >> 4]
            text[:, 2:-2:2] = _HEX[chunk & 15]
            data = text.tobytes()
            digest.update(data if start + len(chunk) < len(keys) else data[:-1])
        digest.update(b"]]")
        return digest.hexdigest()


def _part_key(key: str, part: int) -> str:
    return stable_hash("global-part", key, part)


def _cached_results(store: RunStore, key: str, head: dict[str, Any],
                    ) -> Sequence[ItemResult] | None:
    """A cached barrier's results (None: a part is missing or unreadable, so a miss)."""
    if "parts" not in head:
        return _CachedResults([head["results"]], len(head["results"]))
    per_row, count = head["per_row"], head["count"]

    def part(p: int) -> list[dict[str, Any]] | None:
        row = store.get_items([_part_key(key, p)]).get(_part_key(key, p))
        want = min(per_row, count - p * per_row)
        return row["results"] if row is not None and len(row["results"]) == want else None

    # Every part there (read one at a time) before any is used: else a miss, recomputed.
    if any(part(p) is None for p in range(head["parts"])):
        return None

    def load(p: int) -> list[dict[str, Any]]:
        if (rows := part(p)) is None:
            raise SynthloomError(f"the cached results of a global step lost part {p} while "
                                 "they were read; rerun")
        return rows

    return _CachedResults(load, count, per_row)


class _CachedResults(Sequence[ItemResult]):
    """A cached barrier's results, made into :class:`ItemResult` a slice at a time as they
    are emitted (all at once: ~0.8 KB more per record beside the decoded JSON); stored in
    parts, a part is read when its first result is asked for."""

    def __init__(self, parts: list[list[dict[str, Any]]] | Callable[[int], list[dict[str, Any]]],
                 count: int, per_row: int | None = None) -> None:
        self._parts = parts
        self._count = count
        self._per_row = per_row or count or 1
        self._loaded: tuple[int, list[dict[str, Any]]] | None = None

    def __len__(self) -> int:
        return self._count

    def _part(self, part: int) -> list[dict[str, Any]]:
        if isinstance(self._parts, list):
            return self._parts[part]
        if self._loaded is None or self._loaded[0] != part:
            self._loaded = (part, self._parts(part))
        return self._loaded[1]

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        part, at = divmod(index, self._per_row)
        return ItemResult.from_cache(self._part(part)[at])


def source_record(step: str, item: Any) -> dict[str, Any]:
    """A source's item as a record; ``_meta.source`` names the document and where it came
    from (chunkers add the span; descendants inherit it)."""
    output = item if isinstance(item, Output) else Output(columns=item)
    record = make_record(output.columns, step=step, extra_meta=output.meta)
    meta = record[META]
    meta["source"] = {"id": meta["id"], **{k: meta[k] for k in SOURCE_KEYS if k in meta}}
    return record


def child_record(parent: dict[str, Any], step: str, output: Output) -> dict[str, Any]:
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


def inherited_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Provenance extras (file path, chunk span, retrieved document, demo ids) pass down to
    descendants; the core keys and step-local facts (finish_reason) do not."""
    return {k: v for k, v in meta.items() if k not in CORE_META and k not in LOCAL_META}


def _mark_resampled(results: list[ItemResult], bumps: list[int]) -> None:
    """A regenerated item's outputs: the sample index moves on by the bump (new record ids)
    and ``_meta.resample`` says how many times it was regenerated."""
    for result, bump in zip(results, bumps, strict=True):
        for output in result.outputs if bump else ():
            if output.columns or output.replace:
                output.sample_index = (output.sample_index or 0) + bump
                output.meta = {**output.meta, "resample": bump}


def _take(items: Iterator[Any], n: int) -> list[Any]:
    out = []
    for item in items:
        out.append(item)
        if len(out) >= n:
            break
    return out


def _timed_take(items: Iterator[Any], n: int) -> tuple[list[Any], float]:
    began = time.perf_counter()
    batch = _take(items, n)
    return batch, time.perf_counter() - began


