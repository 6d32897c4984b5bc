"""MetaMath (Yu et al. 2023, arXiv 2309.12284): bootstrap each math question four ways.

``metamath_questions`` (expand) turns one problem with a gold answer into new questions, each
with the answer its solutions must reach (``answer``):

* ``answer_aug`` — the question itself (answer augmentation: more reasoning paths to gold);
* ``rephrase`` — the model rephrases the question (``metamath_rephrase.jinja``); target: gold;
* backward questions: one number of the question, chosen deterministically from the run seed,
  is masked as ``x`` and becomes the target (``masked_number``):
  ``sv`` (self-verification) — the model rewrites the masked question and its answer into a
  declarative statement and asks for x (``metamath_sv.jinja``);
  ``fobar`` — "{masked question} If we know the answer to the above question is {gold}, what
  is the value of unknown variable x?" (``metamath_fobar.jinja``, no model call).

``metamath_solve`` (expand) checks the model-written questions (a rephrasing that is no question
or the original verbatim; an SV text that lost x or the answer) and drops them with the reason,
then samples ``samples`` chain-of-thought solutions and keeps up to ``keep`` distinct ones whose
**stated** final answer equals the target (``verified: true``). A rephrased or SV question that
no solution answers correctly is dropped: that is MetaMath's check that the rewrite kept its
meaning.
"""

from __future__ import annotations

import random
import re
from typing import Any, Literal

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, StepConfig
from synthloom.llm.types import LLMResponse
from synthloom.prompting.templated import TemplatedStep
from synthloom.verify.math_answers import answers_equal, extract_answer

Augmentation = Literal["answer_aug", "rephrase", "sv", "fobar"]
AUGMENTATIONS: tuple[str, ...] = ("answer_aug", "rephrase", "sv", "fobar")

#: A number of the question that can be masked: 12, 1,200, 5.50 (not part of a word like 3rd,
#: not a list separator's comma).
_MASKABLE = re.compile(r"(?<![\w.,])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\w|\.\d|,\d)")
_X = re.compile(r"\bx\b", re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:\*\*)?\s*(?:rephrased|rewritten|new)?\s*(?:question|problem|"
                    r"statement)?\s*:\s*(?:\*\*)?\s*", re.IGNORECASE)
_NUMBERS = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def maskable_numbers(question: str) -> list[tuple[int, int, str]]:
    """(start, end, value without commas) of each number the backward questions may mask."""
    return [(m.start(), m.end(), m.group().replace(",", "")) for m in _MASKABLE.finditer(question)]


def mask_number(question: str, seed: int | str) -> tuple[str, str] | None:
    """(question with one number replaced by x, that number), chosen by ``seed``; None when the
    question has no number or already uses x (a second x would be ambiguous)."""
    if _X.search(question):
        return None
    spans = maskable_numbers(question)
    if not spans:
        return None
    start, end, value = random.Random(seed).choice(spans)
    return question[:start] + "x" + question[end:], value


def clean_question(text: str) -> str:
    """The model's rewrite without a label ("Rephrased:"), quotes or trailing chatter (the first
    paragraph, when it already asks the question)."""
    text = _LABEL.sub("", text.strip(), count=1).strip()
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(paragraphs) > 1 and "?" in paragraphs[0]:
        text = paragraphs[0]
    text = " ".join(text.split())
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def normal_text(text: str) -> str:
    """Lower case, punctuation and spacing folded: for "is it the same text" checks."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def question_problem(record: dict[str, Any]) -> str | None:
    """Why a model-written question is not usable, or None. Template-made ones always are."""
    kind = record.get("augmentation")
    question = str(record.get("question") or "").strip()
    if not question:
        return "empty question"
    if kind == "rephrase":
        original = str(record.get("original_question") or "")
        if normal_text(question) == normal_text(original):
            return "the rephrasing is the original question verbatim"
        if original.rstrip().endswith("?") and not question.endswith("?"):
            return "the rephrasing does not end with a question (cut off or an answer)"
    if kind == "sv":
        if not _X.search(question):
            return "the rewritten question lost the unknown variable x"
        gold = str(record.get("original_answer") or "")
        if not any(answers_equal(n.rstrip(","), gold) for n in _NUMBERS.findall(question)):
            return f"the rewritten question does not state the answer {gold!r}"
        if not question.endswith("?"):
            return "the rewritten question does not end with a question"
    return None


class MetaMathQuestionsConfig(StepConfig):
    #: Column with the gold final answer (the ``math_gold`` step's output).
    gold: str = "gold"
    #: Which questions to make per problem.
    augmentations: list[Augmentation] = Field(default_factory=lambda: list(AUGMENTATIONS))
    #: Rephrasings sampled per problem.
    rephrasings: int = 1
    #: Jinja prompt template of the rephrasing augmentation.
    rephrase_template: str = "math/prompts/metamath_rephrase.jinja"
    #: Jinja prompt template of SV: the masked question and its answer rewritten as a statement
    #: asking for x.
    sv_template: str = "math/prompts/metamath_sv.jinja"
    #: Jinja template of FOBAR: the masked question with its answer given, asking for x (rendered,
    #: no model call).
    fobar_template: str = "math/prompts/metamath_fobar.jinja"
    #: Sampling temperature of the new questions.
    temperature: float = 0.7
    #: Most tokens of one new question.
    max_tokens: int = 192


@register_step
class MetaMathQuestions(TemplatedStep, ExpandStep):
    type_name = "metamath_questions"
    uses_llm = True
    Config = MetaMathQuestionsConfig
    config: MetaMathQuestionsConfig
    template_fields = ("rephrase_template", "sv_template", "fobar_template")
    template_keys = {"rephrase_template": "rephrase", "sv_template": "sv",
                     "fobar_template": "fobar"}

    def reads(self) -> list[str]:
        return ["question", self.config.gold]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list:
        cfg = self.config
        question = str(record.get("question") or "").strip()
        gold = str(record.get(cfg.gold) or "").strip()
        if not question or not gold:
            return ItemResult.drop(f"no question or no gold answer (column {cfg.gold!r})")
        kinds = set(cfg.augmentations)
        base = {"original_question": question, "original_answer": gold}

        def made(kind: str, text: str, target: str, masked: str | None, index: int,
                 response: LLMResponse | None = None, template: str | None = None) -> Output:
            # ``gold`` and ``answer`` both become this question's target, so a generic re-check
            # (answers_equal(solution's answer, gold)) holds for backward questions too.
            columns = {**base, "augmentation": kind, "question": text, "answer": target,
                       "gold": target, "masked_number": masked}
            if response is None:
                return Output(columns=columns, sample_index=index,
                              template_hash=self.template(template).hash if template else None)
            assert template is not None
            return self.output(response, columns, template=template, sample_index=index)

        outputs: list[Output] = []
        if "answer_aug" in kinds:
            outputs.append(made("answer_aug", question, gold, None, 0))
        if "rephrase" in kinds and cfg.rephrasings > 0:
            responses = await self.ask_n(ctx, {"question": question}, cfg.rephrasings,
                                         template="rephrase_template")
            for i, response in enumerate(responses):
                # A bad rephrasing is still emitted: metamath_solve drops it with the reason.
                outputs.append(made("rephrase", clean_question(response.text), gold, None,
                                    1 + i, response, "rephrase_template"))
        # Seeded by the run seed and the question only: the same number is masked whatever
        # the other knobs are (a str seed is hashed with sha512, stable across processes).
        mask_seed = f"{ctx.run.seed}:{question}"
        masked = mask_number(question, mask_seed) if kinds & {"sv", "fobar"} else None
        if masked is not None:
            masked_question, number = masked
            variables = {"masked_question": masked_question, "gold": gold}
            index = 1 + cfg.rephrasings
            if "sv" in kinds:
                response = await self.ask(ctx, variables, template="sv_template",
                                          seed_offset=index)
                outputs.append(made("sv", clean_question(response.text), number, number, index,
                                    response, "sv_template"))
            if "fobar" in kinds:
                text = " ".join(self.template("fobar_template").render_text(variables).split())
                outputs.append(made("fobar", text, number, number, index + 1,
                                    template="fobar_template"))
        if not outputs:
            return ItemResult.drop("no augmentation applies (no number to mask for sv/fobar, "
                                   f"augmentations {sorted(kinds)})")
        return outputs


class MetaMathSolveConfig(StepConfig):
    #: Chain-of-thought prompt ending in "The answer is N." (shared with STaR).
    template: str = "math/prompts/star_rationale.jinja"
    #: Solutions sampled per question; those reaching the target answer are kept.
    samples: int = 4
    #: Keep at most this many distinct correct solutions per question.
    keep: int = 1
    #: Sampling temperature of the solutions.
    temperature: float = 0.7
    #: Most tokens of one solution (cut off there: its answer does not count).
    max_tokens: int = 384
    #: Count only a stated answer ("The answer is N", boxed, ####), not the last number seen.
    stated_answer: bool = True


@register_step
class MetaMathSolve(TemplatedStep, ExpandStep):
    type_name = "metamath_solve"
    uses_llm = True
    Config = MetaMathSolveConfig
    config: MetaMathSolveConfig

    def reads(self) -> list[str]:
        return sorted({"question", "answer", "augmentation", "original_question",
                       "original_answer"} | (self.template().variables - {"context"}))

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list:
        cfg = self.config
        kind = record.get("augmentation", "?")
        problem = question_problem(record)
        if problem is not None:
            return ItemResult.drop(f"{kind}: {problem}")
        target = str(record.get("answer") or "")
        responses = await self.ask_n(ctx, {**record, "context": ctx.context}, cfg.samples)
        kept: list[Output] = []
        seen: set[str] = set()
        answers: list[str | None] = []
        for i, response in enumerate(responses):
            text = response.text.strip()
            predicted = None if response.finish_reason == "length" else extract_answer(
                text, last_number=not cfg.stated_answer)
            answers.append(predicted)
            if not answers_equal(predicted, target) or text in seen or len(kept) >= cfg.keep:
                continue
            seen.add(text)
            kept.append(self.output(
                response, {"solution": text, "predicted": predicted, "verified": True},
                sample_index=i))
        if kept:
            return kept
        shown = ", ".join(repr(a) for a in answers[:6])
        return ItemResult.drop(f"{kind}: no solution reached {target!r} in {cfg.samples} "
                               f"samples (answers: {shown})")
