"""``distill_samples`` and ``distill_difficulty``: the OpenThoughts pipeline's sampling,
verification and difficulty filter (OpenThoughts, arXiv 2506.04178).

* ``distill_samples`` (expand) asks the step's model - a reasoning model - ``samples`` times
  per question. The client splits each reply: the ``<think>`` text goes to ``reasoning``, the
  rest to ``response``. Every sample is verified by the question's domain
  (:func:`domain_truth`): a logic task's verifier or reasoning-gym's scorer (records that carry
  a task), the question's unit tests run with the reply's program in the sandbox (a ``tests``
  column: ``code``), or the stated final answer equal to the gold one (math-verify when
  installed, see :mod:`synthloom.verify.math_answers`). Verified samples become records (all,
  or the first), each with the question's ``pass_rate`` (verified / sampled); a question with
  none is dropped with the first sample's reason.
* ``distill_difficulty`` keeps the hard questions: by response length (``mean_response_tokens``
  at least ``min_tokens``: OpenThoughts3 found length a strong difficulty proxy; after
  sampling) or by an LLM rating 1-10 (``min_rating``; before sampling, one call per question,
  no samples spent on an easy one). A recipe places one instance per ``stage``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, MapStep, StepConfig
from synthloom.llm.types import LLMResponse
from synthloom.methods.math.gold import gold_of
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.verify.answers import code_block
from synthloom.verify.rewards import check, ground_truth
from synthloom.verify.sandbox import SandboxLimits, run_python

Domain = Literal["logic", "gym", "code", "math"]


def domain_truth(record: dict[str, Any], gold_column: str,
                 tests_column: str) -> tuple[Domain, dict[str, Any]]:
    """The question's domain and what its verifier needs; ValueError when it has none."""
    if "gym_dataset" in record or "task" in record:
        try:
            _, truth = ground_truth(record)
        except ValueError:  # a "task" column that names no logic task: look further
            truth = {}
        if truth.get("kind") in ("gym", "logic"):
            return truth["kind"], truth
    tests = record.get(tests_column)
    if isinstance(tests, str) and tests.strip():
        return "code", {"kind": "code", "tests": tests}
    gold = gold_of(record.get(gold_column))
    if gold is not None:
        return "math", {"kind": "math", "answer": gold}
    raise ValueError(f"no verifier: no logic task, reasoning-gym item, {tests_column!r} tests "
                     f"or {gold_column!r} answer")


async def verify_sample(text: str, truth: dict[str, Any], limits: SandboxLimits) -> str | None:
    """None when the reply is right, else why not (code: its program with the tests, run in the
    sandbox)."""
    if truth["kind"] != "code":
        return check(text, truth)
    program = code_block(text)
    if program is None:
        return "no python block"
    result = await run_python(f"{program}\n\n{truth['tests']}\n", limits)
    if result.ok and result.returncode == 0:
        return None
    tail = (result.stderr.strip().splitlines() or [result.reason or result.status])[-1]
    return f"tests failed: {tail[:200]}"


class SamplesConfig(StepConfig):
    template: str = Field(default="distill/prompts/solve.jinja",
                          description="Prompt (variables: question, tests).")
    question_column: str = Field(default="question", description="Column with the question.")
    gold_column: str = Field(default="answer", description="Column with the reference answer "
                                                           "(GSM8K '... #### 72', or a final "
                                                           "answer) for math questions.")
    tests_column: str = Field(default="tests", description="Column with Python unit tests "
                                                           "(asserts) for code questions.")
    samples: int = Field(default=4, ge=1, le=64, description="Samples per question.")
    keep: Literal["all", "first"] = Field(default="all", description="Verified samples kept: "
                                                                     "all, or the first.")
    #: Sampling temperature of the samples.
    temperature: float = 0.7
    #: Most tokens of one sample.
    max_tokens: int = Field(default=2048, ge=1)
    timeout_s: float = Field(default=10.0, gt=0, description="Sandbox limit per code test run.")


@register_step
class DistillSamples(TemplatedStep, ExpandStep):
    """N samples per question, each verified by its domain; verified samples out with the
    question's pass rate, reasoning apart from the response."""

    type_name = "distill_samples"
    uses_llm = True
    Config = SamplesConfig
    config: SamplesConfig

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> list[Output] | ItemResult:
        cfg = self.config
        question = str(record.get(cfg.question_column) or "").strip()
        if not question:
            return ItemResult.drop(f"empty {cfg.question_column!r}")
        domain, truth = domain_truth(record, cfg.gold_column, cfg.tests_column)
        tests = truth.get("tests", "")
        responses = await self.ask_n(ctx, {"question": question, "tests": tests}, cfg.samples)
        limits = SandboxLimits(timeout_s=cfg.timeout_s)
        reasons = [await verify_sample(r.text, truth, limits) for r in responses]
        passed = [r for r, why in zip(responses, reasons, strict=True) if why is None]
        if not passed:
            return ItemResult.drop(f"no verified sample: 0/{len(responses)} ({reasons[0]})")
        mean_tokens = sum(_tokens(r) for r in responses) / len(responses)
        common = {"question": question, "domain": domain, "verified": True,
                  "passes": len(passed), "samples": len(responses),
                  "pass_rate": round(len(passed) / len(responses), 6),
                  "mean_response_tokens": round(mean_tokens, 1)}
        if domain == "math":
            common["gold"] = truth["answer"]
        kept = passed if cfg.keep == "all" else passed[:1]
        return [self.output(r, {**common, "reasoning": (r.reasoning or "").strip(),
                                "response": r.text.strip(), "response_tokens": _tokens(r)})
                for r in kept]


def _tokens(response: LLMResponse) -> int:
    return int(response.usage.completion_tokens)


class DifficultyConfig(StepConfig):
    mode: Literal["length", "llm", "none"] = Field(
        default="length", description="length: mean response tokens >= min_tokens; llm: a "
                                      "1-10 rating >= min_rating; none: keep all.")
    min_tokens: int = Field(default=0, ge=0, description="length mode: the least mean response "
                                                         "tokens of the question's samples.")
    min_rating: int = Field(default=5, ge=1, le=10, description="llm mode: the least rating.")
    stage: Literal["questions", "samples", "any"] = Field(
        default="any", description="Where in a recipe this instance acts: questions (only the "
                                   "llm rating, before sampling: one call per question), "
                                   "samples (only the length filter, after sampling), any.")
    #: Column with the question (llm mode).
    question_column: str = "question"
    #: Jinja prompt template of the 1-10 difficulty rating (llm mode).
    template: str = "distill/prompts/rating.jinja"
    #: Sampling temperature of the rating.
    temperature: float = 0.0
    #: Most tokens of the rating's answer.
    max_tokens: int = 160


#: A rating's schema: a short reason first (the model thinks before it scores), then 1-10.
RATING_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["reason", "difficulty"],
    "properties": {"reason": {"type": "string", "maxLength": 300},
                   "difficulty": {"type": "integer", "minimum": 1, "maximum": 10}}}


@register_step
class DistillDifficulty(TemplatedStep, MapStep):
    """Keeps hard questions: by response length, or by an LLM's 1-10 rating."""

    type_name = "distill_difficulty"
    uses_llm = True
    Config = DifficultyConfig
    config: DifficultyConfig

    def active_template_fields(self) -> tuple[str, ...]:
        return self.template_fields if self.config.mode == "llm" else ()

    def reads(self) -> list[str]:
        return [self.config.question_column, "mean_response_tokens"]

    def _acts(self) -> bool:
        cfg = self.config
        if cfg.mode == "none":
            return False
        return cfg.stage == "any" or cfg.stage == {"llm": "questions", "length": "samples"}[
            cfg.mode]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        if not self._acts():
            return Output(columns={})
        if cfg.mode == "length":
            tokens = float(record.get("mean_response_tokens") or 0)
            if tokens < cfg.min_tokens:
                return ItemResult.drop(f"too easy: mean response {tokens:.0f} tokens "
                                       f"< {cfg.min_tokens}")
            return Output(columns={})
        response = await self.ask(ctx, {"question": record.get(cfg.question_column, "")},
                                  schema=RATING_SCHEMA)
        parsed = parsed_object(response)
        rating = int(parsed.get("difficulty", 0))
        columns = {"difficulty_rating": rating,
                   "difficulty_reason": str(parsed.get("reason") or "").strip()}
        if rating < cfg.min_rating:
            return ItemResult.drop(f"too easy: rated {rating}/10 < {cfg.min_rating}")
        return self.output(response, columns)
