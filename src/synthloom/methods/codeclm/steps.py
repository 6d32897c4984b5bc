"""CodecLM steps (Wang et al. 2024, "CodecLM: Aligning Language Models with Tailored Synthetic
Data", arXiv 2404.05875): encode-decode through instruction metadata, Self-Rubrics, and
Contrastive Filtering.

- ``codeclm_encode`` (map): the LLM, as encoder, reads a seed instruction and writes its
  metadata ``{use_case, skills}`` - the seed's text is not reused, only what it is for.
- ``codeclm_decode`` (expand): the LLM, as decoder, writes ``per_seed`` new instructions from
  the metadata alone.
- ``codeclm_self_rubrics`` (map): for the metadata, the model writes a rubric (what makes such
  an instruction complex) and actions (edits that add complexity); ``rounds`` times, a seeded
  choice of ``actions_per_round`` actions is applied to the instruction.
- ``codeclm_contrastive`` (map): a "strong" and a "target" response, each scored 1-10 by the
  strong model as judge (one response per call, so position bias cannot enter);
  ``score_gap = strong_score - target_score``.
  An instruction whose gap is below ``min_gap`` is sent back to Self-Rubrics (the record's
  rubric and one more of its actions) and judged again, for at most ``improve_rounds`` rounds
  (the paper's feedback loop; 0 = judged once). The record says which round it ends at
  (``improve_round``, 0 = first pass), the gap of each round (``score_gaps``) and the
  instructions it replaced (``improve_history``).
- ``codeclm_gap_filter`` (filter): keeps instructions whose gap reaches ``min_gap`` - the ones
  the target model cannot yet answer well, which are the ones worth training it on; a drop
  after improvement rounds names them and the gap of each.

The strong model is the step's own (``model:``, default the run's); ``target_model`` names the
target (a model of the recipe's ``models:``). When the target is a separate model (the shipped
recipe declares ``target: default``; ``--model-for target=SPEC`` makes it one), the paper's
comparison runs: both answer under the same sampling (``distinct_target``, default the strong
side's settings) and the strong model judges. When it is the same model, the target is an
*emulation*: the same model under the ``target`` settings (a tighter token budget by default,
an optional system prompt); the gap then measures that handicap, not a second model's weakness,
and the record says so (``_meta.target_emulated``).
"""

from __future__ import annotations

import random
import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from synthloom.core.context import ItemContext
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, FilterStep, MapStep, StepConfig
from synthloom.llm.types import LLMResponse, Usage
from synthloom.prompting.templated import TemplatedStep

CHARS_PER_TOKEN = 3


def _string(max_length: int, min_length: int = 1) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": max_length}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def _tokens(chars: int) -> int:
    return chars // CHARS_PER_TOKEN + 48


def _words(text: Any) -> int:
    return len(str(text or "").split())


# --- encode -------------------------------------------------------------------------------------


class EncodeConfig(StepConfig):
    #: Jinja prompt template of the encoder (the recipe's folder first, then the shipped ones).
    template: str = "codeclm/prompts/encode.jinja"
    #: Column holding the seed instruction to encode.
    column: str = "instruction"
    #: Most skills the metadata may list (the schema's maxItems; repeats removed).
    max_skills: int = Field(default=4, ge=1, le=8)
    #: Longest use case, in characters (schema maxLength; sizes max_tokens).
    use_case_max_chars: int = Field(default=120, ge=20, le=300)
    #: Longest skill, in characters (schema maxLength; sizes max_tokens).
    skill_max_chars: int = Field(default=60, ge=10, le=200)
    #: Sampling temperature of the encoder.
    temperature: float = 0.2


@register_step
class CodecEncode(TemplatedStep, MapStep):
    """Seed instruction -> ``metadata: {use_case, skills}`` (the seed kept as ``seed_instruction``)."""

    type_name = "codeclm_encode"
    uses_llm = True
    Config = EncodeConfig
    config: EncodeConfig

    def reads(self) -> list[str]:
        return [self.config.column]

    def schema(self) -> dict[str, Any]:
        cfg = self.config
        return _object({
            "use_case": _string(cfg.use_case_max_chars),
            "skills": {"type": "array", "minItems": 1, "maxItems": cfg.max_skills,
                       "items": _string(cfg.skill_max_chars)},
        })

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        seed = str(record.get(cfg.column) or "").strip()
        if not seed:
            return ItemResult.drop(f"column {cfg.column!r} is empty")
        chars = cfg.use_case_max_chars + cfg.max_skills * cfg.skill_max_chars
        response = await self.ask(ctx, {"instruction": seed, "max_skills": cfg.max_skills},
                                  schema=self.schema(), max_tokens=_tokens(chars))
        parsed = response.parsed or {}
        use_case = " ".join(str(parsed.get("use_case") or "").split())
        skills: list[str] = []
        for skill in parsed.get("skills") or []:
            skill = " ".join(str(skill).split())
            if skill and skill.lower() not in (s.lower() for s in skills):
                skills.append(skill)
        if not use_case or not skills:
            return ItemResult.drop("metadata without a use case or skills "
                                   f"(use_case={use_case!r}, skills={skills})")
        return self.output(response, {"seed_instruction": seed,
                                      "metadata": {"use_case": use_case, "skills": skills}},
                           replace=True)


# --- decode -------------------------------------------------------------------------------------


class DecodeConfig(StepConfig):
    #: Jinja prompt template of the decoder (the recipe's folder first, then the shipped ones).
    template: str = "codeclm/prompts/decode.jinja"
    #: New instructions written per metadata (separate samples).
    per_seed: int = Field(default=1, ge=1, le=20)
    #: Longest decoded instruction, in characters (schema maxLength; sizes max_tokens).
    instruction_max_chars: int = Field(default=600, ge=40, le=900)
    #: Fewer words than this: the sample is not used (all samples so: dropped).
    min_words: int = Field(default=4, ge=1)
    #: Sampling temperature of the decoder.
    temperature: float = 0.8


def _metadata(record: dict[str, Any]) -> tuple[str, list[str]]:
    meta = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    return str(meta.get("use_case") or ""), [str(s) for s in meta.get("skills") or []]


@register_step
class CodecDecode(TemplatedStep, ExpandStep):
    """Metadata -> ``per_seed`` basic instructions (column ``instruction``)."""

    type_name = "codeclm_decode"
    uses_llm = True
    Config = DecodeConfig
    config: DecodeConfig

    def reads(self) -> list[str]:
        return ["metadata"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list[Output]:
        cfg = self.config
        use_case, skills = _metadata(record)
        schema = _object({"instruction": _string(cfg.instruction_max_chars)})
        responses = await self.ask_n(ctx, {"use_case": use_case, "skills": skills},
                                     cfg.per_seed, schema=schema,
                                     max_tokens=_tokens(cfg.instruction_max_chars))
        outputs, problems, seen = [], [], set()
        for response in responses:
            text = str((response.parsed or {}).get("instruction") or "").strip()
            if _words(text) < cfg.min_words:
                problems.append(f"sample {response.sample_index}: {_words(text)} words")
                continue
            if text.lower() in seen:
                problems.append(f"sample {response.sample_index}: repeats an earlier sample")
                continue
            seen.add(text.lower())
            outputs.append(self.output(response, {"instruction": text}))
        if not outputs:
            return ItemResult.drop(f"no usable instruction decoded from the metadata "
                                   f"(< {cfg.min_words} words or repeated: {'; '.join(problems)})")
        return outputs


# --- Self-Rubrics -------------------------------------------------------------------------------


class RubricsConfig(StepConfig):
    #: Jinja template that asks for the rubric and actions.
    template: str = "codeclm/prompts/rubrics.jinja"
    #: Jinja template that applies chosen actions to the instruction.
    improve_template: str = "codeclm/prompts/improve.jinja"
    #: Actions the model writes for the metadata.
    actions: int = Field(default=3, ge=1, le=8)
    #: Improvement rounds: each applies a seeded choice of actions to the current instruction.
    rounds: int = Field(default=1, ge=1, le=4)
    #: Actions applied together in each round (a seeded choice; the pool refills once spent).
    actions_per_round: int = Field(default=1, ge=1, le=8)
    #: Longest rubric, in characters (schema maxLength).
    rubric_max_chars: int = Field(default=400, ge=40, le=900)
    #: Longest action, in characters (schema maxLength).
    action_max_chars: int = Field(default=160, ge=20, le=400)
    #: Longest improved instruction, in characters (schema maxLength).
    instruction_max_chars: int = Field(default=900, ge=40, le=900)
    #: An improved instruction with fewer words drops the record.
    min_words: int = Field(default=4, ge=1)
    #: Sampling temperature of the rubric and the improvements.
    temperature: float = 0.7


def _choose_actions(rng: random.Random, pool: list[str], actions: list[str],
                    k: int) -> tuple[list[str], list[str]]:
    """A seeded choice of ``k`` actions from ``pool`` (refilled from ``actions`` once spent),
    and the pool left."""
    if not pool:
        pool = list(actions)  # more rounds than actions: start over
    chosen = rng.sample(pool, min(k, len(pool)))
    return chosen, [a for a in pool if a not in chosen]


async def _apply_actions(step: TemplatedStep, ctx: ItemContext, *, use_case: str,
                         skills: list[str], rubric: str, instruction: str, chosen: list[str],
                         max_chars: int, seed_offset: int,
                         temperature: float | None = None) -> tuple[str, LLMResponse]:
    """One Self-Rubrics improvement: ``chosen`` actions applied to ``instruction`` with the
    step's ``improve_template``. Shared by Self-Rubrics and by Contrastive Filtering's feedback
    loop, which sends small-gap instructions back here."""
    improved = await step.ask(
        ctx, {"use_case": use_case, "skills": skills, "rubric": rubric,
              "instruction": instruction, "actions": chosen},
        template="improve_template",
        schema=_object({"instruction": _string(max_chars)}), temperature=temperature,
        max_tokens=_tokens(max_chars), seed_offset=seed_offset)
    return str((improved.parsed or {}).get("instruction") or "").strip(), improved


@register_step
class CodecSelfRubrics(TemplatedStep, MapStep):
    """Rubric + actions for the metadata, then the instruction rewritten with them."""

    type_name = "codeclm_self_rubrics"
    uses_llm = True
    Config = RubricsConfig
    config: RubricsConfig
    template_fields = ("template", "improve_template")

    def reads(self) -> list[str]:
        return ["metadata", "instruction"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        use_case, skills = _metadata(record)
        base = str(record.get("instruction") or "").strip()
        rubric_schema = _object({
            "rubric": _string(cfg.rubric_max_chars),
            "actions": {"type": "array", "minItems": 1, "maxItems": cfg.actions,
                        "items": _string(cfg.action_max_chars)},
        })
        first = await self.ask(
            ctx, {"use_case": use_case, "skills": skills, "n_actions": cfg.actions},
            schema=rubric_schema,
            max_tokens=_tokens(cfg.rubric_max_chars + cfg.actions * cfg.action_max_chars))
        parsed = first.parsed or {}
        rubric = " ".join(str(parsed.get("rubric") or "").split())
        written = [" ".join(str(a).split()) for a in parsed.get("actions") or []]
        # An action is an edit in words; "[1]" or "..." copied from a format is not.
        actions = [a for a in written if len(re.findall(r"[^\W\d_]{2,}", a)) >= 2]
        if not actions:
            return ItemResult.drop(f"self-rubrics produced no usable action (got {written[:4]})")
        usage = first.usage
        rng = random.Random(ctx.seed)
        pool = list(actions)
        applied: list[str] = []
        instruction = base
        for round_ in range(cfg.rounds):
            chosen, pool = _choose_actions(rng, pool, actions, cfg.actions_per_round)
            text, improved = await _apply_actions(
                self, ctx, use_case=use_case, skills=skills, rubric=rubric,
                instruction=instruction, chosen=chosen, max_chars=cfg.instruction_max_chars,
                seed_offset=round_ + 1)
            usage = usage + improved.usage
            if _words(text) < cfg.min_words:
                return ItemResult.drop(f"improved instruction of round {round_ + 1} has "
                                       f"{_words(text)} words (< {cfg.min_words})")
            instruction = text
            applied.extend(chosen)
        if instruction.strip().lower() == base.lower():
            return ItemResult.drop("self-rubrics returned the instruction unchanged")
        return self.output(first, {"base_instruction": base, "instruction": instruction,
                                   "rubric": rubric, "actions": actions,
                                   "applied_actions": applied},
                           template="improve_template", usage=usage.to_json(),
                           meta={"rounds": cfg.rounds})


# --- Contrastive Filtering ------------------------------------------------------------------------


class Settings(BaseModel):
    """Sampling of one side of the comparison (the one backend of the run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = 0.7
    max_tokens: int = Field(default=512, ge=8)
    #: A system prompt for this side (e.g. a handicap for the emulated target).
    system: str = ""


class ImproveSettings(BaseModel):
    """How the feedback loop rewrites a small-gap instruction (as Self-Rubrics' own fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actions_per_round: int = Field(default=1, ge=1, le=8)
    instruction_max_chars: int = Field(default=900, ge=40, le=900)
    min_words: int = Field(default=4, ge=1)
    temperature: float = 0.7


class ContrastiveConfig(StepConfig):
    #: The target's named model (recipe ``models:``); None or the step's own: emulated.
    target_model: str | None = None
    #: Sampling of a separate target model (None: the ``strong`` settings, a fair comparison).
    distinct_target: Settings | None = None
    #: Jinja template both sides answer the instruction with.
    response_template: str = "codeclm/prompts/respond.jinja"
    #: Jinja template of the judge (one response per call, scored 1-10).
    judge_template: str = "codeclm/prompts/judge.jinja"
    #: Jinja template of the feedback loop's rewrite (Self-Rubrics' ``improve_template``); loaded
    #: only when improve_rounds > 0.
    improve_template: str = "codeclm/prompts/improve.jinja"
    #: Sampling of the strong side (temperature, max_tokens, system prompt).
    strong: Settings = Settings(temperature=0.7, max_tokens=512)
    #: Emulated target: the same model with a tighter budget (see the module docstring).
    target: Settings = Settings(temperature=0.7, max_tokens=128)
    #: Sampling of the judge (max_tokens is raised to fit ``reason_max_chars``).
    judge: Settings = Settings(temperature=0.2, max_tokens=160)
    #: Longest judge reason, in characters (schema maxLength).
    reason_max_chars: int = Field(default=300, ge=20, le=900)
    #: The paper's feedback loop: an instruction whose gap is below ``min_gap`` goes back to
    #: Self-Rubrics (one more action applied) and is judged again, at most this many times.
    #: 0: judged once (no loop).
    improve_rounds: int = Field(default=1, ge=0, le=4)
    #: The "small gap" of the loop; set it to the gap filter's ``min_gap``.
    min_gap: int = 2
    #: How the loop rewrites a small-gap instruction: actions_per_round, instruction_max_chars,
    #: min_words, temperature (as Self-Rubrics' own fields).
    improve: ImproveSettings = ImproveSettings()

    #: The target's model enters the fingerprint by its id, only when it is a separate model
    #: (an emulated run keeps the fingerprint it had before target models existed).
    wiring: ClassVar[frozenset[str]] = StepConfig.wiring | {"target_model", "distinct_target"}


JUDGE_MIN, JUDGE_MAX = 1, 10
#: Seed offsets per round: respond/judge at ROUND_STRIDE*r + 0..3, the improvement that leads
#: to round r at ROUND_STRIDE*r - 1 - every request of every round has its own seed, and
#: round 0 keeps the offsets 0..3 of the loop-less step (its cached answers stay valid).
ROUND_STRIDE = 5


@register_step
class CodecContrastive(TemplatedStep, MapStep):
    """Strong and target responses, each judged 1-10 by the strong settings; the gap. A small
    gap sends the instruction back to Self-Rubrics for up to ``improve_rounds`` rounds."""

    type_name = "codeclm_contrastive"
    uses_llm = True
    Config = ContrastiveConfig
    config: ContrastiveConfig
    template_fields = ("response_template", "judge_template", "improve_template")

    def active_template_fields(self) -> tuple[str, ...]:
        # Without the loop the improve template is unused: not loaded, not fingerprinted.
        if self.config.improve_rounds:
            return self.template_fields
        return ("response_template", "judge_template")

    def reads(self) -> list[str]:
        if self.config.improve_rounds:
            return ["instruction", "metadata", "rubric", "actions", "applied_actions"]
        return ["instruction"]

    def model_names(self) -> list[str]:
        return [*super().model_names(), *filter(None, [self.config.target_model])]

    def _target_llm(self, run: Any) -> Any:
        """The target's client when it is a separate model, else None (emulated)."""
        if self.config.target_model is None:
            return None
        target = run.llm_for(self.config.target_model)
        return None if target is run.llm else target

    def extra_fingerprint(self, ctx: Any) -> Any:
        base = super().extra_fingerprint(ctx)
        target = self._target_llm(ctx)
        if target is None:
            return base
        settings = self.config.distinct_target or self.config.strong
        return {"templates": base, "target_model": target.model_id,
                "target_settings": settings.model_dump(mode="json")}

    def judge_schema(self) -> dict[str, Any]:
        return _object({"reason": _string(self.config.reason_max_chars),
                        "score": {"type": "integer", "minimum": JUDGE_MIN,
                                  "maximum": JUDGE_MAX}})

    async def _respond(self, ctx: ItemContext, instruction: str, side: Settings,
                       offset: int, model: str | None = None) -> LLMResponse:
        return await self.ask(ctx, {"instruction": instruction, "system": side.system},
                              template="response_template", temperature=side.temperature,
                              max_tokens=side.max_tokens, seed_offset=offset, model=model)

    async def _judge(self, ctx: ItemContext, instruction: str, response: str,
                     offset: int) -> tuple[int, str, LLMResponse]:
        judge = self.config.judge
        verdict = await self.ask(
            ctx, {"instruction": instruction, "response": response}, template="judge_template",
            schema=self.judge_schema(), temperature=judge.temperature,
            max_tokens=max(judge.max_tokens, _tokens(self.config.reason_max_chars)),
            seed_offset=offset)
        parsed = verdict.parsed or {}
        return int(parsed["score"]), str(parsed.get("reason") or "").strip(), verdict

    async def _contrast(self, ctx: ItemContext, instruction: str,
                        round_: int) -> tuple[dict[str, Any] | str, Usage]:
        """One round: both responses and both verdicts (columns), or why the round failed."""
        cfg, base = self.config, ROUND_STRIDE * round_
        strong = await self._respond(ctx, instruction, cfg.strong, base)
        if self._target_llm(ctx.run) is not None:  # a real second model
            target = await self._respond(ctx, instruction, cfg.distinct_target or cfg.strong,
                                         base + 1, model=cfg.target_model)
        else:
            target = await self._respond(ctx, instruction, cfg.target, base + 1)
        strong_text, target_text = strong.text.strip(), target.text.strip()
        if not strong_text:
            return (f"empty strong response (finish_reason={strong.finish_reason})",
                    strong.usage + target.usage)
        # An empty target answer is the weakest answer there is: judged like any other.
        strong_score, strong_reason, v1 = await self._judge(ctx, instruction, strong_text,
                                                            base + 2)
        target_score, target_reason, v2 = await self._judge(ctx, instruction,
                                                            target_text or "(no answer)",
                                                            base + 3)
        return {"instruction": instruction,
                "strong_response": strong_text, "target_response": target_text,
                "strong_score": strong_score, "target_score": target_score,
                "score_gap": strong_score - target_score,
                "judge_reasons": {"strong": strong_reason, "target": target_reason},
                # The training pair: the instruction with the strong model's answer.
                "response": strong_text,
                # Popped by ``process``: provenance of the round that is kept.
                "_responses": (strong, target)}, strong.usage + target.usage + v1.usage + v2.usage

    async def _improve(self, ctx: ItemContext, record: dict[str, Any], instruction: str,
                       applied: list[str], rng: random.Random,
                       round_: int) -> tuple[str | None, list[str], str | None, Usage]:
        """Self-Rubrics once more on a small-gap instruction: (new instruction, actions
        applied, why not, usage). The record's rubric and actions are reused (the paper's
        rubrics are per metadata); actions not yet applied go first."""
        cfg = self.config.improve
        actions = [str(a) for a in record.get("actions") or []]
        if not actions:
            return None, [], "no Self-Rubrics actions in the record", Usage(0, 0)
        use_case, skills = _metadata(record)
        fresh = [a for a in actions if a not in applied]
        chosen, _ = _choose_actions(rng, fresh, actions, cfg.actions_per_round)
        text, response = await _apply_actions(
            self, ctx, use_case=use_case, skills=skills, rubric=str(record.get("rubric") or ""),
            instruction=instruction, chosen=chosen, max_chars=cfg.instruction_max_chars,
            seed_offset=ROUND_STRIDE * round_ - 1, temperature=cfg.temperature)
        if _words(text) < cfg.min_words:
            return None, chosen, (f"improvement for round {round_} has {_words(text)} words "
                                  f"(< {cfg.min_words})"), response.usage
        if text.lower() == instruction.lower():
            return None, chosen, (f"improvement for round {round_} returned the instruction "
                                  "unchanged"), response.usage
        return text, chosen, None, response.usage

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        instruction = str(record.get("instruction") or "").strip()
        result, usage = await self._contrast(ctx, instruction, 0)
        if isinstance(result, str):
            return ItemResult.drop(result)
        applied = [str(a) for a in record.get("applied_actions") or []]
        rng = random.Random(ctx.seed)
        history: list[dict[str, Any]] = []
        gaps, round_, stopped = [result["score_gap"]], 0, None
        # Contrastive Filtering's feedback: a small gap means the target already answers it,
        # so the instruction is made harder and judged again, a bounded number of times.
        while result["score_gap"] < cfg.min_gap and round_ < cfg.improve_rounds:
            new, chosen, stopped, used = await self._improve(ctx, record, result["instruction"],
                                                             applied, rng, round_ + 1)
            usage = usage + used
            if new is None:
                break
            judged, used = await self._contrast(ctx, new, round_ + 1)
            usage = usage + used
            if isinstance(judged, str):  # keep the last judged round; say why it ended
                stopped = f"round {round_ + 1}: {judged}"
                break
            history.append({key: result[key] for key in
                            ("instruction", "strong_score", "target_score", "score_gap")}
                           | {"round": round_, "next_actions": chosen})
            applied = applied + chosen
            result, round_ = judged, round_ + 1
            gaps.append(result["score_gap"])
        strong, target = result.pop("_responses")
        columns = {**result, "improve_round": round_, "score_gaps": gaps,
                   "improve_history": history, "improve_stopped": stopped}
        if round_:
            columns["applied_actions"] = applied
        meta = {"strong_finish_reason": strong.finish_reason,
                "target_finish_reason": target.finish_reason,
                "improve_rounds": cfg.improve_rounds}
        if self._target_llm(ctx.run) is not None:
            meta["target_model"] = target.model
        else:
            meta["target_emulated"] = {"same_model": True,
                                       **cfg.target.model_dump(exclude={"system"}),
                                       "system": bool(cfg.target.system)}
        return self.output(strong, columns, template="judge_template", usage=usage.to_json(),
                           meta=meta)


class GapConfig(StepConfig):
    #: Keep instructions where strong_score - target_score reaches this.
    min_gap: int = 2


@register_step
class CodecGapFilter(FilterStep):
    """Contrastive filtering's decision: a small gap means the target already handles it (after
    the contrastive step's improvement rounds, when it had any)."""

    type_name = "codeclm_gap_filter"
    Config = GapConfig
    config: GapConfig

    def reads(self) -> list[str]:
        return ["score_gap", "strong_score", "target_score", "improve_round", "score_gaps",
                "improve_stopped"]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        gap = record.get("score_gap")
        if not isinstance(gap, int):
            return "no score_gap (contrastive step missing)"
        if gap >= self.config.min_gap:
            return None
        reason = (f"score gap {gap} < {self.config.min_gap} (strong "
                  f"{record.get('strong_score')}, target {record.get('target_score')})")
        gaps = record.get("score_gaps") or [gap]
        if len(gaps) > 1 or record.get("improve_stopped"):
            rounds = int(record.get("improve_round") or 0)
            reason += (f" after {rounds} Self-Rubrics improvement round"
                       f"{'' if rounds == 1 else 's'} (gap per round: "
                       f"{', '.join(str(g) for g in gaps)})")
            if record.get("improve_stopped"):
                reason += f"; loop stopped: {record['improve_stopped']}"
        return reason + ": the target already answers it about as well"
