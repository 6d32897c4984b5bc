"""``kg_concepts``: KAQG's concept (hypernym) mapping -- per chunk, the model names the general
concepts its triples' entities belong to (``src/retrieval/pdf_retriever.py`` in mfshiu/kaqg:
"identify the hypernyms (concepts) for each of the following identified facts", a JSON map
concept -> facts; its graph links each fact node to its concept nodes).

Adds ``concepts`` ([{concept, entities}], entities as the triples name them) and, with
``as_edges`` (default), one ``(entity, "is a", concept)`` triple per pair to ``triples``
(``kind: "hypernym"``), so the merged graph holds KAQG's fact -> concept edges and paths may
pass through a shared concept. Entities the chunk's triples do not name are ignored; a chunk
whose answer names none keeps its triples unchanged (``_meta.concepts_got`` = 0).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.methods.common.corpus import string_schema
from synthloom.methods.common.entities import is_informative, normalize_entity
from synthloom.prompting.templated import TemplatedStep, parsed_object

HYPERNYM = "is a"


class ConceptsConfig(StepConfig):
    #: Jinja prompt template of the concepts (gets the text and the record's entities).
    template: str = "kg/prompts/concepts.jinja"
    #: Column with the chunk text.
    text_column: str = "text"
    #: Most concepts asked per chunk (schema maxItems).
    max_concepts: int = Field(default=4, ge=1, le=12)
    #: Add (entity, "is a", concept) triples, so the graph links entities to their concepts.
    as_edges: bool = True
    #: Longest concept, in characters (schema maxLength).
    concept_max_chars: int = 40
    #: Sampling temperature.
    temperature: float = 0.2
    #: Most tokens per call (None: max_concepts * 60 + 16).
    max_tokens: int | None = None
    #: False: records pass through unchanged, no calls (a recipe switch).
    enabled: bool = True


@register_step
class KgConcepts(TemplatedStep, MapStep):
    """Adds ``concepts`` ([{concept, entities}]) and hypernym triples."""

    type_name = "kg_concepts"
    uses_llm = True
    Config = ConceptsConfig
    config: ConceptsConfig

    def reads(self) -> list[str]:
        return sorted({"triples", self.config.text_column,
                       *(self.template().variables - {"text", "entities", "n"})})

    @property
    def schema(self) -> dict[str, Any]:
        cfg = self.config
        item = {"concept": string_schema(1, cfg.concept_max_chars),
                "entities": {"type": "array", "minItems": 1, "maxItems": 8,
                             "items": string_schema(1, 60)}}
        return {"type": "object", "properties": {"concepts": {
            "type": "array", "minItems": 1, "maxItems": cfg.max_concepts,
            "items": {"type": "object", "properties": item, "required": list(item),
                      "additionalProperties": False}}},
            "required": ["concepts"], "additionalProperties": False}

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        if not cfg.enabled:
            return Output(columns={})
        triples = [t for t in record.get("triples") or [] if isinstance(t, dict)]
        names: dict[str, str] = {}  # entity key -> surface name, as the triples state them
        for t in triples:
            if t.get("kind") != "hypernym":
                names.setdefault(t["head_key"], t["head"])
                names.setdefault(t["tail_key"], t["tail"])
        if not names:
            return ItemResult.drop("record has no triples whose entities could be mapped")
        response = await self.ask(
            ctx, {**record, "text": record.get(cfg.text_column) or "",
                  "entities": list(names.values()), "n": cfg.max_concepts},
            schema=self.schema, max_tokens=cfg.max_tokens or cfg.max_concepts * 60 + 16)
        concepts = mapped_concepts(parsed_object(response).get("concepts"), names)
        extra = []
        if cfg.as_edges:
            seen = {(t["head_key"], t["tail_key"]) for t in triples}
            for c in concepts:
                ckey = normalize_entity(c["concept"])
                for entity in c["entities"]:
                    ekey = normalize_entity(entity)
                    if (ekey, ckey) not in seen:
                        seen.add((ekey, ckey))
                        extra.append({"triple_index": len(triples) + len(extra),
                                      "head": entity, "relation": HYPERNYM,
                                      "tail": c["concept"], "head_key": ekey,
                                      "tail_key": ckey, "kind": "hypernym"})
        return self.output(response, {"concepts": concepts, "triples": [*triples, *extra]},
                           meta={"concepts_got": len(concepts),
                                 "finish_reason": response.finish_reason})


def mapped_concepts(raw: Any, names: dict[str, str]) -> list[dict[str, Any]]:
    """The model's concept map, kept to the chunk's own entities (named as the triples name
    them); a concept that is one of those entities, or names none of them, is left out."""
    out: list[dict[str, Any]] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        concept = " ".join(str(item.get("concept") or "").split())
        ckey = normalize_entity(concept)
        if not is_informative(ckey) or ckey in names:
            continue
        entities = list(dict.fromkeys(
            names[k] for k in (normalize_entity(str(e)) for e in item.get("entities") or [])
            if k in names))
        if entities:
            out.append({"concept": concept, "entities": entities})
    return out
