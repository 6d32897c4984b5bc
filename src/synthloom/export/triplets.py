"""``retriever-triples``: (query, positive passages, hard negatives) rows for training a
retriever -- RAGSynth's retriever data (arXiv 2505.10989; EachSheep/RAGSynth
``knowledge_enhancement/rag/embed/embed_tune_model_lora.py``: each query, its rephrasings
included, maps to its positive chunks, and ANCE hard negatives are the top retrieved chunks
that are not positives, ``num_negatives`` 3).

Records carry ``positives`` and ``hard_negatives`` ([{chunk_id, text}], from the
``multihop_negatives`` step); a row is ``{"query", "pos": [texts], "neg": [texts]}`` -- the
shape FlagEmbedding and sentence-transformers' triplet loaders read. A record without a
question, a positive or a negative is skipped with its reason.

(The module's name sorts after ``rl`` and ``rows``: formats register in import order, and the
package's modules are imported alphabetically by the step registry, so the docs table's order
holds either way.)
"""

from __future__ import annotations

from typing import Any

from synthloom.core.errors import SynthloomError
from synthloom.export.registry import ColumnMap, Skip, register_format


def retriever_columns(fmt: str, sample: list[dict[str, Any]], given: ColumnMap
                      ) -> dict[str, Any]:
    query = given.instruction or "question"
    if sample and not any("hard_negatives" in r for r in sample):
        raise SynthloomError(f"{fmt}: the records have no hard_negatives column (run a recipe "
                             "with the multihop_negatives step, e.g. multihop-qa)")
    return {"query": query}


def _texts(items: Any) -> list[str]:
    return [str(i["text"]) for i in items or [] if isinstance(i, dict) and i.get("text")]


@register_format(
    "retriever-triples",
    help="`query`, `pos` (positive passages), `neg` (hard negatives)",
    readers="FlagEmbedding / sentence-transformers retriever fine-tuning (query, pos, neg)",
    columns=retriever_columns,
    file="retriever.jsonl",
    reasoning="drop",
)
def retriever_row(record: dict[str, Any], cols: dict[str, Any], mode: str,
                  meta: bool) -> dict[str, Any]:
    query = str(record.get(cols["query"]) or "").strip()
    if not query:
        raise Skip(f"{cols['query']} missing")
    pos, neg = _texts(record.get("positives")), _texts(record.get("hard_negatives"))
    if not pos:
        raise Skip("no positive passage")
    if not neg:
        raise Skip("no hard negative")
    row: dict[str, Any] = {"query": query, "pos": pos, "neg": neg}
    if meta and isinstance(record.get("_meta"), dict):
        row["id"] = record["_meta"].get("id")
    return row
