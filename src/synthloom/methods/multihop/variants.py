"""``multihop_variants``: RAGSynth's logical query variants -- the same clues asked in other
words (full-clue transformations) or asked for more than the clues give (partial-clue ones),
with faithful answers.

RAGSynth (arXiv 2505.10989; EachSheep/RAGSynth ``knowledge_enhancement/components/
rephrase_generator``: ``rephrase_generator_content.txt`` and ``..._part_content.txt``) rewrites
each question with named transformations. Full-clue ones keep the clues needed and the answer
unchanged: near-synonym replacement, semantic ambiguity, perspective shift, conditional
addition, detail expansion. Partial-clue ones change the question so the clues answer only part
of it, and the answer gives that part with its citations and says what cannot be answered from
the clues: temporal expansion, comparison addition, metric segmentation, multi-step question,
prediction requirement, explanation of reasons.

Here one structured call per question asks for ``full_variants`` + ``partial_variants``
transformations, drawn (seeded) from those lists. The original comes out too
(``variant: original``). A full variant keeps the original answer and citations; a partial
variant's answer is the model's, kept only when it still states the original answer (its
content words) and says that something cannot be answered from the evidence -- else that
variant is left out, the reason in ``_meta.variants_rejected``. Every variant records
``variant`` (the transformation), ``variant_kind`` (original / full / partial) and
``question_original``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, StepConfig
from synthloom.methods.common.corpus import seeded_rng, string_schema
from synthloom.methods.common.overlap import support
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.quality.text import plain_text

#: RAGSynth's transformations (names theirs, explanations ours).
FULL = {
    "near-synonym replacement": "replace some words with synonyms or equivalent expressions",
    "semantic ambiguity": "word it more vaguely without changing what it asks",
    "perspective shift": "ask it from the viewpoint of a role (a student, an investor, a "
                         "visitor...)",
    "conditional addition": "add a condition under which it is asked that does not change "
                            "the answer",
    "detail expansion": "add background detail that does not change the answer",
}
PARTIAL = {
    "temporal expansion": "widen or narrow its time frame beyond what the facts cover",
    "comparison addition": "also ask for a comparison with something the facts do not cover",
    "metric segmentation": "also ask for a breakdown the facts do not give",
    "multi-step question": "add a further step of reasoning or calculation the facts do not "
                           "support",
    "prediction requirement": "ask for a prediction the facts only partly support",
    "explanation of reasons": "also ask why, which the facts do not say",
}
#: How a faithful partial answer says that part of the question is not answered.
_CANNOT = re.compile(
    r"\b(cannot|can ?not|can't|unable|not (?:stated|given|say|said|mention\w*|contain\w*|"
    r"provide\w*|include\w*|enough|answer\w*|known|specified)|no (?:information|mention|data)|"
    r"does not|doesn't|do not|don't|unknown)\b", re.IGNORECASE)


class VariantsConfig(StepConfig):
    #: Jinja prompt template of the variants (gets the question, its clues and the transformations
    #: asked).
    template: str = "multihop/prompts/variants.jinja"
    #: Full-clue transformations asked per question (a seeded draw; same answer).
    full_variants: int = Field(default=2, ge=0, le=len(FULL))
    #: Partial-clue transformations asked per question (a seeded draw; the clues answer only part).
    partial_variants: int = Field(default=1, ge=0, le=len(PARTIAL))
    #: Share of the original answer's content words a partial answer must keep.
    keep_answer: float = Field(default=0.8, ge=0.0, le=1.0)
    #: Longest variant question, in characters (schema maxLength).
    question_max_chars: int = 300
    #: Longest variant answer, in characters (schema maxLength).
    answer_max_chars: int = 400
    #: Sampling temperature.
    temperature: float = 0.7
    #: Most tokens per call (None: sized from the variants asked and the two *_max_chars).
    max_tokens: int | None = None


@register_step
class MultihopVariants(TemplatedStep, ExpandStep):
    type_name = "multihop_variants"
    uses_llm = True
    Config = VariantsConfig
    config: VariantsConfig

    def reads(self) -> list[str]:
        return sorted({"question", "answer", "clue_chain", "answer_short", "answer_long",
                       *(self.template().variables - {"asks"})})

    def schema(self, n: int) -> dict[str, Any]:
        cfg = self.config
        item = {"question": string_schema(10, cfg.question_max_chars),
                "answer": string_schema(1, cfg.answer_max_chars)}
        return {"type": "object", "properties": {"variants": {
            "type": "array", "minItems": n, "maxItems": n,
            "items": {"type": "object", "properties": item, "required": list(item),
                      "additionalProperties": False}}},
            "required": ["variants"], "additionalProperties": False}

    async def process(self, record: dict[str, Any], ctx: ItemContext
                      ) -> list[Output] | ItemResult:
        cfg = self.config
        question, answer = str(record.get("question") or ""), str(record.get("answer") or "")
        original = Output(columns={"variant": "original", "variant_kind": "original",
                                   "question_original": question})
        rng = seeded_rng(ctx.seed, "multihop_variants", question)
        asks = [("full", t) for t in rng.sample(sorted(FULL), cfg.full_variants)] + \
            [("partial", t) for t in rng.sample(sorted(PARTIAL), cfg.partial_variants)]
        if not asks:
            return [original]
        described = [{"kind": k, "name": t, "how": (FULL if k == "full" else PARTIAL)[t]}
                     for k, t in asks]
        n = len(asks)
        response = await self.ask(
            ctx, {**record, "asks": described}, schema=self.schema(n),
            max_tokens=cfg.max_tokens or n * (cfg.question_max_chars + cfg.answer_max_chars)
            // 3 + 32)
        got = parsed_object(response).get("variants")
        got = got if isinstance(got, list) else []
        outputs, rejected = [original], []
        for i, ((kind, name), item) in enumerate(zip(asks, got, strict=False), 1):
            new_q = " ".join(str((item or {}).get("question") or "").split())
            new_a = " ".join(str((item or {}).get("answer") or "").split())
            why = self.problem(kind, question, answer, new_q, new_a)
            if why:
                rejected.append(f"{name}: {why}")
                continue
            columns: dict[str, Any] = {"question": new_q, "variant": name, "variant_kind": kind,
                                       "question_original": question}
            if kind == "partial":  # the model's faithful answer, with the clue citations
                short = str(record.get("answer_short") or "")[len(answer):]
                long = str(record.get("answer_long") or "")[len(answer):]
                columns.update({"answer": new_a, "answer_short": f"{new_a}{short}",
                                "answer_long": f"{new_a}{long}"})
            outputs.append(self.output(response, columns, sample_index=i,
                                       meta={"finish_reason": response.finish_reason}))
        if rejected:
            for o in outputs:
                o.meta = {**o.meta, "variants_rejected": rejected}
        return outputs

    def problem(self, kind: str, question: str, answer: str, new_q: str,
                new_a: str) -> str | None:
        if not plain_text(new_q):
            return "no question"
        if plain_text(new_q) == plain_text(question):
            return "the question is unchanged"
        if kind == "full":
            return None  # the clues and the answer stay: the original answer is kept
        share, missing = support(answer, new_a)
        if share < self.config.keep_answer:
            return (f"the answer no longer states what the clues give ({share:.2f} of "
                    f"{answer!r}'s words; missing {', '.join(missing[:4])})")
        if not _CANNOT.search(new_a):
            return "the answer does not say what cannot be answered from the evidence"
        return None
