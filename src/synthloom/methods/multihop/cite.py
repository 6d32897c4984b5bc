"""``multihop_cite``: fine-grained citations -- the answer cites the clue sentences of the
chunks it rests on, in RAGSynth's form ``[Doc <chunk id>, Sen 2, 5]``.

RAGSynth (arXiv 2505.10989; EachSheep/RAGSynth
``knowledge_enhancement/components/final_answer_generator``) numbers every sentence of each
passage ``[Sen n]`` and has the model correct an answer's references into a *short* answer (the
sentences that directly answer) and a *long* one (those plus the sentences the question itself
rests on). Here the references come from the clue chain, without a call: each hop's passage is
split into sentences, and the sentence(s) that state the hop's clue are found by content-word
overlap (``min_overlap``; the best one at least). ``answer_short`` cites the last hop (the
clue the answer is copied from), ``answer_long`` every hop; ``citations`` lists each hop's
chunk, sentence numbers and sentences. A hop whose clue matches no sentence is a drop naming
it (its answer could not be cited).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.methods.common.overlap import support

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n{2,}")


def sentences(passage: str) -> list[str]:
    """The passage's sentences (and headings / paragraphs), numbered from 1 by position."""
    return [" ".join(s.split()) for s in _SENTENCE.split(passage) if s and s.strip()]


def cite(doc: str, ids: list[int]) -> str:
    return f"[Doc {doc}, Sen {', '.join(map(str, ids))}]"


class CiteConfig(StepConfig):
    #: Share of the clue's content words a sentence must hold to be cited with it.
    min_overlap: float = Field(default=0.6, ge=0.0, le=1.0)


@register_step
class MultihopCite(MapStep):
    """Adds ``citations``, ``answer_short``, ``answer_long`` (answers with [Doc, Sen] refs)."""

    type_name = "multihop_cite"
    Config = CiteConfig
    config: CiteConfig

    def reads(self) -> list[str]:
        return ["answer", "clue_chain"]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        answer = str(record.get("answer") or "").strip()
        chain = record.get("clue_chain") or []
        if not answer or not chain:
            return ItemResult.drop("record has no answer and clue chain to cite")
        citations = []
        for hop in chain:
            found = clue_sentences(str(hop.get("clue") or ""), str(hop.get("passage") or ""),
                                   self.config.min_overlap)
            if not found:
                return ItemResult.drop(
                    f"hop {hop.get('hop')}'s clue matches no sentence of chunk "
                    f"{hop.get('chunk_id')}: {hop.get('clue')!r}")
            citations.append({"hop": hop.get("hop"), "chunk_id": hop.get("chunk_id"),
                              "sentence_ids": [i for i, _ in found],
                              "sentences": [s for _, s in found]})
        short = cite(citations[-1]["chunk_id"], citations[-1]["sentence_ids"])
        long = "".join(cite(c["chunk_id"], c["sentence_ids"]) for c in citations)
        return Output(columns={"citations": citations, "answer_short": f"{answer} {short}",
                               "answer_long": f"{answer} {long}"})


def clue_sentences(clue: str, passage: str, min_overlap: float) -> list[tuple[int, str]]:
    """(number, sentence) of the passage's sentences holding the clue: the best match, plus
    any other at ``min_overlap`` or above (a clue may paraphrase two sentences)."""
    scored = [(support(clue, s)[0], i, s) for i, s in enumerate(sentences(passage), 1)]
    if not scored:
        return []
    best = max(scored, key=lambda x: x[0])
    if best[0] < min_overlap:
        return []
    return [(i, s) for score, i, s in scored if score >= min_overlap and
            (score == best[0] or score >= max(min_overlap, 0.8))]
