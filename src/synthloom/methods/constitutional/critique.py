"""Constitutional AI, supervised phase (SL-CAI; Bai et al. 2022, arXiv 2212.08073).

``cai_critique_revise`` takes a prompt and the model's initial response, then runs ``rounds``
critique-revision rounds: each round draws one principle of the constitution (a YAML file of
critique request / revision request pairs, reproducibly from the run seed and the item), asks the
model to critique its last response against the critique request, then to rewrite the response
following the revision request. As in the paper the conversation is
``user: prompt → assistant: response → user: critique request → assistant: critique →
user: revision request → assistant: revision``; each later round critiques the previous round's
revision (a fresh conversation per round, so a small model's context stays short).

One record per prompt carries both training views: SFT (``prompt`` + ``response`` = the final
revision) and a preference pair in TRL's DPO fields (``chosen`` = revision, ``rejected`` =
original response). A prompt is dropped, with the reason, when a critique or a revision comes
back empty or cut off, or when the final revision is identical to the original (nothing to learn).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.fingerprint import text_hash
from synthloom.core.recipe import resolve_data_path
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig
from synthloom.llm.types import LLMResponse, Usage
from synthloom.prompting.templated import TemplatedStep
from synthloom.prompting.templates import PromptTemplate
from synthloom.quality.text import plain_text

DEFAULT_PRINCIPLES = "pkg:methods/constitutional/prompts/principles.yaml"


class CritiqueReviseConfig(StepConfig):
    #: YAML file with ``principles: [{id, critique, revision}, ...]`` (``pkg:`` or a path).
    principles: str = DEFAULT_PRINCIPLES
    #: Critique-revision rounds per prompt (each with its own principle).
    rounds: int = Field(default=1, ge=1, le=8)
    #: Column with the user prompt and column with the initial response.
    prompt_column: str = "instruction"
    #: Column with the initial response (the first revision's input).
    response_column: str = "original_response"
    #: Jinja template of the critique (gets the principle's critique request).
    critique_template: str = "constitutional/prompts/critique.jinja"
    #: Jinja template of the revision (gets the principle's revision request).
    revision_template: str = "constitutional/prompts/revision.jinja"
    #: Sampling temperature of critiques and revisions.
    temperature: float = 0.7
    #: Most tokens of one critique.
    critique_max_tokens: int = 256
    #: Most tokens of one revision.
    revision_max_tokens: int = 384
    #: A critique or revision that hit max_tokens is cut off: drop the prompt (a cut-off
    #: revision is no training target).
    drop_truncated: bool = True


def load_principles(path: str, recipe_dir: Path | None) -> tuple[list[dict[str, str]], str]:
    """The constitution as a list of {id, critique, revision}, and its content hash."""
    file = resolve_data_path(path, recipe_dir)
    if not file.is_file():
        raise RecipeError(f"principles file not found: {file}")
    text = file.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"principles file {file}: not YAML ({exc})") from None
    items = data.get("principles") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise RecipeError(f"principles file {file}: needs a non-empty list 'principles'")
    principles: list[dict[str, str]] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not all(
                isinstance(item.get(k), str) and item[k].strip() for k in ("critique", "revision")):
            raise RecipeError(f"principles file {file}: entry {i} needs non-empty 'critique' "
                              "and 'revision' strings")
        pid = str(item.get("id") or i)
        if pid in seen:
            raise RecipeError(f"principles file {file}: id {pid!r} appears twice")
        seen.add(pid)
        principles.append({"id": pid, "critique": " ".join(item["critique"].split()),
                           "revision": " ".join(item["revision"].split())})
    return principles, text_hash(text)


def draw_principles(principles: list[dict[str, str]], rounds: int,
                    seed: int) -> list[dict[str, str]]:
    """One principle per round, without repeats while the list lasts (reproducible by seed)."""
    rng = random.Random(seed)
    order: list[dict[str, str]] = []
    while len(order) < rounds:
        order.extend(rng.sample(principles, len(principles)))
    return order[:rounds]


def _last_user(template: PromptTemplate, variables: dict[str, Any]) -> tuple[str | None, str]:
    """(system text or None, user text) of a rendered template."""
    messages = template.render_messages(variables)
    system = messages[0]["content"] if messages[0]["role"] == "system" else None
    return system, messages[-1]["content"]


@register_step
class CritiqueRevise(TemplatedStep, MapStep):
    """SL-CAI critique → revision rounds against sampled principles; SFT + DPO fields."""

    type_name = "cai_critique_revise"
    uses_llm = True
    Config = CritiqueReviseConfig
    config: CritiqueReviseConfig
    template_fields = ("critique_template", "revision_template")
    template_keys = {"critique_template": "critique", "revision_template": "revision"}

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        self._principles, self._principles_hash = load_principles(self.config.principles,
                                                                  ctx.recipe_dir)

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        # The constitution's content (not its path) decides the results.
        return {**super().extra_fingerprint(ctx), "principles": self._principles_hash}

    def reads(self) -> list[str]:
        return sorted({self.config.prompt_column, self.config.response_column})

    def _problem(self, what: str, response: LLMResponse, max_tokens: int) -> str | None:
        if not response.text.strip():
            return f"{what} is empty (finish_reason={response.finish_reason})"
        if self.config.drop_truncated and response.finish_reason == "length":
            return f"{what} cut off at max_tokens={max_tokens}"
        return None

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        prompt = str(record.get(cfg.prompt_column) or "").strip()
        original = str(record.get(cfg.response_column) or "").strip()
        if not prompt:
            raise KeyError(f"record has no prompt in column {cfg.prompt_column!r}")
        if not original:
            return ItemResult.drop(f"initial response ({cfg.response_column}) is empty")
        chosen = draw_principles(self._principles, cfg.rounds, ctx.seed)
        usage, model = Usage(), None
        current, rounds = original, []
        for number, principle in enumerate(chosen, start=1):
            variables = {"prompt": prompt, "response": current,
                         "critique_request": principle["critique"],
                         "revision_request": principle["revision"], "round": number}
            system, critique_turn = _last_user(self.template("critique_template"), variables)
            conversation = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": current},
                {"role": "user", "content": critique_turn}]
            critique = await self.ask(ctx, {}, messages=conversation,
                                      max_tokens=cfg.critique_max_tokens, seed_offset=2 * number)
            usage, model = usage + critique.usage, critique.model
            problem = self._problem(f"round {number} critique", critique,
                                    cfg.critique_max_tokens)
            if problem:
                return ItemResult.drop(f"{problem} (principle {principle['id']})")
            _, revision_turn = _last_user(self.template("revision_template"), variables)
            # A new list: the critique request keeps the messages it was sent with.
            conversation = [*conversation,
                            {"role": "assistant", "content": critique.text.strip()},
                            {"role": "user", "content": revision_turn}]
            revision = await self.ask(ctx, {}, messages=conversation,
                                      max_tokens=cfg.revision_max_tokens,
                                      seed_offset=2 * number + 1)
            usage = usage + revision.usage
            problem = self._problem(f"round {number} revision", revision,
                                    cfg.revision_max_tokens)
            if problem:
                return ItemResult.drop(f"{problem} (principle {principle['id']})")
            rounds.append({"round": number, "principle_id": principle["id"],
                           "critique_request": principle["critique"],
                           "critique": critique.text.strip(),
                           "revision_request": principle["revision"],
                           "revision": revision.text.strip()})
            current = revision.text.strip()
        if plain_text(current) == plain_text(original):
            return ItemResult.drop(f"revision identical to the original response after "
                                   f"{len(rounds)} round(s) (principles "
                                   f"{', '.join(r['principle_id'] for r in rounds)})")
        last = chosen[-1]
        columns = {
            "prompt": prompt,
            "original_response": original,
            "critique": rounds[-1]["critique"],
            "revision": current,
            "principle": {"id": last["id"], "critique_request": last["critique"],
                          "revision_request": last["revision"]},
            "rounds": rounds,
            "n_rounds": len(rounds),
            # SFT view (instruction/prompt + response) and TRL DPO view (prompt/chosen/rejected).
            "response": current,
            "chosen": current,
            "rejected": original,
        }
        return Output(columns=columns, model=model,
                      template_hash=self.template("revision_template").hash,
                      usage=usage.to_json(),
                      meta={"principles": [r["principle_id"] for r in rounds]})
