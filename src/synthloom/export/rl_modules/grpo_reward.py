"""TRL GRPO reward function, written by ``synthloom export --format grpo``.

    from grpo_reward import reward
    GRPOTrainer(model=..., reward_funcs=reward,
                train_dataset=load_dataset("json", data_files="train.jsonl")["train"])

GRPOTrainer passes the completions and every dataset column as keyword arguments; this
function reads ``ground_truth`` and ``data_source``. A completion (text, or a conversational
``[{"role": "assistant", "content": ...}]``) scores 1.0 when synthloom's verifier accepts its
final answer, else 0.0. Needs ``pip install synthloom`` (``synthloom[gym]`` for reasoning-gym).
"""

from __future__ import annotations

from typing import Any

from synthloom.verify.rewards import completion_text, score


def reward(completions: list[Any], ground_truth: list[str], data_source: list[str],
           **kwargs: Any) -> list[float]:
    return [score(source, completion_text(completion), truth)
            for completion, truth, source in zip(completions, ground_truth, data_source,
                                                 strict=True)]
