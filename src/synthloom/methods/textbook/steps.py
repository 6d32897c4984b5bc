"""Textbook-quality synthetic sections (phi-1, Gunasekar et al. 2023, arXiv 2306.11644;
phi-1.5 and Cosmopedia's topic x audience x style prompts).

phi-1 gets diversity from constraints, not from sampling temperature: each prompt fixes a topic
and a target audience (Cosmopedia adds a style). Here:

- ``textbook_specs`` (source): every (topic, audience, style) combination exactly once, in an
  order fixed by the seed. ``balanced`` (default) visits every topic once before any topic
  repeats, with the audience and style of each visit a seeded draw, so ``--limit N`` already
  gives N different topics; ``shuffled`` is a seeded shuffle of the product; ``ordered`` the
  plain product.
- ``textbook_section`` (map): one schema-constrained call per combination returns
  ``{title, section, worked_example: {problem, solution}, exercises: [{problem, solution}]}``
  with capped string lengths (the grammar then always closes the JSON).
- ``textbook_structure`` (filter): drops sections whose teaching text, worked example or
  exercises are missing or hollow, naming what is missing.
- ``textbook_code_exercises`` (map, off unless ``count`` > 0): phi-1's CodeExercises, N per
  section: a function signature + docstring with doctest examples, and the model's solution;
  each solution (its ``code_block``) runs in the sandbox against the docstring's examples, and
  exercises that do not parse, run or pass are dropped with the reason.
"""

from __future__ import annotations

import ast
import asyncio
import random
import re
from collections.abc import Iterator
from itertools import product
from typing import Any, Literal

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.jsonio import BadJsonLine, read_jsonl
from synthloom.core.recipe import resolve_data_path
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import FilterStep, MapStep, SourceStep, StepConfig
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.quality.text import fold_text
from synthloom.verify.answers import code_block
from synthloom.verify.sandbox import SandboxLimits, run_python

#: Cosmopedia's audiences, from young children to researchers.
AUDIENCES = [
    "young children (about 8 years old) with no prior knowledge",
    "high school students",
    "college students",
    "professionals and researchers in the field",
]
#: Writing styles combined with every topic and audience.
STYLES = [
    "an academic textbook: rigorous, precise definitions, formal tone",
    "a narrative textbook: a story-like, engaging explanation with a running example",
    "a practical tutorial: step by step, hands-on, focused on applying the idea",
]
SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")
#: Characters per token assumed when sizing max_tokens from the schema's caps (low: safe).
CHARS_PER_TOKEN = 3


def read_topics(value: str | list[str], base: Any = None) -> list[str]:
    """Topics from an inline list, or a file: ``.txt`` one per line (``#`` comments), or
    ``.jsonl`` / ``.json`` with a ``topic`` field (or JSON strings)."""
    if isinstance(value, list):
        topics = [str(t).strip() for t in value]
    else:
        path = resolve_data_path(value, base)
        if not path.is_file():
            raise RecipeError(f"textbook topics file not found: {path}")
        if path.suffix.lower() in (".jsonl", ".json"):
            try:
                rows = [row for _, row in read_jsonl(path, strict=True)]
            except BadJsonLine as exc:
                raise RecipeError(f"textbook topics file: {exc}") from None
            topics = [str(row.get("topic", "") if isinstance(row, dict) else row) for row in rows]
        else:
            lines = path.read_text(encoding="utf-8").splitlines()
            topics = [ln for ln in lines if not ln.lstrip().startswith("#")]
    seen: set[str] = set()
    out = []
    for topic in (t.strip() for t in topics):
        if topic and topic not in seen:
            seen.add(topic)
            out.append(topic)
    if not out:
        raise RecipeError(f"no topics in {value!r}")
    return out


def combinations(topics: list[str], audiences: list[str], styles: list[str], seed: int,
                 order: str = "balanced") -> list[tuple[str, str, str]]:
    """Every (topic, audience, style) exactly once, in an order the seed fixes."""
    if order == "ordered":
        return list(product(topics, audiences, styles))
    rng = random.Random(seed)
    if order == "shuffled":
        combos = list(product(topics, audiences, styles))
        rng.shuffle(combos)
        return combos
    topic_order = list(topics)
    rng.shuffle(topic_order)
    pairs = list(product(audiences, styles))
    per_topic = []
    for _ in topic_order:
        perm = list(pairs)
        rng.shuffle(perm)
        per_topic.append(perm)
    # Round robin: every topic once per round, a fresh (audience, style) each visit.
    return [(topic, *per_topic[i][k]) for k in range(len(pairs))
            for i, topic in enumerate(topic_order)]


class SpecsConfig(StepConfig):
    #: A topics file (``pkg:`` path, .txt one per line, or .jsonl with ``topic``) or a list.
    topics: str | list[str] = "pkg:data/textbook/topics.txt"
    #: Audiences combined with every topic and style.
    audiences: list[str] = Field(default_factory=lambda: list(AUDIENCES), min_length=1)
    #: Styles combined with every topic and audience.
    styles: list[str] = Field(default_factory=lambda: list(STYLES), min_length=1)
    #: balanced: every topic once per round, a fresh audience/style each visit; shuffled: a seeded
    #: shuffle; ordered: topic x audience x style as listed.
    order: Literal["balanced", "shuffled", "ordered"] = "balanced"
    #: At most this many combinations (None: all of them).
    count: int | None = Field(default=None, ge=0)
    #: Seed of the order (None: the run's seed).
    seed: int | None = None


@register_step
class TextbookSpecs(SourceStep):
    """One record per (topic, audience, style): ``topic, audience, style, spec_index``."""

    type_name = "textbook_specs"
    Config = SpecsConfig
    config: SpecsConfig

    def read(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        cfg = self.config
        topics = read_topics(cfg.topics, ctx.recipe_dir)
        seed = ctx.seed if cfg.seed is None else cfg.seed
        combos = combinations(topics, list(cfg.audiences), list(cfg.styles), seed, cfg.order)
        if cfg.count is not None:
            combos = combos[: cfg.count]
        for i, (topic, audience, style) in enumerate(combos):
            yield {"topic": topic, "audience": audience, "style": style, "spec_index": i}


def _string(max_length: int, min_length: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", "maxLength": max_length}
    if min_length:
        out["minLength"] = min(min_length, max_length)
    return out


def _pair(problem_chars: int, solution_chars: int, min_chars: int) -> dict[str, Any]:
    return {"type": "object",
            "properties": {"problem": _string(problem_chars, min_chars),
                           "solution": _string(solution_chars, min_chars)},
            "required": ["problem", "solution"], "additionalProperties": False}


def section_schema(n_exercises: int, title_chars: int, section_chars: int, problem_chars: int,
                   solution_chars: int, section_min_chars: int = 0, pair_min_chars: int = 0,
                   ) -> dict[str, Any]:
    """The section's JSON schema. Strings are capped (<= 900: llama.cpp grammars) and get a
    small floor, so a constrained decoder cannot close a field at once; whether the content is
    really there (words, a solution that is not the problem again) is ``textbook_structure``'s
    decision."""
    pair = _pair(problem_chars, solution_chars, pair_min_chars)
    return {
        "type": "object",
        "properties": {
            "title": _string(title_chars, 1),
            "section": _string(section_chars, section_min_chars),
            "worked_example": pair,
            "exercises": {"type": "array", "minItems": 1, "maxItems": n_exercises,
                          "items": pair},
        },
        "required": ["title", "section", "worked_example", "exercises"],
        "additionalProperties": False,
    }


class SectionConfig(StepConfig):
    #: Jinja prompt template of one section.
    template: str = "textbook/prompts/section.jinja"
    #: Exercises asked for (the schema allows 1..n; the filter decides what is enough).
    exercises: int = Field(default=2, ge=1, le=6)
    #: Longest title, in characters (schema maxLength).
    title_max_chars: int = Field(default=120, ge=20, le=300)
    #: Longest section text, in characters (schema maxLength).
    section_max_chars: int = Field(default=900, ge=100, le=900)
    #: Longest problem, in characters (schema maxLength).
    problem_max_chars: int = Field(default=300, ge=40, le=900)
    #: Longest solution, in characters (schema maxLength).
    solution_max_chars: int = Field(default=500, ge=40, le=900)
    #: Floors in the schema (characters): the section text, and each problem / solution.
    section_min_chars: int = Field(default=200, ge=0, le=900)
    #: Shortest problem and solution, in characters (schema minLength).
    pair_min_chars: int = Field(default=10, ge=0, le=200)
    #: Programming textbook (phi-1): the prompt asks for Python snippets interleaved with the
    #: explanation, and code in the solutions (off: the plain prose prompt).
    code: bool = False
    #: Sampling temperature.
    temperature: float = 0.7
    #: Default: enough for the longest output the schema allows.
    max_tokens: int | None = None


@register_step
class TextbookSection(TemplatedStep, MapStep):
    """One textbook section per (topic, audience, style)."""

    type_name = "textbook_section"
    uses_llm = True
    Config = SectionConfig
    config: SectionConfig

    def reads(self) -> list[str]:
        return ["topic", "audience", "style"]

    @property
    def schema(self) -> dict[str, Any]:
        cfg = self.config
        return section_schema(cfg.exercises, cfg.title_max_chars, cfg.section_max_chars,
                              cfg.problem_max_chars, cfg.solution_max_chars,
                              cfg.section_min_chars, cfg.pair_min_chars)

    def _max_tokens(self) -> int:
        cfg = self.config
        if cfg.max_tokens is not None:
            return cfg.max_tokens
        pair = cfg.problem_max_chars + cfg.solution_max_chars
        chars = cfg.title_max_chars + cfg.section_max_chars + (1 + cfg.exercises) * pair
        return chars // CHARS_PER_TOKEN + 24 * (cfg.exercises + 2) + 32

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output:
        cfg = self.config
        variables = {"topic": record["topic"], "audience": record["audience"],
                     "style": record["style"], "n_exercises": cfg.exercises,
                     "code": cfg.code}
        response = await self.ask(ctx, variables, schema=self.schema,
                                  max_tokens=self._max_tokens())
        parsed = parsed_object(response)
        example = parsed.get("worked_example") if isinstance(parsed.get("worked_example"),
                                                              dict) else {}
        exercises = [{"problem": str(e.get("problem") or "").strip(),
                      "solution": str(e.get("solution") or "").strip()}
                     for e in (parsed.get("exercises") or []) if isinstance(e, dict)]
        return self.output(response, {
            "title": str(parsed.get("title") or "").strip(),
            "text": str(parsed.get("section") or "").strip(),
            "worked_example": {"problem": str(example.get("problem") or "").strip(),
                               "solution": str(example.get("solution") or "").strip()},
            "exercises": exercises,
        })


class StructureConfig(StepConfig):
    #: Words the teaching text needs at least.
    min_text_words: int = Field(default=30, ge=0)
    #: Exercises (each with a problem and a solution) needed at least.
    min_exercises: int = Field(default=1, ge=0)
    #: Words a problem / a solution needs at least.
    min_problem_words: int = Field(default=4, ge=1)
    #: Words a solution needs at least.
    min_solution_words: int = Field(default=2, ge=1)
    #: The section needs a complete worked example (problem and solution).
    require_worked_example: bool = True
    #: Degenerate loops: a field where more than this share of sentences repeat an earlier
    #: one (fields of 3+ sentences) is not textbook text.
    max_repeat_share: float = Field(default=0.5, ge=0.0, le=1.0)


def repeat_share(text: str) -> tuple[int, int]:
    """(sentences repeating an earlier sentence of ``text``, sentences)."""
    sentences = [fold_text(x) for x in SENTENCE_RE.split(text)]
    sentences = [x for x in sentences if x]
    seen: set[str] = set()
    repeats = 0
    for sentence in sentences:
        repeats += sentence in seen
        seen.add(sentence)
    return repeats, len(sentences)


@register_step
class TextbookStructure(FilterStep):
    """Keeps a section only when its text, worked example and exercises with solutions are
    there; the drop reason names each missing piece."""

    type_name = "textbook_structure"
    Config = StructureConfig
    config: StructureConfig

    def reads(self) -> list[str]:
        return ["text", "worked_example", "exercises"]

    def _pair_problem(self, pair: Any, what: str) -> str | None:
        cfg = self.config
        if not isinstance(pair, dict):
            return f"{what} is missing"
        problem = str(pair.get("problem") or "")
        solution = str(pair.get("solution") or "")
        if len(problem.split()) < cfg.min_problem_words:
            return f"{what} has no problem ({len(problem.split())} words)"
        if len(solution.split()) < cfg.min_solution_words:
            return f"{what} has no solution ({len(solution.split())} words)"
        if fold_text(solution) == fold_text(problem):
            return f"{what}'s solution repeats its problem"
        return None

    def _loops(self, text: str, what: str) -> str | None:
        repeats, total = repeat_share(text)
        if total >= 3 and repeats / total > self.config.max_repeat_share:
            return f"{what} repeats itself ({repeats} of {total} sentences are repeats)"
        return None

    def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        cfg = self.config
        problems: list[str] = []
        text = str(record.get("text") or "")
        words = len(text.split())
        if words < cfg.min_text_words:
            problems.append(f"section text has {words} words (< {cfg.min_text_words})")
        fields = [(text, "section text")]
        example = record.get("worked_example")
        if isinstance(example, dict):
            fields.append((str(example.get("solution") or ""), "worked example's solution"))
        for i, exercise in enumerate(record.get("exercises") or []):
            if isinstance(exercise, dict):
                fields.append((str(exercise.get("solution") or ""), f"exercise {i + 1}'s solution"))
        problems.extend(p for p in (self._loops(t, w) for t, w in fields) if p)
        if cfg.require_worked_example:
            problem = self._pair_problem(record.get("worked_example"), "worked example")
            if problem:
                problems.append(problem)
        exercises = record.get("exercises") if isinstance(record.get("exercises"), list) else []
        complete = 0
        for i, exercise in enumerate(exercises):
            problem = self._pair_problem(exercise, f"exercise {i + 1}")
            if problem:
                problems.append(problem)
            else:
                complete += 1
        if complete < cfg.min_exercises:
            problems.insert(0, f"{complete} complete exercise(s) with solutions "
                               f"(< {cfg.min_exercises})")
        return "; ".join(problems) if problems else None


# --- CodeExercises (phi-1) ---------------------------------------------------------------------

#: Printed by the doctest harness once every example ran (a program that exits early lacks it).
DOCTEST_DONE = "__synthloom_doctests_done__"
DOCTEST_HARNESS = """

import doctest as _doctest
import sys as _sys
_test = _doctest.DocTestParser().get_doctest({doc!r}, dict(globals()), {name!r}, "exercise", 0)
_runner = _doctest.DocTestRunner(verbose=False, optionflags=_doctest.NORMALIZE_WHITESPACE)
_runner.run(_test)
if _runner.failures:
    _sys.exit(1)
print({done!r}, _runner.tries)
"""


def parse_exercise(exercise: str) -> tuple[str | None, str, str | None]:
    """(function name, docstring, None) of a signature + docstring, or (name if known, "", why
    it is not one): it must parse, define a function, and its docstring must hold ``>>>``
    examples."""
    try:
        tree = ast.parse(exercise)
    except SyntaxError as exc:
        return None, "", f"exercise does not parse ({exc.msg}, line {exc.lineno})"
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not funcs:
        return None, "", "exercise defines no function"
    name, doc = funcs[0].name, ast.get_docstring(funcs[0], clean=True) or ""
    if ">>>" not in doc:
        return name, "", f"exercise {name}() has no doctest examples in its docstring"
    return name, doc, None


def doctest_program(solution: str, name: str, doc: str) -> str:
    """The solution followed by a harness running ``doc``'s examples in its globals."""
    return solution.rstrip() + DOCTEST_HARNESS.format(doc=doc, name=name, done=DOCTEST_DONE)


def doctest_failure(stdout: str, stderr: str, reason: str) -> str:
    """A short reason from doctest's report (the failing example, expected / got) or stderr."""
    if "Failed example:" in stdout:
        tail = stdout.split("Failed example:", 1)[1]
        lines = [ln.strip() for ln in tail.splitlines() if ln.strip() and set(ln.strip()) != {"*"}]
        return "failed example " + " | ".join(lines[:5])[:240]
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return (lines[-1] if lines else reason or "exited before the examples ran")[:240]


class CodeExercisesConfig(StepConfig):
    #: Jinja prompt template of the exercises of one topic.
    template: str = "textbook/prompts/code_exercises.jinja"
    #: Exercises asked for per record (0: the step is off and passes records through).
    count: int = Field(default=0, ge=0, le=8)
    #: Longest exercise (signature + docstring), in characters (schema maxLength).
    exercise_max_chars: int = Field(default=700, ge=80, le=900)
    #: Longest solution, in characters (schema maxLength).
    solution_max_chars: int = Field(default=900, ge=80, le=900)
    #: Wall-clock limit of one sandboxed run, in seconds.
    timeout_s: float = 5.0
    #: Memory limit of one sandboxed run, in MiB.
    memory_mb: int = 256
    #: Sandboxes running at once (each is a process).
    concurrency: int = 4
    #: Sampling temperature.
    temperature: float = 0.7
    #: Default: enough for the longest output the schema allows.
    max_tokens: int | None = None


@register_step
class TextbookCodeExercises(TemplatedStep, MapStep):
    """phi-1 CodeExercises per record: ``code_exercises`` (those whose solution passed the
    docstring's examples in the sandbox) and ``code_exercises_dropped`` (function, reason);
    a record none of whose exercises passed is dropped with the reasons."""

    type_name = "textbook_code_exercises"
    uses_llm = True
    Config = CodeExercisesConfig
    config: CodeExercisesConfig

    def reads(self) -> list[str]:
        return ["topic", "audience"] if self.config.count else []

    @property
    def schema(self) -> dict[str, Any]:
        cfg = self.config
        item = {"type": "object",
                "properties": {"exercise": _string(cfg.exercise_max_chars, 20),
                               "solution": _string(cfg.solution_max_chars, 20)},
                "required": ["exercise", "solution"], "additionalProperties": False}
        return {"type": "object",
                "properties": {"exercises": {"type": "array", "minItems": 1,
                                             "maxItems": max(1, cfg.count), "items": item}},
                "required": ["exercises"], "additionalProperties": False}

    def _max_tokens(self) -> int:
        cfg = self.config
        if cfg.max_tokens is not None:
            return cfg.max_tokens
        chars = cfg.count * (cfg.exercise_max_chars + cfg.solution_max_chars)
        return chars // CHARS_PER_TOKEN + 24 * cfg.count + 32

    async def check(self, exercise: str, solution: str) -> dict[str, Any]:
        """The exercise with ``doctests`` (examples run) when its solution passed, else with
        the drop ``reason``."""
        name, doc, problem = parse_exercise(exercise)
        if problem is not None or name is None:
            return {"function": name, "reason": problem}
        code = code_block(solution)
        if code is None:
            code = solution if "def " in solution else None
        if code is None:
            return {"function": name, "reason": "solution has no code"}
        try:
            defined = {n.name for n in ast.parse(code).body
                       if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        except SyntaxError as exc:
            return {"function": name, "reason": f"solution does not parse ({exc.msg}, line "
                                                f"{exc.lineno})"}
        if name not in defined:
            return {"function": name, "reason": f"solution does not define {name}()"}
        cfg = self.config
        limits = SandboxLimits(timeout_s=cfg.timeout_s, memory_mb=cfg.memory_mb,
                               output_bytes=8000)
        async with self._gate:
            result = await run_python(doctest_program(code, name, doc), limits)
        if result.status != "ok" or DOCTEST_DONE not in result.stdout:
            why = doctest_failure(result.stdout, result.stderr, result.reason)
            return {"function": name, "reason": f"doctests {result.status}: {why}"}
        tries = result.stdout.split(DOCTEST_DONE, 1)[1].split()
        return {"function": name, "exercise": exercise, "solution": code,
                "doctests": int(tries[0]) if tries and tries[0].isdigit() else None}

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        if not cfg.count:
            return Output(columns={})
        if getattr(self, "_gate", None) is None:
            self._gate = asyncio.Semaphore(cfg.concurrency)
        variables = {"topic": record["topic"], "audience": record["audience"],
                     "n_exercises": cfg.count}
        response = await self.ask(ctx, variables, schema=self.schema,
                                  max_tokens=self._max_tokens())
        items = [e for e in (parsed_object(response).get("exercises") or [])
                 if isinstance(e, dict)][: cfg.count]
        checked = await asyncio.gather(*(self.check(str(e.get("exercise") or "").strip(),
                                                    str(e.get("solution") or "").strip())
                                          for e in items))
        kept = [c for c in checked if "reason" not in c]
        dropped = [c for c in checked if "reason" in c]
        if not kept:
            reasons = "; ".join(f"{c['function'] or '?'}: {c['reason']}" for c in dropped)
            return ItemResult.drop(f"no code exercise passed its doctests ({reasons or 'none'})")
        return self.output(response, {"code_exercises": kept, "code_exercises_dropped": dropped})
