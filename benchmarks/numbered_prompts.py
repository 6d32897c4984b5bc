"""A source of N numbered prompts for the throughput benchmarks (orchestration, peers)."""

from __future__ import annotations

from typing import Any

from synthloom.core.steps import SourceStep, StepConfig


class PromptsConfig(StepConfig):
    count: int
    column: str = "q"


class Prompts(SourceStep):
    type_name = "bench_prompts"
    Config = PromptsConfig

    def read(self, ctx: Any):
        for i in range(self.config.count):
            yield {self.config.column: f"question number {i}"}
