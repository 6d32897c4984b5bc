"""Small steps for engine tests. In an importable module so the process pool can load them."""

from __future__ import annotations

import os
from typing import Any

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.steps import GlobalStep, MapStep, StepConfig


class UpperConfig(StepConfig):
    column: str = "text"


class UpperInPool(MapStep):
    """CPU-bound map: upper-cases a column and records the worker's pid."""

    type_name = "test_upper"
    cpu_bound = True
    Config = UpperConfig

    def process(self, record: dict[str, Any], ctx: ItemContext) -> Output:
        if record[self.config.column] == "boom":
            raise ValueError("cannot upper-case boom")
        return Output(columns={"upper": record[self.config.column].upper(), "pid": os.getpid()})


class ExactDedup(GlobalStep):
    """Global: keeps the first record of each distinct ``text``, drops the rest with a reason."""

    type_name = "test_exact_dedup"

    async def process_all(self, records: list[dict[str, Any]], ctx: RunContext) -> list[ItemResult]:
        first: dict[str, str] = {}
        results = []
        for record in records:
            text = record.get("text")
            if text in first:
                results.append(ItemResult.drop(f"duplicate of {first[text]}"))
            else:
                first[text] = record["_meta"]["id"]
                results.append(ItemResult(outputs=[Output(columns={})]))
        return results


class CountContext(MapStep):
    """Map with a ``context:`` input: records how many records the context node produced."""

    type_name = "test_count_context"

    def process(self, record: dict[str, Any], ctx: ItemContext) -> Output:
        return Output(columns={
            "context_size": sum(len(v) for v in ctx.context.values()),
            "context_sizes": {name: len(ctx.context[name]) for name in self.config.context},
        })
