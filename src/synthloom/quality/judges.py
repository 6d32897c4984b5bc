"""LLM judges: rubric scores per criterion with the rationale, and pairwise verdicts.

``judge_rubric`` (map) scores the judged column(s) on a rubric: ``arena7`` (the Arena-Hard seven
binary criteria, for instructions), ``ultrafeedback`` (four 1-5 aspects, for answers) or your own
template. The output is schema-constrained JSON (validated, repaired and re-asked by the LLM
client) and is checked again here: every criterion present, every score on the scale. Scores go
into one column: ``{"rubric", "criteria": {name: {"score", "analysis"}}, "total", "max_total"}``.

``judge_pairwise`` (map) compares two answers twice, A-vs-B and B-vs-A; the verdict stands only
when both orders agree, otherwise it is ``inconsistent`` (position bias cancelled, not hidden).
``filter_score`` drops records whose scores fall below thresholds, with the scores in the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.llm.kinds import grammar_limited
from synthloom.llm.types import LLMRequest, LLMResponse, SamplingParams
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.prompting.templates import PromptTemplate, load_template
from synthloom.quality.filters import ColumnFilter


@dataclass(frozen=True)
class Rubric:
    name: str
    template: str
    criteria: tuple[str, ...]
    scale: tuple[int, int]
    needs_response: bool


RUBRICS: dict[str, Rubric] = {
    "arena7": Rubric(
        "arena7", "quality/prompts/judge_arena7.jinja",
        ("specificity", "domain_knowledge", "complexity", "problem_solving", "creativity",
         "technical_accuracy", "real_world_application"),
        (0, 1), needs_response=False),
    "ultrafeedback": Rubric(
        "ultrafeedback", "quality/prompts/judge_ultrafeedback.jinja",
        ("instruction_following", "honesty", "truthfulness", "helpfulness"),
        (1, 5), needs_response=True),
}
#: Variables the judge supplies itself; other names a custom template uses are record columns.
JUDGE_VARIABLES = frozenset({"instruction", "response", "criteria", "scale", "rationale",
                             "context"})


class JudgeOptions(BaseModel):
    """How to judge: the rubric and its sampling. Shared by ``judge_rubric`` and
    ``preference_pairs`` (as its ``judge:`` mapping)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    #: ``arena7`` | ``ultrafeedback`` | a path to your own Jinja template.
    rubric: str = "arena7"
    #: Criterion names of a custom template (default: the keys of ``schema``).
    criteria: list[str] | None = None
    #: Score range of a custom template's criteria, inclusive.
    scale: tuple[int, int] = (1, 5)
    #: Replaces the generated JSON schema (custom templates with another answer shape).
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    #: Ask for a one-sentence analysis before each score (kept in the scores column).
    rationale: bool = True
    #: Longest rationale, in characters (schema maxLength).
    max_rationale_chars: int = 300
    #: Sampling temperature of the judge.
    temperature: float = 0.0
    #: Most tokens of the judge's answer.
    max_tokens: int = 768


def rubric_schema(criteria: tuple[str, ...], scale: tuple[int, int], rationale: bool,
                  max_chars: int) -> dict[str, Any]:
    """One object per criterion, analysis before score (the model reasons, then decides)."""
    low, high = scale
    score = {"type": "integer", "enum": list(range(low, high + 1))}
    item: dict[str, Any] = {"type": "object", "properties": {"score": score},
                            "required": ["score"], "additionalProperties": False}
    if rationale:
        item["properties"] = {"analysis": {"type": "string", "maxLength": max_chars},
                              "score": score}
        item["required"] = ["analysis", "score"]
    return {"type": "object", "properties": {c: item for c in criteria},
            "required": list(criteria), "additionalProperties": False}


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return int(number) if number.is_integer() else number
    return None


def normalise_scores(parsed: Any, rubric: str, criteria: tuple[str, ...] | None,
                     scale: tuple[int, int]) -> dict[str, Any]:
    """The judge's JSON as ``{"rubric", "criteria", "total", "max_total"}``; ValueError when a
    criterion is missing or off the scale (the item fails and is retried, never guessed)."""
    if not isinstance(parsed, dict):
        raise ValueError(f"judge answer is not a JSON object: {str(parsed)[:80]!r}")
    names = criteria or tuple(parsed)
    if not names:
        raise ValueError("judge answer has no criteria")
    low, high = scale
    scores: dict[str, dict[str, Any]] = {}
    for name in names:
        if name not in parsed:
            raise ValueError(f"judge answer lacks criterion {name!r}")
        value, analysis = parsed[name], None
        if isinstance(value, dict):
            analysis = value.get("analysis", value.get("rationale"))
            value = value.get("score")
        score = _number(value)
        if score is None:
            raise ValueError(f"criterion {name!r}: no numeric score in {value!r}")
        if not low <= score <= high:
            raise ValueError(f"criterion {name!r}: score {score} outside {low}..{high}")
        scores[name] = {"score": score}
        if analysis is not None:
            scores[name]["analysis"] = str(analysis).strip()
    total = sum(s["score"] for s in scores.values())
    return {"rubric": rubric, "criteria": scores, "total": total, "max_total": high * len(names)}


def score_line(scores: dict[str, Any]) -> str:
    """Compact scores for drop reasons: ``total 2/7 (specificity=1, complexity=0, ...)``."""
    parts = ", ".join(f"{k}={v['score']}" for k, v in scores.get("criteria", {}).items())
    if scores.get("max_total") is None:  # a reward model's score: no scale, no criteria
        return f"total {scores.get('total'):.4g}" + (f" ({parts})" if parts else "")
    return f"total {scores.get('total')}/{scores.get('max_total')} ({parts})"


class RubricJudge:
    """The rubric machinery: template, schema, request, and validated scores."""

    def __init__(self, options: JudgeOptions, recipe_dir: Path | None) -> None:
        self.options = options
        builtin = RUBRICS.get(options.rubric)
        if builtin is not None:
            self.name, criteria = builtin.name, builtin.criteria
            self.scale, self.needs_response = builtin.scale, builtin.needs_response
            template = builtin.template
        else:
            if not options.rubric.endswith(".jinja"):
                raise RecipeError(f"rubric {options.rubric!r}: expected one of "
                                  f"{', '.join(RUBRICS)} or a .jinja template file")
            props = (options.json_schema or {}).get("properties", {})
            criteria = tuple(options.criteria or props)
            if not criteria:
                raise RecipeError(f"rubric {options.rubric}: a custom template needs "
                                  "'criteria' (or a 'schema' with properties)")
            self.name, self.needs_response = Path(options.rubric).stem, False
            self.scale = (options.scale[0], options.scale[1])
            template = options.rubric
        self.criteria: tuple[str, ...] = criteria
        self.template: PromptTemplate = load_template(template, recipe_dir)
        self.schema = options.json_schema or rubric_schema(
            criteria, self.scale, options.rationale, options.max_rationale_chars)

    def fingerprint(self) -> dict[str, Any]:
        return {"template": self.template.hash, "schema": self.schema}

    def columns_read(self) -> set[str]:
        """Record columns a custom template names beyond the judge's own variables."""
        return set(self.template.variables - JUDGE_VARIABLES)

    def request(self, variables: dict[str, Any], seed: int, step: str) -> LLMRequest:
        variables = {**variables, "criteria": list(self.criteria), "scale": self.scale,
                     "rationale": self.options.rationale}
        params = SamplingParams(temperature=self.options.temperature,
                                max_tokens=self.options.max_tokens, seed=seed)
        return LLMRequest(messages=self.template.render_messages(variables), params=params,
                          json_schema=self.schema, tags={"step": step, "judge": self.name})

    async def score(self, variables: dict[str, Any], ctx: ItemContext,
                    step: str) -> tuple[dict[str, Any], LLMResponse]:
        [response] = await ctx.generate(self.request(variables, ctx.seed, step))
        return normalise_scores(response.parsed, self.name, self.criteria, self.scale), response


def column_value(record: dict[str, Any], column: str, step: str) -> Any:
    if column not in record:
        raise KeyError(f"step {step}: the record has no column {column!r} "
                       f"(columns: {', '.join(k for k in record if k != '_meta')})")
    return record[column]


# --- judge_rubric ------------------------------------------------------------------------------


class JudgeRubricConfig(StepConfig, JudgeOptions):
    #: Column holding the instruction (the judged text for ``arena7``).
    instruction: str = "instruction"
    #: Column holding the answer; None judges the instruction alone.
    response: str | None = None
    #: Column that receives the scores.
    output: str = "scores"
    #: Drop records whose total is below this, with the scores in the reason.
    min_total: float | None = None
    #: Replaces ``min_total`` when the step's client is llama.cpp (the weak embedded model,
    #: whose judge rarely gives a full score; a paper's strict rule would keep nothing).
    min_total_llamacpp: float | None = None

    model_config = {**StepConfig.model_config, "populate_by_name": True}


@register_step
class JudgeRubric(MapStep):
    """Scores each record on a rubric; scores per criterion with the analysis."""

    type_name = "judge_rubric"
    uses_llm = True
    Config = JudgeRubricConfig
    config: JudgeRubricConfig

    def setup(self, ctx: RunContext) -> None:
        self._judge = RubricJudge(self.config, ctx.recipe_dir)
        # The step's own model is a reward model: it scores (instruction, response) itself.
        llm = getattr(ctx, "llm", None)
        self._reward = llm if getattr(llm, "supports_score", False) else None
        if self._reward is not None and not self.config.response:
            raise RecipeError(f"step {self.name}: its model {self._reward.model_id} is a reward "
                              "model, which scores an answer: set 'response' to its column")
        if self._judge.needs_response and not self.config.response:
            raise RecipeError(f"step {self.name}: rubric {self.config.rubric} judges an answer; "
                              "set 'response' to the answer's column")

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        return self._judge.fingerprint()

    def reads(self) -> list[str]:
        cols = {self.config.instruction, *self._judge.columns_read()}
        if self.config.response:
            cols.add(self.config.response)
        return sorted(cols)

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        variables = {**record, "context": ctx.context,
                     "instruction": column_value(record, cfg.instruction, self.name),
                     "response": column_value(record, cfg.response, self.name)
                     if cfg.response else None}
        if self._reward is not None:
            return await self._reward_score(variables["instruction"], variables["response"], ctx)
        scores, response = await self._judge.score(variables, ctx, self.name)
        threshold = cfg.min_total
        if cfg.min_total_llamacpp is not None and grammar_limited(ctx):
            threshold = cfg.min_total_llamacpp
        if threshold is not None and scores["total"] < threshold:
            return ItemResult.drop(f"{scores['rubric']} {score_line(scores)} < min_total "
                                   f"{threshold:g}")
        return Output(columns={cfg.output: scores}, model=response.model,
                      template_hash=self._judge.template.hash, usage=response.usage.to_json(),
                      meta={"finish_reason": response.finish_reason})


    async def _reward_score(self, instruction: Any, response: Any,
                            ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        [result] = await ctx.score([(instruction, str(response))])
        scores = {"rubric": "reward", "model": result.model, "criteria": {},
                  "total": result.score, "max_total": None}
        if cfg.min_total is not None and scores["total"] < cfg.min_total:
            return ItemResult.drop(f"reward {score_line(scores)} < min_total {cfg.min_total:g}")
        return Output(columns={cfg.output: scores}, model=result.model,
                      usage=result.usage.to_json())


# --- filter_score ------------------------------------------------------------------------------


class FilterScoreConfig(StepConfig):
    #: Column holding the scores object (a judge's output).
    column: str = "scores"
    #: Records whose total is below this are dropped (None: no total threshold).
    min_total: float | None = None
    #: Per-criterion minimums, e.g. {specificity: 1, helpfulness: 4}.
    min_criteria: dict[str, float] = Field(default_factory=dict)


@register_step
class FilterScore(ColumnFilter):
    """Keeps records whose scores column meets the thresholds; the reason names the scores."""

    type_name = "filter_score"
    Config = FilterScoreConfig
    config: FilterScoreConfig

    def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        cfg = self.config
        scores = record.get(cfg.column)
        if not isinstance(scores, dict) or "total" not in scores:
            return f"{cfg.column} is missing or not a scores object"
        if cfg.min_total is not None and scores["total"] < cfg.min_total:
            return f"{score_line(scores)} < min_total {cfg.min_total:g}"
        for name, low in cfg.min_criteria.items():
            value = scores.get("criteria", {}).get(name, {}).get("score")
            if value is None:
                return f"{cfg.column} has no criterion {name!r}"
            if value < low:
                return f"{name}={value} < {low:g} ({score_line(scores)})"
        return None


# --- judge_pairwise ----------------------------------------------------------------------------

VERDICTS = ("A", "B", "tie")


def combine_verdicts(first: str, swapped: str) -> str:
    """Winner from two orders. ``first`` judged (a, b) as (A, B); ``swapped`` judged (b, a).
    Returns ``a``, ``b``, ``tie``, or ``inconsistent`` when the orders disagree."""
    as_first = {"A": "a", "B": "b", "tie": "tie"}
    as_swapped = {"A": "b", "B": "a", "tie": "tie"}
    one, two = as_first[first], as_swapped[swapped]
    return one if one == two else "inconsistent"


class JudgePairwiseConfig(StepConfig):
    #: Column of the instruction both answers respond to (None: compare the answers alone).
    instruction: str | None = "instruction"
    #: Column of the first answer.
    a: str = "response_a"
    #: Column of the second answer.
    b: str = "response_b"
    #: Jinja prompt template of the pairwise judge (asked in both orders).
    template: str = "quality/prompts/judge_pairwise.jinja"
    #: Column written: {winner, consistent, orders}.
    output: str = "pairwise"
    #: Ask for an analysis before each verdict (kept in ``orders``).
    rationale: bool = True
    #: Longest analysis, in characters (schema maxLength).
    max_rationale_chars: int = 400
    #: Sampling temperature of the judge.
    temperature: float = 0.0
    #: Most tokens of each verdict.
    max_tokens: int = 512
    #: Drop records whose two orders disagree (default: keep them, marked inconsistent).
    drop_inconsistent: bool = False


@register_step
class JudgePairwise(TemplatedStep, MapStep):
    """Compares two answers in both orders; a verdict only when both orders agree."""

    type_name = "judge_pairwise"
    uses_llm = True
    Config = JudgePairwiseConfig
    config: JudgePairwiseConfig

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        verdict = {"type": "string", "enum": list(VERDICTS)}
        props: dict[str, Any] = {"verdict": verdict}
        if self.config.rationale:
            props = {"analysis": {"type": "string",
                                  "maxLength": self.config.max_rationale_chars}, **props}
        self._schema = {"type": "object", "properties": props, "required": list(props),
                        "additionalProperties": False}

    def reads(self) -> list[str]:
        cols = {self.config.a, self.config.b}
        if self.config.instruction:
            cols.add(self.config.instruction)
        return sorted(cols)

    def _ask(self, ctx: ItemContext, instruction: Any, first: Any,
             second: Any) -> Awaitable[LLMResponse]:
        return self.ask(ctx, {"instruction": instruction, "response_a": first,
                              "response_b": second, "rationale": self.config.rationale},
                        schema=self._schema)

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        instruction = column_value(record, cfg.instruction, self.name) if cfg.instruction \
            else None
        a, b = column_value(record, cfg.a, self.name), column_value(record, cfg.b, self.name)
        first, swapped = await asyncio.gather(self._ask(ctx, instruction, a, b),
                                              self._ask(ctx, instruction, b, a))
        orders = []
        for order, response in (("ab", first), ("ba", swapped)):
            parsed = parsed_object(response)
            verdict = parsed.get("verdict")
            if verdict not in VERDICTS:
                raise ValueError(f"order {order}: verdict {verdict!r} is not one of {VERDICTS}")
            entry = {"order": order, "verdict": verdict}
            if "analysis" in parsed:
                entry["analysis"] = str(parsed["analysis"]).strip()
            orders.append(entry)
        winner = combine_verdicts(orders[0]["verdict"], orders[1]["verdict"])
        if winner == "inconsistent" and cfg.drop_inconsistent:
            return ItemResult.drop(f"inconsistent pairwise verdicts: {orders[0]['verdict']} "
                                   f"in order ab, {orders[1]['verdict']} in order ba")
        usage = first.usage + swapped.usage
        return Output(columns={cfg.output: {"winner": winner, "consistent": winner !=
                                            "inconsistent", "orders": orders}},
                      model=first.model, template_hash=self.template().hash,
                      usage=usage.to_json())
