"""``kg_irt``: KAQG's IRT-style item difficulty, calibrated from a model's answers.

KAQG (arXiv 2505.07618) validates generated items with Item Response Theory: an item's
difficulty is read from how respondents answer it. Its repository (mfshiu/kaqg) has no IRT fit
in code (its generator controls difficulty by weighted item features, see ``levels.py``), so
this follows the paper, with the calibrate step's approach (``methods/calibrate``): the
``model`` (a named model, or the step's own) answers each question ``k`` times without the
path (seeds ``seed + i``, each sample cached on its own); each answer is graded against the
path's answer (a number by value, a name by its words); ``irt_difficulty`` is the 1PL
difficulty for c right of k at ability 0, ``ln((k - c + 0.5) / (c + 0.5))``, and
``irt_level`` its band (easy < -1 <= medium <= 1 < hard). Nothing is dropped here: set
``keep_levels`` to keep only some bands (the others drop with their numbers).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.methods.kg.levels import irt_difficulty, irt_level
from synthloom.methods.kg.reasoning import reaches
from synthloom.prompting.templated import TemplatedStep


class IrtConfig(StepConfig):
    #: Jinja prompt template the respondent answers the question with (without the path).
    template: str = "kg/prompts/answer.jinja"
    #: The respondent model (recipe ``models:``); None: the step's own.
    respondent: str | None = None
    #: Answers per question (0: off, records pass through).
    k: int = Field(default=4, ge=0, le=64)
    #: Sampling temperature of the answers (above 0, so the k answers can differ).
    temperature: float = 0.7  # > 0: the k answers must be able to differ
    #: Most tokens of one answer.
    max_tokens: int = 96
    #: Keep only items in these bands (easy / medium / hard); None: keep every item.
    keep_levels: list[str] | None = None
    #: False: records pass through unchanged, no calls (a recipe switch).
    enabled: bool = True

    wiring: ClassVar[frozenset[str]] = StepConfig.wiring | {"respondent"}


@register_step
class KgIrt(TemplatedStep, MapStep):
    """Adds ``irt_correct``, ``irt_k``, ``irt_pass_rate``, ``irt_difficulty``, ``irt_level``."""

    type_name = "kg_irt"
    uses_llm = True
    # A cut-off answer is a wrong answer: it stays in the count, never drops the item.
    cut_off_is_data = True
    Config = IrtConfig
    config: IrtConfig

    def reads(self) -> list[str]:
        return sorted({"question", "answer", *self.template().variables})

    def model_names(self) -> list[str]:
        return [*super().model_names(), *filter(None, [self.config.respondent])]

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        # The respondent enters by its id (its name is wiring).
        cfg = self.config
        llm = ctx.llm_for(cfg.respondent) if cfg.respondent else ctx.llm
        return {"templates": super().extra_fingerprint(ctx),
                "respondent": llm.model_id if llm is not None else None}

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        if not cfg.enabled or cfg.k == 0:
            return Output(columns={})
        gold = str(record.get("answer") or "")
        if not gold.strip() or not str(record.get("question") or "").strip():
            return ItemResult.drop("record has no question and answer to calibrate")
        replies = await self.ask_n(ctx, record, cfg.k, model=cfg.respondent)
        correct = sum(reaches(r.text, gold) is None for r in replies)
        b = irt_difficulty(correct, cfg.k)
        level = irt_level(b)
        if cfg.keep_levels is not None and level not in cfg.keep_levels:
            return ItemResult.drop(f"IRT level {level} (b={b}, {correct}/{cfg.k} right) not in "
                                   f"{cfg.keep_levels}")
        usage = sum((r.usage for r in replies[1:]), replies[0].usage)
        return Output(columns={"irt_correct": correct, "irt_k": cfg.k,
                               "irt_pass_rate": round(correct / cfg.k, 3),
                               "irt_difficulty": b, "irt_level": level},
                      meta={"respondent": replies[0].model}, model=replies[0].model,
                      template_hash=self.template().hash, usage=usage.to_json())
