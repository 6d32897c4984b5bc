"""``multihop_evidence``: the evidence given with each question, complete or partial.

RAGSynth (arXiv 2505.10989) trains retrieval-augmented models for robustness by pairing a
query with complete clues and with partial ones. ``clue_completeness: complete`` gives every
hop's clue; ``partial`` removes one hop's clue (``partial_hop``: seeded random, first or last)
and records which (``removed_clue``; ``answerable_from_evidence`` is then false); ``both``
emits the two variants. A single-hop question has no partial variant: under ``partial`` it is
a drop that says so, under ``both`` it gives only the complete one.

``evidence_answer`` is the answer a faithful generator gives from that evidence: with complete
evidence the answer citing every clue sentence (``answer_long`` from ``multihop_cite``, else
the answer); with a clue removed, that the question cannot be answered from the evidence,
naming what is missing (RAGSynth trains generators to refuse, with no citation, when the
retrieved clues do not hold the answer: ``rag/embed/dpo_dataset_construct.py``'s rejection
statements).
"""

from __future__ import annotations

import random
from typing import Any, Literal

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, StepConfig


class EvidenceConfig(StepConfig):
    #: complete: every hop's clue as evidence; partial: one hop's clue removed (unanswerable);
    #: both: the two variants.
    clue_completeness: Literal["complete", "partial", "both"] = "complete"
    #: Which hop's clue a partial variant removes: seeded random, the first or the last.
    partial_hop: Literal["random", "first", "last"] = "random"


@register_step
class MultihopEvidence(ExpandStep):
    type_name = "multihop_evidence"
    Config = EvidenceConfig
    config: EvidenceConfig

    def reads(self) -> list[str]:
        return ["answer", "answer_long", "clue_chain"]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list[Output]:
        cfg = self.config
        chain = record.get("clue_chain") or []
        if not chain:
            return ItemResult.drop("record has no clue_chain to give as evidence")
        evidence = [_evidence(h) for h in chain]
        outputs = []
        if cfg.clue_completeness in ("complete", "both"):
            outputs.append(Output(columns={
                "completeness": "complete", "evidence": evidence, "removed_clue": None,
                "answerable_from_evidence": True,
                "evidence_answer": record.get("answer_long") or record.get("answer")}))
        if cfg.clue_completeness in ("partial", "both"):
            if len(chain) < 2:
                if not outputs:
                    return ItemResult.drop(
                        "single-hop question: removing its only clue would leave no evidence "
                        "(a partial variant needs 2 or more hops)")
            else:
                gone = {"first": 0, "last": len(chain) - 1}.get(
                    cfg.partial_hop, random.Random(ctx.seed).randrange(len(chain)))
                outputs.append(Output(
                    columns={"completeness": "partial",
                             "evidence": [e for i, e in enumerate(evidence) if i != gone],
                             "removed_clue": evidence[gone],
                             "answerable_from_evidence": False,
                             "evidence_answer": refusal(chain[gone])},
                    sample_index=1))
        return outputs


def refusal(missing: dict[str, Any]) -> str:
    """The faithful answer when the clue of hop ``missing`` is not in the evidence."""
    about = f" about {missing['entity']}" if missing.get("entity") else ""
    return ("This cannot be answered from the evidence: it does not give the fact"
            f"{about} that the answer depends on (hop {missing.get('hop')}).")


def _evidence(hop: dict[str, Any]) -> dict[str, Any]:
    return {"hop": hop.get("hop"), "chunk_id": hop.get("chunk_id"), "clue": hop.get("clue")}
