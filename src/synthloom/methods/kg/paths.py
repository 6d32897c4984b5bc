"""``kg_paths``: the global step that merges every chunk's triples into one entity graph and
samples reasoning paths from it (KAQG / MedReason: questions grounded in KG paths).

Graph: nodes are normalised entity keys (shown by their most frequent surface form); an edge
is a distinct (head, relation, tail) and remembers the chunks that stated it; a node's degree
is its number of distinct neighbours. Plain dicts -- no graph library needed.

Paths: per chunk (the anchor), ``paths_per_chunk`` walks start at one of its triples (head ->
tail) and extend from the current end over an unused edge to an unvisited node (against the
edge's direction too unless ``directed``), up to a target length drawn from ``lengths``. All
choices come from a generator seeded by the run seed and the chunk id: the same corpus and
seed give the same paths. A path already emitted (from an earlier chunk) is not emitted again.

Difficulty follows path length and node degree:
``difficulty = w * (L - 1) / (Lmax - 1) + (1 - w) * log(1 + mean degree) / log(1 + max degree)``
with ``w = length_weight``; the mean is over the nodes the reader must resolve (all but the
answer) -- a well-connected node has many relations to choose from, so it is harder to follow.
Each path also gets KAQG's item features for its level (``kaqg_features``: stem length,
technical-term density, Bloom's cognitive level, drawn so their weighted sum hits the level's
target; ``bloom_level``), which the question prompt asks for (see ``levels.py``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, field_validator

from synthloom.core.context import RunContext
from synthloom.core.records import META, ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import GlobalStep, StepConfig
from synthloom.methods.common.corpus import chunk_source, seeded_rng
from synthloom.methods.common.entities import normalize_entity
from synthloom.methods.kg.levels import BLOOM, feature_levels
from synthloom.quality.text import plain_words

LEVELS = ((0.34, "easy"), (0.67, "medium"), (1.01, "hard"))


class PathsConfig(StepConfig):
    #: Paths sampled per chunk's graph (fewer when the walks run out).
    paths_per_chunk: int = Field(default=2, ge=1)
    #: Target path lengths (triples); each path draws one (a walk may end shorter).
    lengths: list[int] = [1, 2, 3]
    #: Walk edges only head -> tail (default: both ways, so more paths connect).
    directed: bool = False
    #: Weight of path length (vs node degree) in the difficulty score.
    length_weight: float = Field(default=0.6, ge=0.0, le=1.0)
    #: Walk attempts per chunk, per path wanted (duplicates and dead ends use them up).
    attempts: int = Field(default=4, ge=1)

    @field_validator("lengths")
    @classmethod
    def _lengths(cls, value: list[int]) -> list[int]:
        if not value or any(n < 1 or n > 6 for n in value):
            raise ValueError("lengths: a non-empty list of path lengths between 1 and 6")
        return value


@dataclass
class _Edge:
    head: str  # node keys
    tail: str
    relation: str
    surface: dict[str, str]  # head/relation/tail as first stated
    recs: list[int] = field(default_factory=list)  # records (chunks) that stated it


@dataclass
class Graph:
    names: dict[str, Counter[str]] = field(default_factory=dict)
    edges: list[_Edge] = field(default_factory=list)
    #: node -> [(edge id, other node, forward?)]
    adjacency: dict[str, list[tuple[int, str, bool]]] = field(default_factory=dict)

    def name(self, key: str) -> str:
        # most frequent surface form; ties: the first seen
        return self.names[key].most_common(1)[0][0]

    def degree(self, key: str) -> int:
        # Memoised: a hub entity's adjacency is long and paths ask for it again and again.
        cached = self._degrees.get(key)
        if cached is None:
            cached = self._degrees[key] = len({o for _, o, _ in self.adjacency.get(key, [])})
        return cached

    _degrees: dict[str, int] = field(default_factory=dict)
    #: record index -> ids of the edges it stated, ascending (where its paths may start).
    starts: dict[int, list[int]] = field(default_factory=dict)

    @property
    def max_degree(self) -> int:
        return max((self.degree(k) for k in self.adjacency), default=0)


def build_graph(records: Iterable[dict[str, Any]]) -> Graph:
    graph = Graph()
    by_key: dict[tuple[str, str, str], int] = {}
    for r, record in enumerate(records):
        for t in record.get("triples") or []:
            if not isinstance(t, dict) or not t.get("head_key") or not t.get("tail_key"):
                continue
            h, tl = t["head_key"], t["tail_key"]
            graph.names.setdefault(h, Counter())[t["head"]] += 1
            graph.names.setdefault(tl, Counter())[t["tail"]] += 1
            key = (h, " ".join(plain_words(t["relation"])), tl)
            if key not in by_key:
                by_key[key] = len(graph.edges)
                graph.edges.append(_Edge(h, tl, t["relation"], {
                    "head": t["head"], "relation": t["relation"], "tail": t["tail"]}))
                eid = by_key[key]
                graph.adjacency.setdefault(h, []).append((eid, tl, True))
                graph.adjacency.setdefault(tl, []).append((eid, h, False))
            edge = graph.edges[by_key[key]]
            if not edge.recs or edge.recs[-1] != r:  # records come in order: one look back
                edge.recs.append(r)
    for eid, edge in enumerate(graph.edges):
        for r in edge.recs:
            graph.starts.setdefault(r, []).append(eid)
    for options in graph.adjacency.values():
        options.sort()  # walks choose from the sorted options: sorted once here
    return graph


#: A walked path: (edge id, forward?) per step.
_Path = tuple[tuple[int, bool], ...]


@register_step
class KgPaths(GlobalStep):
    type_name = "kg_paths"
    Config = PathsConfig
    config: PathsConfig

    async def process_all(self, records: list[dict[str, Any]],
                          ctx: RunContext) -> list[ItemResult]:
        graph = build_graph(records)
        max_degree = graph.max_degree
        # KAQG's concept map (kg_concepts): entity key -> the concepts it is an instance of.
        self._concepts: dict[str, list[str]] = {}
        for record in records:
            for c in record.get("concepts") or []:
                for entity in c.get("entities") or []:
                    kinds = self._concepts.setdefault(normalize_entity(entity), [])
                    if c["concept"] not in kinds:
                        kinds.append(c["concept"])
        seen: set[_Path] = set()
        results = []
        for r, record in enumerate(records):
            starts = graph.starts.get(r, [])
            if not starts:
                results.append(ItemResult.drop("chunk has no triples to start a path from"))
                continue
            rng = seeded_rng(ctx.seed, "kg_paths", record.get("chunk_id") or record[META]["id"])
            paths: list[_Path] = []
            for _ in range(self.config.paths_per_chunk * self.config.attempts):
                if len(paths) >= self.config.paths_per_chunk:
                    break
                path = self._walk(graph, rng.choice(starts), rng.choice(self.config.lengths), rng)
                if path not in seen:
                    seen.add(path)
                    paths.append(path)
            if not paths:
                results.append(ItemResult.drop(
                    "every path from this chunk's triples was already sampled from an earlier "
                    "chunk"))
                continue
            results.append(ItemResult(outputs=[
                self._output(graph, p, records, r, max_degree, ctx.seed) for p in paths]))
        return results

    def _walk(self, graph: Graph, start: int, target: int, rng: Any) -> _Path:
        edge = graph.edges[start]
        steps: list[tuple[int, bool]] = [(start, True)]
        visited = {edge.head, edge.tail}
        used = {start}
        current = edge.tail
        while len(steps) < target:
            options = [(eid, other, fwd) for eid, other, fwd in graph.adjacency.get(current, [])
                       if eid not in used and other not in visited
                       and (fwd or not self.config.directed)]
            if not options:
                break  # dead end: the path is shorter than its target
            eid, other, fwd = rng.choice(options)  # adjacency is sorted: options are too
            steps.append((eid, fwd))
            used.add(eid)
            visited.add(other)
            current = other
        return tuple(steps)

    def _output(self, graph: Graph, path: _Path, records: list[dict[str, Any]],
                at: int, max_degree: int, seed: int = 0) -> Output:
        cfg = self.config
        anchor = records[at]
        hops, nodes, recs = [], [], []
        for eid, fwd in path:
            edge = graph.edges[eid]
            rec = at if at in edge.recs else edge.recs[0]  # the anchor chunk when it says so
            recs.append(rec)
            hops.append({**edge.surface, "chunk_id": records[rec].get("chunk_id"),
                         "direction": "forward" if fwd else "backward"})
            if not nodes:
                nodes.append(edge.head if fwd else edge.tail)
            nodes.append(edge.tail if fwd else edge.head)
        length = len(path)
        longest = max(cfg.lengths)
        length_part = (length - 1) / (longest - 1) if longest > 1 else 0.0
        resolve = [graph.degree(n) for n in nodes[:-1]]
        mean_degree = sum(resolve) / len(resolve)
        degree_part = math.log1p(mean_degree) / math.log1p(max_degree) if max_degree else 0.0
        difficulty = round(cfg.length_weight * length_part
                           + (1 - cfg.length_weight) * min(degree_part, 1.0), 3)
        level = next(name for bound, name in LEVELS if difficulty < bound)
        # KAQG: item features (Bloom's level among them) drawn to hit the level's target score.
        features = feature_levels(level, seeded_rng(seed, "kaqg", anchor[META]["id"], path))
        answer, start = graph.name(nodes[-1]), graph.name(nodes[0])
        reasoning = " ".join(
            f"Step {i + 1}: {h['head']} {h['relation']} {h['tail']}." for i, h in enumerate(hops)
        ) + f" So the answer is {answer}."
        anchor_id = anchor[META]["id"]
        parents = list(dict.fromkeys(records[r][META]["id"] for r in recs))
        columns = {
            "path": hops, "path_length": length, "start_entity": start, "answer": answer,
            "node_degrees": [{"entity": graph.name(n), "degree": graph.degree(n)} for n in nodes],
            "difficulty": difficulty, "difficulty_level": level, "reasoning": reasoning,
            "kaqg_features": features,
            "concepts": {graph.name(n): self._concepts[n] for n in nodes
                         if n in getattr(self, "_concepts", {})},
            "bloom_level": BLOOM[features["stem_cognitive_level"]],
            "doc_id": anchor.get("doc_id"), "chunk_id": anchor.get("chunk_id"),
            "title": anchor.get("title"),
        }
        return Output(columns=columns, replace=True,
                      extra_parents=[p for p in parents if p != anchor_id],
                      meta={"sources": [chunk_source(records[r]) for r in recs],
                            "difficulty_parts": {"length": round(length_part, 3),
                                                 "degree": round(min(degree_part, 1.0), 3),
                                                 "mean_degree": round(mean_degree, 3),
                                                 "max_degree": max_degree}})
