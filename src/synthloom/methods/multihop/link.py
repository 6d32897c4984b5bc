"""``multihop_link``: the global step that links chunks through shared entities and builds the
clue chains questions are written from (RAGSynth's clue linking; Source2Synth's seed entity ->
second document).

The entity index maps each normalised entity string to the clues that name it; two clues of
different chunks (of one document or of two) that share a key are linked, and that key is
their bridge entity. With ``bm25_top_k > 0`` a clue's entity is also looked up with BM25 over
every clue's fact, and a retrieved clue is linked when its fact mentions the entity as whole
words -- recall for entities the model did not list.

Per chunk (the anchor, whose clue is hop 1) the step emits up to ``single_per_chunk``
single-hop chains (one clue) and up to ``multi_per_chunk`` multi-hop chains of
``min_hops``..``max_hops`` clues, each hop in a new chunk and each bridge a new entity, chosen
with a generator seeded by the run seed and the chunk id (deterministic). Output records keep
the anchor's ``_meta.source`` (file and chunk span); ``_meta.sources`` lists every hop's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, model_validator

from synthloom.core.context import RunContext
from synthloom.core.errors import SynthloomError
from synthloom.core.records import META, ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import GlobalStep, StepConfig
from synthloom.methods.common.corpus import chunk_source, seeded_rng
from synthloom.methods.common.entities import mentions, token_text


class LinkConfig(StepConfig):
    #: Single-hop chains (one clue) emitted per anchor chunk, at most.
    single_per_chunk: int = Field(default=1, ge=0)
    #: Multi-hop chains emitted per anchor chunk, at most.
    multi_per_chunk: int = Field(default=1, ge=0)
    #: Fewest clues in a multi-hop chain.
    min_hops: int = Field(default=2, ge=2, le=3)
    #: Most clues in a multi-hop chain.
    max_hops: int = Field(default=3, ge=2, le=3)
    #: Consecutive hops must come from different documents (default: different chunks).
    cross_document: bool = False
    #: 0: link by the entity index only; k > 0: also BM25 top-k clues per entity.
    bm25_top_k: int = Field(default=0, ge=0)
    #: Entities named in more chunks than this are too generic to bridge (0: no limit).
    max_entity_chunks: int = Field(default=0, ge=0)
    #: Candidate chains enumerated per anchor chunk before sampling (bounds the work).
    max_candidates: int = Field(default=200, ge=1)

    @model_validator(mode="after")
    def _hops_order(self) -> LinkConfig:
        if self.min_hops > self.max_hops:
            raise ValueError(f"min_hops {self.min_hops} > max_hops {self.max_hops}")
        return self


@dataclass
class _Clue:
    rec: int
    chunk_id: str
    doc_id: str
    fact: str
    clue_index: int
    names: dict[str, str]  # entity key -> display name
    padded: str = field(default="")


#: A chain: clue node ids and the bridge keys between them (len(bridges) == len(nodes) - 1).
_Chain = tuple[tuple[int, ...], tuple[str, ...]]


@register_step
class MultihopLink(GlobalStep):
    type_name = "multihop_link"
    Config = LinkConfig
    config: LinkConfig

    async def process_all(self, records: list[dict[str, Any]],
                          ctx: RunContext) -> list[ItemResult]:
        nodes = _nodes(records)
        index = self._entity_index(nodes)
        linker = _Linker(nodes, index, self.config)
        results = []
        for r, record in enumerate(records):
            if not isinstance(record.get("clues"), list) or not record["clues"]:
                results.append(ItemResult.drop("chunk has no clues to build questions from"))
                continue
            mine = [i for i, n in enumerate(nodes) if n.rec == r]
            rng = seeded_rng(ctx.seed, "multihop_link", record.get("chunk_id") or record[META]["id"])
            chains = self._singles(mine, rng) + linker.sample(mine, rng)
            if not chains:
                keys = sorted({k for i in mine for k in nodes[i].names})
                results.append(ItemResult.drop(
                    "no multi-hop chain starts in this chunk: none of its entities "
                    f"({', '.join(keys[:8])}) links to a clue of another chunk"))
                continue
            results.append(ItemResult(outputs=[_output(chain, nodes, records)
                                               for chain in chains]))
        return results

    def _singles(self, mine: list[int], rng: Any) -> list[_Chain]:
        picks = rng.sample(mine, min(self.config.single_per_chunk, len(mine)))
        return [((i,), ()) for i in sorted(picks)]

    def _entity_index(self, nodes: list[_Clue]) -> dict[str, list[int]]:
        index: dict[str, list[int]] = {}
        for i, node in enumerate(nodes):
            for key in node.names:
                index.setdefault(key, []).append(i)
        limit = self.config.max_entity_chunks
        if limit:  # an entity in very many chunks ("python", "data") links everything to all
            index = {k: v for k, v in index.items()
                     if len({nodes[i].chunk_id for i in v}) <= limit}
        return index


class _Linker:
    """Neighbours of a clue through one entity, and chain enumeration from an anchor."""

    def __init__(self, nodes: list[_Clue], index: dict[str, list[int]], cfg: LinkConfig) -> None:
        self.nodes, self.index, self.cfg = nodes, index, cfg
        self._bm25: Any = None
        if cfg.bm25_top_k and nodes:
            try:
                from synthloom.sources.retrieval import Bm25Index
            except ImportError:  # pragma: no cover - bm25s is a core dependency
                raise SynthloomError('bm25 linking needs bm25s: pip install "bm25s>=0.2"') from None
            self._bm25 = Bm25Index([n.fact for n in nodes], "en")
            for node in nodes:
                node.padded = token_text(node.fact)

    def neighbours(self, i: int, key: str) -> list[int]:
        found = set(self.index.get(key, []))
        if self._bm25 is not None:
            query = self.nodes[i].names.get(key, key)
            for j, score in self._bm25.top(query, k=self.cfg.bm25_top_k):
                if score > 0 and mentions(key, self.nodes[j].padded):
                    found.add(j)
        return sorted(found)

    def _apart(self, a: _Clue, b: _Clue) -> bool:
        if self.cfg.cross_document:
            return a.doc_id != b.doc_id
        return a.chunk_id != b.chunk_id

    def candidates(self, mine: list[int]) -> list[_Chain]:
        cfg = self.cfg
        out: list[_Chain] = []
        for first in mine:
            for k1 in sorted(self.nodes[first].names):
                for second in self.neighbours(first, k1):
                    a, b = self.nodes[first], self.nodes[second]
                    if not self._apart(a, b):
                        continue
                    if cfg.min_hops <= 2:
                        out.append(((first, second), (k1,)))
                    if cfg.max_hops >= 3:
                        out.extend(self._third(first, second, k1))
                    if len(out) >= cfg.max_candidates:
                        return out[: cfg.max_candidates]
        return out

    def _third(self, first: int, second: int, k1: str) -> list[_Chain]:
        a, b = self.nodes[first], self.nodes[second]
        out: list[_Chain] = []
        for k2 in sorted(b.names):
            if k2 == k1 or k2 in a.names:  # a bridge hop 1 already names is a shortcut
                continue
            for third in self.neighbours(second, k2):
                c = self.nodes[third]
                if third in (first, second) or not self._apart(b, c) or \
                        c.chunk_id in (a.chunk_id, b.chunk_id):
                    continue
                out.append(((first, second, third), (k1, k2)))
        return out

    def sample(self, mine: list[int], rng: Any) -> list[_Chain]:
        """Up to ``multi_per_chunk`` distinct chains; the hop count of each is drawn among
        those available, so 2- and 3-hop chains mix."""
        if not self.cfg.multi_per_chunk:
            return []
        by_hops: dict[int, list[_Chain]] = {}
        for chain in self.candidates(mine):
            by_hops.setdefault(len(chain[0]), []).append(chain)
        picked: list[_Chain] = []
        while len(picked) < self.cfg.multi_per_chunk and any(by_hops.values()):
            hops = rng.choice(sorted(h for h, v in by_hops.items() if v))
            pool = by_hops[hops]
            picked.append(pool.pop(rng.randrange(len(pool))))
        return picked


def _nodes(records: list[dict[str, Any]]) -> list[_Clue]:
    nodes = []
    for r, record in enumerate(records):
        for clue in record.get("clues") or []:
            if not isinstance(clue, dict):
                continue
            names = dict(zip(clue.get("entity_keys") or [], clue.get("entities") or [],
                             strict=False))
            nodes.append(_Clue(rec=r, chunk_id=str(record.get("chunk_id") or record[META]["id"]),
                               doc_id=str(record.get("doc_id") or ""), fact=str(clue["fact"]),
                               clue_index=int(clue.get("clue_index", 0)), names=names))
    return nodes


def _output(chain: _Chain, nodes: list[_Clue], records: list[dict[str, Any]]) -> Output:
    ids, bridges = chain
    hops = []
    for h, i in enumerate(ids):
        node = nodes[i]
        # A hop's entity is the bridge to the next hop (the last hop: to the previous one).
        key = bridges[h] if h < len(bridges) else (bridges[-1] if bridges else
                                                   next(iter(node.names), ""))
        hops.append({"hop": h + 1, "chunk_id": node.chunk_id,
                     "source": chunk_source(records[node.rec]), "clue": node.fact,
                     "clue_index": node.clue_index, "entity": node.names.get(key, key),
                     # the chunk itself: sentence citations and retriever positives need it
                     "passage": str(records[node.rec].get("text") or "")})
    anchor = records[nodes[ids[0]].rec]
    bridge_names = [nodes[ids[h]].names.get(k, k) for h, k in enumerate(bridges)]
    parents = list(dict.fromkeys(records[nodes[i].rec][META]["id"] for i in ids[1:]))
    anchor_id = anchor[META]["id"]
    columns = {"kind": "multi" if len(ids) > 1 else "single", "hops": len(ids),
               "clue_chain": hops, "bridge_entities": bridge_names,
               "doc_id": anchor.get("doc_id"), "chunk_id": anchor.get("chunk_id"),
               "title": anchor.get("title")}
    return Output(columns=columns, replace=True,
                  extra_parents=[p for p in parents if p != anchor_id],
                  meta={"sources": [h["source"] for h in hops]})
