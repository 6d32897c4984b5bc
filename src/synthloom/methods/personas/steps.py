"""PersonaHub steps (Ge et al. 2024, "Scaling Synthetic Data Creation with 1,000,000,000
Personas", arXiv 2406.20094).

- ``persona_from_text`` (expand): Text-to-Persona. For each chunk the model is asked "Who is
  likely to {read, write, like, dislike} the following text?"; each verb asked gives one
  persona record (``persona_source: text``, ``relation``: the verb phrase). Which verbs a chunk
  gets is a seeded choice, so a corpus sees every verb without paying for all of them per chunk.
- ``persona_relations`` (expand): Persona-to-Persona. "Who is in a close relationship with the
  given persona?" asked ``rounds`` times (the paper iterates six times from the text personas);
  each related persona is a record with ``persona_source: relation``, ``relation`` (e.g.
  "patient of"), ``parent_persona`` and ``round``. The input persona is re-emitted too (with
  ``relations_derived``), so the pool holds both kinds.
- ``persona_task`` (map): persona-conditioned synthesis with the paper's task prompts (``task``:
  math | instruction | knowledge) and an optional response.

Deduplication between the two (MinHash on 1-grams, then embedding cosine, both at 0.9 as in
the paper) is the recipe's reuse of ``dedup_minhash`` / ``dedup_semantic``.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any, Literal

from pydantic import Field

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, MapStep, StepConfig
from synthloom.llm.types import LLMResponse, StructuredOutputError
from synthloom.prompting.templated import TemplatedStep
from synthloom.prompting.textutil import estimate_tokens, truncate_to_tokens
from synthloom.quality.text import fold_text

#: Characters per token assumed when sizing max_tokens from a schema's caps (low: safe).
CHARS_PER_TOKEN = 3
#: "Persona:", "User prompt:", "Math problem:" ... prefixes the prompts ask for or models add.
PREFIX_RE = re.compile(r"^\s*(?:\*\*)?(?:(?:here is )?the )?(persona|user prompt|prompt|"
                       r"math problem|problem)(?:\*\*)?\s*:\s*(?:\*\*)?\s*", re.IGNORECASE)
#: A relation must name something ("..." copied from the prompt's example does not).
UNNAMED_RELATION = "close relationship (not named by the model)"
VERB_PHRASES = {"read": "likely to read the text", "write": "likely to write the text",
                "like": "likely to like the text", "dislike": "likely to dislike the text",
                "buy": "likely to buy what the text describes"}


def _string(max_length: int, min_length: int = 1) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": max_length}


def persona_schema(max_chars: int) -> dict[str, Any]:
    return {"type": "object", "properties": {"persona": _string(max_chars)},
            "required": ["persona"], "additionalProperties": False}


def relations_schema(n: int, persona_chars: int, relation_chars: int) -> dict[str, Any]:
    item = {"type": "object",
            "properties": {"relation": _string(relation_chars), "persona": _string(persona_chars)},
            "required": ["relation", "persona"], "additionalProperties": False}
    return {"type": "object",
            "properties": {"related": {"type": "array", "minItems": n, "maxItems": n,
                                       "items": item}},
            "required": ["related"], "additionalProperties": False}


def clean_persona(text: Any) -> str:
    """The persona text without a leading "Persona:" label, quotes or extra spaces."""
    text = PREFIX_RE.sub("", str(text or "")).strip().strip('"').strip()
    return " ".join(text.split())


def split_usage(usage: dict[str, int], n: int) -> list[dict[str, int]]:
    """One call's tokens spread over its ``n`` records: summing the records gives the call."""
    return [{k: v // n + (1 if i < v % n else 0) for k, v in usage.items()} for i in range(n)]


def _max_tokens(chars: int, n: int = 1) -> int:
    return chars // CHARS_PER_TOKEN + 24 * n + 32


class _PersonaChecks:
    """Why a persona is not usable, or None: shared by both persona steps."""

    config: Any

    def problem(self, persona: str, seen: set[str]) -> str | None:
        n, floor = len(persona.split()), self.config.min_words
        if n < floor:
            return f"persona {persona[:60]!r} has {n} words (< {floor})"
        key = fold_text(persona)
        if key in seen:
            return "repeats a persona already derived here"
        seen.add(key)
        return None


class TextToPersonaConfig(StepConfig):
    #: Jinja prompt template (gets the chunk and one verb per call).
    template: str = "personas/prompts/text_to_persona.jinja"
    #: Column with the text (chunk) the personas are derived from.
    text_column: str = "text"
    #: The paper's question "Who is likely to <verb> the following text?", one call per verb.
    verbs: list[str] = Field(default_factory=lambda: ["read", "write", "like", "dislike"],
                             min_length=1)
    #: Verbs asked per chunk, a seeded choice among ``verbs`` (0: all of them).
    verbs_per_chunk: int = Field(default=2, ge=0)
    #: The chunk is cut to this many tokens inside the prompt.
    text_tokens: int = Field(default=600, ge=16)
    #: Longest persona, in characters (schema maxLength; sizes max_tokens).
    persona_max_chars: int = Field(default=400, ge=40, le=900)
    #: A persona with fewer words is not kept (nor is one repeated).
    min_words: int = Field(default=5, ge=1)
    #: Sampling temperature.
    temperature: float = 0.7
    #: Most tokens per call (None: sized from persona_max_chars).
    max_tokens: int | None = None


@register_step
class PersonaFromText(TemplatedStep, _PersonaChecks, ExpandStep):
    """Text-to-Persona: one persona per (chunk, verb); unusable answers are counted, and a
    chunk with none usable is a drop naming each verb's problem."""

    type_name = "persona_from_text"
    uses_llm = True
    Config = TextToPersonaConfig
    config: TextToPersonaConfig

    def reads(self) -> list[str]:
        # doc_id / chunk_id / title are copied onto the persona records.
        return sorted({self.config.text_column, "doc_id", "chunk_id", "title"})

    def verbs_for(self, seed: int) -> list[str]:
        verbs, k = list(self.config.verbs), self.config.verbs_per_chunk
        if k == 0 or k >= len(verbs):
            return verbs
        chosen = set(random.Random(seed).sample(range(len(verbs)), k))
        return [v for i, v in enumerate(verbs) if i in chosen]  # keep the configured order

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list[Output]:
        cfg = self.config
        text = record.get(cfg.text_column)
        if not isinstance(text, str) or not text.strip():
            return ItemResult.drop(f"column {cfg.text_column!r} has no text")
        count = ctx.llm.count_tokens if ctx.run.llm is not None else estimate_tokens
        shown = truncate_to_tokens(text.strip(), cfg.text_tokens, count)
        verbs = self.verbs_for(ctx.seed)
        max_tokens = cfg.max_tokens or _max_tokens(cfg.persona_max_chars)
        schema = persona_schema(cfg.persona_max_chars)
        requests = [self.request(ctx, {"verb": v, "text": shown}, schema=schema,
                                 max_tokens=max_tokens)
                    for v in verbs]
        answers = await asyncio.gather(*(ctx.generate(r) for r in requests),
                                       return_exceptions=True)
        problems: list[str] = []
        kept: list[tuple[int, str, str, LLMResponse]] = []
        seen: set[str] = set()
        for i, (verb, answer) in enumerate(zip(verbs, answers, strict=True)):
            if isinstance(answer, StructuredOutputError):
                problems.append(f"{verb}: {type(answer).__name__}: {answer}")
                continue
            if isinstance(answer, BaseException):
                raise answer  # backend trouble: the item fails and is retried next run
            response = answer[0]
            persona = clean_persona((response.parsed or {}).get("persona"))
            problem = self.problem(persona, seen)
            if problem:
                problems.append(f"{verb}: {problem}")
                continue
            kept.append((i, verb, persona, response))
        if not kept:
            return ItemResult.drop("no usable persona from this text (" + "; ".join(problems) + ")")
        outputs = []
        for i, verb, persona, response in kept:
            columns = {
                "persona": persona, "persona_source": "text",
                "relation": VERB_PHRASES.get(verb, f"likely to {verb} the text"),
                "round": 0, "parent_persona": None,
                "doc_id": record.get("doc_id"), "chunk_id": record.get("chunk_id"),
                "title": record.get("title"),
            }
            meta: dict[str, Any] = {"verb": verb, "verbs_asked": verbs,
                                    "finish_reason": response.finish_reason}
            if problems:
                meta["personas_rejected"] = problems
            outputs.append(self.output(response, columns, replace=True, sample_index=i,
                                       meta=meta))
        return outputs


class PersonaToPersonaConfig(StepConfig):
    #: Jinja prompt template (gets the persona and the count asked).
    template: str = "personas/prompts/persona_to_persona.jinja"
    #: Column with the persona to expand from.
    column: str = "persona"
    #: Related personas asked per persona per round (an exact count, via the JSON schema).
    per_persona: int = Field(default=1, ge=1, le=10)
    #: Expansion rounds: round r asks about the personas found in round r-1 (paper: 6).
    rounds: int = Field(default=1, ge=1, le=6)
    #: Longest related persona, in characters (schema maxLength).
    persona_max_chars: int = Field(default=400, ge=40, le=900)
    #: Longest relation label, in characters (schema maxLength).
    relation_max_chars: int = Field(default=80, ge=10, le=300)
    #: A related persona with fewer words is not kept (nor is one already found).
    min_words: int = Field(default=5, ge=1)
    #: Sampling temperature.
    temperature: float = 0.8
    #: Most tokens per call (None: sized from the two *_max_chars and per_persona).
    max_tokens: int | None = None


@register_step
class PersonaRelations(TemplatedStep, _PersonaChecks, ExpandStep):
    """Persona-to-Persona: the input persona plus the personas close to it, ``rounds`` deep."""

    type_name = "persona_relations"
    uses_llm = True
    Config = PersonaToPersonaConfig
    config: PersonaToPersonaConfig

    def reads(self) -> list[str]:
        return [self.config.column]

    async def _related(self, persona: str, ctx: ItemContext, offset: int,
                       ) -> tuple[list[dict[str, str]], LLMResponse | None, str | None]:
        cfg = self.config
        n = cfg.per_persona
        chars = n * (cfg.persona_max_chars + cfg.relation_max_chars)
        try:
            response = await self.ask(
                ctx, {"persona": persona, "n": n}, seed_offset=offset,
                schema=relations_schema(n, cfg.persona_max_chars, cfg.relation_max_chars),
                max_tokens=cfg.max_tokens or _max_tokens(chars, n))
        except StructuredOutputError as exc:
            return [], None, f"{type(exc).__name__}: {exc}"
        related = (response.parsed or {}).get("related") or []
        return [r for r in related if isinstance(r, dict)], response, None

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> list[Output]:
        cfg = self.config
        root = clean_persona(record.get(cfg.column))
        seen = {fold_text(root)}
        problems: list[str] = []
        outputs: list[Output] = []
        frontier = [root]
        calls = 0
        for round_ in range(1, cfg.rounds + 1):
            found: list[str] = []
            for parent in frontier:
                related, response, error = await self._related(parent, ctx, calls)
                calls += 1
                if error or response is None:
                    problems.append(f"round {round_}: {error}")
                    continue
                usable = []
                for j, item in enumerate(related):
                    persona = clean_persona(item.get("persona"))
                    relation = " ".join(str(item.get("relation") or "").split())
                    if not re.search(r"[^\W\d_]", relation):
                        relation = UNNAMED_RELATION
                    problem = self.problem(persona, seen)
                    if problem:
                        problems.append(f"round {round_}, item {j}: {problem}")
                        continue
                    usable.append((relation, persona))
                shares = split_usage(response.usage.to_json(), max(1, len(usable)))
                for (relation, persona), usage in zip(usable, shares, strict=False):
                    found.append(persona)
                    outputs.append(self.output(
                        response, {"persona": persona, "persona_source": "relation",
                                   "relation": relation, "round": round_,
                                   "parent_persona": parent},
                        sample_index=len(outputs) + 1, usage=usage))
            frontier = found
            if not frontier:
                break
        # The input persona stays in the pool; how its expansion went is on it.
        carried = Output(columns={"relations_derived": len(outputs)}, sample_index=0,
                         meta={"relation_problems": problems} if problems else {})
        for output in outputs:
            output.columns["relations_derived"] = 0
        return [carried, *outputs]


TaskType = Literal["math", "instruction", "knowledge"]
TASK_TEMPLATES: dict[str, str] = {
    "math": "personas/prompts/task_math.jinja",
    "instruction": "personas/prompts/task_instruction.jinja",
    "knowledge": "personas/prompts/task_knowledge.jinja",
}


class PersonaTaskConfig(StepConfig):
    #: The paper's persona-conditioned prompts: a challenging math problem, a user prompt the
    #: persona would ask, or a knowledge-rich (Quora-style) article written as the persona.
    task: TaskType = "math"
    #: Override the task's template (it receives ``persona``).
    template: str | None = None
    #: Column with the persona.
    column: str = "persona"
    #: Sampling temperature of the task (the response is sampled at 0.7).
    temperature: float = 0.8
    #: Most tokens of the task's completion.
    max_tokens: int = 384
    #: Also answer the task (column ``response``); the model's own answer, not verified.
    respond: bool = False
    #: Jinja template of the answer (used when ``respond``).
    response_template: str = "personas/prompts/response.jinja"
    #: Most tokens of the answer (when ``respond``).
    response_max_tokens: int = 512
    #: A completion cut off at max_tokens is dropped (its text is unfinished) unless this.
    keep_truncated: bool = False
    #: A task with fewer words is dropped.
    min_words: int = Field(default=5, ge=1)


@register_step
class PersonaTask(TemplatedStep, MapStep):
    """Persona-conditioned synthesis: one task (and optionally its response) per persona."""

    type_name = "persona_task"
    uses_llm = True
    Config = PersonaTaskConfig
    config: PersonaTaskConfig
    template_fields = ("template", "response_template")
    template_keys = {"response_template": "response"}

    def template_name(self, field: str) -> str:
        if field == "template":
            return self.config.template or TASK_TEMPLATES[self.config.task]
        return super().template_name(field)

    def reads(self) -> list[str]:
        return [self.config.column]

    def clean_task(self, text: str) -> str:
        """Strip the label the prompt asked for ("Math problem:", "User prompt:"); an
        article keeps its "Title:" line, which is part of it."""
        text = text.strip()
        if self.config.task != "knowledge":
            text = PREFIX_RE.sub("", text, count=1).strip()
        return text

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        persona = clean_persona(record.get(cfg.column))
        if not persona:
            return ItemResult.drop(f"column {cfg.column!r} has no persona")
        response = await self.ask(ctx, {"persona": persona})
        if response.finish_reason == "length" and not cfg.keep_truncated:
            return ItemResult.drop(f"{cfg.task} task cut off at max_tokens={cfg.max_tokens} "
                                   "(raise max_tokens, or keep_truncated: true)")
        task = self.clean_task(response.text)
        n = len(task.split())
        if n < cfg.min_words:
            return ItemResult.drop(f"{cfg.task} task has {n} words (< {cfg.min_words})")
        columns: dict[str, Any] = {"task_type": cfg.task, "task": task}
        usage = response.usage.to_json()
        meta: dict[str, Any] = {"finish_reason": response.finish_reason}
        if cfg.respond:
            answer = await self.ask(ctx, {"task": task, "persona": persona},
                                    template="response_template", temperature=0.7,
                                    max_tokens=cfg.response_max_tokens)
            columns["response"] = answer.text.strip()
            if not columns["response"]:
                return ItemResult.drop(f"empty response to the {cfg.task} task "
                                       f"(finish_reason={answer.finish_reason})")
            meta["response_finish_reason"] = answer.finish_reason
            usage = {k: usage[k] + answer.usage.to_json()[k] for k in usage}
        return self.output(response, columns, usage=usage, meta=meta)
