"""MathGenie (Lu et al. 2024, arXiv 2402.16352): new problems back-translated from augmented
solutions, kept only when a code-integrated solution agrees.

1. ``mathgenie_augment`` (expand): the model rewrites the seed solution into ``variants`` new
   solutions (changed numbers, added conditions, another quantity asked;
   ``mathgenie_augment.jinja``); iterative augmentation: each later round rewrites every usable
   solution of the round before once more (``rounds``). Each augmented solution is a record with
   its stated final answer in ``answer`` (None when it states none or was cut off).
2. ``mathgenie_question`` (map): back-translation — the model writes the problem the augmented
   solution solves (``mathgenie_question.jinja``). Solutions without a final answer, and
   completions that are no question, are dropped with the reason.
3. Verification (the recipe's ``generate`` + ``pot_execute`` steps): a code-integrated solution
   of the new question (``mathgenie_solve.jinja``) is run in the sandbox; the record is kept
   (``verified: true``) only when the program prints the augmented solution's final answer —
   the paper's verification rationale.
"""

from __future__ import annotations

import re
from typing import Any

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, MapStep, StepConfig
from synthloom.llm.types import LLMResponse
from synthloom.methods.math.metamath import clean_question, normal_text
from synthloom.prompting.templated import TemplatedStep
from synthloom.verify.math_answers import extract_answer

_CALC = re.compile(r"<<[^<>]*>>")
_HASHES = re.compile(r"^\s*####\s*(.+?)\s*$", re.MULTILINE)


def plain_solution(text: str) -> str:
    """A GSM8K solution without calculator marks (``<<4*2=8>>``), its ``#### N`` line written as
    "The answer is N." (the form the augmented solutions are asked to end with)."""
    text = _CALC.sub("", text or "")
    return _HASHES.sub(lambda m: f"The answer is {m.group(1).replace(',', '')}.", text).strip()


def stated_answer(response: LLMResponse) -> str | None:
    """The solution's stated final answer; None when cut off by the token cap or unstated."""
    if response.finish_reason == "length":
        return None
    return extract_answer(response.text, last_number=False)


class MathGenieAugmentConfig(StepConfig):
    #: Jinja prompt template that rewrites a solution into a new one.
    template: str = "math/prompts/mathgenie_augment.jinja"
    #: Column with the seed solution (GSM8K ``answer``).
    solution: str = "answer"
    #: New solutions drawn from the seed solution in round 1.
    variants: int = 2
    #: Augmentation rounds; round r > 1 rewrites each usable solution of round r-1 once.
    rounds: int = 1
    #: Sampling temperature of the augmented solutions.
    temperature: float = 0.8
    #: Most tokens of one augmented solution (cut off there: no answer).
    max_tokens: int = 320


@register_step
class MathGenieAugment(TemplatedStep, ExpandStep):
    type_name = "mathgenie_augment"
    uses_llm = True
    Config = MathGenieAugmentConfig
    config: MathGenieAugmentConfig

    def reads(self) -> list[str]:
        return ["question", self.config.solution]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list:
        cfg = self.config
        seed_solution = plain_solution(str(record.get(cfg.solution) or ""))
        if not seed_solution:
            return ItemResult.drop(f"no seed solution in column {cfg.solution!r}")
        base = {"seed_question": record.get("question"), "seed_solution": seed_solution}
        outputs: list[Output] = []
        frontier: list[tuple[str, int | None]] = [(seed_solution, None)]  # (solution, index)
        index = 0
        for round_no in range(1, cfg.rounds + 1):
            next_frontier: list[tuple[str, int | None]] = []
            for source, parent in frontier:
                n = cfg.variants if round_no == 1 else 1
                responses = await self.ask_n(ctx, {**record, "solution": source}, n,
                                             seed_offset=index)
                for response in responses:
                    text = response.text.strip()
                    answer = stated_answer(response)
                    # Every sample is emitted (a cut-off one too): mathgenie_question drops the
                    # unusable ones with the reason, so none disappears here.
                    outputs.append(self.output(
                        # ``question`` is emptied: the seed's question is not this solution's.
                        response, {**base, "augmented_solution": text, "answer": answer,
                                   "question": None, "round": round_no,
                                   "augmented_from": parent},
                        sample_index=index))
                    if answer is not None and text:
                        next_frontier.append((text, index))
                    index += 1
            frontier = next_frontier
            if not frontier:
                break
        return outputs


class MathGenieQuestionConfig(StepConfig):
    #: Jinja prompt template of the back-translation (the problem the solution solves).
    template: str = "math/prompts/mathgenie_question.jinja"
    #: Sampling temperature of the question.
    temperature: float = 0.3
    #: Most tokens of the question.
    max_tokens: int = 192


@register_step
class MathGenieQuestion(TemplatedStep, MapStep):
    type_name = "mathgenie_question"
    uses_llm = True
    Config = MathGenieQuestionConfig
    config: MathGenieQuestionConfig

    def reads(self) -> list[str]:
        return sorted({"augmented_solution", "answer", "seed_solution"}
                      | (self.template().variables - {"context"}))

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | Output:
        if not str(record.get("augmented_solution") or "").strip():
            return ItemResult.drop("empty augmented solution")
        if normal_text(str(record.get("augmented_solution"))) == normal_text(
                str(record.get("seed_solution") or "")):
            return ItemResult.drop("the augmented solution repeats the seed solution")
        if record.get("answer") is None:
            return ItemResult.drop("the augmented solution states no final answer "
                                   "(no 'The answer is N', or cut off by the token cap)")
        response = await self.ask(ctx, {**record, "context": ctx.context})
        question = clean_question(response.text)
        if response.finish_reason == "length":
            return ItemResult.drop("back-translated question cut off by the token cap")
        if "?" not in question:
            return ItemResult.drop(f"back-translation asks no question: {question[:80]!r}")
        if extract_answer(question, last_number=False) is not None:
            # A problem that gives its own answer away verifies trivially: not a problem.
            return ItemResult.drop("back-translation states the answer")
        return self.output(response, {"question": question})
