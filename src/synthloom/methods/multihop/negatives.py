"""``multihop_negatives``: retriever training triples -- each question's positive passages
(the chunks of its clue chain) and hard negatives (passages BM25 ranks high for the question
that are not among its positives).

RAGSynth (arXiv 2505.10989) trains retrievers on its queries, rephrasings included, each mapped
to its positive chunks; hard negatives are mined ANCE-style from the retriever's own top
results minus the positives (EachSheep/RAGSynth ``rag/embed/embed_tune_model_lora.py``:
``ANCELoss``, ``num_negatives`` 3, margin 0.2). Here the miner is BM25 over every passage the
run's clue chains hold (the corpus's chunks that made clues), queried with the question; a
global step, so every passage is in the pool. ``positives`` / ``hard_negatives`` are
[{chunk_id, text}]; the ``retriever-triples`` export writes (query, pos, neg) rows. A question
with no negative left (a tiny corpus) keeps ``hard_negatives: []``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthloom.core.context import RunContext
from synthloom.core.errors import SynthloomError
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import GlobalStep, StepConfig


class NegativesConfig(StepConfig):
    #: Hard negatives per question (RAGSynth's ANCE: 3).
    negatives: int = Field(default=3, ge=0, le=50)
    #: BM25 stopword list (bm25s's: a language code such as ``en``).
    stopwords: str = "en"


@register_step
class MultihopNegatives(GlobalStep):
    """Adds ``positives`` and ``hard_negatives`` ([{chunk_id, text}])."""

    type_name = "multihop_negatives"
    Config = NegativesConfig
    config: NegativesConfig

    def reads(self) -> list[str]:
        return ["question", "clue_chain"]

    async def process_all(self, records: list[dict[str, Any]],
                          ctx: RunContext) -> list[ItemResult]:
        pool: dict[str, str] = {}  # chunk id -> passage, first seen
        for record in records:
            for hop in record.get("clue_chain") or []:
                if hop.get("chunk_id") and hop.get("passage"):
                    pool.setdefault(str(hop["chunk_id"]), str(hop["passage"]))
        ids = list(pool)
        index = None
        if ids and self.config.negatives:
            try:
                from synthloom.sources.retrieval import Bm25Index
            except ImportError:  # pragma: no cover - bm25s is a core dependency
                raise SynthloomError('hard negatives need bm25s: pip install "bm25s>=0.2"') \
                    from None
            index = Bm25Index([pool[i] for i in ids], self.config.stopwords)
        results = []
        for record in records:
            positives = list(dict.fromkeys(str(h["chunk_id"]) for h in
                                           record.get("clue_chain") or [] if h.get("chunk_id")))
            if not positives:
                results.append(ItemResult.drop("record has no clue chain chunks as positives"))
                continue
            negatives: list[str] = []
            if index is not None:
                k = min(len(ids), self.config.negatives + len(positives))
                for j, _ in index.top(str(record.get("question") or ""), k=k):
                    if ids[j] not in positives and len(negatives) < self.config.negatives:
                        negatives.append(ids[j])
            results.append(ItemResult(outputs=[Output(columns={
                "positives": [{"chunk_id": c, "text": pool.get(c, "")} for c in positives],
                "hard_negatives": [{"chunk_id": c, "text": pool[c]} for c in negatives]})]))
        return results
