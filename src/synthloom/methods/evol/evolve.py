"""``evol_instruct``: M rounds of Evol-Instruct for one seed instruction (an expand step).

Each round draws one operator for the instruction in hand - deterministically, from (run seed,
seed instruction, round) - and asks the model to rewrite it (in-depth: add constraints,
deepening, concretizing, increase reasoning steps, complicate input; in-breadth: a new, rarer
instruction of the same domain; or the WizardCoder set with ``variant: code``). The instruction
eliminator (WizardLM section 3.3) then fails the evolution when:

1. it gives no information gain over its parent (an LLM "Equal" / "Not Equal" judgement);
2. the model struggles to answer it: the response contains "sorry" and is short (< 80 words);
3. the response holds only punctuation and stop words;
4. it copies words of the evolving prompt ("#Rewritten Prompt#", "given prompt", ...);

plus an empty / too short rewrite. A successful evolution becomes the instruction of the next
round; a failed one is kept out and its parent goes "back to the pool" - the next round evolves
the parent again. Every attempt is an output with ``reject_reason`` (None when it survived);
``drop_rejected`` turns failures into drops with the eliminator's reason.

The per-call sampling seed depends on (run seed, seed instruction, round, purpose), not on the
step's config, so raising ``rounds`` reuses every cached call of the earlier rounds.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.fingerprint import stable_hash, text_hash
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import ExpandStep, StepConfig
from synthloom.llm.types import LLMResponse, Usage
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.prompting.templates import METHODS_DIR, PromptTemplate, load_template

DEFAULT_OPERATORS = {"general": "evol/prompts/operators.yaml",
                     "code": "evol/prompts/operators_code.yaml"}
#: Words of the evolving prompts that must not show up in an evolved instruction.
COPIED_PHRASES = ("#the given prompt#", "#given prompt#", "#rewritten prompt#", "#created prompt#",
                  "given prompt", "rewritten prompt", "created prompt")
#: A label the model may echo before its answer: a format echo, not copied content.
_LEADING_LABEL = re.compile(r"^\s*#?\s*(?:the\s+)?(?:rewritten|created)\s+prompt\s*#?\s*:?\s*",
                            re.IGNORECASE)
_STOP_WORDS_TEXT = """a an the and or but if then so of to in on at by for with from as is
are was were be been being it its this that these those i you he she we they me him her us them
my your his our their not no yes do does did have has had will would can could should may might
must shall what which who whom whose when where why how all any some there here just very"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_WORD_RE = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


@dataclass(frozen=True)
class Operator:
    name: str
    kind: str
    template: PromptTemplate
    method: str = ""
    formats: tuple[str, ...] = ()


class EvolConfig(StepConfig):
    #: Column with the seed instruction.
    column: str = "instruction"
    #: general (WizardLM operators) or code (WizardCoder operators).
    variant: Literal["general", "code"] = "general"
    #: An operator file (YAML: name -> {kind, template, method, formats}); default by variant.
    operators_file: str | None = None
    #: Use only these operators of the file (default: all, drawn uniformly).
    operators: list[str] | None = None
    #: Evolution rounds, each evolving the previous round's instruction.
    rounds: int = Field(default=4, ge=1, le=20)
    #: Generate a response for every evolution (eliminator cases 2 and 3 need it).
    respond: bool = True
    #: Ask the model whether the evolution equals its parent (eliminator case 1).
    judge: bool = True
    #: Emit the seed itself as a round-0 record (the paper trains on D0 ∪ D1 ∪ ... ∪ DM).
    keep_seed: bool = True
    #: An evolution with fewer words is eliminated.
    min_words: int = 3
    #: A response saying 'sorry' in fewer words eliminates its evolution (the model struggles).
    sorry_max_words: int = 80
    #: Sampling temperature of the evolutions.
    temperature: float = 0.7
    #: Most tokens of one evolution (cut off there: eliminated).
    max_tokens: int = 256
    #: Most tokens of one response (when ``respond``).
    response_max_tokens: int = 256
    #: Jinja template of the equality check (when ``judge``).
    judge_template: str = "evol/prompts/equal.jinja"
    #: Jinja template of the response (when ``respond``).
    response_template: str = "evol/prompts/response.jinja"


def load_operators(path_name: str, recipe_dir: Path | None) -> tuple[dict[str, Operator], str]:
    """Operators of a YAML file (recipe folder first, then synthloom/methods/), and its hash."""
    candidates = [Path(path_name).expanduser()]
    if recipe_dir is not None:
        candidates.append(recipe_dir / path_name)
    candidates.append(METHODS_DIR / path_name)
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise RecipeError(f"operator file {path_name!r} not found")
    source = path.read_text(encoding="utf-8")
    raw = yaml.safe_load(source) or {}
    operators = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict) or "template" not in spec:
            raise RecipeError(f"{path}: operator {name!r} needs a template")
        operators[name] = Operator(
            name=name, kind=str(spec.get("kind", "in-depth")),
            template=load_template(spec["template"], recipe_dir),
            method=str(spec.get("method", "")), formats=tuple(spec.get("formats") or ()))
    if not operators:
        raise RecipeError(f"{path}: no operators")
    return operators, text_hash(source)


def clean_evolved(text: str) -> str:
    return _LEADING_LABEL.sub("", text.strip(), count=1).strip()


def copied_phrase(text: str) -> str | None:
    lowered = text.lower()
    return next((p for p in COPIED_PHRASES if p in lowered), None)


def only_stop_words(text: str) -> bool:
    words = _WORD_RE.findall(text.lower())
    return all(w in STOP_WORDS for w in words)


def says_equal(response: LLMResponse) -> bool:
    verdict = str(parsed_object(response).get("judgement") or response.text).strip().lower()
    return "equal" in verdict and "not" not in verdict


JUDGE_SCHEMA = {"type": "object",
                "properties": {"judgement": {"type": "string", "enum": ["Equal", "Not Equal"]}},
                "required": ["judgement"], "additionalProperties": False}


@register_step
class EvolInstruct(TemplatedStep, ExpandStep):
    type_name = "evol_instruct"
    uses_llm = True
    # A cut-off evolution is the paper's own elimination case ("cut off at max_tokens", kept
    # with its reject_reason and dropped, counted, by the `eliminated` step): not removed here.
    cut_off_is_data = True
    Config = EvolConfig
    config: EvolConfig
    template_fields = ("judge_template", "response_template")
    template_keys = {"judge_template": "judge", "response_template": "response"}

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        cfg = self.config
        operators, self._operators_hash = load_operators(
            cfg.operators_file or DEFAULT_OPERATORS[cfg.variant], ctx.recipe_dir)
        if cfg.operators is not None:
            unknown = sorted(set(cfg.operators) - set(operators))
            if unknown:
                raise RecipeError(f"step {self.name}: unknown operators {unknown}; "
                                  f"known: {sorted(operators)}")
            operators = {k: v for k, v in operators.items() if k in cfg.operators}
        self._operators = operators

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        return {**super().extra_fingerprint(ctx), "operators": self._operators_hash,
                "templates": sorted({o.template.hash for o in self._operators.values()})}

    def reads(self) -> list[str]:
        return [self.config.column]

    def choose(self, run_seed: int, root: str, round_no: int) -> tuple[Operator, str]:
        """The operator (and its method line) for this seed and round: reproducible."""
        rng = random.Random(stable_hash("evol-op", run_seed, root, round_no))
        names = sorted(self._operators)
        operator = self._operators[rng.choice(names)]
        method = operator.method
        if operator.formats:
            method = method.replace("{format}", rng.choice(operator.formats))
        return operator, method

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | list:
        cfg = self.config
        root = str(record.get(cfg.column) or "").strip()
        if not root:
            return ItemResult.drop(f"no {cfg.column!r} text")
        run_seed = ctx.run.seed

        def seed_for(*parts: Any) -> int:
            return int(stable_hash("evol", run_seed, root, *parts)[:8], 16) & 0x7FFFFFFF

        outputs: list[Output] = []
        lineage: list[dict[str, Any]] = [{"round": 0, "operator": None, "instruction": root}]
        if cfg.keep_seed:
            columns: dict[str, Any] = {
                "instruction": root, "parent_instruction": None, "evol_round": 0,
                "operator": None, "operator_kind": None, "lineage": [], "reject_reason": None}
            usage, model = Usage(), None
            if cfg.respond:
                response = await self.ask(ctx, {"instruction": root},
                                          template="response_template",
                                          seed=seed_for(0, "response"),
                                          max_tokens=cfg.response_max_tokens)
                columns["response"] = response.text.strip()
                usage, model = response.usage, response.model
            outputs.append(Output(columns=columns, sample_index=0, usage=usage.to_json(),
                                  model=model,
                                  template_hash=self.template("response_template").hash
                                  if cfg.respond else None))
        current = root
        for round_no in range(1, cfg.rounds + 1):
            operator, method = self.choose(run_seed, root, round_no)
            evolved_resp = await self.ask(
                ctx, {"instruction": current, "method": method}, template=operator.template,
                seed=seed_for(round_no, "evolve"))
            usage = evolved_resp.usage
            evolved = clean_evolved(evolved_resp.text)
            reason = self._cheap_check(evolved, evolved_resp)
            columns = {"instruction": evolved, "parent_instruction": current,
                       "evol_round": round_no, "operator": operator.name,
                       "operator_kind": operator.kind, "operator_method": method,
                       "lineage": list(lineage)}
            if reason is None and cfg.judge:
                verdict = await self.ask(
                    ctx, {"parent": current, "instruction": evolved}, template="judge_template",
                    seed=seed_for(round_no, "judge"), max_tokens=16, schema=JUDGE_SCHEMA,
                    temperature=0.0)
                usage = usage + verdict.usage
                if says_equal(verdict):
                    reason = "no information gain: judged Equal to its parent"
            if reason is None and cfg.respond:
                response = await self.ask(ctx, {"instruction": evolved},
                                          template="response_template",
                                          seed=seed_for(round_no, "response"),
                                          max_tokens=cfg.response_max_tokens)
                usage = usage + response.usage
                answer = response.text.strip()
                columns["response"] = answer
                reason = self._response_check(answer)
            columns["reject_reason"] = (f"eliminated (round {round_no}, {operator.name}): "
                                        f"{reason}" if reason else None)
            outputs.append(Output(columns=columns, sample_index=round_no, model=evolved_resp.model,
                                  template_hash=operator.template.hash, usage=usage.to_json(),
                                  meta={"finish_reason": evolved_resp.finish_reason}))
            if reason is None:
                # A success becomes the next round's instruction; a failure leaves the parent
                # in the pool, so the next round evolves the parent again.
                lineage.append({"round": round_no, "operator": operator.name,
                                "instruction": evolved})
                current = evolved
        return outputs

    def _cheap_check(self, evolved: str, response: LLMResponse) -> str | None:
        cfg = self.config
        if response.finish_reason == "length":
            return f"cut off at max_tokens={cfg.max_tokens}"
        words = len(evolved.split())
        if words < cfg.min_words:
            return f"too short: {words} words (< {cfg.min_words})"
        phrase = copied_phrase(evolved)
        if phrase is not None:
            return f"copies the evolving prompt's words: {phrase!r}"
        return None

    def _response_check(self, answer: str) -> str | None:
        words = len(answer.split())
        if "sorry" in answer.lower() and words < self.config.sorry_max_words:
            return (f"the model struggles to answer: response says 'sorry' in {words} words "
                    f"(< {self.config.sorry_max_words})")
        if only_stop_words(answer):
            return "response holds only punctuation and stop words"
        return None
