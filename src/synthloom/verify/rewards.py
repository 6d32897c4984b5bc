"""Rule rewards for RL trainers: a record's ground truth out, a reply's score (1 or 0) back.

An exported dataset row carries ``data_source`` and a ``ground_truth`` (a JSON string: what the
verifier needs, not only the reference answer - a logic task's verifier accepts any correct
answer). The exported reward modules (``synthloom export --format verl|grpo|verifiers``)
call :func:`score`, so a trainer grades a rollout with the same verifier that kept the record:

* ``synthloom/logic/<task>``: the task's verifier (:func:`synthloom.verify.logic.verify_answer`)
  on the puzzle's fields;
* ``reasoning_gym/<dataset>``: reasoning-gym's scorer on the regenerated entry, 1 only for a
  score of 1.0 (:mod:`synthloom.verify.gym`);
* ``synthloom/math``: the stated final answer equal to the gold one
  (:func:`synthloom.verify.math_answers.answers_equal`).

The reply's final answer is read by :mod:`synthloom.verify.answers` (reasoning in ``<think>``
never counts; a hedged answer scores 0).
"""

from __future__ import annotations

import json
from typing import Any

#: Record columns that are a run's output, not the puzzle: left out of a logic ground truth.
_OUTPUT_COLUMNS = {"_meta", "question", "verified", "model_response", "model_answer", "solved",
                   "solve_reason", "gym_score"}


def ground_truth(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(data_source, ground truth)`` of a record; ValueError when no verifier covers it."""
    from synthloom.verify.logic import TASKS

    if "gym_dataset" in record:
        from synthloom.verify.gym import GYM_COLUMNS

        if record.get("answer") is None:
            raise ValueError("reasoning-gym stores no reference answer for this item")
        return f"reasoning_gym/{record['gym_dataset']}", \
            {"kind": "gym", **{c: record[c] for c in GYM_COLUMNS}}
    task = record.get("task")
    if isinstance(task, str) and task in TASKS:
        item = {k: v for k, v in record.items() if k not in _OUTPUT_COLUMNS}
        return f"synthloom/logic/{task}", {"kind": "logic", "item": item}
    gold = record.get("gold", record.get("answer"))
    if isinstance(gold, str | int | float) and not isinstance(gold, bool) and str(gold).strip():
        return "synthloom/math", {"kind": "math", "answer": str(gold)}
    raise ValueError("no verifier for this record (not a logic task, a reasoning-gym item, "
                     "or a record with a gold answer)")


def check(solution_str: str | None, truth: str | dict[str, Any]) -> str | None:
    """None when the reply is right for the ground truth, else why not."""
    gt = json.loads(truth) if isinstance(truth, str) else truth
    kind = gt.get("kind")
    if kind == "logic":
        from synthloom.verify.logic import verify_answer

        return verify_answer(gt["item"], solution_str)
    if kind == "gym":
        from synthloom.verify.gym import verify_gym_answer

        return verify_gym_answer(gt, solution_str)
    if kind == "math":
        from synthloom.verify.math_answers import answers_equal, extract_answer

        stated = extract_answer(solution_str, last_number=False)
        if stated is None:
            return "no stated answer"
        return None if answers_equal(stated, str(gt["answer"])) else \
            f"{stated!r} is not {gt['answer']!r}"
    raise ValueError(f"unknown ground-truth kind {kind!r}")


def score(data_source: str, solution_str: str | None, truth: str | dict[str, Any],
          extra_info: dict[str, Any] | None = None) -> float:
    """1.0 when the reply is right, else 0.0 (verl's ``compute_score`` contract; a ground
    truth that cannot be read scores 0, it never stops a training step)."""
    try:
        return 1.0 if check(solution_str, truth) is None else 0.0
    except (KeyError, TypeError, ValueError):
        return 0.0


def completion_text(completion: Any) -> str:
    """A TRL / verifiers completion as text: a string, or the last message's content of a
    conversational completion (``[{"role": "assistant", "content": ...}]``)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        last = completion[-1]
        if isinstance(last, dict):
            return str(last.get("content") or "")
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    return ""
