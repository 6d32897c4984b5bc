"""``sample_records``: keep a seeded random sample of the records (a count or a fraction).

SynthQuestions made preference data for 100K of its 1M instructions, drawn at random; the
recipe's ``preference_sample`` puts this step before ``preference_pairs``.

Membership is decided by ``hash(run seed, step seed, record id)``, never by input order or a
process's random state: the same records are drawn on every rerun and executor, and a grown
input keeps the earlier draws (a fraction is a per-record threshold; a count keeps the records
with the smallest hashes, a bottom-k sample).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthloom.core.context import RunContext
from synthloom.core.fingerprint import stable_hash
from synthloom.core.records import META, ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import GlobalStep, StepConfig


class SampleConfig(StepConfig):
    #: A fraction in (0, 1] (a float: 0.1 keeps about 10 %, 1.0 keeps all) or a count of
    #: records (an int >= 0: exactly that many, or all when fewer).
    size: int | float = Field(default=0.1)
    #: Draw another sample with the same run seed.
    seed: int = 0


def draw(record_id: str, run_seed: int, seed: int) -> float:
    """The record's uniform draw in [0, 1)."""
    return int(stable_hash("sample", run_seed, seed, record_id, length=16), 16) / 2**64


@register_step
class SampleRecords(GlobalStep):
    type_name = "sample_records"
    Config = SampleConfig
    config: SampleConfig

    def reads(self) -> list[str]:
        return []  # membership depends on record ids only

    async def process_all(self, records: list[dict[str, Any]], ctx: RunContext,
                          ) -> list[ItemResult]:
        size = self.config.size
        if isinstance(size, float) and not 0.0 < size <= 1.0:
            raise ValueError(f"step {self.name}: a fraction must be in (0, 1], got {size}")
        if isinstance(size, int) and size < 0:
            raise ValueError(f"step {self.name}: a count must be >= 0, got {size}")
        draws = [draw(r[META]["id"], ctx.seed, self.config.seed) for r in records]
        if isinstance(size, float):
            keep = [d < size for d in draws]
            rule = f"fraction {size}"
        else:
            chosen = set(sorted(range(len(records)), key=draws.__getitem__)[:size])
            keep = [i in chosen for i in range(len(records))]
            rule = f"{size} of {len(records)}"
        return [ItemResult(outputs=[Output(columns={})]) if k
                else ItemResult.drop(f"not in the random sample ({rule}, draw {d:.3f})")
                for k, d in zip(keep, draws, strict=True)]
