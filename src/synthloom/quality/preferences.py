"""Preference pairs by West-of-N: sample N answers per prompt, score each, best vs worst.

``preference_pairs`` is a map step: one prompt in, one pair out in TRL's DPO fields (``prompt``,
``chosen``, ``rejected``) plus ``chosen_score``, ``rejected_score``, ``margin`` and every
candidate's total, or a drop whose reason says why there is no pair (a tie, a margin below
``min_margin``, fewer than two usable answers). Answers are scored by the rubric judge
(schema-constrained, validated per criterion) or taken from existing columns (``responses`` +
``score_column``). An answer the judge cannot score is left out of the comparison and counted;
when fewer than two scored answers remain the item fails (and is retried on the next run).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError, SynthloomError
from synthloom.core.executor import derive_seed
from synthloom.core.fingerprint import stable_hash
from synthloom.core.models import DEFAULT_MODEL
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.llm.types import Usage
from synthloom.prompting.templated import TemplatedStep
from synthloom.quality.judges import JudgeOptions, RubricJudge, column_value


class PreferencePairsConfig(StepConfig):
    #: Column holding the prompt (becomes the DPO ``prompt`` field).
    prompt: str = "instruction"
    #: Template for sampling answers; it sees the record's columns and ``prompt``.
    template: str = "quality/prompts/preference_response.jinja"
    #: Answers sampled per prompt (the best and worst scored make the pair).
    n: int = Field(default=4, ge=2)
    #: Sampling temperature of the answers.
    temperature: float = 0.9
    #: Nucleus sampling (top_p) of the answers.
    top_p: float = 1.0
    #: Most tokens of one answer.
    max_tokens: int = 512
    #: Column with a list of existing answers: no sampling.
    responses: str | None = None
    #: Column with their scores (numbers or score objects with ``total``): no judging.
    score_column: str | None = None
    #: The rubric judge that scores each answer (see ``judge_rubric``).
    judge: JudgeOptions = Field(default_factory=lambda: JudgeOptions(rubric="ultrafeedback"))
    #: Pairs whose best and worst totals differ by less than this are dropped (None: 1.0 on
    #: the judge's totals, 0 on reward-model scores, whose scale is the model's own).
    min_margin: float | None = None
    #: A named model (recipe ``models:``) that scores the answers: a reward model
    #: (``reward:PATH``), in place of the rubric judge. The answers are still sampled by the
    #: step's own model. When the step's own model is a reward model, it scores the given
    #: ``responses`` (it cannot sample them).
    reward_model: str | None = None
    #: Sampled answers cut off at max_tokens (finish_reason ``length``) are no candidates.
    exclude_truncated: bool = True


@register_step
class PreferencePairs(TemplatedStep, MapStep):
    """West-of-N: the best and the worst of N scored answers become chosen / rejected."""

    type_name = "preference_pairs"
    uses_llm = True
    Config = PreferencePairsConfig
    config: PreferencePairsConfig

    def setup(self, ctx: RunContext) -> None:
        cfg = self.config
        if cfg.score_column and not cfg.responses:
            raise RecipeError(f"step {self.name}: score_column needs responses (the column of "
                              "the answers those scores belong to)")
        super().setup(ctx)
        self._reward = self._reward_client(ctx)
        self._judge = (None if cfg.score_column or self._reward is not None
                       else RubricJudge(cfg.judge, ctx.recipe_dir))

    def _reward_client(self, ctx: RunContext) -> Any:
        """The reward model that scores the answers, or None (judge / given scores)."""
        cfg = self.config
        if cfg.score_column:
            if cfg.reward_model:
                raise RecipeError(f"step {self.name}: give either score_column or "
                                  "reward_model, not both")
            return None
        if cfg.reward_model:
            try:
                llm = ctx.llm_for(cfg.reward_model)
            except RuntimeError as exc:
                raise RecipeError(f"step {self.name}: reward_model: {exc} (declare it in the "
                                  "recipe's models:)") from None
            if llm is None:
                raise RecipeError(f"step {self.name}: reward_model {cfg.reward_model!r}: the "
                                  "run has no model")
            if not getattr(llm, "supports_score", False):
                raise RecipeError(f"step {self.name}: reward_model {cfg.reward_model!r} "
                                  f"({llm.model_id}) is not a reward model; use reward:PATH")
            return llm
        if getattr(getattr(ctx, "llm", None), "supports_score", False):
            if not cfg.responses:
                raise RecipeError(
                    f"step {self.name}: its model {ctx.llm.model_id} is a reward model, which "
                    "scores answers but cannot sample them: give the answers in 'responses' "
                    "(e.g. from a generate_n step), or sample with the step's model and score "
                    "with 'reward_model: NAME'")
            return ctx.llm
        return None

    def model_names(self) -> list[str]:
        # Its own model samples (the run's when it names none); the reward model scores.
        names = super().model_names() or [DEFAULT_MODEL]
        if self.config.reward_model and self.config.reward_model not in names:
            names.append(self.config.reward_model)
        return names

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        return {**super().extra_fingerprint(ctx),
                "judge": self._judge.fingerprint() if self._judge else None,
                # The reward model's identity, not its name: another model reruns the step.
                **({"reward": self._reward.model_id} if self._reward is not None else {})}

    def reads(self) -> list[str]:
        cfg = self.config
        cols = {cfg.prompt}
        if cfg.responses:
            cols.add(cfg.responses)
        else:
            cols |= self.template().variables - {"prompt", "context"}
        if cfg.score_column:
            cols.add(cfg.score_column)
        elif self._judge is not None:
            cols |= self._judge.columns_read()
        return sorted(cols)

    async def _sample(self, record: dict[str, Any], prompt: str,
                      ctx: ItemContext) -> tuple[list[dict[str, Any]], Usage, str | None]:
        cfg = self.config
        messages = self.template().render_messages(
            {**record, "context": ctx.context, "prompt": prompt})
        # The samples' seed depends on what is asked, not on who scores the answers: another
        # judge or reward model rescores the same answers (from the response cache).
        seed = derive_seed(ctx.run.seed, stable_hash("preference_pairs.samples", messages))
        responses = await self.ask_n(ctx, {}, cfg.n, top_p=cfg.top_p, messages=messages,
                                     seed=seed)
        usage = Usage()
        for r in responses:
            usage = usage + r.usage
        candidates = [{"index": r.sample_index, "text": r.text.strip(), "reasoning": r.reasoning,
                       "finish_reason": r.finish_reason} for r in responses]
        return candidates, usage, responses[0].model if responses else None

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        prompt = column_value(record, cfg.prompt, self.name)
        usage, model = Usage(), None
        if cfg.responses:
            given = column_value(record, cfg.responses, self.name)
            if not isinstance(given, list):
                raise TypeError(f"column {cfg.responses!r} must hold a list of answers")
            candidates = [{"index": i, "text": str(t).strip(), "reasoning": None}
                          for i, t in enumerate(given)]
        else:
            candidates, usage, model = await self._sample(record, prompt, ctx)
        candidates = [c for c in candidates if c["text"]]  # an empty answer is no candidate
        truncated = 0
        if cfg.exclude_truncated:
            # A cut-off answer is unfinished: as "rejected" it teaches length, not quality.
            kept = [c for c in candidates if c.get("finish_reason") != "length"]
            truncated = len(candidates) - len(kept)
            candidates = kept
        if len(candidates) < 2:
            cut = f", {truncated} cut off at max_tokens excluded" if truncated else ""
            return ItemResult.drop(f"fewer than 2 non-empty answers ({len(candidates)}{cut})")

        failures: list[str] = []
        if cfg.score_column:
            scores = _given_scores(column_value(record, cfg.score_column, self.name), candidates)
        elif self._reward is not None:
            scores, judge_usage = await self._reward_scores(prompt, candidates, ctx, failures)
            usage = usage + judge_usage
        else:
            scores, judge_usage = await self._score(prompt, record, candidates, ctx, failures)
            usage = usage + judge_usage
        scored = [(c, s) for c, s in zip(candidates, scores, strict=True) if s is not None]
        if len(scored) < 2:
            raise ValueError(f"only {len(scored)} of {len(candidates)} answers could be scored: "
                             + "; ".join(failures[:3]))
        totals = [_total(s) for _, s in scored]
        best = max(range(len(scored)), key=lambda i: (totals[i], -i))
        worst = min(range(len(scored)), key=lambda i: (totals[i], i))
        margin = totals[best] - totals[worst]
        if margin == 0:
            return ItemResult.drop(f"tie: all {len(scored)} scored answers have total "
                                   f"{totals[best]:g}")
        min_margin = cfg.min_margin if cfg.min_margin is not None else (
            0.0 if self._reward is not None else 1.0)
        if margin < min_margin:
            return ItemResult.drop(f"margin {margin:g} < min_margin {min_margin:g} "
                                   f"(best {totals[best]:g}, worst {totals[worst]:g})")
        (chosen, chosen_scores), (rejected, rejected_scores) = scored[best], scored[worst]
        columns: dict[str, Any] = {
            "prompt": prompt, "chosen": chosen["text"], "rejected": rejected["text"],
            "chosen_score": totals[best], "rejected_score": totals[worst], "margin": margin,
            "candidate_scores": [_total(s) if s is not None else None for s in scores],
        }
        if isinstance(chosen_scores, dict):
            columns["chosen_scores"], columns["rejected_scores"] = chosen_scores, rejected_scores
        for side, cand in (("chosen", chosen), ("rejected", rejected)):
            if cand["reasoning"]:
                columns[f"{side}_reasoning"] = cand["reasoning"]
        if model is None and self._judge is not None:
            model = ctx.llm.model_id  # answers were given; the judge is the model used
        scorer = {}
        if self._reward is not None:
            scorer = {"scorer": self._reward.model_id}
            model = model or self._reward.model_id
        return Output(columns=columns, model=model,
                      template_hash=self.template().hash, usage=usage.to_json(),
                      meta={**scorer, "chosen_index": chosen["index"],
                            "rejected_index": rejected["index"],
                            "unscored": len(candidates) - len(scored),
                            "truncated_excluded": truncated})

    async def _reward_scores(self, prompt: str, candidates: list[dict[str, Any]],
                             ctx: ItemContext, failures: list[str]) -> tuple[list[Any], Usage]:
        """Each answer's reward-model score of (prompt, answer); one that fails (too long for
        the model) is left out and named, like an answer the judge cannot score."""
        model = self.config.reward_model

        async def one(text: str) -> tuple[float, Usage]:
            [result] = await ctx.score([(prompt, text)], model=model)
            return result.score, result.usage

        return await _collect(candidates, [one(c["text"]) for c in candidates], failures)

    async def _score(self, prompt: str, record: dict[str, Any], candidates: list[dict[str, Any]],
                     ctx: ItemContext, failures: list[str]) -> tuple[list[Any], Usage]:
        assert self._judge is not None
        judge = self._judge

        async def one(text: str) -> tuple[Any, Usage]:
            scores, response = await judge.score({**record, "context": ctx.context,
                                                  "instruction": prompt, "response": text},
                                                 ctx, self.name)
            return scores, response.usage

        return await _collect(candidates, [one(c["text"]) for c in candidates], failures)


async def _collect(candidates: list[dict[str, Any]], calls: list[Any],
                   failures: list[str]) -> tuple[list[Any], Usage]:
    """Each answer's (score, usage) from ``calls``, concurrently; an answer that cannot be
    scored gets None and its error in ``failures`` (what is no per-answer problem raises)."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    scores: list[Any] = []
    usage = Usage()
    for cand, result in zip(candidates, results, strict=True):
        if isinstance(result, BaseException):
            _keep_going(result)
            failures.append(f"answer {cand['index']}: {type(result).__name__}: {result}")
            scores.append(None)
        else:
            scores.append(result[0])
            usage = usage + result[1]
    return scores, usage


def _keep_going(exc: BaseException) -> None:
    """Re-raise what is no per-answer problem: cancellation, budget spent, server gone."""
    if not isinstance(exc, Exception) or isinstance(exc, SynthloomError):
        raise exc


def _total(score: Any) -> float:
    return score["total"] if isinstance(score, dict) else score


def _given_scores(values: Any, candidates: list[dict[str, Any]]) -> list[Any]:
    """Existing scores, aligned with the non-empty candidates by their index."""
    if not isinstance(values, list):
        raise TypeError("the score column must hold a list (one score per answer)")
    out: list[Any] = []
    for cand in candidates:
        value = values[cand["index"]] if cand["index"] < len(values) else None
        total = value.get("total") if isinstance(value, dict) else value
        usable = isinstance(total, int | float) and not isinstance(total, bool)
        out.append(value if usable else None)
    return out
