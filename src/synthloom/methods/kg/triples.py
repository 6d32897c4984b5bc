"""``kg_triples``: per chunk, the model extracts (head, relation, tail) triples as structured
output -- the graph-construction step of KAQG / MedReason-style knowledge-graph question
generation. Entity names are normalised (case, punctuation, possessive, leading article) into
``head_key`` / ``tail_key``, the keys the graph merges on. A triple is kept only when both
entities occur in the chunk as whole words (``require_in_chunk``), they differ, and the
relation has words; rejected triples are listed in ``_meta.triples_rejected`` and a chunk with
none is a drop naming why.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.methods.common.corpus import string_schema
from synthloom.methods.common.entities import is_informative, mentions, normalize_entity, token_text
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.quality.text import plain_words


class TriplesConfig(StepConfig):
    #: Jinja prompt template of the triple extraction (gets the text and ``n``).
    template: str = "kg/prompts/triples.jinja"
    #: Column with the chunk text.
    text_column: str = "text"
    #: More columns read as part of the text (MedReason: a QA pair's question and its gold
    #: solution together state the facts its graph is made of).
    context_columns: list[str] = []
    #: Most triples asked per chunk (schema maxItems; more are cut).
    max_triples: int = Field(default=5, ge=1, le=20)
    #: Both entities must occur (normalised, whole words) in the chunk.
    require_in_chunk: bool = True
    #: Numbers are entities too ("117", "12 rolls"): a math word problem's answer is one.
    allow_numbers: bool = False
    #: Longest entity, in characters (schema maxLength).
    entity_max_chars: int = 60
    #: Longest relation, in characters (schema maxLength).
    relation_max_chars: int = 40
    #: Sampling temperature.
    temperature: float = 0.2
    #: Most tokens per call (None: sized from max_triples and the two *_max_chars).
    max_tokens: int | None = None


@register_step
class KgTriples(TemplatedStep, MapStep):
    """Adds ``triples`` ([{triple_index, head, relation, tail, head_key, tail_key}])."""

    type_name = "kg_triples"
    uses_llm = True
    Config = TriplesConfig
    config: TriplesConfig

    def reads(self) -> list[str]:
        return sorted({*(self.template().variables - {"text", "n"}), self.config.text_column,
                       *self.config.context_columns})

    @property
    def schema(self) -> dict[str, Any]:
        cfg = self.config
        entity = string_schema(1, cfg.entity_max_chars)
        triple = {"head": entity, "relation": string_schema(1, cfg.relation_max_chars),
                  "tail": entity}
        return {"type": "object",
                "properties": {"triples": {
                    "type": "array", "minItems": 1, "maxItems": cfg.max_triples,
                    "items": {"type": "object", "properties": triple, "required": list(triple),
                              "additionalProperties": False}}},
                "required": ["triples"], "additionalProperties": False}

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        text = record.get(cfg.text_column)
        if not isinstance(text, str) or not plain_words(text):
            return ItemResult.drop(f"no chunk text in column {cfg.text_column!r}")
        extra = [str(record[c]) for c in cfg.context_columns if record.get(c) not in (None, "")]
        text = "\n".join([text, *extra])
        per_triple = (2 * cfg.entity_max_chars + cfg.relation_max_chars) // 3 + 20
        response = await self.ask(ctx, {**record, "text": text, "n": cfg.max_triples},
                                  schema=self.schema,
                                  max_tokens=cfg.max_tokens or cfg.max_triples * per_triple + 16)
        parsed = parsed_object(response)
        raw = parsed.get("triples") if isinstance(parsed.get("triples"), list) else []
        triples, problems = usable_triples(raw[: cfg.max_triples], text, cfg.require_in_chunk,
                                            allow_numbers=cfg.allow_numbers)
        if not triples:
            detail = f" ({'; '.join(problems)})" if problems else ""
            return ItemResult.drop(f"model returned 0 usable triples{detail}")
        meta: dict[str, Any] = {"triples_got": len(triples),
                                "finish_reason": response.finish_reason}
        if problems:
            meta["triples_rejected"] = problems
        return self.output(response, {"triples": triples}, meta=meta)


def usable_triples(raw: list[Any], chunk: str, require_in_chunk: bool = True, *,
                   allow_numbers: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    padded = token_text(chunk)

    def named(key: str) -> bool:
        return is_informative(key) or (allow_numbers and any(t.isdigit() for t in key.split()))

    triples: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.append(f"triple {i}: not an object")
            continue
        head, relation, tail = (" ".join(str(item.get(k) or "").split())
                                for k in ("head", "relation", "tail"))
        head_key, tail_key = normalize_entity(head), normalize_entity(tail)
        if not named(head_key) or not named(tail_key):
            problems.append(f"triple {i}: {'head' if not named(head_key) else 'tail'} "
                            "is not a name")
            continue
        if head_key == tail_key:
            problems.append(f"triple {i}: head and tail are the same entity ({head!r})")
            continue
        if not plain_words(relation):
            problems.append(f"triple {i}: relation has no words")
            continue
        if require_in_chunk:
            absent = [n for n, k in ((head, head_key), (tail, tail_key)) if not mentions(k, padded)]
            if absent:
                problems.append(f"triple {i}: {', '.join(map(repr, absent))} not in the chunk")
                continue
        key = (head_key, " ".join(plain_words(relation)), tail_key)
        if key in seen:
            problems.append(f"triple {i}: repeats an earlier triple")
            continue
        seen.add(key)
        triples.append({"triple_index": len(triples), "head": head, "relation": relation,
                        "tail": tail, "head_key": head_key, "tail_key": tail_key})
    return triples, problems
