"""The ``orca_explain`` and ``orca_filter`` steps (Orca, arXiv 2306.02707).

``orca_explain`` answers each question under one of the paper's 16 system messages (an editable
YAML file), picked deterministically from the run seed and the question, so the same data and
seed give the same choice on every executor. When the input has a gold answer (a GSM8K
``answer``, a Dolly reference ``answer``/``output``...) and ``hint`` is on (opt-in: the paper
sends the teacher the bare query under a system message, never the answer), the gold answer is
put in the prompt as a hint (``hint_used``); the hint is never part of the recorded question.

``orca_filter`` drops responses that do not explain (too short, or no sign of reasoning: one
sentence, no "because / therefore / step ..." cue) and, with a gold answer, responses whose
final answer disagrees with it: numeric golds via ``synthloom.verify.math_answers``, short
textual golds (a word or a few) by their words appearing in the response. Long free-text
references are not compared (no reliable heuristic), and pass.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.fingerprint import stable_hash, text_hash
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import FilterStep, MapStep, StepConfig
from synthloom.methods.common.seeds import EOS_MARKERS, clean_instruction, first_user_turn
from synthloom.prompting.templated import TemplatedStep
from synthloom.prompting.templates import METHODS_DIR, PACKAGE_DIR
from synthloom.verify.math_answers import answers_equal, extract_answer, gsm8k_gold, parse_number

GOLD_COLUMNS = ("gold", "answer", "output", "response", "final_answer", "solution")


def load_system_messages(name: str, recipe_dir: Path | None) -> tuple[list[dict[str, Any]], str]:
    """The system-message pool ``[{id, text}]`` from a YAML file, and the file's hash."""
    candidates = [Path(name).expanduser()]
    candidates += [base / name for base in (recipe_dir, METHODS_DIR, PACKAGE_DIR) if base]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise RecipeError(f"system messages file {name!r} not found")
    source = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(source)
        pool = [{"id": int(m["id"]), "text": str(m.get("text") or "")} for m in raw]
    except (yaml.YAMLError, TypeError, KeyError, ValueError) as exc:
        raise RecipeError(f"{path}: expected a YAML list of {{id, text}} ({exc})") from None
    if not pool:
        raise RecipeError(f"{path}: no system messages")
    return pool, text_hash(source)


def gold_answer(value: Any) -> str | None:
    """The gold answer: GSM8K's number after ``####``; otherwise the reference text."""
    text = str(value) if value is not None else ""
    for marker in EOS_MARKERS:
        text = text.replace(marker, "")
    text = text.strip()
    if not text:
        return None
    return gsm8k_gold(text) if "####" in text else text


class OrcaExplainConfig(StepConfig):
    #: Jinja prompt template of the explanation (system message + query).
    template: str = "orca/prompts/explain.jinja"
    #: YAML list of {id, text}: recipe folder, then synthloom/methods/, then the package.
    system_messages: str = "orca/prompts/system_messages.yaml"
    #: Use only these message ids (the paper draws from different subsets per task family).
    system_ids: list[int] | None = None
    #: Question column (default: instruction/prompt/question/... or the first user turn;
    #: Alpaca wrappers are unwrapped).
    question: str | None = None
    #: Gold answer column; "auto": the first present of gold, answer, output, response,
    #: final_answer, solution; null: none.
    gold: str | None = "auto"
    #: Put the gold answer in the prompt as a hint when there is one. Off by default: the
    #: paper's teacher (GPT-4 / ChatGPT) saw only system message + query; a hint is a
    #: synthloom option for weak teachers (the gold check in ``orca_filter`` works either way).
    hint: bool = False
    #: The gold hint is cut to this many characters (when ``hint``).
    hint_max_chars: int = 600
    #: Sampling temperature.
    temperature: float = 0.7
    #: Most tokens of the explained answer.
    max_tokens: int = 512


@register_step
class OrcaExplain(TemplatedStep, MapStep):
    """Columns: ``system_prompt`` ({id, text}), ``question``, ``response``, ``hint_used``,
    ``gold`` (None without a gold answer)."""

    type_name = "orca_explain"
    uses_llm = True
    Config = OrcaExplainConfig
    config: OrcaExplainConfig

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        cfg = self.config
        pool, self._pool_hash = load_system_messages(cfg.system_messages, ctx.recipe_dir)
        if cfg.system_ids is not None:
            unknown = sorted(set(cfg.system_ids) - {m["id"] for m in pool})
            if unknown:
                raise RecipeError(f"step {self.name}: unknown system message ids {unknown}")
            pool = [m for m in pool if m["id"] in set(cfg.system_ids)]
        self._pool = pool
        self._run_seed = ctx.seed

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        return {**super().extra_fingerprint(ctx), "system_messages": self._pool_hash}

    def _gold_column(self, record: dict[str, Any]) -> str | None:
        if self.config.gold != "auto":
            return self.config.gold
        return next((c for c in GOLD_COLUMNS if record.get(c) not in (None, "")), None)

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        raw = first_user_turn(record, cfg.question)
        question = clean_instruction(raw) if raw else ""
        if not question:
            return ItemResult.drop("no question column or user turn found")
        column = self._gold_column(record)
        gold = gold_answer(record.get(column)) if column else None
        # Deterministic per (run seed, question): reruns and other executors pick the same.
        pick = int(stable_hash("orca-system", self._run_seed, question), 16) % len(self._pool)
        system = self._pool[pick]
        hint = gold[: cfg.hint_max_chars] if (cfg.hint and gold) else None
        response = await self.ask(
            ctx, {**record, "question": question, "system_message": system["text"],
                  "hint": hint, "context": ctx.context})
        text = response.text.strip()
        if not text:
            return ItemResult.drop(f"empty response (finish_reason={response.finish_reason})")
        return self.output(
            response, {"system_prompt": {"id": system["id"], "text": system["text"]},
                       "question": question, "response": text, "hint_used": hint is not None,
                       "gold": gold},
            replace=True)


_CUES = re.compile(
    r"\b(because|since|therefore|thus|hence|so|as a result|this means|which means|due to|"
    r"in order to|steps?|first|second|then|next|finally|for example|for instance|reason|"
    r"explain|means)\b|=",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?](\s|$)")
_LIST_ITEM = re.compile(r"^\s*(\d+[.)]|[-*•])\s+", re.MULTILINE)
_WORDS = re.compile(r"[a-z0-9]+")


class OrcaFilterConfig(StepConfig):
    #: Column with the explained response.
    column: str = "response"
    #: Responses with fewer words are dropped (too short to explain).
    min_words: int = 20
    #: Require a sign of reasoning: two sentences (or list items) and a reasoning cue.
    require_explanation: bool = True
    #: Compare the final answer with ``gold`` when there is one.
    check_gold: bool = True
    #: Textual golds of at most this many words are checked (their words must appear).
    text_gold_max_words: int = 5


@register_step
class OrcaFilter(FilterStep):
    """Drops responses that do not explain, and (with gold) those that disagree with it."""

    type_name = "orca_filter"
    Config = OrcaFilterConfig
    config: OrcaFilterConfig

    def reads(self) -> list[str]:
        return [self.config.column, "gold"]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        cfg = self.config
        text = str(record.get(cfg.column) or "")
        words = len(text.split())
        if words < cfg.min_words:
            return f"response too short to explain: {words} words (< {cfg.min_words})"
        if cfg.require_explanation:
            sentences = len(_SENTENCE_END.findall(text)) + len(_LIST_ITEM.findall(text))
            if sentences < 2:
                return "response does not explain: a single sentence"
            if not _CUES.search(text):
                return "response does not explain: no reasoning cue (because, so, step, ...)"
        gold = record.get("gold")
        if cfg.check_gold and isinstance(gold, str) and gold.strip():
            return gold_disagreement(text, gold, cfg.text_gold_max_words)
        return None


def gold_disagreement(response: str, gold: str, text_max_words: int) -> str | None:
    """Why ``response``'s final answer disagrees with ``gold``; None if it agrees or the gold
    is a long free-text reference (not compared)."""
    if parse_number(gold) is not None:
        predicted = extract_answer(response, last_number=True)
        if not answers_equal(predicted, gold):
            return f"final answer {predicted!r} disagrees with gold {gold!r}"
        return None
    gold_words = _WORDS.findall(gold.lower())
    if not gold_words or len(gold_words) > text_max_words:
        return None
    missing = [w for w in gold_words if w not in set(_WORDS.findall(response.lower()))]
    if missing:
        return f"response does not contain the gold answer {gold!r} (missing {missing})"
    return None
