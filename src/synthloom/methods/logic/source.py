"""The ``logic_tasks`` source and the ``verify_logic`` step: puzzles from the task registry.

The source interleaves the tasks (item 0 of every task, then item 1, ...), so ``--limit`` keeps
a mix; difficulty levels go round in turn per task. Each item is made by
:func:`synthloom.verify.logic.make_item` from ``(task, difficulty, seed)`` alone: the record's
``seed`` regenerates it exactly. ``verify_logic`` re-checks every stored answer with its task's
verifier (and, for tasks that promise one answer, counts solutions again up to two).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from pydantic import field_validator

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.fingerprint import stable_hash
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, SourceFailure, SourceStep, StepConfig
from synthloom.verify.logic import (
    TASKS,
    check_record,
    make_item,
    parse_levels,
    parse_tasks,
)


class LogicTasksConfig(StepConfig):
    #: "all", a comma-separated string, or a list of task names.
    tasks: str | list[str] = "all"
    #: Items per task.
    count: int = 100
    #: A level 1-5, "mix" (levels in turn), a range "2-4", or a list.
    difficulty: int | str | list[int] = "mix"
    #: Base seed of the generators: each item's seed derives from it, the task and the index.
    seed: int = 0
    #: Knob overrides per task, e.g. {"sudoku": {"blanks": 50}} (see docs/verify.md).
    knobs: dict[str, dict[str, Any]] = {}

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, value: Any) -> Any:
        parse_tasks(value)  # raises ValueError naming the known tasks
        return value

    @field_validator("difficulty")
    @classmethod
    def _levels(cls, value: Any) -> Any:
        parse_levels(value)
        return value

    @field_validator("knobs")
    @classmethod
    def _knobs(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for task, knobs in value.items():
            if task not in TASKS:
                raise ValueError(f"knobs: unknown logic task {task!r}")
            accepted = set(inspect.signature(TASKS[task].generate).parameters) - {"rng"}
            unknown = set(knobs) - accepted
            if unknown:
                raise ValueError(f"knobs: {task} has no knob {sorted(unknown)}; its knobs: "
                                 f"{', '.join(sorted(accepted))}")
        return value

    @field_validator("count")
    @classmethod
    def _count(cls, value: int) -> int:
        if value < 0:
            raise ValueError("count must be >= 0")
        return value


def item_seed(base: int, task: str, index: int, attempt: int) -> int:
    """A 32-bit seed per (run seed, task, index, attempt): stable across machines."""
    return int(stable_hash("logic-seed", base, task, index, attempt)[:8], 16)


@register_step
class LogicTasks(SourceStep):
    """``count`` items per task: task, question, answer, answer_format, difficulty, seed, index
    and the task's own fields. A question already drawn for the task is drawn again with the
    next seed (up to 20 times; small spaces, like 3-letter anagrams, run out)."""

    type_name = "logic_tasks"
    Config = LogicTasksConfig
    config: LogicTasksConfig

    def read(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        cfg = self.config
        tasks = parse_tasks(cfg.tasks)
        levels = parse_levels(cfg.difficulty)
        seen: dict[str, set[str]] = {t: set() for t in tasks}
        for index in range(cfg.count):
            for task in tasks:
                level = levels[index % len(levels)]
                try:
                    for attempt in range(20):
                        seed = item_seed(cfg.seed, task, index, attempt)
                        item = make_item(task, level, seed, cfg.knobs.get(task))
                        if item["question"] not in seen[task]:
                            break
                except ValueError as exc:  # knobs the generator cannot satisfy: counted
                    yield SourceFailure(where=f"{task} #{index} (difficulty {level})",
                                        error_class=type(exc).__name__, message=str(exc))
                    continue
                seen[task].add(item["question"])
                item["index"] = index
                yield item


class VerifyLogicConfig(StepConfig):
    #: Also count solutions (up to 2) for tasks that promise exactly one answer.
    check_unique: bool = True


@register_step
class VerifyLogic(MapStep):
    type_name = "verify_logic"
    Config = VerifyLogicConfig
    cpu_bound = True  # solvers in pure Python: batches go to the process pool
    config: VerifyLogicConfig

    def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | Output:
        reason = check_record(record, self.config.check_unique)
        if reason is not None:
            return ItemResult.drop(f"not verified: {reason}")
        return Output(columns={"verified": True})
