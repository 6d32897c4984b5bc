"""The logic-task registry: a generator, a verifier and a prompt per task (SynLogic-style).

SynLogic (arXiv 2505.19641) builds reasoning data from puzzle *tasks*, each a pair of a
generator with difficulty knobs and a rule-based verifier that accepts any correct answer, not
only the one the generator stored. This module holds that contract:

* :class:`LogicTask`: ``levels`` (difficulty 1-5 → knobs), ``generate(rng, **knobs)`` (the
  puzzle's fields, its ``question`` and a reference ``answer``), ``verify(item, candidate)``
  (``None`` when the candidate is right, else why not) and, for puzzles whose answer must be
  unique, ``count_solutions(item, limit)``;
* :data:`TASKS` and :func:`register_task`: the registry, filled by the task modules;
* :func:`make_item`: one item from ``(task, difficulty, seed)`` alone, deterministically (the
  generator's ``random.Random`` is seeded with a string of the three, which CPython hashes with
  SHA-512 - the same on every machine and run);
* :func:`extract_final`: the final answer in a model's free-text reply - the shared reader of
  :mod:`synthloom.verify.answers` (tags, boxes, "Answer:" with multi-line values, fences,
  JSON); a hedged answer is wrong.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from synthloom.verify import answers
from synthloom.verify.levels import parse_levels as parse_difficulty_levels

LEVELS = (1, 2, 3, 4, 5)

#: Stated at the end of every question, so a model knows where the grader looks.
ANSWER_LINE = "End your reply with one line of the form 'Answer: <your answer>'."


class LogicTask(ABC):
    """One puzzle family. Subclasses are registered with :func:`register_task`."""

    name: ClassVar[str]
    #: One line for listings (``synthloom logic tasks``).
    description: ClassVar[str]
    #: Difficulty 1-5 → keyword arguments of :meth:`generate`.
    levels: ClassVar[dict[int, dict[str, Any]]]
    #: What the answer looks like, as said in the question.
    answer_format: ClassVar[str]
    #: The generator guarantees exactly one correct answer (checked with ``count_solutions``).
    unique: ClassVar[bool] = False
    #: For SynLogic's own tasks, the authors' generator in MiniMax-AI/SynLogic (cited in
    #: docs/verify.md); None for the tasks synthloom adds.
    synlogic: ClassVar[str | None] = None

    @abstractmethod
    def generate(self, rng: random.Random, **knobs: Any) -> dict[str, Any]:
        """The puzzle's own fields plus ``question`` (without the answer-format sentence) and
        ``answer`` (one correct answer, in ``answer_format``)."""

    @abstractmethod
    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        """None when ``candidate`` solves the puzzle in ``item``, else the reason it does not.
        Must not compare with ``item['answer']`` unless the answer is unique by construction
        and the puzzle's fields determine it (and then say so)."""

    def count_solutions(self, item: dict[str, Any], limit: int = 2) -> int | None:
        """How many answers the puzzle has, counted up to ``limit``; None where the task does
        not count them (its verifier accepts any correct answer). Unique tasks override it
        (``register_task`` checks)."""
        return None


TASKS: dict[str, LogicTask] = {}


def register_task(cls: type[LogicTask]) -> type[LogicTask]:
    """Class decorator: put one instance of ``cls`` in :data:`TASKS` under ``cls.name``."""
    if cls.unique and cls.count_solutions is LogicTask.count_solutions:
        raise TypeError(f"logic task {cls.name}: a unique-answer task must count its solutions")
    if cls.name in TASKS:
        raise ValueError(f"logic task {cls.name!r} registered twice")
    missing = [lv for lv in LEVELS if lv not in cls.levels]
    if missing:
        raise ValueError(f"logic task {cls.name!r} lacks difficulty levels {missing}")
    TASKS[cls.name] = cls()
    return cls


def get_task(name: str) -> LogicTask:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown logic task {name!r}; known: {', '.join(sorted(TASKS))}") \
            from None


def parse_tasks(value: str | list[str]) -> list[str]:
    """``"all"``, ``"sudoku,maze"`` or ``["sudoku", "maze"]`` → task names (registry order)."""
    if isinstance(value, str):
        names = list(TASKS) if value.strip().lower() == "all" else \
            [v.strip() for v in value.split(",") if v.strip()]
    else:
        names = [str(v).strip() for v in value]
    unknown = [n for n in names if n not in TASKS]
    if unknown or not names:
        raise ValueError(f"unknown logic tasks {unknown or value!r}; known: "
                         f"{', '.join(TASKS)} (or 'all')")
    return list(dict.fromkeys(names))


def parse_levels(value: int | str | list[int]) -> list[int]:
    """``3``, ``"mix"`` (1-5 in turn), ``"1-3"``, ``"1,4"`` or ``[1, 4]`` → levels."""
    return parse_difficulty_levels(value, LEVELS)


def rng_for(task: str, difficulty: int, seed: int) -> random.Random:
    return random.Random(f"logic:{task}:{difficulty}:{seed}")


def make_item(task: str, difficulty: int, seed: int,
              knobs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The item for ``(task, difficulty, seed)``: the same triple gives the same item.

    ``knobs`` override the level's knobs (then ``difficulty`` only labels the item and seeds
    the generator)."""
    spec = get_task(task)
    if difficulty not in spec.levels:
        raise ValueError(f"difficulty levels are 1-5; got {difficulty!r}")
    settings = {**spec.levels[difficulty], **(knobs or {})}
    fields = spec.generate(rng_for(task, difficulty, seed), **settings)
    question = f"{fields.pop('question').rstrip()}\n\nAnswer format: {spec.answer_format}\n" \
               f"{ANSWER_LINE}"
    return {"task": task, "question": question, "answer": fields.pop("answer"),
            "answer_format": spec.answer_format, "difficulty": difficulty, "seed": seed,
            **fields}


def verify_answer(item: dict[str, Any], candidate: str | None) -> str | None:
    """None when ``candidate`` solves ``item`` (by its task's verifier), else why not. The
    candidate is a whole reply or a bare answer: its final answer is read the same way for
    both (:func:`synthloom.verify.answers.extract_final`); a hedged one is wrong."""
    text = answers.extract_final(str(candidate or "")) or ""
    if not text.strip():
        return "no answer"
    hedged = answers.hedge_reason(text)
    if hedged:
        return hedged
    try:
        return get_task(str(item["task"])).verify(item, text)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        # A record missing a field, or a candidate the task's parser chokes on.
        return f"cannot check: {type(exc).__name__}: {exc}"


def check_record(record: dict[str, Any], check_unique: bool = True) -> str | None:
    """None when the stored answer passes its task's verifier (and is the only answer where
    the task promises one), else why not."""
    reason = verify_answer(record, record.get("answer"))
    if reason is not None:
        return f"stored answer fails: {reason}"
    task = get_task(str(record["task"]))
    if check_unique and task.unique:
        count = task.count_solutions(record, 2)
        if count != 1:
            return f"{'no' if count == 0 else 'more than one'} solution"
    return None


#: The shared reader (kept here under its old names for the task modules and callers).
extract_final = answers.extract_final
clean_answer = answers.clean


def split_list(text: str) -> list[str]:
    """``"a, b; c"`` / ``"[a, b, c]"`` → ``["a", "b", "c"]`` (commas, semicolons or spaces)."""
    text = text.strip().strip("[](){}")
    sep = "," if "," in text else ";" if ";" in text else None
    parts = text.split(sep) if sep else text.split()
    return [p.strip().strip("'\"") for p in parts if p.strip()]
