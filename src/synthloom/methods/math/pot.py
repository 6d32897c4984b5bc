"""Program of thought: run the model's program in the sandbox, compare its output with gold.

The ``generate`` step writes the program (``methods/math/prompts/pot_program.jinja``); the
``pot_execute`` step takes the code block out of the completion, runs it with
:func:`synthloom.verify.sandbox.run_python` (no network, limits, throw-away directory), reads
the answer from the last line it printed and keeps the item only when it equals the gold
answer (``verified: true``). Everything else is dropped with the reason: no code, the
program's error or timeout, or the wrong answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.verify.answers import code_block, strip_reasoning
from synthloom.verify.math_answers import answers_equal, extract_answer
from synthloom.verify.sandbox import SandboxLimits, run_python


class PotExecuteConfig(StepConfig):
    #: Column holding the model's completion (a ```python block, or bare code).
    column: str = "program_text"
    #: Column with the gold final answer the program's output must equal.
    gold: str = "gold"
    #: Wall-clock limit of one sandboxed run, in seconds.
    timeout_s: float = 5.0
    #: Memory limit of one sandboxed run, in MiB.
    memory_mb: int = 256
    #: Sandboxes running at once (each is a process).
    concurrency: int = 4
    #: Keep wrong or failing programs too (``verified: false``) instead of dropping them.
    keep_incorrect: bool = False


def extract_code(text: str) -> str | None:
    """The first fenced Python (or untagged) block (the shared reader,
    :func:`synthloom.verify.answers.code_block`), else the text itself when it looks like
    Python."""
    block = code_block(text)
    if block is not None:
        return block.strip()
    stripped = strip_reasoning(text).strip()
    return stripped if "print(" in stripped else None


def printed_answer(stdout: str) -> str | None:
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1]
    return last if len(last) <= 60 else extract_answer(last)


@register_step
class PotExecute(MapStep):
    type_name = "pot_execute"
    Config = PotExecuteConfig
    config: PotExecuteConfig
    version = "1"

    def setup(self, ctx: RunContext) -> None:
        self._gate: asyncio.Semaphore | None = None

    def reads(self) -> list[str]:
        return [self.config.column, self.config.gold]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | Output:
        cfg = self.config
        if getattr(self, "_gate", None) is None:
            self._gate = asyncio.Semaphore(cfg.concurrency)
        gold = str(record.get(cfg.gold, ""))
        code = extract_code(str(record.get(cfg.column, "")))
        if code is None:
            return self._reject("no code in the completion", {"program": None})
        limits = SandboxLimits(timeout_s=cfg.timeout_s, memory_mb=cfg.memory_mb,
                               output_bytes=8000)
        async with self._gate:
            result = await run_python(code, limits)
        columns: dict[str, Any] = {
            "program": code, "program_status": result.status,
            "program_stdout": result.stdout[-2000:], "predicted": None,
        }
        if result.status != "ok":
            tail = (result.stderr.strip().splitlines() or [result.reason])[-1][:200]
            return self._reject(f"program {result.status}: {tail}", columns)
        predicted = printed_answer(result.stdout)
        columns["predicted"] = predicted
        if not answers_equal(predicted, gold):
            return self._reject(f"program printed {predicted!r}, gold is {gold!r}", columns)
        return Output(columns={**columns, "verified": True})

    def _reject(self, reason: str, columns: dict[str, Any]) -> ItemResult | Output:
        if self.config.keep_incorrect:
            return Output(columns={**columns, "verified": False, "reject_reason": reason})
        return ItemResult.drop(reason)
