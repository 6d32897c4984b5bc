"""Reaching ``target`` final records although responses are generated and filtered after
selection: select more candidates than needed, in rank order, then keep the best ``target``
of those that survived.

- ``select_ranked``: ``select_per_topic`` (same round robin, same drop reasons) keeping
  ``ceil(target x overselect)`` candidates, each with its place in the selection order in
  ``rank_column`` (0 = first chosen).
- ``take_first``: keeps the ``target`` survivors with the lowest rank (the ones selection
  would have kept had the others never been candidates) and drops the rest as "beyond
  target". With fewer survivors than ``target`` it keeps them all and sets a run note (shown
  by the CLI, summary.json and report.html) saying how many are missing and why.

A pipeline cannot loop back to ask for more, so the refill pool is fixed up front; a note
that says the pool ran out names the setting that widens it.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
from pydantic import Field

from synthloom.core.context import RunContext
from synthloom.core.notes import set_note, step_note_key
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import GlobalStep, StepConfig
from synthloom.quality.topics import SelectConfig, SelectPerTopic, round_robin_order


class RankedSelectConfig(SelectConfig):
    #: Candidates kept = ceil(target x overselect): the spares that refill records lost
    #: after selection (responses cut off or too short).
    overselect: float = Field(default=1.5, ge=1.0)
    #: Column holding each kept record's place in the selection order.
    rank_column: str = "selection_rank"


@register_step
class SelectRanked(SelectPerTopic):
    """``select_per_topic`` with spare candidates and their selection order."""

    type_name = "select_ranked"
    version = "1"
    Config = RankedSelectConfig
    config: RankedSelectConfig

    def pool_size(self) -> int:
        return math.ceil(self.config.target * self.config.overselect)

    def select(self, records: list[dict[str, Any]]) -> list[ItemResult]:
        cfg = self.config
        base_config = SelectConfig(**cfg.model_dump(include=set(SelectConfig.model_fields)))
        base = SelectPerTopic(base_config.model_copy(update={"target": self.pool_size()}))
        results = base.select(records)  # the round robin's keep/drop, its reasons
        for place, i in enumerate(self.order(records)):
            if results[i] is not None and results[i].outputs:
                results[i] = ItemResult(outputs=[Output(columns={cfg.rank_column: place})])
        return results

    def order(self, records: list[dict[str, Any]]) -> list[int]:
        """Indices of the records that have a topic, in the round robin's order: its first
        ``k`` are what ``select_per_topic`` keeps with ``target: k`` (the same keys: rank in
        the topic by unscored last, best score, seeded tie order; then by that rank)."""
        cfg = self.config
        n = len(records)
        idx_list: list[int] = []
        codes: dict[Any, int] = {}
        topic_list: list[int] = []
        scores = np.zeros(n, dtype=np.float64)
        unscored = np.zeros(n, dtype=bool)
        for i, record in enumerate(records):
            if cfg.topic_column not in record:
                continue
            idx_list.append(i)
            topic_list.append(codes.setdefault(record[cfg.topic_column], len(codes)))
            score = self._score(record)
            if score is None:
                unscored[i] = True
            else:
                scores[i] = score
        if not idx_list:
            return []
        idx = np.asarray(idx_list, dtype=np.int64)
        topic = np.asarray(topic_list, dtype=np.int64)
        order, _ = round_robin_order(idx, topic, scores, unscored, n, cfg.seed)
        return idx[order].tolist()


class TakeFirstConfig(StepConfig):
    #: How many records to keep.
    target: int = Field(ge=0)
    #: Column to order by, lowest first (``select_ranked``'s rank column).
    rank_column: str = "selection_rank"
    #: The selecting step (also listed in ``context``): with it the shortfall note counts the
    #: candidates lost between selection and here.
    candidates: str | None = None
    #: The recipe setting that widens the candidate pool, named in the shortfall note.
    widen_hint: str = "raise the selecting step's overselect"


@register_step
class TakeFirst(GlobalStep):
    """Keeps the ``target`` records with the lowest ``rank_column``."""

    type_name = "take_first"
    Config = TakeFirstConfig
    config: TakeFirstConfig

    def reads(self) -> list[str]:
        return [self.config.rank_column]

    async def process_all(self, records: list[dict[str, Any]], ctx: RunContext,
                          ) -> list[ItemResult]:
        results = await asyncio.to_thread(self.take, records)
        set_note(ctx.run_dir, step_note_key(self.name), self.shortfall(records, ctx))
        return results

    def take(self, records: list[dict[str, Any]]) -> list[ItemResult]:
        cfg = self.config
        ranked: list[tuple[float, int]] = []
        results: list[ItemResult | None] = [None] * len(records)
        for i, record in enumerate(records):
            rank = record.get(cfg.rank_column)
            if isinstance(rank, bool) or not isinstance(rank, int | float):
                results[i] = ItemResult.failure(KeyError(
                    f"record has no numeric {cfg.rank_column!r} (run select_ranked first)"))
                continue
            ranked.append((float(rank), i))
        ranked.sort()
        for place, (rank, i) in enumerate(ranked):
            if place < cfg.target:
                results[i] = ItemResult(outputs=[Output(columns={})])
            else:
                results[i] = ItemResult.drop(
                    f"beyond target: {cfg.target} better-ranked records survived "
                    f"({cfg.rank_column} {rank:g})")
        return results  # type: ignore[return-value]

    def shortfall(self, records: list[dict[str, Any]], ctx: RunContext) -> str | None:
        """The note when fewer than ``target`` records survived; None when it was reached."""
        cfg = self.config
        have = sum(1 for r in records if isinstance(r.get(cfg.rank_column), int | float))
        if have >= cfg.target:
            return None
        missing = cfg.target - have
        pool = ""
        if cfg.candidates and cfg.candidates in ctx.context:
            offered = len(ctx.context[cfg.candidates])
            pool = (f"; {cfg.candidates} offered {offered} candidates and {offered - have} "
                    "of them were dropped on the way (dropped.jsonl has each reason)")
        return (f"{self.name}: {have} final records, {missing} short of target {cfg.target}: "
                f"the selected candidates ran out{pool}. To refill from more, "
                f"{cfg.widen_hint}.")
