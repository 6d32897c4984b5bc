"""MedReason (arXiv 2504.00993, UCSC-VLAA/MedReason): chains of thought for existing QA pairs,
grounded in knowledge-graph paths between the question's and the answer's entities.

The authors' pipeline (``src/data_generation/generate_reasoning.py`` and ``utils.py``): extract
the entities of the question and of the answer, map them onto KG nodes, collect
``nx.all_shortest_paths`` between every question entity and every answer entity, keep the few
most relevant paths, and have the model reason along them to a conclusion without assuming the
given answer; ``quality_filtering.py`` then strips the conclusion, has a model answer from the
reasoning alone, and keeps the item only when that answer is judged equal to the gold one.

Here:

* ``kg_qa_paths`` (global) builds the graph -- from each item's own triples (``scope: item``:
  a math word problem's facts are its own), from every item's (``scope: all``), plus a KG file
  of the user's (``graph_file``: JSONL/CSV with head/relation/tail, or PrimeKG's
  x_name/display_relation/y_name) -- finds the question's and the answer's nodes by whole-word
  match, and keeps up to ``paths_per_pair`` shortest paths per (question node, answer node)
  pair, ``max_paths`` in all. No path is a drop that names both entity lists.
* ``kg_cot`` asks the model for MedReason's three parts (finding reasoning paths, reasoning
  process, conclusion) with the paths in the prompt.
* ``kg_cot_check`` is MedReason's quality filter: the reasoning minus its conclusion goes to a
  model that answers from it (``mode: reanswer``; ``conclusion`` checks the CoT's own
  conclusion, no call); the answer must equal the gold (numbers: math answer equivalence;
  text: the gold's words inside the answer). A CoT that does not reach the gold is a drop.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections import deque
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import FilterStep, GlobalStep, MapStep, StepConfig
from synthloom.methods.common.entities import normalize_entity, token_text
from synthloom.methods.kg.paths import Graph, build_graph
from synthloom.prompting.templated import TemplatedStep
from synthloom.quality.text import plain_words
from synthloom.verify.math_answers import answers_equal, extract_answer, parse_number

#: One found path: (edge id, forward?) per hop, as kg_paths walks them.
_Path = tuple[tuple[int, bool], ...]
#: Longest entity name looked up in a text, in words.
_MAX_NGRAM = 6


class QaPathsConfig(StepConfig):
    #: Column with the question (its entities are the paths' start nodes).
    question_column: str = "question"
    #: The gold answer (``math_gold`` writes ``gold``; a user's QA file may name ``answer``).
    answer_column: str = "gold"
    #: ``item``: each item's own triples form its graph; ``all``: one graph of every item's.
    scope: Literal["item", "all"] = "item"
    #: A KG of the user's (JSONL or CSV: head/relation/tail or x_name/display_relation/y_name),
    #: added to the graph (scope ``all`` only: one graph for every item).
    graph_file: str | None = None
    #: Shortest paths kept per (question node, answer node) pair (MedReason: top 3).
    paths_per_pair: int = Field(default=3, ge=1)
    #: Paths kept per item in all, shortest first.
    max_paths: int = Field(default=6, ge=1)
    #: Longest path searched, in triples.
    max_length: int = Field(default=4, ge=1, le=8)

    @model_validator(mode="after")
    def _file_needs_one_graph(self) -> QaPathsConfig:
        if self.graph_file and self.scope != "all":
            raise ValueError("graph_file needs scope: all (one graph shared by every item)")
        return self


def read_graph_file(path: str) -> list[dict[str, Any]]:
    """Triples of a KG file, in kg_triples' shape (head/relation/tail and their keys)."""
    file = Path(path)
    if file.suffix.lower() == ".csv":
        with file.open(newline="", encoding="utf-8") as fh:
            rows: list[dict[str, Any]] = list(csv.DictReader(fh))
    else:
        rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    triples = []
    for row in rows:
        head = row.get("head", row.get("x_name"))
        relation = row.get("relation", row.get("display_relation"))
        tail = row.get("tail", row.get("y_name"))
        if not head or not relation or not tail:
            continue
        triples.append({"head": str(head), "relation": str(relation), "tail": str(tail),
                        "head_key": normalize_entity(str(head)),
                        "tail_key": normalize_entity(str(tail))})
    return triples


def nodes_in(text: str, graph: Graph) -> list[str]:
    """Graph nodes named in ``text`` (whole words, longest names first)."""
    words = token_text(text).split()
    found: list[str] = []
    for n in range(min(_MAX_NGRAM, len(words)), 0, -1):
        for i in range(len(words) - n + 1):
            key = " ".join(words[i:i + n])
            if key in graph.adjacency and key not in found:
                found.append(key)
    return found


def answer_nodes(answer: str, graph: Graph) -> list[str]:
    """Nodes that name the answer: named in it, or naming it ("12 rolls" for the answer 12)."""
    key = normalize_entity(answer)
    if not key:
        return []
    padded = f" {key} "
    found = nodes_in(answer, graph)
    found += sorted(n for n in graph.adjacency if n not in found and padded in f" {n} ")
    return found


def shortest_paths(graph: Graph, source: str, target: str, limit: int,
                   max_length: int) -> list[_Path]:
    """Up to ``limit`` shortest paths source -> target (edges either way, as MedReason's
    undirected ``nx.Graph``); deterministic: adjacency lists are sorted."""
    if source == target or source not in graph.adjacency or target not in graph.adjacency:
        return []
    dist = {source: 0}
    queue = deque([source])
    while queue:  # BFS distances, stopping at the target's level
        node = queue.popleft()
        if node == target or dist[node] >= max_length:
            continue
        for _, other, _ in graph.adjacency[node]:
            if other not in dist:
                dist[other] = dist[node] + 1
                queue.append(other)
    if target not in dist:
        return []
    paths: list[_Path] = []

    def back(node: str, suffix: list[tuple[int, bool]]) -> None:
        # Walk back from the target over edges that lower the distance by one.
        if len(paths) >= limit:
            return
        if node == source:
            paths.append(tuple(reversed(suffix)))
            return
        for eid, other, fwd in graph.adjacency[node]:
            if dist.get(other) == dist[node] - 1:
                # the edge read from ``other`` to ``node``: forward when other is its head
                back(other, [*suffix, (eid, not fwd)])

    back(target, [])
    return paths


def path_hops(graph: Graph, path: _Path) -> list[dict[str, str]]:
    return [{**graph.edges[eid].surface, "direction": "forward" if fwd else "backward"}
            for eid, fwd in path]


def path_text(hops: list[dict[str, str]]) -> str:
    """``A --relation--> B <--relation-- C``: MedReason's ``a->b->c`` with the relations."""
    parts = [hops[0]["head"] if hops[0]["direction"] == "forward" else hops[0]["tail"]]
    for h in hops:
        if h["direction"] == "forward":
            parts.append(f"--{h['relation']}--> {h['tail']}")
        else:
            parts.append(f"<--{h['relation']}-- {h['head']}")
    return " ".join(parts)


@register_step
class KgQaPaths(GlobalStep):
    """Adds ``question_entities``, ``answer_entities``, ``kg_paths`` ([{hops, text}])."""

    type_name = "kg_qa_paths"
    Config = QaPathsConfig
    config: QaPathsConfig

    def reads(self) -> list[str]:
        return ["triples", self.config.question_column, self.config.answer_column]

    async def process_all(self, records: list[dict[str, Any]],
                          ctx: RunContext) -> list[ItemResult]:
        cfg = self.config
        shared = None
        if cfg.scope == "all":
            extra = [{"triples": read_graph_file(cfg.graph_file)}] if cfg.graph_file else []
            shared = build_graph(itertools.chain(extra, records))  # read, not copied
        return [self._one(record, shared or build_graph([record])) for record in records]

    def _one(self, record: dict[str, Any], graph: Graph) -> ItemResult:
        cfg = self.config
        question = str(record.get(cfg.question_column) or "")
        answer = str(record.get(cfg.answer_column) or "")
        if not plain_words(answer):
            return ItemResult.drop(f"no gold answer in column {cfg.answer_column!r}")
        targets = answer_nodes(answer, graph)
        sources = [n for n in nodes_in(question, graph) if n not in targets]
        found: list[_Path] = []
        for s in sources:
            for t in targets:
                for p in shortest_paths(graph, s, t, cfg.paths_per_pair, cfg.max_length):
                    if p not in found:
                        found.append(p)
        if not found:
            return ItemResult.drop(
                f"no KG path from the question's entities {[graph.name(n) for n in sources]} "
                f"to the answer's {[graph.name(n) for n in targets]}")
        found.sort(key=len)  # shortest first (stable: discovery order within a length)
        paths = []
        for p in found[: cfg.max_paths]:
            hops = path_hops(graph, p)
            paths.append({"hops": hops, "text": path_text(hops)})
        return ItemResult(outputs=[Output(columns={
            "question_entities": [graph.name(n) for n in sources],
            "answer_entities": [graph.name(n) for n in targets],
            "kg_paths": paths})])


class KgCotConfig(StepConfig):
    #: Jinja prompt template of the chain of thought (the question, its answer and the KG paths).
    template: str = "kg/prompts/cot.jinja"
    #: Column with the question.
    question_column: str = "question"
    #: Column with the gold answer.
    answer_column: str = "gold"
    #: Sampling temperature (MedReason: 0).
    temperature: float = 0.0  # MedReason: temperature 0
    #: Most tokens of the chain of thought.
    max_tokens: int = 768


def split_conclusion(text: str) -> tuple[str, str]:
    """(reasoning before "Conclusion:", the conclusion); no marker: (text, "")."""
    at = text.lower().rfind("conclusion:")
    if at < 0:
        return text.strip(), ""
    return text[:at].strip(), text[at + len("conclusion:"):].strip()


@register_step
class KgCot(TemplatedStep, MapStep):
    """Adds ``reasoning`` (the whole CoT) and ``conclusion``."""

    type_name = "kg_cot"
    uses_llm = True
    Config = KgCotConfig
    config: KgCotConfig

    def reads(self) -> list[str]:
        return sorted({"kg_paths", self.config.question_column, self.config.answer_column,
                       *(self.template().variables - {"question", "answer", "paths"})})

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        paths = [p["text"] for p in record.get("kg_paths") or []]
        if not paths:
            return ItemResult.drop("record has no KG paths to reason along")
        variables = {**record, "question": record.get(cfg.question_column),
                     "answer": record.get(cfg.answer_column), "paths": paths}
        response = await self.ask(ctx, variables)
        text = response.text.strip()
        if not plain_words(text):
            return ItemResult.drop("model returned an empty chain of thought")
        _, conclusion = split_conclusion(text)
        return self.output(response, {"reasoning": text, "conclusion": conclusion})


class KgCotCheckConfig(StepConfig):
    #: ``reanswer``: MedReason's filter (a model answers from the reasoning minus its
    #: conclusion); ``conclusion``: the CoT's own conclusion is compared, no call.
    mode: Literal["reanswer", "conclusion"] = "reanswer"
    #: Jinja prompt template of the re-answer (reanswer mode).
    template: str = "kg/prompts/reanswer.jinja"
    #: Column with the question.
    question_column: str = "question"
    #: Column with the gold answer the conclusion or re-answer must match.
    answer_column: str = "gold"
    #: Sampling temperature of the re-answer.
    temperature: float = 0.0
    #: Most tokens of the re-answer.
    max_tokens: int = 256


def reaches(reply: str, gold: str) -> str | None:
    """None when ``reply`` states the gold answer, else why not. A numeric gold is compared
    by value with the reply's stated (else last) number; a text gold's words must occur in
    the reply as whole words."""
    if parse_number(gold) is not None:
        stated = extract_answer(reply, last_number=True)
        if stated is None:
            return "states no answer"
        return None if answers_equal(stated, gold) else f"reaches {stated!r}, not {gold!r}"
    key = normalize_entity(gold)
    if key and f" {key} " in token_text(reply):
        return None
    return f"does not reach {gold!r}"


@register_step
class KgCotCheck(TemplatedStep, FilterStep):
    """Keeps a CoT only when an answer from its reasoning (minus the conclusion) is the gold."""

    type_name = "kg_cot_check"
    Config = KgCotCheckConfig
    config: KgCotCheckConfig

    def __init__(self, config: KgCotCheckConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.uses_llm = self.config.mode == "reanswer"  # type: ignore[misc]

    def active_template_fields(self) -> tuple[str, ...]:
        return self.template_fields if self.config.mode == "reanswer" else ()

    def reads(self) -> list[str]:
        return ["reasoning", "conclusion", self.config.question_column,
                self.config.answer_column]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        cfg = self.config
        gold = str(record.get(cfg.answer_column) or "")
        if not plain_words(gold):
            return f"no gold answer in column {cfg.answer_column!r}"
        body, conclusion = split_conclusion(str(record.get("reasoning") or ""))
        if cfg.mode == "conclusion":
            why = reaches(conclusion or body, gold)
            return None if why is None else f"the chain of thought's conclusion {why}"
        response = await self.ask(ctx, {"question": record.get(cfg.question_column),
                                        "reasoning": body})
        why = reaches(response.text, gold)
        return None if why is None else \
            f"answering from the reasoning alone ({response.model}) {why}"
