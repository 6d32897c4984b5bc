"""``calibrate_levels``: search a logic task's knob levels until the band's yield is reached.

Hand-set levels are a guess per task and per target model: level 3 of one task is trivial for
a model that fails level 1 of another. For each input record's ``task`` this step generates
``per_level`` fresh items at a level (``make_item``, seeded; each re-checked by the task's
verifier), calibrates them as ``calibrate`` does, and computes the level's yield (the share
inside the band). It stops at the first level whose yield reaches ``target_yield``; otherwise it
moves one level harder when more items were too easy than too hard, else one level easier, never
revisiting a level. Every calibrated item of every level tried is an output, so a
``calibration_band`` step after it drops the out-of-band ones with their reasons and its report
shows each level tried (level -> pass rate -> kept). Give it one record per task (the
``logic_tasks`` source with ``count: 1``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from synthloom.core.context import ItemContext
from synthloom.core.records import Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, StepKind
from synthloom.methods.calibrate.steps import Calibrate, CalibrateConfig, band_reason
from synthloom.methods.logic.source import item_seed
from synthloom.verify.logic import LEVELS, TASKS, check_record, make_item

#: Seed stride between the generated items of one search (each item's k + strong samples).
ITEM_SEED_STRIDE = 20_000


class LevelsConfig(CalibrateConfig):
    levels: list[int] = Field(default=list(LEVELS), description="Levels the search may try.")
    start: int = Field(default=3, description="The level tried first.")
    per_level: int = Field(default=8, ge=1, le=200, description="Items calibrated per level.")
    target_yield: float = Field(default=0.5, gt=0, le=1,
                                description="Stop at the first level with this share in band.")
    target_above: float | None = Field(default=0.0, description="The band (as "
                                                                "calibration_band's).")
    target_below: float | None = Field(default=1.0, description="The band's upper end (as "
                                                                "calibration_band's).")
    strong_solves: bool = Field(default=False, description="In band only when the strong model "
                                "solves it too (as calibration_band's).")
    seed: int = Field(default=0, description="Generator seed of the items.")
    knobs: dict[str, dict[str, Any]] = Field(default_factory=dict,
                                             description="Knob overrides per task.")

    @model_validator(mode="after")
    def _start_in_levels(self) -> LevelsConfig:
        if self.start not in self.levels:
            raise ValueError(f"start level {self.start} is not in levels {self.levels}")
        return self


@register_step
class CalibrateLevels(Calibrate, ExpandStep):
    """Per task: levels tried until one keeps ``target_yield`` of its items in the band; every
    calibrated item out."""

    type_name = "calibrate_levels"
    kind = StepKind.EXPAND
    _wrap = ExpandStep._wrap
    Config = LevelsConfig
    config: LevelsConfig

    def _items(self, task: str, level: int) -> list[dict[str, Any]]:
        cfg, items, seen = self.config, [], set()
        for index in range(cfg.per_level):
            for attempt in range(20):  # a repeated question is drawn again (as logic_tasks)
                seed = item_seed(cfg.seed, task, level * 100_000 + index, attempt)
                item = make_item(task, level, seed, cfg.knobs.get(task))
                if item["question"] not in seen:
                    break
            seen.add(item["question"])
            if check_record(item) is None:  # only verified items are calibrated
                items.append({**item, "index": index, "verified": True})
        return items

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> list[Output]:
        cfg = self.config
        task = record.get("task")
        if task not in TASKS:
            raise ValueError(f"calibrate_levels searches logic tasks; {task!r} is not one")
        outputs: list[Output] = []
        tried: list[dict[str, Any]] = []
        level, n = cfg.start, 0
        while True:
            kept = easy = hard = 0
            items = self._items(task, level)
            for item in items:
                out = await self.calibrated(item, ctx, n * ITEM_SEED_STRIDE)
                n += 1
                why = band_reason(out.columns, cfg)
                kept += why is None
                easy += bool(why and why.startswith("too easy"))
                hard += bool(why and why.startswith("too hard"))
                out.columns = {**item, **out.columns, "search_level": level}
                out.replace = True
                outputs.append(out)
            share = kept / len(items) if items else 0.0
            tried.append({"level": level, "items": len(items), "yield": round(share, 4)})
            step = 1 if easy >= hard else -1
            nxt = level + step
            if share >= cfg.target_yield or nxt not in cfg.levels or \
                    any(t["level"] == nxt for t in tried):
                break
            level = nxt
        chosen = max(tried, key=lambda t: t["yield"])["level"]  # the first best level
        for out in outputs:  # every item says where the search went and what it chose
            out.columns["search_tried"] = tried
            out.columns["search_chosen"] = chosen
        return outputs
