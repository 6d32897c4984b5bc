"""``multihop_evidence``: the evidence given with each question, complete or partial.

RAGSynth (arXiv 2505.10989) trains retrieval-augmented models for robustness by pairing a
query with complete clues and with partial ones. ``clue_completeness: complete`` gives every
hop's clue; ``partial`` removes one hop's clue (``partial_hop``: seeded random, first or last)
and records which (``removed_clue``; ``answerable_from_evidence`` is then false); ``both``
emits the two variants. A single-hop question has no partial variant: under ``partial`` it is
a drop that says so, under ``both`` it gives only the complete one.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, StepConfig


class EvidenceConfig(StepConfig):
    clue_completeness: Literal["complete", "partial", "both"] = "complete"
    partial_hop: Literal["random", "first", "last"] = "random"


@register_step
class MultihopEvidence(ExpandStep):
    type_name = "multihop_evidence"
    Config = EvidenceConfig
    config: EvidenceConfig

    def reads(self) -> list[str]:
        return ["clue_chain"]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list[Output]:
        cfg = self.config
        chain = record.get("clue_chain") or []
        if not chain:
            return ItemResult.drop("record has no clue_chain to give as evidence")
        evidence = [_evidence(h) for h in chain]
        outputs = []
        if cfg.clue_completeness in ("complete", "both"):
            outputs.append(Output(columns={"completeness": "complete", "evidence": evidence,
                                           "removed_clue": None,
                                           "answerable_from_evidence": True}))
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
                             "answerable_from_evidence": False},
                    sample_index=1))
        return outputs


def _evidence(hop: dict[str, Any]) -> dict[str, Any]:
    return {"hop": hop.get("hop"), "chunk_id": hop.get("chunk_id"), "clue": hop.get("clue")}
