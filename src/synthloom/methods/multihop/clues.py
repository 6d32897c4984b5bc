"""``multihop_clues``: per chunk, the model extracts clues -- atomic fact sentences, each with the
entities it mentions and (optionally) one relation -- as structured output (RAGSynth's clue
extraction, arXiv 2505.10989).

Each clue is checked against the chunk: its fact must be stated there (content-word support
>= ``fact_support``), and an entity is kept only when it occurs in the fact as whole words
(normalised). When none of the model's entities occurs, capitalised word runs of the fact are
used instead (``fallback_entities``) and the clue says so (``entities_from``). Rejected clues
are listed in ``_meta.clues_rejected``; a chunk with no usable clue is a drop naming why.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.methods.common.corpus import string_schema
from synthloom.methods.common.entities import (
    is_informative,
    mentions,
    normalize_entity,
    proper_nouns,
    token_text,
)
from synthloom.methods.common.overlap import support
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.quality.text import plain_words

CHARS_PER_TOKEN = 3


class CluesConfig(StepConfig):
    #: Jinja prompt template of the clue extraction (gets the chunk and ``n``).
    template: str = "multihop/prompts/clues.jinja"
    #: Column with the chunk text.
    text_column: str = "text"
    #: At most this many clues per chunk (the schema's maxItems).
    max_clues: int = Field(default=3, ge=1, le=12)
    #: Most entities named per clue (schema maxItems).
    max_entities: int = Field(default=3, ge=1, le=8)
    #: Ask for one (head, relation, tail) per clue too.
    relations: bool = True
    #: A fact shorter than this is a name or a heading, not a statement.
    fact_min_words: int = Field(default=4, ge=1)
    #: Share of a fact's content words that must occur in the chunk.
    fact_support: float = Field(default=0.75, ge=0.0, le=1.0)
    #: Capitalised word runs of the fact stand in when no model entity occurs in it.
    fallback_entities: bool = True
    #: Longest fact, in characters (schema maxLength).
    fact_max_chars: int = 220
    #: Longest entity, in characters (schema maxLength).
    entity_max_chars: int = 60
    #: Sampling temperature.
    temperature: float = 0.2
    #: Most tokens per call (None: sized from max_clues and the *_max_chars).
    max_tokens: int | None = None


def clues_schema(cfg: CluesConfig) -> dict[str, Any]:
    clue: dict[str, Any] = {
        "fact": string_schema(10, cfg.fact_max_chars),
        "entities": {"type": "array", "minItems": 1, "maxItems": cfg.max_entities,
                     "items": string_schema(1, cfg.entity_max_chars)},
    }
    if cfg.relations:
        part = string_schema(1, cfg.entity_max_chars)
        clue["relation"] = {"type": "object",
                            "properties": {"head": part, "relation": part, "tail": part},
                            "required": ["head", "relation", "tail"],
                            "additionalProperties": False}
    return {"type": "object",
            "properties": {"clues": {"type": "array", "minItems": 1, "maxItems": cfg.max_clues,
                                     "items": {"type": "object", "properties": clue,
                                               "required": list(clue),
                                               "additionalProperties": False}}},
            "required": ["clues"], "additionalProperties": False}


@register_step
class MultihopClues(TemplatedStep, MapStep):
    """Adds ``clues`` ([{clue_index, fact, entities, entity_keys, entities_from, relation}])
    and ``entity_keys`` (all normalised entities of the chunk) to each chunk record."""

    type_name = "multihop_clues"
    uses_llm = True
    Config = CluesConfig
    config: CluesConfig

    def reads(self) -> list[str]:
        names = self.template().variables - {"text", "n", "relations", "max_entities"}
        return sorted({*names, self.config.text_column})

    def _max_tokens(self) -> int:
        cfg = self.config
        if cfg.max_tokens is not None:
            return cfg.max_tokens
        per_clue = cfg.fact_max_chars + cfg.max_entities * cfg.entity_max_chars
        if cfg.relations:
            per_clue += 3 * cfg.entity_max_chars
        return cfg.max_clues * (per_clue // CHARS_PER_TOKEN + 24) + 16

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        text = record.get(cfg.text_column)
        if not isinstance(text, str) or not plain_words(text):
            return ItemResult.drop(f"no chunk text in column {cfg.text_column!r}")
        variables = {**record, "text": text, "n": cfg.max_clues, "relations": cfg.relations,
                     "max_entities": cfg.max_entities}
        response = await self.ask(ctx, variables, schema=clues_schema(cfg),
                                  max_tokens=self._max_tokens())
        parsed = parsed_object(response)
        raw = parsed.get("clues") if isinstance(parsed.get("clues"), list) else []
        clues, problems = usable_clues(raw[: cfg.max_clues], text, cfg)
        if not clues:
            detail = f" ({'; '.join(problems)})" if problems else ""
            return ItemResult.drop(f"model returned 0 usable clues{detail}")
        keys = sorted({k for c in clues for k in c["entity_keys"]})
        meta: dict[str, Any] = {"clues_got": len(clues), "finish_reason": response.finish_reason}
        if problems:
            meta["clues_rejected"] = problems
        return self.output(response, {"clues": clues, "entity_keys": keys}, meta=meta)


def usable_clues(raw: list[Any], chunk: str, cfg: CluesConfig
                 ) -> tuple[list[dict[str, Any]], list[str]]:
    """Clues stated in the chunk with at least one entity occurring in the fact; and why the
    others were rejected."""
    clues: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.append(f"clue {i}: not an object")
            continue
        fact = " ".join(str(item.get("fact") or "").split())
        if len(plain_words(fact)) < cfg.fact_min_words:
            problems.append(f"clue {i}: fact {fact[:40]!r} has fewer than {cfg.fact_min_words} "
                            "words")
            continue
        share, missing = support(fact, chunk)
        if share < cfg.fact_support:
            problems.append(f"clue {i}: fact not stated in the chunk ({share:.2f} of its content "
                            f"words occur; missing: {', '.join(missing[:6])})")
            continue
        fact_key = " ".join(plain_words(fact))
        if fact_key in seen:
            problems.append(f"clue {i}: repeats an earlier clue")
            continue
        entities, keys, origin = _entities(item.get("entities"), fact, cfg)
        if not keys:
            shown = ", ".join(repr(str(e))[:40] for e in (item.get("entities") or [])[:4])
            problems.append(f"clue {i}: none of its entities ({shown}) occurs in the fact "
                            f"{fact[:60]!r}")
            continue
        seen.add(fact_key)
        clue: dict[str, Any] = {"clue_index": len(clues), "fact": fact, "entities": entities,
                                "entity_keys": keys, "entities_from": origin}
        relation = item.get("relation")
        if cfg.relations and isinstance(relation, dict):
            clue["relation"] = {k: " ".join(str(relation.get(k) or "").split())
                                for k in ("head", "relation", "tail")}
        clues.append(clue)
    return clues, problems


def _entities(raw: Any, fact: str, cfg: CluesConfig) -> tuple[list[str], list[str], str]:
    padded = token_text(fact)
    names: list[str] = []
    keys: list[str] = []
    for name in raw if isinstance(raw, list) else []:
        key = normalize_entity(str(name))
        if key not in keys and is_informative(key) and mentions(key, padded):
            names.append(" ".join(str(name).split()))
            keys.append(key)
    if keys or not cfg.fallback_entities:
        return names, keys, "model"
    names = proper_nouns(fact, cfg.max_entities)
    return names, [normalize_entity(n) for n in names], "fallback"
