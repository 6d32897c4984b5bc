"""Self-consistency (Wang et al. 2022, arXiv 2203.11171): label unlabelled problems by majority
vote over sampled reasoning paths.

``self_consistency`` (map) samples ``samples`` chain-of-thought rationales per problem, takes
each one's stated final answer, clusters the answers by equivalence (``answers_equal``: ``12``,
``12.0`` and ``$12`` are one vote) and keeps the majority answer with its first rationale when
its share of all samples — the confidence — is at least ``min_agreement``. Samples that state
no answer (or were cut off) count in the denominator: they are votes for nothing. No gold answer
is needed; when the record has one (``gold`` column, GSM8K ``#### N`` or plain), ``matches_gold``
says whether the vote found it — a calibration signal for ``min_agreement``, never a filter.
"""

from __future__ import annotations

from typing import Any

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.methods.math.gold import gold_of
from synthloom.prompting.templated import TemplatedStep
from synthloom.verify.math_answers import answers_equal, extract_answer


def cluster_answers(answers: list[str | None]) -> list[tuple[str, list[int]]]:
    """(representative answer, indices of the samples voting for it), in first-seen order; a
    new answer joins the first cluster whose representative it equals."""
    clusters: list[tuple[str, list[int]]] = []
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        for representative, members in clusters:
            if answers_equal(answer, representative):
                members.append(i)
                break
        else:
            clusters.append((answer, [i]))
    return clusters


def majority(clusters: list[tuple[str, list[int]]]) -> tuple[str, list[int]] | None:
    """The largest cluster; on a tie the one seen first (deterministic)."""
    best: tuple[str, list[int]] | None = None
    for cluster in clusters:
        if best is None or len(cluster[1]) > len(best[1]):
            best = cluster
    return best


class SelfConsistencyConfig(StepConfig):
    #: Chain-of-thought prompt ending in "The answer is N." (shared with STaR).
    template: str = "math/prompts/star_rationale.jinja"
    #: Solutions sampled per problem; their final answers vote.
    samples: int = 5
    #: Keep a problem when the majority answer has at least this share of the samples.
    min_agreement: float = 0.5
    #: Column with a reference answer, when there is one (else the step works without gold).
    gold: str | None = "answer"
    #: Sampling temperature.
    temperature: float = 0.7
    #: Most tokens of one solution (cut off there: its answer does not count).
    max_tokens: int = 384
    #: Count only a stated answer ("The answer is N", boxed, ####), not the last number seen.
    stated_answer: bool = True


@register_step
class SelfConsistency(TemplatedStep, MapStep):
    type_name = "self_consistency"
    uses_llm = True
    Config = SelfConsistencyConfig
    config: SelfConsistencyConfig

    def reads(self) -> list[str]:
        names = set(self.template().variables - {"context"})
        if self.config.gold:
            names.add(self.config.gold)
        return sorted(names)

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | Output:
        cfg = self.config
        responses = await self.ask_n(ctx, {**record, "context": ctx.context}, cfg.samples)
        answers = [None if r.finish_reason == "length"
                   else extract_answer(r.text, last_number=not cfg.stated_answer)
                   for r in responses]
        clusters = cluster_answers(answers)
        votes = {answer: len(members) for answer, members in clusters}
        unanswered = sum(a is None for a in answers)
        shown = ", ".join(f"{a!r}: {n}" for a, n in votes.items())
        if unanswered:
            shown = f"{shown}, none: {unanswered}" if shown else f"none: {unanswered}"
        best = majority(clusters)
        if best is None:
            return ItemResult.drop(f"no sample states an answer ({len(answers)} samples)")
        answer, members = best
        confidence = len(members) / len(answers)
        if confidence < cfg.min_agreement:
            return ItemResult.drop(f"agreement {round(confidence, 3)} < {cfg.min_agreement} "
                                   f"(answers: {shown})")
        chosen = responses[members[0]]
        gold = gold_of(record.get(cfg.gold)) if cfg.gold else None
        columns = {
            "answer": answer, "confidence": round(confidence, 4), "votes": votes,
            "samples": len(answers), "answers": answers, "rationale": chosen.text.strip(),
            "gold": gold, "matches_gold": answers_equal(answer, gold) if gold else None,
        }
        # The record cost every sample, not only the rationale it keeps.
        usage = {"prompt_tokens": sum(r.usage.prompt_tokens for r in responses),
                 "completion_tokens": sum(r.usage.completion_tokens for r in responses)}
        return self.output(chosen, columns, sample_index=members[0], usage=usage)
