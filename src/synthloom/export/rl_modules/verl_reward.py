"""verl custom reward function, written by ``synthloom export --format verl``.

Point verl at it::

    custom_reward_function.path=reward.py custom_reward_function.name=compute_score

Each row's ``reward_model.ground_truth`` (a JSON string) holds what synthloom's verifier needs;
a rollout scores 1.0 when that verifier accepts its final answer, else 0.0 (reasoning in
``<think>`` never counts, a hedged answer scores 0). Needs ``pip install synthloom`` (and
``synthloom[gym]`` for reasoning-gym rows).
"""

from __future__ import annotations

from typing import Any

from synthloom.verify.rewards import score


def compute_score(data_source: str, solution_str: str, ground_truth: str,
                  extra_info: dict[str, Any] | None = None, **kwargs: Any) -> float:
    return score(data_source, solution_str, ground_truth, extra_info)
