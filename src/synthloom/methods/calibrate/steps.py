"""``calibrate`` and ``calibration_band``: difficulty measured by models, not set by hand.

SynLogic (arXiv 2505.19641) bounds each task's difficulty between two models: an item is kept
when a strong reasoning model can solve it (pass@k > 0) and a chat model mostly cannot. Here:

* ``calibrate`` (map) asks the ``target`` model ``k`` times per item (seeds ``seed + i``, each
  sample cached on its own), and optionally a ``strong`` model ``strong_k`` times, and grades
  every sample with the item's own verifier (:func:`synthloom.verify.rewards.check`: a logic
  task's verifier, reasoning-gym's scorer at 1.0, or math answer equivalence against ``gold``
  / ``answer``). It records passes, pass rate and pass@k per model, the item's task and knob
  level. Nothing is dropped here: an item with no verifier is a counted failure.
* ``calibration_band`` (global) keeps the items inside a band - by default the target's pass
  rate strictly between 0 and 1 (the items that carry a learning signal for RL), or SynLogic's
  shape (``strong_solves: true``, ``target_above: null``, ``target_below: 0.5``) - and drops
  every other item with its reason ("too easy: target solved 4/4"). It writes the report
  (``RUN/calibration.json`` and ``.md``): per task and level, items, mean pass rates, kept and
  yield; ``synthloom run`` prints it at the end.

Both work with any backend: the models are the recipe's named models (``models:`` /
``--model-for``), None meaning the step's own.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import GlobalStep, MapStep, StepConfig
from synthloom.llm.types import LLMResponse
from synthloom.methods.calibrate.report import band_report, write_report
from synthloom.prompting.templated import TemplatedStep
from synthloom.verify.rewards import check, ground_truth

#: Seed offset of the strong model's samples: apart from the target's ``0..k-1``.
STRONG_SEED_OFFSET = 10_000


class CalibrateConfig(StepConfig):
    template: str = Field(default="calibrate/prompts/solve.jinja",
                          description="Prompt (Jinja, variables: the record's columns).")
    target_model: str | None = Field(
        default=None, description="The named model calibrated against (recipe ``models:``); "
                                  "None: the step's own model.")
    k: int = Field(default=4, ge=1, le=64, description="Samples per item from the target.")
    strong_model: str | None = Field(
        default=None, description="A named strong model (SynLogic: a reasoning model whose "
                                  "pass@k > 0 proves the item solvable); None: not sampled.")
    strong_k: int = Field(default=0, ge=0, le=64,
                          description="Samples per item from the strong model (0: none).")
    temperature: float = Field(default=0.7, description="Sampling temperature (> 0: the k "
                                                        "samples must differ).")
    max_tokens: int = Field(default=1024, ge=1, description="Token cap per sample; a cut-off "
                                                            "sample is a failed one.")
    keep_samples: bool = Field(default=False, description="Also keep every sample's text "
                                                          "(``target_samples``, "
                                                          "``strong_samples``): for audits.")
    enabled: bool = Field(default=True, description="False: records pass through unchanged, "
                                                    "no calls (a recipe switch).")

    wiring: ClassVar[frozenset[str]] = StepConfig.wiring | {"target_model", "strong_model"}


def task_of(record: dict[str, Any], data_source: str) -> str:
    """The report's task: the record's ``task`` (logic tasks, ``gym/<dataset>``), else its
    verifier's data source (``synthloom/math``)."""
    task = record.get("task")
    return task if isinstance(task, str) and task else data_source


def level_of(record: dict[str, Any]) -> str:
    """The knob level an item was made at: ``difficulty``, else reasoning-gym's config, else
    "-" (one level)."""
    level = record.get("difficulty")
    if level is None and record.get("gym_config") is not None:
        level = json.dumps(record["gym_config"], sort_keys=True, separators=(",", ":"))
    return "-" if level is None else str(level)


@register_step
class Calibrate(TemplatedStep, MapStep):
    """k graded samples per item from the target model (and optionally a strong one)."""

    type_name = "calibrate"
    uses_llm = True
    # A cut-off sample is a failed sample: it stays in the pass rate, never drops the item.
    cut_off_is_data = True
    Config = CalibrateConfig
    config: CalibrateConfig

    def model_names(self) -> list[str]:
        cfg = self.config
        strong = cfg.strong_model if cfg.strong_k else None
        return [*super().model_names(), *filter(None, [cfg.target_model, strong])]

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        # The models sampled enter by their ids (their names are wiring).
        cfg = self.config
        ids: dict[str, Any] = {}
        if cfg.enabled:
            target = ctx.llm_for(cfg.target_model) if cfg.target_model else ctx.llm
            ids["target"] = target.model_id if target is not None else None
            if cfg.strong_k:
                strong = ctx.llm_for(cfg.strong_model) if cfg.strong_model else ctx.llm
                ids["strong"] = strong.model_id if strong is not None else None
        return {"templates": super().extra_fingerprint(ctx), "models": ids}

    async def _sample(self, ctx: ItemContext, record: dict[str, Any], truth: dict[str, Any],
                      n: int, model: str | None, offset: int) -> tuple[list[bool],
                                                                       list[LLMResponse]]:
        responses = await self.ask_n(ctx, record, n, model=model, seed_offset=offset)
        return [check(r.text, truth) is None for r in responses], responses

    async def calibrated(self, record: dict[str, Any], ctx: ItemContext,
                         offset: int = 0) -> Output:
        """The record's calibration columns (seeds from ``ctx.seed + offset``)."""
        cfg = self.config
        data_source, truth = ground_truth(record)  # ValueError: no verifier -> a failure
        passes, responses = await self._sample(ctx, record, truth, cfg.k, cfg.target_model,
                                               offset)
        columns: dict[str, Any] = {
            "calibration_task": task_of(record, data_source),
            "calibration_level": level_of(record),
            **_stats("target", passes)}
        if cfg.keep_samples:
            columns["target_samples"] = [r.text for r in responses]
        usage = sum((r.usage for r in responses[1:]), responses[0].usage)
        meta: dict[str, Any] = {"target_model": responses[0].model,
                                "cut_off_samples": sum(r.finish_reason == "length"
                                                       for r in responses)}
        if cfg.strong_k:
            strong, more = await self._sample(ctx, record, truth, cfg.strong_k,
                                              cfg.strong_model, offset + STRONG_SEED_OFFSET)
            columns.update(_stats("strong", strong))
            if cfg.keep_samples:
                columns["strong_samples"] = [r.text for r in more]
            usage = sum((r.usage for r in more), usage)
            meta["strong_model"] = more[0].model
        return self.output(responses[0], columns, usage=usage.to_json(), meta=meta,
                           sample_index=0)

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output:
        if not self.config.enabled:
            return Output(columns={})
        return await self.calibrated(record, ctx)


def _stats(side: str, passes: list[bool]) -> dict[str, Any]:
    solved = sum(passes)
    return {f"{side}_k": len(passes), f"{side}_passes": solved,
            f"{side}_pass_rate": round(solved / len(passes), 6),
            # pass@k with n = k samples: solved at least once.
            f"{side}_pass_at_k": 1.0 if solved else 0.0}


class BandConfig(StepConfig):
    target_above: float | None = Field(
        default=0.0, description="Keep items whose target pass rate is strictly above this "
                                 "(None: no lower bound).")
    target_below: float | None = Field(
        default=1.0, description="... and strictly below this (None: no upper bound).")
    strong_solves: bool = Field(
        default=False, description="Also require the strong model's pass@k > 0 (SynLogic: the "
                                   "item is solvable); needs ``calibrate`` with strong_k > 0.")
    report: str = Field(default="calibration", description="Report file stem in the run "
                                                           "folder (.json and .md).")
    enabled: bool = Field(default=True, description="False: every record kept, no report.")


def band_reason(record: dict[str, Any], cfg: BandConfig) -> str | None:
    """None when the item is inside the band, else why not (the drop reason)."""
    if "target_pass_rate" not in record:
        return "not calibrated (no target_pass_rate: run the calibrate step first)"
    rate, solved, k = record["target_pass_rate"], record["target_passes"], record["target_k"]
    if cfg.target_below is not None and rate >= cfg.target_below:
        return f"too easy: target solved {solved}/{k} (pass rate {rate:.2f} >= {cfg.target_below})"
    if cfg.target_above is not None and rate <= cfg.target_above:
        return f"too hard: target solved {solved}/{k} (pass rate {rate:.2f} <= {cfg.target_above})"
    if cfg.strong_solves:
        if "strong_pass_at_k" not in record:
            return "no strong samples (calibrate with strong_k > 0)"
        if not record["strong_pass_at_k"]:
            return f"unsolved: strong model solved 0/{record['strong_k']}"
    return None


@register_step
class CalibrationBand(GlobalStep):
    """Keeps the items inside the pass-rate band, drops the rest with the reason, and writes the
    per-task report (level -> pass rate -> kept)."""

    type_name = "calibration_band"
    Config = BandConfig
    config: BandConfig

    def reads(self) -> list[str]:
        return ["calibration_task", "calibration_level", "target_k", "target_passes",
                "target_pass_rate", "target_pass_at_k", "strong_k", "strong_passes",
                "strong_pass_rate", "strong_pass_at_k"]

    async def process_all(self, records: list[dict[str, Any]],
                          ctx: RunContext) -> list[ItemResult]:
        cfg = self.config
        if not cfg.enabled:
            return [ItemResult(outputs=[Output(columns={})]) for _ in records]
        reasons = [band_reason(r, cfg) for r in records]
        write_report(ctx.run_dir, cfg.report, band_report(records, reasons, self.name,
                                                         cfg.model_dump(mode="json")))
        return [ItemResult(outputs=[Output(columns={})]) if why is None else ItemResult.drop(why)
                for why in reasons]
